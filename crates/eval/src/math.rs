//! MATH (Hendrycks et al. 2021) as Minerva evaluates it: problems from JSON lines (`problem`,
//! `solution` with a `\boxed{}` answer, or an explicit `answer`; `type` and `level` optional),
//! greedy generation, answer extraction and normalization ([`crate::math_answer`]), exact match.
//!
//! Base models get Minerva's four-shot prompt (`"Problem:\n{problem}\n\nSolution: {solution}"`
//! examples separated by blank lines, generation stops at `"Problem:"`); instruct models get the
//! problem as one user message followed by
//! `"\n\nPlease reason step by step, and put your final answer within \boxed{}."`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::data::{jsonl_objects, read_text, str_field};
use crate::error::{EvalError, Result};
use crate::math_answer::{boxed_answer, extract_answer, normalize_final_answer};

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `id` / `unique_id` when given, else `line N`.
    pub id: String,
    pub problem: String,
    /// The reference answer (unnormalized).
    pub answer: String,
    /// `type` (subject) when given.
    pub kind: Option<String>,
    pub level: Option<String>,
}

/// Loads MATH-format JSON lines. The reference answer is `answer` when present, else the last
/// `\boxed{}` of `solution`; a problem with neither is an error naming its line.
pub fn load_problems(path: &Path) -> Result<Vec<Problem>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (line, obj) in jsonl_objects(path, &text)? {
        let problem = str_field(path, line, &obj, "problem")?.to_string();
        let answer = if obj.contains_key("answer") {
            str_field(path, line, &obj, "answer")?.to_string()
        } else {
            let solution = str_field(path, line, &obj, "solution")?;
            boxed_answer(solution)
                .ok_or_else(|| EvalError::data(path, line, "the solution has no \\boxed{} answer"))?
                .to_string()
        };
        let opt = |k: &str| -> Result<Option<String>> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => str_field(path, line, &obj, k).map(|s| Some(s.to_string())),
            }
        };
        let id = match (opt("id")?, opt("unique_id")?) {
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => format!("line {line}"),
        };
        out.push(Problem {
            id,
            problem,
            answer,
            kind: opt("type")?,
            level: opt("level")?,
        });
    }
    if out.is_empty() {
        return Err(EvalError::data(path, 0, "no problems in this file"));
    }
    Ok(out)
}

/// Minerva's four examples (as the reference harnesses ship them).
pub const MINERVA_SHOTS: [(&str, &str); 4] = [
    (
        "Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}",
        "The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so $x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, so $5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\\boxed{[2,5)}$.\nFinal Answer: The final answer is $[2,5)$. I hope it is correct.",
    ),
    (
        "If $\\det \\mathbf{A} = 2$ and $\\det \\mathbf{B} = 12,$ then find $\\det (\\mathbf{A} \\mathbf{B}).$",
        "We have that $\\det (\\mathbf{A} \\mathbf{B}) = (\\det \\mathbf{A})(\\det \\mathbf{B}) = (2)(12) = \\boxed{24}.$\nFinal Answer: The final answer is $24$. I hope it is correct.",
    ),
    (
        "Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights instead, how many times must Terrell lift them in order to lift the same total weight?",
        "If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\\cdot 12\\cdot20=480$ pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a total of $2\\cdot15\\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can solve for $n$:\n\\begin{align*}\n30n&=480\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n\\end{align*}\nFinal Answer: The final answer is $16$. I hope it is correct.",
    ),
    (
        "If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\n6y-9x &=b.\n\\end{align*}has a solution $(x, y)$ where $x$ and $y$ are both nonzero,\nfind $\\frac{a}{b},$ assuming $b$ is nonzero.",
        "If we multiply the first equation by $-\\frac{3}{2}$, we obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$Since we also know that $6y-9x=b$, we have\n\n$$-\\frac{3}{2}a=b\\Rightarrow\\frac{a}{b}=\\boxed{-\\frac{2}{3}}.$$\nFinal Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct.",
    ),
];

/// What generation stops at for base models.
pub const COMPLETION_STOPS: [&str; 1] = ["Problem:"];

/// The instruction appended to the problem for instruct models.
pub const CHAT_SUFFIX: &str =
    "\n\nPlease reason step by step, and put your final answer within \\boxed{}.";

/// The completion prompt of `problem` with Minerva's examples.
pub fn completion_prompt(problem: &str) -> String {
    let mut s = String::new();
    for (p, sol) in MINERVA_SHOTS {
        s.push_str(&format!("Problem:\n{p}\n\nSolution: {sol}\n\n"));
    }
    s.push_str(&format!("Problem:\n{problem}\n\nSolution:"));
    s
}

/// The user message of `problem` for instruct models.
pub fn chat_message(problem: &str) -> String {
    format!("{problem}{CHAT_SUFFIX}")
}

