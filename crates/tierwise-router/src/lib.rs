//! Routing decisions: which tier answers a request, and why. Pure functions; the only I/O is
//! [`load`], which reads the configured weight files at start-up.
//!
//! # Layout
//! - [`decide`]: the one decision function `serve`, `route` and `audit` share. Order:
//!   forced tier (hint) → explicit model (a tier name/model id, or another priced model) →
//!   for `auto`: configured rules → learned estimator + thresholds (mode `learned`) → default tier;
//!   then the no-bounce floor for multi-turn conversations.
//!   Every decision carries the request's [`category::Category`]: the hint's, else the
//!   categorizer's; rules read it, and an unsure one may raise the tier the rules without it
//!   would choose, never lower it.
//! - [`category`]: the categorizer (regexes over the instructions and the last user turn), shared
//!   by `serve`, `route` and `audit`.
//! - [`rules`]: matching a rule's `when` against [`Signals`].
//! - [`Decision`]: tier, model, dispatch mode, reason, the estimate that decided, fallbacks.
//! - [`QualityEstimator`]: the interface of learned routers (`learned` module).
//! - [`load`]: reading the weight files a config names (a named file that fails is an error).
//! - [`cascade`]: the answer scorer (P(answer good enough)), acceptance plan and attempts header.
//!
//! Inference only: the trainers and fits that produce the learned router's and the scorer's
//! files live in `tierwise-train`.

pub mod cascade;
pub mod category;
pub mod learned;
pub mod load;
pub mod rules;
mod versioned;

use std::sync::Arc;

use serde::Serialize;

use crate::category::{Category, CategorySource};
use tierwise_core::catalog::{Catalog, Resolved, Tier};
use tierwise_core::config::{Config, DispatchMode, RouterMode, Routing};
use tierwise_core::request::RequestView;
use tierwise_core::signals::{Hints, Signals};

/// A learned router: per-tier estimates of answer quality for one request.
pub trait QualityEstimator: Send + Sync + std::fmt::Debug {
    /// Short name for reasons and reports.
    fn name(&self) -> &str;
    /// The name of the estimate that decides for this ladder (in `x-tierwise-reason`); by
    /// default [`Self::name`].
    fn name_for(&self, tiers: &[Tier]) -> &str {
        let _ = tiers;
        self.name()
    }
    /// One estimate per tier, cheapest first, in [0, 1] (e.g. P(the tier's answer is good enough)).
    fn estimate(&self, view: &RequestView, signals: &Signals, tiers: &[Tier]) -> Vec<f64>;
    /// Thresholds to use when the config gives none: one per tier (the top tier's is ignored).
    fn default_thresholds(&self, tiers: &[Tier]) -> Vec<f64>;
}

/// Everything a decision depends on besides the request.
#[derive(Debug, Clone)]
pub struct Policy {
    pub catalog: Catalog,
    pub routing: Routing,
    pub learned: Option<Arc<dyn QualityEstimator>>,
}

impl Policy {
    pub fn from_config(config: &Config) -> Policy {
        Policy {
            catalog: config.catalog.clone(),
            routing: config.routing.clone(),
            learned: None,
        }
    }

    pub fn with_learned(mut self, learned: Arc<dyn QualityEstimator>) -> Policy {
        self.learned = Some(learned);
        self
    }

    /// Thresholds in force for the learned router (config first, else the estimator's).
    pub fn thresholds(&self) -> Option<Vec<f64>> {
        let est = self.learned.as_ref()?;
        Some(
            self.routing
                .learned_thresholds
                .clone()
                .unwrap_or_else(|| est.default_thresholds(self.catalog.tiers())),
        )
    }
}

/// What decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Source {
    /// `x-tierwise-tier` / `metadata.tier`.
    Forced,
    /// The request named a tier or model.
    Explicit,
    /// A configured rule, by name.
    Rule(String),
    /// The learned router.
    Learned,
    /// No rule matched.
    Default,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Tier index (cheapest = 0); `None` for a priced model outside the ladder.
    pub tier: Option<usize>,
    /// Tier name, or `none` outside the ladder.
    pub tier_name: String,
    /// The model id sent upstream.
    pub model: String,
    pub mode: DispatchMode,
    /// Short human text, e.g. `rule math → standard`.
    pub reason: String,
    pub source: Source,
    /// The learned estimate that decided, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
    /// Tiers to fall back to on a retryable upstream failure, in order (up the ladder).
    pub fallbacks: Vec<usize>,
    /// Raised by the no-bounce floor from this tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raised_from: Option<usize>,
    /// The request's category (hint, else categorizer), whether or not a rule read it.
    pub category: Category,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    UnknownModel(String),
    #[error("Unknown tier `{0}` in x-tierwise-tier (tiers: {1}).")]
    UnknownTier(String, String),
}

fn tier_decision(
    catalog: &Catalog,
    i: usize,
    mode: DispatchMode,
    reason: String,
    source: Source,
    estimate: Option<f64>,
) -> Decision {
    let t = &catalog.tiers()[i];
    Decision {
        tier: Some(i),
        tier_name: t.name.clone(),
        model: t.model.clone(),
        mode,
        reason,
        source,
        estimate,
        fallbacks: (i + 1..catalog.tiers().len()).collect(),
        raised_from: None,
        category: placeholder_category(),
    }
}

