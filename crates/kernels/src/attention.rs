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
    #[cfg(target_arch = "x86_64")]
    let simd = (hd == 64 || hd == 128)
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma");
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
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: `simd` is true only when AVX2 and FMA were detected at run time and
                // `hd` is 64 or 128; every slice below is in bounds (checked sizes above).
                unsafe {
                    match hd {
                        64 => attend_avx2::<8>(qh, k, v, kv_dim, g * hd, last, scale, &mut sc, acc),
                        _ => attend_avx2::<16>(qh, k, v, kv_dim, g * hd, last, scale, &mut sc, acc),
                    }
                }
                return;
            }
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

/// One (token, head) of [`attention`] for `head_dim = 8·N` with AVX2: scores with the query in
/// registers, one exp per position, values accumulated in registers.
///
/// # Safety
/// SAFETY: the caller must have detected AVX2 and FMA at run time; `q`, `out` hold `8·N` values
/// and `k`, `v` hold at least `(last + 1)·kv_dim` values with `g_off + 8·N <= kv_dim`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx2<const N: usize>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    kv_dim: usize,
    g_off: usize,
    last: usize,
    scale: f32,
    sc: &mut Vec<f32>,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let hd = 8 * N;
    let q = &q[..hd];
    let out = &mut out[..hd];
    let need = (last + 1) * kv_dim;
    let (k, v) = (&k[..need], &v[..need]);
    debug_assert!(g_off + hd <= kv_dim);
    // SAFETY (all loads/stores below): offsets `j·kv_dim + g_off + 8i + 8 <= need` for j <= last
    // and i < N, as `g_off + hd <= kv_dim`; `q` and `out` have `hd = 8N` elements.
    unsafe {
        let mut qv = [_mm256_setzero_ps(); N];
        for (i, r) in qv.iter_mut().enumerate() {
            *r = _mm256_loadu_ps(q.as_ptr().add(8 * i));
        }
        let mut m = f32::NEG_INFINITY;
        for j in 0..=last {
            let kp = k.as_ptr().add(j * kv_dim + g_off);
            let mut a0 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kp));
            let mut a1 = _mm256_mul_ps(qv[1], _mm256_loadu_ps(kp.add(8)));
            let mut i = 2;
            while i < N {
                a0 = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(kp.add(8 * i)), a0);
                a1 = _mm256_fmadd_ps(qv[i + 1], _mm256_loadu_ps(kp.add(8 * i + 8)), a1);
                i += 2;
            }
            let a = _mm256_add_ps(a0, a1);
            let s4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
            let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            let s = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2))) * scale;
            m = m.max(s);
            sc.push(s);
        }
        let mut l = 0.0f32;
        for s in sc.iter_mut() {
            *s = (*s - m).exp();
            l += *s;
        }
        let mut acc = [_mm256_setzero_ps(); N];
        for (j, &e) in sc.iter().enumerate() {
            let vp = v.as_ptr().add(j * kv_dim + g_off);
            let ev = _mm256_set1_ps(e);
            for (i, r) in acc.iter_mut().enumerate() {
                *r = _mm256_fmadd_ps(ev, _mm256_loadu_ps(vp.add(8 * i)), *r);
            }
        }
        let inv = _mm256_set1_ps(if l > 0.0 { 1.0 / l } else { 0.0 });
        for (i, r) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * i), _mm256_mul_ps(*r, inv));
        }
    }
}

thread_local! {
    /// Attention scores of the (token, head) a thread is working on.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::softmax;

    /// Head sizes 64 and 128 take the AVX2 kernel (where the CPU has it), 8 the portable loop.
    #[test]
    fn matches_naive_softmax_attention_with_gqa() {
        for hd in [8usize, 64, 128] {
            check_against_naive(hd);
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
