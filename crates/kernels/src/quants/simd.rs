//! SIMD helpers shared by the x86-64 kernels of several block types: loads, horizontal sums,
//! exact f16 conversions (F16C, through inline assembly where the intrinsics let LLVM add a false
//! dependency), nibble and fifth-bit unpacking, and the 8- and 16-bit dot-product steps in their
//! AVX2 and AVX-512 VNNI forms (which give the same integers, so the same bits).

use std::arch::x86_64::*;

use crate::checked::{load_at, Raw};

/// `f16(x[ox..]) · f16(y[oy..])` with F16C (exact conversions, one f32 product like the scalar
/// code). Both halves go through one `movd` so nothing depends on a previous vector register.
#[inline]
#[target_feature(enable = "f16c")]
pub(crate) fn d_prod(x: &[u8], ox: usize, y: &[u8], oy: usize) -> f32 {
    let bits = u32::from_le_bytes([x[ox], x[ox + 1], y[oy], y[oy + 1]]);
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    _mm_cvtss_f32(_mm_mul_ss(v, _mm_movehdup_ps(v)))
}

/// Loads 32 bytes from the start of `b` (which must hold at least 32).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn load32(b: &[u8]) -> __m256i {
    let b = &b[..32];
    // SAFETY: `b` has exactly 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(load_at::<32, u8>(b, 0).cast()) }
}

/// Unpacks 16 bytes of nibbles into 32 bytes: low nibbles (elements 0..16) then high nibbles.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn nibbles(qs: &[u8]) -> __m256i {
    let qs = &qs[..16];
    // SAFETY: `qs` has exactly 16 readable bytes; `loadu` has no alignment requirement.
    let v = unsafe { _mm_loadu_si128(load_at::<16, u8>(qs, 0).cast()) };
    let both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// Byte `i` is 0x10 where bit `i` of `qh` is set, else 0.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn fifth_bits(qh: u32) -> __m256i {
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
pub(crate) fn isum(q: __m256i, y: __m256i, bias: i8) -> __m256i {
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

#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// The 32 bytes at `p + off`.
///
/// # Safety
/// `p + off .. p + off + 32` must be readable (and lie within `p`'s length, asserted in debug
/// builds).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn ld(p: Raw<u8>, off: usize) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes at `p + off`; `loadu` needs no alignment.
    unsafe { _mm256_loadu_si256(p.at(off, 32).cast()) }
}

/// The 16 bytes at `p + off`.
///
/// # Safety
/// `p + off .. p + off + 16` must be readable (and lie within `p`'s length, asserted in debug
/// builds).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn ld16(p: Raw<u8>, off: usize) -> __m128i {
    // SAFETY: the caller guarantees 16 readable bytes at `p + off`; `loadu` needs no alignment.
    unsafe { _mm_loadu_si128(p.at(off, 16).cast()) }
}

/// The sums of the eight i32 lanes of `a` and of the four of `b` (exact, wrapping).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hsum2_i32(a: __m256i, b: __m128i) -> (i32, i32) {
    let a4 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    let h = _mm_hadd_epi32(a4, b);
    let h = _mm_hadd_epi32(h, h);
    (_mm_cvtsi128_si32(h), _mm_extract_epi32(h, 1))
}

/// The f16 at `p + off` as f32 (F16C; exact), through `vmovd` from a general register, which
/// zeroes the vector register. Written with the intrinsics, LLVM narrows the conversion's input to
/// a 16-bit `vpinsrw` into whatever register it picks (the accumulator, in the Q8_0 kernel): every
/// block then waited for the previous block's sum, a false dependency that made Q8_0 decode three
/// times slower.
///
/// # Safety
/// `p + off .. p + off + 2` must be readable (and lie within `p`'s length, asserted in debug
/// builds) and the CPU must have F16C.
#[inline]
pub(crate) unsafe fn f16(p: Raw<u8>, off: usize) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes.
    let bits = u64::from(unsafe { p.at(off, 2).cast::<u16>().read_unaligned() });
    // SAFETY: the caller guarantees F16C.
    _mm_cvtss_f32(unsafe { f16x4(bits) })
}

/// The four f16 in `bits` (lowest first) as f32 lanes (F16C; exact), through `vmovq` from a
/// general register into a fresh vector register (see [`f16`] for why not the intrinsics).
///
/// # Safety
/// The CPU must have F16C.
#[inline]
pub(crate) unsafe fn f16x4(bits: u64) -> __m128 {
    let out: __m128;
    // SAFETY: `vmovq` and `vcvtph2ps` only touch the named registers; the caller guarantees F16C
    // (AVX is implied by it).
    unsafe {
        std::arch::asm!(
            "vmovq {x}, {b}",
            "vcvtph2ps {x}, {x}",
            b = in(reg) bits,
            x = out(xmm_reg) out,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// The 32 products of unsigned bytes `u` and signed bytes `s`, summed in fours into eight i32
/// lanes (lane k: bytes 4k..4k+4): `maddubs` then `madd` with ones. Exact while no pair of
/// products exceeds the i16 range, which every caller guarantees.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn dot_u8i8_avx2(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// [`dot_u8i8_avx2`] in one AVX-512 VNNI instruction (`vpdpbusd`, no i16 step): the same i32
/// lanes, bit for bit, under the same guarantee.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
pub(crate) fn dot_u8i8_vnni(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
}

/// `acc` plus the pairwise products of the i16 lanes of `a` and `b`, summed in twos into eight
/// i32 lanes: `madd` then `add`. Exact (wrapping) i32 arithmetic.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn dpw_avx2(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
}

/// [`dpw_avx2`] in one AVX-512 VNNI instruction (`vpdpwssd`, not saturating): the same i32 lanes,
/// bit for bit.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
pub(crate) fn dpw_vnni(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_dpwssd_epi32(acc, a, b)
}

/// `[Σ s0, Σ s0, Σ s1, Σ s1]` as f32 (the eight i32 lanes of each summed exactly; |Σ| < 2^24, so
/// the conversion is exact).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn pair_sums(s0: __m256i, s1: __m256i) -> __m128 {
    let h = _mm256_hadd_epi32(s0, s1);
    let h = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b10_11_00_01>(h));
    _mm_cvtepi32_ps(h)
}

/// `acc` plus the 32 products of unsigned bytes `u` and signed bytes `s`, summed in fours into
/// eight i32 lanes: `maddubs` then `madd` with ones. Exact while two adjacent products stay within
/// i16, which every caller guarantees (levels below 64 against any byte; |x| ≤ 128 against
/// activations in −127..=127).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn dota_avx2(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    _mm256_add_epi32(
        acc,
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)),
    )
}

/// [`dota_avx2`] in one instruction (`vpdpbusd`): the same i32 lanes.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
pub(crate) fn dota_vnni(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(acc, u, s)
}
