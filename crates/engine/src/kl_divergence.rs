//! llama.cpp's perplexity protocol with saved logits (`llama-perplexity --kl-divergence-base`) and
//! the KL-divergence report against them (`--kl-divergence`), following
//! `tools/perplexity/perplexity.cpp`:
//!
//! 1. the token sequence (BOS if the model adds one, then the text) is cut into
//!    `n_chunk = tokens / n_ctx` whole chunks (at least two needed);
//! 2. each chunk is evaluated from position 0 with a fresh cache, its first token replaced by BOS
//!    when the model adds one;
//! 3. only the second half is scored: the logits at positions `n_ctx/2 .. n_ctx-2` predicting the
//!    next token (`n_ctx - 1 - n_ctx/2` per chunk);
//! 4. saving: each scored row's log-softmax is stored as two `f32` (`scale`, `min_log_prob`) and
//!    `n_vocab` `u16` (`log p = scale · q + min_log_prob`, log-probs below `max - 16` clamped);
//! 5. comparing: per row, KL(base ‖ model) summed over the tokens whose base log-prob exceeds
//!    −16, top-1 agreement, the target's NLL under both, and the probability difference Δp.
//!
//! Arithmetic follows llama.cpp's types (f32 log-softmax, f64 sums).

use crate::error::EngineError;
use crate::language_model::LanguageModel;

/// The number of whole chunks llama.cpp evaluates in a text of `n_tokens` (`n_tokens / n_ctx`,
/// at most `max_chunks`); like llama.cpp it wants at least two chunks' worth of text.
pub fn chunk_count(
    n_tokens: usize,
    n_ctx: usize,
    max_chunks: Option<usize>,
) -> Result<usize, EngineError> {
    if n_ctx < 4 {
        return Err(EngineError::Perplexity(format!(
            "the context must be at least 4 tokens, got {n_ctx}"
        )));
    }
    if n_tokens < 2 * n_ctx {
        return Err(EngineError::Perplexity(format!(
            "need at least {} tokens for a context of {n_ctx}, the text has {n_tokens}",
            2 * n_ctx
        )));
    }
    let n = n_tokens / n_ctx;
    Ok(max_chunks.map_or(n, |m| m.min(n)).max(1))
}

/// `(n_chunk, first scored position, rows per chunk)` of `tokens` cut into whole chunks.
fn layout(n_tokens: usize, n_ctx: usize) -> Result<(usize, usize, usize), EngineError> {
    if n_ctx < 4 || n_tokens < n_ctx || !n_tokens.is_multiple_of(n_ctx) {
        return Err(EngineError::Perplexity(format!(
            "{n_tokens} tokens are not whole chunks of {n_ctx} (at least 4)"
        )));
    }
    let first = n_ctx / 2;
    Ok((n_tokens / n_ctx, first, n_ctx - 1 - first))
}

/// llama.cpp's `nearest_int`: round half to even through the 1.5·2²³ trick.
#[inline]
fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// `(max, index of the first max)`.
fn max_and_argmax(row: &[f32]) -> (f32, usize) {
    let mut max = row.first().copied().unwrap_or(f32::NEG_INFINITY);
    let mut imax = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > max {
            max = v;
            imax = i;
        }
    }
    (max, imax)
}

/// `log Σ exp(row - max)` as llama.cpp computes it: f32 exponentials summed in f64, the log
/// rounded to f32.
fn log_sum_exp(row: &[f32], max: f32) -> f32 {
    let sum: f64 = row.iter().map(|&v| f64::from((v - max).exp())).sum();
    sum.ln() as f32
}

