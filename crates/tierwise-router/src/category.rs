//! The categorizer: what kind of work a call is, from its request alone. Fast (a few regexes
//! over the instructions and the last user turn, no model) and deterministic.
//!
//! Categories: `classification`, `extraction`, `summarization`, `writing`, `coding`,
//! `reasoning` (math, logic, quantitative science), `conversation` (chat and general
//! knowledge questions), `agentic` (tool use), `other` (no natural-language task to read).
//!
//! Order of the checks, first match wins:
//! 1. `metadata.category` (or `x-tierwise-category`) names the category. Known aliases are
//!    normalised (`math` → `reasoning`, `tool-use` → `agentic`, `chat` → `conversation`, …);
//!    any other label is kept as the team wrote it.
//! 2. `agentic`: the call offers tools, or the conversation has tool calls / tool results.
//! 3. The system / developer prompt states the task: summarize → `summarization`, extract /
//!    fill a schema → `extraction`, classify / label / sentiment → `classification`, write /
//!    rewrite / translate → `writing`, a coding or math assistant → `coding` / `reasoning`.
//! 4. `reasoning` (first pass): a logic puzzle (clues, riddle), `\boxed{}`, an `[asy]` figure,
//!    or LaTeX math in the last user turn.
//! 5. `coding`: code in the last user turn (fences, code-like lines, a `def`/`class` line,
//!    doctests) or a request to write, fix or explain code.
//! 6. `reasoning`: math in the last user turn ([`tierwise_core::signals::looks_like_math`] via
//!    [`Signals::math`]), a quantitative word problem (a number, in digits or words, and "how
//!    many", "total", "twice", "per hour", …), quantitative science (units, physics and
//!    chemistry terms), or a derivation asked for ("derive", "closed-form").
//! 7. The last user turn states the task (same verbs as 3).
//! 8. `other`: no natural-language text (empty, only numbers or symbols, or a bare list of words
//!    with no instruction).
//! 9. `conversation`: everything else (questions, chat turns, knowledge prompts).
//!
//! **Sure or unsure.** A category named by a hint (1), read from the request's structure (2) or
//! stated by the system / developer prompt (3) is *sure*. One inferred from the last user turn
//! (4–9) is sure only when the evidence is structural (a code fence, a definition line, LaTeX, a
//! puzzle's figure) or the turn *opens* with its task (the verbs of 3 in its first
//! [`OPENING`] bytes) and has no code, math or hard-domain signal; otherwise it is unsure.
//! `conversation` and `other`, the fall-throughs, are never sure, and name no evidence: rules
//! do not read them. [`crate::decide`] lets an unsure category raise or keep the tier the rules
//! without it would choose, never lower it (and in learned mode, not decide at all).
//!
//! Agreement with real labels is measured by `tierwise-audit`'s
//! `examples/categorizer_agreement.rs` (figures in `docs/benchmarks.md`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::OnceLock;

use regex::{Regex, RegexSet};
use tierwise_core::request::RequestView;
use tierwise_core::signals::{Hints, Signals, looks_like_code};

use serde::Serialize;
use tierwise_core::hash::FastMap;

/// The built-in categories, in report order.
pub const CATEGORIES: &[&str] = &[
    "classification",
    "extraction",
    "summarization",
    "writing",
    "coding",
    "reasoning",
    "conversation",
    "agentic",
    "other",
];

/// How much of a text the categorizer reads: the head (instructions usually open a prompt)
/// and the tail (or close it). Keeps the cost flat for long documents.
const HEAD: usize = 1500;
const TAIL: usize = 600;

/// A task verb within this many bytes of the start of the last user turn opens it (sure).
pub const OPENING: usize = 200;

/// Where a request's category came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CategorySource {
    /// `x-tierwise-category` / `metadata.category`.
    Hint,
    /// Computed by [`categorize`] from the request.
    Categorizer,
}

