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

use crate::qdot::{BlockQ8K, BlockQ8_1};
use crate::quant::{BlockQ4K, BlockQ4_1, BlockQ6K, BlockQ8_0, QuantType, QK, QK_K};

const B41: usize = size_of::<BlockQ4_1>();
const B80: usize = size_of::<BlockQ8_0>();
const B81: usize = size_of::<BlockQ8_1>();
const B4K: usize = size_of::<BlockQ4K>();
const B6K: usize = size_of::<BlockQ6K>();
const B8K: usize = size_of::<BlockQ8K>();

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
/// `[d0, s0, d1, s1, …]` for Q8_1 and `[d0, d1, …]` for Q8_0 and Q8_K (whose group sums the
/// kernels read from the block itself).
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
            for b in act_row.chunks_exact(B8K) {
                out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
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
    let (wb, ab, spb) = match ty {
        QuantType::Q4_1 => (B41, B81, 2),
        QuantType::Q4K => (B4K, B8K, 1),
        QuantType::Q6K => (B6K, B8K, 1),
        _ => (B80, B80, 1),
    };
    let nb = w.len() / wb;
    let mut ap = [std::ptr::null::<u8>(); R];
    let mut sp = [std::ptr::null::<f32>(); R];
    for j in 0..R {
        // The kernels read blocks 0..nb of every activation row and its scales unchecked.
        assert!(acts[j].len() >= nb * ab && scales[j].len() >= nb * spb);
        ap[j] = acts[j].as_ptr();
        sp[j] = scales[j].as_ptr();
    }
    // SAFETY: `available(ty)` (checked by the caller) guarantees AVX2, FMA and F16C; every
    // activation row holds at least `nb` blocks and its scales `nb * spb` values (asserted
    // above), which is all the kernels read through `ap` and `sp`; weights are read through
    // bounds-checked slices.
    unsafe {
        match ty {
            QuantType::Q4_1 => q4_1::<R>(w, ap, sp, out),
            QuantType::Q4K => q4_k::<R>(w, ap, sp, out),
            QuantType::Q6K => q6_k::<R>(w, ap, sp, out),
            _ => q8_0::<R>(w, ap, sp, out),
        }
    }
}

/// The 32 bytes at `p + off`.
///
/// # Safety
/// `p + off .. p + off + 32` must be readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ld(p: *const u8, off: usize) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes at `p + off`; `loadu` needs no alignment.
    unsafe { _mm256_loadu_si256(p.add(off).cast()) }
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
///
/// # Safety
/// AVX2, FMA and F16C are available; `acts[j]` points to at least as many activation blocks
/// as `w` has weight blocks, `scales[j]` to their [`act_scales`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1<const R: usize>(
    w: &[u8],
    acts: [*const u8; R],
    scales: [*const f32; R],
    out: &mut [f32; R],
) {
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
            // SAFETY: block b < nb of row j and its two scales (the caller's contract).
            let (y, yd, ys) = unsafe {
                (
                    ld(acts[j], b * B81 + yq_off),
                    *scales[j].add(2 * b),
                    *scales[j].add(2 * b + 1),
                )
            };
            let s = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * yd), _mm256_cvtepi32_ps(s), acc[j]);
            summs[j] += mw * ys;
        }
    }
    for j in 0..R {
        out[j] = hsum(acc[j]) + summs[j];
    }
}

/// Q8_0 weights × Q8_0 activations: `|x| · (y · sign x)` with `maddubs`, exact because the
/// activations lie in -127..=127 (a pair sums to at most 2 · 128 · 127 < 2^15) whatever the
/// weight bytes are.
///
/// # Safety
/// AVX2, FMA and F16C are available; `acts[j]` points to at least as many activation blocks
/// as `w` has weight blocks, `scales[j]` to their [`act_scales`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0<const R: usize>(
    w: &[u8],
    acts: [*const u8; R],
    scales: [*const f32; R],
    out: &mut [f32; R],
) {
    let mut acc = [_mm256_setzero_ps(); R];
    let ones = _mm256_set1_epi16(1);
    let off = offset_of!(BlockQ8_0, qs);
    for (b, x) in w.chunks_exact(B80).enumerate() {
        let xv = load32(&x[off..off + QK]);
        let ax = _mm256_sign_epi8(xv, xv);
        let dw = f16(x, offset_of!(BlockQ8_0, d));
        for j in 0..R {
            // SAFETY: block b < nb of row j and its scale (the caller's contract).
            let (y, yd) = unsafe { (ld(acts[j], b * B80 + off), *scales[j].add(b)) };
            let yv = _mm256_sign_epi8(y, xv);
            let s = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, yv), ones);
            let d = _mm256_set1_ps(dw * yd);
            acc[j] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc[j]);
        }
    }
    for j in 0..R {
        out[j] = hsum(acc[j]);
    }
}

