//! Attention in tiles (AVX2 + FMA): the queries of a few consecutive tokens and of all the heads
//! that share one KV head are scored together, so every key and value row is loaded once per tile
//! instead of once per (token, head).
//!
//! Per query the arithmetic does not depend on the tile it is in: each score is one FMA chain over
//! the head dimension (keys transposed sixteen at a time so that lanes run over keys, no horizontal
//! sums), times the scale; the softmax takes the maximum, one vectorized `exp` per score and the
//! sum in eight lanes over positions; the output is one FMA chain over positions per dimension.
//! Positions past a query's causal limit contribute exact zeros. A token therefore gets the same
//! bits in a prefill batch as when decoded alone.

// Tiles index queries, accumulators and limits by the same index.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::checked::{ptr_at, ptr_at_mut};
use crate::kv::load::Load8;
use crate::matmul::SendPtr;
use crate::quants::simd::hsum;

/// Tokens per tile.
pub(crate) const TOKENS: usize = 16;
/// Keys scored together (two vectors of eight).
const KEYS: usize = 16;
/// The largest head size the tiles handle.
pub(crate) const MAX_HEAD_DIM: usize = 256;

/// One tile: the queries at `q[offs[i]..offs[i] + hd]` with causal limits `lasts[i]` (the last
/// position each may attend to), against the keys and values of one KV head (`k`, `v`: loaders of
/// the cached rows from position 0, the head's `hd` values at column `g_off`). Writes each
/// query's output at `out.at(offs[i], hd)`. `scratch` is reused between calls.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `hd` is a multiple of 8 and at most [`MAX_HEAD_DIM`]; `q` holds
/// every query; `out`'s elements `offs[i] .. offs[i] + hd` exist and are written by no one else
/// meanwhile; `k` and `v` cover at least `max(lasts) + 1` rows, and columns `g_off .. g_off + hd`
/// (`g_off` a multiple of 8) lie within their rows.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn attend_tile<L: Load8>(
    q: &[f32],
    offs: &[usize],
    lasts: &[usize],
    out: &SendPtr,
    k: L,
    v: L,
    g_off: usize,
    hd: usize,
    scale: f32,
    scratch: &mut Vec<f32>,
) {
    let nq = offs.len();
    let ctx = lasts.iter().max().map_or(0, |&l| l + 1);
    let stride = ctx.div_ceil(KEYS) * KEYS;
    // The transposed key block, then the scores: every value read below is written first (pass 1
    // writes whole blocks of 16 keys for every query), so reused scratch is not cleared.
    let need = hd * KEYS + nq * stride;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    let (kt, scores) = scratch[..need].split_at_mut(hd * KEYS);
    let neg = _mm256_set1_ps(f32::NEG_INFINITY);
    // Pass 1: scores, sixteen keys at a time against up to four queries.
    for j0 in (0..ctx).step_by(KEYS) {
        let nk = KEYS.min(ctx - j0);
        // SAFETY: the CPU has AVX2 and F16C (this function's contract); rows j0 .. j0 + nk < ctx
        // of `k` hold the head's `hd` values at `g_off` (the caller's contract), `kt` holds hd·16.
        unsafe { transpose_keys(k, g_off, hd, j0, nk, kt) };
        let mut q0 = 0;
        while q0 < nq {
            let nqb = 4.min(nq - q0);
            let args = ScoreArgs {
                q,
                offs: &offs[q0..q0 + nqb],
                lasts: &lasts[q0..q0 + nqb],
                kt,
                hd,
                j0,
                scale,
            };
            let rows = &mut scores[q0 * stride..(q0 + nqb) * stride];
            // SAFETY: the CPU has AVX2 and FMA (this function's contract).
            unsafe {
                match nqb {
                    4 => score_block::<4>(&args, rows, stride),
                    3 => score_block::<3>(&args, rows, stride),
                    2 => score_block::<2>(&args, rows, stride),
                    _ => score_block::<1>(&args, rows, stride),
                }
            }
            q0 += nqb;
        }
    }
    // Pass 2: softmax weights (unnormalized) and their sums.
    let mut inv = [0.0f32; 64];
    let mut inv_big = Vec::new();
    let inv: &mut [f32] = if nq <= 64 {
        &mut inv[..nq]
    } else {
        inv_big.resize(nq, 0.0);
        &mut inv_big
    };
    for q in 0..nq {
        let row = &mut scores[q * stride..(q + 1) * stride];
        let mut mv = neg;
        for c in row.chunks_exact(8) {
            // SAFETY: `c` holds 8 values (checked by `ptr_at` in debug builds).
            mv = _mm256_max_ps(mv, unsafe { _mm256_loadu_ps(ptr_at(c, 0, 8)) });
        }
        let m = hmax(mv);
        let mb = _mm256_set1_ps(m);
        let mut lv = _mm256_setzero_ps();
        for c in row.chunks_exact_mut(8) {
            // SAFETY: `c` holds 8 values (checked by `ptr_at` in debug builds).
            let s = unsafe { _mm256_loadu_ps(ptr_at(c, 0, 8)) };
            let p = exp256(_mm256_sub_ps(s, mb));
            lv = _mm256_add_ps(lv, p);
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(ptr_at_mut(c, 0, 8), p) };
        }
        let l = hsum(lv);
        inv[q] = if l > 0.0 { 1.0 / l } else { 0.0 };
    }
    // Pass 3: outputs, two queries × 32 dimensions at a time.
    let mut q0 = 0;
    while q0 < nq {
        let nqb = 2.min(nq - q0);
        let upto = (0..nqb).map(|i| lasts[q0 + i] + 1).max().unwrap_or(0);
        let mut d0 = 0;
        while d0 < hd {
            let wide = hd - d0 >= 32;
            let a = PvArgs {
                v,
                col: g_off + d0,
                upto,
                scores: &scores[q0 * stride..],
                stride,
            };
            let mut o = [[0.0f32; 32]; 2];
            // SAFETY: the CPU has AVX2, FMA and F16C; columns col .. col + 32 (or + 8) of rows
            // 0..upto lie in `v` (this function's contract: the head's columns lie in the rows).
            unsafe {
                match (nqb, wide) {
                    (2, true) => pv_block::<2, 4, L>(&a, &mut o),
                    (2, false) => pv_block::<2, 1, L>(&a, &mut o),
                    (_, true) => pv_block::<1, 4, L>(&a, &mut o),
                    (_, false) => pv_block::<1, 1, L>(&a, &mut o),
                }
            }
            let w = if wide { 32 } else { 8 };
            for i in 0..nqb {
                let inv = inv[q0 + i];
                for (c, &x) in o[i][..w].iter().enumerate() {
                    // SAFETY: d0 + c < hd values of the query's output (the caller's contract;
                    // `at` checks the index against `out`'s length in debug builds).
                    unsafe { *out.at(offs[q0 + i] + d0 + c, 1) = x * inv };
                }
            }
            d0 += w;
        }
        q0 += nqb;
    }
}

