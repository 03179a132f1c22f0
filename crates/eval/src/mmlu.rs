//! MMLU with the protocol of the original `hendrycks/test` `evaluate.py`.
//!
//! The prompt is
//! `"The following are multiple choice questions (with answers) about {format_subject}.\n\n"`
//! where `format_subject` prefixes every `_`-separated word of the subject with a space (so the
//! original has two spaces after "about"), then each example as
//! `"{question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer: {letter}\n\n"`, and the question being
//! scored ends with `"Answer:"`. The prediction is the letter whose token has the highest
//! next-token logit: the tokens of `" A"` … `" D"` for plain prompts; in chat mode the same text
//! is one user message and the letters `"A"` … `"D"` (no space: the reply starts after the
//! assistant header) are compared at the first position of the reply.
//!
//! Few-shot examples are the first `shots` questions of the subject in the dev split when one is
//! given, else the first `shots` questions of the subject in the test data, which are then not
//! scored. As in the original, a prompt longer than the context drops examples until it fits.
//!
//! Scoring runs every prompt of a subject only from where it stops sharing tokens with the
//! others, through the engine's [`PrefixScorer`]: the common prefix (BOS, header, examples) is
//! prefilled once into a master cache and copied into the work caches, and each step runs the
//! remaining tokens of several questions in one batched forward. Every logit equals that of the
//! whole prompt run alone.

use std::collections::BTreeMap;
use std::time::Instant;

use llama31_engine::{LanguageModel, PrefixScorer};
use llama31_model::Model;
use serde_json::{json, Value};

use crate::cache::ResultCache;
use crate::error::{EvalError, Result};
use crate::mmlu_data::{subject_display, subject_key, Question, LETTERS};
use crate::prompt::Prompter;
use crate::Progress;

/// Settings of an MMLU run.
#[derive(Debug, Clone)]
pub struct MmluOptions {
    /// Few-shot examples per prompt.
    pub shots: usize,
    /// Subjects to evaluate (any spelling; empty: all).
    pub subjects: Vec<String>,
    /// Score at most this many questions per subject.
    pub per_subject: Option<usize>,
    /// Score at most this many questions in all (subjects in alphabetical order).
    pub limit: Option<usize>,
    /// Questions per forward step (each has its own KV cache).
    pub batch: usize,
    /// Tokens per forward step (at least one question always runs).
    pub step_tokens: usize,
    /// Longest prompt in tokens; longer prompts drop examples.
    pub ctx: usize,
}

impl Default for MmluOptions {
    fn default() -> Self {
        Self {
            shots: 0,
            subjects: Vec::new(),
            per_subject: None,
            limit: None,
            batch: 4,
            step_tokens: 256,
            ctx: 4096,
        }
    }
}

/// The result of one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectResult {
    pub subject: String,
    pub total: usize,
    pub correct: usize,
}

