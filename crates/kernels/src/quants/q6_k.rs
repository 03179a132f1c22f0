//! Q6_K: super-blocks of 256 weights, 4 low bits in `ql`, 2 high bits in `qh`, 8-bit scales per 16
//! and an f16 `d`; multiplied with Q8_K activations. SIMD: the AVX2 row dot, the tiled kernels
//! ([`crate::qgemm`]) and the eight-row repacked kernels ([`crate::qgemm_x8`]), each for AVX2
//! and AVX-512 VNNI.

use std::mem::{offset_of, size_of};

#[cfg(target_arch = "x86_64")]
use crate::cpu::Isa;
#[cfg(target_arch = "x86_64")]
use crate::qgemm::Kernel;
#[cfg(target_arch = "x86_64")]
use crate::qgemm_x8::ROWS;

use super::q8_k::{q8k, Q8K};
use super::util::{
    blocks, make_qx_quants, nearest_int, put_f16, rd_f16, scaled_isum, GROUP_MAX_EPS,
};
use super::{BlockFormat, BlockType, QK_K};
use crate::DType;

/// `block_q6_K`: 256 weights, 4 low bits in `ql`, 2 high bits in `qh`, 8-bit scales per 16.
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: u16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// The Q6K weight type.
pub struct Q6K;