impl CategorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            CategorySource::Hint => "hint",
            CategorySource::Categorizer => "categorizer",
        }
    }
}

/// The category of one request, where it came from, and whether it is sure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Category {
    /// A built-in category ([`CATEGORIES`]) or a hint's own label (normalised).
    pub name: Cow<'static, str>,
    pub source: CategorySource,
    /// False when only weak evidence from the user turn says so: routing may then use it to
    /// raise a tier, never to lower one.
    pub sure: bool,
}

impl Category {
    fn inferred(name: &'static str, sure: bool) -> Category {
        Category {
            name: Cow::Borrowed(name),
            source: CategorySource::Categorizer,
            sure,
        }
    }

    /// The categorizer's fall-through (`conversation`, `other`): no task was recognised, so
    /// routing rules do not read it (a hint naming it is read as usual).
    pub fn is_fallthrough(&self) -> bool {
        self.source == CategorySource::Categorizer
            && matches!(self.name.as_ref(), "conversation" | "other")
    }

    /// `sure` or `unsure`, for reasons and reports.
    pub fn confidence(&self) -> &'static str {
        if self.sure { "sure" } else { "unsure" }
    }
}

/// Maps a caller's label to a built-in category; unknown labels are kept (lowercased, trimmed).
pub fn normalize(label: &str) -> Cow<'static, str> {
    let l = label.trim().to_ascii_lowercase();
    let known = match l.as_str() {
        "classification" | "classify" | "labeling" | "labelling" | "sentiment" | "routing" => {
            "classification"
        }
        "extraction" | "extract" | "information_extraction" | "ner" | "parsing" => "extraction",
        "summarization" | "summarisation" | "summary" | "summarize" | "summarise" => {
            "summarization"
        }
        "writing" | "creative" | "creative_writing" | "rewrite" | "rewriting" | "translation"
        | "copywriting" | "editing" => "writing",
        "coding" | "code" | "programming" | "code_generation" => "coding",
        "reasoning" | "math" | "maths" | "reasoning/math" | "logic" => "reasoning",
        "conversation" | "chat" | "qa" | "general" | "open_qa" | "general_qa" | "assistant" => {
            "conversation"
        }
        "agentic" | "agent" | "tool-use" | "tool_use" | "tools" | "agentic/tool-use"
        | "function_calling" => "agentic",
        "other" => "other",
        _ => return Cow::Owned(l),
    };
    Cow::Borrowed(known)
}

struct Patterns {
    summarize: Regex,
    extract: Regex,
    classify: Regex,
    write: Regex,
    code_ask: Regex,
    code_role: Regex,
    math_role: Regex,
    word_problem: Regex,
    number_word: Regex,
    puzzle: Regex,
    code_def: Regex,
    latex: Regex,
    science: Regex,
    derive: Regex,
    /// The patterns [`categorize`] checks on the last user turn ([`U`] order), in one pass.
    user: RegexSet,
}

/// The patterns checked on the last user turn, in [`Patterns::user`] order.
#[derive(Clone, Copy)]
enum U {
    Summarize,
    Extract,
    Classify,
    Write,
    CodeAsk,
    WordProblem,
    NumberWord,
    Puzzle,
    CodeDef,
    Latex,
    Science,
    Derive,
}

impl U {
    /// Every pattern, in [`Patterns::user`] order (bit `u as u32` of a [`Hits`] set).
    const ALL: [U; 12] = [
        U::Summarize,
        U::Extract,
        U::Classify,
        U::Write,
        U::CodeAsk,
        U::WordProblem,
        U::NumberWord,
        U::Puzzle,
        U::CodeDef,
        U::Latex,
        U::Science,
        U::Derive,
    ];
}

