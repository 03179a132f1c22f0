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
    let dotf = dot_fn();
    out.par_chunks_mut(hd).enumerate().for_each(|(idx, acc)| {
        let t = idx / n_heads;
        let h = idx % n_heads;
        let g = h / n_rep;
        let qh = &q[t * q_dim + h * hd..t * q_dim + (h + 1) * hd];
        let last = start_pos + t;
        acc.fill(0.0);
        let mut m = f32::NEG_INFINITY;
        let mut l = 0.0f32;
        for j in 0..=last {
            let off = j * kv_dim + g * hd;
            let s = dotf(qh, &k[off..off + hd]) * scale;
            if s > m {
                let c = (m - s).exp();
                l *= c;
                for a in acc.iter_mut() {
                    *a *= c;
                }
                m = s;
            }
            let e = (s - m).exp();
            l += e;
            for (a, vv) in acc.iter_mut().zip(&v[off..off + hd]) {
                *a += e * vv;
            }
        }
        let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
        for a in acc.iter_mut() {
            *a *= inv;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::softmax;

    #[test]
    fn matches_naive_softmax_attention_with_gqa() {
        let (nh, nkv, hd) = (4usize, 2usize, 8usize);
        let (start, n) = (3usize, 2usize);
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
                    assert!((o - r).abs() < 1e-5, "t{t} h{h} d{d}: {o} vs {r}");
                }
            }
        }
        // Cache too short.
        assert!(attention(&mut out, &q, &k[..10], &v, n, start, shape).is_err());
    }
}
