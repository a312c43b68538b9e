//! `[routing.cascade]`: how a cascade walks the ladder — acceptance thresholds, attempts, the
//! latency budget, the scorer file, the tiers walked, samples per attempt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, resolve};
use crate::catalog::Catalog;

/// `routing.cascade.max_attempts` when absent.
pub const DEFAULT_MAX_ATTEMPTS: usize = 3;
/// `routing.cascade.latency_budget_ms` when absent.
pub const DEFAULT_LATENCY_BUDGET_MS: u64 = 60_000;
/// `routing.cascade.samples` when absent.
pub const DEFAULT_SAMPLES: u32 = 1;
/// `routing.cascade.logprobs` when absent.
pub const DEFAULT_LOGPROBS: bool = false;

/// `[routing.cascade]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCascade {
    /// Acceptance threshold on the scorer's P(good enough): one number for every tier, or a
    /// table `{ nano = 0.6, mini = 0.55 }` (tiers not named use `default`, else the scorer's).
    pub thresholds: Option<RawThresholds>,
    /// Tiers tried at most per request (≥ 1; the last one tried is always kept).
    pub max_attempts: Option<usize>,
    /// Wall time after which the answer in hand is returned (no further tier is awaited).
    pub latency_budget_ms: Option<u64>,
    /// Scorer weights file; relative paths resolve against the config file's folder.
    pub scorer: Option<String>,
    /// Tiers the cascade walks, cheapest first (default: every tier).
    pub ladder: Option<Vec<String>>,
    /// Cheap samples per attempt below the top: 1, or 2 (their agreement gates acceptance).
    pub samples: Option<u32>,
    /// Ask the upstream for token log-probabilities on cascade calls below the top.
    pub logprobs: Option<bool>,
}

/// `thresholds` as written: a number, or a table of tier name (or `default`) → number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawThresholds {
    One(f64),
    PerTier(BTreeMap<String, f64>),
}

/// Validated `[routing.cascade]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cascade {
    /// Threshold for tiers without their own (`None`: the scorer file's default).
    pub default_threshold: Option<f64>,
    /// Per ladder tier (index as in the catalog): its own threshold, if set.
    pub thresholds: Vec<Option<f64>>,
    pub max_attempts: usize,
    pub latency_budget_ms: u64,
    /// Scorer file (`None`: the scorer embedded in the binary).
    pub scorer: Option<PathBuf>,
    /// Catalog tier indices the cascade may walk, ascending.
    pub ladder: Vec<usize>,
    /// 1 or 2 cheap samples per attempt below the top.
    pub samples: u32,
    pub logprobs: bool,
}

impl Cascade {
    /// Defaults for a catalog of `tiers` tiers (what an absent `[routing.cascade]` means).
    pub fn defaults(tiers: usize) -> Cascade {
        Cascade {
            default_threshold: None,
            thresholds: vec![None; tiers],
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            latency_budget_ms: DEFAULT_LATENCY_BUDGET_MS,
            scorer: None,
            ladder: (0..tiers).collect(),
            samples: DEFAULT_SAMPLES,
            logprobs: DEFAULT_LOGPROBS,
        }
    }

    /// The acceptance threshold of catalog tier `tier`, `scorer_default` when none is set.
    pub fn threshold(&self, tier: Option<usize>, scorer_default: f64) -> f64 {
        tier.and_then(|t| self.thresholds.get(t).copied().flatten())
            .or(self.default_threshold)
            .unwrap_or(scorer_default)
    }
}