impl Patterns {
    fn regex(&self, u: U) -> &Regex {
        match u {
            U::Summarize => &self.summarize,
            U::Extract => &self.extract,
            U::Classify => &self.classify,
            U::Write => &self.write,
            U::CodeAsk => &self.code_ask,
            U::WordProblem => &self.word_problem,
            U::NumberWord => &self.number_word,
            U::Puzzle => &self.puzzle,
            U::CodeDef => &self.code_def,
            U::Latex => &self.latex,
            U::Science => &self.science,
            U::Derive => &self.derive,
        }
    }
}

/// Which patterns match a text (as [`any_match`] would say for each): one pass of
/// [`Patterns::user`] over the text's head and tail, or one regex at a time (system prompts,
/// whose answer is memoised anyway).
struct Hits<'a> {
    p: &'a Patterns,
    text: &'a str,
    set: Option<u32>,
}

impl<'a> Hits<'a> {
    /// All user-turn patterns at once.
    fn all(p: &'a Patterns, text: &'a str) -> Hits<'a> {
        let (head, tail) = window(text);
        let mut set = 0u32;
        for w in [head, tail] {
            if !w.is_empty() {
                for i in p.user.matches(w).iter() {
                    set |= 1 << i;
                }
            }
        }
        Hits {
            p,
            text,
            set: Some(set),
        }
    }

    /// One pattern at a time, on demand.
    fn lazy(p: &'a Patterns, text: &'a str) -> Hits<'a> {
        Hits { p, text, set: None }
    }

    fn has(&self, u: U) -> bool {
        match self.set {
            Some(set) => set & (1 << u as u32) != 0,
            None => any_match(self.p.regex(u), self.text),
        }
    }
}

/// Compiles the categorizer's patterns now (once per process; tens of milliseconds), so the
/// first request does not pay for it. `false` if they failed to compile (every request is then
/// `other`).
pub fn warm_up() -> bool {
    patterns().is_some()
}

