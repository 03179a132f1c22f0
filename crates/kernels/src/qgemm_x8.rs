//! Q4_1, Q4_K, Q6_K and Q8_0 weights repacked eight rows at a time for batched products
//! (prefill): every 32-byte vector holds four quants of each of eight rows, so one `vpdpbusd` (or
//! `maddubs` + `madd` on AVX2) against four broadcast activation bytes advances eight rows' sums,
//! one per i32 lane. The per-group scales, the mins (Q4_K) or offset (Q6_K) correction and the
//! f32 work are then vector operations shared by eight rows instead of being paid per (row,
//! activation) pair.
//!
//! A task repacks its rows once ([`repack`]) into scratch memory and streams every
//! activation row past them, so the repacking is paid once per batch; the stored weights keep
//! GGUF's layout (decode reads them directly).
//!
//! Lane `r` computes exactly what [`crate::qgemm`]'s kernels compute for row `r`: the exact
//! integer sums of a block, then fused multiply-adds in f32, block after block. Results are
//! therefore the same bits whatever the layout, tile or batch size.

// Tiles index weights, activations and accumulators by the same row index.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::mem::offset_of;

use crate::qdot::{BlockQ8K, BlockQ8_1};
use crate::qgemm::{dpw_avx2, dpw_vnni, Isa};
use crate::quant::{BlockQ4K, BlockQ4_1, BlockQ6K, BlockQ8_0, QuantType, QK_K};

/// Rows per repacked group.
pub(crate) const ROWS: usize = 8;

const B4K: usize = size_of::<BlockQ4K>();
const B6K: usize = size_of::<BlockQ6K>();
const B80: usize = size_of::<BlockQ8_0>();
const B41: usize = size_of::<BlockQ4_1>();
const B81: usize = size_of::<BlockQ8_1>();
const B8K: usize = size_of::<BlockQ8K>();

// One repacked block of eight rows: `d` and `dmin` as f32 (8 each), the eight group scales as
// bytes `[group][row]`, the mins as byte pairs `[pair][row][2]`, then the quants as 32 vectors
// `[half-group pair g][k][row][4 bytes]` (bytes 4k..4k+4 of each row's 32 quant bytes 32g..32g+32).
const OFF_D: usize = 0;
const OFF_DMIN: usize = 32;
const OFF_SC: usize = 64;
const OFF_MN: usize = 128;
const OFF_QS: usize = 192;
/// Bytes of one repacked Q4_K block of eight rows.
const BLOCK_BYTES: usize = OFF_QS + ROWS * QK_K / 2;

// One repacked Q6_K block of eight rows: `d` as f32 (8), the 16 group scales as bytes
// `[group][row]` and as byte pairs `[pair][row][2]`, then the levels 0..64 as whole bytes, 64
// vectors `[group g][k][row][4 levels]` (levels 16g + 4k .. 16g + 4k + 4 of each row).
const OFF6_D: usize = 0;
const OFF6_SC: usize = 32;
const OFF6_SCP: usize = 160;
const OFF6_Q: usize = 288;
/// Bytes of one repacked Q6_K block of eight rows.
const BLOCK6_BYTES: usize = OFF6_Q + ROWS * QK_K;

// One repacked Q8_0 block of eight rows: `d` as f32 (8), then the quants as 8 vectors
// `[k][row][4 bytes]` (bytes 4k..4k+4 of each row's 32).
const OFF8_Q: usize = 32;
/// Bytes of one repacked Q8_0 block of eight rows.
const BLOCK8_BYTES: usize = OFF8_Q + ROWS * 32;

// One repacked Q4_1 block of eight rows: `d` and `m` as f32 (8 each), then the 16 quant bytes
// of each row as 4 vectors `[k][row][4 bytes]` (bytes 4k..4k+4: weights 4k.. in the low nibbles,
// 16 + 4k.. in the high ones).
const OFF1_M: usize = 32;
const OFF1_Q: usize = 64;
/// Bytes of one repacked Q4_1 block of eight rows.
const BLOCK1_BYTES: usize = OFF1_Q + ROWS * 16;

/// Whether batched products of `ty` repack its weights here.
pub(crate) fn repacks(ty: QuantType) -> bool {
    matches!(
        ty,
        QuantType::Q4_1 | QuantType::Q4K | QuantType::Q6K | QuantType::Q8_0
    )
}

