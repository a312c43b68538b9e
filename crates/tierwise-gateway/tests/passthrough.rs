//! Endpoints tierwise does not route (Files, Batches, anything else under /v1) are relayed to
//! the provider unchanged: bodies, statuses and errors as the provider sent them.
#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

mod common;

use common::{Harness, Setup};
use serde_json::{Value, json};
use tierwise_mock::Mock;

#[tokio::test]
async fn files_and_batches_are_relayed_with_the_configured_key() {
    let mut h = Harness::with(Setup {
        mock: Mock::with_api_key("sk-upstream"),
        api_key: Some("sk-upstream".into()),
        ..Setup::default()
    })
    .await;
    let line = json!({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "gpt-5.4-nano", "messages": [{"role": "user", "content": "hi"}]}});
    let jsonl = format!("{line}\n");
    // A multipart upload as the SDKs send it, written out by hand.
    let boundary = "tierwise-test-boundary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\
         Content-Type: application/jsonl\r\n\r\n{jsonl}\r\n--{boundary}--\r\n"
    );
    let r = h
        .client
        .post(h.url("/v1/files"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let file: Value = r.json().await.unwrap();
    let file_id = file["id"].as_str().unwrap().to_string();
    assert_eq!(file["purpose"], "batch");

    // The uploaded bytes reached the provider intact.
    let r = h
        .client
        .get(h.url(&format!("/v1/files/{file_id}/content")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), jsonl);

    let r = h
        .post(
            "/v1/batches",
            &json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                    "completion_window": "24h"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let batch: Value = r.json().await.unwrap();
    let batch_id = batch["id"].as_str().unwrap();
    let r = h
        .client
        .get(h.url(&format!("/v1/batches/{batch_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["id"], batch_id);

    let metrics = h.metrics().await;
    assert!(
        metrics.contains(
            r#"tierwise_passthrough_total{resource="files",method="POST",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"resource="batches",method="GET",status="200"} 1"#));
    h.shutdown().await;
}

#[tokio::test]
async fn provider_errors_and_unknown_paths_pass_back_unchanged() {
    let mut h = Harness::with(Setup {
        mock: Mock::with_api_key("sk-client"),
        ..Setup::default()
    })
    .await;
    // No key configured: the client's own Authorization is what the provider checks.
    let r = h
        .client
        .get(h.url("/v1/batches/batch_missing"))
        .bearer_auth("sk-client")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");

    let r = h
        .client
        .post(h.url("/v1/batches"))
        .bearer_auth("sk-wrong")
        .json(&json!({"input_file_id": "file-x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A path the provider does not know: its own 404, not tierwise's.
    let r = h.client.get(h.url("/v1/nothing?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Invalid URL");
    h.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_provider_is_a_502_in_openai_shape() {
    let mut h = Harness::with(Setup {
        base_url: Some("http://127.0.0.1:9/v1".into()),
        ..Setup::default()
    })
    .await;
    let r = h.client.get(h.url("/v1/files")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    h.shutdown().await;
}

/// A one-shot upstream that records the request head it receives and answers 200.
async fn recording_upstream() -> (String, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = br#"{"object": "list", "data": []}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        sock.write_all(reply.as_bytes()).await.unwrap();
        sock.write_all(body).await.unwrap();
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    });
    (format!("http://{addr}/v1"), task)
}

#[tokio::test]
async fn a_get_reaches_the_provider_with_its_query_and_no_body() {
    let (base_url, upstream) = recording_upstream().await;
    let mut h = Harness::with(Setup {
        base_url: Some(base_url),
        ..Setup::default()
    })
    .await;
    let r = h
        .client
        .get(h.url("/v1/files?purpose=batch"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let head = upstream.await.unwrap();
    assert!(
        head.starts_with("get /v1/files?purpose=batch http/1.1"),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding"), "{head}");
    h.shutdown().await;
}
