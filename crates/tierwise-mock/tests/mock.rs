//! The mock over real TCP: what tierwise's gateway tests rely on.
#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use futures::StreamExt;
use serde_json::{Value, json};
use tierwise_mock::{Mock, MockServer};

async fn post(server: &MockServer, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello world"}]})
}

#[tokio::test]
async fn plain_chat_has_usage_and_counts_calls() {
    let server = MockServer::start(Mock::new()).await.unwrap();
    let resp = post(&server, "/chat/completions", chat("gpt-5.4-mini")).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "gpt-5.4-mini");
    assert_eq!(v["usage"]["prompt_tokens"], 9);
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        64
    );
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock answer from gpt-5.4-mini to: hello world"
    );
    assert_eq!(server.mock.calls("gpt-5.4-mini"), 1);
    assert_eq!(server.mock.requests()[0].body, chat("gpt-5.4-mini"));
}

#[tokio::test]
async fn stream_ends_with_usage_chunk_only_when_asked() {
    let server = MockServer::start(Mock::new()).await.unwrap();
    let mut body = chat("m");
    body["stream"] = json!(true);
    let text = post(&server, "/chat/completions", body.clone())
        .await
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(!text.contains("\"usage\""));
    body["stream_options"] = json!({"include_usage": true});
    let text = post(&server, "/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let last: Value = serde_json::from_str(&events[events.len() - 2][6..]).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 9);
}

#[tokio::test]
async fn errors_and_flakiness_by_model_name() {
    let server = MockServer::start(Mock::new()).await.unwrap();
    let r = post(&server, "/chat/completions", chat("error-429")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after-ms"], "5");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(
        post(&server, "/chat/completions", chat("error-500"))
            .await
            .status(),
        500
    );
    for expected in [503, 503, 200, 200] {
        let r = post(&server, "/chat/completions", chat("flaky-2-mini")).await;
        assert_eq!(r.status(), expected);
    }
    assert_eq!(server.mock.calls("flaky-2-mini"), 4);
    let r = post(&server, "/chat/completions", chat("garbage-x")).await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    let r = post(&server, "/chat/completions", json!({"model": "m"})).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn gated_stream_holds_after_the_first_piece() {
    let server = MockServer::start(Mock::new()).await.unwrap();
    let mut body = chat("gated-m");
    body["stream"] = json!(true);
    let resp = post(&server, "/chat/completions", body).await;
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\":\"Mock\"") {
        seen.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
    }
    // Held: nothing more arrives until released.
    let held = tokio::time::timeout(std::time::Duration::from_millis(50), stream.next()).await;
    assert!(held.is_err(), "the gate did not hold");
    server.mock.release();
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(seen.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn responses_json_and_stream() {
    let server = MockServer::start(Mock::new()).await.unwrap();
    let v: Value = post(
        &server,
        "/responses",
        json!({"model": "m", "input": "hello world", "reasoning": {"effort": "high"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 256);
    let text = post(
        &server,
        "/responses",
        json!({"model": "m", "input": "hello", "stream": true}),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(text.starts_with("event: response.created\n"));
    assert!(text.contains("event: response.completed\n"));
}

#[tokio::test]
async fn files_and_batches() {
    let server = MockServer::start(Mock::new()).await.unwrap();
    let client = reqwest::Client::new();
    let lines = [
        json!({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": chat("gpt-5.4-nano")}),
        json!({"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": chat("error-500")}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part(
            "file",
            reqwest::multipart::Part::bytes(lines.into_bytes()).file_name("in.jsonl"),
        );
    let file: Value = client
        .post(format!("{}/files", server.base_url()))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let batch: Value = post(
        &server,
        "/batches",
        json!({"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(batch["status"], "validating");
    assert_eq!(batch["request_counts"]["total"], 2);
    let url = format!(
        "{}/batches/{}",
        server.base_url(),
        batch["id"].as_str().unwrap()
    );
    let b1: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(b1["status"], "in_progress");
    let b2: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(b2["status"], "completed");
    assert_eq!(b2["request_counts"]["completed"], 1);
    assert_eq!(b2["request_counts"]["failed"], 1);
    let out = client
        .get(format!(
            "{}/files/{}/content",
            server.base_url(),
            b2["output_file_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["custom_id"], "a");
    assert_eq!(line["response"]["status_code"], 200);
    assert_eq!(server.mock.calls("gpt-5.4-nano"), 1);
}

#[tokio::test]
async fn api_key_is_required_when_configured() {
    let server = MockServer::start(Mock::with_api_key("sk-test"))
        .await
        .unwrap();
    assert_eq!(
        post(&server, "/chat/completions", chat("m")).await.status(),
        401
    );
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth("sk-test")
        .json(&chat("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn prompt_cache_key_writes_then_reads_and_responses_are_stored() {
    let server = MockServer::start(Mock::new()).await.unwrap();
    // ~1,500 tokens: above the 1,024-token cache minimum.
    let long = "the quick brown fox jumps over the lazy dog ".repeat(160);
    let body = json!({"model": "m", "input": long, "prompt_cache_key": "k1",
        "reasoning": {"effort": "high"}});
    let first: Value = post(&server, "/responses", body.clone())
        .await
        .json()
        .await
        .unwrap();
    let u = &first["usage"];
    let prompt = u["input_tokens"].as_u64().unwrap();
    assert!(prompt >= 1024, "{prompt}");
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        u["input_tokens_details"]["cache_write_tokens"],
        prompt / 128 * 128
    );
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 256);
    let second: Value = post(&server, "/responses", body)
        .await
        .json()
        .await
        .unwrap();
    let u = &second["usage"];
    assert_eq!(
        u["input_tokens_details"]["cached_tokens"],
        prompt / 128 * 128
    );
    assert!(
        u["input_tokens_details"]
            .get("cache_write_tokens")
            .is_none()
    );
    // chat: the same rule, its own key
    let chat_body = json!({"model": "m", "prompt_cache_key": "k2",
        "messages": [{"role": "user", "content": long}]});
    let c: Value = post(&server, "/chat/completions", chat_body)
        .await
        .json()
        .await
        .unwrap();
    assert!(c["usage"]["prompt_tokens_details"]["cache_write_tokens"].as_u64() > Some(1000));

    // stored: retrievable, usable as previous_response_id; an unknown id is refused
    let id = first["id"].as_str().unwrap();
    let got: Value = reqwest::get(format!("{}/responses/{id}", server.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["model"], "m");
    let follow = json!({"model": "m", "input": "and then?", "previous_response_id": id});
    assert_eq!(post(&server, "/responses", follow).await.status(), 200);
    let bad = json!({"model": "m", "input": "x", "previous_response_id": "resp_nope"});
    let r = post(&server, "/responses", bad).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "previous_response_not_found");
    let r = reqwest::get(format!("{}/responses/resp_nope", server.base_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