fn patterns() -> Option<&'static Patterns> {
    static P: OnceLock<Option<Patterns>> = OnceLock::new();
    P.get_or_init(|| {
        let mut p = Patterns {
            summarize: Regex::new(
                r"(?i)(?-u:\b)(summari[sz]e|summari[sz]ing|summarization|tl;?dr|recap|condense|key (points|takeaways))(?-u:\b)|(?-u:\b)(write|give|provide|create|produce|make)( me)? (a |an )?(short |brief |concise |quick |one-paragraph |executive )?(summary|overview|abstract|synopsis|digest)(?-u:\b)",
            )
            .ok()?,
            extract: Regex::new(
                r"(?i)(?-u:\b)(extract\w*|pull out|parse (the|this)|named entit\w*|fill (in )?(the )?(json|fields|form|schema)|return (only )?(a |the )?(json|fields)|key[- ]value pairs|list (all|every|each) (the )?(names?|dates?|entities|people|amounts|emails?|phone numbers|addresses|products|items)|which (fields|entities))(?-u:\b)",
            )
            .ok()?,
            classify: Regex::new(
                r"(?i)(?-u:\b)(classify|classif\w+|categori[sz]e|categori[sz]ation|which category|what category|label (this|the|each|it)|sentiment|is (this|it) (spam|toxic|positive|negative|neutral|relevant)|intent of|detect the intent|topic label|one of the (following )?(labels|categories|classes|topics)|answer with (only )?(yes or no|one word|the label))(?-u:\b)",
            )
            .ok()?,
            write: Regex::new(
                r"(?i)(?-u:\b)((write|draft|compose|create|generate|craft)(?-u:\b).{0,40}(?-u:\b)(email|e-mail|essay|story|poem|letter|blog|post|article|cover letter|speech|tweet|caption|description|slogan|headline|paragraph|sentences?|lyrics|bio|review|announcement|newsletter|message|reply|copy|outline)|rewrite|re-write|rephrase|paraphrase|proofread|polish (this|the)|improve the (wording|writing|style)|translate|translation)(?-u:\b)",
            )
            .ok()?,
            code_ask: Regex::new(
                r"(?i)(?-u:\b)((write|implement|fix|debug|refactor|optimi[sz]e|review|explain|complete|convert)(?-u:\b).{0,50}(?-u:\b)(code|function|script|program|class|method|query|regex|sql|api|unit tests?|python|javascript|typescript|rust|java|golang|c\+\+|c#|bash|html|css)|stack ?trace|compil(e|er|ation) error|syntax error|traceback|segfault|null pointer|in (python|javascript|typescript|rust|java|go|c\+\+|sql|bash))(?-u:\b)",
            )
            .ok()?,
            code_role: Regex::new(
                r"(?i)(?-u:\b)(coding assistant|programming assistant|software engineer|code review(er)?|senior developer|you write code|pair programmer)(?-u:\b)",
            )
            .ok()?,
            math_role: Regex::new(
                r"(?i)(?-u:\b)(math(s|ematics)? (tutor|assistant|teacher)|solve (math|the problem) step by step|show your (work|reasoning))(?-u:\b)",
            )
            .ok()?,
            word_problem: Regex::new(
                r"(?i)(?-u:\b)(how (many|much|long|far|old|large|tall|big|fast|often|heavy)|what('s| is| was| are| were) (the|their|his|her) (total|sum|difference|product|average|mean|probability|value|ratio|percentage|price|cost|area|volume|perimeter|age|speed|distance|greater|smaller|larger|least|greatest|remainder)|calculate|compute|evaluate|simplify|percent(age)?|ratio|average|remainder|fraction(al)?|times (smaller|larger|older|younger|bigger|more|less|as)|twice|half (as|of)|per (hour|day|week|month|year|kg|pound|liter|litre|mile|minute|second)|in total)(?-u:\b)",
            )
            .ok()?,
            number_word: Regex::new(
                r"(?i)(?-u:\b)(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|twenty|thirty|forty|fifty|hundred|thousand|dozen|half|quarter|third|double|triple)(?-u:\b)",
            )
            .ok()?,
            puzzle: Regex::new(
                r"(?i)(\\boxed|\[asy\]|(?-u:\b)(puzzle|riddle|clues?|clue\(s\)|logic grid|deduce|syllogism|which of the following (must|can) be true))",
            )
            .ok()?,
            code_def: Regex::new(
                r"(?m)(^\s*(def|class|fn|func|function|public|private|static|async def)\s+\w+.*[(:{]\s*$|^\s*>>> |^\s*(#include|import \w|package \w|using \w))",
            )
            .ok()?,
            latex: Regex::new(r"\$[^$]*(\\[a-zA-Z]+|\^|=|\d)[^$]*\$|\\\(|\\\[").ok()?,
            science: Regex::new(
                r"(?i)(?-u:\b)\d+(\.\d+)?\s?(gev|mev|kev|ev|nm|μm|mol|mmol|hz|khz|mhz|kj|kpa|atm|cm3|cm\^3|ml|g/mol|m/s|km/s|kelvin|°c|°k)(?-u:\b)|(?-u:\b)(quantum|eigen\w*|hamiltonian|wavefunction|entropy|enthalpy|stoichiometr\w*|molarity|ph of|half-life|kinetic energy|momentum|wavelength|spectroscop\w*|nmr|isomer\w*|reagent|cycloaddition|synthesi[sz]\w* of|electrons?|photons?|neutrinos?|orbitals?)(?-u:\b)",
            )
            .ok()?,
            derive: Regex::new(
                r"(?i)(?-u:\b)(derive|derivation|closed[- ]form( solution| expression)?)(?-u:\b)",
            )
            .ok()?,
            user: RegexSet::empty(),
        };
        p.user = RegexSet::new(U::ALL.map(|u| p.regex(u).as_str())).ok()?;
        Some(p)
    })
    .as_ref()
}

