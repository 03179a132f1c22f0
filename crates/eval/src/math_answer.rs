//! MATH answers: `\boxed{}` extraction and the Minerva normalization.
//!
//! [`last_boxed_only_string`] and [`remove_boxed`] are the MATH reference's (Hendrycks et al.
//! 2021), with `\fbox{...}` unwrapped too. [`normalize_final_answer`] is `normalize_final_answer`
//! of Lewkowycz et al. 2022 (Minerva, appendix D) step for step, preceded by four rewrites the
//! MATH reference's `strip_string` also makes and Minerva's does not: `\left` / `\right`
//! removed, `\dfrac` / `\tfrac` → `\frac`, `\!` removed; and followed by removing a trailing
//! period.

use std::sync::OnceLock;

use regex::Regex;

/// The last `\boxed{...}` (or `\boxed ...` up to a `$`, or `\fbox{...}`) of `text`, braces
/// balanced, including the command.
pub fn last_boxed_only_string(text: &str) -> Option<&str> {
    if let Some(pos) = text.rfind("\\boxed ") {
        let rest = &text[pos..];
        let end = rest["\\boxed ".len()..]
            .find('$')
            .map_or(rest.len(), |e| e + "\\boxed ".len());
        return Some(&rest[..end]);
    }
    let idx = text.rfind("\\boxed").or_else(|| text.rfind("\\fbox"))?;
    let mut depth = 0i32;
    for (i, c) in text[idx..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[idx..idx + i + 1]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The content of a boxed string (`\boxed{x}`, `\fbox{x}` → `x`; `\boxed x` → `x`).
pub fn remove_boxed(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix("\\boxed ") {
        return Some(rest);
    }
    for left in ["\\boxed{", "\\fbox{"] {
        if let Some(inner) = s.strip_prefix(left).and_then(|r| r.strip_suffix('}')) {
            return Some(inner);
        }
    }
    None
}

/// The boxed answer of `text`, if any.
pub fn boxed_answer(text: &str) -> Option<&str> {
    last_boxed_only_string(text).and_then(remove_boxed)
}

/// The answer of a generated solution: the last boxed expression, else Minerva's
/// "Final Answer: The final answer is X. I hope it is correct." sentence.
pub fn extract_answer(text: &str) -> Option<String> {
    if let Some(b) = boxed_answer(text) {
        return Some(b.to_string());
    }
    static FINAL: OnceLock<Regex> = OnceLock::new();
    let re = FINAL.get_or_init(|| {
        Regex::new(r"Final Answer: The final answer is(.*?). I hope it is correct.")
            .unwrap_or_else(|_| unreachable_regex())
    });
    let text = format!("{text}I hope it is correct.");
    re.captures(&text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().trim().to_string())
}

/// A regex that never matches (the fallback for the constant patterns above, which compile).
fn unreachable_regex() -> Regex {
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("a constant pattern compiles"))
}

const SUBSTITUTIONS: [(&str, &str); 10] = [
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    ("\\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
];

const REMOVED_EXPRESSIONS: [&str; 42] = [
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "ft",
    "hours",
    "km",
    "units",
    "\\ldots",
    "sue",
    "points",
    "feet",
    "minutes",
    "digits",
    "cents",
    "degrees",
    "cm",
    "gm",
    "pounds",
    "meters",
    "meals",
    "edges",
    "students",
    "childrentickets",
    "multiples",
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    "\\mathrm{th}",
    "^\\circ",
    "^{\\circ}",
    "\\;",
    ",\\!",
    "{,}",
    "\"",
    "\\dots",
];

struct Patterns {
    math: Regex,
    text: Regex,
    textbf: Regex,
    overline: Regex,
    boxed: Regex,
    frac: Regex,
    sqrt: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |p: &str| Regex::new(p).unwrap_or_else(|_| unreachable_regex());
        Patterns {
            math: re(r"(.*?)(\$)(.*?)(\$)(.*)"),
            text: re(r"(\\text\{)(.*?)(\})"),
            textbf: re(r"(\\textbf\{)(.*?)(\})"),
            overline: re(r"(\\overline\{)(.*?)(\})"),
            boxed: re(r"(\\boxed\{)(.*)(\})"),
            frac: re(r"(frac)([^{])(.)"),
            sqrt: re(r"(sqrt)([^{])"),
        }
    })
}

