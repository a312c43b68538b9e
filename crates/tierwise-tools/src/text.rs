//! Text analysis shared by the index and the queries: identifier splitting, lowercasing,
//! stop words, light stemming (Snowball English), and splitting a request into clauses.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use rust_stemmers::{Algorithm, Stemmer};

/// Words too common in requests and tool descriptions to tell tools apart.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but",
    "by", "can", "could", "did", "do", "does", "for", "from", "give", "had", "has", "have", "he",
    "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "let", "like", "me",
    "my", "need", "no", "not", "of", "on", "or", "our", "please", "she", "should", "so", "some",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "to", "us", "want", "was", "we", "were", "what", "when", "where", "which", "who", "whom",
    "why", "will", "with", "would", "you", "your",
];

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

fn is_stop(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// Splits identifiers and prose into lowercase words: `get_weather_forecast` → get weather
/// forecast, `getHTTPStatus2` → get http status 2, `Wi-Fi` → wi fi.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            flush(&mut cur, &mut out);
            continue;
        }
        if let Some(&prev) = i.checked_sub(1).and_then(|p| chars.get(p)) {
            let next = chars.get(i + 1).copied();
            let boundary = (prev.is_lowercase() && c.is_uppercase())
                || (prev.is_alphabetic() && c.is_numeric())
                || (prev.is_numeric() && c.is_alphabetic())
                // `HTTPServer`: the last capital of a run starts the next word.
                || (prev.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase));
            if boundary {
                flush(&mut cur, &mut out);
            }
        }
        cur.extend(c.to_lowercase());
    }
    flush(&mut cur, &mut out);
    out
}

fn flush(cur: &mut String, out: &mut Vec<String>) {
    if !cur.is_empty() {
        out.push(std::mem::take(cur));
    }
}

/// Index terms of `text`: words without stop words and bare numbers, stemmed.
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !is_stop(w) && !w.chars().all(|c| c.is_numeric()))
        .map(|w| stem(&w))
        .collect()
}

/// [`terms`] with a word → stem cache (indexing many tools repeats the same words).
pub fn terms_cached(text: &str, cache: &mut HashMap<String, String>) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !is_stop(w) && !w.chars().all(|c| c.is_numeric()))
        .map(|w| match cache.get(&w) {
            Some(s) => s.clone(),
            None => {
                let s = stem(&w);
                cache.insert(w, s.clone());
                s
            }
        })
        .collect()
}

/// The stem of one lowercase word.
pub fn stem(word: &str) -> String {
    stemmer().stem(word).into_owned()
}

fn clause_splitter() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)[.!?;]+\s+|\n+|\b(?:and then|after that|afterwards|additionally|also|finally|furthermore|moreover|besides|lastly|as well as|in addition|then|next)\b,?",
        )
        .ok()
    })
    .as_ref()
}

/// The clauses of a request that may each ask for a different tool: sentences, lines, and
/// parts joined by "then", "also", "finally", … Clauses with fewer than two index terms are
/// dropped. A text with one clause gives one clause (itself, trimmed).
pub fn clauses(text: &str) -> Vec<String> {
    let Some(re) = clause_splitter() else {
        return vec![text.trim().to_string()];
    };
    re.split(text)
        .map(str::trim)
        .filter(|s| terms(s).len() >= 2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        let mut sorted = STOP_WORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOP_WORDS);
    }

    #[test]
    fn splits_identifiers() {
        assert_eq!(
            words("get_weather_forecast"),
            ["get", "weather", "forecast"]
        );
        assert_eq!(words("getHTTPStatus2"), ["get", "http", "status", "2"]);
        assert_eq!(words("analyzeEvidence"), ["analyze", "evidence"]);
        assert_eq!(words("math.hypot"), ["math", "hypot"]);
        assert_eq!(words("v2Api"), ["v", "2", "api"]);
        assert!(words("").is_empty());
    }

    #[test]
    fn terms_drop_stop_words_and_numbers_and_stem() {
        assert_eq!(
            terms("Find the nearest pharmacies in 2024"),
            ["find", "nearest", "pharmaci"]
        );
        assert_eq!(terms("getForecasts"), ["get", "forecast"]);
    }

    #[test]
    fn clauses_split_multi_step_requests() {
        let c = clauses(
            "Retrieve the weather in Paris. Then book a flight to Rome, and finally send an email to Bob.",
        );
        assert_eq!(c.len(), 3, "{c:?}");
        assert!(c[1].contains("flight"));
        // Decimals do not split; short fragments are dropped.
        assert_eq!(clauses("Compute the gain at 47.7 Hz please.").len(), 1);
        assert_eq!(clauses("ok. Then list files in the folder").len(), 1);
    }
}
