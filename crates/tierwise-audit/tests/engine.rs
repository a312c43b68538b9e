//! The engine on the committed fixtures, with figures worked out by hand.
#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use std::path::PathBuf;
use std::str::FromStr;

use rust_decimal::Decimal;
use tierwise_audit::{InputSpec, Options, audit};
use tierwise_core::Config;
use tierwise_router::Policy;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn setup() -> (Policy, Options) {
    let config = Config::embedded(&|_| None).unwrap();
    (Policy::from_config(&config), Options::from_config(&config))
}

#[test]
fn small_log_spend_and_what_if() {
    let (policy, options) = setup();
    let r = audit(
        &[InputSpec::Path(fixture("small.jsonl"))],
        &policy,
        &options,
        &mut |_, _| {},
    )
    .unwrap();
    // 1000×5 + 200×30 = 0.011 · 976×0.75 + 1024×0.075 + 100×4.5 = 0.0012588
    // (500×5 + 50×30)×0.5 = 0.002 · 9×2.5 = 0.0000225 (estimated) · 100×2.5 + 10×10 = 0.00035
    assert_eq!(r.spend_usd, d("0.0146313"));
    assert_eq!(r.requests, 6);
    assert_eq!(r.estimated_requests, 1);
    assert_eq!(r.malformed.count, 1);
    assert_eq!(r.malformed.lines[0].line, 3);
    assert_eq!(r.unpriced_models.len(), 1);
    assert_eq!(r.unpriced_models[0].model, "acme-llm-7b");
    let flagship = r.by_tier.iter().find(|t| t.model == "gpt-5.5").unwrap();
    assert_eq!(flagship.tier, "flagship");
    assert_eq!(flagship.requests, 2);
    assert_eq!(flagship.input_tokens, 1500);
    assert_eq!(flagship.spend_usd, Some(d("0.013")));
    let w = &r.what_if;
    assert_eq!(w.baseline_usd, d("0.0146313"));
    // every priced call is short and plain: rule short-plain → mini, usage re-priced on mini
    // 0.00165 + 0.0012588 + 0.0003 + 0.00000675 + 0.00012
    assert_eq!(w.after_tiering_usd, d("0.00333555"));
    // the deferrable call (line 1) goes to flex: 0.00165 × 0.5 = 0.000825 saved
    assert_eq!(w.after_batch_usd, d("0.00251055"));
    // nothing reaches 1024 tokens of prompt; no tools
    assert_eq!(w.after_cache_usd, d("0.00251055"));
    assert_eq!(w.after_tool_search_usd, d("0.00251055"));
    assert_eq!(w.savings_usd, d("0.01212075"));
    assert_eq!(w.savings_pct, 82.84);
    // decisions cover every call with content, the unpriced one included
    assert_eq!(w.routing.routed.get("mini"), Some(&6));
    // headline: both flagship calls would go lower
    assert_eq!(r.headline.flagship_spend_usd, d("0.013"));
    assert_eq!(r.headline.routable_lower_pct, 100.0);
}