/// Removes `command` where it is a whole command (not followed by a letter: `\right` goes,
/// `\rightarrow` stays).
fn remove_command(s: &str, command: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(command) {
        let after = &rest[pos + command.len()..];
        out.push_str(&rest[..pos]);
        if after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        {
            out.push_str(command);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Minerva's `normalize_final_answer` with the additions listed in the module docs.
pub fn normalize_final_answer(answer: &str) -> String {
    // Additions (from the MATH reference's strip_string).
    let mut s = remove_command(answer, "\\left");
    s = remove_command(&s, "\\right");
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac");
    s = s.replace("\\!", "");

    // Minerva, appendix D.
    let mut s = s.rsplit('=').next().unwrap_or("").to_string();
    for (before, after) in SUBSTITUTIONS {
        s = s.replace(before, after);
    }
    for expr in REMOVED_EXPRESSIONS {
        s = s.replace(expr, "");
    }
    let p = patterns();
    s = p.math.replace_all(&s, "$$${3}$$").into_owned();
    s = p.text.replace_all(&s, "${2}").into_owned();
    s = p.textbf.replace_all(&s, "${2}").into_owned();
    s = p.overline.replace_all(&s, "${2}").into_owned();
    s = p.boxed.replace_all(&s, "${2}").into_owned();
    s = p.frac.replace_all(&s, "frac{${2}}{${3}}").into_owned();
    s = p.sqrt.replace_all(&s, "sqrt{${2}}").into_owned();
    s = s.replace('$', "");
    let no_commas = s.replace(',', "");
    if !no_commas.is_empty() && no_commas.chars().all(|c| c.is_ascii_digit()) {
        s = no_commas;
    }

    // Addition: a trailing period.
    while s.ends_with('.') {
        s.pop();
    }
    s
}

/// Whether a generated solution's answer equals the reference answer after normalization.
pub fn is_correct(generated: &str, reference_answer: &str) -> bool {
    extract_answer(generated)
        .is_some_and(|a| normalize_final_answer(&a) == normalize_final_answer(reference_answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize_final_answer(s)
    }

    #[test]
    fn boxed_extraction_with_nested_braces() {
        let sol = r"So $x = \boxed{1}$ or, better, $\boxed{\frac{\sqrt{3}}{2}}$.";
        assert_eq!(
            last_boxed_only_string(sol),
            Some(r"\boxed{\frac{\sqrt{3}}{2}}")
        );
        assert_eq!(boxed_answer(sol), Some(r"\frac{\sqrt{3}}{2}"));
        assert_eq!(boxed_answer(r"the answer is $\fbox{7}$"), Some("7"));
        assert_eq!(boxed_answer(r"so it is $\boxed 5$."), Some("5"));
        assert_eq!(boxed_answer(r"unclosed \boxed{3"), None);
        assert_eq!(boxed_answer("no box here"), None);
    }

    #[test]
    fn minerva_final_answer_sentence() {
        assert_eq!(
            extract_answer(
                "x = 2.\nFinal Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct."
            ),
            Some("$-\\frac{2}{3}$".to_string())
        );
        assert_eq!(
            extract_answer("Final Answer: The final answer is $12$. I hope it is correct."),
            Some("$12$".into())
        );
        assert_eq!(extract_answer("nothing"), None);
    }

    #[test]
    fn fractions() {
        assert_eq!(n(r"\frac12"), r"\frac{1}{2}");
        assert_eq!(n(r"\frac{1}{2}"), r"\frac{1}{2}");
        assert_eq!(n(r"\fracabc"), r"\frac{a}{b}c");
        assert_eq!(n(r"\sqrt3"), r"\sqrt{3}");
        assert_eq!(n(r"-\frac{2}{3}"), n(r"$-\frac{2}{3}$"));
    }

    #[test]
    fn dfrac_and_tfrac() {
        assert_eq!(n(r"\dfrac{3}{4}"), r"\frac{3}{4}");
        assert_eq!(n(r"\tfrac34"), r"\frac{3}{4}");
        assert_eq!(n(r"\dfrac{\pi}{2}"), n(r"\frac{\pi}{2}"));
    }

    #[test]
    fn left_and_right() {
        assert_eq!(n(r"\left( 3, \frac{\pi}{2} \right)"), r"(3,\frac{\pi}{2})");
        assert_eq!(n(r"\left[2,5\right)"), "[2,5)");
        // Only whole commands go.
        assert_eq!(n(r"x \rightarrow y"), r"x\rightarrowy");
    }

    #[test]
    fn text_units() {
        assert_eq!(n(r"10\text{ cm}"), "10");
        assert_eq!(n(r"5\text{ inches}^2"), "5");
        assert_eq!(n(r"\$ 4.50"), "4.50");
        assert_eq!(n(r"12\text{ ways}"), "12");
        assert_eq!(n(r"\text{(C)}"), "(C)");
        assert_eq!(n(r"3\mbox{ meters}"), "3");
        assert_eq!(n(r"x \text{and} y"), "x,y");
    }

    #[test]
    fn degrees() {
        assert_eq!(n(r"30^\circ"), "30");
        assert_eq!(n(r"30^{\circ}"), "30");
        assert_eq!(n("45 degrees"), "45");
        assert_eq!(n(r"60\text{ degrees}"), "60");
    }

    #[test]
    fn spaces_commas_dollars_periods() {
        assert_eq!(n(" 1 000 "), "1000");
        assert_eq!(n("10,000"), "10000");
        assert_eq!(n(r"1,\!000"), "1000");
        assert_eq!(n(r"1{,}000"), "1000");
        assert_eq!(n("(1, 2)"), "(1,2)");
        assert_eq!(n("$x=5$"), "5");
        assert_eq!(n("7."), "7");
        assert_eq!(n(r"2\!\sqrt{2}"), r"2\sqrt{2}");
        assert_eq!(n(r"x \; y"), "xy");
    }

    #[test]
    fn matching() {
        assert!(is_correct("so $\\boxed{\\dfrac{1}{2}}$.", r"\frac12"));
        assert!(is_correct("\\boxed{90^\\circ}", "90"));
        assert!(!is_correct("\\boxed{3}", "4"));
        assert!(!is_correct("I cannot tell.", "4"));
    }
}
