//! tierwise-router
