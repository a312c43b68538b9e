//! Whole CLI runs of `tierwise keys …` / `tierwise teams …` on a SQLite store in a temp folder,
//! and `tierwise audit --store … --group-by`.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use assert_cmd::Command;
use serde_json::Value;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn store(&self) -> String {
        self.0.path().join("store.db").display().to_string()
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::cargo_bin("tierwise").unwrap();
        c.current_dir(self.0.path())
            .env_remove("TIERWISE_DATABASE_URL")
            .args(args)
            .args(["--store", &self.store()]);
        c.output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Exit 2 with one line on stderr that contains `needle`.
    fn fails(&self, args: &[&str], needle: &str) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn keys_and_teams_round_trip_and_bad_input_exits_2() {
    let d = Dir::new();
    let team = d.json(&["teams", "create", "research", "--budget-usd-month", "100"]);
    assert_eq!(team["budget_usd_month"], "100");
    let created = d.json(&[
        "keys",
        "create",
        "--name",
        "app",
        "--team",
        "research",
        "--budget-usd-day",
        "2.5",
        "--rpm",
        "60",
        "--tiers",
        "nano,mini",
    ]);
    let id = created["id"].as_str().unwrap().to_string();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("tw-") && key.len() == 35, "{key}");
    let listed = d.json(&["keys", "list"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(
        !listed.to_string().contains(&key[3..]),
        "the list shows the key"
    );
    let updated = d.json(&["keys", "update", &id, "--rpm", "none", "--max-tier", "mini"]);
    assert!(updated.get("rpm").is_none(), "{updated}");
    assert_eq!(updated["max_tier"], "mini");
    let revoked = d.json(&["keys", "revoke", &id]);
    assert!(revoked["revoked"].is_string());
    let shown = d.json(&["keys", "show", &id]);
    assert_eq!(shown["spend"], Value::Array(vec![]));
    // The store holds the key's hash, never the key.
    let bytes = std::fs::read(d.store()).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains(&key[3..]));

    d.fails(
        &["keys", "create", "--name", "x", "--budget-usd-day", "-1"],
        "negative",
    );
    d.fails(
        &[
            "keys",
            "create",
            "--name",
            "x",
            "--budget-usd-month",
            "lots",
        ],
        "not a decimal",
    );
    d.fails(
        &["keys", "create", "--name", "x", "--team", "ghosts"],
        "ghosts",
    );
    d.fails(
        &["keys", "create", "--name", "x", "--max-tier", "huge"],
        "unknown tier",
    );
    d.fails(
        &["keys", "create", "--name", "x", "--expires", "soon"],
        "RFC 3339",
    );
    d.fails(&["keys", "show", "key_000000000000"], "no key");
    d.fails(&["teams", "create", "research"], "already exists");
}

#[test]
fn an_unreachable_database_is_one_line_and_exit_2() {
    let d = Dir::new();
    let mut c = Command::cargo_bin("tierwise").unwrap();
    let out = c
        .current_dir(d.0.path())
        .args([
            "keys",
            "list",
            "--store",
            "postgres://tw:secret@127.0.0.1:1/none?connect_timeout=2",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("unavailable") && !err.contains("secret"),
        "{err}"
    );
}

#[test]
fn audit_groups_spend_by_key() {
    let d = Dir::new();
    // An empty log groups nothing; a bad --group-by is exit 2.
    d.json(&["keys", "list"]);
    let mut c = Command::cargo_bin("tierwise").unwrap();
    let out = c
        .current_dir(d.0.path())
        .args([
            "audit",
            "--store",
            &d.store(),
            "--group-by",
            "key",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["group_by"]["by"], "key");
    assert_eq!(v["group_by"]["groups"], Value::Array(vec![]));
    let mut c = Command::cargo_bin("tierwise").unwrap();
    let out = c
        .current_dir(d.0.path())
        .args(["audit", "--store", &d.store(), "--group-by", "colour"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
