//! Q8_0: blocks of 32 values, `w = d · q` with 8-bit `q` and an f16 `d`; both a weight type and
//! the activation format of Q4_0, Q5_0 and Q8_0. SIMD: the AVX2 row dot, the tiled kernels
//! ([`crate::qgemm`]) and the eight-row repacked kernels ([`crate::qgemm_x8`]), each for AVX2
//! and AVX-512 VNNI.

use std::mem::{offset_of, size_of};

#[cfg(target_arch = "x86_64")]
use crate::cpu::Isa;
#[cfg(target_arch = "x86_64")]
use crate::qgemm::Kernel;
#[cfg(target_arch = "x86_64")]
use crate::qgemm_x8::ROWS;
use crate::Result;

use super::util::{blocks, i8s, inv, put_f16, rd_f16};
use super::{ActFormat, BlockFormat, BlockType, QK};
use crate::DType;

/// `block_q8_0`: 32 weights, `w = d · q`.
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// The Q8_0 weight type.
pub struct Q8_0;

impl BlockFormat for Q8_0 {
    type Block = BlockQ8_0;
    const BLCK_SIZE: usize = QK;
    const DTYPE: DType = DType::Q8_0;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ8_0, d));
        let qs = &b[offset_of!(BlockQ8_0, qs)..][..QK];
        for j in 0..QK {
            y[j] = (qs[j] as i8) as f32 * d;
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let amax = x
            .iter()
            .fold(0.0f32, |a, v| if a > v.abs() { a } else { v.abs() });
        let d = amax / 127.0;
        let id = inv(d);
        put_f16(b, offset_of!(BlockQ8_0, d), d);
        let qs = &mut b[offset_of!(BlockQ8_0, qs)..][..QK];
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = ((v * id).round() as i8) as u8;
        }
    }
}

