//! Matching a rule's conditions against request signals.

use tierwise_core::config::RuleWhen;
use tierwise_core::signals::Signals;

/// `Some(explanation)` when every condition of `when` holds, else `None`.
/// An empty `when` matches everything ("always").
pub fn matches(when: &RuleWhen, s: &Signals) -> Option<String> {
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
