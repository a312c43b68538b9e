//! Whole CLI runs of `tierwise prices show` and `tierwise prices update`.
#![allow(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::path::Path;

use assert_cmd::Command;

const VENDORED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tierwise-core/data/prices/genai-prices-v2-data.json"
);

fn tierwise() -> Command {
    let mut c = Command::cargo_bin("tierwise").unwrap();
    // Run from an empty folder so ./tierwise.toml is not picked up; the embedded default is used.
    c.current_dir(std::env::temp_dir());
    c.env_remove("TIERWISE_UPSTREAM_BASE_URL");
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn show_a_configured_tier_with_its_long_context_tier() {
    let (code, out, err) = run(tierwise().args(["prices", "show", "gpt-5.4"]));
    assert_eq!(code, 0, "{err}");
    let expected = "\
gpt-5.4: tier \"standard\" (gpt-5.4)
source: the embedded default config
USD per 1M tokens  input  cached input  cache write  output
input ≤ 272000       2.5          0.25     as input      15
input > 272000         5           0.5     as input    22.5
";
    assert!(out.starts_with(expected), "{out}");
    assert!(
        out.contains("price database openai/gpt-5.4 (not used"),
        "{out}"
    );
}

#[test]
fn show_a_database_model_with_source_and_check_date() {
    let (code, out, err) = run(tierwise().args(["prices", "show", "gpt-5.6-sol-2026-10-01"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            "gpt-5.6-sol-2026-10-01: OpenAI GPT-5.6 Sol (price database entry openai/gpt-5.6-sol)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("source: genai-prices: pydantic/genai-prices"),
        "{out}"
    );
    assert!(out.contains(", checked 2026-08-21\n"), "{out}");
    assert!(out.contains("6.25"), "{out}"); // cache write
    assert!(out.contains("input > 272000"), "{out}");
    let (code, json, _) = run(tierwise().args(["prices", "show", "gpt-5.6-luna", "--json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["prices"]["input"], "0.2"); // the 2026-07-30 price cut is in force
    assert_eq!(v["prices"]["cache_write"], "0.25");
    assert_eq!(v["checked"], "2026-08-21");
}

#[test]
fn an_unknown_model_is_unpriced() {
    let (code, out, err) = run(tierwise().args(["prices", "show", "no-such-model"]));
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.starts_with("no-such-model: unpriced: "), "{err}");
}

#[test]
fn update_validates_shows_changes_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(VENDORED, data.join("genai-prices-v2-data.json")).unwrap();
    let original = std::fs::read_to_string(VENDORED).unwrap();
    // a newer copy: gpt-5.4's base output price changes
    let newer = original.replacen(
        "\"output_mtok\":{\"base\":15,\"tiers\":[{\"start\":272000,\"price\":22.5}]}",
        "\"output_mtok\":{\"base\":16,\"tiers\":[{\"start\":272000,\"price\":22.5}]}",
        1,
    );
    assert_ne!(newer, original);
    let file = dir.path().join("data.json");
    std::fs::write(&file, &newer).unwrap();
    let data_arg = data.to_str().unwrap();
    let (code, out, err) = run(tierwise().args([
        "prices",
        "update",
        file.to_str().unwrap(),
        "--data-dir",
        data_arg,
        "--checked",
        "2026-12-01",
        "--source",
        "test copy",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 added, 0 removed, 1 changed"), "{out}");
    assert!(
        out.contains("~ openai/gpt-5.4: in 2.5 / cached 0.25 / out 15;"),
        "{out}"
    );
    assert!(
        err.contains("a config reads it with [pricing] database"),
        "{err}"
    );
    assert_eq!(read(&data, "genai-prices-v2-data.json"), newer);
    let source = read(&data, "source.toml");
    assert!(
        source.contains("source = \"test copy\"\nchecked = \"2026-12-01\""),
        "{source}"
    );

    // a config naming that file prices gpt-5.4-pro... and gpt-5.4 from it when not a tier
    let config = dir.path().join("tierwise.toml");
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tierwise.toml"))
        .unwrap();
    std::fs::write(
        &config,
        seed.replacen(
            "[pricing]",
            "[pricing]\ndatabase = \"data/genai-prices-v2-data.json\"",
            1,
        ),
    )
    .unwrap();
    let (code, out, err) = run(tierwise().args([
        "prices",
        "show",
        "openai/gpt-5.4",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("source: genai-prices: test copy, checked 2026-12-01"),
        "{out}"
    );
    assert!(out.contains("16"), "{out}");
}

#[test]
fn an_invalid_file_is_refused_and_the_old_data_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(VENDORED, data.join("genai-prices-v2-data.json")).unwrap();
    let original = std::fs::read_to_string(VENDORED).unwrap();
    let bad = original.replacen("\"input_mtok\":", "\"input_mtok\":-", 1);
    let file = dir.path().join("data.json");
    std::fs::write(&file, bad).unwrap();
    let (code, out, err) = run(tierwise().args([
        "prices",
        "update",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]));
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("invalid: anthropic.models["), "{err}");
    assert!(
        err.contains("input_mtok: must not be negative; the price data in"),
        "{err}"
    );
    assert_eq!(read(&data, "genai-prices-v2-data.json"), original);
    assert!(!data.join("source.toml").exists());
    // not JSON at all
    std::fs::write(&file, "{ nope").unwrap();
    let (code, _, err) = run(tierwise().args([
        "prices",
        "update",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("invalid: not valid JSON"), "{err}");
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}