/// Filled in by [`decide`] before it returns.
fn placeholder_category() -> Category {
    Category {
        name: std::borrow::Cow::Borrowed("other"),
        source: CategorySource::Categorizer,
        sure: false,
    }
}

/// The routing decision for one request. Pure: same inputs, same decision.
///
/// Without a category hint the request's category is computed ([`category::categorize`]) and
/// the rules read it; a hint (`signals.category`) overrides it.
pub fn decide(
    view: &RequestView,
    signals: &Signals,
    hints: &Hints,
    policy: &Policy,
) -> Result<Decision, RouteError> {
    let category = category::categorize(view, signals, hints);
    let mut d = decide_with(view, signals, hints, policy, &category)?;
    d.category = category;
    Ok(d)
}

fn decide_with(
    view: &RequestView,
    signals: &Signals,
    hints: &Hints,
    policy: &Policy,
    category: &Category,
) -> Result<Decision, RouteError> {
    let catalog = &policy.catalog;
    if let Some(forced) = &hints.tier {
        let i = catalog.tier_index(forced).ok_or_else(|| {
            let names: Vec<_> = catalog.tiers().iter().map(|t| t.name.as_str()).collect();
            RouteError::UnknownTier(forced.clone(), names.join(", "))
        })?;
        let mut d = tier_decision(
            catalog,
            i,
            mode_for(hints, DispatchMode::Sync),
            format!("forced by hint → {}", catalog.tiers()[i].name),
            Source::Forced,
            None,
        );
        d.fallbacks.clear();
        return Ok(d);
    }
    match catalog.resolve(&view.model) {
        None => Err(RouteError::UnknownModel(view.model.clone())),
        Some(Resolved::Model(m)) => Ok(Decision {
            tier: None,
            tier_name: "none".to_string(),
            model: view.model.clone(),
            mode: mode_for(hints, DispatchMode::Sync),
            reason: format!("requested {} (outside the ladder)", m.model),
            source: Source::Explicit,
            estimate: None,
            fallbacks: Vec::new(),
            raised_from: None,
            category: placeholder_category(),
        }),
        Some(Resolved::Tier(i, t)) if policy.routing.honor_explicit_model => Ok(tier_decision(
            catalog,
            i,
            mode_for(hints, DispatchMode::Sync),
            format!("requested {}", t.name),
            Source::Explicit,
            None,
        )),
        Some(Resolved::Tier(..)) | Some(Resolved::Auto) => {
            let mut d = route_categorized(view, signals, hints, policy, category);
            if policy.routing.no_bounce && signals.turns > 1 {
                apply_no_bounce(&mut d, view, hints, policy);
            }
            Ok(d)
        }
    }
}

/// Deferrable calls go to the flex service tier (half price, slower) unless a rule says
/// otherwise; a `mode` hint of `cascade` asks for the cascade.
fn mode_for(hints: &Hints, from_rule: DispatchMode) -> DispatchMode {
    match hints.mode.as_deref() {
        Some("cascade") => return DispatchMode::Cascade,
        Some("sync") => return DispatchMode::Sync,
        Some("flex") => return DispatchMode::Flex,
        _ => {}
    }
    if from_rule == DispatchMode::Sync && hints.deferrable {
        DispatchMode::Flex
    } else {
        from_rule
    }
}

/// [`route_auto`] with the categorizer's category in the signals (a hint is there already).
/// An unsure category may raise or keep the tier the rules without it choose, never lower it;
/// the fall-throughs (`conversation`, `other`) are not read by rules, and in learned mode only
/// a sure category is.
fn route_categorized(
    view: &RequestView,
    signals: &Signals,
    hints: &Hints,
    policy: &Policy,
    category: &Category,
) -> Decision {
    if category.source == CategorySource::Hint || signals.category.is_some() {
        return route_auto(view, signals, hints, policy);
    }
    // A fall-through names no evidence; in learned mode an unsure category is one more
    // signal-based guess, which is the learned router's job.
    let learned = policy.routing.mode == RouterMode::Learned && policy.learned.is_some();
    if category.is_fallthrough() || (learned && !category.sure) {
        return route_auto(view, signals, hints, policy);
    }
    let mut with = signals.clone();
    with.category = Some(category.name.to_string());
    let d = route_auto(view, &with, hints, policy);
    if category.sure || !read_category(&d, policy) {
        return d;
    }
    // Unsure: the category decides only when it raises the tier; else the rules without it do.
    let without = route_auto(view, signals, hints, policy);
    match (d.tier, without.tier) {
        (Some(a), Some(b)) if a > b => d,
        _ => without,
    }
}

/// Whether the rule that decided `d` has a category condition.
fn read_category(d: &Decision, policy: &Policy) -> bool {
    match &d.source {
        Source::Rule(name) => policy
            .routing
            .rules
            .iter()
            .any(|r| &r.name == name && !r.when.category.is_empty()),
        _ => false,
    }
}

