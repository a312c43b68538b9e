//! Files (`/v1/files`) and Batches (`/v1/batches`).
//!
//! A batch is `validating` when created, `in_progress` on its first retrieve and `completed` on
//! the second: then every line of the input file has been answered as the endpoint would answer
//! it (model-name behaviours such as `error-500` apply per line), successes in the output file,
//! failures in the error file, in OpenAI's batch output format.

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{Mock, error, lock, now_secs};

#[derive(Debug, Clone)]
pub(crate) struct StoredFile {
    object: Value,
    content: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Batch {
    object: Value,
}

fn not_found(what: &str, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("No such {what}: '{id}'"),
        "invalid_request_error",
        None,
    )
}

fn bad_request(message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        None,
    )
}

impl Mock {
    /// Stores a file and returns its object.
    pub(crate) fn put_file(&self, filename: &str, purpose: &str, content: Bytes) -> Value {
        let id = format!("file-mock-{}", self.next_id());
        let object = json!({"id": id, "object": "file", "bytes": content.len(),
            "created_at": now_secs(), "filename": filename, "purpose": purpose,
            "status": "processed", "status_details": null});
        lock(&self.inner.files).insert(
            id,
            StoredFile {
                object: object.clone(),
                content,
            },
        );
        object
    }

    /// Content of a stored file (tests read batch results with it).
    pub fn file_content(&self, id: &str) -> Option<Bytes> {
        lock(&self.inner.files).get(id).map(|f| f.content.clone())
    }
}

pub(crate) async fn create_file(
    State(mock): State<Mock>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if let Some(rejection) = mock.key_rejection(&headers) {
        return rejection;
    }
    let mut purpose = None;
    let mut file = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_string();
                let filename = field.file_name().unwrap_or("upload.jsonl").to_string();
                let Ok(data) = field.bytes().await else {
                    return bad_request("could not read the multipart body");
                };
                match name.as_str() {
                    "purpose" => purpose = Some(String::from_utf8_lossy(&data).into_owned()),
                    "file" => file = Some((filename, data)),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return bad_request(&format!("invalid multipart body: {e}")),
        }
    }
    let (Some(purpose), Some((filename, data))) = (purpose, file) else {
        return bad_request("'file' and 'purpose' are required");
    };
    axum::Json(mock.put_file(&filename, &purpose, data)).into_response()
}

pub(crate) async fn get_file(State(mock): State<Mock>, Path(id): Path<String>) -> Response {
    match lock(&mock.inner.files).get(&id) {
        Some(f) => axum::Json(f.object.clone()).into_response(),
        None => not_found("file", &id),
    }
}

pub(crate) async fn file_content(State(mock): State<Mock>, Path(id): Path<String>) -> Response {
    match mock.file_content(&id) {
        Some(c) => c.into_response(),
        None => not_found("file", &id),
    }
}

pub(crate) async fn create_batch(
    State(mock): State<Mock>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    if let Some(rejection) = mock.key_rejection(&headers) {
        return rejection;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        return bad_request("We could not parse the JSON body of your request.");
    };
    let Some(input) = body.get("input_file_id").and_then(Value::as_str) else {
        return bad_request("Missing required parameter: 'input_file_id'.");
    };
    let endpoint = body.get("endpoint").and_then(Value::as_str).unwrap_or("");
    if !matches!(endpoint, "/v1/chat/completions" | "/v1/responses") {
        return bad_request(&format!("Invalid 'endpoint': {endpoint:?}."));
    }
    let Some(content) = mock.file_content(input) else {
        return not_found("file", input);
    };
    let total = content
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    let id = format!("batch_mock_{}", mock.next_id());
    let now = now_secs();
    let object = json!({
        "id": id, "object": "batch", "endpoint": endpoint, "errors": null,
        "input_file_id": input,
        "completion_window": body.get("completion_window").cloned().unwrap_or(json!("24h")),
        "status": "validating", "output_file_id": null, "error_file_id": null,
        "created_at": now, "in_progress_at": null, "expires_at": now + 86_400,
        "finalizing_at": null, "completed_at": null, "failed_at": null, "expired_at": null,
        "cancelling_at": null, "cancelled_at": null,
        "request_counts": {"total": total, "completed": 0, "failed": 0},
        "metadata": body.get("metadata").cloned().unwrap_or(Value::Null)
    });
    lock(&mock.inner.batches).insert(
        id,
        Batch {
            object: object.clone(),
        },
    );
    axum::Json(object).into_response()
}

