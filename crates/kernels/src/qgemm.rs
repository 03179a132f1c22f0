//! Tiled products of quantized weights with several 8-bit activation rows at once (AVX2): each
//! weight block is loaded and unpacked once and multiplied with up to four activation rows, and
//! the activation scales are converted to f32 once per row instead of once per product.
//!
//! Every output is computed with exactly the same operations in the same order whether its
//! activation row is processed alone (`R = 1`, decode) or in a tile of four (prefill, batches of
//! sequences), so results do not depend on the batch size. The scalar oracle is
//! [`crate::qdot::vec_dot`]; the tests compare against it within the per-type budgets.

use std::arch::x86_64::*;
use std::mem::offset_of;

use crate::qdot::{min_term, scales_mins_k4, BlockQ8K, BlockQ8_1};
use crate::quant::{BlockQ4K, BlockQ4_1, BlockQ6K, BlockQ8_0, QuantType, QK, QK_K};

const B41: usize = size_of::<BlockQ4_1>();
const B80: usize = size_of::<BlockQ8_0>();
const B81: usize = size_of::<BlockQ8_1>();
const B4K: usize = size_of::<BlockQ4K>();
const B6K: usize = size_of::<BlockQ6K>();
const B8K: usize = size_of::<BlockQ8K>();
/// f32 scale values per Q8_K activation block: `d`, then the 16 group sums (exact in f32).
const K_SCALES: usize = 1 + QK_K / 16;

