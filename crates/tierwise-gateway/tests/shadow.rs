//! Shadow tests end to end: gateway + mock upstream, `[quality.shadow]` on, results read back
//! from the store's `shadow_results`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]

mod common;

use common::{Harness, MINI, Setup, expected_cost, user};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tierwise_store::{ShadowLog, ShadowMethod, ShadowRow, ShadowVerdict, TimeRange};

/// `[quality.shadow]` with these lines, and the ladder's models replaced.
fn setup(shadow: &str, models: &[(&str, &str)]) -> Setup {
    let mut s = Setup::default().edit(
        "[quality.shadow]\n",
        &format!("[quality.shadow]\n{shadow}\n"),
    );
    for (from, to) in models {
        s = s.tier_model(from, to);
    }
    s
}

async fn shadow_rows(h: &mut Harness) -> Vec<ShadowRow> {
    h.shutdown().await;
    ShadowLog::open_read(&h.db)
        .unwrap()
        .rows(&TimeRange::all())
        .unwrap()
}

fn body_of(h: &Harness, model: &str) -> Vec<Value> {
    h.mock
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.model.as_deref() == Some(model))
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn labels_are_checked_without_a_judge() {
    let mut h = Harness::with(setup(
        "rate = 1.0",
        &[
            ("gpt-5.4", "says-positive-gpt-5.4"),
            ("gpt-5.4-mini", "says-positive-gpt-5.4-mini"),
            ("gpt-5.5", "judge-gpt-5.5"),
        ],
    ))
    .await;
    for _ in 0..3 {
        let resp = h
            .chat(&user("standard", "Is this review positive? I loved it."))
            .await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "positive");
        assert_eq!(v["model"], "says-positive-gpt-5.4");
    }
    let rows = shadow_rows(&mut h).await;
    assert_eq!(rows.len(), 3);
    let logged = common::read_rows(&h.db);
    for r in &rows {
        assert_eq!(r.verdict, ShadowVerdict::Agree);
        assert_eq!(r.method, Some(ShadowMethod::Check));
        assert_eq!(r.detail.as_deref(), Some("label"));
        assert_eq!(
            (r.served_tier.as_str(), r.candidate_tier.as_str()),
            ("standard", "mini")
        );
        assert_eq!(r.candidate_model, "says-positive-gpt-5.4-mini");
        assert_eq!(r.judge_cost_usd, Some(Decimal::ZERO));
        assert!(logged.iter().any(|l| l.id == r.request_id));
        assert_eq!(
            r.prompt, None,
            "prompts are kept only with log.store_bodies"
        );
    }
    // the shadow call's cost is the mini tier's price of the mock's usage
    let mini = h.mock.mock.requests();
    let answer_usage = {
        let view_body = mini
            .iter()
            .find(|r| r.model.as_deref() == Some("says-positive-gpt-5.4-mini"))
            .unwrap()
            .body
            .clone();
        let view = tierwise_core::request::RequestView::chat(&view_body).unwrap();
        let a = tierwise_mock::answer::answer(&view, &view_body, "says-positive-gpt-5.4-mini", 0);
        a.usage.chat_json()
    };
    assert_eq!(
        rows[0].shadow_cost_usd,
        Some(expected_cost(MINI, &answer_usage, "1"))
    );
    assert_eq!(h.mock.mock.calls("judge-gpt-5.5"), 0);
}

#[tokio::test]
async fn a_different_label_disagrees_and_free_text_goes_to_the_judge() {
    let mut h = Harness::with(setup(
        "rate = 1.0",
        &[
            ("gpt-5.4-nano", "says-negative-gpt-5.4-nano"),
            ("gpt-5.4-mini", "says-positive-gpt-5.4-mini"),
            ("gpt-5.5", "judge-gpt-5.5"),
        ],
    ))
    .await;
    // mini served, nano the candidate: labels differ
    let resp = h.chat(&user("mini", "Sentiment of: great phone")).await;
    assert_eq!(resp.status(), 200);
    // standard served (free text), mini says one word: the judge prefers the longer answer
    // in both orders → the candidate loses
    let resp = h
        .chat(&user("standard", "Explain how tides work in detail"))
        .await;
    assert_eq!(resp.status(), 200);
    let rows = shadow_rows(&mut h).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let label = rows.iter().find(|r| r.served_tier == "mini").unwrap();
    assert_eq!(label.verdict, ShadowVerdict::Disagree);
    let judged = rows.iter().find(|r| r.served_tier == "standard").unwrap();
    // one word vs a sentence: not checkable as a label, so judged
    assert_eq!(judged.method, Some(ShadowMethod::Judge));
    assert_eq!(judged.verdict, ShadowVerdict::Loss);
    assert_eq!(judged.detail.as_deref(), Some("A,B"));
    assert!(judged.judge_cost_usd.unwrap() > Decimal::ZERO);
    // both orders asked, with the rubric as the system message
    let asks = body_of(&h, "judge-gpt-5.5");
    assert_eq!(asks.len(), 2);
    let rubric = tierwise_quality::judge::RUBRIC;
    assert!(asks.iter().all(|b| b["messages"][0]["content"] == rubric));
    let users: Vec<&str> = asks
        .iter()
        .map(|b| b["messages"][1]["content"].as_str().unwrap())
        .collect();
    assert!(
        users
            .iter()
            .any(|u| u.contains("<answer_a>\npositive\n</answer_a>"))
    );
    assert!(
        users
            .iter()
            .any(|u| u.contains("<answer_b>\npositive\n</answer_b>"))
    );
}