/// Quantizes one row's log-softmax into `out` (`2·⌈n_vocab/2⌉ + 4` values; the first four hold
/// `scale` and `min_log_prob` as `f32`) and returns the NLL of `target`.
pub fn encode_log_probs(row: &[f32], target: usize, out: &mut [u16]) -> f64 {
    let (max, _) = max_and_argmax(row);
    let mut min = row.first().copied().unwrap_or(0.0);
    for &v in row.iter().skip(1) {
        min = min.min(v);
    }
    let min = min.max(max - 16.0);
    let lse = log_sum_exp(row, max);
    let min_log_prob = min - max - lse;
    let scale = (max - min) / 65535.0;
    let (head, body) = out.split_at_mut(4.min(out.len()));
    let s = scale.to_le_bytes();
    let m = min_log_prob.to_le_bytes();
    for (i, h) in head.iter_mut().enumerate() {
        let b = if i < 2 {
            &s[2 * i..]
        } else {
            &m[2 * (i - 2)..]
        };
        *h = u16::from_le_bytes([b[0], b[1]]);
    }
    body.fill(0);
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (q, &v) in body.iter_mut().zip(row) {
            *q = if v > min {
                nearest_int(inv * (v - min)) as u16
            } else {
                0
            };
        }
    }
    f64::from(max + lse - row.get(target).copied().unwrap_or(f32::NAN))
}

fn header_f32(base: &[u16], i: usize) -> f32 {
    let lo = base.get(2 * i).copied().unwrap_or(0).to_le_bytes();
    let hi = base.get(2 * i + 1).copied().unwrap_or(0).to_le_bytes();
    f32::from_le_bytes([lo[0], lo[1], hi[0], hi[1]])
}

/// The running sums of `kl_divergence_result`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    nll: f64,
    nll2: f64,
    nll_base: f64,
    nll_base2: f64,
    nll_nll_base: f64,
    kld: f64,
    kld2: f64,
    p_diff: f64,
    p_diff2: f64,
    p_diff4: f64,
    max_p_diff: f32,
    same_top: usize,
    count: usize,
}

/// One row against its saved base: `(KL, Δp)`, accumulating into `s`.
fn compare_row(row: &[f32], base: &[u16], target: usize, s: &mut Sums) -> (f64, f32) {
    let (max, imax) = max_and_argmax(row);
    let lse = log_sum_exp(row, max);
    let scale = header_f32(base, 0);
    let min_log_prob = header_f32(base, 1);
    let q = base.get(4..).unwrap_or_default();
    let at = |i: usize| f32::from(q.get(i).copied().unwrap_or(0));
    let nll = max + lse - row.get(target).copied().unwrap_or(f32::NAN);
    s.nll += f64::from(nll);
    s.nll2 += f64::from(nll * nll);
    let nll_base = -(scale * at(target) + min_log_prob);
    s.nll_base += f64::from(nll_base);
    s.nll_base2 += f64::from(nll_base * nll_base);
    s.nll_nll_base += f64::from(nll * nll_base);
    let log_norm = max + lse;
    let mut sum = 0.0f64;
    let mut imax_base = 0;
    let mut p_log_base_max = 0.0f32;
    for (i, &v) in row.iter().enumerate() {
        let p_log_base = scale * at(i) + min_log_prob;
        if i == 0 || p_log_base > p_log_base_max {
            p_log_base_max = p_log_base;
            imax_base = i;
        }
        if p_log_base > -16.0 {
            let p_base = p_log_base.exp();
            sum += f64::from(p_base * (p_log_base - v + log_norm));
        }
    }
    s.kld += sum;
    s.kld2 += sum * sum;
    s.count += 1;
    if imax == imax_base {
        s.same_top += 1;
    }
    let p_diff = (-nll).exp() - (-nll_base).exp();
    s.p_diff += f64::from(p_diff);
    let p_diff2 = f64::from(p_diff * p_diff);
    s.p_diff2 += p_diff2;
    s.p_diff4 += p_diff2 * p_diff2;
    s.max_p_diff = s.max_p_diff.max(p_diff.abs());
    (sum, p_diff)
}

/// A mean and its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Estimate {
    pub value: f64,
    pub uncertainty: f64,
}

