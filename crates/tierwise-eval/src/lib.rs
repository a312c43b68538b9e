//! tierwise-eval