impl BlockType for Q8_0 {
    type VecDotType = Q8_0;
    super::avx2_vec_dot!();

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q8_0>(w, a) {
            let off = offset_of!(BlockQ8_0, qs);
            let sumi: i32 = i8s(&x[off..off + QK])
                .zip(i8s(&y[off..off + QK]))
                .map(|(p, q)| p * q)
                .sum();
            sumf += sumi as f32 * (rd_f16(x, 0) * rd_f16(y, 0));
        }
        sumf
    }

    super::x86_tile_hooks!(tile: q8_0_avx2, q8_0_vnni; repack: BLOCK8_BYTES, repack_q8_0_x8);

    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn wide_tiles(isa: Isa) -> bool {
        isa == Isa::Vnni
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn x8_needs_sums(isa: Isa) -> bool {
        isa == Isa::Vnni
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn x8_tile<const R: usize>(
        isa: Isa,
        x: *const u8,
        nb: usize,
        a: [*const u8; R],
        s: [*const f32; R],
        c: [*const i32; R],
        out: &mut [[f32; ROWS]; R],
    ) {
        // SAFETY: the caller guarantees `isa` and `nb` readable blocks behind every pointer.
        unsafe {
            match isa {
                Isa::Avx2 => x86::q8_0_x8_avx2::<R>(x, nb, a, s, out),
                Isa::Vnni => x86::q8_0_x8_vnni::<R>(x, nb, a, s, c, out),
            }
        }
    }
}

impl ActFormat for Q8_0 {
    const SCALES_PER_BLOCK: usize = 1;

    /// In parallel over blocks, like the weights ([`crate::quantize::quantize_row`]).
    fn quantize_row(src: &[f32], dst: &mut [u8]) -> Result<()> {
        crate::quantize::quantize_row(DType::Q8_0, src, dst)
    }

    fn act_scales(row: &[u8], out: &mut Vec<f32>) {
        for b in row.chunks_exact(size_of::<BlockQ8_0>()) {
            out.push(rd_f16(b, offset_of!(BlockQ8_0, d)));
        }
    }
}

/// `−128 · Σ y` of every Q8_0 activation block of `act` (the correction of the VNNI eight-row
/// kernel, which multiplies `x + 128` by `y`), appended to `out`.
pub(crate) fn act_sums(act: &[u8], out: &mut Vec<i32>) {
    let off = offset_of!(BlockQ8_0, qs);
    for b in act.chunks_exact(size_of::<BlockQ8_0>()) {
        let s: i32 = b[off..off + 32].iter().map(|&v| i32::from(v as i8)).sum();
        out.push(-128 * s);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    // Tiles index weights, activations and accumulators by the same row index.
    #![allow(clippy::needless_range_loop)]

    use std::arch::x86_64::*;
    use std::mem::{offset_of, size_of};

    use super::BlockQ8_0;
    use crate::checked::{ptr_at_mut, Raw};
    use crate::qgemm::Tile;
    use crate::qgemm_x8::{interleave, put_f32_of_f16, repack_with, ROWS};
    use crate::quants::simd::{
        d_prod, dot_u8i8_avx2, dota_avx2, f16x4, hsum, ld, load32, pair_sums,
    };
    use crate::quants::QK;

    const B80: usize = size_of::<BlockQ8_0>();

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_avx2(w: &[u8], a: &[u8]) -> f32 {
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

    /// The Q8_0 kernel for one instruction set. Per block the exact integer `I = Σ x·y` (|I| < 2^20,
    /// so exact in f32 too), then `e = fma(d_w·d_y, I, e)` for even blocks and `o = …` for odd ones
    /// (lanes 0 and 2 of a vector, blocks in pairs), and the result `e + o`: the order [`crate::qgemm_x8`]'s eight-row kernels follow lane by
    /// lane, so every tile shape and layout gives the same bits. `$prep` makes a weight block's
    /// operand once, `$dot(prep, x, y, neg)` the block's i32 lanes (`neg`: `$neg(y)`, per activation
    /// block).
    macro_rules! q8_0_kernel {
        ($name:ident, $feat:literal, $prep:expr, $neg:expr, $dot:expr) => {
            /// Q8_0 weights × Q8_0 activations.
            ///
            /// # Safety
            #[doc = concat!("The CPU has `", $feat, "` and `t` describes readable blocks ([`crate::qgemm::dot_tile`]).")]
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name<const RW: usize, const R: usize>(
                t: &Tile<RW, R>,
                out: &mut [[f32; R]; RW],
            ) {
                let mut acc = [[_mm_setzero_ps(); R]; RW];
                let off = offset_of!(BlockQ8_0, qs);
                let zero = _mm256_setzero_si256();
                let mut b = 0;
                while b < t.nb {
                    // The pair (b, b + 1), or b alone at the end (its partner all zeros).
                    let two = b + 1 < t.nb;
                    let mut xv = [[zero; 2]; RW];
                    let mut pv = [[zero; 2]; RW];
                    let mut dw = [_mm_setzero_ps(); RW];
                    for i in 0..RW {
                        // SAFETY: block b < nb of weight row i (and b + 1 when `two`): within
                        // the row's length, which `ld` and `at` check in debug builds.
                        unsafe {
                            let w = t.w[i];
                            let dp = b * B80 + offset_of!(BlockQ8_0, d);
                            xv[i][0] = ld(w, b * B80 + off);
                            let d1 = if two {
                                xv[i][1] = ld(w, (b + 1) * B80 + off);
                                w.at(dp + B80, 2).cast::<u16>().read_unaligned()
                            } else {
                                0
                            };
                            let d0 = w.at(dp, 2).cast::<u16>().read_unaligned();
                            dw[i] = f16x4(u64::from(d0) | (u64::from(d1) << 32));
                        }
                        pv[i] = [$prep(xv[i][0]), $prep(xv[i][1])];
                    }
                    for j in 0..R {
                        // SAFETY: blocks b (and b + 1 when `two`) of activation row j and their
                        // scales (the ranges `ld` and `at` check in debug builds).
                        let (y0, y1, yd) = unsafe {
                            let a = t.a[j];
                            let s = t.s[j];
                            let yd = if two {
                                _mm_castsi128_ps(_mm_loadl_epi64(s.at(b, 2).cast()))
                            } else {
                                _mm_load_ss(s.at(b, 1))
                            };
                            let y1 = if two {
                                ld(a, (b + 1) * B80 + off)
                            } else {
                                zero
                            };
                            (ld(a, b * B80 + off), y1, _mm_unpacklo_ps(yd, yd))
                        };
                        let (n0, n1) = ($neg(y0), $neg(y1));
                        for i in 0..RW {
                            let s0 = $dot(pv[i][0], xv[i][0], y0, n0);
                            let s1 = $dot(pv[i][1], xv[i][1], y1, n1);
                            let dd = _mm_mul_ps(dw[i], yd);
                            acc[i][j] = _mm_fmadd_ps(dd, pair_sums(s0, s1), acc[i][j]);
                        }
                    }
                    b += 2;
                }
                for i in 0..RW {
                    for j in 0..R {
                        let a = acc[i][j];
                        out[i][j] = _mm_cvtss_f32(a) + _mm_cvtss_f32(_mm_movehl_ps(a, a));
                    }
                }
            }
        };
    }

    // AVX2: `Σ x·y` as `Σ |x|·sign(y, x)` with `maddubs` (exact while activations stay in
    // −127..=127, as the quantizer writes them).
    q8_0_kernel!(
        q8_0_avx2,
        "avx2,fma,f16c",
        |x: __m256i| _mm256_sign_epi8(x, x),
        |_y: __m256i| _mm256_setzero_si256(),
        |ax: __m256i, x: __m256i, y: __m256i, _n: __m256i| dot_u8i8_avx2(
            ax,
            _mm256_sign_epi8(y, x)
        )
    );

    // VNNI: the same sign trick, the product in one `vpdpbusd` (exact for any bytes, the same integers
    // as AVX2's while activations stay in −127..=127).
    q8_0_kernel!(
        q8_0_vnni,
        "avx2,fma,f16c,avx512vnni,avx512vl",
        |x: __m256i| _mm256_sign_epi8(x, x),
        |_y: __m256i| _mm256_setzero_si256(),
        |ax: __m256i, x: __m256i, y: __m256i, _n: __m256i| _mm256_dpbusd_epi32(
            _mm256_setzero_si256(),
            ax,
            _mm256_sign_epi8(y, x)
        )
    );

    // One repacked Q8_0 block of eight rows: `d` as f32 (8), then the quants as 8 vectors
    // `[k][row][4 bytes]` (bytes 4k..4k+4 of each row's 32).
    // One repacked Q8_0 block of eight rows: `d` as f32 (8), then the quants as 8 vectors
    // `[k][row][4 bytes]` (bytes 4k..4k+4 of each row's 32).
    const OFF8_Q: usize = 32;
    /// Bytes of one repacked Q8_0 block of eight rows.
    pub(super) const BLOCK8_BYTES: usize = OFF8_Q + ROWS * 32;

    /// Repacks blocks `0..nb` of eight Q8_0 rows into `dst` (`nb * BLOCK8_BYTES` bytes).
    pub(super) fn repack_q8_0_x8(rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
        repack_with(rows, nb, (B80, BLOCK8_BYTES), dst, |x, r, out| {
            put_f32_of_f16(x, offset_of!(BlockQ8_0, d), r, out, 0);
            interleave(&x[offset_of!(BlockQ8_0, qs)..][..32], r, out, OFF8_Q);
        });
    }

    /// Eight repacked Q8_0 rows × `R` Q8_0 activation rows (AVX2): per block and row the exact
    /// `I = Σ x·y` as `Σ |x|·sign(y, x)` (`maddubs`, exact while activations stay in −127..=127, as
    /// the quantizer writes them), then `fma(d_w·d_y, I, ·)` into the even or odd blocks' sum, and
    /// their sum at the end: the order of [`crate::qgemm`]'s Q8_0 kernels.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `x` points to `nb` repacked blocks, `a[j]` to `nb` Q8_0 blocks and
    /// `s[j]` to `nb` scales.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn q8_0_x8_avx2<const R: usize>(
        x: *const u8,
        nb: usize,
        a: [*const u8; R],
        s: [*const f32; R],
        out: &mut [[f32; ROWS]; R],
    ) {
        let yq = offset_of!(BlockQ8_0, qs);
        // The lengths behind the pointers (the contract), checked against in debug builds.
        let x = Raw::from_raw(x, nb * BLOCK8_BYTES);
        let a = Raw::from_raw_each(a, nb * B80);
        let s = Raw::from_raw_each(s, nb);
        let mut facc = [[_mm256_setzero_ps(); R]; 2];
        for b in 0..nb {
            // SAFETY: block b < nb of the repacked group (`sub` checks it in debug builds, as
            // `at` does every range below).
            let xb = unsafe { x.sub(b * BLOCK8_BYTES, BLOCK8_BYTES) };
            let mut xv = [_mm256_setzero_si256(); 8];
            let mut ax = [_mm256_setzero_si256(); 8];
            for k in 0..8 {
                // SAFETY: quant vector k of the block.
                xv[k] = unsafe { _mm256_loadu_si256(xb.at(OFF8_Q + 32 * k, 32).cast()) };
                ax[k] = _mm256_sign_epi8(xv[k], xv[k]);
            }
            // SAFETY: the f32 `d` of the block.
            let d = unsafe { _mm256_loadu_ps(xb.at(0, 32).cast()) };
            for j in 0..R {
                // SAFETY: block b < nb of activation row j, its quants and scale.
                let (y, yd) = unsafe { (a[j].sub(b * B80 + yq, 32), *s[j].at(b, 1)) };
                let mut i = _mm256_setzero_si256();
                for k in 0..8 {
                    // SAFETY: activation bytes 4k .. 4k + 4 of the block's 32.
                    let yk =
                        _mm256_set1_epi32(unsafe { y.at(4 * k, 4).cast::<i32>().read_unaligned() });
                    i = dota_avx2(i, ax[k], _mm256_sign_epi8(yk, xv[k]));
                }
                let dd = _mm256_mul_ps(d, _mm256_set1_ps(yd));
                facc[b % 2][j] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(i), facc[b % 2][j]);
            }
        }
        for j in 0..R {
            let v = _mm256_add_ps(facc[0][j], facc[1][j]);
            // SAFETY: `out[j]` is eight writable f32; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_ps(ptr_at_mut(&mut out[j], 0, 8), v) };
        }
    }

    /// [`q8_0_x8_avx2`] with VNNI: `Σ x·y = Σ (x + 128)·y − 128·Σ y`, the unsigned `x + 128` made once
    /// per weight block and `−128·Σ y` (`c[j]`, [`act_sums`]) the accumulator the products add to.
    /// The same integers and f32 operations, so the same bits.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA, AVX-512 VNNI and VL; `x` points to `nb` repacked blocks, `a[j]` to `nb`
    /// Q8_0 blocks, `s[j]` to `nb` scales and `c[j]` to `nb` sums.
    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    pub(super) unsafe fn q8_0_x8_vnni<const R: usize>(
        x: *const u8,
        nb: usize,
        a: [*const u8; R],
        s: [*const f32; R],
        c: [*const i32; R],
        out: &mut [[f32; ROWS]; R],
    ) {
        let yq = offset_of!(BlockQ8_0, qs);
        // The lengths behind the pointers (the contract), checked against in debug builds.
        let x = Raw::from_raw(x, nb * BLOCK8_BYTES);
        let a = Raw::from_raw_each(a, nb * B80);
        let s = Raw::from_raw_each(s, nb);
        let c = Raw::from_raw_each(c, nb);
        let bias = _mm256_set1_epi8(-128);
        let mut facc = [[_mm256_setzero_ps(); R]; 2];
        for b in 0..nb {
            // SAFETY: block b < nb of the repacked group (`sub` checks it in debug builds, as
            // `at` does every range below).
            let xb = unsafe { x.sub(b * BLOCK8_BYTES, BLOCK8_BYTES) };
            let mut ux = [_mm256_setzero_si256(); 8];
            for k in 0..8 {
                // SAFETY: quant vector k of the block.
                let v = unsafe { _mm256_loadu_si256(xb.at(OFF8_Q + 32 * k, 32).cast()) };
                ux[k] = _mm256_xor_si256(v, bias);
            }
            // SAFETY: the f32 `d` of the block.
            let d = unsafe { _mm256_loadu_ps(xb.at(0, 32).cast()) };
            for j in 0..R {
                // SAFETY: block b < nb of activation row j, its quants, scale and sum.
                let (y, yd, c0) =
                    unsafe { (a[j].sub(b * B80 + yq, 32), *s[j].at(b, 1), *c[j].at(b, 1)) };
                let mut i = _mm256_set1_epi32(c0);
                for k in 0..8 {
                    // SAFETY: activation bytes 4k .. 4k + 4 of the block's 32.
                    let yk =
                        _mm256_set1_epi32(unsafe { y.at(4 * k, 4).cast::<i32>().read_unaligned() });
                    i = _mm256_dpbusd_epi32(i, ux[k], yk);
                }
                let dd = _mm256_mul_ps(d, _mm256_set1_ps(yd));
                facc[b % 2][j] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(i), facc[b % 2][j]);
            }
        }
        for j in 0..R {
            let v = _mm256_add_ps(facc[0][j], facc[1][j]);
            // SAFETY: `out[j]` is eight writable f32; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_ps(ptr_at_mut(&mut out[j], 0, 8), v) };
        }
    }
}