impl BlockFormat for Q6K {
    type Block = BlockQ6K;
    const BLCK_SIZE: usize = QK_K;
    const DTYPE: DType = DType::Q6_K;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ6K, d));
        let ql_all = &b[offset_of!(BlockQ6K, ql)..][..QK_K / 2];
        let qh_all = &b[offset_of!(BlockQ6K, qh)..][..QK_K / 4];
        let sc_all = &b[offset_of!(BlockQ6K, scales)..][..QK_K / 16];
        for n in 0..QK_K / 128 {
            let ql = &ql_all[n * 64..n * 64 + 64];
            let qh = &qh_all[n * 32..n * 32 + 32];
            let sc = &sc_all[n * 8..n * 8 + 8];
            let yb = &mut y[n * 128..n * 128 + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                yb[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                yb[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                yb[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                yb[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
            }
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let mut l = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for (ib, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let scale = make_qx_quants(32, xs, ls);
            scales[ib] = scale;
            if scale.abs() > max_abs_scale {
                max_abs_scale = scale.abs();
                max_scale = scale;
            }
        }
        b.iter_mut().for_each(|v| *v = 0);
        if max_abs_scale < GROUP_MAX_EPS {
            put_f16(b, offset_of!(BlockQ6K, d), 0.0);
            return;
        }
        let iscale = -128.0 / max_scale;
        let d = put_f16(b, offset_of!(BlockQ6K, d), 1.0 / iscale);
        let so = offset_of!(BlockQ6K, scales);
        for (ib, &s) in scales.iter().enumerate() {
            let sc = nearest_int(iscale * s).min(127) as i8;
            b[so + ib] = sc as u8;
            let dl = d * sc as f32;
            if dl == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(x[16 * ib + ii] / dl).clamp(-32, 31);
                l[16 * ib + ii] = (q + 32) as u8;
            }
        }
        let (qlo, qho) = (offset_of!(BlockQ6K, ql), offset_of!(BlockQ6K, qh));
        for (n, j) in (0..QK_K).step_by(128).enumerate() {
            for k in 0..32 {
                let (l0, l1, l2, l3) = (l[j + k], l[j + k + 32], l[j + k + 64], l[j + k + 96]);
                b[qlo + 64 * n + k] = (l0 & 0xf) | ((l2 & 0xf) << 4);
                b[qlo + 64 * n + k + 32] = (l1 & 0xf) | ((l3 & 0xf) << 4);
                b[qho + 32 * n + k] =
                    (l0 >> 4) | ((l1 >> 4) << 2) | ((l2 >> 4) << 4) | ((l3 >> 4) << 6);
            }
        }
    }
}

impl BlockType for Q6K {
    type VecDotType = Q8K;
    super::avx2_vec_dot!();

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q6K>(w, a) {
            let y = q8k(y);
            let ql_all = &x[offset_of!(BlockQ6K, ql)..][..QK_K / 2];
            let qh_all = &x[offset_of!(BlockQ6K, qh)..][..QK_K / 4];
            let mut lv = [0i8; QK_K];
            for n in 0..QK_K / 128 {
                let ql = &ql_all[64 * n..64 * n + 64];
                let qh = &qh_all[32 * n..32 * n + 32];
                let o = &mut lv[128 * n..128 * n + 128];
                for l in 0..32 {
                    o[l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
                    o[l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                    o[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                    o[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                }
            }
            let mut sc = [0i32; 16];
            for (s, &b) in sc
                .iter_mut()
                .zip(&x[offset_of!(BlockQ6K, scales)..][..QK_K / 16])
            {
                *s = i32::from(b as i8);
            }
            let isum = scaled_isum(&lv, &sc, y.qs);
            sumf += rd_f16(x, offset_of!(BlockQ6K, d)) * y.d * isum as f32;
        }
        sumf
    }

    super::x86_tile_hooks!(
        tile: q6_k_avx2, q6_k_vnni;
        repack: BLOCK6_BYTES, repack_q6k_x8;
        x8: q6k_x8_avx2, q6k_x8_vnni
    );
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    // Tiles index weights, activations and accumulators by the same row index.
    #![allow(clippy::needless_range_loop)]

    use std::arch::x86_64::*;
    use std::mem::{offset_of, size_of};

    use super::BlockQ6K;
    use crate::checked::{ptr_at_mut, Raw};
    use crate::qgemm::Tile;
    use crate::qgemm_x8::{interleave, put_f32_of_f16, repack_with, ROWS};
    use crate::quants::q8_k::{q8k, BlockQ8K};
    use crate::quants::simd::{
        dota_avx2, dota_vnni, dpw_avx2, dpw_vnni, f16, hsum2_i32, hsum_i32, ld, ld16, load32,
    };
    use crate::quants::util::rd_f16;
    use crate::quants::QK_K;

    const B6K: usize = size_of::<BlockQ6K>();
    const B8K: usize = size_of::<BlockQ8K>();

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_avx2(w: &[u8], a: &[u8]) -> f32 {
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
                let u = q6_levels(qa, qb, qh);
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

    /// The 128 six-bit levels (0..64) of one half of a Q6_K block, as four vectors of 32: from 64
    /// low-nibble bytes `qa`, `qb` and the 32 bytes `qh` holding two high bits per level.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn q6_levels(qa: __m256i, qb: __m256i, qh: __m256i) -> [__m256i; 4] {
        let m4 = _mm256_set1_epi8(0x0f);
        let m2 = _mm256_set1_epi8(0x03);
        // The two high bits of each level, already at bit 4.
        let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4);
        let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4);
        let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4);
        let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4);
        [
            _mm256_or_si256(_mm256_and_si256(qa, m4), h0),
            _mm256_or_si256(_mm256_and_si256(qb, m4), h1),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m4), h2),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4), h3),
        ]
    }

    /// The Q6_K tile kernel for one set of target features (see Q4_K's); `$dpw` is [`dpw_avx2`] or
    /// [`dpw_vnni`], which give the same integers, so both give the same bits.
    macro_rules! q6k_tile_kernel {
        ($q6k:ident, $feat:literal, $dpw:ident) => {
            /// Q6_K weights × Q8_K activations: per block the exact integer `I = Σ_g sc_g Σ (u − 32)·y`,
            /// computed as `Σ_g sc_g Σ u·y − 32 Σ_g sc_g bsum_g` (exact in i32: |Σ u·y·sc| < 2^23 per
            /// block) with the group sums `bsum_g` of the activation block, then `acc = fma(d_w·d_y,
            /// I, acc)` in f32, block after block (the order of [`crate::qgemm_x8`]'s lanes).
            ///
            /// # Safety
            #[doc = concat!("The CPU has `", $feat, "` and `t` describes readable blocks ([`crate::qgemm::dot_tile`]).")]
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $q6k<const RW: usize, const R: usize>(t: &Tile<RW, R>, out: &mut [[f32; R]; RW]) {
                let mut facc = [[0.0f32; R]; RW];
                let yq = offset_of!(BlockQ8K, qs);
                let yb = offset_of!(BlockQ8K, bsums);
                for b in 0..t.nb {
                    let mut ys = [Raw::empty(); R];
                    for j in 0..R {
                        // SAFETY: block b < nb of activation row j (`sub` checks it in debug
                        // builds, as `ld`, `ld16`, `f16` and `at` do the ranges below).
                        ys[j] = unsafe { t.a[j].sub(b * B8K, B8K) };
                    }
                    let mut xs = [Raw::empty(); RW];
                    let mut sc = [[0i16; 16]; RW];
                    let mut acc = [[_mm256_setzero_si256(); R]; RW];
                    for i in 0..RW {
                        // SAFETY: block b < nb of weight row i, its 16 scale bytes.
                        let x = unsafe { t.w[i].sub(b * B6K, B6K) };
                        xs[i] = x;
                        // SAFETY: as above (`ld16` checks the range in debug builds).
                        let raw = unsafe { ld16(x, offset_of!(BlockQ6K, scales)) };
                        let sc16 = _mm256_cvtepi8_epi16(raw);
                        // SAFETY: `sc[i]` is 32 writable bytes; `storeu` has no alignment requirement.
                        unsafe { _mm256_storeu_si256(ptr_at_mut(&mut sc[i], 0, 16).cast(), sc16) };
                        for j in 0..R {
                            // 32 · Σ_g sc_g · bsum_g, subtracted once instead of 32 from every level.
                            // SAFETY: the 16 i16 group sums of the activation block.
                            let bs = unsafe { ld(ys[j], yb) };
                            acc[i][j] = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
                            acc[i][j] = _mm256_sub_epi32(_mm256_setzero_si256(), acc[i][j]);
                        }
                    }
                    for n in 0..QK_K / 128 {
                        for i in 0..RW {
                            // SAFETY: 64 of the 128 low-bit bytes and 32 of the 64 high-bit bytes.
                            let (qa, qb, qh) = unsafe {
                                (
                                    ld(xs[i], offset_of!(BlockQ6K, ql) + 64 * n),
                                    ld(xs[i], offset_of!(BlockQ6K, ql) + 64 * n + 32),
                                    ld(xs[i], offset_of!(BlockQ6K, qh) + 32 * n),
                                )
                            };
                            let u = q6_levels(qa, qb, qh);
                            for (c, &uc) in u.iter().enumerate() {
                                let g = 8 * n + 2 * c;
                                let scv = _mm256_set_m128i(
                                    _mm_set1_epi16(sc[i][g + 1]),
                                    _mm_set1_epi16(sc[i][g]),
                                );
                                for j in 0..R {
                                    // SAFETY: bytes yq + 128n + 32c + 32 <= yq + QK_K of the block.
                                    let yv = unsafe { ld(ys[j], yq + 128 * n + 32 * c) };
                                    acc[i][j] = $dpw(acc[i][j], _mm256_maddubs_epi16(uc, yv), scv);
                                }
                            }
                        }
                    }
                    for i in 0..RW {
                        // SAFETY: the f16 scale of the weight block.
                        let dw = unsafe { f16(xs[i], offset_of!(BlockQ6K, d)) };
                        for j in 0..R {
                            // SAFETY: the scale of block b < nb.
                            let d = dw * unsafe { *t.s[j].at(b, 1) };
                            let (isum, _) = hsum2_i32(acc[i][j], _mm_setzero_si128());
                            facc[i][j] = d.mul_add(isum as f32, facc[i][j]);
                        }
                    }
                }
                *out = facc;
            }
        };
    }

    q6k_tile_kernel!(q6_k_avx2, "avx2,fma,f16c", dpw_avx2);
    q6k_tile_kernel!(q6_k_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", dpw_vnni);

    // One repacked Q6_K block of eight rows: `d` as f32 (8), the 16 group scales as bytes
    // `[group][row]` and as byte pairs `[pair][row][2]`, then the levels 0..64 as whole bytes, 64
    // vectors `[group g][k][row][4 levels]` (levels 16g + 4k .. 16g + 4k + 4 of each row).
    // One repacked Q6_K block of eight rows: `d` as f32 (8), the 16 group scales as bytes
    // `[group][row]` and as byte pairs `[pair][row][2]`, then the levels 0..64 as whole bytes, 64
    // vectors `[group g][k][row][4 levels]` (levels 16g + 4k .. 16g + 4k + 4 of each row).
    const OFF6_D: usize = 0;
    const OFF6_SC: usize = 32;
    const OFF6_SCP: usize = 160;
    const OFF6_Q: usize = 288;
    /// Bytes of one repacked Q6_K block of eight rows.
    pub(super) const BLOCK6_BYTES: usize = OFF6_Q + ROWS * QK_K;

    /// Repacks blocks `0..nb` of eight Q6_K rows into `dst` (`nb * BLOCK6_BYTES` bytes).
    pub(super) fn repack_q6k_x8(rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
        repack_with(rows, nb, (B6K, BLOCK6_BYTES), dst, |x, r, out| {
            put_f32_of_f16(x, offset_of!(BlockQ6K, d), r, out, OFF6_D);
            let sc = &x[offset_of!(BlockQ6K, scales)..][..QK_K / 16];
            for (g, &v) in sc.iter().enumerate() {
                out[OFF6_SC + 8 * g + r] = v;
                out[OFF6_SCP + 16 * (g / 2) + 2 * r + g % 2] = v;
            }
            // The levels in `crate::qdot`'s order: 128 per half, from 64 low-nibble bytes and 32
            // bytes of high bit pairs.
            let ql_all = &x[offset_of!(BlockQ6K, ql)..][..QK_K / 2];
            let qh_all = &x[offset_of!(BlockQ6K, qh)..][..QK_K / 4];
            let mut lv = [0u8; QK_K];
            for n in 0..QK_K / 128 {
                let (ql, qh) = (&ql_all[64 * n..64 * n + 64], &qh_all[32 * n..32 * n + 32]);
                let o = &mut lv[128 * n..128 * n + 128];
                for l in 0..32 {
                    o[l] = (ql[l] & 0x0f) | ((qh[l] & 3) << 4);
                    o[l + 32] = (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
                    o[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                    o[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                }
            }
            interleave(&lv, r, out, OFF6_Q);
        });
    }

    /// The Q6_K kernel for one instruction set; `$dota` and `$dpw` give the same integers on every set.
    macro_rules! q6k_x8_kernel {
        ($name:ident, $feat:literal, $dota:ident, $dpw:ident) => {
            /// Eight repacked Q6_K rows × `R` Q8_K activation rows: per block and row the exact
            /// `I = Σ_g sc_g Σ u·y − 32 Σ_g sc_g bsum_g`, then `acc = fma(d_w·d_y, I, acc)`.
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
                let x = Raw::from_raw(x, nb * BLOCK6_BYTES);
                let a = Raw::from_raw_each(a, nb * B8K);
                let s = Raw::from_raw_each(s, nb);
                let yq = offset_of!(BlockQ8K, qs);
                let yb = offset_of!(BlockQ8K, bsums);
                let mut facc = [_mm256_setzero_ps(); R];
                for b in 0..nb {
                    // SAFETY: block b < nb of the repacked group (`sub` checks it in debug builds,
                    // as `at` does every range below).
                    let xb = unsafe { x.sub(b * BLOCK6_BYTES, BLOCK6_BYTES) };
                    let mut ys = [Raw::empty(); R];
                    for j in 0..R {
                        // SAFETY: block b < nb of activation row j.
                        ys[j] = unsafe { a[j].sub(b * B8K, B8K) };
                    }
                    let mut isum = [_mm256_setzero_si256(); R];
                    for g in 0..QK_K / 16 {
                        // SAFETY: the 8 scale bytes of group g, inside the block.
                        let scv = _mm256_cvtepi8_epi32(unsafe {
                            _mm_loadl_epi64(xb.at(OFF6_SC + 8 * g, 8).cast())
                        });
                        let mut gs = [_mm256_setzero_si256(); R];
                        for k in 0..4 {
                            // SAFETY: level vector (g, k) of the block.
                            let v = unsafe {
                                _mm256_loadu_si256(xb.at(OFF6_Q + (g * 4 + k) * 32, 32).cast())
                            };
                            let o = 16 * g + 4 * k;
                            for j in 0..R {
                                // SAFETY: activation bytes o .. o + 4 <= QK_K of the block (`at`
                                // checks the range in debug builds).
                                let yp = unsafe { ys[j].at(yq + o, 4) }.cast::<i32>();
                                // SAFETY: as above; `read_unaligned` needs no alignment.
                                let y = unsafe { yp.read_unaligned() };
                                gs[j] = $dota(gs[j], v, _mm256_set1_epi32(y));
                            }
                        }
                        for j in 0..R {
                            isum[j] = _mm256_add_epi32(isum[j], _mm256_mullo_epi32(gs[j], scv));
                        }
                    }
                    // SAFETY: the f32 `d` and the 128 scale-pair bytes of the block.
                    let (d, scp) = unsafe {
                        (
                            _mm256_loadu_ps(xb.at(OFF6_D, 32).cast()),
                            [
                                _mm256_loadu_si256(xb.at(OFF6_SCP, 32).cast()),
                                _mm256_loadu_si256(xb.at(OFF6_SCP + 32, 32).cast()),
                                _mm256_loadu_si256(xb.at(OFF6_SCP + 64, 32).cast()),
                                _mm256_loadu_si256(xb.at(OFF6_SCP + 96, 32).cast()),
                            ],
                        )
                    };
                    let sp = [
                        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(scp[0])),
                        _mm256_cvtepi8_epi16(_mm256_extracti128_si256(scp[0], 1)),
                        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(scp[1])),
                        _mm256_cvtepi8_epi16(_mm256_extracti128_si256(scp[1], 1)),
                        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(scp[2])),
                        _mm256_cvtepi8_epi16(_mm256_extracti128_si256(scp[2], 1)),
                        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(scp[3])),
                        _mm256_cvtepi8_epi16(_mm256_extracti128_si256(scp[3], 1)),
                    ];
                    for j in 0..R {
                        // SAFETY: the scale of block b < nb and the block's 16 i16 group sums.
                        let (yd, bs) = unsafe {
                            (*s[j].at(b, 1), _mm256_loadu_si256(ys[j].at(yb, 32).cast()))
                        };
                        // Σ_g sc_g bsum_g, two groups per i32 lane of `bs`.
                        let lo = _mm256_castsi256_si128(bs);
                        let hi = _mm256_extracti128_si256(bs, 1);
                        let mut c = _mm256_setzero_si256();
                        c = $dpw(c, sp[0], _mm256_set1_epi32(_mm_extract_epi32(lo, 0)));
                        c = $dpw(c, sp[1], _mm256_set1_epi32(_mm_extract_epi32(lo, 1)));
                        c = $dpw(c, sp[2], _mm256_set1_epi32(_mm_extract_epi32(lo, 2)));
                        c = $dpw(c, sp[3], _mm256_set1_epi32(_mm_extract_epi32(lo, 3)));
                        c = $dpw(c, sp[4], _mm256_set1_epi32(_mm_extract_epi32(hi, 0)));
                        c = $dpw(c, sp[5], _mm256_set1_epi32(_mm_extract_epi32(hi, 1)));
                        c = $dpw(c, sp[6], _mm256_set1_epi32(_mm_extract_epi32(hi, 2)));
                        c = $dpw(c, sp[7], _mm256_set1_epi32(_mm_extract_epi32(hi, 3)));
                        let i = _mm256_sub_epi32(isum[j], _mm256_slli_epi32(c, 5));
                        let dv = _mm256_mul_ps(d, _mm256_set1_ps(yd));
                        facc[j] = _mm256_fmadd_ps(dv, _mm256_cvtepi32_ps(i), facc[j]);
                    }
                }
                for j in 0..R {
                    // SAFETY: `out[j]` is eight writable f32; `storeu` has no alignment requirement.
                    unsafe { _mm256_storeu_ps(ptr_at_mut(&mut out[j], 0, 8), facc[j]) };
                }
            }
        };
    }

    q6k_x8_kernel!(q6k_x8_avx2, "avx2,fma", dota_avx2, dpw_avx2);
    q6k_x8_kernel!(
        q6k_x8_vnni,
        "avx2,fma,avx512vnni,avx512vl",
        dota_vnni,
        dpw_vnni
    );
}