/// Keys `j0 .. j0 + nk` (at most 16; missing ones as zeros) of the head at `g_off` into
/// `kt[d * 16 + key]`, in 8 × 8 blocks.
///
/// # Safety
/// The CPU has AVX2 and F16C; `k` covers rows `j0 .. j0 + nk` whose columns `g_off .. g_off + hd`
/// exist, `hd` and `g_off` are multiples of 8 and `kt` holds `hd * 16` values.
#[target_feature(enable = "avx2,f16c")]
unsafe fn transpose_keys<L: Load8>(
    k: L,
    g_off: usize,
    hd: usize,
    j0: usize,
    nk: usize,
    kt: &mut [f32],
) {
    assert!(nk <= KEYS && kt.len() >= hd * KEYS);
    for kb in 0..2 {
        for dc in 0..hd / 8 {
            let r: [__m256; 8] = std::array::from_fn(|i| {
                let key = 8 * kb + i;
                if key < nk {
                    // SAFETY: row j0 + key < j0 + nk, columns g_off + 8dc + 8 <= g_off + hd
                    // (this function's contract).
                    unsafe { k.load8(j0 + key, g_off + 8 * dc) }
                } else {
                    _mm256_setzero_ps()
                }
            });
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let out = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (i, v) in out.iter().enumerate() {
                // SAFETY: (8dc + i)·16 + 8kb + 8 <= hd·16 (asserted length; `ptr_at_mut` checks
                // the range in debug builds).
                unsafe { _mm256_storeu_ps(ptr_at_mut(kt, (8 * dc + i) * KEYS + 8 * kb, 8), *v) };
            }
        }
    }
}

