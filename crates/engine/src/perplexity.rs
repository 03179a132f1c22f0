//! Perplexity over a token sequence, by the protocol the CLI documents:
//!
//! 1. tokens = `[BOS if the model adds one]` + the text tokenized as-is ([`perplexity_tokens`]);
//! 2. split into consecutive chunks of `chunk_len` tokens (the last may be shorter);
//! 3. within each chunk, every token after the first is scored given the earlier tokens of the
//!    same chunk, positions restarting at 0 with a fresh session (KV cache) per chunk;
//! 4. per-token NLL `= logsumexp(logits) - logits[target]`, accumulated in f64, in order;
//!    `ppl = exp(mean NLL)`.
//!
//! Each chunk runs with all-position logits, in batches of `batch_len` tokens (one batch when
//! `batch_len >= chunk_len`) to bound the logits memory.

use crate::error::EngineError;
use crate::language_model::LanguageModel;

/// Chunking options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerplexityOptions {
    /// Tokens per chunk (`>= 2`, `<=` the model's context).
    pub chunk_len: usize,
    /// Tokens per forward pass within a chunk (`>= 1`); limits memory for the logits
    /// (`batch_len * vocab_size` floats).
    pub batch_len: usize,
}

impl PerplexityOptions {
    /// Chunks of `chunk_len` tokens, each run in one batch.
    pub fn new(chunk_len: usize) -> Self {
        Self {
            chunk_len,
            batch_len: chunk_len,
        }
    }
}

/// Progress after each chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkProgress {
    /// 0-based index of the chunk just finished.
    pub chunk: usize,
    /// Number of chunks.
    pub chunks: usize,
    /// Tokens scored so far.
    pub scored: usize,
    /// `exp(mean NLL)` over the tokens scored so far.
    pub running_ppl: f64,
}

/// The result of [`perplexity`].
#[derive(Debug, Clone, PartialEq)]
pub struct PerplexityReport {
    /// Per-token NLL (natural log) in sequence order, one per scored token.
    pub nll: Vec<f64>,
    /// Mean of `nll`.
    pub mean_nll: f64,
    /// `exp(mean_nll)`.
    pub ppl: f64,
    /// Number of chunks.
    pub chunks: usize,
}

/// The token sequence of the protocol: BOS if the tokenizer adds one, then `text` encoded as-is
/// (text that looks like a special token is ordinary text).
pub fn perplexity_tokens(tokenizer: &llama31_tokenizer::Tokenizer, text: &str) -> Vec<u32> {
    let body = tokenizer.encode(text, false);
    let mut tokens = Vec::with_capacity(body.len() + 1);
    if tokenizer.add_bos() {
        if let Some(bos) = tokenizer.bos_id() {
            tokens.push(bos);
        }
    }
    tokens.extend_from_slice(&body);
    tokens
}

/// `logsumexp(row) - row[target]` in f64; `None` if a logit is not finite.
fn token_nll(row: &[f32], target: usize) -> Option<f64> {
    let mut max = f32::NEG_INFINITY;
    for &l in row {
        if !l.is_finite() {
            return None;
        }
        max = max.max(l);
    }
    let m = f64::from(max);
    let sum: f64 = row.iter().map(|&l| (f64::from(l) - m).exp()).sum();
    let t = f64::from(*row.get(target)?);
    Some(m + sum.ln() - t)
}