fn route_auto(view: &RequestView, signals: &Signals, hints: &Hints, policy: &Policy) -> Decision {
    let catalog = &policy.catalog;
    let routing = &policy.routing;
    let learned = match (routing.mode, &policy.learned) {
        (RouterMode::Learned, Some(est)) => Some(est),
        _ => None,
    };
    for rule in &routing.rules {
        // In learned mode only rules about who/what the call is (role, category) apply;
        // signal-based guesses are the learned router's job.
        if learned.is_some() && rule.when.role.is_empty() && rule.when.category.is_empty() {
            continue;
        }
        if rules::holds(&rule.when, signals) {
            // "rule {name} ({explanation}) → {tier}", written in one string
            let tier = &catalog.tiers()[rule.tier].name;
            let mut reason = String::with_capacity(rule.name.len() + tier.len() + 64);
            reason.push_str("rule ");
            reason.push_str(&rule.name);
            reason.push_str(" (");
            rules::explain_into(&rule.when, signals, &mut reason);
            reason.push_str(") → ");
            reason.push_str(tier);
            return tier_decision(
                catalog,
                rule.tier,
                mode_for(hints, rule.mode),
                reason,
                Source::Rule(rule.name.clone()),
                None,
            );
        }
    }
    if let Some(est) = learned {
        let tiers = catalog.tiers();
        let estimates = est.estimate(view, signals, tiers);
        let thresholds = policy.thresholds().unwrap_or_default();
        let top = catalog.top();
        let chosen = (0..tiers.len())
            .find(|&i| {
                i == top
                    || estimates.get(i).copied().unwrap_or(0.0)
                        >= thresholds.get(i).copied().unwrap_or(1.0)
            })
            .unwrap_or(top);
        let e = estimates.get(chosen).copied().unwrap_or(0.0);
        let reason = if chosen == top && chosen > 0 {
            let below = estimates.get(chosen - 1).copied().unwrap_or(0.0);
            let th = thresholds.get(chosen - 1).copied().unwrap_or(1.0);
            format!(
                "{}: P(ok on {})={below:.2} < {th:.2} → {}",
                est.name_for(tiers),
                tiers[chosen - 1].name,
                tiers[chosen].name
            )
        } else {
            let th = thresholds.get(chosen).copied().unwrap_or(0.0);
            format!(
                "{}: P(ok on {})={e:.2} ≥ {th:.2}",
                est.name_for(tiers),
                tiers[chosen].name
            )
        };
        let mode = if routing.mode == RouterMode::Cascade {
            DispatchMode::Cascade
        } else {
            DispatchMode::Sync
        };
        return tier_decision(
            catalog,
            chosen,
            mode_for(hints, mode),
            reason,
            Source::Learned,
            Some(e),
        );
    }
    if routing.mode == RouterMode::Cascade {
        return tier_decision(
            catalog,
            0,
            mode_for(hints, DispatchMode::Cascade),
            format!("cascade from {}", catalog.tiers()[0].name),
            Source::Default,
            None,
        );
    }
    let i = routing.default_tier;
    tier_decision(
        catalog,
        i,
        mode_for(hints, DispatchMode::Sync),
        format!("default tier {} (no rule matched)", catalog.tiers()[i].name),
        Source::Default,
        None,
    )
}

/// A conversation keeps the highest tier any of its earlier user turns needed.
fn apply_no_bounce(d: &mut Decision, view: &RequestView, hints: &Hints, policy: &Policy) {
    let Some(current) = d.tier else { return };
    let user_ends: Vec<usize> = view
        .turns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.role == "user")
        .map(|(i, _)| i + 1)
        .collect();
    // Earlier prefixes only (the last one is the request itself); at most the 8 latest.
    let earlier = &user_ends[..user_ends.len().saturating_sub(1)];
    let start = earlier.len().saturating_sub(8);
    let mut floor = current;
    for &end in &earlier[start..] {
        // field by field: `..view.clone()` would copy every turn and message first
        let prefix = RequestView {
            api: view.api,
            model: view.model.clone(),
            turns: view.turns[..end].to_vec(),
            messages: view.messages[..end.min(view.messages.len())].to_vec(),
            stream: view.stream,
            tools: view.tools.clone(),
            structured_output: view.structured_output,
            metadata: view.metadata.clone(),
            tool_choice: view.tool_choice.clone(),
        };
        let s = Signals::compute(&prefix, hints);
        let c = category::categorize(&prefix, &s, hints);
        let past = route_categorized(&prefix, &s, hints, policy, &c);
        if let Some(t) = past.tier {
            floor = floor.max(t);
        }
    }
    if floor > current {
        let catalog = &policy.catalog;
        let name = catalog.tiers()[floor].name.clone();
        *d = Decision {
            reason: format!(
                "kept at {name}: an earlier turn needed it (was: {})",
                d.reason
            ),
            raised_from: Some(current),
            ..tier_decision(
                catalog,
                floor,
                d.mode,
                String::new(),
                d.source.clone(),
                d.estimate,
            )
        };
    }
}

#[cfg(test)]
mod tests;
