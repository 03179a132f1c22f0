//! The AVX512-BF16 kernels: each unit's 32 integer levels expanded into bf16 words in registers
//! (`vpermw` table lookups, or a conversion for Q8_0's bytes), multiplied with 32 bf16
//! activations in one `vdpbf16ps` (exact products), scaled per half-unit with one FMA.
//!
//! Decode expands and multiplies in one pass ([`dot_row`]); batches expand a few weight rows once
//! into scratch and multiply every activation row with them ([`dot_expanded`]). Both run the same
//! [`step`]s on the same values and the same [`finish`], so a product does not depend on the batch
//! it is part of.

use std::arch::x86_64::*;
use std::mem::offset_of;

use crate::checked::{load_at, ptr_at, ptr_at_mut};

use super::units::{Offsets, Params, Units, UNIT};
use crate::quants::q2_k::{BlockQ2K, Q2K};
use crate::quants::q3_k::{BlockQ3K, Q3K};
use crate::quants::q4_0::{BlockQ4_0, Q4_0};
use crate::quants::q4_1::{BlockQ4_1, Q4_1};
use crate::quants::q4_k::{BlockQ4K, Q4K};
use crate::quants::q5_0::{BlockQ5_0, Q5_0};
use crate::quants::q5_1::{BlockQ5_1, Q5_1};
use crate::quants::q5_k::{BlockQ5K, Q5K};
use crate::quants::q6_k::{BlockQ6K, Q6K};
use crate::quants::q8_0::{BlockQ8_0, Q8_0};

/// bf16 bits of the integers `k - off` for `k` in `0..N`.
const fn table<const N: usize>(off: i32) -> [u16; N] {
    let mut t = [0u16; N];
    let mut k = 0;
    while k < N {
        t[k] = (((k as i32 - off) as f32).to_bits() >> 16) as u16;
        k += 1;
    }
    t
}

static T_ID: [u16; 32] = table::<32>(0);
static T_M4: [u16; 32] = table::<32>(4);
static T_M8: [u16; 32] = table::<32>(8);
static T_M16: [u16; 32] = table::<32>(16);
static T_M32: [u16; 64] = table::<64>(32);

/// A weight type with AVX-512 level expansion.
pub(crate) trait UnitsAvx512: Units {
    /// [`Units::params`] (the same values), with the f16 fields read through F16C where that
    /// saves the scalar conversion per block.
    ///
    /// # Safety
    /// The CPU has F16C.
    #[inline(always)]
    unsafe fn params512(b: &[u8], p: &mut Params) {
        Self::params(b, p)
    }

    /// The levels of unit `u` of block `b` as 32 bf16 words (what [`Units::levels`] gives,
    /// converted exactly).
    ///
    /// # Safety
    /// The CPU has AVX512F and AVX512BW (and AVX512-BF16 for Q8_0); `b` is one whole block.
    unsafe fn levels512(b: &[u8], u: usize) -> __m512i;
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn load_table(t: &[u16; 32]) -> __m512i {
    // SAFETY: the table holds exactly 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(load_at::<64, u16>(t, 0).cast()) }
}

/// 32 index bytes through a 32-entry word table.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn lookup(idx: __m256i, t: &[u16; 32]) -> __m512i {
    _mm512_permutexvar_epi16(_mm512_cvtepu8_epi16(idx), load_table(t))
}

/// The 16 bytes at `qs[0..16]` as 32 nibbles: low nibbles (weights 0..16) then high ones.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn nibbles(qs: &[u8]) -> __m256i {
    let qs = &qs[..16];
    // SAFETY: `qs` has exactly 16 readable bytes; `loadu` has no alignment requirement.
    let v = unsafe { _mm_loadu_si128(load_at::<16, u8>(qs, 0).cast()) };
    let m = _mm_set1_epi8(0x0f);
    _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m))
}

/// The 32 bytes at `b[0..32]`.
#[inline]
#[target_feature(enable = "avx2")]
fn load32(b: &[u8]) -> __m256i {
    let b = &b[..32];
    // SAFETY: `b` has exactly 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(load_at::<32, u8>(b, 0).cast()) }
}

