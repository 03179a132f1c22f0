//! AVX2 kernels for the legacy quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against Q8_0/Q8_1, and for
//! Q4_K and Q6_K against Q8_K.
//!
//! Per block they compute exactly the scalar integer sum: weight levels stay unsigned
//! (`_mm256_maddubs_epi16` needs an unsigned operand) and the bias (8 for Q4_0, 16 for Q5_0) is
//! subtracted as `bias · Σy` in 16 bits, where nothing saturates: |pair sums| ≤ 31·128·2.
//! Q8_0 × Q8_0 widens both sides to i16, so even the -128 byte (which the quantizers never
//! write) gives the scalar answer. For the legacy quants only the f32 accumulation over blocks is
//! reordered; the k-quant kernels reduce each super-block's integer sum to a scalar and then use
//! the scalar code's f32 formula, so they return bit-identical results.

use std::arch::x86_64::*;
use std::mem::offset_of;

use crate::qdot::{min_term, q8k, rd_f16, scales_mins_k4, BlockQ8K, BlockQ8_1};
use crate::quant::{
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantType, QK, QK_K,
};

fn cpu_ok() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// Whether an AVX2 kernel runs for `ty` on this CPU.
pub(crate) fn available(ty: QuantType) -> bool {
    matches!(
        ty,
        QuantType::Q4_0
            | QuantType::Q4_1
            | QuantType::Q5_0
            | QuantType::Q5_1
            | QuantType::Q8_0
            | QuantType::Q4K
            | QuantType::Q6K
    ) && cpu_ok()
}

/// Runs the AVX2 kernel for `ty`, or `None` when there is none / the CPU lacks AVX2/FMA/F16C.
/// The caller has checked that `w` and `a` are whole, matching blocks.
pub(crate) fn dot(ty: QuantType, w: &[u8], a: &[u8]) -> Option<f32> {
    if !available(ty) {
        return None;
    }
    // SAFETY: `available` checked that the CPU supports AVX2, FMA and F16C; the kernels only read
    // through bounds-checked sub-slices of whole blocks.
    unsafe {
        Some(match ty {
            QuantType::Q4_0 => dot_q4_0(w, a),
            QuantType::Q4_1 => dot_q4_1(w, a),
            QuantType::Q5_0 => dot_q5_0(w, a),
            QuantType::Q5_1 => dot_q5_1(w, a),
            QuantType::Q8_0 => dot_q8_0(w, a),
            QuantType::Q4K => dot_q4_k(w, a),
            QuantType::Q6K => dot_q6_k(w, a),
            _ => return None,
        })
    }
}

/// `f16(x[ox..]) · f16(y[oy..])` with F16C (exact conversions, one f32 product like the scalar
/// code). Both halves go through one `movd` so nothing depends on a previous vector register.
#[inline]
#[target_feature(enable = "f16c")]
fn d_prod(x: &[u8], ox: usize, y: &[u8], oy: usize) -> f32 {
    let bits = u32::from_le_bytes([x[ox], x[ox + 1], y[oy], y[oy + 1]]);
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    _mm_cvtss_f32(_mm_mul_ss(v, _mm_movehdup_ps(v)))
}