/// Validates `[routing.cascade]` against the catalog.
pub(super) fn load(
    raw: RawCascade,
    catalog: &Catalog,
    base_dir: &Path,
) -> Result<Cascade, ConfigError> {
    let RawCascade {
        thresholds,
        max_attempts,
        latency_budget_ms,
        scorer,
        ladder,
        samples,
        logprobs,
    } = raw;
    let n = catalog.tiers().len();
    let mut c = Cascade::defaults(n);
    let field = "routing.cascade.thresholds";
    let check = |t: f64, key: &str| -> Result<f64, ConfigError> {
        if (0.0..=1.0).contains(&t) {
            Ok(t)
        } else {
            Err(ConfigError::invalid(
                format!("{field}{key}"),
                format!("{t} is not a probability in [0, 1]"),
            ))
        }
    };
    match thresholds {
        None => {}
        Some(RawThresholds::One(t)) => c.default_threshold = Some(check(t, "")?),
        Some(RawThresholds::PerTier(map)) => {
            for (name, t) in map {
                let t = check(t, &format!(".{name}"))?;
                if name == "default" {
                    c.default_threshold = Some(t);
                    continue;
                }
                let i = catalog.tier_index(&name).ok_or_else(|| {
                    let known: Vec<_> = catalog.tiers().iter().map(|t| t.name.as_str()).collect();
                    ConfigError::invalid(
                        format!("{field}.{name}"),
                        format!(
                            "no tier named {name:?} (tiers: {}, or default)",
                            known.join(", ")
                        ),
                    )
                })?;
                c.thresholds[i] = Some(t);
            }
        }
    }
    if let Some(m) = max_attempts {
        if m == 0 {
            return Err(ConfigError::invalid(
                "routing.cascade.max_attempts",
                "must be at least 1",
            ));
        }
        c.max_attempts = m;
    }
    if let Some(ms) = latency_budget_ms {
        c.latency_budget_ms = ms;
    }
    c.scorer = scorer.map(|s| resolve(base_dir, s));
    if let Some(names) = ladder {
        let mut idx = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let t = catalog.tier_index(name).ok_or_else(|| {
                ConfigError::invalid(
                    format!("routing.cascade.ladder[{i}]"),
                    format!("no tier named {name:?}"),
                )
            })?;
            if idx.last().is_some_and(|&l| l >= t) {
                return Err(ConfigError::invalid(
                    "routing.cascade.ladder",
                    "tiers must be listed once each, cheapest first",
                ));
            }
            idx.push(t);
        }
        if idx.is_empty() {
            return Err(ConfigError::invalid(
                "routing.cascade.ladder",
                "must name at least one tier",
            ));
        }
        c.ladder = idx;
    }
    if let Some(s) = samples {
        if !(1..=2).contains(&s) {
            return Err(ConfigError::invalid(
                "routing.cascade.samples",
                "must be 1 or 2",
            ));
        }
        c.samples = s;
    }
    c.logprobs = logprobs.unwrap_or(DEFAULT_LOGPROBS);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, no_env};
    use super::*;

    #[test]
    fn cascade_section() {
        const BASE: &str = "[[tiers]]\nname = \"nano\"\nmodel = \"n\"\ninput = 1\ncached_input = 1\noutput = 1\n[[tiers]]\nname = \"mini\"\nmodel = \"m\"\ninput = 2\ncached_input = 2\noutput = 2\n[[tiers]]\nname = \"standard\"\nmodel = \"s\"\ninput = 3\ncached_input = 3\noutput = 3\n[[tiers]]\nname = \"flagship\"\nmodel = \"f\"\ninput = 4\ncached_input = 4\noutput = 4\n";
        let c = Config::embedded(&no_env).unwrap();
        assert_eq!(c.routing.cascade, Cascade::defaults(4));
        assert_eq!(c.routing.cascade.threshold(Some(1), 0.7), 0.7);
        let text = format!(
            "{BASE}\n[routing.cascade]\nthresholds = {{ nano = 0.6, default = 0.5 }}\nmax_attempts = 2\nlatency_budget_ms = 150\nladder = [\"nano\", \"flagship\"]\nsamples = 2\nscorer = \"s.json\"\n"
        );
        let c = Config::from_toml(&text, Path::new("/cfg"), &no_env)
            .unwrap()
            .routing
            .cascade;
        assert_eq!(c.threshold(Some(0), 0.9), 0.6);
        assert_eq!(c.threshold(Some(1), 0.9), 0.5);
        assert_eq!(
            (c.max_attempts, c.latency_budget_ms, c.samples),
            (2, 150, 2)
        );
        assert_eq!(c.ladder, [0, 3]);
        assert_eq!(c.scorer.as_deref(), Some(Path::new("/cfg/s.json")));
        let one = format!("{BASE}\n[routing.cascade]\nthresholds = 0.4\n");
        let c = Config::from_toml(&one, Path::new("."), &no_env).unwrap();
        assert_eq!(c.routing.cascade.threshold(Some(2), 0.9), 0.4);
        for (bad, named) in [
            ("thresholds = { huge = 0.5 }", "huge"),
            ("thresholds = 1.5", "thresholds"),
            ("max_attempts = 0", "max_attempts"),
            ("ladder = [\"mini\", \"nano\"]", "ladder"),
            ("samples = 3", "samples"),
            ("threshold = 0.5", "threshold"),
        ] {
            let text = format!("{BASE}\n[routing.cascade]\n{bad}\n");
            let err = Config::from_toml(&text, Path::new("."), &no_env).unwrap_err();
            assert!(err.to_string().contains(named), "{bad}: {err}");
        }
    }
}
