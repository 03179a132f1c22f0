//! Causal grouped-query attention over a preallocated KV cache, one pass with online softmax.

use rayon::prelude::*;

use crate::matmul::dot_fn;
use crate::{check_len, mul, KernelError, Result};

/// Head counts and size of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// `out[t, h] = Σ_j softmax_j(q[t,h]·k[j,g] / √d) v[j,g]` over `j ≤ start_pos + t`, where
/// `g = h / (n_heads / n_kv_heads)` (Meta's `repeat_kv`).
///
/// `q` and `out` are `n_tokens × n_heads·head_dim`; `k`, `v` hold at least
/// `start_pos + n_tokens` rows of `n_kv_heads·head_dim` (the cache, already containing the new
/// tokens' keys and values).
pub fn attention(
    out: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_tokens: usize,
    start_pos: usize,
    shape: AttentionShape,
) -> Result<()> {
    let AttentionShape {
        n_heads,
        n_kv_heads,
        head_dim: hd,
    } = shape;
    if n_heads == 0 || n_kv_heads == 0 || hd == 0 || n_heads % n_kv_heads != 0 {
        return Err(KernelError::Invalid(format!(
            "attention: bad head counts {n_heads}/{n_kv_heads} × {hd}"
        )));
    }
    let q_dim = mul("attention q", n_heads, hd)?;
    let kv_dim = mul("attention kv", n_kv_heads, hd)?;
    let ctx = start_pos
        .checked_add(n_tokens)
        .ok_or(KernelError::Overflow("attention ctx"))?;
    check_len("attention q", mul("attention q", n_tokens, q_dim)?, q.len())?;
    check_len("attention out", q.len(), out.len())?;
    let need = mul("attention kv", ctx, kv_dim)?;
    if k.len() < need || v.len() < need {
        return Err(KernelError::Length {
            what: "attention kv cache",
            expected: need,
            got: k.len().min(v.len()),
        });
    }
    let n_rep = n_heads / n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    #[cfg(target_arch = "x86_64")]
    if hd % 8 == 0 && hd <= crate::attention_tiled::MAX_HEAD_DIM && crate::cpu::cpu().avx2_fma() {
        tiled(out, q, k, v, n_tokens, start_pos, shape, scale);
        return Ok(());
    }
    let dotf = dot_fn();
    // Two passes per (token, head): all scores (kept in a per-thread buffer), then one softmax
    // and one weighted sum of the values: one exp per position instead of the online form's
    // rescaling.
    out.par_chunks_mut(hd).enumerate().for_each(|(idx, acc)| {
        let t = idx / n_heads;
        let h = idx % n_heads;
        let g = h / n_rep;
        let qh = &q[t * q_dim + h * hd..t * q_dim + (h + 1) * hd];
        let last = start_pos + t;
        SCORES.with(|sc| {
            let mut sc = sc.borrow_mut();
            sc.clear();
            let mut m = f32::NEG_INFINITY;
            for j in 0..=last {
                let off = j * kv_dim + g * hd;
                let s = dotf(qh, &k[off..off + hd]) * scale;
                m = m.max(s);
                sc.push(s);
            }
            let mut l = 0.0f32;
            for s in sc.iter_mut() {
                *s = (*s - m).exp();
                l += *s;
            }
            acc.fill(0.0);
            for (j, &e) in sc.iter().enumerate() {
                let off = j * kv_dim + g * hd;
                for (a, vv) in acc.iter_mut().zip(&v[off..off + hd]) {
                    *a += e * vv;
                }
            }
            let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
            for a in acc.iter_mut() {
                *a *= inv;
            }
        });
    });
    Ok(())
}

/// [`attention`] in tiles of up to [`crate::attention_tiled::TOKENS`] tokens × the heads of one KV
/// head, in parallel over tiles. Sizes were checked by [`attention`]; the CPU has AVX2 and FMA and
/// `head_dim` is a multiple of 8 up to the tiles' maximum.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn tiled(
    out: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_tokens: usize,
    start_pos: usize,
    shape: AttentionShape,
    scale: f32,
) {
    use crate::attention_tiled::{attend_tile, TOKENS};
    let (nh, nkv, hd) = (shape.n_heads, shape.n_kv_heads, shape.head_dim);
    let (n_rep, q_dim, kv_dim) = (nh / nkv, nh * hd, nkv * hd);
    // Fewer tokens per tile at long contexts, so a tile's scores stay within SCORE_BUDGET floats.
    let ctx = start_pos + n_tokens;
    let per_tile = (SCORE_BUDGET / (n_rep * ctx).max(1)).clamp(1, TOKENS);
    let n_tiles = n_tokens.div_ceil(per_tile);
    let optr = crate::matmul::SendPtr(out.as_mut_ptr());
    (0..n_tiles * nkv).into_par_iter().for_each(|task| {
        let optr = &optr;
        let (tile, g) = (task / nkv, task % nkv);
        let (t0, t1) = (tile * per_tile, (tile * per_tile + per_tile).min(n_tokens));
        SCORES.with(|sc| {
            let mut sc = sc.borrow_mut();
            let (mut offs, mut lasts) = (Vec::new(), Vec::new());
            let mut offs_a = [0usize; 64];
            let mut lasts_a = [0usize; 64];
            let nq = (t1 - t0) * n_rep;
            let (offs, lasts) = if nq <= 64 {
                (&mut offs_a[..nq], &mut lasts_a[..nq])
            } else {
                offs.resize(nq, 0);
                lasts.resize(nq, 0);
                (&mut offs[..], &mut lasts[..])
            };
            for t in t0..t1 {
                for r in 0..n_rep {
                    let i = (t - t0) * n_rep + r;
                    offs[i] = t * q_dim + (g * n_rep + r) * hd;
                    lasts[i] = start_pos + t;
                }
            }
            // SAFETY: `attention` checked AVX2, FMA and `hd`; `q` and `out` hold n_tokens rows
            // of q_dim values and the cache (start_pos + n_tokens) rows of kv_dim values
            // (checked sizes); this task alone writes the heads of group g of tokens t0..t1.
            unsafe {
                attend_tile(
                    q,
                    offs,
                    lasts,
                    optr.0,
                    k,
                    v,
                    kv_dim,
                    g * hd,
                    hd,
                    scale,
                    &mut sc,
                )
            };
        });
    });
}