/// Each byte of `v` shifted right by `s` (0..8) and masked with `m`.
#[inline]
#[target_feature(enable = "avx2")]
fn bits(v: __m256i, s: usize, m: i8) -> __m256i {
    let sh = _mm256_srl_epi16(v, _mm_cvtsi32_si128(s as i32));
    _mm256_and_si256(sh, _mm256_set1_epi8(m))
}

/// Bit `k` (0..8) of each of the 32 bytes of `v`, as a mask (byte `e` → bit `e`).
#[inline]
#[target_feature(enable = "avx2")]
fn bit_mask(v: __m256i, k: usize) -> u32 {
    let sh = _mm256_sll_epi16(v, _mm_cvtsi32_si128(7 - k as i32));
    _mm256_movemask_epi8(sh) as u32
}

/// The two f16 at `b[o..o + 4]` as f32 (exact), through F16C.
#[inline]
#[target_feature(enable = "f16c")]
fn f16_pair(b: &[u8], o: usize) -> (f32, f32) {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(rd_u32(b, o) as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// The f16 at `b[o..o + 2]` as f32 (exact), through F16C.
#[inline]
#[target_feature(enable = "f16c")]
fn f16_one(b: &[u8], o: usize) -> f32 {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(u16::from_le_bytes([
        b[o],
        b[o + 1],
    ]))));
    _mm_cvtss_f32(v)
}

/// One scale (and offset) for the block's only unit.
#[inline]
fn one_unit(p: &mut Params, scale: f32, offset: f32) {
    p.scales[0] = [scale; 2];
    p.offsets[0] = [offset; 2];
}

/// The little-endian u32 at `b[o..o + 4]`.
#[inline]
fn rd_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// `idx + add` in the 16-bit lanes selected by `mask`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn add_where(idx: __m512i, mask: u32, add: i16) -> __m512i {
    _mm512_mask_add_epi16(idx, mask, idx, _mm512_set1_epi16(add))
}

impl UnitsAvx512 for Q4_0 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn params512(b: &[u8], p: &mut Params) {
        one_unit(p, f16_one(b, offset_of!(BlockQ4_0, d)), 0.0);
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], _u: usize) -> __m512i {
        lookup(nibbles(&b[offset_of!(BlockQ4_0, qs)..]), &T_M8)
    }
}

impl UnitsAvx512 for Q4_1 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn params512(b: &[u8], p: &mut Params) {
        const _: () = assert!(offset_of!(BlockQ4_1, m) == offset_of!(BlockQ4_1, d) + 2);
        let (d, m) = f16_pair(b, offset_of!(BlockQ4_1, d));
        one_unit(p, d, m);
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], _u: usize) -> __m512i {
        lookup(nibbles(&b[offset_of!(BlockQ4_1, qs)..]), &T_ID)
    }
}

impl UnitsAvx512 for Q5_0 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn params512(b: &[u8], p: &mut Params) {
        one_unit(p, f16_one(b, offset_of!(BlockQ5_0, d)), 0.0);
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], _u: usize) -> __m512i {
        let qh = rd_u32(b, offset_of!(BlockQ5_0, qh));
        let idx = _mm512_cvtepu8_epi16(nibbles(&b[offset_of!(BlockQ5_0, qs)..]));
        _mm512_permutexvar_epi16(add_where(idx, qh, 16), load_table(&T_M16))
    }
}

impl UnitsAvx512 for Q5_1 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn params512(b: &[u8], p: &mut Params) {
        const _: () = assert!(offset_of!(BlockQ5_1, m) == offset_of!(BlockQ5_1, d) + 2);
        let (d, m) = f16_pair(b, offset_of!(BlockQ5_1, d));
        one_unit(p, d, m);
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], _u: usize) -> __m512i {
        let qh = rd_u32(b, offset_of!(BlockQ5_1, qh));
        let idx = _mm512_cvtepu8_epi16(nibbles(&b[offset_of!(BlockQ5_1, qs)..]));
        _mm512_permutexvar_epi16(add_where(idx, qh, 16), load_table(&T_ID))
    }
}

