//! Agreement of the categorizer with real task labels.
//!
//! ```text
//! cargo run --release -p tierwise-audit --example categorizer_agreement -- ../shared/data
//! ```
//!
//! Labelled sets (real public prompts, see `../shared/data/README.md`):
//! - LLMRouter's task labels (`routing/llmrouter`, train + test), mapped to our categories by
//!   what the task asks (fixed before measuring, not tuned per row):
//!   gsm8k, math, agentverse-mgsm, agentverse-logicgrid, gpqa → reasoning;
//!   mbpp, human_eval → coding; commongen → writing;
//!   natural_qa, trivia_qa, commonsense_qa, openbook_qa, arc_challenge, mmlu → conversation
//!   (knowledge questions a chat assistant answers).
//! - BFCL and Seal-Tools queries sent with their tools → agentic.
//! - The example workload (`examples/workload.jsonl.gz`, real prompts under eight synthetic
//!   applications' system prompts), labelled by the application that sent the call
//!   (`metadata.app`): triage → classification, extract → extraction, digest → summarization,
//!   writer → writing, code → coding, tutor → reasoning, support → conversation, agent →
//!   agentic. It is the only set here with classification, extraction and summarization
//!   labels, and its tasks are stated by system prompts (the easy case).
//!
//! Prints overall and per-task agreement, the confusion of the LLMRouter part, and per
//! category: recall (of the prompts labelled X, categorized X), precision (of those
//! categorized X, labelled X), the share the categorizer is sure of, and the agreement where
//! it is sure — an unsure category can only raise a tier, so the sure errors are the ones that
//! could send a call too low.

#![expect(
    clippy::print_stdout,
    reason = "a measurement script prints its result"
)]
#![expect(clippy::unwrap_used, reason = "a script: fail loudly")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde_json::{Value, json};
use tierwise_audit::category::{Category, categorize};
use tierwise_core::request::RequestView;
use tierwise_core::signals::{Hints, Signals};

fn read_jsonl(path: &Path) -> Vec<Value> {
    let file = std::fs::File::open(path).unwrap();
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    reader
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

/// LLMRouter task → our category.
pub fn expected(task: &str) -> Option<&'static str> {
    Some(match task {
        "gsm8k" | "math" | "agentverse-mgsm" | "agentverse-logicgrid" | "gpqa" => "reasoning",
        "mbpp" | "human_eval" => "coding",
        "commongen" => "writing",
        "natural_qa" | "trivia_qa" | "commonsense_qa" | "openbook_qa" | "arc_challenge"
        | "mmlu" => "conversation",
        _ => return None,
    })
}

fn categorized(body: &Value) -> Category {
    let v = if body.get("messages").is_none() && body.get("input").is_some() {
        RequestView::responses(body)
    } else {
        RequestView::chat(body)
    }
    .unwrap();
    let h = Hints::from_metadata(&v);
    let s = Signals::compute(&v, &h);
    categorize(&v, &s, &h)
}

/// Example workload application → category.
fn app_category(app: &str) -> Option<&'static str> {
    Some(match app {
        "triage" => "classification",
        "extract" => "extraction",
        "digest" => "summarization",
        "writer" => "writing",
        "code" => "coding",
        "tutor" => "reasoning",
        "support" => "conversation",
        "agent" => "agentic",
        _ => return None,
    })
}

/// One labelled prompt: its set, its label, what the categorizer said.
struct Labelled {
    set: &'static str,
    want: &'static str,
    got: Category,
}