/// Loads 32 bytes from the start of `b` (which must hold at least 32).
#[inline]
#[target_feature(enable = "avx2")]
fn load32(b: &[u8]) -> __m256i {
    let b = &b[..32];
    // SAFETY: `b` has exactly 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// Unpacks 16 bytes of nibbles into 32 bytes: low nibbles (elements 0..16) then high nibbles.
#[inline]
#[target_feature(enable = "avx2")]
fn nibbles(qs: &[u8]) -> __m256i {
    let qs = &qs[..16];
    // SAFETY: `qs` has exactly 16 readable bytes; `loadu` has no alignment requirement.
    let v = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// Byte `i` is 0x10 where bit `i` of `qh` is set, else 0.
#[inline]
#[target_feature(enable = "avx2")]
fn fifth_bits(qh: u32) -> __m256i {
    let v = _mm256_set1_epi32(qh as i32);
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let spread = _mm256_shuffle_epi8(v, shuf);
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// `Σ (q - bias) · y` over 32 lanes as 8 i32 partial sums; `q` unsigned ≤ 31, `y` signed.
#[inline]
#[target_feature(enable = "avx2")]
fn isum(q: __m256i, y: __m256i, bias: i8) -> __m256i {
    let mut p = _mm256_maddubs_epi16(q, y);
    if bias != 0 {
        p = _mm256_sub_epi16(p, _mm256_maddubs_epi16(_mm256_set1_epi8(bias), y));
    }
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// The sum of the eight lanes of `v` (a fixed tree: halves, then pairs, then the last two).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

const B40: usize = size_of::<BlockQ4_0>();
const B41: usize = size_of::<BlockQ4_1>();
const B50: usize = size_of::<BlockQ5_0>();
const B51: usize = size_of::<BlockQ5_1>();
const B80: usize = size_of::<BlockQ8_0>();
const B81: usize = size_of::<BlockQ8_1>();

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_0(w: &[u8], a: &[u8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.chunks_exact(B40).zip(a.chunks_exact(B80)) {
        let q = nibbles(&x[offset_of!(BlockQ4_0, qs)..]);
        let yv = load32(&y[offset_of!(BlockQ8_0, qs)..]);
        let s = _mm256_cvtepi32_ps(isum(q, yv, 8));
        let d = _mm256_set1_ps(d_prod(x, 0, y, 0));
        acc = _mm256_fmadd_ps(d, s, acc);
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_1(w: &[u8], a: &[u8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    for (x, y) in w.chunks_exact(B41).zip(a.chunks_exact(B81)) {
        let q = nibbles(&x[offset_of!(BlockQ4_1, qs)..]);
        let yv = load32(&y[offset_of!(BlockQ8_1, qs)..]);
        let s = _mm256_cvtepi32_ps(isum(q, yv, 0));
        let d = d_prod(x, offset_of!(BlockQ4_1, d), y, offset_of!(BlockQ8_1, d));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), s, acc);
        summs += d_prod(x, offset_of!(BlockQ4_1, m), y, offset_of!(BlockQ8_1, s));
    }
    hsum(acc) + summs
}

#[inline]
fn qh32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_0(w: &[u8], a: &[u8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.chunks_exact(B50).zip(a.chunks_exact(B80)) {
        let lo = nibbles(&x[offset_of!(BlockQ5_0, qs)..]);
        let q = _mm256_or_si256(lo, fifth_bits(qh32(x, offset_of!(BlockQ5_0, qh))));
        let yv = load32(&y[offset_of!(BlockQ8_0, qs)..]);
        let s = _mm256_cvtepi32_ps(isum(q, yv, 16));
        let d = _mm256_set1_ps(d_prod(x, 0, y, 0));
        acc = _mm256_fmadd_ps(d, s, acc);
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_1(w: &[u8], a: &[u8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    for (x, y) in w.chunks_exact(B51).zip(a.chunks_exact(B81)) {
        let lo = nibbles(&x[offset_of!(BlockQ5_1, qs)..]);
        let q = _mm256_or_si256(lo, fifth_bits(qh32(x, offset_of!(BlockQ5_1, qh))));
        let yv = load32(&y[offset_of!(BlockQ8_1, qs)..]);
        let s = _mm256_cvtepi32_ps(isum(q, yv, 0));
        let d = d_prod(x, offset_of!(BlockQ5_1, d), y, offset_of!(BlockQ8_1, d));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), s, acc);
        summs += d_prod(x, offset_of!(BlockQ5_1, m), y, offset_of!(BlockQ8_1, s));
    }
    hsum(acc) + summs
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let off = offset_of!(BlockQ8_0, qs);
    for (x, y) in w.chunks_exact(B80).zip(a.chunks_exact(B80)) {
        let xv = load32(&x[off..off + QK]);
        let yv = load32(&y[off..off + QK]);
        let x0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(xv));
        let x1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xv, 1));
        let y0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(yv));
        let y1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(yv, 1));
        let s = _mm256_add_epi32(_mm256_madd_epi16(x0, y0), _mm256_madd_epi16(x1, y1));
        let d = _mm256_set1_ps(d_prod(x, 0, y, 0));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum(acc)
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

const B4K: usize = size_of::<BlockQ4K>();
const B6K: usize = size_of::<BlockQ6K>();
const B8K: usize = size_of::<BlockQ8K>();

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    let m4 = _mm256_set1_epi8(0x0f);
    for (x, yb) in w.chunks_exact(B4K).zip(a.chunks_exact(B8K)) {
        let y = q8k(yb);
        let (sc, mn) = scales_mins_k4(&x[offset_of!(BlockQ4K, scales)..][..12]);
        let qs = &x[offset_of!(BlockQ4K, qs)..][..QK_K / 2];
        let mut acc = _mm256_setzero_si256();
        for (g, q) in qs.chunks_exact(32).enumerate() {
            let v = load32(q);
            let lo = _mm256_and_si256(v, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            let p0 = _mm256_maddubs_epi16(lo, load32(&y.qs[64 * g..]));
            let p1 = _mm256_maddubs_epi16(hi, load32(&y.qs[64 * g + 32..]));
            let s0 = _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * g] as i16));
            let s1 = _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * g + 1] as i16));
            acc = _mm256_add_epi32(acc, _mm256_add_epi32(s0, s1));
        }
        let isum = hsum_i32(acc);
        let summ = min_term(&y.bsums, &mn);
        let d = rd_f16(x, offset_of!(BlockQ4K, d)) * y.d;
        let dmin = rd_f16(x, offset_of!(BlockQ4K, dmin)) * y.d;
        sumf += d * isum as f32 - dmin * summ as f32;
    }
    sumf
}

