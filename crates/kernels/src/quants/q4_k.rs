//! Q4_K: super-blocks of 256 weights in 8 groups of 32, 4-bit quants with 6-bit scales and mins
//! and f16 `d` and `dmin`; multiplied with Q8_K activations. SIMD: the AVX2 row dot, the tiled
//! kernels ([`crate::qgemm`]) and the eight-row repacked kernels ([`crate::qgemm_x8`]), each for
//! AVX2 and AVX-512 VNNI.

use std::mem::{offset_of, size_of};

#[cfg(target_arch = "x86_64")]
use crate::cpu::Isa;
#[cfg(target_arch = "x86_64")]
use crate::qgemm::Kernel;
#[cfg(target_arch = "x86_64")]
use crate::qgemm_x8::ROWS;

use super::q8_k::{q8k, Q8K};
use super::util::{
    blocks, get_scale_min_k4, min_term, qk_scales_and_levels, rd_f16, scaled_isum, scales_mins_k4,
};
use super::{BlockFormat, BlockType, QK_K};
use crate::DType;

const K_SCALE_SIZE: usize = 12;

/// `block_q4_K`: 256 weights in 8 groups of 32, 6-bit scales and mins.
#[repr(C)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

/// The Q4K weight type.
pub struct Q4K;

impl BlockFormat for Q4K {
    type Block = BlockQ4K;
    const BLCK_SIZE: usize = QK_K;
    const DTYPE: DType = DType::Q4_K;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ4K, d));
        let min = rd_f16(b, offset_of!(BlockQ4K, dmin));
        let scales = &b[offset_of!(BlockQ4K, scales)..][..K_SCALE_SIZE];
        let qs = &b[offset_of!(BlockQ4K, qs)..][..QK_K / 2];
        let mut yi = 0;
        for (g, q) in qs.chunks_exact(32).enumerate() {
            let is = 2 * g;
            let (sc, m) = get_scale_min_k4(is, scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = get_scale_min_k4(is + 1, scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            for &v in q {
                y[yi] = d1 * (v & 0x0f) as f32 - m1;
                yi += 1;
            }
            for &v in q {
                y[yi] = d2 * (v >> 4) as f32 - m2;
                yi += 1;
            }
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let mut l = [0u8; QK_K];
        let offs = (
            offset_of!(BlockQ4K, d),
            offset_of!(BlockQ4K, dmin),
            offset_of!(BlockQ4K, scales),
        );
        qk_scales_and_levels(x, b, offs, 15, (-1.0, 0.1, 20), &mut l);
        let qo = offset_of!(BlockQ4K, qs);
        for (n, j) in (0..QK_K).step_by(64).enumerate() {
            for k in 0..32 {
                b[qo + 32 * n + k] = l[j + k] | (l[j + k + 32] << 4);
            }
        }
    }
}

impl BlockType for Q4K {
    type VecDotType = Q8K;
    super::avx2_vec_dot!();

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q4K>(w, a) {
            let y = q8k(y);
            let qs = &x[offset_of!(BlockQ4K, qs)..][..QK_K / 2];
            let mut lv = [0i8; QK_K];
            for (g, q) in qs.chunks_exact(32).enumerate() {
                for (l, &v) in q.iter().enumerate() {
                    lv[64 * g + l] = (v & 0x0f) as i8;
                    lv[64 * g + 32 + l] = (v >> 4) as i8;
                }
            }
            let (sc, mn) = scales_mins_k4(&x[offset_of!(BlockQ4K, scales)..][..12]);
            let isum = scaled_isum(&lv, &sc, y.qs);
            let summ = min_term(&y.bsums, &mn);
            let d = rd_f16(x, offset_of!(BlockQ4K, d)) * y.d;
            let dmin = rd_f16(x, offset_of!(BlockQ4K, dmin)) * y.d;
            sumf += d * isum as f32 - dmin * summ as f32;
        }
        sumf
    }

    super::x86_tile_hooks!(
        tile: q4_k_avx2, q4_k_vnni;
        repack: BLOCK_BYTES, repack_q4k_x8;
        x8: q4k_x8_avx2, q4k_x8_vnni
    );
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    // Tiles index weights, activations and accumulators by the same row index.
    #![allow(clippy::needless_range_loop)]

    use std::arch::x86_64::*;
    use std::mem::{offset_of, size_of};

    use super::BlockQ4K;
    use crate::checked::{ptr_at_mut, Raw};
    use crate::qgemm::Tile;
    use crate::qgemm_x8::{interleave, put_f32_of_f16, repack_with, ROWS};
    use crate::quants::q8_k::{q8k, BlockQ8K};
    use crate::quants::simd::{
        dota_avx2, dota_vnni, dpw_avx2, dpw_vnni, f16x4, hsum_i32, ld, load32,
    };
    use crate::quants::util::{min_term, rd_f16, scales_mins_k4};
    use crate::quants::QK_K;

    const B4K: usize = size_of::<BlockQ4K>();
    const B8K: usize = size_of::<BlockQ8K>();

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_avx2(w: &[u8], a: &[u8]) -> f32 {
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

    /// The 12 packed 6-bit scales and mins of a Q4_K block as 16 bytes: scales 0..8, then mins
    /// 0..8 (the same values as [`scales_mins_k4`], unpacked with word operations).
    #[inline]
    pub(crate) fn k4_scales_mins(q: &[u8; 12]) -> [u32; 4] {
        let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
        let (w0, w1, w2) = (w(0), w(1), w(2));
        const LOW6: u32 = 0x3f3f_3f3f;
        const LOW4: u32 = 0x0f0f_0f0f;
        const TOP2: u32 = 0x0303_0303;
        [
            w0 & LOW6,                                      // scales 0..4: low 6 bits of bytes 0..4
            (w2 & LOW4) | (((w0 >> 6) & TOP2) << 4), // scales 4..8: bytes 8..12 low, 0..4 top
            w1 & LOW6,                               // mins 0..4: low 6 bits of bytes 4..8
            ((w2 >> 4) & LOW4) | (((w1 >> 6) & TOP2) << 4), // mins 4..8: bytes 8..12 high, 4..8 top
        ]
    }

    /// The Q4_K tile kernel for one set of target features: the same code, compiled for AVX2
    /// alone or with AVX-512VL and VNNI, whose 32 vector registers hold a 2 × 4 tile's integer and
    /// float accumulators without spilling and whose `vpdpwssd` applies the group scales and
    /// accumulates in one instruction. `$dpw` is [`dpw_avx2`] or [`dpw_vnni`], which give the same
    /// integers, so both give the same bits.
    macro_rules! q4k_tile_kernel {
        ($q4k:ident, $feat:literal, $dpw:ident) => {
            /// Q4_K weights × Q8_K activations: per block the exact integers `I = Σ_g sc_g Σ q·y` and
            /// `M = Σ_g m_g Σ y` (the group sums of `y` from the activation block's `bsums`), then
            /// `e = fma(d_w·d_y, I, e)` and `e = fma(−dmin_w·d_y, M, e)` in f32 for even blocks, the
            /// same into `o` for odd ones (lanes 0 and 1, blocks in pairs), and the result `e + o`:
            /// the canonical order [`crate::qgemm_x8`]'s eight-row kernels follow lane by lane, so
            /// every tile shape and layout gives the same bits.
            ///
            /// # Safety
            #[doc = concat!("The CPU has `", $feat, "` and `t` describes readable blocks ([`crate::qgemm::dot_tile`]).")]
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $q4k<const RW: usize, const R: usize>(t: &Tile<RW, R>, out: &mut [[f32; R]; RW]) {
                // Lanes 0 and 1: the even and the odd blocks' sums.
                let mut acc = [[_mm_setzero_ps(); R]; RW];
                let m4 = _mm256_set1_epi8(0x0f);
                let yq = offset_of!(BlockQ8K, qs);
                let yb = offset_of!(BlockQ8K, bsums);
                const _: () = assert!(offset_of!(BlockQ4K, dmin) == offset_of!(BlockQ4K, d) + 2);
                let mut b = 0;
                while b < t.nb {
                    // The pair (b, b + 1), or b alone at the end (its partner zero).
                    let two = b + 1 < t.nb;
                    let mut iacc = [[[_mm256_setzero_si256(); 2]; R]; RW];
                    let mut prods = [[[_mm_setzero_si128(); 2]; R]; RW];
                    let mut dmw = [_mm_setzero_ps(); RW];
                    let mut dbits = [[0u32; 2]; RW];
                    for h in 0..1 + usize::from(two) {
                        let bb = b + h;
                        let mut xs = [Raw::empty(); RW];
                        let mut mins = [_mm_setzero_si128(); RW];
                        let mut sc = [[0i16; 16]; RW];
                        for i in 0..RW {
                            // SAFETY: block bb < nb of weight row i (`sub` checks it in debug builds,
                            // as `at` and `ld` do the ranges below).
                            let x = unsafe { t.w[i].sub(bb * B4K, B4K) };
                            xs[i] = x;
                            // SAFETY: the 12 scale bytes and the two f16 of the block.
                            let (raw, d) = unsafe {
                                (
                                    x.at(offset_of!(BlockQ4K, scales), 12)
                                        .cast::<[u8; 12]>()
                                        .read_unaligned(),
                                    x.at(offset_of!(BlockQ4K, d), 4).cast::<u32>().read_unaligned(),
                                )
                            };
                            dbits[i][h] = d;
                            let sm = k4_scales_mins(&raw);
                            let sm = _mm256_cvtepu8_epi16(_mm_set_epi32(
                                sm[3] as i32,
                                sm[2] as i32,
                                sm[1] as i32,
                                sm[0] as i32,
                            ));
                            mins[i] = _mm256_extracti128_si256(sm, 1);
                            // SAFETY: `sc[i]` is 32 writable bytes; `storeu` has no alignment
                            // requirement.
                            unsafe { _mm256_storeu_si256(ptr_at_mut(&mut sc[i], 0, 16).cast(), sm) };
                        }
                        let mut ys = [Raw::empty(); R];
                        for j in 0..R {
                            // SAFETY: block bb < nb of activation row j (checked by `sub` in debug
                            // builds).
                            ys[j] = unsafe { t.a[j].sub(bb * B8K, B8K) };
                        }
                        for g in 0..QK_K / 64 {
                            for i in 0..RW {
                                // SAFETY: bytes 32g .. 32g + 32 of the block's 128 quant bytes.
                                let v = unsafe { ld(xs[i], offset_of!(BlockQ4K, qs) + 32 * g) };
                                let lo = _mm256_and_si256(v, m4);
                                let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                                let s_lo = _mm256_set1_epi16(sc[i][2 * g]);
                                let s_hi = _mm256_set1_epi16(sc[i][2 * g + 1]);
                                for j in 0..R {
                                    // SAFETY: bytes yq + 64g .. yq + 64g + 64 <= yq + QK_K.
                                    let (y0, y1) = unsafe {
                                        (ld(ys[j], yq + 64 * g), ld(ys[j], yq + 64 * g + 32))
                                    };
                                    let a = $dpw(iacc[i][j][h], _mm256_maddubs_epi16(lo, y0), s_lo);
                                    iacc[i][j][h] = $dpw(a, _mm256_maddubs_epi16(hi, y1), s_hi);
                                }
                            }
                        }
                        for j in 0..R {
                            // SAFETY: the block's 16 i16 group sums.
                            let bs = unsafe { ld(ys[j], yb) };
                            // 16 sums of 16 activations, paired into the 8 sums of 32 the mins
                            // apply to.
                            let q8s = _mm_hadd_epi16(
                                _mm256_castsi256_si128(bs),
                                _mm256_extracti128_si256(bs, 1),
                            );
                            for i in 0..RW {
                                prods[i][j][h] = _mm_madd_epi16(mins[i], q8s);
                            }
                        }
                    }
                    for i in 0..RW {
                        // [d, dmin, d', dmin'] of the pair (zeros for a missing partner).
                        let bits = u64::from(dbits[i][0]) | (u64::from(dbits[i][1]) << 32);
                        // SAFETY: the CPU has F16C (this function's features).
                        dmw[i] = unsafe { f16x4(bits) };
                    }
                    for j in 0..R {
                        // SAFETY: the scales of blocks b (and b + 1 when `two`).
                        let yd = unsafe {
                            let s = t.s[j];
                            if two {
                                _mm_castsi128_ps(_mm_loadl_epi64(s.at(b, 2).cast()))
                            } else {
                                _mm_load_ss(s.at(b, 1))
                            }
                        };
                        // [y, y, y', y'].
                        let yd = _mm_unpacklo_ps(yd, yd);
                        for i in 0..RW {
                            let [s0, s1] = iacc[i][j];
                            let [p0, p1] = prods[i][j];
                            // [I, I', M, M'], exact.
                            let h = _mm256_hadd_epi32(s0, s1);
                            let h = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
                            let im = _mm_cvtepi32_ps(_mm_hadd_epi32(h, _mm_hadd_epi32(p0, p1)));
                            // [d·y, dmin·y, d'·y', dmin'·y'].
                            let dd = _mm_mul_ps(dmw[i], yd);
                            let dv = _mm_shuffle_ps::<0b10_00_10_00>(dd, dd);
                            let mv = _mm_shuffle_ps::<0b11_01_11_01>(dd, dd);
                            let a = _mm_fmadd_ps(dv, im, acc[i][j]);
                            acc[i][j] = _mm_fnmadd_ps(mv, _mm_movehl_ps(im, im), a);
                        }
                    }
                    b += 2;
                }
                for i in 0..RW {
                    for j in 0..R {
                        let a = acc[i][j];
                        out[i][j] = _mm_cvtss_f32(a) + _mm_cvtss_f32(_mm_movehdup_ps(a));
                    }
                }
            }
        };
    }

    q4k_tile_kernel!(q4_k_avx2, "avx2,fma,f16c", dpw_avx2);
    q4k_tile_kernel!(q4_k_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", dpw_vnni);

    // One repacked block of eight rows: `d` and `dmin` as f32 (8 each), the eight group scales as
    // bytes `[group][row]`, the mins as byte pairs `[pair][row][2]`, then the quants as 32 vectors
    // `[half-group pair g][k][row][4 bytes]` (bytes 4k..4k+4 of each row's 32 quant bytes 32g..32g+32).
    // One repacked block of eight rows: `d` and `dmin` as f32 (8 each), the eight group scales as
    // bytes `[group][row]`, the mins as byte pairs `[pair][row][2]`, then the quants as 32 vectors
    // `[half-group pair g][k][row][4 bytes]` (bytes 4k..4k+4 of each row's 32 quant bytes 32g..32g+32).
    const OFF_D: usize = 0;
    const OFF_DMIN: usize = 32;
    const OFF_SC: usize = 64;
    const OFF_MN: usize = 128;
    const OFF_QS: usize = 192;
    /// Bytes of one repacked Q4_K block of eight rows.
    pub(super) const BLOCK_BYTES: usize = OFF_QS + ROWS * QK_K / 2;

    /// Repacks blocks `0..nb` of eight Q4_K rows into `dst` (`nb * BLOCK_BYTES` bytes).
    pub(super) fn repack_q4k_x8(rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
        repack_with(rows, nb, (B4K, BLOCK_BYTES), dst, |x, r, out| {
            put_f32_of_f16(x, offset_of!(BlockQ4K, d), r, out, OFF_D);
            put_f32_of_f16(x, offset_of!(BlockQ4K, dmin), r, out, OFF_DMIN);
            let so = offset_of!(BlockQ4K, scales);
            let (sc, mn) = scales_mins_k4(&x[so..so + 12]);
            for g in 0..8 {
                // 6-bit values.
                out[OFF_SC + 8 * g + r] = sc[g] as u8;
                out[OFF_MN + 16 * (g / 2) + 2 * r + g % 2] = mn[g] as u8;
            }
            // Vector g·8 + k: bytes 4k..4k+4 of each row's quant bytes 32g..32g+32.
            interleave(&x[offset_of!(BlockQ4K, qs)..][..QK_K / 2], r, out, OFF_QS);
        });
    }

    /// The kernel for one instruction set; `$dota` and `$dpw` give the same integers on every set.
    macro_rules! q4k_x8_kernel {
        ($name:ident, $feat:literal, $dota:ident, $dpw:ident) => {
            /// Eight repacked Q4_K rows × `R` Q8_K activation rows.
            ///
            /// # Safety
            #[doc = concat!("The CPU has `", $feat, "`; `x` points to `nb` repacked blocks, `a[j]` to")]
            /// `nb` Q8_K blocks and `s[j]` to `nb` scales.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name<const R: usize>(
                x: *const u8,
                nb: usize,
                a: [*const u8; R],
                s: [*const f32; R],
                out: &mut [[f32; ROWS]; R],
            ) {
                // The lengths behind the pointers (the contract), checked against in debug builds.
                let x = Raw::from_raw(x, nb * BLOCK_BYTES);
                let a = Raw::from_raw_each(a, nb * B8K);
                let s = Raw::from_raw_each(s, nb);
                let m4 = _mm256_set1_epi8(0x0f);
                let yq = offset_of!(BlockQ8K, qs);
                let yb = offset_of!(BlockQ8K, bsums);
                let mut facc = [[_mm256_setzero_ps(); R]; 2];
                for b in 0..nb {
                    // SAFETY: block b < nb of the repacked group (`sub` checks it in debug builds,
                    // as `at` does every range below).
                    let xb = unsafe { x.sub(b * BLOCK_BYTES, BLOCK_BYTES) };
                    let mut ys = [Raw::empty(); R];
                    for j in 0..R {
                        // SAFETY: block b < nb of activation row j.
                        ys[j] = unsafe { a[j].sub(b * B8K, B8K) };
                    }
                    let mut isum = [_mm256_setzero_si256(); R];
                    for g in 0..QK_K / 64 {
                        // SAFETY: the 8 scale bytes of groups 2g and 2g + 1, inside the block.
                        let (sc_lo, sc_hi) = unsafe {
                            (
                                _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                    xb.at(OFF_SC + 16 * g, 8).cast(),
                                )),
                                _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                    xb.at(OFF_SC + 16 * g + 8, 8).cast(),
                                )),
                            )
                        };
                        let mut slo = [_mm256_setzero_si256(); R];
                        let mut shi = [_mm256_setzero_si256(); R];
                        for k in 0..8 {
                            // SAFETY: quant vector (g, k) of the block.
                            let v = unsafe {
                                _mm256_loadu_si256(xb.at(OFF_QS + (g * 8 + k) * 32, 32).cast())
                            };
                            let lo = _mm256_and_si256(v, m4);
                            let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                            let o = 64 * g + 4 * k;
                            for j in 0..R {
                                // SAFETY: activation bytes o .. o + 36 < QK_K of the block.
                                let (y0, y1) = unsafe {
                                    (
                                        ys[j].at(yq + o, 4).cast::<i32>().read_unaligned(),
                                        ys[j].at(yq + o + 32, 4).cast::<i32>().read_unaligned(),
                                    )
                                };
                                slo[j] = $dota(slo[j], lo, _mm256_set1_epi32(y0));
                                shi[j] = $dota(shi[j], hi, _mm256_set1_epi32(y1));
                            }
                        }
                        for j in 0..R {
                            let p = _mm256_add_epi32(
                                _mm256_mullo_epi32(slo[j], sc_lo),
                                _mm256_mullo_epi32(shi[j], sc_hi),
                            );
                            isum[j] = _mm256_add_epi32(isum[j], p);
                        }
                    }
                    // SAFETY: the f32 `d`, `dmin` and the 64 min bytes of the block.
                    let (d, dmin, mn01, mn23) = unsafe {
                        (
                            _mm256_loadu_ps(xb.at(OFF_D, 32).cast()),
                            _mm256_loadu_ps(xb.at(OFF_DMIN, 32).cast()),
                            _mm256_loadu_si256(xb.at(OFF_MN, 32).cast()),
                            _mm256_loadu_si256(xb.at(OFF_MN + 32, 32).cast()),
                        )
                    };
                    let mn = [
                        _mm256_cvtepu8_epi16(_mm256_castsi256_si128(mn01)),
                        _mm256_cvtepu8_epi16(_mm256_extracti128_si256(mn01, 1)),
                        _mm256_cvtepu8_epi16(_mm256_castsi256_si128(mn23)),
                        _mm256_cvtepu8_epi16(_mm256_extracti128_si256(mn23, 1)),
                    ];
                    for j in 0..R {
                        // SAFETY: the scale of block b < nb and the block's 16 i16 group sums.
                        let (yd, bs) = unsafe {
                            (*s[j].at(b, 1), _mm256_loadu_si256(ys[j].at(yb, 32).cast()))
                        };
                        // The eight sums of 32 activations, as four i32 lanes of two i16 each.
                        let q8s = _mm_hadd_epi16(
                            _mm256_castsi256_si128(bs),
                            _mm256_extracti128_si256(bs, 1),
                        );
                        let mut msum = _mm256_setzero_si256();
                        msum = $dpw(msum, mn[0], _mm256_set1_epi32(_mm_extract_epi32(q8s, 0)));
                        msum = $dpw(msum, mn[1], _mm256_set1_epi32(_mm_extract_epi32(q8s, 1)));
                        msum = $dpw(msum, mn[2], _mm256_set1_epi32(_mm_extract_epi32(q8s, 2)));
                        msum = $dpw(msum, mn[3], _mm256_set1_epi32(_mm_extract_epi32(q8s, 3)));
                        let ydv = _mm256_set1_ps(yd);
                        let acc = _mm256_fmadd_ps(
                            _mm256_mul_ps(d, ydv),
                            _mm256_cvtepi32_ps(isum[j]),
                            facc[b % 2][j],
                        );
                        facc[b % 2][j] = _mm256_fnmadd_ps(
                            _mm256_mul_ps(dmin, ydv),
                            _mm256_cvtepi32_ps(msum),
                            acc,
                        );
                    }
                }
                for j in 0..R {
                    let v = _mm256_add_ps(facc[0][j], facc[1][j]);
                    // SAFETY: `out[j]` is eight writable f32; `storeu` has no alignment requirement.
                    unsafe { _mm256_storeu_ps(ptr_at_mut(&mut out[j], 0, 8), v) };
                }
            }
        };
    }

    q4k_x8_kernel!(q4k_x8_avx2, "avx2,fma", dota_avx2, dpw_avx2);
    q4k_x8_kernel!(
        q4k_x8_vnni,
        "avx2,fma,avx512vnni,avx512vl",
        dota_vnni,
        dpw_vnni
    );
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::x86::k4_scales_mins;
    use crate::quants::util::scales_mins_k4;

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
            let (sc, mn) = scales_mins_k4(&q);
            let packed = k4_scales_mins(&q.clone().try_into().unwrap());
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
