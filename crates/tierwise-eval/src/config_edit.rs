//! Writing `[routing.learned] thresholds` into a config file as a small text edit: comments,
//! order and every other line stay as they are.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EditError {
    #[error("the edited config does not parse: {0}")]
    Parse(String),
    #[error("the edited config does not hold the new thresholds")]
    Verify,
}

/// How the comments this module writes start (so a later calibration can replace them).
pub const CALIBRATED: &str = "# calibrated by";

fn fmt_list(th: &[f64]) -> String {
    let parts: Vec<String> = th
        .iter()
        .map(|t| format!("{}", (t * 1e6).round() / 1e6))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn is_header(line: &str) -> bool {
    line.trim_start().starts_with('[')
        && !line.trim_start().starts_with("[[")
        && line.trim_end().ends_with(']')
        && !line.contains('=')
}

fn header_name(line: &str) -> String {
    line.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim()
        .replace(' ', "")
}

fn any_header(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('[') && !line.contains('=')
}

/// Sets `key = value` (TOML text) in `[table]`: replaces the key's value (keeping a trailing
/// comment; a value may span lines), or adds the key under the table header, or adds the table
/// at the end. `comment` goes above the key (replacing one an earlier calibration left).
fn set_key(text: &str, table: &str, key: &str, value: &str, comment: Option<&str>) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = lines
        .iter()
        .position(|l| is_header(l) && header_name(l) == table);
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 3);
    let comment_line = comment.map(|c| format!("# {c}\n")).unwrap_or_default();
    match start {
        Some(h) => {
            let end = lines[h + 1..]
                .iter()
                .position(|l| any_header(l))
                .map_or(lines.len(), |i| h + 1 + i);
            let found = (h + 1..end).find(|&i| {
                let t = lines[i].trim_start();
                t.strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with('='))
            });
            out.extend(lines[..h + 1].iter().map(|s| s.to_string()));
            match found {
                Some(k) => {
                    out.extend(lines[h + 1..k].iter().map(|s| s.to_string()));
                    // a comment left by an earlier calibration describes the old value
                    if comment.is_some()
                        && k > h + 1
                        && lines[k - 1].trim_start().starts_with(CALIBRATED)
                        && let Some(l) = out.last_mut()
                    {
                        *l = comment_line.clone();
                    } else if comment.is_some() {
                        out.push(comment_line.clone());
                    }
                    // the value may span lines: up to the line closing its brackets
                    let mut last = k;
                    let mut depth = 0i32;
                    for (i, l) in lines.iter().enumerate().take(end).skip(k) {
                        let code = l.split('#').next().unwrap_or("");
                        depth += code.matches(['[', '{']).count() as i32
                            - code.matches([']', '}']).count() as i32;
                        last = i;
                        if depth <= 0 {
                            break;
                        }
                    }
                    let indent: String =
                        lines[k].chars().take_while(|c| c.is_whitespace()).collect();
                    let trailing = lines[last]
                        .split_once('#')
                        .map(|(_, c)| format!("  #{}", c.trim_end_matches(['\n', '\r'])))
                        .unwrap_or_default();
                    out.push(format!("{indent}{key} = {value}{trailing}\n"));
                    out.extend(lines[last + 1..].iter().map(|s| s.to_string()));
                }
                None => {
                    if !lines[h].ends_with('\n')
                        && let Some(l) = out.last_mut()
                    {
                        l.push('\n');
                    }
                    out.push(comment_line);
                    out.push(format!("{key} = {value}\n"));
                    out.extend(lines[h + 1..].iter().map(|s| s.to_string()));
                }
            }
        }
        None => {
            out.extend(lines.iter().map(|s| s.to_string()));
            if let Some(l) = out.last_mut()
                && !l.ends_with('\n')
            {
                l.push('\n');
            }
            out.push(format!("\n[{table}]\n{comment_line}{key} = {value}\n"));
        }
    }
    out.concat()
}

