//! tierwise-store
