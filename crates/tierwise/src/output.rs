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
    let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    let _ = writeln!(
        std::io::stderr(),
        "error: {}",
        msg.join(": ").replace('\n', " ")
    );
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

/// Whether color may be used (NO_COLOR unset and stdout a terminal).
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}
