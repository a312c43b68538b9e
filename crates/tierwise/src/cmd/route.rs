//! `tierwise route "PROMPT" | --request FILE`: explain one routing decision.

use anyhow::Context;
use serde_json::{Value, json};
use tierwise_core::request::RequestView;
use tierwise_core::signals::{Hints, Signals};
use tierwise_router::decide;

use crate::cli::RouteArgs;
use crate::output::{self, Status};

pub fn run(args: RouteArgs) -> anyhow::Result<Status> {
    let config = super::load_config(args.config.as_deref())?;
    let body: Value = match (&args.request, &args.prompt) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?
        }
        (None, Some(prompt)) => {
            json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
        }
        (None, None) => anyhow::bail!("give a PROMPT or --request FILE"),
    };
    let view = if body.get("messages").is_none() && body.get("input").is_some() {
        RequestView::responses(&body)
    } else {
        RequestView::chat(&body)
    }
    .map_err(|e| anyhow::anyhow!("invalid request: {e}"))?;
    let cli_hints = Hints {
        tier: args.tier.clone(),
        role: args.role.clone(),
        category: args.category.as_ref().map(|c| c.to_ascii_lowercase()),
        ..Hints::default()
    };
    let hints = Hints::from_metadata(&view).overlay(cli_hints);
    let signals = Signals::compute(&view, &hints);
    let policy = super::policy(&config)?;
    let decision = decide(&view, &signals, &hints, &policy)?;
    if args.json {
        output::json(
            &json!({"decision": decision, "signals": signals, "router": policy.routing.mode}),
        )?;
        return Ok(Status::Success);
    }
    let mut lines = vec![
        format!("tier      {}", decision.tier_name),
        format!("model     {}", decision.model),
        format!("mode      {}", decision.mode.as_str()),
        format!("reason    {}", decision.reason),
        format!(
            "category  {} ({}, {})",
            decision.category.name,
            decision.category.source.as_str(),
            if decision.category.is_fallthrough() {
                "no task recognised: rules ignore it"
            } else {
                decision.category.confidence()
            }
        ),
    ];
    if let Some(e) = decision.estimate {
        lines.push(format!("estimate  {e:.3}"));
    }
    let fallbacks: Vec<_> = decision
        .fallbacks
        .iter()
        .map(|&i| config.catalog.tiers()[i].name.clone())
        .collect();
    lines.push(format!(
        "fallbacks {}",
        if fallbacks.is_empty() {
            "-".to_string()
        } else {
            fallbacks.join(" → ")
        }
    ));
    lines.push("signals".to_string());
    let s = &signals;
    lines.push(format!(
        "  prompt_tokens {}  last_user_tokens {}  turns {}  messages {}  tools {} ({} tokens)",
        s.prompt_tokens, s.last_user_tokens, s.turns, s.messages, s.tools, s.tool_tokens
    ));
    lines.push(format!(
        "  code {} ({} blocks)  math {}  structured_output {}  language {}",
        s.code, s.code_blocks, s.math, s.structured_output, s.language
    ));
    lines.push(format!(
        "  hard_domain [{}]  role {}  category hint {}  deferrable {}",
        s.hard_domain.join(", "),
        s.role.as_deref().unwrap_or("-"),
        s.category.as_deref().unwrap_or("-"),
        s.deferrable
    ));
    output::out(&lines.join("\n"));
    Ok(Status::Success)
}
