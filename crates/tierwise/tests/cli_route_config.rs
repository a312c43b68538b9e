//! Whole CLI runs of `tierwise route` and `tierwise config check`, snapshotted.
#![allow(clippy::unwrap_used, reason = "test helpers may unwrap")]

use assert_cmd::Command;
use std::io::Write;

fn tierwise() -> Command {
    let mut c = Command::cargo_bin("tierwise").unwrap();
    // Run from an empty folder so ./tierwise.toml is not picked up; the embedded default is used.
    c.current_dir(std::env::temp_dir());
    c.env_remove("TIERWISE_UPSTREAM_BASE_URL");
    c
}

fn stdout(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn route_three_contrasting_prompts() {
    let plain = stdout(tierwise().args(["route", "What is the capital of France?"]));
    insta::assert_snapshot!("route_plain", plain);
    let code = stdout(tierwise().args([
        "route",
        "Fix the bug:\n```python\ndef mean(xs):\n    return sum(xs) / len(xs) + 1\n```",
    ]));
    insta::assert_snapshot!("route_code", code);
    let hard = format!(
        "{}\nProve that for every prime p > 3, p^2 - 1 is divisible by 24. Then compute the probability that two random integers are coprime.",
        "We study number theory in a graduate seminar. ".repeat(40)
    );
    let hard = stdout(tierwise().args(["route", &hard]));
    insta::assert_snapshot!("route_hard_math", hard);
}

/// Without a hint the categorizer names the category: a classification prompt goes to nano;
/// a coding request in words (no code block) is unsure but may raise the tier, to standard.
#[test]
fn route_categorizes_without_a_hint() {
    let classify = stdout(tierwise().args([
        "route",
        "Classify the sentiment of this review as positive, negative or neutral: the battery died after two days and support never answered.",
    ]));
    insta::assert_snapshot!("route_classify", classify);
    let out = stdout(tierwise().args([
        "route",
        "--json",
        "Write a lock-free multi-producer single-consumer queue in Rust with a bounded buffer.",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["tier_name"], "standard");
    assert_eq!(v["decision"]["category"]["name"], "coding");
    assert_eq!(v["decision"]["category"]["source"], "categorizer");
    assert_eq!(v["decision"]["category"]["sure"], false);
    // a hint overrides the categorizer
    let out = stdout(tierwise().args([
        "route",
        "--json",
        "--category",
        "writing",
        "Classify the sentiment of this review: great!",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["category"]["name"], "writing");
    assert_eq!(v["decision"]["category"]["source"], "hint");
    assert_eq!(v["decision"]["tier_name"], "mini");
}

#[test]
fn route_json_and_hints() {
    let out = stdout(tierwise().args([
        "route",
        "--json",
        "--role",
        "sub-agent",
        "Prove the Riemann hypothesis",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["tier_name"], "mini");
    assert_eq!(v["decision"]["source"]["name"], "sub-agent");
    assert_eq!(v["signals"]["role"], "sub-agent");
    let out = stdout(tierwise().args(["route", "--json", "--tier", "nano", "x"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["model"], "gpt-5.4-nano");
}

#[test]
fn route_request_file_and_bad_input() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(f, r#"{{"model": "auto", "metadata": {{"category": "extraction"}}, "messages": [{{"role": "user", "content": "Extract all dates"}}]}}"#).unwrap();
    let out = stdout(
        tierwise()
            .args(["route", "--json", "--request"])
            .arg(f.path()),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["tier_name"], "nano");

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    write!(bad, r#"{{"model": "auto"}}"#).unwrap();
    let out = tierwise()
        .args(["route", "--request"])
        .arg(bad.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("messages") && err.lines().count() == 1,
        "{err}"
    );

    let out = tierwise()
        .args(["route", "--request", "/nonexistent/req.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = tierwise()
        .args(["route", "--tier", "huge", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("huge"));
}

#[test]
fn config_check_valid_invalid_unreadable() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tierwise.toml");
    let out = stdout(tierwise().args(["config", "check", root]));
    assert!(out.contains("valid"), "{out}");

    let text =
        std::fs::read_to_string(root)
            .unwrap()
            .replacen("output = 1.25", "output = -1.25", 1);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    let out = tierwise()
        .args(["config", "check"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nano") && err.contains("invalid"), "{err}");

    let text = std::fs::read_to_string(root)
        .unwrap()
        .replace("[tools]", "[tools]\ntop_kk = 3");
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    let out = tierwise()
        .args(["config", "check", "--json"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["error"].as_str().unwrap().contains("top_kk"));

    let out = tierwise()
        .args(["config", "check", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn route_with_the_learned_router() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tierwise.toml");
    let text = std::fs::read_to_string(root)
        .unwrap()
        .replace("mode = \"rules\"", "mode = \"learned\"");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tierwise.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = stdout(
        tierwise()
            .args(["route", "--json", "--config"])
            .arg(&cfg)
            .arg("What is the capital of France?"),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["source"]["kind"], "learned", "{out}");
    let e = v["decision"]["estimate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&e), "{out}");
    assert!(
        v["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("P(ok on")
    );
    // Role rules still apply before the learned router.
    let out = stdout(
        tierwise()
            .args(["route", "--json", "--role", "sub-agent", "--config"])
            .arg(&cfg)
            .arg("Prove the Riemann hypothesis"),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["tier_name"], "mini");
}
