//! Scoring many prompts that share a prefix (the few-shot examples of an evaluation): the common
//! prefix is prefilled once into a master cache and copied into per-prompt work caches, and the
//! remainders run several at a time in batched steps. Every row of logits equals that of its
//! whole prompt run alone.

use crate::error::EngineError;
use crate::language_model::{LanguageModel, LogitsMode, SeqInput};
use crate::sequence::common_prefix;

/// Token counts of a [`PrefixScorer::score_batch`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScoreStats {
    /// Tokens of all the prompts.
    pub prompt_tokens: usize,
    /// Tokens actually run (the shared prefix once, then each prompt's remainder).
    pub run_tokens: usize,
}

/// Runs groups of prompts that share a prefix, with a master cache for the prefix and work
/// caches for the prompts of a step (kept from one group to the next).
pub struct PrefixScorer<'m, M: LanguageModel + ?Sized> {
    model: &'m M,
    /// A cache and the positions it holds room for.
    master: Option<(M::Cache, usize)>,
    work: Vec<(M::Cache, usize)>,
    scratch: M::Scratch,
    logits: Vec<f32>,
    batch: usize,
    step_tokens: usize,
}

impl<'m, M: LanguageModel + ?Sized> PrefixScorer<'m, M> {
    /// A scorer running up to `batch` prompts and `step_tokens` tokens per step (at least one
    /// prompt always runs).
    pub fn new(model: &'m M, batch: usize, step_tokens: usize) -> Self {
        Self {
            model,
            master: None,
            work: Vec::new(),
            scratch: M::Scratch::default(),
            logits: Vec::new(),
            batch: batch.max(1),
            step_tokens: step_tokens.max(1),
        }
    }

    /// Runs `prompts` (none empty): their longest common prefix (at most each prompt but its
    /// last token) is prefilled once in chunks of `step_tokens`, then each step runs the
    /// remainders of the next prompts together. `on_row(i, row)` receives the logits of the
    /// position after the last token of `prompts[i]` (`vocab_size` floats), in order;
    /// `on_step(n)` is called after each step that finished `n` prompts.
    pub fn score_batch<E, R, S>(
        &mut self,
        prompts: &[&[u32]],
        mut on_row: R,
        mut on_step: S,
    ) -> Result<ScoreStats, E>
    where
        E: From<EngineError>,
        R: FnMut(usize, &[f32]) -> Result<(), E>,
        S: FnMut(usize),
    {
        let Some(first) = prompts.first() else {
            return Ok(ScoreStats::default());
        };
        if prompts.iter().any(|p| p.is_empty()) {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: 0,
                max_tokens: 0,
                context: self.model.context_len(),
            }
            .into());
        }
        let mut prefix = first.len() - 1;
        let mut longest = 0;
        for p in prompts {
            prefix = prefix
                .min(common_prefix(&first[..prefix], p))
                .min(p.len() - 1);
            longest = longest.max(p.len());
        }
        let prefix_tokens = &first[..prefix];
        let vocab = self.model.vocab_size();
        let model = self.model;

        // Prefill the shared prefix once.
        if self.master.as_ref().is_none_or(|(_, cap)| *cap < longest) {
            self.master = None;
            self.master = Some((model.new_cache(longest)?, longest));
        }
        let (master, _) = self.master.as_mut().ok_or_else(no_master)?;
        let mut pos = 0;
        while pos < prefix {
            let end = (pos + self.step_tokens).min(prefix);
            model.forward_one(
                master,
                &prefix_tokens[pos..end],
                pos,
                LogitsMode::None,
                &mut self.scratch,
                &mut self.logits,
            )?;
            pos = end;
        }
        let mut run = prefix;
        // Work caches get the prefix once per group; later prompts in the same cache overwrite
        // the positions after it.
        let mut fresh = vec![true; self.work.len()];

        let mut next = 0;
        while next < prompts.len() {
            // The prompts of this step.
            let mut end = next;
            let mut tokens = 0;
            while end < prompts.len() && end - next < self.batch {
                let len = prompts[end].len() - prefix;
                if end > next && tokens + len > self.step_tokens {
                    break;
                }
                tokens += len;
                end += 1;
            }
            let n = end - next;
            while self.work.len() < n {
                self.work.push((model.new_cache(longest)?, longest));
                fresh.push(true);
            }
            let (master, _) = self.master.as_ref().ok_or_else(no_master)?;
            for (j, (cache, cap)) in self.work.iter_mut().take(n).enumerate() {
                if *cap < longest {
                    *cache = model.new_cache(longest)?;
                    *cap = longest;
                    fresh[j] = true;
                }
                if fresh[j] {
                    model.copy_prefix(cache, master, prefix)?;
                    fresh[j] = false;
                }
            }
            let mut seqs: Vec<SeqInput<'_, M::Cache>> = self
                .work
                .iter_mut()
                .zip(&prompts[next..end])
                .map(|((cache, _), p)| SeqInput {
                    adapter: None,
                    tokens: &p[prefix..],
                    start_pos: prefix,
                    cache,
                    logits: LogitsMode::Last,
                })
                .collect();
            model.forward_batch(&mut seqs, &mut self.scratch, &mut self.logits)?;
            drop(seqs);
            run += tokens;
            for j in 0..n {
                let row = self.logits.get(j * vocab..(j + 1) * vocab).ok_or(
                    EngineError::LogitsShape {
                        expected: n * vocab,
                        got: self.logits.len(),
                    },
                )?;
                on_row(next + j, row)?;
            }
            on_step(n);
            next = end;
        }
        Ok(ScoreStats {
            prompt_tokens: prompts.iter().map(|p| p.len()).sum(),
            run_tokens: run,
        })
    }
}

fn no_master() -> EngineError {
    EngineError::Model("no master cache".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::BigramModel;

    #[test]
    fn rows_equal_whole_prompts_run_alone() {
        let model = BigramModel::new(16, 64);
        let prompts: Vec<Vec<u32>> = vec![
            vec![1, 2, 3, 4, 5, 6],
            vec![1, 2, 3, 4, 9],
            vec![1, 2, 3, 4, 5, 7, 8, 9, 10],
            vec![1, 2, 3, 4, 11, 12],
            vec![1, 2, 3, 4, 13],
        ];
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        // Two prompts and at most 6 tokens per step; the 4-token prefix in chunks of 3.
        let mut scorer = PrefixScorer::new(&model, 2, 3);
        for _ in 0..2 {
            let mut rows = Vec::new();
            let mut steps = Vec::new();
            let stats = scorer
                .score_batch::<EngineError, _, _>(
                    &refs,
                    |i, row: &[f32]| {
                        rows.push((i, row.to_vec()));
                        Ok(())
                    },
                    |n| steps.push(n),
                )
                .unwrap();
            assert_eq!(stats.prompt_tokens, 31);
            assert_eq!(stats.run_tokens, 4 + 2 + 1 + 5 + 2 + 1);
            assert_eq!(steps.iter().sum::<usize>(), prompts.len());
            assert_eq!(rows.len(), prompts.len());
            for (i, row) in rows {
                let mut cache = model.new_cache(64).unwrap();
                let alone = model.forward(&mut cache, &prompts[i], 0).unwrap();
                assert_eq!(row, alone, "prompt {i}");
            }
        }
        let empty: [&[u32]; 1] = [&[]];
        assert!(scorer
            .score_batch::<EngineError, _, _>(&empty, |_, _: &[f32]| Ok(()), |_| {})
            .is_err());
    }
}