/// Answers every line of the input file; returns (output JSONL, error JSONL, completed, failed).
fn run_lines(mock: &Mock, endpoint: &str, content: &[u8]) -> (String, String, u64, u64) {
    let (mut out, mut err) = (String::new(), String::new());
    let (mut ok, mut failed) = (0, 0);
    for line in content.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let req_id = mock.next_id();
        let parsed: Option<Value> = serde_json::from_slice(line).ok();
        let custom_id = parsed
            .as_ref()
            .and_then(|v| v.get("custom_id"))
            .cloned()
            .unwrap_or(Value::Null);
        let result = match parsed.as_ref().and_then(|v| v.get("body")) {
            Some(body) if endpoint == "/v1/responses" => crate::responses::batch_line(mock, body),
            Some(body) => crate::chat::batch_line(mock, body),
            None => (
                400,
                json!({"error": {"message": "invalid batch line", "type": "invalid_request_error", "param": null, "code": "invalid_json"}}),
            ),
        };
        let (status, body) = result;
        let record = json!({"id": format!("batch_req_mock_{req_id}"), "custom_id": custom_id,
            "response": {"status_code": status, "request_id": format!("req_mock_{req_id}"), "body": body},
            "error": null});
        if status == 200 {
            ok += 1;
            out.push_str(&record.to_string());
            out.push('\n');
        } else {
            failed += 1;
            err.push_str(&record.to_string());
            err.push('\n');
        }
    }
    (out, err, ok, failed)
}

pub(crate) async fn get_batch(State(mock): State<Mock>, Path(id): Path<String>) -> Response {
    let Some(batch) = lock(&mock.inner.batches).get(&id).cloned() else {
        return not_found("batch", &id);
    };
    let mut object = batch.object;
    let now = now_secs();
    match object.get("status").and_then(Value::as_str) {
        Some("validating") => {
            object["status"] = json!("in_progress");
            object["in_progress_at"] = json!(now);
        }
        Some("in_progress") => {
            let input = object
                .get("input_file_id")
                .and_then(Value::as_str)
                .unwrap_or("");
            let endpoint = object
                .get("endpoint")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let content = mock.file_content(input).unwrap_or_default();
            let (out, err, ok, failed) = run_lines(&mock, &endpoint, &content);
            let out_file = mock.put_file("batch_output.jsonl", "batch_output", Bytes::from(out));
            object["output_file_id"] = out_file.get("id").cloned().unwrap_or(Value::Null);
            if failed > 0 {
                let err_file =
                    mock.put_file("batch_errors.jsonl", "batch_output", Bytes::from(err));
                object["error_file_id"] = err_file.get("id").cloned().unwrap_or(Value::Null);
            }
            object["request_counts"]["completed"] = json!(ok);
            object["request_counts"]["failed"] = json!(failed);
            object["status"] = json!("completed");
            object["finalizing_at"] = json!(now);
            object["completed_at"] = json!(now);
        }
        _ => {}
    }
    lock(&mock.inner.batches).insert(
        id,
        Batch {
            object: object.clone(),
        },
    );
    axum::Json(object).into_response()
}

pub(crate) async fn cancel_batch(State(mock): State<Mock>, Path(id): Path<String>) -> Response {
    let mut batches = lock(&mock.inner.batches);
    let Some(batch) = batches.get_mut(&id) else {
        return not_found("batch", &id);
    };
    if batch.object.get("status").and_then(Value::as_str) != Some("completed") {
        batch.object["status"] = json!("cancelled");
        batch.object["cancelled_at"] = json!(now_secs());
    }
    axum::Json(batch.object.clone()).into_response()
}