/// Writes a fitted cascade plan into `[routing.cascade]`: `ladder` (the tiers called, cheapest
/// first, ending at the strongest), `thresholds = { tier = τ, … }` for every tier but the last,
/// and `max_attempts` when the ladder is longer than the config allows (`max_attempts`: the
/// file's current value, default 3). Checked to parse and to hold the values.
pub fn set_cascade_plan(
    text: &str,
    ladder: &[String],
    thresholds: &[f64],
    max_attempts: usize,
    comment: &str,
) -> Result<String, EditError> {
    let quoted: Vec<String> = ladder.iter().map(|t| format!("{t:?}")).collect();
    let pairs: Vec<String> = ladder
        .iter()
        .zip(thresholds)
        .take(ladder.len().saturating_sub(1))
        .map(|(t, x)| format!("{t} = {}", (x * 1e6).round() / 1e6))
        .collect();
    let mut new = set_key(
        text,
        "routing.cascade",
        "ladder",
        &format!("[{}]", quoted.join(", ")),
        None,
    );
    new = set_key(
        &new,
        "routing.cascade",
        "thresholds",
        &format!("{{ {} }}", pairs.join(", ")),
        Some(comment),
    );
    if ladder.len() > max_attempts {
        new = set_key(
            &new,
            "routing.cascade",
            "max_attempts",
            &ladder.len().to_string(),
            None,
        );
    }
    let parsed: toml::Table = new
        .parse()
        .map_err(|e: toml::de::Error| EditError::Parse(e.to_string()))?;
    let c = parsed.get("routing").and_then(|r| r.get("cascade"));
    let got_ladder: Option<Vec<&str>> = c
        .and_then(|c| c.get("ladder"))
        .and_then(|l| l.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect());
    let th = c
        .and_then(|c| c.get("thresholds"))
        .and_then(|t| t.as_table());
    let ok = got_ladder.is_some_and(|g| g.iter().copied().eq(ladder.iter().map(String::as_str)))
        && ladder
            .iter()
            .zip(thresholds)
            .take(ladder.len().saturating_sub(1))
            .all(|(t, x)| {
                th.and_then(|m| m.get(t))
                    .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
                    .is_some_and(|v| (v - (x * 1e6).round() / 1e6).abs() < 1e-9)
            });
    if ok { Ok(new) } else { Err(EditError::Verify) }
}

/// Sets `thresholds = [...]` in the `[routing.learned]` table of `text`: replaces the existing
/// key's value (keeping a trailing comment), or adds the key under the table header, or adds
/// the table at the end. The result is checked to parse and to hold the values.
pub fn set_learned_thresholds(
    text: &str,
    thresholds: &[f64],
    comment: &str,
) -> Result<String, EditError> {
    let new = set_key(
        text,
        "routing.learned",
        "thresholds",
        &fmt_list(thresholds),
        Some(comment),
    );
    let parsed: toml::Table = new
        .parse()
        .map_err(|e: toml::de::Error| EditError::Parse(e.to_string()))?;
    let got: Option<Vec<f64>> = parsed
        .get("routing")
        .and_then(|r| r.get("learned"))
        .and_then(|l| l.get("thresholds"))
        .and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
                .collect()
        });
    let want: Vec<f64> = thresholds.iter().map(|t| (t * 1e6).round() / 1e6).collect();
    match got {
        Some(g)
            if g.len() == want.len() && g.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-9) =>
        {
            Ok(new)
        }
        _ => Err(EditError::Verify),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests may unwrap"
)]
mod tests {
    use super::*;

    const CFG: &str = "# top comment\nlisten = \"127.0.0.1:8080\"\n\n[routing]\nmode = \"learned\" # why\n\n[routing.learned]\nweights = \"router/default.json\"  # shipped\n\n[tools]\nmode = \"prune\"\n";

