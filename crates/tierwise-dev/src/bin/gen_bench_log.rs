//! Generates a large call log for the audit benchmark from the committed example workload.
//!
//! ```text
//! cargo run --release -p tierwise-dev --bin gen_bench_log -- \
//!     --calls 1000000 --out /tmp/tierwise-bench.jsonl [--template examples/workload.jsonl.gz]
//! ```
//!
//! Each line copies a random call of the template, gives it a time (30 days, in order, with
//! jitter) and a unique user turn (a reference number in front), and trims long system prompts
//! (to 900 characters) and tool lists (to 5 tools) so lines average ≈1.5 KB. Do not commit
//! the output.

#![expect(
    clippy::print_stdout,
    reason = "a generator script reports what it wrote"
)]
#![expect(clippy::unwrap_used, clippy::panic, reason = "a script: fail loudly")]

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use flate2::read::MultiGzDecoder;
use serde_json::Value;

fn main() {
    let mut calls = 1_000_000usize;
    let mut out = PathBuf::from("/tmp/tierwise-bench.jsonl");
    let mut template = PathBuf::from("examples/workload.jsonl.gz");
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--calls" => calls = v.parse().unwrap(),
            "--out" => out = PathBuf::from(v),
            "--template" => template = PathBuf::from(v),
            other => panic!("unknown argument {other}"),
        }
    }
    let reader = BufReader::new(MultiGzDecoder::new(std::fs::File::open(&template).unwrap()));
    let mut lines: Vec<Value> = Vec::new();
    for l in reader.lines() {
        let mut v: Value = serde_json::from_str(&l.unwrap()).unwrap();
        if let Some(msgs) = v
            .get_mut("request")
            .and_then(|r| r.get_mut("messages"))
            .and_then(Value::as_array_mut)
        {
            for m in msgs.iter_mut() {
                let role = m["role"].as_str().unwrap_or("").to_string();
                if (role == "system" || role == "developer")
                    && let Some(c) = m["content"].as_str()
                    && c.len() > 900
                {
                    let mut cut = 900;
                    while !c.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    m["content"] = Value::String(c[..cut].to_string());
                }
            }
        }
        if let Some(tools) = v
            .get_mut("request")
            .and_then(|r| r.get_mut("tools"))
            .and_then(Value::as_array_mut)
        {
            tools.truncate(5);
        }
        lines.push(v);
    }
    let start: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z
    let span: i64 = 30 * 24 * 3600 * 1000;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out).unwrap());
    let mut bytes = 0usize;
    for i in 0..calls {
        let mut v = lines[(next() % lines.len() as u64) as usize].clone();
        let ts = start + (i as i64) * span / calls as i64 + (next() % 2000) as i64;
        let t =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts) * 1_000_000).unwrap();
        v["timestamp"] = Value::String(
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        );
        let Some(request) = v.get_mut("request") else {
            continue;
        };
        if let Some(c) = request.get("input").and_then(Value::as_str) {
            request["input"] = Value::String(format!("Ref {i:07}: {c}"));
        } else if let Some(u) = request
            .get_mut("messages")
            .and_then(Value::as_array_mut)
            .and_then(|m| m.iter_mut().rev().find(|m| m["role"] == "user"))
            && let Some(c) = u["content"].as_str()
        {
            u["content"] = Value::String(format!("Ref {i:07}: {c}"));
        }
        let mut s = serde_json::to_vec(&v).unwrap();
        s.push(b'\n');
        bytes += s.len();
        w.write_all(&s).unwrap();
    }
    w.flush().unwrap();
    println!(
        "wrote {calls} calls, {:.1} MB ({:.0} bytes per call) to {}",
        bytes as f64 / 1e6,
        bytes as f64 / calls as f64,
        out.display()
    );
}