/// llama.cpp's `mean_and_uncertainty`.
fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> Estimate {
    if count < 1 {
        return Estimate::default();
    }
    let n = count as f64;
    let f = sum / n;
    let df = sum2 / n - f * f;
    let df = if df > 0.0 && count > 10 {
        (df / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Estimate {
        value: f,
        uncertainty: df,
    }
}

fn covariance(a: f64, b: f64, ab: f64, count: usize) -> f64 {
    if count < 10 {
        return 0.0;
    }
    let n = count as f64;
    (ab / n - (a / n) * (b / n)) / (n - 1.0)
}

/// llama.cpp's `percentile` over sorted values (linear interpolation, computed in f32).
fn percentile(sorted: &[f32], fraction: f32) -> f32 {
    let (Some(&first), Some(&last)) = (sorted.first(), sorted.last()) else {
        return f32::NAN;
    };
    if fraction <= 0.0 {
        return first;
    }
    if fraction >= 1.0 {
        return last;
    }
    let p = fraction * (sorted.len() - 1) as f32;
    let ip = p as usize;
    let p = p - ip as f32;
    (1.0 - p) * sorted[ip] + p * sorted[(ip + 1).min(sorted.len() - 1)]
}

fn median(sorted: &[f32]) -> f32 {
    let n = sorted.len();
    if n == 0 {
        return f32::NAN;
    }
    if n.is_multiple_of(2) {
        0.5 * (sorted[n / 2] + sorted[n / 2 - 1])
    } else {
        sorted[n / 2]
    }
}

/// The fractions llama.cpp reports KL percentiles at (besides max, median and min).
pub const KLD_PERCENTILES: [f32; 8] = [0.999, 0.99, 0.95, 0.90, 0.10, 0.05, 0.01, 0.001];
/// The fractions llama.cpp reports Δp percentiles at (besides max, median and min).
pub const DP_PERCENTILES: [f32; 10] =
    [0.999, 0.99, 0.95, 0.90, 0.75, 0.25, 0.10, 0.05, 0.01, 0.001];

/// The `--kl-divergence` report.
#[derive(Debug, Clone, PartialEq)]
pub struct KlReport {
    /// Scored tokens.
    pub count: usize,
    pub chunks: usize,
    pub n_ctx: usize,
    /// PPL(Q), PPL(base).
    pub ppl: Estimate,
    pub ppl_base: Estimate,
    /// Correlation of ln PPL(Q) and ln PPL(base).
    pub ln_ppl_correlation: f64,
    /// ln(PPL(Q)/PPL(base)), PPL(Q)/PPL(base), PPL(Q) − PPL(base).
    pub ln_ppl_ratio: Estimate,
    pub ppl_ratio: Estimate,
    pub ppl_diff: Estimate,
    /// Mean KL divergence.
    pub kld: Estimate,
    pub kld_max: f32,
    pub kld_median: f32,
    pub kld_min: f32,
    /// KL at [`KLD_PERCENTILES`].
    pub kld_percentiles: Vec<(f32, f32)>,
    /// Mean Δp = p(target) − p_base(target).
    pub p_diff: Estimate,
    pub p_diff_max: f32,
    pub p_diff_median: f32,
    pub p_diff_min: f32,
    /// Δp at [`DP_PERCENTILES`].
    pub p_diff_percentiles: Vec<(f32, f32)>,
    /// Root mean square of Δp.
    pub p_diff_rms: Estimate,
    /// Fraction of rows whose most likely token is the base's (llama.cpp's "Same top p").
    pub same_top: Estimate,
}

/// Running figures after a chunk (the columns llama.cpp prints per chunk).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KlProgress {
    pub chunk: usize,
    pub chunks: usize,
    pub ppl: f64,
    pub ln_ppl_ratio: f64,
    pub kld: f64,
    pub same_top: f64,
}

/// The summary of a run that saved logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SavedPerplexity {
    pub chunks: usize,
    /// Scored tokens.
    pub count: usize,
    pub ppl: f64,
    /// llama.cpp's "Final estimate" uncertainty of the PPL.
    pub ppl_uncertainty: f64,
}

/// Evaluates chunk `c` and returns the scored rows' logits (`rows · vocab`).
fn chunk_logits<M: LanguageModel + ?Sized>(
    model: &M,
    tokens: &[u32],
    n_ctx: usize,
    first: usize,
    bos: Option<u32>,
) -> Result<Vec<f32>, EngineError> {
    let mut input = tokens.to_vec();
    if let (Some(b), Some(t0)) = (bos, input.first_mut()) {
        *t0 = b;
    }
    let mut session = model.new_cache(n_ctx)?;
    model.forward(&mut session, &input[..first], 0)?;
    let logits = model.forward_all(&mut session, &input[first..n_ctx - 1], first)?;
    let expected = (n_ctx - 1 - first) * model.vocab_size();
    if logits.len() != expected {
        return Err(EngineError::LogitsShape {
            expected,
            got: logits.len(),
        });
    }
    if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::NonFiniteLogits {
            position: first + i / model.vocab_size(),
        });
    }
    Ok(logits)
}

