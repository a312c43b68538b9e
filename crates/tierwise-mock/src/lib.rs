//! tierwise-mock