/// The operands of [`score_block`].
struct ScoreArgs<'a> {
    q: &'a [f32],
    offs: &'a [usize],
    lasts: &'a [usize],
    kt: &'a [f32],
    hd: usize,
    j0: usize,
    scale: f32,
}

/// Scores of `Q` queries against the sixteen transposed keys `kt` (`[hd][16]`) at positions
/// `j0..j0 + 16`, written at `rows[i * stride + j0..]` (−∞ past each query's limit).
///
/// # Safety
/// The CPU has AVX2 and FMA; `kt` holds `hd * 16` values, `rows` holds `Q` rows of `stride`
/// values with `j0 + 16 <= stride`.
#[target_feature(enable = "avx2,fma")]
unsafe fn score_block<const Q: usize>(a: &ScoreArgs<'_>, rows: &mut [f32], stride: usize) {
    let mut acc = [[_mm256_setzero_ps(); 2]; Q];
    let qp: [&[f32]; Q] = std::array::from_fn(|i| &a.q[a.offs[i]..a.offs[i] + a.hd]);
    for d in 0..a.hd {
        // SAFETY: `kt` holds `hd * KEYS` values, `d < hd` (the ranges `ptr_at` checks in debug
        // builds).
        let (k0, k1) = unsafe {
            (
                _mm256_loadu_ps(ptr_at(a.kt, d * KEYS, 8)),
                _mm256_loadu_ps(ptr_at(a.kt, d * KEYS + 8, 8)),
            )
        };
        for i in 0..Q {
            let qd = _mm256_set1_ps(qp[i][d]);
            acc[i][0] = _mm256_fmadd_ps(qd, k0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(qd, k1, acc[i][1]);
        }
    }
    let sc = _mm256_set1_ps(a.scale);
    let neg = _mm256_set1_ps(f32::NEG_INFINITY);
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for i in 0..Q {
        for h in 0..2 {
            // Positions past the query's limit (or past the context) score −∞.
            let lim = (a.lasts[i] + 1).saturating_sub(a.j0 + 8 * h).min(8) as i32;
            let keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(lim), idx));
            let s = _mm256_blendv_ps(neg, _mm256_mul_ps(acc[i][h], sc), keep);
            let o = i * stride + a.j0 + 8 * h;
            assert!(o + 8 <= rows.len());
            // SAFETY: asserted above.
            unsafe { _mm256_storeu_ps(ptr_at_mut(rows, o, 8), s) };
        }
    }
}

/// The operands of [`pv_block`].
struct PvArgs<'a, L> {
    v: L,
    col: usize,
    upto: usize,
    scores: &'a [f32],
    stride: usize,
}

