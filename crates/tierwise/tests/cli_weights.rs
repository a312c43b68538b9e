//! Weight files a config names: a missing router or scorer file is an error naming the file,
//! never a silent fall back to the shipped weights; with none named, the shipped ones are used.
#![allow(clippy::unwrap_used, reason = "test helpers may unwrap")]

use assert_cmd::Command;

fn tierwise(dir: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("tierwise").unwrap();
    c.current_dir(dir);
    c.env_remove("TIERWISE_UPSTREAM_BASE_URL");
    c.env_remove("TIERWISE_EMBED_DIR");
    c
}

/// The embedded default config with `[routing] mode = "learned"` and `extra` appended to the
/// `[routing.learned]` section.
fn learned_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let text = tierwise_core::config::DEFAULT_TOML
        .replace("mode = \"rules\"", "mode = \"learned\"")
        .replace(
            "[routing.learned]\n",
            &format!("[routing.learned]\n{extra}\n"),
        );
    let path = dir.join("learned.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `tierwise route --config CFG "What is the capital of France?"` run in `dir`.
fn route_with(dir: &std::path::Path, cfg: &std::path::Path) -> std::process::Output {
    tierwise(dir)
        .args(["route", "--config"])
        .arg(cfg)
        .arg("What is the capital of France?")
        .output()
        .unwrap()
}

#[test]
fn a_missing_router_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = learned_config(dir.path(), "weights = \"no-such-router.json\"");
    let out = route_with(dir.path(), &cfg);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("router file"), "{err}");
    assert!(err.contains("no-such-router.json"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn no_router_file_named_uses_the_shipped_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = learned_config(dir.path(), "");
    let out = route_with(dir.path(), &cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn a_missing_scorer_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tierwise-eval/fixtures/mmlu_pro_responses");
    let out = tierwise(dir.path())
        .args([
            "eval",
            "--cascade",
            "--scorer",
            "no-such-scorer.json",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scorer file no-such-scorer.json"), "{err}");
}
