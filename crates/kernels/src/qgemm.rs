//! Tiled products of quantized weights with 8-bit activation rows (AVX2): a tile of `RW` weight
//! rows × `R` activation rows loads and unpacks each block once for all its products: four
//! activation rows per weight row in prefill and batches of sequences, four weight rows per
//! activation row in decode. Activation scales are converted to f32 once per row.
//!
//! Every output is computed with exactly the same operations in the same order whatever the tile
//! shape, so results do not depend on the batch size. The scalar oracle is
//! [`crate::qdot::vec_dot`]; the tests compare against it within the per-type budgets.

// Tiles index several arrays (weights, activations, accumulators) by the same row index.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::mem::offset_of;

use crate::qdot::{BlockQ8K, BlockQ8_1};
use crate::quant::{BlockQ4K, BlockQ4_1, BlockQ6K, BlockQ8_0, QuantType, QK_K};

const B41: usize = size_of::<BlockQ4_1>();
const B80: usize = size_of::<BlockQ8_0>();
const B81: usize = size_of::<BlockQ8_1>();
const B4K: usize = size_of::<BlockQ4K>();
const B6K: usize = size_of::<BlockQ6K>();
const B8K: usize = size_of::<BlockQ8K>();

/// The instruction sets the tiled kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX2 + FMA + F16C.
    Avx2,
    /// The same plus AVX-512 VNNI and VL on 256-bit vectors: `vpdpbusd` for the 8-bit products
    /// of Q4_1 and Q8_0; the K-quants keep their AVX2 arithmetic (VNNI cannot fold in their 16-bit
    /// scale products) but get AVX-512VL's 32 registers.
    Vnni,
}

/// Every instruction set of [`Isa`] this CPU runs (empty without AVX2/FMA/F16C).
pub(crate) fn isas() -> Vec<Isa> {
    let mut v = Vec::new();
    if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
    {
        v.push(Isa::Avx2);
        if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
            v.push(Isa::Vnni);
        }
    }
    v
}

/// The instruction set the kernels use: the best of [`isas`], or AVX2 when the environment
/// variable `LLAMA31_KERNELS` is `avx2` (to compare the two on one machine; another value than
/// `avx2` or `best` is logged and ignored).
pub(crate) fn isa() -> Option<Isa> {
    static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let all = isas();
        let best = match std::env::var("LLAMA31_KERNELS").ok().as_deref() {
            Some("avx2") => all.first().copied(),
            None | Some("") | Some("best") => all.last().copied(),
            Some(other) => {
                tracing::warn!(
                    value = other,
                    "LLAMA31_KERNELS is `avx2` or `best`; using the best"
                );
                all.last().copied()
            }
        };
        tracing::debug!(?best, "quantized kernels");
        best
    })
}

/// Whether batched products of `ty` should use tiles of four weight rows × four activation rows
/// (the VNNI Q8_0 kernel: 16 accumulators fit AVX-512VL's 32 registers) rather than two × four.
pub(crate) fn wide_tiles(ty: QuantType) -> bool {
    ty == QuantType::Q8_0 && isa() == Some(Isa::Vnni)
}