    #[test]
    fn adds_key_under_existing_table_and_keeps_comments() {
        let out = set_learned_thresholds(CFG, &[0.7, 0.6, 0.5], "calibrated").unwrap();
        assert!(
            out.contains("# top comment") && out.contains("# why") && out.contains("# shipped")
        );
        assert!(out.contains("thresholds = [0.7, 0.6, 0.5]\n"));
        assert!(out.find("thresholds").unwrap() < out.find("[tools]").unwrap());
        // only additions
        assert_eq!(out.lines().count(), CFG.lines().count() + 2);
    }

    #[test]
    fn replaces_existing_value_even_multiline() {
        let once = set_learned_thresholds(CFG, &[0.7, 0.6], "c").unwrap();
        let twice = set_learned_thresholds(&once, &[0.1, 0.2], "c").unwrap();
        assert!(twice.contains("thresholds = [0.1, 0.2]\n"));
        let a = set_learned_thresholds(CFG, &[0.7], "calibrated by A").unwrap();
        let b = set_learned_thresholds(&a, &[0.6], "calibrated by B").unwrap();
        assert!(
            b.contains("# calibrated by B\nthresholds = [0.6]\n") && !b.contains("by A"),
            "{b}"
        );
        assert_eq!(twice.matches("thresholds").count(), 1);
        let multi = CFG.replace(
            "weights = \"router/default.json\"  # shipped\n",
            "weights = \"w.json\"\nthresholds = [\n  0.9,\n  0.8,\n] # old\n",
        );
        let out = set_learned_thresholds(&multi, &[0.3, 0.4], "c").unwrap();
        assert!(out.contains("thresholds = [0.3, 0.4]  # old\n"), "{out}");
        assert!(!out.contains("0.9"));
    }

    #[test]
    fn writes_a_cascade_plan() {
        let cfg = "[routing]\nmode = \"rules\"\n\n[routing.cascade]\n# thresholds = 0.5\nmax_attempts = 3 # at most\nsamples = 1\n\n[tools]\nmode = \"prune\"\n";
        let ladder = vec!["mini".to_string(), "flagship".to_string()];
        let out = set_cascade_plan(cfg, &ladder, &[0.5684, 0.0], 3, "calibrated by X").unwrap();
        assert!(
            out.contains("[routing.cascade]\n# calibrated by X\nthresholds = { mini = 0.5684 }\nladder = [\"mini\", \"flagship\"]\n"),
            "{out}"
        );
        assert!(out.contains("max_attempts = 3 # at most") && out.contains("# thresholds = 0.5"));
        // again, with a longer plan: values replaced, one comment, max_attempts raised
        let four: Vec<String> = ["nano", "mini", "standard", "flagship"]
            .map(String::from)
            .to_vec();
        let again =
            set_cascade_plan(&out, &four, &[0.7, 0.6, 0.5, 0.0], 3, "calibrated by Y").unwrap();
        assert!(
            again.contains(
                "# calibrated by Y\nthresholds = { nano = 0.7, mini = 0.6, standard = 0.5 }\n"
            ),
            "{again}"
        );
        assert!(again.contains("max_attempts = 4  # at most"), "{again}");
        assert_eq!(again.matches("ladder =").count(), 1);
        assert!(!again.contains("by X"));
        // no table yet: appended
        let out =
            set_cascade_plan("listen = \"127.0.0.1:1\"\n", &ladder, &[0.5, 0.0], 3, "c").unwrap();
        assert!(out.ends_with("[routing.cascade]\n# c\nthresholds = { mini = 0.5 }\nladder = [\"mini\", \"flagship\"]\n"), "{out}");
    }

    #[test]
    fn appends_table_when_missing() {
        let out = set_learned_thresholds("listen = \"127.0.0.1:1\"", &[0.5], "c").unwrap();
        assert!(out.ends_with("[routing.learned]\n# c\nthresholds = [0.5]\n"));
    }
}