/// What both passes need to know before the first chunk.
struct Setup {
    vocab: usize,
    n_chunk: usize,
    /// The first scored position of a chunk.
    first: usize,
    /// Scored rows per chunk.
    rows: usize,
    /// u16 values per saved row (llama.cpp's layout).
    nv: usize,
}

/// Checks the chunk layout, the model's context and the token ids.
fn setup<M: LanguageModel + ?Sized>(
    model: &M,
    tokens: &[u32],
    n_ctx: usize,
) -> Result<Setup, EngineError> {
    let vocab = model.vocab_size();
    let (n_chunk, first, rows) = layout(tokens.len(), n_ctx)?;
    if n_ctx > model.context_len() {
        return Err(EngineError::ContextOverflow {
            prompt_tokens: n_ctx,
            max_tokens: 0,
            context: model.context_len(),
        });
    }
    check_tokens(tokens, vocab)?;
    Ok(Setup {
        vocab,
        n_chunk,
        first,
        rows,
        nv: 2 * vocab.div_ceil(2) + 4,
    })
}

fn check_tokens(tokens: &[u32], vocab: usize) -> Result<(), EngineError> {
    if let Some((index, &id)) = tokens
        .iter()
        .enumerate()
        .find(|(_, &t)| t as usize >= vocab)
    {
        return Err(EngineError::TokenOutOfVocab {
            id,
            index,
            vocab_size: vocab,
        });
    }
    Ok(())
}

/// Runs the protocol over `tokens` (whole chunks of `n_ctx`, see [`chunk_count`]) and hands each
/// chunk's quantized log-probs to `save` (one `rows · (2·⌈vocab/2⌉ + 4)` slice per chunk). `bos`:
/// the token put first in every chunk.
pub fn save_logits<M: LanguageModel + ?Sized>(
    model: &M,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    save: &mut dyn FnMut(&[u16]) -> Result<(), EngineError>,
    on_chunk: &mut dyn FnMut(usize, usize, f64),
) -> Result<SavedPerplexity, EngineError> {
    let Setup {
        vocab,
        n_chunk,
        first,
        rows,
        nv,
    } = setup(model, tokens, n_ctx)?;
    let mut out = vec![0u16; rows * nv];
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    for c in 0..n_chunk {
        let chunk = &tokens[c * n_ctx..(c + 1) * n_ctx];
        let logits = chunk_logits(model, chunk, n_ctx, first, bos)?;
        for (k, (row, dst)) in logits
            .chunks_exact(vocab)
            .zip(out.chunks_exact_mut(nv))
            .enumerate()
        {
            let v = encode_log_probs(row, chunk[first + k + 1] as usize, dst);
            nll += v;
            nll2 += v * v;
        }
        count += rows;
        save(&out)?;
        let ppl = (nll / count as f64).exp();
        tracing::debug!(chunk = c, ppl, "saved logits of a chunk");
        on_chunk(c, n_chunk, ppl);
    }
    let mean = nll / count as f64;
    let var = nll2 / count as f64 - mean * mean;
    let ppl = mean.exp();
    Ok(SavedPerplexity {
        chunks: n_chunk,
        count,
        ppl,
        ppl_uncertainty: if var > 0.0 && count > 1 {
            (var / (count - 1) as f64).sqrt() * ppl
        } else {
            0.0
        },
    })
}