/// Whether a tiled kernel exists for `ty` on this CPU.
pub(crate) fn available(ty: QuantType) -> bool {
    matches!(
        ty,
        QuantType::Q4_1 | QuantType::Q8_0 | QuantType::Q4K | QuantType::Q6K
    ) && isa().is_some()
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

/// `out[i][j] = ws[i] · acts[j]` for a tile of `RW` weight rows and `R` activation rows
/// (`acts[j]` the quantized row, `scales[j]` its [`act_scales`]). Every output of a tile is
/// computed with the same operations in the same order as in any other tile shape, so a product
/// does not depend on which rows share its tile. The caller has checked that `available(ty)`
/// and that all rows are whole, matching blocks.
pub(crate) fn dot_tile<const RW: usize, const R: usize>(
    ty: QuantType,
    ws: [&[u8]; RW],
    acts: [&[u8]; R],
    scales: [&[f32]; R],
    out: &mut [[f32; R]; RW],
) {
    let isa = isa().unwrap_or(Isa::Avx2);
    // SAFETY: `isa()` is one of `isas()`, which this CPU runs (and `available(ty)`, checked by
    // the caller, means it is not None).
    unsafe { dot_tile_isa(isa, ty, ws, acts, scales, out) };
}

/// `out[r] = w_r · act` for the consecutive weight rows `w_r = w[r·wrb..(r + 1)·wrb]` (decode):
/// one dispatch for all rows, each row the same kernel call as a 1 × 1 [`dot_tile`]. The caller
/// has checked that `available(ty)` and that the rows are whole, matching blocks.
pub(crate) fn dot_rows(
    ty: QuantType,
    w: &[u8],
    wrb: usize,
    act: &[u8],
    scales: &[f32],
    out: &mut [f32],
) {
    let isa = isa().unwrap_or(Isa::Avx2);
    let (wb, ab, spb) = block_sizes(ty);
    let nb = wrb / wb;
    // The kernel reads blocks 0..nb of every row, the activation row and its scales unchecked.
    assert!(nb * wb == wrb && w.len() >= out.len() * wrb);
    assert!(act.len() >= nb * ab && scales.len() >= nb * spb);
    let kernel = kernel::<1, 1>(ty, isa);
    let mut t = Tile {
        w: [w.as_ptr()],
        nb,
        a: [act.as_ptr()],
        s: [scales.as_ptr()],
    };
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: row r < out.len(), so its wrb bytes lie in `w` (asserted above).
        t.w[0] = unsafe { w.as_ptr().add(r * wrb) };
        let mut v = [[0.0f32]];
        // SAFETY: `available(ty)` (the caller's contract) and `isa()` guarantee the features;
        // the tile's rows hold `nb` blocks and the activation `nb` blocks and scales (asserted).
        unsafe { kernel(&t, &mut v) };
        *o = v[0][0];
    }
}

/// A tile kernel: `out` from the operands of a [`Tile`] (see [`dot_tile`]).
type Kernel<const RW: usize, const R: usize> = unsafe fn(&Tile<RW, R>, &mut [[f32; R]; RW]);

/// The kernel for `ty` on `isa` (Q8_0 for every other type: callers check [`available`]).
fn kernel<const RW: usize, const R: usize>(ty: QuantType, isa: Isa) -> Kernel<RW, R> {
    match (ty, isa) {
        (QuantType::Q4_1, Isa::Avx2) => q4_1_avx2::<RW, R>,
        (QuantType::Q4_1, Isa::Vnni) => q4_1_vnni::<RW, R>,
        (QuantType::Q4K, Isa::Avx2) => q4_k_avx2::<RW, R>,
        (QuantType::Q4K, Isa::Vnni) => q4_k_vnni::<RW, R>,
        (QuantType::Q6K, Isa::Avx2) => q6_k_avx2::<RW, R>,
        (QuantType::Q6K, Isa::Vnni) => q6_k_vnni::<RW, R>,
        (_, Isa::Avx2) => q8_0_avx2::<RW, R>,
        (_, Isa::Vnni) => q8_0_vnni::<RW, R>,
    }
}

/// Bytes of a weight block, bytes of an activation block and activation scales per block of
/// the tiled kernels of `ty`.
fn block_sizes(ty: QuantType) -> (usize, usize, usize) {
    match ty {
        QuantType::Q4_1 => (B41, B81, 2),
        QuantType::Q4K => (B4K, B8K, 1),
        QuantType::Q6K => (B6K, B8K, 1),
        _ => (B80, B80, 1),
    }
}

/// [`dot_tile`] with the kernels of `isa`.
///
/// # Safety
/// `isa` must be one of [`isas`] (an instruction set this CPU runs).
pub(crate) unsafe fn dot_tile_isa<const RW: usize, const R: usize>(
    isa: Isa,
    ty: QuantType,
    ws: [&[u8]; RW],
    acts: [&[u8]; R],
    scales: [&[f32]; R],
    out: &mut [[f32; R]; RW],
) {
    let (wb, ab, spb) = block_sizes(ty);
    let nb = ws[0].len() / wb;
    let mut wp = [std::ptr::null::<u8>(); RW];
    for i in 0..RW {
        // The kernels read blocks 0..nb of every weight row unchecked.
        assert!(ws[i].len() >= nb * wb);
        wp[i] = ws[i].as_ptr();
    }
    let mut ap = [std::ptr::null::<u8>(); R];
    let mut sp = [std::ptr::null::<f32>(); R];
    for j in 0..R {
        // ... and of every activation row and its scales.
        assert!(acts[j].len() >= nb * ab && scales[j].len() >= nb * spb);
        ap[j] = acts[j].as_ptr();
        sp[j] = scales[j].as_ptr();
    }
    let t = Tile {
        w: wp,
        nb,
        a: ap,
        s: sp,
    };
    // SAFETY: `available(ty)` (checked by the caller) guarantees AVX2, FMA and F16C, and `isa`
    // is one the CPU runs (the caller's contract); every weight row holds `nb` blocks, every
    // activation row at least `nb` blocks and its scales `nb * spb` values (asserted above),
    // which is all the kernels read.
    unsafe { kernel::<RW, R>(ty, isa)(&t, out) }
}

