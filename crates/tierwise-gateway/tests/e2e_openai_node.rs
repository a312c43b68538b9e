//! The official `openai` Node SDK against the gateway + mock: `tests/e2e/openai_sdk_e2e.mjs`.
//!
//! Needs node and the SDK pinned by `tests/e2e/package-lock.json`, which `./scripts/test` (the
//! README's test command) installs (`npm ci` in `tests/e2e`). Without them the test fails and
//! says how to get them: a test that did not run does not pass.
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
async fn openai_node_sdk_end_to_end() {
    let e2e = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e");
    assert!(
        e2e.join("node_modules/openai/package.json").exists(),
        "no openai Node SDK in {}: run ./scripts/test, which installs it (cd tests/e2e && npm ci)",
        e2e.display()
    );
    let mut h = Harness::start().await;
    let base_url = h.base_url();
    let mut node = std::process::Command::new("node");
    node.arg("openai_sdk_e2e.mjs")
        .arg(base_url)
        .current_dir(&e2e);
    common::run_sdk_script(node, "openai Node SDK (needs Node.js >= 20 on PATH)").await;
    // Every routed SDK call was logged: plain, 2 streams, tools, 2 Responses, 2 errors.
    h.shutdown().await;
    let rows = common::read_rows(&h.db);
    assert_eq!(rows.len(), 8, "one row per routed SDK call");
    assert!(rows.iter().any(|r| r.streamed && r.status == 200));
    assert!(rows.iter().any(|r| r.status == 404));
    assert!(rows.iter().any(|r| r.status == 400));
}
