//! Q4_1: blocks of 32 weights, `w = d · q + m` with 4-bit `q` and f16 `d` and `m`; multiplied with
//! Q8_1 activations. SIMD: the AVX2 row dot, the tiled kernels ([`crate::qgemm`]) and the
//! eight-row repacked kernels ([`crate::qgemm_x8`]), each for AVX2 and AVX-512 VNNI.

use std::mem::{offset_of, size_of};

#[cfg(target_arch = "x86_64")]
use crate::cpu::Isa;
#[cfg(target_arch = "x86_64")]
use crate::qgemm::Kernel;
#[cfg(target_arch = "x86_64")]
use crate::qgemm_x8::ROWS;

use super::q8_1::{BlockQ8_1, Q8_1};
use super::util::{blocks, i8s, inv, min_max, put_f16, rd_f16};
use super::{BlockFormat, BlockType, QK};
use crate::DType;

/// `block_q4_1`: 32 weights, `w = d · q + m`.
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// The Q4_1 weight type.
pub struct Q4_1;

impl BlockFormat for Q4_1 {
    type Block = BlockQ4_1;
    const BLCK_SIZE: usize = QK;
    const DTYPE: DType = DType::Q4_1;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ4_1, d));
        let m = rd_f16(b, offset_of!(BlockQ4_1, m));
        let qs = &b[offset_of!(BlockQ4_1, qs)..][..QK / 2];
        for j in 0..QK / 2 {
            let x0 = (qs[j] & 0x0f) as f32;
            let x1 = (qs[j] >> 4) as f32;
            y[j] = x0 * d + m;
            y[j + QK / 2] = x1 * d + m;
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inv(d);
        put_f16(b, offset_of!(BlockQ4_1, d), d);
        put_f16(b, offset_of!(BlockQ4_1, m), min);
        let qs = &mut b[offset_of!(BlockQ4_1, qs)..][..QK / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            let xi0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
            let xi1 = (((x[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
            *q = xi0 | (xi1 << 4);
        }
    }
}

impl BlockType for Q4_1 {
    type VecDotType = Q8_1;
    super::avx2_vec_dot!();

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q4_1>(w, a) {
            let xq = &x[offset_of!(BlockQ4_1, qs)..][..QK / 2];
            let yq = &y[offset_of!(BlockQ8_1, qs)..][..QK];
            let (mut s0, mut s1) = (0i32, 0i32);
            for ((&q, y0), y1) in xq.iter().zip(i8s(&yq[..16])).zip(i8s(&yq[16..])) {
                s0 += i32::from(q & 0x0f) * y0;
                s1 += i32::from(q >> 4) * y1;
            }
            let dxy = rd_f16(x, offset_of!(BlockQ4_1, d)) * rd_f16(y, offset_of!(BlockQ8_1, d));
            sumf += dxy * (s0 + s1) as f32
                + rd_f16(x, offset_of!(BlockQ4_1, m)) * rd_f16(y, offset_of!(BlockQ8_1, s));
        }
        sumf
    }

    super::x86_tile_hooks!(
        tile: q4_1_avx2, q4_1_vnni;
        repack: BLOCK1_BYTES, repack_q4_1_x8;
        x8: q4_1_x8_avx2, q4_1_x8_vnni
    );
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    // Tiles index weights, activations and accumulators by the same row index.
    #![allow(clippy::needless_range_loop)]

    use std::arch::x86_64::*;
    use std::mem::{offset_of, size_of};

    use super::{BlockQ4_1, BlockQ8_1};
    use crate::checked::{ptr_at_mut, Raw};
    use crate::qgemm::Tile;
    use crate::qgemm_x8::{interleave, put_f32_of_f16, repack_with, ROWS};
    use crate::quants::simd::{
        d_prod, dot_u8i8_avx2, dot_u8i8_vnni, dota_avx2, dota_vnni, f16x4, hsum, isum, ld, ld16,
        load32, nibbles, pair_sums,
    };

    const B41: usize = size_of::<BlockQ4_1>();
    const B81: usize = size_of::<BlockQ8_1>();

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_avx2(w: &[u8], a: &[u8]) -> f32 {
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

    /// The Q4_1 kernel for one instruction set: `$dot` is [`dot_u8i8_avx2`] or [`dot_u8i8_vnni`],
    /// which give the same integers, so both sets give the same bits.
    macro_rules! q4_1_kernel {
        ($q41:ident, $feat:literal, $dot:ident) => {
            /// Q4_1 weights × Q8_1 activations: per block `d_w·d_y · I + m_w · s_y` with the exact
            /// integer `I = Σ q·y`. Even blocks go to `e = fma(d_w·d_y, I, e)` and `n = n + m_w·s_y`
            /// (unfused), odd ones to `o` and `p` alike; the result is `(e + o) + (n + p)`: the order
            /// [`crate::qgemm_x8`]'s eight-row kernels follow lane by lane.
            ///
            /// Blocks go in pairs: one conversion of the four f16 `[d, m]` of both, one product with
            /// the activations' `[d, s]` of both (`[d·d_y, m·s_y, d'·d_y', m'·s_y']`), whose lanes 0
            /// and 2 scale the two block sums and lanes 1 and 3 add to the mins' sums.
            ///
            /// # Safety
            #[doc = concat!("The CPU has `", $feat, "` and `t` describes readable blocks ([`crate::qgemm::dot_tile`]).")]
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $q41<const RW: usize, const R: usize>(t: &Tile<RW, R>, out: &mut [[f32; R]; RW]) {
                // Lanes: 0 = e, 1 = n, 2 = o, 3 = p.
                let mut acc = [[_mm_setzero_ps(); R]; RW];
                let mut mins = [[_mm_setzero_ps(); R]; RW];
                let mask = _mm256_set1_epi8(0x0f);
                let zero = _mm256_setzero_si256();
                let qs_off = offset_of!(BlockQ4_1, qs);
                let yq_off = offset_of!(BlockQ8_1, qs);
                const _: () = assert!(offset_of!(BlockQ4_1, m) == offset_of!(BlockQ4_1, d) + 2);
                let mut b = 0;
                while b < t.nb {
                    // The pair (b, b + 1), or b alone at the end (its partner all zeros).
                    let two = b + 1 < t.nb;
                    let mut q = [[zero; 2]; RW];
                    let mut dm = [_mm_setzero_ps(); RW];
                    for i in 0..RW {
                        let unpack = |v: __m128i| {
                            _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), mask)
                        };
                        // SAFETY: block b < nb of weight row i (and b + 1 when `two`): the ranges
                        // `sub`, `ld16` and `at` check in debug builds.
                        unsafe {
                            let p0 = t.w[i].sub(b * B41, B41);
                            q[i][0] = unpack(ld16(p0, qs_off));
                            let w0 = p0.at(0, 4).cast::<u32>().read_unaligned();
                            let w1 = if two {
                                let p1 = t.w[i].sub((b + 1) * B41, B41);
                                q[i][1] = unpack(ld16(p1, qs_off));
                                p1.at(0, 4).cast::<u32>().read_unaligned()
                            } else {
                                0
                            };
                            dm[i] = f16x4(u64::from(w0) | (u64::from(w1) << 32));
                        }
                    }
                    for j in 0..R {
                        // SAFETY: blocks b (and b + 1 when `two`) of activation row j and their
                        // scales `[d, s]` per block (the ranges `ld` and `at` check in debug builds).
                        let (y0, y1, ds) = unsafe {
                            let a = t.a[j];
                            let s = t.s[j];
                            if two {
                                let (ya, yb) = (ld(a, b * B81 + yq_off), ld(a, (b + 1) * B81 + yq_off));
                                (ya, yb, _mm_loadu_ps(s.at(2 * b, 4)))
                            } else {
                                let ds = _mm_castsi128_ps(_mm_loadl_epi64(s.at(2 * b, 2).cast()));
                                (ld(a, b * B81 + yq_off), zero, ds)
                            }
                        };
                        for i in 0..RW {
                            let prod = _mm_mul_ps(dm[i], ds);
                            let s0 = $dot(q[i][0], y0);
                            let s1 = $dot(q[i][1], y1);
                            acc[i][j] = _mm_fmadd_ps(prod, pair_sums(s0, s1), acc[i][j]);
                            mins[i][j] = _mm_add_ps(mins[i][j], prod);
                        }
                    }
                    b += 2;
                }
                for i in 0..RW {
                    for j in 0..R {
                        let (a, m) = (acc[i][j], mins[i][j]);
                        let lane = |v: __m128, k: usize| {
                            let mut x = [0.0f32; 4];
                            // SAFETY: `x` holds 4 f32; `storeu` has no alignment requirement.
                            unsafe { _mm_storeu_ps(ptr_at_mut(&mut x, 0, 4), v) };
                            x[k]
                        };
                        out[i][j] = (lane(a, 0) + lane(a, 2)) + (lane(m, 1) + lane(m, 3));
                    }
                }
            }
        };
    }

    q4_1_kernel!(q4_1_avx2, "avx2,fma,f16c", dot_u8i8_avx2);
    q4_1_kernel!(
        q4_1_vnni,
        "avx2,fma,f16c,avx512vnni,avx512vl",
        dot_u8i8_vnni
    );

    // One repacked Q4_1 block of eight rows: `d` and `m` as f32 (8 each), then the 16 quant bytes
    // of each row as 4 vectors `[k][row][4 bytes]` (bytes 4k..4k+4: weights 4k.. in the low nibbles,
    // 16 + 4k.. in the high ones).
    // One repacked Q4_1 block of eight rows: `d` and `m` as f32 (8 each), then the 16 quant bytes
    // of each row as 4 vectors `[k][row][4 bytes]` (bytes 4k..4k+4: weights 4k.. in the low nibbles,
    // 16 + 4k.. in the high ones).
    const OFF1_M: usize = 32;
    const OFF1_Q: usize = 64;
    /// Bytes of one repacked Q4_1 block of eight rows.
    pub(super) const BLOCK1_BYTES: usize = OFF1_Q + ROWS * 16;

    /// Repacks blocks `0..nb` of eight Q4_1 rows into `dst` (`nb * BLOCK1_BYTES` bytes).
    pub(super) fn repack_q4_1_x8(rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
        repack_with(rows, nb, (B41, BLOCK1_BYTES), dst, |x, r, out| {
            put_f32_of_f16(x, offset_of!(BlockQ4_1, d), r, out, 0);
            put_f32_of_f16(x, offset_of!(BlockQ4_1, m), r, out, OFF1_M);
            interleave(&x[offset_of!(BlockQ4_1, qs)..][..16], r, out, OFF1_Q);
        });
    }

    /// The Q4_1 kernel for one instruction set; `$dota` gives the same integers on every set.
    macro_rules! q4_1_x8_kernel {
        ($name:ident, $feat:literal, $dota:ident) => {
            /// Eight repacked Q4_1 rows × `R` Q8_1 activation rows: per block and row the exact
            /// `I = Σ q·y`, then `fma(d_w·d_y, I, ·)` into the even or odd blocks' sum and `m_w·s_y`
            /// added (unfused) to the even or odd mins' sum; the result `(e + o) + (n + p)`: the
            /// order of [`crate::qgemm`]'s Q4_1 kernels.
            ///
            /// # Safety
            #[doc = concat!("The CPU has `", $feat, "`; `x` points to `nb` repacked blocks, `a[j]` to")]
            /// `nb` Q8_1 blocks and `s[j]` to their `2·nb` scales (`d`, `s` per block).
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name<const R: usize>(
                x: *const u8,
                nb: usize,
                a: [*const u8; R],
                s: [*const f32; R],
                out: &mut [[f32; ROWS]; R],
            ) {
                // The lengths behind the pointers (the contract), checked against in debug builds.
                let x = Raw::from_raw(x, nb * BLOCK1_BYTES);
                let a = Raw::from_raw_each(a, nb * B81);
                let s = Raw::from_raw_each(s, 2 * nb);
                let yq = offset_of!(BlockQ8_1, qs);
                let m4 = _mm256_set1_epi8(0x0f);
                let mut facc = [[_mm256_setzero_ps(); R]; 2];
                let mut sm = [[_mm256_setzero_ps(); R]; 2];
                for b in 0..nb {
                    // SAFETY: block b < nb of the repacked group (`sub` checks it in debug builds,
                    // as `at` does every range below).
                    let xb = unsafe { x.sub(b * BLOCK1_BYTES, BLOCK1_BYTES) };
                    let mut lo = [_mm256_setzero_si256(); 4];
                    let mut hi = [_mm256_setzero_si256(); 4];
                    for k in 0..4 {
                        // SAFETY: quant vector k of the block.
                        let v = unsafe { _mm256_loadu_si256(xb.at(OFF1_Q + 32 * k, 32).cast()) };
                        lo[k] = _mm256_and_si256(v, m4);
                        hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    }
                    // SAFETY: the f32 `d` and `m` of the block.
                    let (d, m) = unsafe {
                        (
                            _mm256_loadu_ps(xb.at(0, 32).cast()),
                            _mm256_loadu_ps(xb.at(OFF1_M, 32).cast()),
                        )
                    };
                    for j in 0..R {
                        // SAFETY: block b < nb of activation row j, its quants and two scales.
                        let (y, yd, ys) = unsafe {
                            (
                                a[j].sub(b * B81 + yq, 32),
                                *s[j].at(2 * b, 1),
                                *s[j].at(2 * b + 1, 1),
                            )
                        };
                        let mut i = _mm256_setzero_si256();
                        for k in 0..4 {
                            // SAFETY: activation bytes 4k .. 4k + 4 and 16 + 4k .. 20 + 4k of 32.
                            let (y0, y1) = unsafe {
                                (
                                    y.at(4 * k, 4).cast::<i32>().read_unaligned(),
                                    y.at(16 + 4 * k, 4).cast::<i32>().read_unaligned(),
                                )
                            };
                            i = $dota(i, lo[k], _mm256_set1_epi32(y0));
                            i = $dota(i, hi[k], _mm256_set1_epi32(y1));
                        }
                        let dd = _mm256_mul_ps(d, _mm256_set1_ps(yd));
                        facc[b % 2][j] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(i), facc[b % 2][j]);
                        sm[b % 2][j] =
                            _mm256_add_ps(sm[b % 2][j], _mm256_mul_ps(m, _mm256_set1_ps(ys)));
                    }
                }
                for j in 0..R {
                    let v = _mm256_add_ps(
                        _mm256_add_ps(facc[0][j], facc[1][j]),
                        _mm256_add_ps(sm[0][j], sm[1][j]),
                    );
                    // SAFETY: `out[j]` is eight writable f32; `storeu` has no alignment requirement.
                    unsafe { _mm256_storeu_ps(ptr_at_mut(&mut out[j], 0, 8), v) };
                }
            }
        };
    }

    q4_1_x8_kernel!(q4_1_x8_avx2, "avx2,fma", dota_avx2);
    q4_1_x8_kernel!(q4_1_x8_vnni, "avx2,fma,avx512vnni,avx512vl", dota_vnni);
}