/// Bytes of `nb` repacked blocks of eight rows of `ty` (one of [`repacks`]).
pub(crate) fn group_bytes(ty: QuantType, nb: usize) -> usize {
    nb * match ty {
        QuantType::Q6K => BLOCK6_BYTES,
        QuantType::Q8_0 => BLOCK8_BYTES,
        QuantType::Q4_1 => BLOCK1_BYTES,
        _ => BLOCK_BYTES,
    }
}

/// Repacks blocks `0..nb` of eight rows of `ty` (one of [`repacks`]) into `dst`
/// ([`group_bytes`]`(ty, nb)` bytes).
///
/// # Panics
/// If a row holds fewer than `nb` blocks or `dst` is shorter (callers pass checked lengths).
pub(crate) fn repack(ty: QuantType, rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
    match ty {
        QuantType::Q6K => repack_q6k_x8(rows, nb, dst),
        QuantType::Q8_0 => repack_q8_0_x8(rows, nb, dst),
        QuantType::Q4_1 => repack_q4_1_x8(rows, nb, dst),
        _ => repack_q4k_x8(rows, nb, dst),
    }
}

/// Whether the kernels of `ty` on `isa` read the activation blocks' sums ([`act_sums`]).
pub(crate) fn needs_sums(ty: QuantType, isa: Isa) -> bool {
    ty == QuantType::Q8_0 && isa == Isa::Vnni
}

/// `−128 · Σ y` of every Q8_0 activation block of `act` (the correction of the VNNI kernel, which
/// multiplies `x + 128` by `y`), appended to `out`.
pub(crate) fn act_sums(act: &[u8], out: &mut Vec<i32>) {
    let off = offset_of!(BlockQ8_0, qs);
    for b in act.chunks_exact(B80) {
        let s: i32 = b[off..off + 32].iter().map(|&v| i32::from(v as i8)).sum();
        out.push(-128 * s);
    }
}

/// Runs `one(block, r, out)` for block `b < nb` of every row `r` (`in_bytes` each), `out` the
/// `b`-th `out_bytes` of `dst`.
fn repack_with(
    rows: [&[u8]; ROWS],
    nb: usize,
    (in_bytes, out_bytes): (usize, usize),
    dst: &mut [u8],
    one: impl Fn(&[u8], usize, &mut [u8]),
) {
    for (b, out) in dst[..nb * out_bytes]
        .chunks_exact_mut(out_bytes)
        .enumerate()
    {
        for (r, row) in rows.iter().enumerate() {
            one(&row[b * in_bytes..(b + 1) * in_bytes], r, out);
        }
    }
}

/// The groups of four bytes of `src` (row `r`'s) into `out` from `off` on, group `k` at
/// `[k][row]`: every 32 bytes then hold group `k` of all eight rows.
fn interleave(src: &[u8], r: usize, out: &mut [u8], off: usize) {
    for (k, four) in src.chunks_exact(4).enumerate() {
        let o = off + (k * ROWS + r) * 4;
        out[o..o + 4].copy_from_slice(four);
    }
}

/// The f16 at `x[o..o + 2]` as f32 bytes, written at `out[off + 4r..]`.
fn put_f16(x: &[u8], o: usize, r: usize, out: &mut [u8], off: usize) {
    let v = crate::convert::f16_to_f32(u16::from_le_bytes([x[o], x[o + 1]]));
    out[off + 4 * r..off + 4 * r + 4].copy_from_slice(&v.to_le_bytes());
}

/// Repacks blocks `0..nb` of eight Q4_1 rows into `dst` (`nb * BLOCK1_BYTES` bytes).
fn repack_q4_1_x8(rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
    repack_with(rows, nb, (B41, BLOCK1_BYTES), dst, |x, r, out| {
        put_f16(x, offset_of!(BlockQ4_1, d), r, out, 0);
        put_f16(x, offset_of!(BlockQ4_1, m), r, out, OFF1_M);
        interleave(&x[offset_of!(BlockQ4_1, qs)..][..16], r, out, OFF1_Q);
    });
}

/// Repacks blocks `0..nb` of eight Q8_0 rows into `dst` (`nb * BLOCK8_BYTES` bytes).
fn repack_q8_0_x8(rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
    repack_with(rows, nb, (B80, BLOCK8_BYTES), dst, |x, r, out| {
        put_f16(x, offset_of!(BlockQ8_0, d), r, out, 0);
        interleave(&x[offset_of!(BlockQ8_0, qs)..][..32], r, out, OFF8_Q);
    });
}

