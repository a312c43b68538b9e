use super::*;
use serde_json::{Value, json};
use tierwise_core::config::Config;

fn policy() -> Policy {
    Policy::from_config(&Config::embedded(&|_| None).unwrap())
}

fn route(body: Value, hints: Hints) -> Result<Decision, RouteError> {
    let view = RequestView::chat(&body).unwrap();
    let hints = Hints::from_metadata(&view).overlay(hints);
    let signals = Signals::compute(&view, &hints);
    decide(&view, &signals, &hints, &policy())
}

fn user(text: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
}

#[test]
fn short_plain_prompt_goes_to_mini() {
    let d = route(user("What is the capital of France?"), Hints::default()).unwrap();
    assert_eq!(d.tier_name, "mini");
    assert_eq!(d.source, Source::Rule("short-plain".into()));
    assert_eq!(d.fallbacks, vec![2, 3]);
}

#[test]
fn sub_agent_goes_to_mini_and_extraction_to_nano() {
    let d = route(
        user("Summarize the following incident report and prove the theorem"),
        Hints {
            role: Some("sub-agent".into()),
            ..Hints::default()
        },
    )
    .unwrap();
    assert_eq!(d.tier_name, "mini");
    let body = json!({"model": "auto", "metadata": {"category": "extraction"}, "messages": [{"role": "user", "content": "Extract the dates."}]});
    assert_eq!(route(body, Hints::default()).unwrap().tier_name, "nano");
}

#[test]
fn code_and_math_go_to_standard_hard_math_to_flagship() {
    let code = "Fix this function:\n```python\ndef add(a, b):\n    return a - b\n```";
    assert_eq!(
        route(user(code), Hints::default()).unwrap().tier_name,
        "standard"
    );
    let hard = format!(
        "{} Prove that for every prime p > 3, p^2 - 1 is divisible by 24, and compute the probability that a random integer is prime.",
        "Context: ".repeat(200)
    );
    let d = route(user(&hard), Hints::default()).unwrap();
    assert_eq!(d.tier_name, "flagship", "{}", d.reason);
}

#[test]
fn explicit_and_forced() {
    let body = json!({"model": "nano", "messages": [{"role": "user", "content": "Prove Fermat's last theorem"}]});
    let d = route(body, Hints::default()).unwrap();
    assert_eq!(
        (d.tier_name.as_str(), d.model.as_str()),
        ("nano", "gpt-5.4-nano")
    );
    assert_eq!(d.source, Source::Explicit);
    let d = route(
        user("hi"),
        Hints {
            tier: Some("gpt-5.5".into()),
            ..Hints::default()
        },
    )
    .unwrap();
    assert_eq!(d.tier_name, "flagship");
    assert!(d.fallbacks.is_empty());
    let body =
        json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "x"}]});
    let d = route(body, Hints::default()).unwrap();
    assert_eq!((d.tier, d.model.as_str()), (None, "gpt-4o-2024-08-06"));
}

#[test]
fn unknown_model_and_tier_are_errors() {
    let body = json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]});
    assert!(matches!(
        route(body, Hints::default()),
        Err(RouteError::UnknownModel(_))
    ));
    let e = route(
        user("x"),
        Hints {
            tier: Some("huge".into()),
            ..Hints::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("huge"));
}

#[test]
fn deferrable_goes_flex() {
    let d = route(
        user("What is 2+2?"),
        Hints {
            deferrable: true,
            ..Hints::default()
        },
    )
    .unwrap();
    assert_eq!(d.mode, DispatchMode::Flex);
}

#[test]
fn conversations_do_not_bounce() {
    let body = json!({"model": "auto", "messages": [
        {"role": "user", "content": "Fix this:\n```rust\nfn main() { let x: u8 = 300; }\n```"},
        {"role": "assistant", "content": "Use u16."},
        {"role": "user", "content": "thanks!"}
    ]});
    let d = route(body, Hints::default()).unwrap();
    assert_eq!(d.tier_name, "standard");
    // "thanks!" alone would be mini; the code turn before holds the conversation at standard.
    let alone = route(user("thanks!"), Hints::default()).unwrap();
    assert_eq!(alone.tier_name, "mini");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn chosen_tier_is_configured(text in "\\PC{0,200}", turns in 1usize..4, role in prop_oneof![Just(None), Just(Some("sub-agent".to_string()))],
                                     category in prop_oneof![Just(None), Just(Some("coding".to_string())), Just(Some("extraction".to_string()))]) {
            let mut messages = Vec::new();
            for i in 0..turns {
                messages.push(json!({"role": "user", "content": format!("{text} {i}")}));
                messages.push(json!({"role": "assistant", "content": "ok"}));
            }
            messages.pop();
            let body = json!({"model": "auto", "messages": messages});
            let d = route(body, Hints { role, category, ..Hints::default() }).unwrap();
            let p = policy();
            let t = d.tier.unwrap();
            prop_assert!(t < p.catalog.tiers().len());
            prop_assert_eq!(&p.catalog.tiers()[t].model, &d.model);
            prop_assert!(!d.reason.is_empty());
        }
    }
}