#[tokio::test]
async fn position_bias_cancels_and_a_verdict_that_does_not_parse_is_unjudged() {
    for (judge, verdict) in [
        ("judge-first-gpt-5.5", ShadowVerdict::Tie),
        ("judge-garbage-gpt-5.5", ShadowVerdict::Unjudged),
    ] {
        let mut h = Harness::with(setup(
            "rate = 1.0",
            &[
                ("gpt-5.4-mini", "says-positive-gpt-5.4-mini"),
                ("gpt-5.5", judge),
            ],
        ))
        .await;
        let resp = h.chat(&user("standard", "Explain how tides work")).await;
        assert_eq!(resp.status(), 200);
        let rows = shadow_rows(&mut h).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].verdict, verdict, "{judge}: {:?}", rows[0]);
        if verdict == ShadowVerdict::Unjudged {
            assert!(
                rows[0]
                    .error
                    .as_deref()
                    .unwrap()
                    .contains("without a verdict")
            );
        }
    }
}

#[tokio::test]
async fn failed_shadow_calls_are_logged_and_the_client_is_unaffected() {
    let mut h = Harness::with(setup(
        "rate = 1.0",
        &[("gpt-5.4-mini", "error-500-gpt-5.4-mini")],
    ))
    .await;
    let resp = h.chat(&user("standard", "hello there")).await;
    assert_eq!(resp.status(), 200);
    let rows = shadow_rows(&mut h).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].verdict, ShadowVerdict::Failed);
    assert_eq!(rows[0].method, None);
    assert!(rows[0].error.as_deref().unwrap().contains("500"));
    // no retries for a shadow call
    assert_eq!(h.mock.mock.calls("error-500-gpt-5.4-mini"), 1);
}

#[tokio::test]
async fn the_daily_cap_stops_sampling() {
    let mut h = Harness::with(setup(
        "rate = 1.0\ndaily_usd_cap = 0",
        &[("gpt-5.5", "judge-gpt-5.5")],
    ))
    .await;
    for _ in 0..2 {
        assert_eq!(h.chat(&user("standard", "hello")).await.status(), 200);
    }
    let rows = shadow_rows(&mut h).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.verdict == ShadowVerdict::Capped));
    assert!(rows[0].error.as_deref().unwrap().contains("daily cap"));
    assert_eq!(h.mock.mock.calls("gpt-5.4-mini"), 0);
    assert_eq!(h.mock.mock.calls("judge-gpt-5.5"), 0);
}

#[tokio::test]
async fn the_response_does_not_wait_for_the_shadow_test() {
    // the candidate holds its answer until released
    let mut h = Harness::with(setup(
        "rate = 1.0",
        &[
            ("gpt-5.4-mini", "gated-says-ok-gpt-5.4-mini"),
            ("gpt-5.4", "says-ok-gpt-5.4"),
        ],
    ))
    .await;
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        h.chat(&user("standard", "say ok")),
    )
    .await
    .expect("the client's response waited for the shadow call");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "ok");
    // the shadow call is in flight; release it, and shutdown waits for its row
    for _ in 0..100 {
        if h.mock.mock.calls("gated-says-ok-gpt-5.4-mini") > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    h.mock.mock.release();
    let rows = shadow_rows(&mut h).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].verdict, ShadowVerdict::Agree);
}