/// `out[j][r]` = row `r` of the repacked group `packed` (`nb` blocks of `ty`) · activation row
/// `acts[j]` (Q8_K, Q8_0 or Q8_1; `scales[j]` its [`crate::qgemm::act_scales`]; `sums[j]` its
/// [`act_sums`] where [`needs_sums`], else unread), with the kernels of `isa`.
///
/// # Safety
/// `isa` must be an instruction set this CPU runs ([`crate::qgemm::isas`]).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile<const R: usize>(
    isa: Isa,
    ty: QuantType,
    packed: &[u8],
    nb: usize,
    acts: [&[u8]; R],
    scales: [&[f32]; R],
    sums: [&[i32]; R],
    out: &mut [[f32; ROWS]; R],
) {
    // The kernels read `nb` blocks of everything unchecked.
    assert!(repacks(ty) && packed.len() >= group_bytes(ty, nb));
    let (ab, spb) = match ty {
        QuantType::Q8_0 => (B80, 1),
        QuantType::Q4_1 => (B81, 2),
        _ => (B8K, 1),
    };
    let mut a = [std::ptr::null::<u8>(); R];
    let mut s = [std::ptr::null::<f32>(); R];
    let mut c = [std::ptr::null::<i32>(); R];
    for j in 0..R {
        assert!(acts[j].len() >= nb * ab && scales[j].len() >= nb * spb);
        assert!(!needs_sums(ty, isa) || sums[j].len() >= nb);
        a[j] = acts[j].as_ptr();
        s[j] = scales[j].as_ptr();
        c[j] = sums[j].as_ptr();
    }
    let x = packed.as_ptr();
    // SAFETY: the sizes are asserted above; the caller guarantees `isa`.
    unsafe {
        match (ty, isa) {
            (QuantType::Q6K, Isa::Avx2) => q6k_x8_avx2::<R>(x, nb, a, s, out),
            (QuantType::Q6K, Isa::Vnni) => q6k_x8_vnni::<R>(x, nb, a, s, out),
            (QuantType::Q8_0, Isa::Avx2) => q8_0_x8_avx2::<R>(x, nb, a, s, out),
            (QuantType::Q8_0, Isa::Vnni) => q8_0_x8_vnni::<R>(x, nb, a, s, c, out),
            (QuantType::Q4_1, Isa::Avx2) => q4_1_x8_avx2::<R>(x, nb, a, s, out),
            (QuantType::Q4_1, Isa::Vnni) => q4_1_x8_vnni::<R>(x, nb, a, s, out),
            (_, Isa::Avx2) => q4k_x8_avx2::<R>(x, nb, a, s, out),
            (_, Isa::Vnni) => q4k_x8_vnni::<R>(x, nb, a, s, out),
        }
    }
}

