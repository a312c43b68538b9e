//! The database's match clauses (`equals`, `starts_with`, `ends_with`, `contains`, `regex`,
//! `or`, `and`), parsed from JSON with a path for the first error.

use regex::Regex;
use serde_json::Value;

/// A model-id (or provider-id) matcher.
#[derive(Debug, Clone)]
pub enum Clause {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    Regex(Regex),
    Or(Vec<Clause>),
    And(Vec<Clause>),
}

impl Clause {
    /// Parses a clause object; `path` names it in the error.
    pub fn parse(v: &Value, path: &str) -> Result<Clause, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("{path}: a match clause must be an object"))?;
        if obj.len() != 1 {
            return Err(format!(
                "{path}: a match clause has exactly one key, found {}",
                obj.len()
            ));
        }
        let Some((key, val)) = obj.iter().next() else {
            return Err(format!("{path}: empty match clause"));
        };
        let text = || {
            val.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{path}.{key}: must be a string"))
        };
        let list = || -> Result<Vec<Clause>, String> {
            let items = val
                .as_array()
                .ok_or_else(|| format!("{path}.{key}: must be an array"))?;
            if items.is_empty() {
                return Err(format!("{path}.{key}: must not be empty"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, c)| Clause::parse(c, &format!("{path}.{key}[{i}]")))
                .collect()
        };
        Ok(match key.as_str() {
            "equals" => Clause::Equals(text()?),
            "starts_with" => Clause::StartsWith(text()?),
            "ends_with" => Clause::EndsWith(text()?),
            "contains" => Clause::Contains(text()?),
            "regex" => Clause::Regex(
                Regex::new(&text()?).map_err(|e| format!("{path}.regex: invalid regex: {e}"))?,
            ),
            "or" => Clause::Or(list()?),
            "and" => Clause::And(list()?),
            other => return Err(format!("{path}: unknown match clause {other:?}")),
        })
    }

    pub fn matches(&self, s: &str) -> bool {
        match self {
            Clause::Equals(x) => s == x,
            Clause::StartsWith(x) => s.starts_with(x.as_str()),
            Clause::EndsWith(x) => s.ends_with(x.as_str()),
            Clause::Contains(x) => s.contains(x.as_str()),
            Clause::Regex(r) => r.is_match(s),
            Clause::Or(cs) => cs.iter().any(|c| c.matches(s)),
            Clause::And(cs) => cs.iter().all(|c| c.matches(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clauses_match() {
        let c = Clause::parse(
            &json!({"or": [{"equals": "gpt-5.4"}, {"regex": "^gpt-5\\.4-\\d{4}-\\d{2}-\\d{2}$"}]}),
            "m",
        )
        .unwrap();
        assert!(c.matches("gpt-5.4"));
        assert!(c.matches("gpt-5.4-2026-03-05"));
        assert!(!c.matches("gpt-5.4-mini"));
        let err = Clause::parse(&json!({"regex": "("}), "p.match").unwrap_err();
        assert!(err.starts_with("p.match.regex: invalid regex"), "{err}");
        let err = Clause::parse(&json!({"glob": "x"}), "p").unwrap_err();
        assert!(err.contains("unknown match clause"), "{err}");
    }
}
