//! Checks `tierwise_core::tokens::count` (memoised, own ASCII pre-tokenizer) against the
//! tokenizer it stands for, `bpe_openai::o200k_base().count`, on every string of real files:
//! each JSONL line's string values (messages, responses, tool descriptions), whole and per value.
//!
//! ```sh
//! cargo run --release -p tierwise-core --example token_parity -- FILE.jsonl[.gz] ...
//! ```
//! Prints the number of strings compared and the first mismatches; exits 1 on any mismatch.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line check"
)]

use std::io::{BufRead, BufReader, Read};
use std::process::ExitCode;

use serde_json::Value;

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn open(path: &str) -> std::io::Result<Box<dyn BufRead>> {
    let mut f = std::fs::File::open(path)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic)?;
    let f = std::fs::File::open(path)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            f,
        ))))
    } else {
        Ok(Box::new(BufReader::new(f)))
    }
}

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: token_parity FILE.jsonl[.gz]...");
        return ExitCode::from(2);
    }
    let bpe = bpe_openai::o200k_base();
    let (mut compared, mut tokens, mut bad) = (0usize, 0usize, 0usize);
    for path in &paths {
        let reader = match open(path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("token_parity: {path}: {e}");
                return ExitCode::from(2);
            }
        };
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let mut texts = Vec::new();
            strings(&v, &mut texts);
            let joined = texts.join("\n");
            texts.push(&joined);
            for t in texts {
                let (ours, theirs) = (tierwise_core::tokens::count(t), bpe.count(t));
                compared += 1;
                tokens += theirs;
                if ours != theirs {
                    bad += 1;
                    if bad <= 5 {
                        let head: String = t.chars().take(120).collect();
                        println!("MISMATCH ours {ours} o200k {theirs}: {head:?}");
                    }
                }
            }
        }
    }
    println!("{compared} strings, {tokens} o200k tokens, {bad} mismatches");
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
