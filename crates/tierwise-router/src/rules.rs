//! Matching a rule's conditions against request signals.

use tierwise_core::config::RuleWhen;
use tierwise_core::signals::Signals;

/// Whether every condition of `when` holds: `matches(when, s).is_some()`, without building
/// the explanation (routing checks rules in order and explains only the one that matched).
pub fn holds(when: &RuleWhen, s: &Signals) -> bool {
    let in_list = |list: &[String], v: Option<&str>| {
        list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v)))
    };
    let flag = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
    in_list(&when.category, s.category.as_deref())
        && in_list(&when.role, s.role.as_deref())
        && in_list(&when.language, Some(s.language))
        && when
            .min_prompt_tokens
            .is_none_or(|lo| s.prompt_tokens >= lo)
        && when
            .max_prompt_tokens
            .is_none_or(|hi| s.prompt_tokens <= hi)
        && when.min_turns.is_none_or(|lo| s.turns >= lo)
        && when.max_turns.is_none_or(|hi| s.turns <= hi)
        && flag(when.code, s.code)
        && flag(when.math, s.math)
        && flag(when.structured_output, s.structured_output)
        && flag(when.tools, s.tools > 0)
        && flag(when.hard_domain, !s.hard_domain.is_empty())
        && flag(when.deferrable, s.deferrable)
        && when.min_tools.is_none_or(|lo| s.tools >= lo)
}

/// `Some(explanation)` when every condition of `when` holds, else `None`.
/// An empty `when` matches everything ("always").
pub fn matches(when: &RuleWhen, s: &Signals) -> Option<String> {
    if !holds(when, s) {
        return None;
    }
    let mut why = String::new();
    explain_into(when, s, &mut why);
    Some(why)
}