/// The 12 packed 6-bit scales and mins of a Q4_K block as 16 bytes: scales 0..8, then mins
/// 0..8 (the same values as [`crate::qdot::scales_mins_k4`], unpacked with word operations).
#[inline]
fn k4_scales_mins(q: &[u8]) -> [u32; 4] {
    let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (w0, w1, w2) = (w(0), w(1), w(2));
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    [
        w0 & LOW6,                                      // scales 0..4: low 6 bits of bytes 0..4
        (w2 & LOW4) | (((w0 >> 6) & TOP2) << 4),        // scales 4..8: bytes 8..12 low, 0..4 top
        w1 & LOW6,                                      // mins 0..4: low 6 bits of bytes 4..8
        ((w2 >> 4) & LOW4) | (((w1 >> 6) & TOP2) << 4), // mins 4..8: bytes 8..12 high, 4..8 top
    ]
}

/// Q4_K weights × Q8_K activations: per block `d_w·d_y · Σ_g sc_g Σ q·y − dmin_w·d_y · Σ_g m_g
/// Σ y`, the group sums of `y` taken from the activation block's `bsums`; f32 partial sums stay
/// in vector lanes across blocks.
///
/// # Safety
/// AVX2, FMA and F16C are available; `acts[j]` points to at least as many activation blocks
/// as `w` has weight blocks, `scales[j]` to their [`act_scales`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k<const R: usize>(
    w: &[u8],
    acts: [*const u8; R],
    scales: [*const f32; R],
    out: &mut [f32; R],
) {
    let mut acc = [_mm256_setzero_ps(); R];
    let m4 = _mm256_set1_epi8(0x0f);
    let yq = offset_of!(BlockQ8K, qs);
    let yb = offset_of!(BlockQ8K, bsums);
    for (b, x) in w.chunks_exact(B4K).enumerate() {
        let sm = k4_scales_mins(&x[offset_of!(BlockQ4K, scales)..][..12]);
        let sm = _mm256_cvtepu8_epi16(_mm_set_epi32(
            sm[3] as i32,
            sm[2] as i32,
            sm[1] as i32,
            sm[0] as i32,
        ));
        let mins = _mm256_extracti128_si256(sm, 1);
        let mut sc = [0i16; 16];
        // SAFETY: `sc` is 32 writable bytes; `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_si256(sc.as_mut_ptr().cast(), sm) };
        let mut ys = [std::ptr::null::<u8>(); R];
        for j in 0..R {
            // SAFETY: block b < nb of row j (the caller's contract).
            ys[j] = unsafe { acts[j].add(b * B8K) };
        }
        let qs = &x[offset_of!(BlockQ4K, qs)..][..QK_K / 2];
        let mut iacc = [_mm256_setzero_si256(); R];
        for (g, q) in qs.chunks_exact(32).enumerate() {
            let v = load32(q);
            let lo = _mm256_and_si256(v, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            let s_lo = _mm256_set1_epi16(sc[2 * g]);
            let s_hi = _mm256_set1_epi16(sc[2 * g + 1]);
            for j in 0..R {
                // SAFETY: bytes yq + 64g .. yq + 64g + 64 <= yq + QK_K of the block.
                let (y0, y1) = unsafe { (ld(ys[j], yq + 64 * g), ld(ys[j], yq + 64 * g + 32)) };
                let p0 = _mm256_maddubs_epi16(lo, y0);
                let p1 = _mm256_maddubs_epi16(hi, y1);
                let s0 = _mm256_madd_epi16(p0, s_lo);
                let s1 = _mm256_madd_epi16(p1, s_hi);
                iacc[j] = _mm256_add_epi32(iacc[j], _mm256_add_epi32(s0, s1));
            }
        }
        const _: () = assert!(offset_of!(BlockQ4K, dmin) == offset_of!(BlockQ4K, d) + 2);
        let (dw, dminw) = f16x2(x, offset_of!(BlockQ4K, d));
        for j in 0..R {
            // SAFETY: the scale of block b < nb (the caller's contract).
            let yd = unsafe { *scales[j].add(b) };
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * yd), _mm256_cvtepi32_ps(iacc[j]), acc[j]);
            // 16 sums of 16 activations, paired into the 8 sums of 32 the mins apply to.
            // SAFETY: the 16 i16 group sums of the block.
            let bs = unsafe { ld(ys[j], yb) };
            let q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            let prod = _mm256_zextsi128_si256(_mm_madd_epi16(mins, q8s));
            acc[j] = _mm256_fnmadd_ps(_mm256_set1_ps(dminw * yd), _mm256_cvtepi32_ps(prod), acc[j]);
        }
    }
    for j in 0..R {
        out[j] = hsum(acc[j]);
    }
}