/// The judgement of one generated solution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub extracted: Option<String>,
    pub normalized: Option<String>,
    pub reference: String,
    pub correct: bool,
}

/// Extracts and normalizes the answer of `generated` and compares it with `problem`'s.
pub fn judge(problem: &Problem, generated: &str) -> Judged {
    let extracted = extract_answer(generated);
    let normalized = extracted.as_deref().map(normalize_final_answer);
    let reference = normalize_final_answer(&problem.answer);
    let correct = normalized.as_deref() == Some(reference.as_str());
    Judged {
        extracted,
        normalized,
        reference,
        correct,
    }
}

/// Accuracy over all problems and per `type`.
#[derive(Debug, Clone, PartialEq)]
pub struct MathScore {
    pub total: usize,
    pub correct: usize,
    /// `type` → (total, correct).
    pub by_type: BTreeMap<String, (usize, usize)>,
}

/// Scores judged problems.
pub fn score(problems: &[Problem], judged: &[Judged]) -> MathScore {
    let mut s = MathScore {
        total: 0,
        correct: 0,
        by_type: BTreeMap::new(),
    };
    for (p, j) in problems.iter().zip(judged) {
        s.total += 1;
        s.correct += usize::from(j.correct);
        let e = s
            .by_type
            .entry(p.kind.clone().unwrap_or_else(|| "(none)".into()))
            .or_default();
        e.0 += 1;
        e.1 += usize::from(j.correct);
    }
    s
}

/// Settings of a MATH run (greedy decoding).
#[derive(Debug, Clone)]
pub struct MathOptions {
    pub max_tokens: usize,
    /// Evaluate only the first N problems.
    pub limit: Option<usize>,
}

impl Default for MathOptions {
    fn default() -> Self {
        Self {
            max_tokens: 1024,
            limit: None,
        }
    }
}

impl MathOptions {
    /// The settings that determine the generations (for the cache and the report).
    pub fn settings(&self, chat: bool) -> serde_json::Value {
        serde_json::json!({
            "task": "math",
            "mode": if chat { "chat" } else { "minerva-4shot" },
            "max_tokens": self.max_tokens,
            "sampling": "greedy",
        })
    }
}

/// The outcome of a MATH run.
#[derive(Debug, Clone)]
pub struct MathReport {
    pub score: MathScore,
    pub judged: Vec<Judged>,
    pub outputs: Vec<crate::generate::GenOutput>,
    pub seconds: f64,
}

/// Generates a solution per problem on `engine` (cached ones reused) and scores them.
pub fn run_math(
    engine: &llama31_engine::Engine,
    stop_tokens: &[u32],
    prompter: &crate::Prompter<'_>,
    problems: &[Problem],
    opts: &MathOptions,
    cache: Option<&mut crate::ResultCache>,
    progress: &mut dyn FnMut(&crate::Progress<'_>),
) -> Result<MathReport> {
    let problems = &problems[..opts.limit.unwrap_or(problems.len()).min(problems.len())];
    let start = std::time::Instant::now();
    let mut specs = Vec::with_capacity(problems.len());
    for (i, p) in problems.iter().enumerate() {
        let (prompt, stops) = if prompter.is_chat() {
            (prompter.prompt(&chat_message(&p.problem), "")?, Vec::new())
        } else {
            (
                prompter.prompt(&completion_prompt(&p.problem), "")?,
                COMPLETION_STOPS.iter().map(|s| s.to_string()).collect(),
            )
        };
        specs.push(crate::generate::GenSpec {
            key: format!("{i}:{}#0", p.id),
            prompt,
            max_tokens: opts.max_tokens,
            sampling: llama31_engine::SamplingParams::greedy(),
            stop_strings: stops,
        });
    }
    let outputs =
        crate::generate::generate_all(engine, stop_tokens, &specs, cache, "generating", progress)?;
    let judged: Vec<Judged> = problems
        .iter()
        .zip(&outputs)
        .map(|(p, o)| judge(p, &o.text))
        .collect();
    Ok(MathReport {
        score: score(problems, &judged),
        judged,
        outputs,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_layout() {
        let p = completion_prompt("What is $1+1$?");
        assert!(p.starts_with("Problem:\nFind the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}\n\nSolution: The expressions"));
        assert!(p.ends_with("I hope it is correct.\n\nProblem:\nWhat is $1+1$?\n\nSolution:"));
        assert_eq!(p.matches("Problem:").count(), 5);
        // Every example's own answer is recovered by the normalizer.
        for (_, sol) in MINERVA_SHOTS {
            let boxed = boxed_answer(sol).unwrap();
            let stated = extract_answer(&sol.replace("\\boxed", "")).unwrap();
            assert_eq!(
                normalize_final_answer(boxed),
                normalize_final_answer(&stated)
            );
        }
    }
}