/// The head and tail of `text`, cut at char boundaries.
fn window(text: &str) -> (&str, &str) {
    if text.len() <= HEAD + TAIL {
        return (text, "");
    }
    let mut h = HEAD;
    while !text.is_char_boundary(h) {
        h -= 1;
    }
    let mut t = text.len() - TAIL;
    while !text.is_char_boundary(t) {
        t += 1;
    }
    (&text[..h], &text[t..])
}

fn any_match(r: &Regex, text: &str) -> bool {
    let (head, tail) = window(text);
    r.is_match(head) || (!tail.is_empty() && r.is_match(tail))
}

/// A task named by instruction verbs in `text`, most specific first.
fn task_in(hits: &Hits, structured_output: bool) -> Option<&'static str> {
    let text = hits.text;
    if text.is_empty() {
        return None;
    }
    if hits.has(U::Summarize) {
        return Some("summarization");
    }
    if hits.has(U::Extract) {
        return Some("extraction");
    }
    if hits.has(U::Classify) {
        return Some("classification");
    }
    if hits.has(U::Write) {
        return Some("writing");
    }
    if structured_output && text.len() > 400 {
        // A JSON answer asked about a document: pulling fields out of it.
        return Some("extraction");
    }
    None
}

/// The task a system / developer prompt states. System prompts repeat from call to call, so
/// the answer is remembered per thread (by a hash of the text), in bounded memory.
fn system_task(p: &Patterns, text: &str, structured: bool) -> Option<&'static str> {
    thread_local! {
        static MEMO: RefCell<FastMap<(u64, bool), Option<&'static str>>> = RefCell::new(FastMap::default());
    }
    let compute = || {
        if any_match(&p.code_role, text) {
            return Some("coding");
        }
        if any_match(&p.math_role, text) {
            return Some("reasoning");
        }
        task_in(&Hits::lazy(p, text), structured)
    };
    if text.len() < 64 {
        return compute();
    }
    let key = (
        xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), tierwise_core::hash::process_seed()),
        structured,
    );
    MEMO.with(|m| {
        if let Some(hit) = m.borrow().get(&key) {
            return *hit;
        }
        let v = compute();
        let mut m = m.borrow_mut();
        if m.len() >= 4096 {
            m.clear();
        }
        m.insert(key, v);
        v
    })
}

/// Text with no natural-language task: empty, no letters, or a bare list of short items.
fn no_language_task(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() || !t.chars().any(char::is_alphabetic) {
        return true;
    }
    if t.contains('?') || t.contains('\n') {
        return false;
    }
    let items: Vec<&str> = t.split(',').map(str::trim).collect();
    items.len() >= 5
        && items
            .iter()
            .all(|i| !i.is_empty() && i.split_whitespace().count() <= 2 && !i.ends_with('.'))
}

/// The category of one call. `signals` must be computed from the same `view` and `hints`.
pub fn categorize(view: &RequestView, signals: &Signals, hints: &Hints) -> Category {
    if let Some(c) = hints.category.as_deref().filter(|c| !c.trim().is_empty()) {
        return Category {
            name: normalize(c),
            source: CategorySource::Hint,
            sure: true,
        };
    }
    if !view.tools.is_empty()
        || view
            .turns
            .iter()
            .any(|t| !t.tool_calls.is_empty() || t.role == "tool" || t.role == "function")
    {
        return Category::inferred("agentic", true);
    }
    let Some(p) = patterns() else {
        return Category::inferred("other", false);
    };
    let user = view.last_user_text();
    let structured = signals.structured_output;
    for t in view
        .turns
        .iter()
        .filter(|t| t.role == "system" || t.role == "developer")
    {
        if let Some(task) = system_task(p, &t.text, structured) {
            return Category::inferred(task, true);
        }
    }
    let (head, _) = window(user);
    let hits = Hits::all(p, user);
    // Math figures and puzzles first: `[asy]` drawings look like code.
    if hits.has(U::Puzzle) || hits.has(U::Latex) {
        return Category::inferred("reasoning", true);
    }
    // a vectorized byte search first: most prompts have no backtick at all
    let fence = memchr::memchr(b'`', user.as_bytes()).is_some() && user.contains("```");
    let code_def = hits.has(U::CodeDef);
    if fence || code_def || looks_like_code(head) {
        return Category::inferred("coding", true);
    }
    if hits.has(U::CodeAsk) {
        return Category::inferred("coding", false);
    }
    let has_number = user.bytes().any(|b| b.is_ascii_digit()) || hits.has(U::NumberWord);
    if signals.math
        || (has_number && hits.has(U::WordProblem))
        || hits.has(U::Science)
        || hits.has(U::Derive)
    {
        return Category::inferred("reasoning", false);
    }
    if let Some(task) = task_in(&hits, structured) {
        let plain = !signals.code && !signals.math && signals.hard_domain.is_empty();
        return Category::inferred(task, plain && opens_with(p, user, task));
    }
    if no_language_task(user) && signals.turns <= 1 {
        return Category::inferred("other", false);
    }
    Category::inferred("conversation", false)
}