/// Q6_K weights × Q8_K activations: `Σ_g sc_g Σ (u − 32)·y` as `Σ_g sc_g Σ u·y − 32 Σ_g sc_g
/// bsum_g` (exact in i32: |Σ u·y·sc| < 2^23 per block), with the group sums `bsum_g` of the
/// activation block.
///
/// # Safety
/// AVX2, FMA and F16C are available; `acts[j]` points to at least as many activation blocks
/// as `w` has weight blocks, `scales[j]` to their [`act_scales`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k<const R: usize>(
    w: &[u8],
    acts: [*const u8; R],
    scales: [*const f32; R],
    out: &mut [f32; R],
) {
    let mut facc = [_mm256_setzero_ps(); R];
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x03);
    let yq = offset_of!(BlockQ8K, qs);
    let yb = offset_of!(BlockQ8K, bsums);
    for (b, x) in w.chunks_exact(B6K).enumerate() {
        let ql_all = &x[offset_of!(BlockQ6K, ql)..][..QK_K / 2];
        let qh_all = &x[offset_of!(BlockQ6K, qh)..][..QK_K / 4];
        let scb = &x[offset_of!(BlockQ6K, scales)..][..QK_K / 16];
        // SAFETY: `scb` has exactly 16 readable bytes; `loadu` has no alignment requirement.
        let sc16 = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(scb.as_ptr().cast()) });
        let mut sc = [0i16; 16];
        // SAFETY: `sc` is 32 writable bytes; `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_si256(sc.as_mut_ptr().cast(), sc16) };
        let mut ys = [std::ptr::null::<u8>(); R];
        for j in 0..R {
            // SAFETY: block b < nb of row j (the caller's contract).
            ys[j] = unsafe { acts[j].add(b * B8K) };
        }
        let mut acc = [_mm256_setzero_si256(); R];
        for j in 0..R {
            // 32 · Σ_g sc_g · bsum_g, subtracted once instead of 32 from every level.
            // SAFETY: the 16 i16 group sums of the block.
            let bs = unsafe { ld(ys[j], yb) };
            acc[j] = _mm256_sub_epi32(acc[j], _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5));
        }
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
                let g = 8 * n + 2 * c;
                let scv = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
                for j in 0..R {
                    // SAFETY: bytes yq + 128n + 32c + 32 <= yq + QK_K of the block.
                    let yv = unsafe { ld(ys[j], yq + 128 * n + 32 * c) };
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(uc, yv), scv);
                    acc[j] = _mm256_add_epi32(acc[j], p);
                }
            }
        }
        let dw = f16(x, offset_of!(BlockQ6K, d));
        for j in 0..R {
            // SAFETY: the scale of block b < nb (the caller's contract).
            let d = _mm256_set1_ps(dw * unsafe { *scales[j].add(b) });
            facc[j] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(acc[j]), facc[j]);
        }
    }
    for j in 0..R {
        out[j] = hsum(facc[j]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_scales_mins_equals_the_scalar_unpacking() {
        let mut seed = 0x9e37_79b9u32;
        for _ in 0..2000 {
            let q: Vec<u8> = (0..12)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed >> 24) as u8
                })
                .collect();
            let (sc, mn) = crate::qdot::scales_mins_k4(&q);
            let packed = k4_scales_mins(&q);
            let bytes: Vec<i32> = packed
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .map(i32::from)
                .collect();
            assert_eq!(&bytes[..8], &sc[..], "scales of {q:?}");
            assert_eq!(&bytes[8..], &mn[..], "mins of {q:?}");
        }
    }
}