/// The operands of a tile: `nb` blocks of every weight row `w[i]` and activation row `a[j]`,
/// and the activation scales `s[j]`.
struct Tile<const RW: usize, const R: usize> {
    w: [*const u8; RW],
    nb: usize,
    a: [*const u8; R],
    s: [*const f32; R],
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

/// The 16 bytes at `p + off`.
///
/// # Safety
/// `p + off .. p + off + 16` must be readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn ld16(p: *const u8, off: usize) -> __m128i {
    // SAFETY: the caller guarantees 16 readable bytes at `p + off`; `loadu` needs no alignment.
    unsafe { _mm_loadu_si128(p.add(off).cast()) }
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
/// `p + off .. p + off + 2` must be readable and the CPU must have F16C.
#[inline]
unsafe fn f16(p: *const u8, off: usize) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes.
    let bits = u64::from(unsafe { p.add(off).cast::<u16>().read_unaligned() });
    // SAFETY: the caller guarantees F16C.
    _mm_cvtss_f32(unsafe { f16x4(bits) })
}

/// The four f16 in `bits` (lowest first) as f32 lanes (F16C; exact), through `vmovq` from a
/// general register into a fresh vector register (see [`f16`] for why not the intrinsics).
///
/// # Safety
/// The CPU must have F16C.
#[inline]
unsafe fn f16x4(bits: u64) -> __m128 {
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
fn dot_u8i8_avx2(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// [`dot_u8i8_avx2`] in one AVX-512 VNNI instruction (`vpdpbusd`, no i16 step): the same i32
/// lanes, bit for bit, under the same guarantee.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
fn dot_u8i8_vnni(u: __m256i, s: __m256i) -> __m256i {
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
        #[doc = concat!("The CPU has `", $feat, "` and `t` describes readable blocks ([`dot_tile`]).")]
        #[target_feature(enable = $feat)]
        unsafe fn $q41<const RW: usize, const R: usize>(t: &Tile<RW, R>, out: &mut [[f32; R]; RW]) {
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
                    // SAFETY: block b < nb of weight row i (and b + 1 when `two`).
                    unsafe {
                        let p0 = t.w[i].add(b * B41);
                        q[i][0] = unpack(ld16(p0, qs_off));
                        let w0 = p0.cast::<u32>().read_unaligned();
                        let w1 = if two {
                            let p1 = p0.add(B41);
                            q[i][1] = unpack(ld16(p1, qs_off));
                            p1.cast::<u32>().read_unaligned()
                        } else {
                            0
                        };
                        dm[i] = f16x4(u64::from(w0) | (u64::from(w1) << 32));
                    }
                }
                for j in 0..R {
                    // SAFETY: blocks b (and b + 1 when `two`) of activation row j and their
                    // scales `[d, s]` per block.
                    let (y0, y1, ds) = unsafe {
                        let a = t.a[j];
                        let s = t.s[j].add(2 * b);
                        if two {
                            let (ya, yb) = (ld(a, b * B81 + yq_off), ld(a, (b + 1) * B81 + yq_off));
                            (ya, yb, _mm_loadu_ps(s))
                        } else {
                            let ds = _mm_castsi128_ps(_mm_loadl_epi64(s.cast()));
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
                        unsafe { _mm_storeu_ps(x.as_mut_ptr(), v) };
                        x[k]
                    };
                    out[i][j] = (lane(a, 0) + lane(a, 2)) + (lane(m, 1) + lane(m, 3));
                }
            }
        }
    };
}

