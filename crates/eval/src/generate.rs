//! Generating many completions on the batching [`Engine`], with results cached as they finish.

use std::sync::mpsc;

use llama31_engine::{Engine, Event, Request, SamplingParams, SubmitError, Ticket};
use serde_json::{json, Value};

use crate::cache::ResultCache;
use crate::error::{EvalError, Result};
use crate::Progress;

/// One completion to generate.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// Cache key (`"{task id}#{sample}"`).
    pub key: String,
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop_strings: Vec<String>,
}

/// A generated completion.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOutput {
    pub text: String,
    /// `"stop"` (end token or stop string) or `"length"`.
    pub finish: String,
    /// Generated tokens.
    pub tokens: usize,
}

impl GenOutput {
    fn to_json(&self) -> Value {
        json!({"text": self.text, "finish": self.finish, "tokens": self.tokens})
    }

    fn from_json(v: &Value) -> Option<GenOutput> {
        Some(GenOutput {
            text: v.get("text")?.as_str()?.to_string(),
            finish: v.get("finish")?.as_str()?.to_string(),
            tokens: usize::try_from(v.get("tokens")?.as_u64()?).ok()?,
        })
    }
}

/// Generates every spec (those in `cache` are taken from it) on `engine`, in parallel over its
/// slots, and returns the outputs in spec order. `stop_tokens` end every generation.
pub fn generate_all(
    engine: &Engine,
    stop_tokens: &[u32],
    specs: &[GenSpec],
    mut cache: Option<&mut ResultCache>,
    phase: &str,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<Vec<GenOutput>> {
    let mut outputs: Vec<Option<GenOutput>> = vec![None; specs.len()];
    let mut todo = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match cache
            .as_deref_mut()
            .and_then(|c| c.get(&spec.key))
            .and_then(|v| GenOutput::from_json(&v))
        {
            Some(out) => outputs[i] = Some(out),
            None => todo.push(i),
        }
    }
    let mut done = specs.len() - todo.len();
    progress(&Progress {
        phase,
        done,
        total: specs.len(),
    });
    let (tx, rx) = mpsc::channel::<(usize, Event)>();
    let mut texts: Vec<String> = vec![String::new(); specs.len()];
    let mut tickets: Vec<Option<Ticket>> = (0..specs.len()).map(|_| None).collect();
    // Keep the engine's queue short: at most a few requests per slot wait at a time.
    let window = engine.config().slots * 2 + 2;
    let mut next = 0;
    let mut in_flight = 0;
    loop {
        while next < todo.len() && in_flight < window {
            let i = todo[next];
            let spec = &specs[i];
            let room = engine.config().ctx.saturating_sub(spec.prompt.len());
            if room == 0 {
                return Err(EvalError::Setup(format!(
                    "the prompt of {} is {} tokens, the context {}: raise --ctx",
                    spec.key,
                    spec.prompt.len(),
                    engine.config().ctx
                )));
            }
            let req = Request {
                prompt: spec.prompt.clone(),
                max_tokens: Some(spec.max_tokens.min(room)),
                sampling: spec.sampling.clone(),
                stop_tokens: stop_tokens.to_vec(),
                stop_strings: spec.stop_strings.clone(),
                logprobs: None,
                constraint: None,
                adapter: None,
            };
            let tx = tx.clone();
            let sink = Box::new(move |ev: Event| tx.send((i, ev)).is_ok());
            let ticket = engine.submit(req, sink).map_err(|e| match e {
                SubmitError::Invalid(e) => {
                    EvalError::Engine(format!("request {} refused: {e}", spec.key))
                }
                other => EvalError::Engine(other.to_string()),
            })?;
            tickets[i] = Some(ticket);
            next += 1;
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        let (i, ev) = rx
            .recv()
            .map_err(|_| EvalError::Engine("the engine stopped".into()))?;
        match ev {
            Event::Token { text, .. } => texts[i].push_str(&text),
            Event::Done { finish, usage, .. } => {
                let out = GenOutput {
                    text: std::mem::take(&mut texts[i]),
                    finish: finish.as_openai_str().to_string(),
                    tokens: usage.completion_tokens,
                };
                if let Some(c) = cache.as_deref_mut() {
                    c.put(&specs[i].key, out.to_json())?;
                }
                outputs[i] = Some(out);
                tickets[i] = None;
                in_flight -= 1;
                done += 1;
                progress(&Progress {
                    phase,
                    done,
                    total: specs.len(),
                });
            }
            Event::Error(e) => {
                return Err(EvalError::Engine(format!(
                    "generating {}: {e}",
                    specs[i].key
                )))
            }
        }
    }
    outputs
        .into_iter()
        .zip(specs)
        .map(|(o, s)| o.ok_or_else(|| EvalError::Engine(format!("{} was not generated", s.key))))
        .collect()
}

/// The seed of sample `sample` of task `task` under run seed `seed` (stable across runs, so a
/// resumed run samples what the interrupted one would have).
pub fn sample_seed(seed: u64, task: &str, sample: usize) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{seed}/{task}/{sample}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(
            sample_seed(1, "HumanEval/0", 0),
            sample_seed(1, "HumanEval/0", 0)
        );
        assert_ne!(
            sample_seed(1, "HumanEval/0", 0),
            sample_seed(1, "HumanEval/0", 1)
        );
        assert_ne!(
            sample_seed(1, "HumanEval/0", 0),
            sample_seed(2, "HumanEval/0", 0)
        );
    }

    #[test]
    fn outputs_round_trip_through_the_cache_format() {
        let o = GenOutput {
            text: "x = 1\n".into(),
            finish: "stop".into(),
            tokens: 4,
        };
        assert_eq!(GenOutput::from_json(&o.to_json()), Some(o));
        assert_eq!(GenOutput::from_json(&json!({"text": 1})), None);
    }
}