/// Appends [`matches`]'s explanation of a rule that [`holds`] to `why`.
pub fn explain_into(when: &RuleWhen, s: &Signals, why: &mut String) {
    use std::fmt::Write as _;
    // the parts joined by ", " (writing to a String cannot fail)
    let start = why.len();
    let part = |why: &mut String| {
        if why.len() > start {
            why.push_str(", ");
        }
    };
    if !when.category.is_empty() {
        part(why);
        let _ = write!(why, "category={}", s.category.as_deref().unwrap_or(""));
    }
    if !when.role.is_empty() {
        part(why);
        let _ = write!(why, "role={}", s.role.as_deref().unwrap_or(""));
    }
    if !when.language.is_empty() {
        part(why);
        let _ = write!(why, "language={}", s.language);
    }
    if let Some(lo) = when.min_prompt_tokens {
        part(why);
        let _ = write!(why, "{} tokens ≥ {lo}", s.prompt_tokens);
    }
    if let Some(hi) = when.max_prompt_tokens {
        part(why);
        let _ = write!(why, "{} tokens ≤ {hi}", s.prompt_tokens);
    }
    if let Some(lo) = when.min_turns {
        part(why);
        let _ = write!(why, "{} turns ≥ {lo}", s.turns);
    }
    if let Some(hi) = when.max_turns {
        part(why);
        let _ = write!(why, "{} turns ≤ {hi}", s.turns);
    }
    for (want, have, name) in [
        (when.code, s.code, "code"),
        (when.math, s.math, "math"),
        (
            when.structured_output,
            s.structured_output,
            "structured output",
        ),
        (when.tools, s.tools > 0, "tools"),
        (when.hard_domain, !s.hard_domain.is_empty(), "hard domain"),
        (when.deferrable, s.deferrable, "deferrable"),
    ] {
        if want.is_some() {
            part(why);
            if !have {
                why.push_str("no ");
            }
            why.push_str(name);
        }
    }
    if let Some(lo) = when.min_tools {
        part(why);
        let _ = write!(why, "{} tools ≥ {lo}", s.tools);
    }
    if why.len() == start {
        why.push_str("always");
    }
    if !s.hard_domain.is_empty() && when.hard_domain == Some(true) {
        part(why);
        let _ = write!(why, "[{}]", s.hard_domain.join(","));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    /// `matches` as it was: checks and explanation interleaved, the parts joined at the end.
    fn reference(when: &RuleWhen, s: &Signals) -> Option<String> {
        let mut why: Vec<String> = Vec::new();
        let in_list = |list: &[String], v: Option<&str>| {
            v.is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v)))
        };
        if !when.category.is_empty() {
            if !in_list(&when.category, s.category.as_deref()) {
                return None;
            }
            why.push(format!("category={}", s.category.as_deref().unwrap_or("")));
        }
        if !when.role.is_empty() {
            if !in_list(&when.role, s.role.as_deref()) {
                return None;
            }
            why.push(format!("role={}", s.role.as_deref().unwrap_or("")));
        }
        if !when.language.is_empty() {
            if !in_list(&when.language, Some(s.language)) {
                return None;
            }
            why.push(format!("language={}", s.language));
        }
        if let Some(lo) = when.min_prompt_tokens {
            if s.prompt_tokens < lo {
                return None;
            }
            why.push(format!("{} tokens ≥ {lo}", s.prompt_tokens));
        }
        if let Some(hi) = when.max_prompt_tokens {
            if s.prompt_tokens > hi {
                return None;
            }
            why.push(format!("{} tokens ≤ {hi}", s.prompt_tokens));
        }
        if let Some(lo) = when.min_turns {
            if s.turns < lo {
                return None;
            }
            why.push(format!("{} turns ≥ {lo}", s.turns));
        }
        if let Some(hi) = when.max_turns {
            if s.turns > hi {
                return None;
            }
            why.push(format!("{} turns ≤ {hi}", s.turns));
        }
        let flag = |want: Option<bool>, have: bool, name: &str, why: &mut Vec<String>| -> bool {
            match want {
                None => true,
                Some(w) if w == have => {
                    why.push(if have {
                        name.to_string()
                    } else {
                        format!("no {name}")
                    });
                    true
                }
                Some(_) => false,
            }
        };
        if !flag(when.code, s.code, "code", &mut why)
            || !flag(when.math, s.math, "math", &mut why)
            || !flag(
                when.structured_output,
                s.structured_output,
                "structured output",
                &mut why,
            )
            || !flag(when.tools, s.tools > 0, "tools", &mut why)
            || !flag(
                when.hard_domain,
                !s.hard_domain.is_empty(),
                "hard domain",
                &mut why,
            )
            || !flag(when.deferrable, s.deferrable, "deferrable", &mut why)
        {
            return None;
        }
        if let Some(lo) = when.min_tools {
            if s.tools < lo {
                return None;
            }
            why.push(format!("{} tools ≥ {lo}", s.tools));
        }
        if why.is_empty() {
            why.push("always".to_string());
        }
        if !s.hard_domain.is_empty() && when.hard_domain == Some(true) {
            why.push(format!("[{}]", s.hard_domain.join(",")));
        }
        Some(why.join(", "))
    }

    /// `holds` says what `matches` says, and `matches` what it said before (`reference`), for every rule of the shipped config and a grid of
    /// rules with one or two conditions, over a grid of signals.
    #[test]
    fn holds_is_matches_is_some() {
        let base = Signals {
            prompt_tokens: 0,
            tool_tokens: 0,
            last_user_tokens: 0,
            turns: 1,
            messages: 1,
            has_system: false,
            code_blocks: 0,
            code: false,
            math: false,
            structured_output: false,
            tools: 0,
            hard_domain: Vec::new(),
            language: "en",
            role: None,
            category: None,
            deferrable: false,
        };
        let mut signals = Vec::new();
        let domains = |k: usize| match k {
            0 => vec!["law".to_string()],
            _ => vec!["law".to_string(), "medicine".to_string()],
        };
        for (i, cat) in [None, Some("extraction"), Some("Coding"), Some("other")]
            .into_iter()
            .enumerate()
        {
            for bits in 0..64u32 {
                let b = |k: u32| bits & (1 << k) != 0;
                signals.push(Signals {
                    prompt_tokens: [0, 299, 300, 5000][(bits as usize + i) % 4],
                    turns: 1 + (bits as usize % 3),
                    code: b(0),
                    math: b(1),
                    structured_output: b(2),
                    tools: if b(3) { 2 + i } else { 0 },
                    hard_domain: if b(4) { domains(i % 2) } else { Vec::new() },
                    deferrable: b(5),
                    language: ["en", "cjk"][i % 2],
                    role: (i == 1).then(|| "sub-agent".to_string()),
                    category: cat.map(str::to_string),
                    ..base.clone()
                });
            }
        }
        let config = tierwise_core::Config::embedded(&|_| None).unwrap();
        let mut whens: Vec<RuleWhen> = config
            .routing
            .rules
            .iter()
            .map(|r| r.when.clone())
            .collect();
        let one = |f: &dyn Fn(&mut RuleWhen)| {
            let mut w = RuleWhen::default();
            f(&mut w);
            w
        };
        let list = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let singles: Vec<RuleWhen> = vec![
            RuleWhen::default(),
            one(&|w| w.category = list(&["coding", "extraction"])),
            one(&|w| w.role = list(&["SUB-AGENT"])),
            one(&|w| w.language = list(&["cjk"])),
            one(&|w| w.min_prompt_tokens = Some(300)),
            one(&|w| w.max_prompt_tokens = Some(299)),
            one(&|w| w.min_turns = Some(2)),
            one(&|w| w.max_turns = Some(2)),
            one(&|w| w.code = Some(true)),
            one(&|w| w.code = Some(false)),
            one(&|w| w.math = Some(true)),
            one(&|w| w.structured_output = Some(false)),
            one(&|w| w.tools = Some(true)),
            one(&|w| w.tools = Some(false)),
            one(&|w| w.min_tools = Some(3)),
            one(&|w| w.hard_domain = Some(true)),
            one(&|w| w.deferrable = Some(true)),
        ];
        for a in &singles {
            for b in &singles {
                let mut w = a.clone();
                let d = b.clone();
                if w.category.is_empty() {
                    w.category = d.category;
                }
                if w.role.is_empty() {
                    w.role = d.role;
                }
                if w.language.is_empty() {
                    w.language = d.language;
                }
                w.min_prompt_tokens = w.min_prompt_tokens.or(d.min_prompt_tokens);
                w.max_prompt_tokens = w.max_prompt_tokens.or(d.max_prompt_tokens);
                w.min_turns = w.min_turns.or(d.min_turns);
                w.max_turns = w.max_turns.or(d.max_turns);
                w.code = w.code.or(d.code);
                w.math = w.math.or(d.math);
                w.structured_output = w.structured_output.or(d.structured_output);
                w.tools = w.tools.or(d.tools);
                w.min_tools = w.min_tools.or(d.min_tools);
                w.hard_domain = w.hard_domain.or(d.hard_domain);
                w.deferrable = w.deferrable.or(d.deferrable);
                whens.push(w);
            }
        }
        let mut held = 0;
        for w in &whens {
            for s in &signals {
                let m = matches(w, s);
                assert_eq!(m, reference(w, s), "{w:?} {s:?}");
                if let Some(why) = &m {
                    let mut prefixed = "rule r (".to_string();
                    explain_into(w, s, &mut prefixed);
                    assert_eq!(prefixed, format!("rule r ({why}"));
                }
                assert_eq!(holds(w, s), m.is_some(), "{w:?} {s:?}");
                held += usize::from(m.is_some());
            }
        }
        // both outcomes are exercised
        assert!(
            held > 1000 && held < whens.len() * signals.len() - 1000,
            "{held}"
        );
    }
}