/// Repacks blocks `0..nb` of eight Q6_K rows into `dst` (`nb * BLOCK6_BYTES` bytes).
fn repack_q6k_x8(rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
    repack_with(rows, nb, (B6K, BLOCK6_BYTES), dst, |x, r, out| {
        put_f16(x, offset_of!(BlockQ6K, d), r, out, OFF6_D);
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

/// Repacks blocks `0..nb` of eight Q4_K rows into `dst` (`nb * BLOCK_BYTES` bytes).
fn repack_q4k_x8(rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
    repack_with(rows, nb, (B4K, BLOCK_BYTES), dst, |x, r, out| {
        put_f16(x, offset_of!(BlockQ4K, d), r, out, OFF_D);
        put_f16(x, offset_of!(BlockQ4K, dmin), r, out, OFF_DMIN);
        let so = offset_of!(BlockQ4K, scales);
        let (sc, mn) = crate::qdot::scales_mins_k4(&x[so..so + 12]);
        for g in 0..8 {
            // 6-bit values.
            out[OFF_SC + 8 * g + r] = sc[g] as u8;
            out[OFF_MN + 16 * (g / 2) + 2 * r + g % 2] = mn[g] as u8;
        }
        // Vector g·8 + k: bytes 4k..4k+4 of each row's quant bytes 32g..32g+32.
        interleave(&x[offset_of!(BlockQ4K, qs)..][..QK_K / 2], r, out, OFF_QS);
    });
}

/// `acc` plus the 32 products of unsigned bytes `u` and signed bytes `s`, summed in fours into
/// eight i32 lanes: `maddubs` then `madd` with ones. Exact while two adjacent products stay within
/// i16, which every caller guarantees (levels below 64 against any byte; |x| ≤ 128 against
/// activations in −127..=127).
#[inline]
#[target_feature(enable = "avx2")]
fn dota_avx2(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    _mm256_add_epi32(
        acc,
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)),
    )
}

/// [`dota_avx2`] in one instruction (`vpdpbusd`): the same i32 lanes.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
fn dota_vnni(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(acc, u, s)
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
        unsafe fn $name<const R: usize>(
            x: *const u8,
            nb: usize,
            a: [*const u8; R],
            s: [*const f32; R],
            out: &mut [[f32; ROWS]; R],
        ) {
            let m4 = _mm256_set1_epi8(0x0f);
            let yq = offset_of!(BlockQ8K, qs);
            let yb = offset_of!(BlockQ8K, bsums);
            let mut facc = [[_mm256_setzero_ps(); R]; 2];
            for b in 0..nb {
                // SAFETY: block b < nb of the repacked group.
                let xb = unsafe { x.add(b * BLOCK_BYTES) };
                let mut ys = [std::ptr::null::<u8>(); R];
                for j in 0..R {
                    // SAFETY: block b < nb of activation row j, its quants.
                    ys[j] = unsafe { a[j].add(b * B8K + yq) };
                }
                let mut isum = [_mm256_setzero_si256(); R];
                for g in 0..QK_K / 64 {
                    // SAFETY: the 8 scale bytes of groups 2g and 2g + 1, inside the block.
                    let (sc_lo, sc_hi) = unsafe {
                        (
                            _mm256_cvtepu8_epi32(_mm_loadl_epi64(xb.add(OFF_SC + 16 * g).cast())),
                            _mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                xb.add(OFF_SC + 16 * g + 8).cast(),
                            )),
                        )
                    };
                    let mut slo = [_mm256_setzero_si256(); R];
                    let mut shi = [_mm256_setzero_si256(); R];
                    for k in 0..8 {
                        // SAFETY: quant vector (g, k) of the block.
                        let v =
                            unsafe { _mm256_loadu_si256(xb.add(OFF_QS + (g * 8 + k) * 32).cast()) };
                        let lo = _mm256_and_si256(v, m4);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                        let o = 64 * g + 4 * k;
                        for j in 0..R {
                            // SAFETY: activation bytes o .. o + 36 < QK_K of the block.
                            let (y0, y1) = unsafe {
                                (
                                    ys[j].add(o).cast::<i32>().read_unaligned(),
                                    ys[j].add(o + 32).cast::<i32>().read_unaligned(),
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
                        _mm256_loadu_ps(xb.add(OFF_D).cast()),
                        _mm256_loadu_ps(xb.add(OFF_DMIN).cast()),
                        _mm256_loadu_si256(xb.add(OFF_MN).cast()),
                        _mm256_loadu_si256(xb.add(OFF_MN + 32).cast()),
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
                    let (yd, bs) =
                        unsafe { (*s[j].add(b), _mm256_loadu_si256(ys[j].add(yb - yq).cast())) };
                    // The eight sums of 32 activations, as four i32 lanes of two i16 each.
                    let q8s =
                        _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
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
                    facc[b % 2][j] =
                        _mm256_fnmadd_ps(_mm256_mul_ps(dmin, ydv), _mm256_cvtepi32_ps(msum), acc);
                }
            }
            for j in 0..R {
                let v = _mm256_add_ps(facc[0][j], facc[1][j]);
                // SAFETY: `out[j]` is eight writable f32; `storeu` has no alignment requirement.
                unsafe { _mm256_storeu_ps(out[j].as_mut_ptr(), v) };
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
        unsafe fn $name<const R: usize>(
            x: *const u8,
            nb: usize,
            a: [*const u8; R],
            s: [*const f32; R],
            out: &mut [[f32; ROWS]; R],
        ) {
            let yq = offset_of!(BlockQ8K, qs);
            let yb = offset_of!(BlockQ8K, bsums);
            let mut facc = [_mm256_setzero_ps(); R];
            for b in 0..nb {
                // SAFETY: block b < nb of the repacked group.
                let xb = unsafe { x.add(b * BLOCK6_BYTES) };
                let mut ys = [std::ptr::null::<u8>(); R];
                for j in 0..R {
                    // SAFETY: block b < nb of activation row j, its quants.
                    ys[j] = unsafe { a[j].add(b * B8K + yq) };
                }
                let mut isum = [_mm256_setzero_si256(); R];
                for g in 0..QK_K / 16 {
                    // SAFETY: the 8 scale bytes of group g, inside the block.
                    let scv = _mm256_cvtepi8_epi32(unsafe {
                        _mm_loadl_epi64(xb.add(OFF6_SC + 8 * g).cast())
                    });
                    let mut gs = [_mm256_setzero_si256(); R];
                    for k in 0..4 {
                        // SAFETY: level vector (g, k) of the block.
                        let v =
                            unsafe { _mm256_loadu_si256(xb.add(OFF6_Q + (g * 4 + k) * 32).cast()) };
                        let o = 16 * g + 4 * k;
                        for j in 0..R {
                            // SAFETY: activation bytes o .. o + 4 <= QK_K of the block.
                            let y = unsafe { ys[j].add(o).cast::<i32>().read_unaligned() };
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
                        _mm256_loadu_ps(xb.add(OFF6_D).cast()),
                        [
                            _mm256_loadu_si256(xb.add(OFF6_SCP).cast()),
                            _mm256_loadu_si256(xb.add(OFF6_SCP + 32).cast()),
                            _mm256_loadu_si256(xb.add(OFF6_SCP + 64).cast()),
                            _mm256_loadu_si256(xb.add(OFF6_SCP + 96).cast()),
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
                    let (yd, bs) =
                        unsafe { (*s[j].add(b), _mm256_loadu_si256(ys[j].add(yb - yq).cast())) };
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
                unsafe { _mm256_storeu_ps(out[j].as_mut_ptr(), facc[j]) };
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

/// Eight repacked Q8_0 rows × `R` Q8_0 activation rows (AVX2): per block and row the exact
/// `I = Σ x·y` as `Σ |x|·sign(y, x)` (`maddubs`, exact while activations stay in −127..=127, as
/// the quantizer writes them), then `fma(d_w·d_y, I, ·)` into the even or odd blocks' sum, and
/// their sum at the end: the order of [`crate::qgemm`]'s Q8_0 kernels.
///
/// # Safety
/// The CPU has AVX2 and FMA; `x` points to `nb` repacked blocks, `a[j]` to `nb` Q8_0 blocks and
/// `s[j]` to `nb` scales.
#[target_feature(enable = "avx2,fma")]
unsafe fn q8_0_x8_avx2<const R: usize>(
    x: *const u8,
    nb: usize,
    a: [*const u8; R],
    s: [*const f32; R],
    out: &mut [[f32; ROWS]; R],
) {
    let yq = offset_of!(BlockQ8_0, qs);
    let mut facc = [[_mm256_setzero_ps(); R]; 2];
    for b in 0..nb {
        // SAFETY: block b < nb of the repacked group.
        let xb = unsafe { x.add(b * BLOCK8_BYTES) };
        let mut xv = [_mm256_setzero_si256(); 8];
        let mut ax = [_mm256_setzero_si256(); 8];
        for k in 0..8 {
            // SAFETY: quant vector k of the block.
            xv[k] = unsafe { _mm256_loadu_si256(xb.add(OFF8_Q + 32 * k).cast()) };
            ax[k] = _mm256_sign_epi8(xv[k], xv[k]);
        }
        // SAFETY: the f32 `d` of the block.
        let d = unsafe { _mm256_loadu_ps(xb.cast()) };
        for j in 0..R {
            // SAFETY: block b < nb of activation row j, its quants and scale.
            let (y, yd) = unsafe { (a[j].add(b * B80 + yq), *s[j].add(b)) };
            let mut i = _mm256_setzero_si256();
            for k in 0..8 {
                // SAFETY: activation bytes 4k .. 4k + 4 of the block's 32.
                let yk = _mm256_set1_epi32(unsafe { y.add(4 * k).cast::<i32>().read_unaligned() });
                i = dota_avx2(i, ax[k], _mm256_sign_epi8(yk, xv[k]));
            }
            let dd = _mm256_mul_ps(d, _mm256_set1_ps(yd));
            facc[b % 2][j] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(i), facc[b % 2][j]);
        }
    }
    for j in 0..R {
        let v = _mm256_add_ps(facc[0][j], facc[1][j]);
        // SAFETY: `out[j]` is eight writable f32; `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_ps(out[j].as_mut_ptr(), v) };
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
unsafe fn q8_0_x8_vnni<const R: usize>(
    x: *const u8,
    nb: usize,
    a: [*const u8; R],
    s: [*const f32; R],
    c: [*const i32; R],
    out: &mut [[f32; ROWS]; R],
) {
    let yq = offset_of!(BlockQ8_0, qs);
    let bias = _mm256_set1_epi8(-128);
    let mut facc = [[_mm256_setzero_ps(); R]; 2];
    for b in 0..nb {
        // SAFETY: block b < nb of the repacked group.
        let xb = unsafe { x.add(b * BLOCK8_BYTES) };
        let mut ux = [_mm256_setzero_si256(); 8];
        for k in 0..8 {
            // SAFETY: quant vector k of the block.
            let v = unsafe { _mm256_loadu_si256(xb.add(OFF8_Q + 32 * k).cast()) };
            ux[k] = _mm256_xor_si256(v, bias);
        }
        // SAFETY: the f32 `d` of the block.
        let d = unsafe { _mm256_loadu_ps(xb.cast()) };
        for j in 0..R {
            // SAFETY: block b < nb of activation row j, its quants, scale and sum.
            let (y, yd, c0) = unsafe { (a[j].add(b * B80 + yq), *s[j].add(b), *c[j].add(b)) };
            let mut i = _mm256_set1_epi32(c0);
            for k in 0..8 {
                // SAFETY: activation bytes 4k .. 4k + 4 of the block's 32.
                let yk = _mm256_set1_epi32(unsafe { y.add(4 * k).cast::<i32>().read_unaligned() });
                i = _mm256_dpbusd_epi32(i, ux[k], yk);
            }
            let dd = _mm256_mul_ps(d, _mm256_set1_ps(yd));
            facc[b % 2][j] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(i), facc[b % 2][j]);
        }
    }
    for j in 0..R {
        let v = _mm256_add_ps(facc[0][j], facc[1][j]);
        // SAFETY: `out[j]` is eight writable f32; `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_ps(out[j].as_mut_ptr(), v) };
    }
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
        unsafe fn $name<const R: usize>(
            x: *const u8,
            nb: usize,
            a: [*const u8; R],
            s: [*const f32; R],
            out: &mut [[f32; ROWS]; R],
        ) {
            let yq = offset_of!(BlockQ8_1, qs);
            let m4 = _mm256_set1_epi8(0x0f);
            let mut facc = [[_mm256_setzero_ps(); R]; 2];
            let mut sm = [[_mm256_setzero_ps(); R]; 2];
            for b in 0..nb {
                // SAFETY: block b < nb of the repacked group.
                let xb = unsafe { x.add(b * BLOCK1_BYTES) };
                let mut lo = [_mm256_setzero_si256(); 4];
                let mut hi = [_mm256_setzero_si256(); 4];
                for k in 0..4 {
                    // SAFETY: quant vector k of the block.
                    let v = unsafe { _mm256_loadu_si256(xb.add(OFF1_Q + 32 * k).cast()) };
                    lo[k] = _mm256_and_si256(v, m4);
                    hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                }
                // SAFETY: the f32 `d` and `m` of the block.
                let (d, m) = unsafe {
                    (
                        _mm256_loadu_ps(xb.cast()),
                        _mm256_loadu_ps(xb.add(OFF1_M).cast()),
                    )
                };
                for j in 0..R {
                    // SAFETY: block b < nb of activation row j, its quants and two scales.
                    let (y, yd, ys) = unsafe {
                        (
                            a[j].add(b * B81 + yq),
                            *s[j].add(2 * b),
                            *s[j].add(2 * b + 1),
                        )
                    };
                    let mut i = _mm256_setzero_si256();
                    for k in 0..4 {
                        // SAFETY: activation bytes 4k .. 4k + 4 and 16 + 4k .. 20 + 4k of 32.
                        let (y0, y1) = unsafe {
                            (
                                y.add(4 * k).cast::<i32>().read_unaligned(),
                                y.add(16 + 4 * k).cast::<i32>().read_unaligned(),
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
                unsafe { _mm256_storeu_ps(out[j].as_mut_ptr(), v) };
            }
        }
    };
}

q4_1_x8_kernel!(q4_1_x8_avx2, "avx2,fma", dota_avx2);
q4_1_x8_kernel!(q4_1_x8_vnni, "avx2,fma,avx512vnni,avx512vl", dota_vnni);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qgemm::{act_scales, dot_tile_isa, isas};

    /// Every repacked row equals the GGUF-layout kernels bit for bit, on every instruction set,
    /// for tiles of four activation rows and of one.
    #[test]
    fn repacked_rows_equal_the_gguf_layout_kernels_bit_for_bit() {
        for ty in [
            QuantType::Q4_1,
            QuantType::Q4K,
            QuantType::Q6K,
            QuantType::Q8_0,
        ] {
            if crate::qgemm::available(ty) {
                repacked_rows_match(ty);
            }
        }
    }

    fn repacked_rows_match(ty: QuantType) {
        use crate::qdot::{quantize_activations, vec_dot_type};
        use crate::quantize::quantize_to_vec;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let k = matches!(ty, QuantType::Q4K | QuantType::Q6K);
        let cols_list: &[usize] = if k { &[256, 1024] } else { &[96, 256, 1024] };
        for &cols in cols_list {
            let nb = cols / if k { QK_K } else { 32 };
            // Rows of very different magnitudes, so that some blocks have large scales and mins.
            let ws: Vec<Vec<u8>> = (0..ROWS)
                .map(|r| {
                    let m = [0.01f32, 1.0, 40.0, 0.3][r % 4];
                    let w: Vec<f32> = (0..cols).map(|_| m * rnd()).collect();
                    quantize_to_vec(ty, &w).unwrap()
                })
                .collect();
            let acts: Vec<Vec<u8>> = (0..4)
                .map(|j| {
                    let m = [1.0f32, 100.0, 0.001, 5.0][j];
                    let x: Vec<f32> = (0..cols).map(|_| m * rnd()).collect();
                    quantize_activations(vec_dot_type(ty), &x).unwrap()
                })
                .collect();
            let scales: Vec<Vec<f32>> = acts
                .iter()
                .map(|a| {
                    let mut v = Vec::new();
                    act_scales(ty, a, &mut v);
                    v
                })
                .collect();
            let sums: Vec<Vec<i32>> = acts
                .iter()
                .map(|a| {
                    let mut v = Vec::new();
                    if ty == QuantType::Q8_0 {
                        act_sums(a, &mut v);
                    }
                    v
                })
                .collect();
            let mut packed = vec![0u8; group_bytes(ty, nb)];
            repack(ty, std::array::from_fn(|r| &ws[r][..]), nb, &mut packed);
            for isa in isas() {
                let mut four = [[0.0f32; ROWS]; 4];
                // SAFETY: `isa` comes from `isas()`.
                unsafe {
                    tile::<4>(
                        isa,
                        ty,
                        &packed,
                        nb,
                        std::array::from_fn(|j| &acts[j][..]),
                        std::array::from_fn(|j| &scales[j][..]),
                        std::array::from_fn(|j| &sums[j][..]),
                        &mut four,
                    )
                };
                for j in 0..4 {
                    let mut one = [[0.0f32; ROWS]; 1];
                    // SAFETY: as above.
                    unsafe {
                        tile::<1>(
                            isa,
                            ty,
                            &packed,
                            nb,
                            [&acts[j]],
                            [&scales[j]],
                            [&sums[j]],
                            &mut one,
                        )
                    };
                    for r in 0..ROWS {
                        let mut want = [[0.0f32]];
                        // SAFETY: as above.
                        unsafe {
                            dot_tile_isa::<1, 1>(
                                isa,
                                ty,
                                [&ws[r]],
                                [&acts[j]],
                                [&scales[j]],
                                &mut want,
                            )
                        };
                        let want = want[0][0].to_bits();
                        let ctx = format!("{ty:?} {isa:?} cols={cols} row {r} act {j}");
                        assert_eq!(four[j][r].to_bits(), want, "{ctx}, tile of 4");
                        assert_eq!(one[0][r].to_bits(), want, "{ctx}, tile of 1");
                    }
                }
            }
        }
    }
}