impl UnitsAvx512 for Q8_0 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn params512(b: &[u8], p: &mut Params) {
        one_unit(p, f16_one(b, offset_of!(BlockQ8_0, d)), 0.0);
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], _u: usize) -> __m512i {
        let qs = &b[offset_of!(BlockQ8_0, qs)..][..32];
        // SAFETY: the caller guarantees AVX512F/BW/BF16; `qs` has 32 readable bytes, read as
        // two unaligned 16-byte loads. The i8 levels are exact in f32 and in bf16.
        unsafe {
            let lo = _mm_loadu_si128(load_at::<16, u8>(qs, 0).cast());
            let hi = _mm_loadu_si128(load_at::<16, u8>(qs, 16).cast());
            let flo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo));
            let fhi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi));
            std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(fhi, flo))
        }
    }
}

impl UnitsAvx512 for Q2K {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], u: usize) -> __m512i {
        let qs = &b[offset_of!(BlockQ2K, qs) + 32 * (u / 4)..];
        lookup(bits(load32(qs), 2 * (u % 4), 3), &T_ID)
    }
}

impl UnitsAvx512 for Q3K {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], u: usize) -> __m512i {
        let qs = &b[offset_of!(BlockQ3K, qs) + 32 * (u / 4)..];
        let hm = &b[offset_of!(BlockQ3K, hmask)..];
        let high = bit_mask(load32(hm), u);
        let idx = _mm512_cvtepu8_epi16(bits(load32(qs), 2 * (u % 4), 3));
        _mm512_permutexvar_epi16(add_where(idx, high, 4), load_table(&T_M4))
    }
}

impl UnitsAvx512 for Q4K {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], u: usize) -> __m512i {
        let qs = &b[offset_of!(BlockQ4K, qs) + 32 * (u / 2)..];
        lookup(bits(load32(qs), 4 * (u % 2), 0x0f), &T_ID)
    }
}

impl UnitsAvx512 for Q5K {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], u: usize) -> __m512i {
        let qs = &b[offset_of!(BlockQ5K, qs) + 32 * (u / 2)..];
        let qh = &b[offset_of!(BlockQ5K, qh)..];
        let high = bit_mask(load32(qh), u);
        let idx = _mm512_cvtepu8_epi16(bits(load32(qs), 4 * (u % 2), 0x0f));
        _mm512_permutexvar_epi16(add_where(idx, high, 16), load_table(&T_ID))
    }
}

impl UnitsAvx512 for Q6K {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
    unsafe fn levels512(b: &[u8], u: usize) -> __m512i {
        let (h, k) = (u / 4, u % 4);
        let ql = &b[offset_of!(BlockQ6K, ql) + 64 * h + 32 * (k & 1)..];
        let qh = &b[offset_of!(BlockQ6K, qh) + 32 * h..];
        // SAFETY: the caller guarantees AVX512F/BW; the 64-entry table is read as two 64-byte
        // unaligned loads of its two halves.
        unsafe {
            let lo = bits(load32(ql), 4 * (k >> 1), 0x0f);
            let hi = bits(load32(qh), 2 * k, 3);
            let idx = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
            let (t0, t1) = (
                _mm512_loadu_si512(load_at::<64, u16>(&T_M32, 0).cast()),
                _mm512_loadu_si512(load_at::<64, u16>(&T_M32, 32).cast()),
            );
            _mm512_permutex2var_epi16(t0, _mm512_cvtepu8_epi16(idx), t1)
        }
    }
}

/// The accumulators of one row product: `h` for the first term of the activations, `r` for
/// the sum of the other two (three-term split only).
#[derive(Clone, Copy)]
struct Acc {
    h: __m512,
    r: __m512,
}

/// 32 bf16 values as a vector.
///
/// # Safety
/// The CPU has AVX512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_bh(x: &[u16]) -> __m512bh {
    let x = &x[..UNIT];
    // SAFETY: `x` has exactly 32 readable u16 (64 bytes); `loadu` has no alignment requirement;
    // __m512i and __m512bh are both 64 bytes of plain bits.
    unsafe {
        std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
            load_at::<64, u16>(x, 0).cast(),
        ))
    }
}

