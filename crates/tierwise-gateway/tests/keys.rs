//! Keys mode on one gateway (SQLite store): authentication, the admin API, tier caps,
//! budgets and rate limits, with their OpenAI-shaped errors and headers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use common::{Harness, Setup, header, user};
use rust_decimal::Decimal;
use serde_json::{Value, json};

const ADMIN: &str = "admin-secret-for-tests";

fn keyed() -> Setup {
    Setup::default()
        .section("[auth]\nmode = \"keys\"\nkey_cache_ms = 0")
        .env("TIERWISE_ADMIN_KEY", ADMIN)
}

async fn admin(
    h: &Harness,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = h.client.request(method, h.url(path)).bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// Creates a key through the admin API; returns (id, key).
async fn create_key(h: &Harness, body: Value) -> (String, String) {
    let resp = admin(h, reqwest::Method::POST, "/admin/keys", Some(body)).await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

async fn chat_as(h: &Harness, key: &str, body: &Value) -> reqwest::Response {
    h.client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A call forced to one tier (no fallbacks: the estimate is that tier's).
async fn forced_as(h: &Harness, key: &str, tier: &str, body: &Value) -> reqwest::Response {
    h.client
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-tierwise-tier", tier)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn error_of(resp: reqwest::Response) -> Value {
    let v: Value = resp.json().await.unwrap();
    v["error"].clone()
}

#[tokio::test]
async fn keys_mode_refuses_missing_malformed_unknown_and_revoked_keys() {
    let mut setup = keyed();
    setup.api_key = Some("sk-provider".into());
    let h = Harness::with(setup).await;
    let body = user("auto", "hello");
    // No key, a malformed key, a well-formed unknown key: 401, OpenAI-shaped.
    let none = h.chat(&body).await;
    assert_eq!(none.status(), 401);
    let e = error_of(none).await;
    assert_eq!(e["code"], "invalid_api_key");
    assert_eq!(e["type"], "invalid_request_error");
    for bad in [
        "sk-provider",
        "tw-short",
        "tw-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(chat_as(&h, bad, &body).await.status(), 401, "{bad}");
    }
    let unknown = format!("tw-{}", "A".repeat(32));
    let resp = chat_as(&h, &unknown, &body).await;
    assert_eq!(resp.status(), 401);
    assert!(
        error_of(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("no such")
    );

    // A good key works; the provider sees the gateway's key, never the client's.
    let (id, key) = create_key(&h, json!({"name": "app"})).await;
    let resp = chat_as(&h, &key, &body).await;
    assert_eq!(resp.status(), 200);
    let seen = h.mock.mock.requests();
    let auth = seen.last().unwrap().headers.get("authorization").unwrap();
    assert_eq!(auth, "Bearer sk-provider");
    // Passthrough routes need a key too, and do not forward it.
    let files = h.client.get(h.url("/v1/files")).send().await.unwrap();
    assert_eq!(files.status(), 401);
    let files = h
        .client
        .get(h.url("/v1/files"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_ne!(files.status(), 401);
    for r in h.mock.mock.requests() {
        assert_eq!(
            r.headers.get("authorization").unwrap(),
            "Bearer sk-provider"
        );
    }

    // Revoked → 401 (cache off in this test: at once).
    let resp = admin(
        &h,
        reqwest::Method::DELETE,
        &format!("/admin/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = chat_as(&h, &key, &body).await;
    assert_eq!(resp.status(), 401);
    assert!(
        error_of(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );

    // Expired → 401.
    let (_, old) = create_key(
        &h,
        json!({"name": "old", "expires": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let resp = chat_as(&h, &old, &body).await;
    assert_eq!(resp.status(), 401);
    assert!(
        error_of(resp).await["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // Log rows carry the key id; refused calls carry none.
    let rows = h.rows().await;
    let ok: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].key_id.as_deref(), Some(id.as_str()));
    assert!(
        rows.iter()
            .filter(|r| r.status == 401)
            .all(|r| r.key_id.is_none())
    );
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_key_and_checks_its_input() {
    let h = Harness::with(keyed()).await;
    let anon = h.client.get(h.url("/admin/keys")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    let wrong = h
        .client
        .get(h.url("/admin/keys"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    for (body, needle) in [
        (json!({"name": "a", "budget_usd_day": "-1"}), "negative"),
        (
            json!({"name": "a", "budget_usd_day": "ten"}),
            "not a decimal",
        ),
        (json!({"name": "a", "team": "ghosts"}), "ghosts"),
        (json!({"name": "a", "max_tier": "huge"}), "unknown tier"),
        (json!({"name": "a", "expires": "tomorrow"}), "RFC 3339"),
        (json!({"name": "a", "colour": "red"}), "unknown field"),
        (json!({"budget_usd_day": 1}), "name"),
    ] {
        let resp = admin(&h, reqwest::Method::POST, "/admin/keys", Some(body.clone())).await;
        assert_eq!(resp.status(), 400, "{body}");
        let e = error_of(resp).await;
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{body}: {e}"
        );
    }

    let team = admin(
        &h,
        reqwest::Method::POST,
        "/admin/teams",
        Some(json!({"name": "research", "budget_usd_month": "100"})),
    )
    .await;
    assert_eq!(team.status(), 201);
    let (id, key) = create_key(
        &h,
        json!({"name": "app", "team": "research", "budget_usd_day": 2.5, "rpm": 60, "tiers": "nano,mini"}),
    )
    .await;
    let list: Value = admin(&h, reqwest::Method::GET, "/admin/keys", None)
        .await
        .json()
        .await
        .unwrap();
    let listed = list["data"].to_string();
    assert!(listed.contains(&id));
    assert!(!listed.contains(&key[3..]), "a listing shows the key");
    let patched: Value = admin(
        &h,
        reqwest::Method::PATCH,
        &format!("/admin/keys/{id}"),
        Some(json!({"budget_usd_day": null, "max_tier": "mini"})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(patched.get("budget_usd_day").is_none(), "{patched}");
    assert_eq!(patched["max_tier"], "mini");
    let shown = admin(
        &h,
        reqwest::Method::GET,
        "/admin/keys/key_000000000000",
        None,
    )
    .await;
    assert_eq!(shown.status(), 404);
}

#[tokio::test]
async fn a_keys_max_tier_caps_the_decision_and_says_so() {
    let h = Harness::with(keyed()).await;
    let (_, key) = create_key(&h, json!({"name": "cheap", "max_tier": "mini"})).await;
    let resp = chat_as(&h, &key, &user("flagship", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-tierwise-tier"), "mini");
    let reason = header(&resp, "x-tierwise-reason").to_string();
    assert!(reason.contains("capped by key: max tier mini"), "{reason}");
    assert_eq!(h.mock.mock.calls("gpt-5.4-mini"), 1);
    // A model outside the ladder is refused for a tier-limited key.
    let resp = chat_as(&h, &key, &user("gpt-4o", "hello")).await;
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn budgets_stop_calls_with_insufficient_quota_and_a_reset_time() {
    let h = Harness::with(keyed()).await;
    // A nano call with max_tokens 100 is estimated at (prompt + 100 output) tokens at nano's
    // prices (~$0.000127); $0.0002 holds one estimate, and a few calls of what they cost.
    let (id, key) = create_key(&h, json!({"name": "small", "budget_usd_day": "0.0002"})).await;
    let body = json!({"model": "nano", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    let first = forced_as(&h, &key, "nano", &body).await;
    assert_eq!(first.status(), 200);
    let remaining: Decimal = header(&first, "x-tierwise-budget-remaining-usd")
        .parse()
        .unwrap();
    assert!(
        remaining < Decimal::new(4, 4) && remaining > Decimal::ZERO,
        "{remaining}"
    );
    let mut refused = None;
    for _ in 0..50 {
        let resp = forced_as(&h, &key, "nano", &body).await;
        if resp.status() == 429 {
            refused = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 200);
    }
    let resp = refused.expect("the budget never stopped a call");
    let e = error_of(resp).await;
    assert_eq!(e["type"], "insufficient_quota");
    assert_eq!(e["code"], "insufficient_quota");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("resets at") && msg.contains("T00:00:00Z"),
        "{msg}"
    );
    assert!(msg.contains(&id), "{msg}");
    // Logged spend stays under the budget.
    let rows = h.rows().await;
    let spent: Decimal = rows
        .iter()
        .filter(|r| r.key_id.as_deref() == Some(id.as_str()))
        .filter_map(|r| r.cost_usd)
        .sum();
    assert!(spent <= Decimal::new(2, 4), "{spent}");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_remaining_headers() {
    let h = Harness::with(keyed()).await;
    let (_, key) = create_key(&h, json!({"name": "slow", "rpm": 2})).await;
    let body = user("nano", "hi");
    let first = chat_as(&h, &key, &body).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-remaining-requests"), "1");
    let second = chat_as(&h, &key, &body).await;
    // Both may straddle a minute boundary; then the window restarted and 1 is left again.
    let left = header(&second, "x-ratelimit-remaining-requests").to_string();
    if left == "0" {
        let third = chat_as(&h, &key, &body).await;
        assert_eq!(third.status(), 429);
        let retry: u64 = header(&third, "retry-after").parse().unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(header(&third, "x-ratelimit-remaining-requests"), "0");
        let e = error_of(third).await;
        assert_eq!(e["code"], "rate_limit_exceeded");
        assert_eq!(e["type"], "requests");
    }
}

#[tokio::test]
async fn open_mode_is_refused_on_a_public_address() {
    let config = {
        let h = Harness::start().await;
        h.config.clone()
    };
    let gateway = tierwise_gateway::Gateway::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = gateway.serve(listener, async {}).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("refusing to serve without keys"), "{msg}");
    assert!(!msg.contains('\n'));
}

/// A streamed call is reconciled when its stream ends: the key's window holds the logged cost
/// and no reservation.
#[tokio::test]
async fn a_streamed_call_is_reconciled_at_its_end() {
    let h = Harness::with(keyed().env("TIERWISE_ADMIN_KEY", ADMIN)).await;
    let (id, key) = create_key(&h, json!({"name": "streamer", "budget_usd_month": "1"})).await;
    let body = json!({"model": "nano", "stream": true, "max_tokens": 64,
        "messages": [{"role": "user", "content": "tell me a story"}]});
    let resp = forced_as(&h, &key, "nano", &body).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .contains_key("x-tierwise-budget-remaining-usd")
    );
    let text = resp.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    let rows = h.rows().await;
    let cost = rows
        .iter()
        .find(|r| r.key_id.as_deref() == Some(id.as_str()))
        .and_then(|r| r.cost_usd)
        .unwrap();
    assert!(cost > Decimal::ZERO);
    // The reconciliation is a task: give it a moment.
    let mut spend = Value::Null;
    for _ in 0..50 {
        spend = admin(&h, reqwest::Method::GET, &format!("/admin/keys/{id}"), None)
            .await
            .json()
            .await
            .unwrap();
        let reserved = spend["spend"][0]["reserved"].as_str().unwrap_or("1");
        if reserved.parse::<Decimal>().unwrap() == Decimal::ZERO {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reserved: Decimal = spend["spend"][0]["reserved"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reserved, Decimal::ZERO, "{spend}");
    assert_eq!(
        spend["spend"][0]["spent"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        cost
    );
}
