//! `[routing]`: how `model: "auto"` is decided — the mode, the default tier, the ordered rules
//! (`[[routing.rules]]`), the learned router's files (`[routing.learned]`) and the cascade
//! (`[routing.cascade]`, in [`super::cascade`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cascade::{self, Cascade, RawCascade};
use super::{ConfigError, resolve};
use crate::catalog::Catalog;

/// `routing.honor_explicit_model` when absent.
pub const DEFAULT_HONOR_EXPLICIT_MODEL: bool = true;
/// `routing.no_bounce` when absent.
pub const DEFAULT_NO_BOUNCE: bool = true;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub mode: Option<RouterMode>,
    pub default_tier: Option<String>,
    pub honor_explicit_model: Option<bool>,
    pub no_bounce: Option<bool>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    #[serde(default)]
    pub learned: RawLearned,
    #[serde(default)]
    pub cascade: RawCascade,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    pub tier: String,
    pub mode: Option<DispatchMode>,
    #[serde(default)]
    pub when: RuleWhen,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLearned {
    /// Router weights file; relative paths are resolved against the config file's folder.
    pub weights: Option<String>,
    /// Per-tier thresholds on the router's estimate, cheapest tier first (the top tier needs none).
    pub thresholds: Option<Vec<f64>>,
}

/// How `model: "auto"` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RouterMode {
    /// Ordered rules only.
    #[default]
    Rules,
    /// Rules first (explicit categories/roles), then the learned classifier.
    Learned,
    /// Cheap tier first, escalate on a weak answer.
    Cascade,
}

/// How a call is sent to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DispatchMode {
    #[default]
    Sync,
    Batch,
    Flex,
    Cascade,
}

impl DispatchMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            DispatchMode::Sync => "sync",
            DispatchMode::Batch => "batch",
            DispatchMode::Flex => "flex",
            DispatchMode::Cascade => "cascade",
        }
    }
}

/// Conditions of a routing rule; all given conditions must hold (AND). Lists match any element.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleWhen {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub language: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_prompt_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_prompt_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_turns: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub math: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tools: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard_domain: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferrable: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Routing {
    pub mode: RouterMode,
    pub default_tier: usize,
    pub honor_explicit_model: bool,
    pub no_bounce: bool,
    pub rules: Vec<Rule>,
    pub learned_weights: Option<PathBuf>,
    pub learned_thresholds: Option<Vec<f64>>,
    pub cascade: Cascade,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub name: String,
    pub tier: usize,
    pub mode: DispatchMode,
    pub when: RuleWhen,
}

/// Validates `[routing]` against the catalog: every tier named exists, rule names are unique.
/// The default tier is the top one when `default_tier` is absent.
pub(super) fn load(
    raw: RawRouting,
    catalog: &Catalog,
    base_dir: &Path,
) -> Result<Routing, ConfigError> {
    let RawRouting {
        mode,
        default_tier,
        honor_explicit_model,
        no_bounce,
        rules,
        learned,
        cascade,
    } = raw;
    let tier_ref = |name: &str, field: String| -> Result<usize, ConfigError> {
        catalog.tier_index(name).ok_or_else(|| {
            let known: Vec<_> = catalog.tiers().iter().map(|t| t.name.as_str()).collect();
            ConfigError::invalid(
                field,
                format!("no tier named {name:?} (tiers: {})", known.join(", ")),
            )
        })
    };
    let default_tier = match default_tier {
        Some(t) => tier_ref(&t, "routing.default_tier".into())?,
        None => catalog.top(),
    };
    let mut rule_list = Vec::with_capacity(rules.len());
    for (i, r) in rules.into_iter().enumerate() {
        let RawRule {
            name,
            tier,
            mode,
            when,
        } = r;
        if rule_list.iter().any(|o: &Rule| o.name == name) {
            return Err(ConfigError::invalid(
                format!("routing.rules[{i}].name"),
                format!("duplicate rule {name:?}"),
            ));
        }
        if let (Some(lo), Some(hi)) = (when.min_prompt_tokens, when.max_prompt_tokens)
            && lo > hi
        {
            return Err(ConfigError::invalid(
                format!("routing.rules[{i}].when"),
                "min_prompt_tokens exceeds max_prompt_tokens",
            ));
        }
        let tier = tier_ref(&tier, format!("routing.rules[{i}].tier"))?;
        rule_list.push(Rule {
            name,
            tier,
            mode: mode.unwrap_or_default(),
            when,
        });
    }
    let RawLearned {
        weights,
        thresholds,
    } = learned;
    if let Some(t) = &thresholds
        && t.iter().any(|x| !x.is_finite())
    {
        return Err(ConfigError::invalid(
            "routing.learned.thresholds",
            "must be finite numbers",
        ));
    }
    Ok(Routing {
        mode: mode.unwrap_or_default(),
        default_tier,
        honor_explicit_model: honor_explicit_model.unwrap_or(DEFAULT_HONOR_EXPLICIT_MODEL),
        no_bounce: no_bounce.unwrap_or(DEFAULT_NO_BOUNCE),
        rules: rule_list,
        learned_weights: weights.map(|w| resolve(base_dir, w)),
        learned_thresholds: thresholds,
        cascade: cascade::load(cascade, catalog, base_dir)?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, DEFAULT_TOML, no_env};

    #[test]
    fn bad_tier_reference_is_named() {
        let text = format!("{DEFAULT_TOML}\n[[routing.rules]]\nname = \"x\"\ntier = \"huge\"\n");
        let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("tier") && msg.contains("huge"), "{msg}");
    }
}