/// Computes per-token NLL and perplexity of `tokens` (see the module docs for the protocol).
/// `on_chunk` is called after each chunk.
pub fn perplexity<M>(
    model: &M,
    tokens: &[u32],
    opts: PerplexityOptions,
    on_chunk: &mut dyn FnMut(&ChunkProgress),
) -> Result<PerplexityReport, EngineError>
where
    M: LanguageModel + ?Sized,
{
    let vocab = model.vocab_size();
    let context = model.context_len();
    if opts.chunk_len < 2 {
        return Err(EngineError::Perplexity(format!(
            "chunk length must be at least 2, got {}",
            opts.chunk_len
        )));
    }
    if opts.batch_len == 0 {
        return Err(EngineError::Perplexity(
            "batch length must be at least 1".into(),
        ));
    }
    if opts.chunk_len > context {
        return Err(EngineError::ContextOverflow {
            prompt_tokens: opts.chunk_len,
            max_tokens: 0,
            context,
        });
    }
    if tokens.len() < 2 {
        return Err(EngineError::Perplexity(format!(
            "need at least 2 tokens to score, got {}",
            tokens.len()
        )));
    }
    if let Some((index, &id)) = tokens
        .iter()
        .enumerate()
        .find(|(_, &id)| id as usize >= vocab)
    {
        return Err(EngineError::TokenOutOfVocab {
            id,
            index,
            vocab_size: vocab,
        });
    }

    let chunks = tokens.len().div_ceil(opts.chunk_len);
    let mut nll = Vec::with_capacity(tokens.len() - 1);
    let mut sum = 0.0f64;
    for (ci, chunk) in tokens.chunks(opts.chunk_len).enumerate() {
        if chunk.len() >= 2 {
            let mut session = model.new_cache(chunk.len())?;
            let mut start = 0usize;
            while start < chunk.len() - 1 {
                // Positions whose logits predict a token of this chunk: start..chunk.len()-1;
                // the last token of the chunk is never needed as an input.
                let end = (start + opts.batch_len).min(chunk.len() - 1);
                let batch = chunk.get(start..end).unwrap_or_default();
                let logits = model.forward_all(&mut session, batch, start)?;
                let expected = batch.len() * vocab;
                if logits.len() != expected {
                    return Err(EngineError::LogitsShape {
                        expected,
                        got: logits.len(),
                    });
                }
                for (r, row) in logits.chunks_exact(vocab).enumerate() {
                    let position = start + r;
                    let target = chunk.get(position + 1).copied().unwrap_or(0) as usize;
                    let v =
                        token_nll(row, target).ok_or(EngineError::NonFiniteLogits { position })?;
                    sum += v;
                    nll.push(v);
                }
                start = end;
            }
        }
        let running_ppl = if nll.is_empty() {
            f64::NAN
        } else {
            (sum / nll.len() as f64).exp()
        };
        tracing::debug!(chunk = ci, chunks, running_ppl, "perplexity chunk done");
        on_chunk(&ChunkProgress {
            chunk: ci,
            chunks,
            scored: nll.len(),
            running_ppl,
        });
    }
    let mean_nll = sum / nll.len() as f64;
    Ok(PerplexityReport {
        mean_nll,
        ppl: mean_nll.exp(),
        nll,
        chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::BigramModel;

    /// Independent reference: NLL of `target` under softmax(`row`), straightforwardly in f64.
    fn reference_nll(row: &[f32], target: usize) -> f64 {
        let z: f64 = row.iter().map(|&l| f64::from(l).exp()).sum();
        -(f64::from(row[target]).exp() / z).ln()
    }

    fn expected(model: &BigramModel, tokens: &[u32], chunk_len: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for chunk in tokens.chunks(chunk_len) {
            for j in 1..chunk.len() {
                let row = model.logits_at(chunk[j - 1], j - 1);
                out.push(reference_nll(&row, chunk[j] as usize));
            }
        }
        out
    }

    #[test]
    fn matches_reference_with_chunking_and_position_restart() {
        let model = BigramModel::new(7, 64);
        let tokens: Vec<u32> = (0..23).map(|i| (i * 5 + 1) % 7).collect();
        for (chunk_len, batch_len) in [(5, 5), (5, 2), (5, 1), (8, 3), (23, 23), (11, 100)] {
            let mut progress = Vec::new();
            let r = perplexity(
                &model,
                &tokens,
                PerplexityOptions {
                    chunk_len,
                    batch_len,
                },
                &mut |p| progress.push(*p),
            )
            .unwrap();
            let want = expected(&model, &tokens, chunk_len);
            assert_eq!(r.nll.len(), want.len());
            // Scored tokens: every token but the first of each chunk.
            assert_eq!(r.nll.len(), tokens.len() - tokens.len().div_ceil(chunk_len));
            for (a, b) in r.nll.iter().zip(&want) {
                assert!((a - b).abs() < 1e-9, "{a} vs {b}");
            }
            let mean = want.iter().sum::<f64>() / want.len() as f64;
            assert!((r.ppl - mean.exp()).abs() < 1e-9 * mean.exp());
            assert_eq!(r.chunks, tokens.len().div_ceil(chunk_len));
            assert_eq!(progress.len(), r.chunks);
            assert!((progress.last().unwrap().running_ppl - r.ppl).abs() < 1e-12);
        }
    }

    #[test]
    fn last_chunk_of_one_token_scores_nothing() {
        let model = BigramModel::new(5, 64);
        let tokens = [0u32, 1, 2, 3, 4, 0, 1];
        let r = perplexity(&model, &tokens, PerplexityOptions::new(3), &mut |_| {}).unwrap();
        // Chunks [0,1,2] [3,4,0] [1]: 2 + 2 + 0 scored.
        assert_eq!(r.nll.len(), 4);
        assert_eq!(r.chunks, 3);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let model = BigramModel::new(5, 8);
        let none = &mut |_: &ChunkProgress| {};
        assert!(matches!(
            perplexity(&model, &[0, 1, 2], PerplexityOptions::new(1), none),
            Err(EngineError::Perplexity(_))
        ));
        assert!(matches!(
            perplexity(&model, &[0, 1, 2], PerplexityOptions::new(9), none),
            Err(EngineError::ContextOverflow {
                prompt_tokens: 9,
                context: 8,
                ..
            })
        ));
        assert!(matches!(
            perplexity(&model, &[0], PerplexityOptions::new(4), none),
            Err(EngineError::Perplexity(_))
        ));
        assert!(matches!(
            perplexity(&model, &[0, 1, 5], PerplexityOptions::new(4), none),
            Err(EngineError::TokenOutOfVocab {
                id: 5,
                index: 2,
                ..
            })
        ));
        assert!(matches!(
            perplexity(
                &model,
                &[0, 1, 2],
                PerplexityOptions {
                    chunk_len: 3,
                    batch_len: 0
                },
                none
            ),
            Err(EngineError::Perplexity(_))
        ));
    }

    #[test]
    fn non_finite_logits_are_reported() {
        let row = [0.0f32, f32::NAN, 1.0];
        assert_eq!(token_nll(&row, 0), None);
        let row = [0.0f32, f32::INFINITY, 1.0];
        assert_eq!(token_nll(&row, 0), None);
        // Large logits do not overflow thanks to the max shift.
        let v = token_nll(&[1000.0, 1000.0], 0).unwrap();
        assert!((v - std::f64::consts::LN_2).abs() < 1e-12);
    }
}