/// One unit: `acc.h + dpbf16(levels, x₀) · scales` and, with `K = 3` terms,
/// `acc.r + (dpbf16(levels, x₁) + dpbf16(levels, x₂)) · scales` (`x` holds the terms `cols`
/// apart). The first 8 lanes (weights 0..16) are scaled by `scales[0]`, the others by
/// `scales[1]` — or all by `scales[0]` when not `half` (one scale per unit).
///
/// # Safety
/// The CPU has AVX512F and AVX512-BF16; `x[k · cols..][..32]` exists for every term `k < K`.
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn step<const K: usize>(
    acc: Acc,
    levels: __m512i,
    scales: [f32; 2],
    half: bool,
    x: &[u16],
    cols: usize,
) -> Acc {
    // SAFETY: __m512i and __m512bh are both 64 bytes of plain bits.
    let w = unsafe { std::mem::transmute::<__m512i, __m512bh>(levels) };
    let sc = if half {
        let lo = _mm256_set1_ps(scales[0]);
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(
            _mm512_castps_pd(_mm512_castps256_ps512(lo)),
            _mm256_castps_pd(_mm256_set1_ps(scales[1])),
        ))
    } else {
        _mm512_set1_ps(scales[0])
    };
    let z = _mm512_setzero_ps();
    // SAFETY: the caller guarantees the features and the terms' extent.
    unsafe {
        let h = _mm512_fmadd_ps(_mm512_dpbf16_ps(z, w, load_bh(x)), sc, acc.h);
        if K == 1 {
            return Acc { h, r: acc.r };
        }
        let m = _mm512_dpbf16_ps(z, w, load_bh(&x[cols..]));
        let l = _mm512_dpbf16_ps(z, w, load_bh(&x[2 * cols..]));
        let r = _mm512_fmadd_ps(_mm512_add_ps(m, l), sc, acc.r);
        Acc { h, r }
    }
}

/// The sum of the 16 lanes: halves, then quarters, then pairs (the order [`super::hsum16`]
/// follows).
#[inline]
#[target_feature(enable = "avx512f")]
fn hsum(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let h = _mm256_add_ps(lo, hi);
    let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
    let d = _mm_add_ps(q, _mm_movehl_ps(q, q));
    _mm_cvtss_f32(_mm_add_ss(d, _mm_shuffle_ps::<1>(d, d)))
}

/// `hsum(acc.h)` (`+ hsum(acc.r)` with three terms), plus the offsets' dot with the activation
/// sums where the type has offsets.
#[inline]
#[target_feature(enable = "avx512f")]
fn finish<const K: usize>(acc: Acc, offsets: Offsets, offs: &[f32], sums: &[f32]) -> f32 {
    let mut v = hsum(acc.h);
    if K > 1 {
        v += hsum(acc.r);
    }
    if offsets == Offsets::None {
        return v;
    }
    let n = offs.len().min(sums.len());
    let mut macc = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let k = (n - i).min(16);
        let m: u16 = if k == 16 { 0xffff } else { (1u16 << k) - 1 };
        // SAFETY: the masked loads read only lanes `< k`, i.e. elements `i..i + k` with
        // `i + k <= n`, inside both slices (the ranges `ptr_at` checks in debug builds).
        let (o, s) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, ptr_at(offs, i, k)),
                _mm512_maskz_loadu_ps(m, ptr_at(sums, i, k)),
            )
        };
        macc = _mm512_fmadd_ps(o, s, macc);
        i += 16;
    }
    v + hsum(macc)
}

/// Offsets of one row: `PerUnit` one per unit, `PerHalf` two.
#[inline]
fn put_offsets(offsets: Offsets, p: &Params, u: usize, gu: usize, offs: &mut [f32]) {
    match offsets {
        Offsets::None => {}
        Offsets::PerUnit => offs[gu] = p.offsets[u][0],
        Offsets::PerHalf => {
            offs[2 * gu] = p.offsets[u][0];
            offs[2 * gu + 1] = p.offsets[u][1];
        }
    }
}

