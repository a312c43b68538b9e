//! The official `openai` Python SDK against the gateway + mock: `tests/e2e/openai_sdk_e2e.py`.
//!
//! Needs the project venv with the SDK, which `./scripts/test` (the README's test command)
//! creates: `python3 -m venv .venv && .venv/bin/pip install openai`. Without it the test fails
//! and says how to make it: a test that did not run does not pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]

mod common;

use std::path::PathBuf;

use common::Harness;

#[tokio::test]
async fn openai_python_sdk_end_to_end() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "no .venv at {}: run ./scripts/test, which creates it \
         (python3 -m venv .venv && .venv/bin/pip install openai)",
        root.display()
    );
    let mut h = Harness::start().await;
    let script = root.join("tests/e2e/openai_sdk_e2e.py");
    let base_url = h.base_url();
    let mut sdk = std::process::Command::new(python);
    sdk.arg(script).arg(base_url);
    common::run_sdk_script(sdk, "openai Python SDK").await;
    // Every SDK call was logged.
    h.shutdown().await;
    let rows = common::read_rows(&h.db);
    assert_eq!(rows.len(), 11, "one row per proxied SDK call");
    assert!(rows.iter().any(|r| r.streamed && r.status == 200));
    assert!(rows.iter().any(|r| r.status == 404));
}