impl SubjectResult {
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// The outcome of an MMLU run.
#[derive(Debug, Clone)]
pub struct MmluReport {
    pub subjects: Vec<SubjectResult>,
    pub total: usize,
    pub correct: usize,
    /// Correct / total over all questions.
    pub micro: f64,
    /// Mean of the per-subject accuracies.
    pub macro_avg: f64,
    /// Where the examples came from: `"dev"`, `"test"` (then not scored) or `"none"`.
    pub shot_source: &'static str,
    /// The letter strings and their token ids.
    pub letters: Vec<(String, u32)>,
    /// Questions scored in this run (the rest came from the cache).
    pub scored_now: usize,
    /// Prompt tokens of the questions scored now, and the tokens actually run for them.
    pub prompt_tokens: usize,
    pub run_tokens: usize,
    /// Wall time of the scoring.
    pub seconds: f64,
}

/// One scored question, as dumped by [`run_mmlu`]'s `dump` callback.
#[derive(Debug, Clone)]
pub struct ScoredQuestion {
    pub subject: String,
    /// Index within the subject's test questions (file order).
    pub index: usize,
    pub origin: String,
    pub tokens: Vec<u32>,
    pub shots: usize,
    pub answer: usize,
    pub pred: usize,
    /// Log-probabilities (full-vocabulary softmax) of the four letter tokens.
    pub logprobs: [f32; 4],
}

impl ScoredQuestion {
    /// The JSON line written by `--dump-prompts`.
    pub fn to_json(&self, letter_ids: &[u32; 4]) -> Value {
        json!({
            "subject": self.subject,
            "index": self.index,
            "origin": self.origin,
            "shots": self.shots,
            "tokens": self.tokens,
            "letter_ids": letter_ids,
            "answer": LETTERS[self.answer].to_string(),
            "pred": LETTERS[self.pred].to_string(),
            "logprobs": self.logprobs,
        })
    }
}

/// The header line of a subject's prompt, exactly as the original writes it.
pub fn header(subject: &str) -> String {
    let formatted: String = subject.split('_').map(|w| format!(" {w}")).collect();
    format!("The following are multiple choice questions (with answers) about {formatted}.\n\n")
}

/// A question with its choices, ending with `"Answer:"`, plus `" {letter}\n\n"` when
/// `with_answer`.
pub fn format_example(q: &Question, with_answer: bool) -> String {
    let mut s = q.question.clone();
    for (letter, choice) in LETTERS.iter().zip(&q.choices) {
        s.push_str(&format!("\n{letter}. {choice}"));
    }
    s.push_str("\nAnswer:");
    if with_answer {
        s.push_str(&format!(" {}\n\n", LETTERS[q.answer]));
    }
    s
}

/// The whole prompt text of `q` with `shots` as examples.
pub fn prompt_text(subject: &str, shots: &[&Question], q: &Question) -> String {
    let mut s = header(subject);
    for ex in shots {
        s.push_str(&format_example(ex, true));
    }
    s.push_str(&format_example(q, false));
    s
}

/// The token ids the prediction compares (`" A"`… in plain mode, `"A"`… in chat mode); each
/// must be a single token.
pub fn letter_tokens(prompter: &Prompter<'_>) -> Result<[(String, u32); 4]> {
    let mut out: [(String, u32); 4] = Default::default();
    for (slot, letter) in out.iter_mut().zip(LETTERS) {
        let text = if prompter.is_chat() {
            letter.to_string()
        } else {
            format!(" {letter}")
        };
        let id = prompter.single_token(&text).ok_or_else(|| {
            EvalError::Setup(format!(
                "{text:?} is not a single token for this tokenizer; MMLU letter scoring needs it to be"
            ))
        })?;
        *slot = (text, id);
    }
    Ok(out)
}

#[derive(Debug)]
struct SubjectPlan<'q> {
    key: String,
    shots: Vec<&'q Question>,
    /// (index within the subject, question) to score.
    items: Vec<(usize, &'q Question)>,
}

fn plan<'q>(
    test: &'q [Question],
    dev: Option<&'q [Question]>,
    opts: &MmluOptions,
) -> Result<Vec<SubjectPlan<'q>>> {
    let mut by_subject: BTreeMap<&str, Vec<&Question>> = BTreeMap::new();
    for q in test {
        by_subject.entry(q.subject.as_str()).or_default().push(q);
    }
    if by_subject.is_empty() {
        return Err(EvalError::Setup("the test data holds no questions".into()));
    }
    let wanted: Vec<String> = opts.subjects.iter().map(|s| subject_key(s)).collect();
    for w in &wanted {
        if !by_subject.contains_key(w.as_str()) {
            let known: Vec<&str> = by_subject.keys().copied().collect();
            return Err(EvalError::Setup(format!(
                "no questions of subject {w:?} in the data (subjects: {})",
                known.join(", ")
            )));
        }
    }
    let mut dev_by_subject: BTreeMap<&str, Vec<&Question>> = BTreeMap::new();
    for q in dev.unwrap_or_default() {
        dev_by_subject
            .entry(q.subject.as_str())
            .or_default()
            .push(q);
    }
    let mut plans = Vec::new();
    let mut budget = opts.limit.unwrap_or(usize::MAX);
    for (key, questions) in by_subject {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == key) {
            continue;
        }
        let (shots, first) = if dev.is_some() {
            let pool = dev_by_subject.get(key).map(Vec::as_slice).unwrap_or(&[]);
            if pool.len() < opts.shots {
                return Err(EvalError::Setup(format!(
                    "the dev data has {} questions of subject {key:?}, {} shots asked",
                    pool.len(),
                    opts.shots
                )));
            }
            (pool[..opts.shots].to_vec(), 0)
        } else {
            if questions.len() <= opts.shots {
                return Err(EvalError::Setup(format!(
                    "subject {key:?} has {} questions: none left to score after {} shots \
                     taken from it (give --dev)",
                    questions.len(),
                    opts.shots
                )));
            }
            (questions[..opts.shots].to_vec(), opts.shots)
        };
        let mut items: Vec<(usize, &Question)> =
            questions.iter().copied().enumerate().skip(first).collect();
        if let Some(n) = opts.per_subject {
            items.truncate(n);
        }
        items.truncate(budget);
        budget -= items.len();
        if items.is_empty() {
            continue;
        }
        plans.push(SubjectPlan {
            key: key.to_string(),
            shots,
            items,
        });
    }
    Ok(plans)
}