#[derive(Default)]
struct Tally {
    n: usize,
    ok: usize,
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "../shared/data".into()),
    );
    let mut per_task: BTreeMap<String, Tally> = BTreeMap::new();
    let mut confusion: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut split_tally: BTreeMap<&str, Tally> = BTreeMap::new();
    // TIERWISE_SHOW_MISSES=TASK prints some prompts of that task the categorizer gets wrong.
    let show = std::env::var("TIERWISE_SHOW_MISSES").ok();
    let mut shown = 0;
    let start = std::time::Instant::now();
    let mut calls = 0usize;
    let mut all: Vec<Labelled> = Vec::new();
    for (split, file) in [
        ("train", "outcomes_train.jsonl.gz"),
        ("test", "outcomes_test.jsonl.gz"),
    ] {
        for r in read_jsonl(&dir.join("routing/llmrouter").join(file)) {
            let Some(task) = r["category"].as_str() else {
                continue;
            };
            let Some(want) = expected(task) else { continue };
            let c = categorized(&json!({"model": "auto", "messages": r["messages"]}));
            let got = c.name.to_string();
            all.push(Labelled {
                set: "llmrouter",
                want,
                got: c,
            });
            calls += 1;
            let t = per_task.entry(task.to_string()).or_default();
            t.n += 1;
            let s = split_tally.entry(split).or_default();
            s.n += 1;
            if got == want {
                t.ok += 1;
                s.ok += 1;
            }
            if show.as_deref() == Some(task) && got != want && shown < 12 {
                shown += 1;
                let text = r["messages"][0]["content"].as_str().unwrap_or("");
                println!(
                    "MISS {task} → {got}: {:?}",
                    text.chars().take(300).collect::<String>()
                );
            }
            *confusion.entry((want.to_string(), got)).or_default() += 1;
        }
    }
    let tool_sets = [("bfcl", "tools/bfcl"), ("seal_tools", "tools/seal_tools")];
    for (name, sub) in tool_sets {
        let tools: BTreeMap<String, Value> = read_jsonl(&dir.join(sub).join("tools.jsonl"))
            .into_iter()
            .map(|t| (t["function"]["name"].as_str().unwrap().to_string(), t))
            .collect();
        for q in read_jsonl(&dir.join(sub).join("queries.jsonl")) {
            let names = q
                .get("candidates")
                .or_else(|| q.get("gold_tools"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let offered: Vec<Value> = names
                .iter()
                .filter_map(|n| tools.get(n.as_str().unwrap_or("")).cloned())
                .collect();
            let c =
                categorized(&json!({"model": "auto", "messages": q["messages"], "tools": offered}));
            let got = c.name.to_string();
            all.push(Labelled {
                set: "tools",
                want: "agentic",
                got: c,
            });
            calls += 1;
            let t = per_task.entry(format!("{name} (with tools)")).or_default();
            t.n += 1;
            if got == "agentic" {
                t.ok += 1;
            }
        }
    }
    let workload = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workload.jsonl.gz");
    for line in read_jsonl(&workload) {
        let Some(want) = line["metadata"]["app"].as_str().and_then(app_category) else {
            continue;
        };
        let mut body = line["request"].clone();
        if !body.is_object() || (body.get("messages").is_none() && body.get("input").is_none()) {
            continue; // a response-only line: nothing to categorize
        }
        body["model"] = json!("auto");
        let c = categorized(&body);
        calls += 1;
        let t = per_task.entry(format!("workload {want}")).or_default();
        t.n += 1;
        t.ok += usize::from(c.name == want);
        all.push(Labelled {
            set: "workload",
            want,
            got: c,
        });
    }
    let secs = start.elapsed().as_secs_f64();
    let llm: Tally = split_tally.values().fold(Tally::default(), |a, b| Tally {
        n: a.n + b.n,
        ok: a.ok + b.ok,
    });
    println!("Categorizer agreement with real task labels\n");
    println!(
        "LLMRouter (5 of 9 categories covered): {}/{} = {:.1}%",
        llm.ok,
        llm.n,
        100.0 * llm.ok as f64 / llm.n as f64
    );
    for (split, t) in &split_tally {
        println!(
            "  {split}: {}/{} = {:.1}%",
            t.ok,
            t.n,
            100.0 * t.ok as f64 / t.n as f64
        );
    }
    println!("\nper task:");
    for (task, t) in &per_task {
        println!(
            "  {task:<28} {:>5}/{:<5} {:>5.1}%  (expected {})",
            t.ok,
            t.n,
            100.0 * t.ok as f64 / t.n as f64,
            expected(task)
                .or_else(|| task.strip_prefix("workload "))
                .unwrap_or("agentic")
        );
    }
    for (title, sets) in [
        (
            "public sets (LLMRouter, BFCL, Seal-Tools)",
            &["llmrouter", "tools"][..],
        ),
        ("example workload (labels: metadata.app)", &["workload"][..]),
    ] {
        println!("\nper category, {title}:");
        println!(
            "  {:<15} {:>6} {:>7} {:>9} {:>6} {:>12}",
            "category", "n", "recall", "precision", "sure", "sure agree"
        );
        let rows: Vec<&Labelled> = all.iter().filter(|l| sets.contains(&l.set)).collect();
        for c in tierwise_audit::category::CATEGORIES {
            let labelled: Vec<&&Labelled> = rows.iter().filter(|l| l.want == *c).collect();
            let named: Vec<&&Labelled> = rows.iter().filter(|l| l.got.name == *c).collect();
            if labelled.is_empty() && named.is_empty() {
                continue;
            }
            let pct = |a: usize, b: usize| {
                if b == 0 {
                    "-".to_string()
                } else {
                    format!("{:.1}%", 100.0 * a as f64 / b as f64)
                }
            };
            let hit = labelled.iter().filter(|l| l.got.name == l.want).count();
            let right = named.iter().filter(|l| l.got.name == l.want).count();
            let sure: Vec<_> = named.iter().filter(|l| l.got.sure).collect();
            let sure_right = sure.iter().filter(|l| l.got.name == l.want).count();
            println!(
                "  {c:<15} {:>6} {:>7} {:>9} {:>6} {:>12}",
                labelled.len(),
                pct(hit, labelled.len()),
                pct(right, named.len()),
                pct(sure.len(), named.len()),
                format!(
                    "{} ({sure_right}/{})",
                    pct(sure_right, sure.len()),
                    sure.len()
                ),
            );
        }
        let sure: Vec<_> = rows.iter().filter(|l| l.got.sure).collect();
        let sure_right = sure.iter().filter(|l| l.got.name == l.want).count();
        let ok = rows.iter().filter(|l| l.got.name == l.want).count();
        println!(
            "  all             {:>6} {:>7}           {:>6} {:>12}",
            rows.len(),
            format!("{:.1}%", 100.0 * ok as f64 / rows.len().max(1) as f64),
            format!(
                "{:.1}%",
                100.0 * sure.len() as f64 / rows.len().max(1) as f64
            ),
            format!(
                "{:.1}% ({sure_right}/{})",
                100.0 * sure_right as f64 / sure.len().max(1) as f64,
                sure.len()
            ),
        );
    }
    println!("\nconfusion (expected → got: count), LLMRouter:");
    for ((want, got), n) in &confusion {
        if want != got {
            println!("  {want:<13} → {got:<15} {n}");
        }
    }
    println!(
        "\n{calls} prompts in {secs:.2} s ({:.0} prompts/s, signals + categorizer)",
        calls as f64 / secs
    );
}