#[test]
fn categorizer_sends_stated_classification_and_extraction_to_nano() {
    let d = route(
        user("Classify the sentiment of this review as positive, negative or neutral: the battery died after two days."),
        Hints::default(),
    )
    .unwrap();
    assert_eq!(d.tier_name, "nano", "{}", d.reason);
    assert_eq!(d.category.name, "classification");
    assert_eq!(d.category.source, category::CategorySource::Categorizer);
    assert!(d.category.sure);
    // stated by the system prompt, over a long document: still nano
    let body = json!({"model": "auto", "messages": [
        {"role": "system", "content": "Extract the parties, dates and amounts from the contract."},
        {"role": "user", "content": "This agreement is made between the parties below. ".repeat(200)}]});
    let d = route(body, Hints::default()).unwrap();
    assert_eq!(
        (d.tier_name.as_str(), d.category.name.as_ref()),
        ("nano", "extraction")
    );
    // … unless it asks for structured output over a long context
    let body = json!({"model": "auto", "response_format": {"type": "json_object"}, "messages": [
        {"role": "system", "content": "Extract the parties, dates and amounts from the contract as JSON."},
        {"role": "user", "content": "This agreement is made between the parties below. ".repeat(600)}]});
    let d = route(body, Hints::default()).unwrap();
    assert_eq!(d.tier_name, "mini", "{}", d.reason);
    assert_eq!(d.source, Source::Rule("long-structured-extraction".into()));
}

#[test]
fn an_unsure_category_never_lowers_the_tier() {
    // the task at the end of a long turn: unsure, so the rules without it decide (default tier)
    let text = format!(
        "{} Which category fits this ticket best?",
        "The parcel came late and the box was torn when it arrived. ".repeat(60)
    );
    let d = route(user(&text), Hints::default()).unwrap();
    assert_eq!(d.category.name, "classification");
    assert!(!d.category.sure);
    assert_eq!(d.tier_name, "standard", "{}", d.reason);
    assert_eq!(d.source, Source::Default);
    // a short coding request in words: unsure, but it raises mini (short-plain) to standard
    let d = route(
        user(
            "Write a lock-free multi-producer single-consumer queue in Rust with a bounded buffer.",
        ),
        Hints::default(),
    )
    .unwrap();
    assert_eq!(
        (d.tier_name.as_str(), d.category.name.as_ref()),
        ("standard", "coding")
    );
    assert!(!d.category.sure);
    // the same prompt with a hint naming a cheap category: a hint is sure
    let d = route(
        user(&text),
        Hints {
            category: Some("classification".into()),
            ..Hints::default()
        },
    )
    .unwrap();
    assert_eq!(d.tier_name, "nano");
    assert_eq!(d.category.source, category::CategorySource::Hint);
}

/// Over the example workload (as `model: "auto"`): wherever the category is unsure, the tier is
/// at least the one the rules choose without any category.
#[test]
fn unsure_categories_only_raise_on_the_workload() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workload.jsonl.gz");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut text,
    )
    .unwrap();
    let policy = policy();
    let (mut unsure, mut raised) = (0, 0);
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Ok(mut view) = RequestView::chat(&v["request"]) else {
            continue;
        };
        view.model = "auto".into();
        let hints = Hints::from_metadata(&view);
        let signals = Signals::compute(&view, &hints);
        let d = decide(&view, &signals, &hints, &policy).unwrap();
        if d.category.sure || hints.category.is_some() {
            continue;
        }
        unsure += 1;
        let without = route_auto(&view, &signals, &hints, &policy);
        assert!(d.tier >= without.tier, "{} vs {}", d.reason, without.reason);
        raised += usize::from(d.tier > without.tier);
    }
    assert!(unsure > 100, "{unsure}");
    assert!(raised > 0);
}

/// The fall-through names no task: rules never read it, so a long plain prompt keeps the
/// cascade (or the default tier) the rules without a category choose.
#[test]
fn the_fallthrough_category_is_not_read_by_rules() {
    let mut p = policy();
    p.routing.mode = tierwise_core::config::RouterMode::Cascade;
    let long = "Describe the history of the harbour town and its trade routes. ".repeat(60);
    let view = RequestView::chat(&user(&long)).unwrap();
    let hints = Hints::default();
    let s = Signals::compute(&view, &hints);
    let d = decide(&view, &s, &hints, &p).unwrap();
    assert_eq!(d.category.name, "conversation");
    assert!(d.category.is_fallthrough());
    assert_eq!(
        (d.tier_name.as_str(), d.mode),
        ("nano", DispatchMode::Cascade)
    );
    let d = route(user(&long), Hints::default()).unwrap();
    assert_eq!(
        (d.tier_name.as_str(), &d.source),
        ("standard", &Source::Default)
    );
}