/// `Σ (u - 32) · y` for 32 levels `u` in 0..64, as i16 pairs, times the scales of the two
/// 16-element groups (`lo` for bytes 0..16, `hi` for 16..32), as i32.
#[inline]
#[target_feature(enable = "avx2")]
fn q6_part(u: __m256i, y: __m256i, lo: i8, hi: i8) -> __m256i {
    let p = _mm256_sub_epi16(
        _mm256_maddubs_epi16(u, y),
        _mm256_maddubs_epi16(_mm256_set1_epi8(32), y),
    );
    let sc = _mm256_set_m128i(_mm_set1_epi16(i16::from(hi)), _mm_set1_epi16(i16::from(lo)));
    _mm256_madd_epi16(p, sc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q6_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, yb) in w.chunks_exact(B6K).zip(a.chunks_exact(B8K)) {
        let y = q8k(yb);
        let ql_all = &x[offset_of!(BlockQ6K, ql)..][..QK_K / 2];
        let qh_all = &x[offset_of!(BlockQ6K, qh)..][..QK_K / 4];
        let sc = &x[offset_of!(BlockQ6K, scales)..][..QK_K / 16];
        let sc = |i: usize| sc[i] as i8;
        let mut acc = _mm256_setzero_si256();
        for n in 0..QK_K / 128 {
            let qa = load32(&ql_all[64 * n..]);
            let qb = load32(&ql_all[64 * n + 32..]);
            let qh = load32(&qh_all[32 * n..]);
            let u = crate::qgemm::q6_levels(qa, qb, qh);
            for (c, &uc) in u.iter().enumerate() {
                let yv = load32(&y.qs[128 * n + 32 * c..]);
                let g = 8 * n + 2 * c;
                acc = _mm256_add_epi32(acc, q6_part(uc, yv, sc(g), sc(g + 1)));
            }
        }
        let isum = hsum_i32(acc);
        sumf += rd_f16(x, offset_of!(BlockQ6K, d)) * y.d * isum as f32;
    }
    sumf
}