#[tokio::test]
async fn streams_responses_and_side_effects() {
    let mut h = Harness::with(setup(
        "rate = 0.0\ncategories = { conversation = 1.0, other = 1.0, writing = 1.0, reasoning = 1.0 }",
        &[("gpt-5.5", "judge-gpt-5.5")],
    ))
    .await;
    // a streamed chat call: the served text comes from the stream, the shadow call is not
    // streamed
    let mut body = user("standard", "hello, how are you today");
    body["stream"] = json!(true);
    let resp = h.chat(&body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    // a Responses call: shadowed with store = false
    let resp = h
        .post(
            "/v1/responses",
            &json!({"model": "standard", "input": "hello, how are you today"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // hosted tools (run by the provider): never shadowed
    let resp = h
        .post(
            "/v1/responses",
            &json!({"model": "standard", "input": "hello, how are you today",
                    "tools": [{"type": "web_search"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let rows = shadow_rows(&mut h).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let shadow_calls = body_of(&h, "gpt-5.4-mini");
    assert_eq!(shadow_calls.len(), 2);
    assert!(shadow_calls.iter().all(|b| b.get("stream").is_none()));
    assert!(
        shadow_calls
            .iter()
            .all(|b| b.get("stream_options").is_none())
    );
    let responses: Vec<&Value> = shadow_calls
        .iter()
        .filter(|b| b.get("input").is_some())
        .collect();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0]["store"], false);
    assert!(rows.iter().all(|r| r.verdict == ShadowVerdict::Tie));
}

#[tokio::test]
async fn off_by_default_and_per_category_rates() {
    // no [quality.shadow]: nothing sampled
    let mut h = Harness::start().await;
    assert_eq!(h.chat(&user("standard", "hello")).await.status(), 200);
    h.shutdown().await;
    assert!(
        ShadowLog::open_read(&h.db)
            .unwrap()
            .rows(&TimeRange::all())
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.mock.mock.calls("gpt-5.4-mini"), 0);
    // a category override of 0 beats rate = 1; nano (nothing below) is never sampled
    let mut h = Harness::with(setup("rate = 1.0\ncategories = { coding = 0.0 }", &[])).await;
    let mut coding = user("standard", "fix my code");
    coding["metadata"] = json!({"category": "coding"});
    assert_eq!(h.chat(&coding).await.status(), 200);
    assert_eq!(h.chat(&user("nano", "hello")).await.status(), 200);
    let rows = shadow_rows(&mut h).await;
    assert!(rows.is_empty(), "{rows:?}");
}

const ADMIN: &str = "admin-secret-for-tests";

/// Keys mode on top of `setup`, and a key with a day budget of `budget` USD.
async fn keyed(shadow: &str, models: &[(&str, &str)], budget: &str) -> (Harness, String, String) {
    let s = setup(shadow, models)
        .section("[auth]\nmode = \"keys\"\nkey_cache_ms = 0")
        .env("TIERWISE_ADMIN_KEY", ADMIN);
    let h = Harness::with(s).await;
    let resp = h
        .client
        .post(h.url("/admin/keys"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "app", "budget_usd_day": budget}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    let (id, key) = (v["id"].as_str().unwrap(), v["key"].as_str().unwrap());
    (h, id.to_string(), key.to_string())
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

/// The key's day window (spent, reserved), once the shadow row is written and nothing is
/// reserved any more (reconciliations are tasks).
async fn settled_spend(h: &Harness, id: &str) -> (Decimal, Decimal) {
    let mut last = (Decimal::ZERO, Decimal::ONE);
    for _ in 0..250 {
        let rows = ShadowLog::open_read(&h.db)
            .ok()
            .and_then(|l| l.rows(&TimeRange::all()).ok())
            .unwrap_or_default();
        let v: Value = h
            .client
            .get(h.url(&format!("/admin/keys/{id}")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let num =
            |k: &str| -> Decimal { v["spend"][0][k].as_str().unwrap_or("1").parse().unwrap() };
        last = (num("spent"), num("reserved"));
        if !rows.is_empty() && last.1 == Decimal::ZERO {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the key's window never settled: {last:?}");
}

/// Issue 17: shadow tests count toward the key's budget, the judge included.
#[tokio::test]
async fn shadow_and_judge_spend_is_charged_to_the_callers_key() {
    let (mut h, id, key) = keyed(
        "rate = 1.0",
        &[
            ("gpt-5.4-mini", "says-positive-gpt-5.4-mini"),
            ("gpt-5.5", "judge-gpt-5.5"),
        ],
        "5",
    )
    .await;
    let resp = chat_as(
        &h,
        &key,
        &user("standard", "Explain how tides work in detail"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (spent, _) = settled_spend(&h, &id).await;
    let served = h.rows().await[0].cost_usd.unwrap();
    let rows = shadow_rows(&mut h).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.method, Some(ShadowMethod::Judge));
    let (shadow, judge) = (r.shadow_cost_usd.unwrap(), r.judge_cost_usd.unwrap());
    assert!(shadow > Decimal::ZERO && judge > Decimal::ZERO, "{r:?}");
    assert_eq!(spent, served + shadow + judge);
}

/// A budget that covers the call and the candidate but not the judge's reservation (two
/// flagship calls at the output cap): the test is logged unjudged, the judge never called.
#[tokio::test]
async fn a_budget_that_cannot_pay_the_judge_leaves_the_test_unjudged() {
    let (mut h, id, key) = keyed("rate = 1.0", &[("gpt-5.5", "judge-gpt-5.5")], "0.01").await;
    let mut body = user("mini", "Tell me about the sea in a few sentences");
    body["max_tokens"] = json!(64);
    let resp = chat_as(&h, &key, &body).await;
    assert_eq!(resp.status(), 200);
    let (spent, _) = settled_spend(&h, &id).await;
    let served = h.rows().await[0].cost_usd.unwrap();
    let rows = shadow_rows(&mut h).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.verdict, ShadowVerdict::Unjudged, "{r:?}");
    assert!(r.error.as_deref().unwrap().starts_with("budget:"), "{r:?}");
    assert_eq!(h.mock.mock.calls("judge-gpt-5.5"), 0);
    assert_eq!(spent, served + r.shadow_cost_usd.unwrap());
}