/// Compares the model against saved base log-probs: `tokens` and `n_ctx` from the file's header,
/// `next_chunk` fills the next chunk's rows (`false` when the file has no more).
pub fn kl_divergence<M: LanguageModel + ?Sized>(
    model: &M,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    next_chunk: &mut dyn FnMut(&mut Vec<u16>) -> Result<bool, EngineError>,
    on_chunk: &mut dyn FnMut(&KlProgress),
) -> Result<KlReport, EngineError> {
    let Setup {
        vocab,
        n_chunk,
        first,
        rows,
        nv,
    } = setup(model, tokens, n_ctx)?;
    let mut s = Sums::default();
    let mut klds = Vec::with_capacity(n_chunk * rows);
    let mut dps = Vec::with_capacity(n_chunk * rows);
    let mut base = Vec::new();
    for c in 0..n_chunk {
        if !next_chunk(&mut base)? {
            return Err(EngineError::Perplexity(format!(
                "the saved logits end after {c} of {n_chunk} chunks"
            )));
        }
        if base.len() != rows * nv {
            return Err(EngineError::Perplexity(format!(
                "saved chunk {c} has {} values, expected {} ({rows} rows of {nv}): was it saved \
                 with another vocabulary?",
                base.len(),
                rows * nv
            )));
        }
        let chunk = &tokens[c * n_ctx..(c + 1) * n_ctx];
        let logits = chunk_logits(model, chunk, n_ctx, first, bos)?;
        for (k, (row, b)) in logits
            .chunks_exact(vocab)
            .zip(base.chunks_exact(nv))
            .enumerate()
        {
            let (kld, dp) = compare_row(row, b, chunk[first + k + 1] as usize, &mut s);
            klds.push(kld as f32);
            dps.push(dp);
        }
        let lp = mean_and_uncertainty(s.nll, s.nll2, s.count);
        let lb = mean_and_uncertainty(s.nll_base, s.nll_base2, s.count);
        let progress = KlProgress {
            chunk: c,
            chunks: n_chunk,
            ppl: lp.value.exp(),
            ln_ppl_ratio: lp.value - lb.value,
            kld: s.kld / s.count as f64,
            same_top: s.same_top as f64 / s.count as f64,
        };
        tracing::debug!(chunk = c, kld = progress.kld, "compared a chunk");
        on_chunk(&progress);
    }
    Ok(report(&s, klds, dps, n_chunk, n_ctx))
}

