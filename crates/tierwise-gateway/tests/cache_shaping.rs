//! Prompt-cache shaping against the mock's provider-cache simulation
//! (`tierwise_mock::provider_cache`): the cached share of prompt tokens with `[cache] shape`
//! on versus off, on generated agents sharing a long head and on a replay of the example
//! workload. The figures are in `docs/benchmarks.md`; print them with
//! `cargo nextest run -p tierwise-gateway --test cache_shaping --no-capture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "tests may unwrap, panic and print the figures they measure"
)]

mod common;

use std::io::{BufRead, BufReader};

use common::{Harness, Setup};
use serde_json::{Value, json};
use tierwise_mock::Mock;
use tierwise_mock::provider_cache::ProviderCache;

/// Sums `(cached, prompt)` tokens over the answers to `bodies` (chat, or Responses when a body
/// has `input`), sent one after another; also returns the bodies the mock received.
async fn replay(shape: bool, bodies: &[Value]) -> (u64, u64, Vec<Value>) {
    let setup = Setup {
        mock: Mock::with_provider_cache(ProviderCache::default()),
        ..Setup::default()
    }
    .edit("shape = true", &format!("shape = {shape}"));
    let h = Harness::with(setup).await;
    let (mut cached, mut prompt) = (0, 0);
    for body in bodies {
        let responses = body.get("input").is_some();
        let path = if responses {
            "/v1/responses"
        } else {
            "/v1/chat/completions"
        };
        let resp = h.post(path, body).await;
        let status = resp.status();
        if status != 200 {
            panic!("{status}: {}", resp.text().await.unwrap());
        }
        let v: Value = resp.json().await.unwrap();
        let (c, p) = if responses {
            (
                "/usage/input_tokens_details/cached_tokens",
                "/usage/input_tokens",
            )
        } else {
            (
                "/usage/prompt_tokens_details/cached_tokens",
                "/usage/prompt_tokens",
            )
        };
        cached += v.pointer(c).and_then(Value::as_u64).unwrap();
        prompt += v.pointer(p).and_then(Value::as_u64).unwrap();
    }
    let sent = h.mock.mock.requests().into_iter().map(|r| r.body).collect();
    (cached, prompt, sent)
}

fn share(cached: u64, prompt: u64) -> f64 {
    cached as f64 / prompt.max(1) as f64
}

/// Eight agents built on one framework: the same 6 tools and a shared ~700-token head, then
/// each agent's own ~900-token instructions; 240 calls, agents interleaved.
fn agents() -> Vec<Value> {
    let tools: Vec<Value> = (0..6)
        .map(|i| {
            json!({"type": "function", "function": {
                "name": format!("tool_{i}"),
                "description": format!("Framework tool number {i}: looks records up by id and returns them."),
                "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}})
        })
        .collect();
    let head: String = (0..120)
        .map(|i| format!("Rule {i}: be precise and cite sources. "))
        .collect();
    (0..240)
        .map(|n| {
            let agent = (n * 5) % 8;
            let own: String = (0..150)
                .map(|i| format!("Agent {agent} duty {i} covers area {}. ", i * agent + 3))
                .collect();
            json!({"model": "standard", "tools": tools,
                "messages": [
                    {"role": "system", "content": format!("{head}\n{own}")},
                    {"role": "user", "content": format!("Question {n} for agent {agent}.")}]})
        })
        .collect()
}

#[tokio::test]
async fn shaping_raises_the_cached_share_of_agents_sharing_a_head() {
    let bodies = agents();
    let (c_off, p_off, sent_off) = replay(false, &bodies).await;
    let (c_on, p_on, sent_on) = replay(true, &bodies).await;
    assert_eq!(p_on, p_off, "the same prompts were sent");
    assert!(sent_off.iter().all(|b| b.get("prompt_cache_key").is_none()));
    let keys: std::collections::HashSet<&str> = sent_on
        .iter()
        .map(|b| b["prompt_cache_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 8, "one key per agent's stable prefix");
    let (off, on) = (share(c_off, p_off), share(c_on, p_on));
    println!("agents: cached share off {off:.3} on {on:.3} ({p_on} prompt tokens)");
    assert!(on > off + 0.10, "off {off:.3}, on {on:.3}");
}

#[tokio::test]
async fn a_clients_own_prompt_cache_key_is_kept() {
    let mut bodies = agents();
    bodies.truncate(3);
    for b in &mut bodies {
        b["prompt_cache_key"] = json!("client-key");
    }
    let (_, _, sent) = replay(true, &bodies).await;
    assert!(sent.iter().all(|b| b["prompt_cache_key"] == "client-key"));
}

/// The first 600 calls of `examples/workload.jsonl.gz`, through the default config (tool
/// pruning on). Their stable prefixes already differ within the first 256 tokens, so the
/// provider routes them apart without a key: shaping must not lower the share.
#[tokio::test]
async fn workload_replay_keeps_or_raises_the_cached_share() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/workload.jsonl.gz"
    );
    let file = std::fs::File::open(path).unwrap();
    let lines = BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let bodies: Vec<Value> = lines
        .take(600)
        .map(|l| {
            let row: Value = serde_json::from_str(&l.unwrap()).unwrap();
            let mut req = row["request"].clone();
            req["model"] = json!("standard");
            req.as_object_mut().unwrap().remove("stream");
            req
        })
        .collect();
    let (c_off, p_off, _) = replay(false, &bodies).await;
    let (c_on, p_on, _) = replay(true, &bodies).await;
    let (off, on) = (share(c_off, p_off), share(c_on, p_on));
    println!("workload: cached share off {off:.3} on {on:.3} ({p_on} prompt tokens)");
    assert!(c_off > 0, "the workload has cacheable prefixes");
    assert!(on >= off - 0.01, "off {off:.3}, on {on:.3}");
}
