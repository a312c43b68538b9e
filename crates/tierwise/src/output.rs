//! The only place that writes to stdout. Data goes to stdout; errors and progress to stderr.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// Exit status of a command that ran: 0 success, 1 "found problems". Usage and input
/// errors are `Err` and exit 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Problems,
}

impl From<Status> for std::process::ExitCode {
    fn from(s: Status) -> Self {
        match s {
            Status::Success => std::process::ExitCode::SUCCESS,
            Status::Problems => std::process::ExitCode::from(1),
        }
    }
}

/// Prints data to stdout (the one place that does).
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
}

/// Prints a value as pretty JSON to stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    out(&serde_json::to_string_pretty(value)?);
    Ok(())
}

/// One line on stderr: `error: …` with the cause chain joined by `: `.
pub fn error_line(e: &anyhow::Error) {
    let _ = writeln!(std::io::stderr(), "error: {}", chain_line(e));
}

/// The cause chain joined by `: `, each cause once: a cause whose text the message so far
/// already holds (an error that prints its source in its own message) is not repeated.
fn chain_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// A note on stderr.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A progress bar on stderr, hidden when stderr is not a terminal or output is JSON.
pub fn progress(len: u64, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta})")
    {
        pb.set_style(style);
    }
    pb.set_message(what.to_string());
    pb
}

/// A progress bar on stderr for the library drivers' [`tierwise_eval::Progress`]: one bar per
/// stage, hidden when `quiet` or stderr is not a terminal.
pub struct Bar {
    quiet: bool,
    current: std::sync::Mutex<Option<ProgressBar>>,
}

impl Bar {
    pub fn new(quiet: bool) -> Bar {
        Bar {
            quiet,
            current: std::sync::Mutex::new(None),
        }
    }

    fn with(&self, f: impl FnOnce(&ProgressBar)) {
        if let Ok(guard) = self.current.lock()
            && let Some(pb) = guard.as_ref()
        {
            f(pb);
        }
    }
}

impl tierwise_eval::Progress for Bar {
    fn start(&self, what: &str, len: u64) {
        if let Ok(mut guard) = self.current.lock() {
            if let Some(old) = guard.take() {
                old.finish_and_clear();
            }
            *guard = Some(progress(len, self.quiet, what));
        }
    }

    fn set(&self, pos: u64) {
        self.with(|pb| pb.set_position(pos));
    }

    fn inc(&self, n: u64) {
        self.with(|pb| pb.inc(n));
    }

    fn finish(&self) {
        if let Ok(mut guard) = self.current.lock()
            && let Some(pb) = guard.take()
        {
            pb.finish_and_clear();
        }
    }
}

/// Whether color may be used (NO_COLOR unset and stdout a terminal).
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x: {source}")]
        struct Wrapped {
            #[source]
            source: std::io::Error,
        }
        let e = anyhow::Error::new(Wrapped { source: io }).context("audit");
        assert_eq!(
            chain_line(&e),
            "audit: cannot read x: No such file or directory"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain_line(&plain), "outer: inner");
    }
}