/// Whether the first [`OPENING`] bytes of `user` state `task` (the instruction opens the turn).
fn opens_with(p: &Patterns, user: &str, task: &str) -> bool {
    let mut end = OPENING.min(user.len());
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    let opening = &user[..end];
    let r = match task {
        "summarization" => &p.summarize,
        "extraction" => &p.extract,
        "classification" => &p.classify,
        "writing" => &p.write,
        _ => return false,
    };
    r.is_match(opening)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;
    use serde_json::json;

    fn test_workload() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/workload.jsonl.gz");
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()),
            &mut text,
        )
        .unwrap();
        text
    }

    fn categorized(body: serde_json::Value) -> Category {
        let v = RequestView::chat(&body).unwrap();
        let h = Hints::from_metadata(&v);
        let s = Signals::compute(&v, &h);
        categorize(&v, &s, &h)
    }

    fn cat(body: serde_json::Value) -> String {
        categorized(body).name.into_owned()
    }

    fn user(text: &str) -> String {
        cat(json!({"model": "x", "messages": [{"role": "user", "content": text}]}))
    }

    fn sys_user(sys: &str, text: &str) -> String {
        cat(
            json!({"model": "x", "messages": [{"role": "system", "content": sys}, {"role": "user", "content": text}]}),
        )
    }

    #[test]
    fn patterns_compile() {
        assert!(warm_up());
    }

    /// The one-pass set says what each regex says, on the example workload's user turns
    /// (every prompt, also past the head/tail window) and on edge cases.
    #[test]
    fn user_set_matches_each_regex() {
        let p = patterns().unwrap();
        let text = test_workload();
        let mut users: Vec<String> = text
            .lines()
            .step_by(3)
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                let view = RequestView::chat(&v["request"]).ok()?;
                Some(view.last_user_text().to_string())
            })
            .collect();
        assert!(users.len() > 500);
        let long = format!(
            "summarize {} $x^2$ {}",
            "word ".repeat(400),
            "how many in total 3"
        );
        users.extend([
            "".into(),
            "Classify the sentiment of this review: great!".into(),
            "```".into(),
            "def f(x):\n  return x".into(),
            "Derive the closed-form solution of ridge regression.".into(),
            long,
        ]);
        let mut seen = [0usize; 12];
        for u in &users {
            let (set, each) = (Hits::all(p, u), Hits::lazy(p, u));
            for (i, w) in U::ALL.iter().enumerate() {
                assert_eq!(set.has(*w), each.has(*w), "pattern {i} on {u:?}");
                seen[i] += usize::from(each.has(*w));
            }
        }
        // every pattern matched somewhere, so the comparison covers both answers
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    }

    #[test]
    fn each_category() {
        assert_eq!(
            user("Write a function to find the last occurrence of a character in a string."),
            "coding"
        );
        assert_eq!(
            user(
                "How many girls are in the school if 40% of a school population is made up of 240 boys?"
            ),
            "reasoning"
        );
        assert_eq!(
            user("when does a wrinkle in time come out in canada"),
            "conversation"
        );
        assert_eq!(
            sys_user(
                "Classify the customer's message into one of the following categories: billing, shipping, other.",
                "My parcel never arrived."
            ),
            "classification"
        );
        assert_eq!(
            sys_user(
                "Extract every person and date mentioned as JSON.",
                "Ada met Bob on 3 May."
            ),
            "extraction"
        );
        assert_eq!(
            user("Summarize the following passage in two sentences: The treaty was signed..."),
            "summarization"
        );
        assert_eq!(
            user("Write a short product description for a steel water bottle."),
            "writing"
        );
        assert_eq!(
            user("coin, trick, direct, compete, pit, meal, carry"),
            "other"
        );
        assert_eq!(user(""), "other");
    }

    #[test]
    fn tools_make_it_agentic() {
        let c = cat(
            json!({"model": "x", "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "Summarize my inbox"}]}),
        );
        assert_eq!(c, "agentic");
    }

    #[test]
    fn metadata_overrides() {
        let c = cat(json!({"model": "x", "metadata": {"category": "Math"},
            "messages": [{"role": "user", "content": "hello there"}]}));
        assert_eq!(c, "reasoning");
        let c = cat(
            json!({"model": "x", "metadata": {"category": "Billing-Triage"},
            "messages": [{"role": "user", "content": "hello"}]}),
        );
        assert_eq!(c, "billing-triage");
    }

    fn user_cat(text: &str) -> Category {
        categorized(json!({"model": "x", "messages": [{"role": "user", "content": text}]}))
    }

    #[test]
    fn sure_and_unsure() {
        // stated by the system prompt, a hint, or tools: sure
        let c = categorized(json!({"model": "x", "messages": [
            {"role": "system", "content": "Classify the ticket into billing, shipping or other."},
            {"role": "user", "content": "Where is my parcel?"}]}));
        assert_eq!((c.name.as_ref(), c.sure), ("classification", true));
        assert_eq!(c.source, CategorySource::Categorizer);
        let c = categorized(json!({"model": "x", "metadata": {"category": "chat"},
            "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(
            (c.name.as_ref(), c.sure, c.source),
            ("conversation", true, CategorySource::Hint)
        );
        // a user turn that opens with its task: sure
        let c = user_cat(
            "Classify the sentiment of this review as positive, negative or neutral: the battery died after two days.",
        );
        assert_eq!((c.name.as_ref(), c.sure), ("classification", true));
        let c = user_cat("Extract every date and amount from this invoice: paid $40 on 3 May.");
        assert_eq!((c.name.as_ref(), c.sure), ("extraction", true));
        // the task only at the end of a long turn: unsure
        let long = format!(
            "{} Which category fits best?",
            "The parcel came late and the box was torn. ".repeat(8)
        );
        let c = user_cat(&long);
        assert_eq!((c.name.as_ref(), c.sure), ("classification", false));
        // a hard domain makes a user-stated light task unsure
        let c = user_cat(
            "Summarize the patient's symptoms and the dosage changes in this clinical note.",
        );
        assert_eq!((c.name.as_ref(), c.sure), ("summarization", false));
        // the fall-through is never sure; code asked for in words is unsure, a fence is sure
        assert!(!user_cat("what is the capital of peru").sure);
        let c =
            user_cat("Write a lock-free multi-producer single-consumer queue in Rust with tests.");
        assert_eq!((c.name.as_ref(), c.sure), ("coding", false));
        let c = user_cat("Why does this fail?\n```\nlet x: u8 = 300;\n```");
        assert_eq!((c.name.as_ref(), c.sure), ("coding", true));
    }
}
