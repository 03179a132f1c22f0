//! Causal grouped-query attention over a preallocated KV cache, one pass with online softmax.

use rayon::prelude::*;

use crate::kv::{KvRows, KvType};
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
/// tokens' keys and values), of the same element type ([`KvType`]), decoded as they are read.
pub fn attention(
    out: &mut [f32],
    q: &[f32],
    k: KvRows<'_>,
    v: KvRows<'_>,
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
    let held = k.rows(kv_dim)?.min(v.rows(kv_dim)?);
    if held < ctx {
        return Err(KernelError::Length {
            what: "attention kv cache rows",
            expected: ctx,
            got: held,
        });
    }
    if k.kv_type() != v.kv_type() {
        return Err(KernelError::Invalid(format!(
            "attention: keys of type {} with values of type {}",
            k.kv_type(),
            v.kv_type()
        )));
    }
    let n_rep = n_heads / n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    #[cfg(target_arch = "x86_64")]
    if hd % 8 == 0
        && hd <= crate::attention_tiled::MAX_HEAD_DIM
        && crate::cpu::cpu().avx2_fma_f16c()
    {
        use crate::kv::load::{Bf16Rows, F16Rows, F32Rows, Q8Rows};
        let rb = k.kv_type().row_bytes(kv_dim)?;
        let call = TileCall {
            out,
            q,
            n_tokens,
            start_pos,
            shape,
            scale,
        };
        match (k, v) {
            (KvRows::F32(k), KvRows::F32(v)) => {
                tiled(call, F32Rows::new(k, kv_dim), F32Rows::new(v, kv_dim));
            }
            (KvRows::Encoded(ty, k), KvRows::Encoded(_, v)) => match ty {
                KvType::F16 => tiled(call, F16Rows::new(k, rb), F16Rows::new(v, rb)),
                KvType::Bf16 => tiled(call, Bf16Rows::new(k, rb), Bf16Rows::new(v, rb)),
                KvType::Q8_0 => tiled(call, Q8Rows::new(k, rb), Q8Rows::new(v, rb)),
                KvType::F32 => {
                    return Err(KernelError::Invalid(
                        "attention: f32 rows passed as encoded bytes".into(),
                    ))
                }
            },
            _ => unreachable!("types compared above"),
        }
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
            // Decoded rows of an encoded cache (f32 rows are read in place).
            let mut row = Vec::new();
            if !matches!(k, KvRows::F32(_)) {
                row.resize(hd, 0.0);
            }
            for j in 0..=last {
                let kr = read_head(k, kv_dim, j, g * hd, hd, &mut row);
                let s = dotf(qh, kr) * scale;
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
                let vr = read_head(v, kv_dim, j, g * hd, hd, &mut row);
                for (a, vv) in acc.iter_mut().zip(vr) {
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

/// Values `col .. col + hd` of row `row` (rows of `width` values): f32 rows in place, encoded
/// ones decoded into `buf` (which then holds `hd` values). Sizes were checked by [`attention`].
fn read_head<'a>(
    rows: KvRows<'a>,
    width: usize,
    row: usize,
    col: usize,
    hd: usize,
    buf: &'a mut [f32],
) -> &'a [f32] {
    match rows {
        KvRows::F32(v) => &v[row * width + col..][..hd],
        encoded => {
            if let Err(e) = encoded.segment(width, row, col, buf) {
                unreachable!("attention checked the cache's size: {e}")
            }
            buf
        }
    }
}

/// The operands of [`tiled`] besides the cache.
#[cfg(target_arch = "x86_64")]
struct TileCall<'a> {
    out: &'a mut [f32],
    q: &'a [f32],
    n_tokens: usize,
    start_pos: usize,
    shape: AttentionShape,
    scale: f32,
}

/// [`attention`] in tiles of up to [`crate::attention_tiled::TOKENS`] tokens × the heads of one KV
/// head, in parallel over tiles, reading the cache through `k` and `v`. Sizes were checked by
/// [`attention`]; the CPU has AVX2, FMA and F16C and `head_dim` is a multiple of 8 up to the
/// tiles' maximum; the loaders cover `start_pos + n_tokens` rows.
#[cfg(target_arch = "x86_64")]
fn tiled<L: crate::kv::load::Load8>(call: TileCall<'_>, k: L, v: L) {
    let TileCall {
        out,
        q,
        n_tokens,
        start_pos,
        shape,
        scale,
    } = call;
    use crate::attention_tiled::{attend_tile, TOKENS};
    let (nh, nkv, hd) = (shape.n_heads, shape.n_kv_heads, shape.head_dim);
    let (n_rep, q_dim) = (nh / nkv, nh * hd);
    // Fewer tokens per tile at long contexts, so a tile's scores stay within SCORE_BUDGET floats.
    let ctx = start_pos + n_tokens;
    let per_tile = (SCORE_BUDGET / (n_rep * ctx).max(1)).clamp(1, TOKENS);
    let n_tiles = n_tokens.div_ceil(per_tile);
    let optr = crate::matmul::SendPtr::new(out);
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
            unsafe { attend_tile(q, offs, lasts, optr, k, v, g * hd, hd, scale, &mut sc) };
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
            attention(
                &mut batch,
                &q,
                KvRows::F32(&k),
                KvRows::F32(&v),
                n,
                start,
                shape,
            )
            .unwrap();
            let w = nh * hd;
            for t in 0..n {
                let mut one = vec![0.0; w];
                let kv = (start + t + 1) * nkv * hd;
                let qt = &q[t * w..(t + 1) * w];
                attention(
                    &mut one,
                    qt,
                    KvRows::F32(&k[..kv]),
                    KvRows::F32(&v[..kv]),
                    1,
                    start + t,
                    shape,
                )
                .unwrap();
                let a: Vec<u32> = batch[t * w..(t + 1) * w]
                    .iter()
                    .map(|x| x.to_bits())
                    .collect();
                let b: Vec<u32> = one.iter().map(|x| x.to_bits()).collect();
                assert_eq!(a, b, "hd {hd} token {t}");
            }
        }
    }

    /// Attention over an encoded cache (f16, bf16, q8_0) gives the same bits as attention over
    /// the f32 values those rows decode to, on the tiled path (head sizes multiple of 8) and the
    /// portable one (12), in a batch and token by token.
    #[test]
    fn encoded_caches_attend_to_their_decoded_values() {
        for (hd, nh, nkv) in [
            (16usize, 4usize, 2usize),
            (64, 8, 2),
            (32, 6, 3),
            (12, 4, 2),
        ] {
            let (start, n) = (37usize, 6usize);
            let ctx = start + n;
            let w = nkv * hd;
            let f = |i: usize| ((i as f32) * 0.593).sin() * 2.5;
            let q: Vec<f32> = (0..n * nh * hd).map(f).collect();
            let k: Vec<f32> = (0..ctx * w).map(|i| f(i + 1000)).collect();
            let v: Vec<f32> = (0..ctx * w).map(|i| f(i + 5000)).collect();
            let shape = AttentionShape {
                n_heads: nh,
                n_kv_heads: nkv,
                head_dim: hd,
            };
            for ty in [KvType::F16, KvType::Bf16, KvType::Q8_0] {
                let Ok(rb) = ty.row_bytes(w) else {
                    assert_eq!(ty, KvType::Q8_0);
                    assert!(w % 32 != 0);
                    continue;
                };
                let enc = |x: &[f32]| {
                    let mut b = vec![0u8; ctx * rb];
                    crate::kv::encode_rows(ty, w, x, &mut b).unwrap();
                    b
                };
                let (kb, vb) = (enc(&k), enc(&v));
                let dec = |b: &[u8]| {
                    let mut o = vec![0.0f32; ctx * w];
                    for r in 0..ctx {
                        KvRows::Encoded(ty, b)
                            .segment(w, r, 0, &mut o[r * w..(r + 1) * w])
                            .unwrap();
                    }
                    o
                };
                let (kd, vd) = (dec(&kb), dec(&vb));
                assert_ne!(kd, k, "{ty} rounds");
                let mut want = vec![0.0; n * nh * hd];
                attention(
                    &mut want,
                    &q,
                    KvRows::F32(&kd),
                    KvRows::F32(&vd),
                    n,
                    start,
                    shape,
                )
                .unwrap();
                let mut got = vec![0.0; n * nh * hd];
                let (ke, ve) = (KvRows::Encoded(ty, &kb), KvRows::Encoded(ty, &vb));
                attention(&mut got, &q, ke, ve, n, start, shape).unwrap();
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{ty} hd {hd}");
                let qw = nh * hd;
                for t in 0..n {
                    let mut one = vec![0.0; qw];
                    let rows = start + t + 1;
                    let (k1, v1) = (
                        KvRows::Encoded(ty, &kb[..rows * rb]),
                        KvRows::Encoded(ty, &vb[..rows * rb]),
                    );
                    attention(
                        &mut one,
                        &q[t * qw..(t + 1) * qw],
                        k1,
                        v1,
                        1,
                        start + t,
                        shape,
                    )
                    .unwrap();
                    assert_eq!(bits(&one), bits(&got[t * qw..(t + 1) * qw]), "{ty} t {t}");
                }
                // Keys and values of different types, and too few rows, are refused.
                let short = KvRows::Encoded(ty, &kb[..(ctx - 1) * rb]);
                assert!(attention(&mut got, &q, short, ve, n, start, shape).is_err());
                let mixed = attention(&mut got, &q, KvRows::F32(&k), ve, n, start, shape);
                assert!(mixed.is_err());
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
        attention(
            &mut out,
            &q,
            KvRows::F32(&k),
            KvRows::F32(&v),
            n,
            start,
            shape,
        )
        .unwrap();
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
        assert!(attention(
            &mut out,
            &q,
            KvRows::F32(&k[..10]),
            KvRows::F32(&v),
            n,
            start,
            shape
        )
        .is_err());
    }
}