/// Scores one attention tile may hold (16 MiB of f32).
#[cfg(target_arch = "x86_64")]
const SCORE_BUDGET: usize = 1 << 22;

thread_local! {
    /// Attention scores of the (token, head) a thread is working on.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::softmax;

    /// Head sizes that are multiples of 8 take the tiles (where the CPU has AVX2), 12 the
    /// portable loop.
    #[test]
    fn matches_naive_softmax_attention_with_gqa() {
        for hd in [8usize, 12, 64, 128] {
            check_against_naive(hd);
        }
    }

    /// A token's output is the same bits in a batch of any size (tiles of several tokens and
    /// heads) as when it is computed alone against the same cache (decode).
    #[test]
    fn batch_and_single_token_give_the_same_bits() {
        // The last case has a long context and 64 query heads per KV head: its tiles hold 8
        // tokens instead of 16 (the score budget).
        for (hd, nh, nkv, start) in [
            (64usize, 9usize, 3usize, 29usize),
            (128, 8, 2, 29),
            (8, 4, 4, 29),
            (12, 4, 2, 29),
            (8, 64, 1, 8180),
        ] {
            let n = 11usize;
            let ctx = start + n;
            let f = |i: usize| ((i as f32) * 0.377).sin() * 3.0;
            let q: Vec<f32> = (0..n * nh * hd).map(f).collect();
            let k: Vec<f32> = (0..ctx * nkv * hd).map(|i| f(i + 777)).collect();
            let v: Vec<f32> = (0..ctx * nkv * hd).map(|i| f(i + 3333)).collect();
            let shape = AttentionShape {
                n_heads: nh,
                n_kv_heads: nkv,
                head_dim: hd,
            };
            let mut batch = vec![0.0; n * nh * hd];
            attention(&mut batch, &q, &k, &v, n, start, shape).unwrap();
            let w = nh * hd;
            for t in 0..n {
                let mut one = vec![0.0; w];
                let kv = (start + t + 1) * nkv * hd;
                let qt = &q[t * w..(t + 1) * w];
                attention(&mut one, qt, &k[..kv], &v[..kv], 1, start + t, shape).unwrap();
                let a: Vec<u32> = batch[t * w..(t + 1) * w]
                    .iter()
                    .map(|x| x.to_bits())
                    .collect();
                let b: Vec<u32> = one.iter().map(|x| x.to_bits()).collect();
                assert_eq!(a, b, "hd {hd} token {t}");
            }
        }
    }

    fn check_against_naive(hd: usize) {
        let (nh, nkv) = (4usize, 2usize);
        let (start, n) = (37usize, 5usize);
        let ctx = start + n;
        let f = |i: usize| ((i as f32) * 0.731).sin() * 2.0;
        let q: Vec<f32> = (0..n * nh * hd).map(f).collect();
        let k: Vec<f32> = (0..ctx * nkv * hd).map(|i| f(i + 1000)).collect();
        let v: Vec<f32> = (0..ctx * nkv * hd).map(|i| f(i + 5000)).collect();
        let mut out = vec![0.0; n * nh * hd];
        let shape = AttentionShape {
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
        };
        attention(&mut out, &q, &k, &v, n, start, shape).unwrap();
        for t in 0..n {
            for h in 0..nh {
                let g = h / 2;
                let upto = start + t + 1;
                let mut s: Vec<f32> = (0..upto)
                    .map(|j| {
                        (0..hd)
                            .map(|d| q[t * nh * hd + h * hd + d] * k[j * nkv * hd + g * hd + d])
                            .sum::<f32>()
                            / (hd as f32).sqrt()
                    })
                    .collect();
                softmax(&mut s);
                for d in 0..hd {
                    let r: f32 = (0..upto).map(|j| s[j] * v[j * nkv * hd + g * hd + d]).sum();
                    let o = out[t * nh * hd + h * hd + d];
                    assert!((o - r).abs() < 1e-5, "hd{hd} t{t} h{h} d{d}: {o} vs {r}");
                }
            }
        }
        // Cache too short.
        assert!(attention(&mut out, &q, &k[..10], &v, n, start, shape).is_err());
    }
}