/// `o[i][..8·NV] = Σ_{j < upto} p[i][j] · v[j][col..col + 8·NV]` for `Q` queries, one FMA chain
/// over positions per lane.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `v` covers rows `0..upto` whose columns `col .. col + 8·NV`
/// exist (`col` a multiple of 8); `scores` holds `Q` rows of `stride >= upto` values.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pv_block<const Q: usize, const NV: usize, L: Load8>(
    a: &PvArgs<'_, L>,
    o: &mut [[f32; 32]; 2],
) {
    assert!(Q <= 2 && NV <= 4 && a.upto <= a.stride);
    assert!(a.scores.len() >= (Q - 1) * a.stride + a.upto);
    let mut acc = [[_mm256_setzero_ps(); NV]; Q];
    for j in 0..a.upto {
        let mut vv = [_mm256_setzero_ps(); NV];
        for c in 0..NV {
            // SAFETY: row j < upto, columns col + 8c .. col + 8c + 8 (this function's contract).
            vv[c] = unsafe { a.v.load8(j, a.col + 8 * c) };
        }
        for i in 0..Q {
            // SAFETY: (Q − 1)·stride + upto values (asserted; `ptr_at` checks it in debug builds).
            let p = _mm256_set1_ps(unsafe { *ptr_at(a.scores, i * a.stride + j, 1) });
            for c in 0..NV {
                acc[i][c] = _mm256_fmadd_ps(p, vv[c], acc[i][c]);
            }
        }
    }
    for i in 0..Q {
        for c in 0..NV {
            // SAFETY: `o[i]` holds 32 ≥ 8·NV values (`ptr_at_mut` checks it in debug builds).
            unsafe { _mm256_storeu_ps(ptr_at_mut(&mut o[i], 8 * c, 8), acc[i][c]) };
        }
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn hmax(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `e^x` for eight lanes with x ≤ 0 (the softmax's `s − max`): relative error below 3e-7 (about
/// two ulp); −∞ and anything below −87.3 give 0, NaN stays NaN.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp256(x: __m256) -> __m256 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n·LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3), _CMP_LT_OQ);
    let xc = _mm256_max_ps(x, _mm256_set1_ps(-87.3));
    let n = _mm256_round_ps(
        _mm256_mul_ps(xc, _mm256_set1_ps(LOG2E)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
    );
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    // e^r on |r| ≤ ln2/2: Taylor to degree 6.
    let mut p = _mm256_set1_ps(1.0 / 720.0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 120.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 24.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 6.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
    // × 2^n (n ≥ −126 after the clamp, so the exponent stays normal).
    let e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
        23,
    );
    let y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    // NaN in gives NaN out (the clamp's max would have hidden it).
    let nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    let y = _mm256_blendv_ps(y, x, nan);
    _mm256_andnot_ps(tiny, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp256_is_within_3e7_of_libm() {
        if !crate::cpu::cpu().avx2_fma() {
            return;
        }
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let xs = [
                x,
                x * 0.5,
                x * 0.25,
                x * 0.125,
                x / 3.0,
                x / 7.0,
                x / 100.0,
                x / 1e4,
            ];
            let mut out = [0.0f32; 8];
            // SAFETY: AVX2 and FMA are detected above; both arrays hold 8 values.
            unsafe {
                let y = exp256(_mm256_loadu_ps(xs.as_ptr()));
                _mm256_storeu_ps(out.as_mut_ptr(), y);
            }
            for (a, &b) in xs.iter().zip(&out) {
                let want = f64::from(*a).exp();
                let rel = ((f64::from(b) - want) / want).abs();
                worst = worst.max(rel);
            }
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        let special = [
            f32::NEG_INFINITY,
            -1000.0,
            -87.5,
            f32::NAN,
            0.0,
            -0.0,
            -1e-30,
            -88.0,
        ];
        let mut out = [0.0f32; 8];
        // SAFETY: as above.
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), exp256(_mm256_loadu_ps(special.as_ptr())));
        }
        assert_eq!(&out[..3], &[0.0, 0.0, 0.0]);
        assert!(out[3].is_nan());
        assert_eq!(&out[4..7], &[1.0, 1.0, 1.0]);
        assert_eq!(out[7], 0.0);
    }

    /// `attend_tile` trusts its caller for the output's extent: an output one value short of
    /// the query's head is caught by the debug range check before the write past it.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "pointer range")]
    fn a_short_output_is_caught() {
        use crate::kv::load::F32Rows;
        if !crate::cpu::cpu().avx2_fma_f16c() {
            panic!("pointer range: no AVX2 tiles on this CPU to check");
        }
        let hd = 8;
        let q = vec![0.5f32; hd];
        let kv = vec![0.25f32; 2 * hd];
        let (k, v) = (F32Rows::new(&kv, hd), F32Rows::new(&kv, hd));
        let mut out = vec![0.0f32; hd];
        let optr = SendPtr::new(&mut out[..hd - 1]);
        let mut scratch = Vec::new();
        // SAFETY: the CPU has AVX2, FMA and F16C; `hd` is 8; the query, keys and values exist;
        // the output is one value short, which the debug assertion reports before the write
        // (this test only exists with debug assertions).
        unsafe { attend_tile(&q, &[0], &[1], &optr, k, v, 0, hd, 1.0, &mut scratch) };
    }
}