/// One weight row (whole blocks of `T`) · one prepared activation row (`x`: its `K` bf16 terms,
/// `cols` apart; `sums`: its sums per offset group), expanding each unit just before its
/// product. `offs` is scratch for the row's offsets (at least `units · T::OFFSETS.per_unit()`
/// values).
///
/// # Safety
/// The CPU has AVX512F, AVX512BW and AVX512-BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
pub(crate) unsafe fn dot_row<T: UnitsAvx512, const K: usize>(
    w: &[u8],
    x: &[u16],
    sums: &[f32],
    offs: &mut [f32],
) -> f32 {
    let cols = x.len() / K;
    let mut acc = Acc {
        h: _mm512_setzero_ps(),
        r: _mm512_setzero_ps(),
    };
    let mut p = Params::default();
    let units = w.len() / T::BLCK_BYTES * T::UNITS;
    for (bi, b) in w.chunks_exact(T::BLCK_BYTES).enumerate() {
        // SAFETY: the caller guarantees the CPU features (F16C among them).
        unsafe { T::params512(b, &mut p) };
        for u in 0..T::UNITS {
            let gu = bi * T::UNITS + u;
            // SAFETY: the caller guarantees the CPU features; `b` is one whole block, and every
            // term of `x` holds the unit's 32 values at `gu * 32` (the row has as many as the
            // weights).
            unsafe {
                let lv = T::levels512(b, u);
                acc = step::<K>(acc, lv, p.scales[u], T::HALF_SCALES, &x[gu * UNIT..], cols);
            }
            put_offsets(T::OFFSETS, &p, u, gu, offs);
        }
    }
    let no = units * T::OFFSETS.per_unit();
    finish::<K>(acc, T::OFFSETS, &offs[..no], sums)
}

/// Expands one weight row: each unit's levels as 32 bf16 words into `words`, its scales into
/// `scales`, its offsets into `offs`.
///
/// # Safety
/// The CPU has AVX512F, AVX512BW and AVX512-BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,f16c")]
pub(crate) unsafe fn expand_row<T: UnitsAvx512>(
    w: &[u8],
    words: &mut [u16],
    scales: &mut [[f32; 2]],
    offs: &mut [f32],
) {
    let mut p = Params::default();
    for (bi, b) in w.chunks_exact(T::BLCK_BYTES).enumerate() {
        // SAFETY: the caller guarantees the CPU features (F16C among them).
        unsafe { T::params512(b, &mut p) };
        for u in 0..T::UNITS {
            let gu = bi * T::UNITS + u;
            let dst = &mut words[gu * UNIT..][..UNIT];
            // SAFETY: the caller guarantees the CPU features; `dst` has exactly 32 writable
            // u16 (64 bytes); `storeu` has no alignment requirement.
            unsafe { _mm512_storeu_si512(ptr_at_mut(dst, 0, UNIT).cast(), T::levels512(b, u)) };
            scales[gu] = p.scales[u];
            put_offsets(T::OFFSETS, &p, u, gu, offs);
        }
    }
}

/// [`dot_row`] of a row expanded by [`expand_row`]: the same steps on the same values.
///
/// # Safety
/// The CPU has AVX512F and AVX512-BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn dot_expanded<T: UnitsAvx512, const K: usize>(
    words: &[u16],
    scales: &[[f32; 2]],
    offs: &[f32],
    x: &[u16],
    sums: &[f32],
) -> f32 {
    let cols = x.len() / K;
    let mut acc = Acc {
        h: _mm512_setzero_ps(),
        r: _mm512_setzero_ps(),
    };
    for (gu, (w, &sc)) in words.chunks_exact(UNIT).zip(scales).enumerate() {
        // SAFETY: `w` is exactly 32 u16 (64 bytes); the caller guarantees the features, and
        // every term of `x` holds the unit's 32 values at `gu * 32`.
        unsafe {
            let lv = _mm512_loadu_si512(load_at::<64, u16>(w, 0).cast());
            acc = step::<K>(acc, lv, sc, T::HALF_SCALES, &x[gu * UNIT..], cols);
        }
    }
    finish::<K>(acc, T::OFFSETS, offs, sums)
}
