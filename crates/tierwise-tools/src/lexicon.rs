//! Query expansion: groups of related words (`lexicon.txt`, written by hand from general
//! English and common API vocabulary). A query term found in a group also searches the
//! group's other terms, in a separate, down-weighted channel so expansion never pushes a
//! literal match down (see [`crate::query`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::text;

const LEXICON: &str = include_str!("lexicon.txt");

fn table() -> &'static HashMap<String, Vec<String>> {
    static TABLE: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    TABLE.get_or_init(|| parse(LEXICON))
}

fn parse(src: &str) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for line in src.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut group: Vec<String> = line
            .split_whitespace()
            .map(|w| text::stem(&w.to_lowercase()))
            .collect();
        group.sort_unstable();
        group.dedup();
        for w in &group {
            let related = map.entry(w.clone()).or_default();
            related.extend(group.iter().filter(|x| *x != w).cloned());
        }
    }
    for related in map.values_mut() {
        related.sort_unstable();
        related.dedup();
    }
    map
}

/// Terms related to the (stemmed) term `term`, not including itself.
pub fn related(term: &str) -> &'static [String] {
    table().get(term).map(Vec::as_slice).unwrap_or(&[])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn groups_are_symmetric_and_stemmed() {
        let buy = related(&text::stem("buy"));
        assert!(buy.contains(&text::stem("purchase")), "{buy:?}");
        let purchase = related(&text::stem("purchase"));
        assert!(purchase.contains(&text::stem("buy")));
        assert!(!buy.contains(&text::stem("buy")));
        assert!(related("zzzz").is_empty());
    }

    #[test]
    fn every_group_has_two_distinct_terms() {
        for line in LEXICON
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let m = parse(line);
            assert!(m.len() >= 2, "group {line:?} collapses to one stem");
        }
    }
}