fn report(
    s: &Sums,
    mut klds: Vec<f32>,
    mut dps: Vec<f32>,
    chunks: usize,
    n_ctx: usize,
) -> KlReport {
    klds.sort_by(f32::total_cmp);
    dps.sort_by(f32::total_cmp);
    let n = s.count;
    let lp = mean_and_uncertainty(s.nll, s.nll2, n);
    let lb = mean_and_uncertainty(s.nll_base, s.nll_base2, n);
    let ppl = Estimate {
        value: lp.value.exp(),
        uncertainty: lp.value.exp() * lp.uncertainty,
    };
    let ppl_base = Estimate {
        value: lb.value.exp(),
        uncertainty: lb.value.exp() * lb.uncertainty,
    };
    let cov = covariance(s.nll, s.nll_base, s.nll_nll_base, n);
    let ln_ratio = Estimate {
        value: lp.value - lb.value,
        uncertainty: (lp.uncertainty * lp.uncertainty + lb.uncertainty * lb.uncertainty
            - 2.0 * cov)
            .sqrt(),
    };
    let ratio = Estimate {
        value: ln_ratio.value.exp(),
        uncertainty: ln_ratio.value.exp() * ln_ratio.uncertainty,
    };
    let ppl_cov = ppl.value * ppl_base.value * cov;
    let diff = Estimate {
        value: ppl.value - ppl_base.value,
        uncertainty: (ppl.uncertainty * ppl.uncertainty
            + ppl_base.uncertainty * ppl_base.uncertainty
            - 2.0 * ppl_cov)
            .sqrt(),
    };
    let mse = mean_and_uncertainty(s.p_diff2, s.p_diff4, n);
    let rms = mse.value.sqrt();
    let same = s.same_top as f64 / n.max(1) as f64;
    KlReport {
        count: n,
        chunks,
        n_ctx,
        ppl,
        ppl_base,
        ln_ppl_correlation: cov / (lp.uncertainty * lb.uncertainty),
        ln_ppl_ratio: ln_ratio,
        ppl_ratio: ratio,
        ppl_diff: diff,
        kld: mean_and_uncertainty(s.kld, s.kld2, n),
        kld_max: klds.last().copied().unwrap_or(f32::NAN),
        kld_median: median(&klds),
        kld_min: klds.first().copied().unwrap_or(f32::NAN),
        kld_percentiles: KLD_PERCENTILES
            .iter()
            .map(|&f| (f, percentile(&klds, f)))
            .collect(),
        p_diff: mean_and_uncertainty(s.p_diff, s.p_diff2, n),
        p_diff_max: dps.last().copied().unwrap_or(f32::NAN),
        p_diff_median: median(&dps),
        p_diff_min: dps.first().copied().unwrap_or(f32::NAN),
        p_diff_percentiles: DP_PERCENTILES
            .iter()
            .map(|&f| (f, percentile(&dps, f)))
            .collect(),
        p_diff_rms: Estimate {
            value: rms,
            uncertainty: 0.5 / rms * mse.uncertainty,
        },
        same_top: Estimate {
            value: same,
            uncertainty: (same * (1.0 - same) / (n as f64 - 1.0)).sqrt(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::BigramModel;

    /// A model whose logits are the bigram model's, scaled: a "quantized" twin.
    struct Scaled(BigramModel, f32);

    impl LanguageModel for Scaled {
        type Cache = <BigramModel as LanguageModel>::Cache;
        type Scratch = ();
        fn vocab_size(&self) -> usize {
            self.0.vocab_size()
        }
        fn context_len(&self) -> usize {
            self.0.context_len()
        }
        fn new_cache(&self, m: usize) -> Result<Self::Cache, EngineError> {
            self.0.new_cache(m)
        }
        fn copy_prefix(
            &self,
            dst: &mut Self::Cache,
            src: &Self::Cache,
            n: usize,
        ) -> Result<(), EngineError> {
            self.0.copy_prefix(dst, src, n)
        }
        fn forward_batch(
            &self,
            seqs: &mut [crate::SeqInput<'_, Self::Cache>],
            scratch: &mut (),
            out: &mut Vec<f32>,
        ) -> Result<(), EngineError> {
            self.0.forward_batch(seqs, scratch, out)?;
            for v in out.iter_mut() {
                *v *= self.1;
            }
            Ok(())
        }
    }

    /// `kl_divergence` over saved chunks, for models of any session type.
    trait KlModel {
        fn kl(&self, tokens: &[u32], n_ctx: usize, saved: &[Vec<u16>]) -> KlReport;
    }

    impl<M: LanguageModel> KlModel for M {
        fn kl(&self, tokens: &[u32], n_ctx: usize, saved: &[Vec<u16>]) -> KlReport {
            let mut it = saved.iter();
            let mut next = |out: &mut Vec<u16>| {
                Ok(match it.next() {
                    Some(c) => {
                        out.clone_from(c);
                        true
                    }
                    None => false,
                })
            };
            kl_divergence(self, tokens, n_ctx, Some(0), &mut next, &mut |_| {}).unwrap()
        }
    }

    fn log_softmax64(row: &[f32]) -> Vec<f64> {
        let m = row
            .iter()
            .fold(f64::NEG_INFINITY, |a, &v| a.max(f64::from(v)));
        let z: f64 = row.iter().map(|&v| (f64::from(v) - m).exp()).sum();
        row.iter().map(|&v| f64::from(v) - m - z.ln()).collect()
    }

    #[test]
    fn encoded_log_probs_decode_within_half_a_step() {
        let row: Vec<f32> = (0..11).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let mut out = vec![0u16; 2 * 11usize.div_ceil(2) + 4];
        let nll = encode_log_probs(&row, 3, &mut out);
        let want = log_softmax64(&row);
        assert!((nll + want[3]).abs() < 1e-5, "{nll} vs {}", -want[3]);
        let (scale, min) = (header_f32(&out, 0), header_f32(&out, 1));
        for (i, &w) in want.iter().enumerate() {
            let got = f64::from(scale * f32::from(out[4 + i]) + min);
            assert!(
                (got - w).abs() <= f64::from(scale) * 0.5 + 1e-5,
                "{i}: {got} vs {w}"
            );
        }
        assert_eq!(&out[4 + 11..], &[0]);
    }

    #[test]
    fn kl_against_itself_is_zero_and_against_a_twin_matches_f64() {
        let base = BigramModel::new(7, 64);
        let tokens: Vec<u32> = (0..40).map(|i| (i * 3 + 1) % 7).collect();
        let n_ctx = 8;
        let mut saved = Vec::new();
        let summary = save_logits(
            &base,
            &tokens,
            n_ctx,
            Some(0),
            &mut |c| {
                saved.push(c.to_vec());
                Ok(())
            },
            &mut |_, _, _| {},
        )
        .unwrap();
        assert_eq!(summary.chunks, 5);
        assert_eq!(summary.count, 5 * 3);
        let kl_of = |model: &dyn KlModel| model.kl(&tokens, n_ctx, &saved);
        let same = kl_of(&base);
        assert!(same.kld.value.abs() < 1e-4, "{:?}", same.kld);
        assert_eq!(same.same_top.value, 1.0);
        assert!((same.ppl.value - summary.ppl).abs() < 1e-9 * summary.ppl);

        let twin = Scaled(BigramModel::new(7, 64), 0.8);
        let r = kl_of(&twin);
        // Independent f64 reference over the same rows.
        let (mut kl, mut top, mut n) = (0.0, 0usize, 0usize);
        for c in 0..5 {
            let mut chunk = tokens[c * n_ctx..(c + 1) * n_ctx].to_vec();
            chunk[0] = 0;
            for (pos, &tok) in chunk.iter().enumerate().take(n_ctx - 1).skip(n_ctx / 2) {
                let b = log_softmax64(&base.logits_at(tok, pos));
                let q: Vec<f32> = base.logits_at(tok, pos).iter().map(|v| v * 0.8).collect();
                let q = log_softmax64(&q);
                kl += b
                    .iter()
                    .zip(&q)
                    .map(|(b, q)| b.exp() * (b - q))
                    .sum::<f64>();
                let am = |v: &[f64]| {
                    v.iter()
                        .enumerate()
                        .fold(0, |bi, (i, x)| if *x > v[bi] { i } else { bi })
                };
                top += usize::from(am(&b) == am(&q));
                n += 1;
            }
        }
        assert_eq!(r.count, n);
        assert!(
            (r.kld.value - kl / n as f64).abs() < 2e-4,
            "{} vs {}",
            r.kld.value,
            kl / n as f64
        );
        assert!((r.same_top.value - top as f64 / n as f64).abs() < 1e-12);
        assert!(r.kld_min <= r.kld_median && r.kld_median <= r.kld_max);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let m = BigramModel::new(5, 64);
        let save = &mut |_: &[u16]| Ok(());
        let none = &mut |_: usize, _: usize, _: f64| {};
        assert!(matches!(
            save_logits(&m, &[0; 15], 8, None, save, none),
            Err(EngineError::Perplexity(_))
        ));
        assert!(matches!(
            save_logits(&m, &[0; 256], 128, None, save, none),
            Err(EngineError::ContextOverflow { .. })
        ));
        assert_eq!(chunk_count(40, 8, None).unwrap(), 5);
        assert_eq!(chunk_count(40, 8, Some(2)).unwrap(), 2);
        assert!(chunk_count(15, 8, None).is_err());
        let mut toks = vec![0u32; 16];
        toks[9] = 9;
        assert!(matches!(
            save_logits(&m, &toks, 8, None, save, none),
            Err(EngineError::TokenOutOfVocab {
                id: 9,
                index: 9,
                ..
            })
        ));
        let r = kl_divergence(&m, &[0; 16], 8, None, &mut |_| Ok(false), &mut |_| {});
        assert!(matches!(r, Err(EngineError::Perplexity(_))));
        let r = kl_divergence(
            &m,
            &[0; 16],
            8,
            None,
            &mut |o| {
                *o = vec![0; 3];
                Ok(true)
            },
            &mut |_| {},
        );
        assert!(matches!(r, Err(EngineError::Perplexity(_))));
    }
}