#[test]
fn since_filters_by_time() {
    let (policy, mut options) = setup();
    options.since_ms = tierwise_audit::call::parse_time("2026-01-02T00:00:00Z");
    let r = audit(
        &[InputSpec::Path(fixture("small.jsonl"))],
        &policy,
        &options,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(r.requests, 1);
    assert_eq!(r.spend_usd, d("0.00035"));
    assert_eq!(r.filtered_requests, 5);
}

#[test]
fn strict_stops_at_the_malformed_line() {
    let (policy, mut options) = setup();
    options.strict = true;
    let err = audit(
        &[InputSpec::Path(fixture("small.jsonl"))],
        &policy,
        &options,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains(":3:"), "{err}");
}

#[test]
fn usage_export_spend_and_ceilings() {
    let (policy, options) = setup();
    let r = audit(
        &[InputSpec::Path(fixture("usage_export.json"))],
        &policy,
        &options,
        &mut |_, _| {},
    )
    .unwrap();
    // gpt-5.5: 1M uncached × 5 + 1M cached × 0.5 + 100k × 30 = 8.5; mini batch: 1M × 0.75 × 0.5
    assert_eq!(r.spend_usd, d("8.875"));
    assert_eq!(r.requests, 1010);
    let e = r.usage_export.as_ref().unwrap();
    assert_eq!(e.batch_ceiling_saving_usd, d("4.25"));
    // 1M × (5 − 0.5) + 1M × (0.75 − 0.075) × 0.5
    assert_eq!(e.cache_ceiling_saving_usd, d("4.8375"));
    // no content: every what-if step keeps the spend
    assert_eq!(r.what_if.after_tool_search_usd, d("8.875"));
    assert!(r.notes.iter().any(|n| n.contains("Usage export")));
}

#[test]
fn several_inputs_and_gzip() {
    let (policy, options) = setup();
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("log.jsonl.gz");
    let text = std::fs::read(fixture("small.jsonl")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut enc, &text).unwrap();
    enc.finish().unwrap();
    let r = audit(
        &[
            InputSpec::Path(gz),
            InputSpec::Path(fixture("usage_export.json")),
        ],
        &policy,
        &options,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(r.spend_usd, d("8.8896313"));
    assert_eq!(r.sources.len(), 2);
}

#[test]
fn missing_file_fails_before_work() {
    let (policy, options) = setup();
    let err = audit(
        &[InputSpec::Path(fixture("nope.jsonl"))],
        &policy,
        &options,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope.jsonl"), "{err}");
}

#[test]
fn categorizer_agrees_with_labels() {
    // 50 real prompts (5 per LLMRouter task); expected categories as in
    // examples/categorizer_agreement.rs. commongen (bare word lists) is expected to miss.
    let text = std::fs::read_to_string(fixture("labelled_prompts.jsonl")).unwrap();
    let (mut n, mut ok) = (0, 0);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let want = match v["task"].as_str().unwrap() {
            "gsm8k" | "math" | "agentverse-mgsm" | "agentverse-logicgrid" | "gpqa" => "reasoning",
            "mbpp" | "human_eval" => "coding",
            "commongen" => "writing",
            _ => "conversation",
        };
        let body = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": v["text"]}]});
        let view = tierwise_core::request::RequestView::chat(&body).unwrap();
        let hints = tierwise_core::signals::Hints::from_metadata(&view);
        let s = tierwise_core::signals::Signals::compute(&view, &hints);
        let got = tierwise_audit::category::categorize(&view, &s, &hints).name;
        n += 1;
        if got == want {
            ok += 1;
        }
    }
    assert_eq!(n, 50);
    assert!(ok >= 40, "agreement {ok}/{n}");
}

fn store_row(model: &str, body: Option<&str>, attempts: u32) -> tierwise_store::RequestRow {
    tierwise_store::RequestRow {
        id: uuid::Uuid::now_v7(),
        time: time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(),
        endpoint: "chat.completions".into(),
        requested_model: "auto".into(),
        tier: "mini".into(),
        model: model.into(),
        reason: "rule short-plain → mini".into(),
        category: Some("extraction".into()),
        category_source: Some("hint".into()),
        role: None,
        mode: "sync".into(),
        service_tier: "default".into(),
        input_tokens: 1000,
        cached_tokens: 0,
        output_tokens: 100,
        reasoning_tokens: 0,
        usage_estimated: false,
        cost_usd: None,
        baseline_cost_usd: None,
        latency_ms: 5.0,
        status: 200,
        streamed: false,
        attempts,
        tiers_tried: vec!["mini".into()],
        error: None,
        request_body: body.map(str::to_string),
        response_body: None,
        tools: Default::default(),
        key_id: None,
        team: None,
    }
}

#[test]
fn request_log_store() {
    let (policy, options) = setup();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tierwise.db");
    let log =
        tierwise_store::RequestLog::open(&db, tierwise_store::WriterOptions::default()).unwrap();
    // with a body (content: routing applies), without a body, and one never sent upstream
    log.record(store_row(
        "gpt-5.5",
        Some(r#"{"model": "auto", "messages": [{"role": "user", "content": "Extract the date: due 3 May"}]}"#),
        1,
    ))
    .unwrap();
    log.record(store_row("gpt-5.4-mini", None, 1)).unwrap();
    log.record(store_row("", None, 0)).unwrap();
    log.close().unwrap();
    let r = audit(&[InputSpec::Store(db)], &policy, &options, &mut |_, _| {}).unwrap();
    assert_eq!(r.requests, 2);
    assert_eq!(r.sources[0].skipped, 1);
    // gpt-5.5: 1000×5 + 100×30 = 0.008; mini: 1000×0.75 + 100×4.5 = 0.0012
    assert_eq!(r.spend_usd, d("0.0092"));
    // the logged category hint is the category of both
    assert_eq!(r.by_category.len(), 1);
    assert_eq!(r.by_category[0].category, "extraction");
    // category extraction → rule simple-extraction → nano (0.2 / 1.25):
    // 1000×0.2 + 100×1.25 = 0.000325 for the call with a body; the other stays on mini
    assert_eq!(r.what_if.after_tiering_usd, d("0.001525"));
}

#[test]
fn unreadable_store_is_an_error() {
    let (policy, options) = setup();
    let dir = tempfile::tempdir().unwrap();
    let not_db = dir.path().join("x.db");
    std::fs::write(&not_db, b"not sqlite").unwrap();
    let err = audit(
        &[InputSpec::Store(not_db)],
        &policy,
        &options,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("x.db"), "{err}");
}