/// Whether a tiled kernel exists for `ty` on this CPU.
pub(crate) fn available(ty: QuantType) -> bool {
    matches!(
        ty,
        QuantType::Q4_1 | QuantType::Q8_0 | QuantType::Q4K | QuantType::Q6K
    ) && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// The f32 scales of one activation row: `d` of every block (and `s` for Q8_1), interleaved as
/// `[d0, s0, d1, s1, …]` for Q8_1 and `[d0, d1, …]` for Q8_0; for Q8_K `d` and the 16 group
/// sums of every block.
pub(crate) fn act_scales(ty: QuantType, act_row: &[u8], out: &mut Vec<f32>) {
    use crate::convert::f16_to_f32;
    let rd = |b: &[u8], o: usize| f16_to_f32(u16::from_le_bytes([b[o], b[o + 1]]));
    match ty {
        QuantType::Q4_1 => {
            for b in act_row.chunks_exact(B81) {
                out.push(rd(b, offset_of!(BlockQ8_1, d)));
                out.push(rd(b, offset_of!(BlockQ8_1, s)));
            }
        }
        QuantType::Q4K | QuantType::Q6K => {
            let off = offset_of!(BlockQ8K, bsums);
            for b in act_row.chunks_exact(B8K) {
                out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                for j in 0..QK_K / 16 {
                    let v = i16::from_le_bytes([b[off + 2 * j], b[off + 2 * j + 1]]);
                    out.push(f32::from(v));
                }
            }
        }
        _ => {
            for b in act_row.chunks_exact(B80) {
                out.push(rd(b, offset_of!(BlockQ8_0, d)));
            }
        }
    }
}

/// `out[j] = w · act[j]` for `R` activation rows (`acts[j]` the quantized row, `scales[j]` its
/// [`act_scales`]). The caller has checked that `available(ty)` and that all rows are whole,
/// matching blocks.
pub(crate) fn dot_rows<const R: usize>(
    ty: QuantType,
    w: &[u8],
    acts: [&[u8]; R],
    scales: [&[f32]; R],
    out: &mut [f32; R],
) {
    // SAFETY: `available(ty)` (checked by the caller) guarantees AVX2, FMA and F16C; the kernels
    // read only through bounds-checked slices.
    unsafe {
        match ty {
            QuantType::Q4_1 => q4_1::<R>(w, acts, scales, out),
            QuantType::Q4K => q4_k::<R>(w, acts, scales, out),
            QuantType::Q6K => q6_k::<R>(w, acts, scales, out),
            _ => q8_0::<R>(w, acts, scales, out),
        }
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn load32(b: &[u8]) -> __m256i {
    let b = &b[..32];
    // SAFETY: `b` has exactly 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The f16 at `b[o..o + 2]` as f32 (F16C; exact).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn f16(b: &[u8], o: usize) -> f32 {
    let bits = u16::from_le_bytes([b[o], b[o + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// The two f16 at `b[o..o + 4]` as f32 (F16C; exact).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn f16x2(b: &[u8], o: usize) -> (f32, f32) {
    let bits = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// Q4_1 weights × Q8_1 activations: per block `d_w·d_y · Σ q·y + m_w · s_y`.
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_1<const R: usize>(w: &[u8], acts: [&[u8]; R], scales: [&[f32]; R], out: &mut [f32; R]) {
    let mut acc = [_mm256_setzero_ps(); R];
    let mut summs = [0.0f32; R];
    let ones = _mm256_set1_epi16(1);
    let mask = _mm256_set1_epi8(0x0f);
    let qs_off = offset_of!(BlockQ4_1, qs);
    let yq_off = offset_of!(BlockQ8_1, qs);
    for (b, x) in w.chunks_exact(B41).enumerate() {
        let qs = &x[qs_off..qs_off + QK / 2];
        // SAFETY: `qs` has exactly 16 readable bytes; `loadu` has no alignment requirement.
        let v = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
        let q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), mask);
        const _: () = assert!(offset_of!(BlockQ4_1, m) == offset_of!(BlockQ4_1, d) + 2);
        let (dw, mw) = f16x2(x, offset_of!(BlockQ4_1, d));
        for j in 0..R {
            let y = load32(&acts[j][b * B81 + yq_off..]);
            let s = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones);
            let d = dw * scales[j][2 * b];
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s), acc[j]);
            summs[j] += mw * scales[j][2 * b + 1];
        }
    }
    for j in 0..R {
        out[j] = hsum(acc[j]) + summs[j];
    }
}

/// Q8_0 weights × Q8_0 activations (both widened to i16, exact for every byte value).
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0<const R: usize>(w: &[u8], acts: [&[u8]; R], scales: [&[f32]; R], out: &mut [f32; R]) {
    let mut acc = [_mm256_setzero_ps(); R];
    let off = offset_of!(BlockQ8_0, qs);
    for (b, x) in w.chunks_exact(B80).enumerate() {
        let xv = load32(&x[off..off + QK]);
        let x0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(xv));
        let x1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xv, 1));
        let dw = f16(x, offset_of!(BlockQ8_0, d));
        for j in 0..R {
            let yv = load32(&acts[j][b * B80 + off..]);
            let y0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(yv));
            let y1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(yv, 1));
            let s = _mm256_add_epi32(_mm256_madd_epi16(x0, y0), _mm256_madd_epi16(x1, y1));
            let d = _mm256_set1_ps(dw * scales[j][b]);
            acc[j] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc[j]);
        }
    }
    for j in 0..R {
        out[j] = hsum(acc[j]);
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// The group sums of activation block `b` from its [`act_scales`].
#[inline]
fn bsums(scales: &[f32], b: usize) -> [i32; QK_K / 16] {
    let mut out = [0i32; QK_K / 16];
    for (o, v) in out
        .iter_mut()
        .zip(&scales[b * K_SCALES + 1..(b + 1) * K_SCALES])
    {
        *o = *v as i32;
    }
    out
}

/// Q4_K weights × Q8_K activations, the integer sums and f32 formula of the scalar code.
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k<const R: usize>(w: &[u8], acts: [&[u8]; R], scales: [&[f32]; R], out: &mut [f32; R]) {
    let mut sumf = [0.0f32; R];
    let m4 = _mm256_set1_epi8(0x0f);
    let yq = offset_of!(BlockQ8K, qs);
    for (b, x) in w.chunks_exact(B4K).enumerate() {
        let (sc, mn) = scales_mins_k4(&x[offset_of!(BlockQ4K, scales)..][..12]);
        let qs = &x[offset_of!(BlockQ4K, qs)..][..QK_K / 2];
        let mut acc = [_mm256_setzero_si256(); R];
        for (g, q) in qs.chunks_exact(32).enumerate() {
            let v = load32(q);
            let lo = _mm256_and_si256(v, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            let s_lo = _mm256_set1_epi16(sc[2 * g] as i16);
            let s_hi = _mm256_set1_epi16(sc[2 * g + 1] as i16);
            for j in 0..R {
                let y = &acts[j][b * B8K + yq..];
                let p0 = _mm256_maddubs_epi16(lo, load32(&y[64 * g..]));
                let p1 = _mm256_maddubs_epi16(hi, load32(&y[64 * g + 32..]));
                let s0 = _mm256_madd_epi16(p0, s_lo);
                let s1 = _mm256_madd_epi16(p1, s_hi);
                acc[j] = _mm256_add_epi32(acc[j], _mm256_add_epi32(s0, s1));
            }
        }
        const _: () = assert!(offset_of!(BlockQ4K, dmin) == offset_of!(BlockQ4K, d) + 2);
        let (dw, dminw) = f16x2(x, offset_of!(BlockQ4K, d));
        for j in 0..R {
            let isum = hsum_i32(acc[j]);
            let summ = min_term(&bsums(scales[j], b), &mn);
            let yd = scales[j][b * K_SCALES];
            let d = dw * yd;
            let dmin = dminw * yd;
            sumf[j] += d * isum as f32 - dmin * summ as f32;
        }
    }
    *out = sumf;
}

/// `Σ (u - 32) · y` for 32 levels `u` in 0..64, times the scales of the two 16-element groups.
#[inline]
#[target_feature(enable = "avx2")]
fn q6_part(u: __m256i, y: __m256i, sc: __m256i) -> __m256i {
    let p = _mm256_sub_epi16(
        _mm256_maddubs_epi16(u, y),
        _mm256_maddubs_epi16(_mm256_set1_epi8(32), y),
    );
    _mm256_madd_epi16(p, sc)
}

/// Q6_K weights × Q8_K activations.
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k<const R: usize>(w: &[u8], acts: [&[u8]; R], scales: [&[f32]; R], out: &mut [f32; R]) {
    let mut sumf = [0.0f32; R];
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x03);
    let yq = offset_of!(BlockQ8K, qs);
    for (b, x) in w.chunks_exact(B6K).enumerate() {
        let ql_all = &x[offset_of!(BlockQ6K, ql)..][..QK_K / 2];
        let qh_all = &x[offset_of!(BlockQ6K, qh)..][..QK_K / 4];
        let scb = &x[offset_of!(BlockQ6K, scales)..][..QK_K / 16];
        let sc = |g: usize| {
            _mm256_set_m128i(
                _mm_set1_epi16(i16::from(scb[g + 1] as i8)),
                _mm_set1_epi16(i16::from(scb[g] as i8)),
            )
        };
        let mut acc = [_mm256_setzero_si256(); R];
        for n in 0..QK_K / 128 {
            let qa = load32(&ql_all[64 * n..]);
            let qb = load32(&ql_all[64 * n + 32..]);
            let qh = load32(&qh_all[32 * n..]);
            let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4);
            let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4);
            let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4);
            let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4);
            let u = [
                _mm256_or_si256(_mm256_and_si256(qa, m4), h0),
                _mm256_or_si256(_mm256_and_si256(qb, m4), h1),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4), h2),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4), h3),
            ];
            for (c, &uc) in u.iter().enumerate() {
                let scv = sc(8 * n + 2 * c);
                for j in 0..R {
                    let yv = load32(&acts[j][b * B8K + yq + 128 * n + 32 * c..]);
                    acc[j] = _mm256_add_epi32(acc[j], q6_part(uc, yv, scv));
                }
            }
        }
        let dw = f16(x, offset_of!(BlockQ6K, d));
        for j in 0..R {
            let isum = hsum_i32(acc[j]);
            sumf[j] += dw * scales[j][b * K_SCALES] * isum as f32;
        }
    }
    *out = sumf;
}
