//! How long-running evaluation and training report progress without knowing about terminals:
//! the CLI passes a progress bar, tests and libraries pass [`Quiet`].

/// A sink for progress: one stage at a time, each with a known length (0 when unknown).
pub trait Progress: Sync {
    /// A stage starts: `what` is shown beside the bar.
    fn start(&self, what: &str, len: u64);
    /// The current stage reached `pos` of its length.
    fn set(&self, pos: u64);
    /// The current stage advanced by `n`.
    fn inc(&self, n: u64);
    /// The current stage ended; its bar is cleared.
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _what: &str, _len: u64) {}
    fn set(&self, _pos: u64) {}
    fn inc(&self, _n: u64) {}
    fn finish(&self) {}
}