/// `[Σ s0, Σ s0, Σ s1, Σ s1]` as f32 (the eight i32 lanes of each summed exactly; |Σ| < 2^24, so
/// the conversion is exact).
#[inline]
#[target_feature(enable = "avx2")]
fn pair_sums(s0: __m256i, s1: __m256i) -> __m128 {
    let h = _mm256_hadd_epi32(s0, s1);
    let h = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b10_11_00_01>(h));
    _mm_cvtepi32_ps(h)
}

q4_1_kernel!(q4_1_avx2, "avx2,fma,f16c", dot_u8i8_avx2);
q4_1_kernel!(
    q4_1_vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    dot_u8i8_vnni
);

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
        #[doc = concat!("The CPU has `", $feat, "` and `t` describes readable blocks ([`dot_tile`]).")]
        #[target_feature(enable = $feat)]
        unsafe fn $name<const RW: usize, const R: usize>(
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
                    // SAFETY: block b < nb of weight row i (and b + 1 when `two`).
                    unsafe {
                        let w = t.w[i];
                        let dp = w.add(b * B80 + offset_of!(BlockQ8_0, d));
                        xv[i][0] = ld(w, b * B80 + off);
                        let d1 = if two {
                            xv[i][1] = ld(w, (b + 1) * B80 + off);
                            dp.add(B80).cast::<u16>().read_unaligned()
                        } else {
                            0
                        };
                        let d0 = dp.cast::<u16>().read_unaligned();
                        dw[i] = f16x4(u64::from(d0) | (u64::from(d1) << 32));
                    }
                    pv[i] = [$prep(xv[i][0]), $prep(xv[i][1])];
                }
                for j in 0..R {
                    // SAFETY: blocks b (and b + 1 when `two`) of activation row j and their
                    // scales.
                    let (y0, y1, yd) = unsafe {
                        let a = t.a[j];
                        let s = t.s[j].add(b);
                        let yd = if two {
                            _mm_castsi128_ps(_mm_loadl_epi64(s.cast()))
                        } else {
                            _mm_load_ss(s)
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
    |ax: __m256i, x: __m256i, y: __m256i, _n: __m256i| dot_u8i8_avx2(ax, _mm256_sign_epi8(y, x))
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

/// The 12 packed 6-bit scales and mins of a Q4_K block as 16 bytes: scales 0..8, then mins
/// 0..8 (the same values as [`crate::qdot::scales_mins_k4`], unpacked with word operations).
#[inline]
fn k4_scales_mins(q: &[u8; 12]) -> [u32; 4] {
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

/// The Q4_K and Q6_K kernels for one set of target features: the same code, compiled for AVX2
/// alone or with AVX-512VL and VNNI, whose 32 vector registers hold a 2 × 4 tile's integer and
/// float accumulators without spilling and whose `vpdpwssd` applies the group scales and
/// accumulates in one instruction. `$dpw` is [`dpw_avx2`] or [`dpw_vnni`], which give the same
/// integers, so both give the same bits.
macro_rules! kquant_kernels {
    ($q4k:ident, $q6k:ident, $feat:literal, $dpw:ident) => {
        /// Q4_K weights × Q8_K activations: per block the exact integers `I = Σ_g sc_g Σ q·y` and
        /// `M = Σ_g m_g Σ y` (the group sums of `y` from the activation block's `bsums`), then
        /// `e = fma(d_w·d_y, I, e)` and `e = fma(−dmin_w·d_y, M, e)` in f32 for even blocks, the
        /// same into `o` for odd ones (lanes 0 and 1, blocks in pairs), and the result `e + o`:
        /// the canonical order [`crate::qgemm_x8`]'s eight-row kernels follow lane by lane, so
        /// every tile shape and layout gives the same bits.
        ///
        /// # Safety
        #[doc = concat!("The CPU has `", $feat, "` and `t` describes readable blocks ([`dot_tile`]).")]
        #[target_feature(enable = $feat)]
        unsafe fn $q4k<const RW: usize, const R: usize>(t: &Tile<RW, R>, out: &mut [[f32; R]; RW]) {
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
                    let mut xs = [std::ptr::null::<u8>(); RW];
                    let mut mins = [_mm_setzero_si128(); RW];
                    let mut sc = [[0i16; 16]; RW];
                    for i in 0..RW {
                        // SAFETY: block bb < nb of weight row i.
                        let x = unsafe { t.w[i].add(bb * B4K) };
                        xs[i] = x;
                        // SAFETY: the 12 scale bytes and the two f16 of the block.
                        let (raw, d) = unsafe {
                            (
                                x.add(offset_of!(BlockQ4K, scales))
                                    .cast::<[u8; 12]>()
                                    .read_unaligned(),
                                x.add(offset_of!(BlockQ4K, d)).cast::<u32>().read_unaligned(),
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
                        unsafe { _mm256_storeu_si256(sc[i].as_mut_ptr().cast(), sm) };
                    }
                    let mut ys = [std::ptr::null::<u8>(); R];
                    for j in 0..R {
                        // SAFETY: block bb < nb of activation row j.
                        ys[j] = unsafe { t.a[j].add(bb * B8K) };
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
                        let s = t.s[j].add(b);
                        if two {
                            _mm_castsi128_ps(_mm_loadl_epi64(s.cast()))
                        } else {
                            _mm_load_ss(s)
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

        /// Q6_K weights × Q8_K activations: per block the exact integer `I = Σ_g sc_g Σ (u − 32)·y`,
        /// computed as `Σ_g sc_g Σ u·y − 32 Σ_g sc_g bsum_g` (exact in i32: |Σ u·y·sc| < 2^23 per
        /// block) with the group sums `bsum_g` of the activation block, then `acc = fma(d_w·d_y,
        /// I, acc)` in f32, block after block (the order of [`crate::qgemm_x8`]'s lanes).
        ///
        /// # Safety
        #[doc = concat!("The CPU has `", $feat, "` and `t` describes readable blocks ([`dot_tile`]).")]
        #[target_feature(enable = $feat)]
        unsafe fn $q6k<const RW: usize, const R: usize>(t: &Tile<RW, R>, out: &mut [[f32; R]; RW]) {
            let mut facc = [[0.0f32; R]; RW];
            let yq = offset_of!(BlockQ8K, qs);
            let yb = offset_of!(BlockQ8K, bsums);
            for b in 0..t.nb {
                let mut ys = [std::ptr::null::<u8>(); R];
                for j in 0..R {
                    // SAFETY: block b < nb of activation row j.
                    ys[j] = unsafe { t.a[j].add(b * B8K) };
                }
                let mut xs = [std::ptr::null::<u8>(); RW];
                let mut sc = [[0i16; 16]; RW];
                let mut acc = [[_mm256_setzero_si256(); R]; RW];
                for i in 0..RW {
                    // SAFETY: block b < nb of weight row i, its 16 scale bytes.
                    let x = unsafe { t.w[i].add(b * B6K) };
                    xs[i] = x;
                    // SAFETY: as above.
                    let sc16 =
                        _mm256_cvtepi8_epi16(unsafe { ld16(x, offset_of!(BlockQ6K, scales)) });
                    // SAFETY: `sc[i]` is 32 writable bytes; `storeu` has no alignment requirement.
                    unsafe { _mm256_storeu_si256(sc[i].as_mut_ptr().cast(), sc16) };
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
                        let d = dw * unsafe { *t.s[j].add(b) };
                        let (isum, _) = hsum2_i32(acc[i][j], _mm_setzero_si128());
                        facc[i][j] = d.mul_add(isum as f32, facc[i][j]);
                    }
                }
            }
            *out = facc;
        }
    };
}

kquant_kernels!(q4_k_avx2, q6_k_avx2, "avx2,fma,f16c", dpw_avx2);
kquant_kernels!(
    q4_k_vnni,
    q6_k_vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    dpw_vnni
);

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

    /// Every instruction set's tiles against the scalar oracle, on random blocks and rows of
    /// several lengths: the AVX2 and VNNI kernels compute the same integers and must agree bit
    /// for bit; every tile shape (4 × 4, 2 × 4, 1 × 1) gives the same bits for the same (weight,
    /// activation) pair.
    #[test]
    fn every_isa_and_tile_shape_matches_the_scalar_oracle() {
        use crate::qdot::{quantize_activations, vec_dot_scalar, vec_dot_type};
        use crate::quantize::quantize_to_vec;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let all = isas();
        for ty in [
            QuantType::Q4_1,
            QuantType::Q8_0,
            QuantType::Q4K,
            QuantType::Q6K,
        ] {
            if !available(ty) {
                continue;
            }
            // An odd number of blocks too, where the block size allows (the last block alone).
            let k = matches!(ty, QuantType::Q4K | QuantType::Q6K);
            let cols_list: &[usize] = if k { &[256, 1024] } else { &[96, 256, 1024] };
            for &cols in cols_list {
                let ws: Vec<Vec<u8>> = (0..4)
                    .map(|_| {
                        let w: Vec<f32> = (0..cols).map(|_| rnd()).collect();
                        quantize_to_vec(ty, &w).unwrap()
                    })
                    .collect();
                let acts: Vec<Vec<u8>> = (0..4)
                    .map(|_| {
                        let x: Vec<f32> = (0..cols).map(|_| 3.0 * rnd()).collect();
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
                let a4 = [&acts[0][..], &acts[1], &acts[2], &acts[3]];
                let s4 = [&scales[0][..], &scales[1], &scales[2], &scales[3]];
                let mut first: Option<[[f32; 4]; 4]> = None;
                for &isa in &all {
                    let mut tile = [[0.0f32; 4]; 4];
                    let mut halves = [[[0.0f32; 4]; 2]; 2];
                    // SAFETY: `isa` comes from `isas()`.
                    unsafe {
                        dot_tile_isa::<4, 4>(
                            isa,
                            ty,
                            [&ws[0], &ws[1], &ws[2], &ws[3]],
                            a4,
                            s4,
                            &mut tile,
                        );
                        for (h, half) in halves.iter_mut().enumerate() {
                            let w2 = [&ws[2 * h][..], &ws[2 * h + 1]];
                            dot_tile_isa::<2, 4>(isa, ty, w2, a4, s4, half);
                        }
                    };
                    let bits = |t: &[[f32; 4]]| -> Vec<u32> {
                        t.iter().flatten().map(|v| v.to_bits()).collect()
                    };
                    assert_eq!(bits(&tile[..2]), bits(&halves[0]), "{ty:?} {isa:?} 4x4/2x4");
                    assert_eq!(bits(&tile[2..]), bits(&halves[1]), "{ty:?} {isa:?} 4x4/2x4");
                    for i in 0..4 {
                        for j in 0..4 {
                            let mut one = [[0.0f32]];
                            // SAFETY: as above.
                            unsafe {
                                dot_tile_isa::<1, 1>(
                                    isa,
                                    ty,
                                    [&ws[i]],
                                    [&acts[j]],
                                    [&scales[j]],
                                    &mut one,
                                )
                            };
                            assert_eq!(one[0][0].to_bits(), tile[i][j].to_bits(), "{ty:?} {isa:?}");
                            let want = vec_dot_scalar(ty, &ws[i], &acts[j], cols).unwrap();
                            let got = tile[i][j];
                            assert!(
                                (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                                "{ty:?} {isa:?} cols={cols}: {got} vs {want}"
                            );
                        }
                    }
                    match first {
                        None => first = Some(tile),
                        Some(f) => assert_eq!(
                            f.map(|r| r.map(f32::to_bits)),
                            tile.map(|r| r.map(f32::to_bits)),
                            "{ty:?}: {isa:?} differs from {:?}",
                            all[0]
                        ),
                    }
                }
            }
        }
    }

    /// Q8_0 weights of -128 (never written by ggml's quantizer, but legal bytes) against
    /// activations of ±127: `maddubs` must not saturate.
    #[test]
    fn q8_0_extreme_weights_match_the_scalar_oracle() {
        use crate::qdot::{quantize_activations, vec_dot_scalar, ActType};
        let cols = 64;
        let mut w = Vec::new();
        for _ in 0..cols / 32 {
            w.extend_from_slice(&0x3c00u16.to_le_bytes()); // d = 1.0
            w.extend(std::iter::repeat_n(0x80u8, 32)); // qs = -128
        }
        let x: Vec<f32> = (0..cols)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let a = quantize_activations(ActType::Q8_0, &x).unwrap();
        let mut sc = Vec::new();
        act_scales(QuantType::Q8_0, &a, &mut sc);
        if !available(QuantType::Q8_0) {
            return;
        }
        let want = vec_dot_scalar(QuantType::Q8_0, &w, &a, cols).unwrap();
        assert!(want.abs() > 1000.0, "{want}");
        for isa in isas() {
            let mut out = [[0.0f32]];
            // SAFETY: `isa` comes from `isas()`.
            unsafe { dot_tile_isa::<1, 1>(isa, QuantType::Q8_0, [&w], [&a], [&sc], &mut out) };
            assert_eq!(out[0][0], want, "{isa:?}");
        }
    }
}
