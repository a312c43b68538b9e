//! tierwise-tools