/// Scores MMLU questions. `test`: the questions; `dev`: the split the examples come from (else
/// from `test`). Finished questions are read from and written to `cache` (keyed
/// `"{subject}#{index}"`); `dump` receives every scored question; `progress` is called after
/// every step.
#[allow(clippy::too_many_arguments)]
pub fn run_mmlu(
    model: &Model,
    prompter: &Prompter<'_>,
    test: &[Question],
    dev: Option<&[Question]>,
    opts: &MmluOptions,
    mut cache: Option<&mut ResultCache>,
    dump: &mut dyn FnMut(&ScoredQuestion) -> Result<()>,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<MmluReport> {
    let start = Instant::now();
    let letters = letter_tokens(prompter)?;
    let letter_ids = [letters[0].1, letters[1].1, letters[2].1, letters[3].1];
    let plans = plan(test, dev, opts)?;
    let total: usize = plans.iter().map(|p| p.items.len()).sum();
    let ctx = opts.ctx.min(model.max_seq_len()).max(2);
    let mut scorer = Scorer::new(model, opts.batch.max(1), opts.step_tokens.max(1));
    let mut results = Vec::new();
    let mut done = 0usize;
    let (mut scored_now, mut prompt_tokens, mut run_tokens) = (0usize, 0usize, 0usize);
    for plan in &plans {
        let display = subject_display(&plan.key);
        // Every question's prompt; those not in the cache grouped by the number of examples
        // that fit.
        let mut prepared: Vec<ScoredQuestion> = Vec::with_capacity(plan.items.len());
        let mut have: Vec<bool> = Vec::with_capacity(plan.items.len());
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &(index, q)) in plan.items.iter().enumerate() {
            let (shots, tokens) = fitted_prompt(prompter, &plan.key, &plan.shots, q, ctx)?;
            let cached = cache
                .as_deref_mut()
                .and_then(|c| c.get(&format!("{}#{index}", plan.key)))
                .and_then(|v| cached_logprobs(&v));
            let logprobs = cached.unwrap_or([0.0; 4]);
            if cached.is_none() {
                groups.entry(shots).or_default().push(i);
            }
            have.push(cached.is_some());
            prepared.push(ScoredQuestion {
                subject: plan.key.clone(),
                index,
                origin: q.origin.clone(),
                tokens,
                shots,
                answer: q.answer,
                pred: argmax(&logprobs),
                logprobs,
            });
        }
        // Questions taken from the cache count as done at once.
        done += have.iter().filter(|&&h| h).count();
        progress(&Progress {
            phase: &display,
            done,
            total,
        });
        for group in groups.values().rev() {
            let prompts: Vec<&[u32]> = group
                .iter()
                .map(|&i| prepared[i].tokens.as_slice())
                .collect();
            let mut found: Vec<(usize, [f32; 4])> = Vec::with_capacity(group.len());
            let mut on_scored = |j: usize, lp: [f32; 4]| -> Result<()> {
                let i = group[j];
                let (index, q) = plan.items[i];
                if let Some(c) = cache.as_deref_mut() {
                    c.put(
                        &format!("{}#{index}", plan.key),
                        json!({"logprobs": lp, "answer": LETTERS[q.answer].to_string()}),
                    )?;
                }
                found.push((i, lp));
                Ok(())
            };
            let stats = scorer.score_group(&prompts, letter_ids, &mut on_scored, &mut |n| {
                done += n;
                progress(&Progress {
                    phase: &display,
                    done,
                    total,
                });
            })?;
            for (i, lp) in found {
                prepared[i].logprobs = lp;
                prepared[i].pred = argmax(&lp);
                have[i] = true;
            }
            scored_now += group.len();
            prompt_tokens += stats.0;
            run_tokens += stats.1;
        }
        let mut correct = 0usize;
        for (scored, ok) in prepared.iter().zip(&have) {
            if !ok {
                return Err(EvalError::Setup(format!(
                    "question {} was not scored",
                    scored.origin
                )));
            }
            if scored.pred == scored.answer {
                correct += 1;
            }
            dump(scored)?;
        }
        tracing::info!(subject = %plan.key, correct, total = plan.items.len(), "subject scored");
        results.push(SubjectResult {
            subject: plan.key.clone(),
            total: plan.items.len(),
            correct,
        });
    }
    let total_q: usize = results.iter().map(|r| r.total).sum();
    let correct: usize = results.iter().map(|r| r.correct).sum();
    let macro_avg = if results.is_empty() {
        0.0
    } else {
        results.iter().map(SubjectResult::accuracy).sum::<f64>() / results.len() as f64
    };
    Ok(MmluReport {
        micro: if total_q == 0 {
            0.0
        } else {
            correct as f64 / total_q as f64
        },
        macro_avg,
        subjects: results,
        total: total_q,
        correct,
        shot_source: if opts.shots == 0 {
            "none"
        } else if dev.is_some() {
            "dev"
        } else {
            "test"
        },
        letters: letters.to_vec(),
        scored_now,
        prompt_tokens,
        run_tokens,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn cached_logprobs(v: &Value) -> Option<[f32; 4]> {
    let arr = v.get("logprobs")?.as_array()?;
    let mut out = [0f32; 4];
    if arr.len() != 4 {
        return None;
    }
    for (o, x) in out.iter_mut().zip(arr) {
        *o = x.as_f64()? as f32;
    }
    Some(out)
}

/// Index of the largest value (the first on ties, like `numpy.argmax`).
fn argmax(v: &[f32; 4]) -> usize {
    let mut best = 0;
    for i in 1..4 {
        if v[i] > v[best] {
            best = i;
        }
    }
    best
}

/// The prompt of `q` with as many of `shots` as fit in `ctx` tokens (the original drops examples
/// from the end until the prompt fits).
fn fitted_prompt(
    prompter: &Prompter<'_>,
    subject: &str,
    shots: &[&Question],
    q: &Question,
    ctx: usize,
) -> Result<(usize, Vec<u32>)> {
    let mut k = shots.len();
    loop {
        let tokens = prompter.prompt(&prompt_text(subject, &shots[..k], q), "")?;
        if tokens.len() < ctx {
            return Ok((k, tokens));
        }
        if k == 0 {
            return Err(EvalError::Setup(format!(
                "the question at {} is {} tokens, longer than the context of {ctx}",
                q.origin,
                tokens.len()
            )));
        }
        k -= 1;
    }
}

/// Scores groups of prompts that share a prefix ([`PrefixScorer`]: a master cache for the prefix
/// and work caches for the questions of a step) by the log-probabilities of the letters.
pub struct Scorer<'m, M: LanguageModel + ?Sized = Model> {
    inner: PrefixScorer<'m, M>,
    vocab: usize,
}

impl<'m, M: LanguageModel + ?Sized> Scorer<'m, M> {
    /// A scorer running up to `batch` questions and `step_tokens` tokens per step.
    pub fn new(model: &'m M, batch: usize, step_tokens: usize) -> Self {
        Self {
            inner: PrefixScorer::new(model, batch, step_tokens),
            vocab: model.vocab_size(),
        }
    }

    /// Scores `prompts` (all non-empty): for each, the log-probabilities of `letters` at the
    /// position after its last token, reported through `on_scored(index, logprobs)`;
    /// `on_step(n)` after each step that finished `n` prompts. Returns (prompt tokens, tokens
    /// run).
    pub fn score_group(
        &mut self,
        prompts: &[&[u32]],
        letters: [u32; 4],
        on_scored: &mut dyn FnMut(usize, [f32; 4]) -> Result<()>,
        on_step: &mut dyn FnMut(usize),
    ) -> Result<(usize, usize)> {
        if prompts.is_empty() {
            return Ok((0, 0));
        }
        if prompts.iter().any(|p| p.is_empty()) {
            return Err(EvalError::Setup("an empty prompt cannot be scored".into()));
        }
        let vocab = self.vocab;
        if let Some(&bad) = letters.iter().find(|&&l| l as usize >= vocab) {
            return Err(EvalError::Setup(format!(
                "letter token {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        let stats = self.inner.score_batch(
            prompts,
            |i, row: &[f32]| on_scored(i, letter_logprobs(row, letters)),
            on_step,
        )?;
        Ok((stats.prompt_tokens, stats.run_tokens))
    }
}

/// Log-softmax (over the whole row) of the four letter tokens.
pub fn letter_logprobs(row: &[f32], letters: [u32; 4]) -> [f32; 4] {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| ((x - max) as f64).exp()).sum();
    let lse = max as f64 + sum.ln();
    letters.map(|l| (row[l as usize] as f64 - lse) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(subject: &str, text: &str, answer: usize) -> Question {
        Question {
            subject: subject.into(),
            question: text.into(),
            choices: ["w".into(), "x".into(), "y".into(), "z".into()],
            answer,
            origin: format!("t:{text}"),
        }
    }

    #[test]
    fn prompt_text_matches_the_original_layout() {
        let shot = q("high_school_biology", "Shot?", 2);
        let test = q("high_school_biology", "Test?", 0);
        let text = prompt_text("high_school_biology", &[&shot], &test);
        assert_eq!(
            text,
            "The following are multiple choice questions (with answers) about  high school biology.\n\n\
             Shot?\nA. w\nB. x\nC. y\nD. z\nAnswer: C\n\n\
             Test?\nA. w\nB. x\nC. y\nD. z\nAnswer:"
        );
    }

    #[test]
    fn plan_takes_shots_from_test_or_dev_and_applies_limits() {
        let test: Vec<Question> = (0..6)
            .map(|i| q(if i < 3 { "b_sub" } else { "a_sub" }, &format!("q{i}"), 0))
            .collect();
        let opts = MmluOptions {
            shots: 1,
            ..Default::default()
        };
        let plans = plan(&test, None, &opts).unwrap();
        assert_eq!(plans[0].key, "a_sub");
        assert_eq!(plans[0].shots[0].question, "q3");
        let scored: Vec<usize> = plans[0].items.iter().map(|(i, _)| *i).collect();
        assert_eq!(scored, [1, 2]);
        let dev = vec![q("a_sub", "d0", 1), q("b_sub", "d1", 1)];
        let plans = plan(&test, Some(&dev), &opts).unwrap();
        assert_eq!(plans[1].shots[0].question, "d1");
        assert_eq!(plans[1].items.len(), 3);
        let limited = MmluOptions {
            limit: Some(4),
            per_subject: Some(3),
            ..opts.clone()
        };
        let plans = plan(&test, Some(&dev), &limited).unwrap();
        assert_eq!(plans[0].items.len() + plans[1].items.len(), 4);
        let few_dev = MmluOptions {
            shots: 2,
            ..opts.clone()
        };
        let err = plan(&test, Some(&dev), &few_dev).unwrap_err().to_string();
        assert!(err.contains("the dev data has 1 questions"), "{err}");
        let err = plan(
            &test,
            None,
            &MmluOptions {
                subjects: vec!["c sub".into()],
                ..opts
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"c_sub\""), "{err}");
    }

    #[test]
    fn letter_logprobs_are_a_log_softmax() {
        let row = [0.0f32, 1.0, 2.0, 3.0, 4.0];
        let lp = letter_logprobs(&row, [4, 3, 0, 1]);
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        assert!((lp[0] as f64 - (4.0 - z.ln())).abs() < 1e-6);
        assert!((lp[2] as f64 - (0.0 - z.ln())).abs() < 1e-6);
        assert_eq!(argmax(&lp), 0);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 0.0]), 1);
    }
}
