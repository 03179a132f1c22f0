//! Tiled products of quantized weights with 8-bit activation rows (AVX2 and AVX-512 VNNI): a tile of `RW` weight
//! rows × `R` activation rows loads and unpacks each block once for all its products: four
//! activation rows per weight row in prefill and batches of sequences, four weight rows per
//! activation row in decode. Activation scales are converted to f32 once per row.
//!
//! Every output is computed with exactly the same operations in the same order whatever the tile
//! shape, so results do not depend on the batch size. The scalar oracle is
//! [`crate::qdot::vec_dot`]; the tests compare against it within the per-type budgets.
//!
//! This module is the driver: the kernels live with their block types in [`crate::quants`]
//! ([`crate::quants::BlockType::tile_kernel`]) and are chosen once per call or tile.

// Tiles index several arrays (weights, activations, accumulators) by the same row index.
#![allow(clippy::needless_range_loop)]

use crate::checked::{ptr_at, Raw};
use crate::cpu::{cpu, Isa};
use crate::quants::{dispatch, ActFormat, BlockFormat, BlockType};
use crate::DType;

/// Every instruction set of [`Isa`] this CPU runs (empty without AVX2/FMA/F16C).
#[cfg(test)]
pub(crate) fn isas() -> Vec<Isa> {
    cpu().isas()
}

/// The instruction set the kernels use ([`crate::cpu::CpuFeatures::quant_isa`]: the best of
/// [`isas`], or AVX2 when `LLAMA31_KERNELS=avx2`).
#[inline]
pub(crate) fn isa() -> Option<Isa> {
    cpu().quant_isa
}

/// Whether batched products of `ty` should use tiles of four weight rows × four activation rows
/// (the VNNI Q8_0 kernel: 16 accumulators fit AVX-512VL's 32 registers) rather than two × four.
pub(crate) fn wide_tiles(ty: DType) -> bool {
    isa().is_some_and(|isa| dispatch!(ty, T => T::wide_tiles(isa), _ => false))
}

/// Whether a tiled kernel exists for `ty` on this CPU.
pub(crate) fn available(ty: DType) -> bool {
    dispatch!(ty, T => T::tile_kernel::<1, 1>(Isa::Avx2).is_some(), _ => false) && isa().is_some()
}

/// The f32 scales of one activation row: `d` of every block (and `s` for Q8_1), interleaved as
/// `[d0, s0, d1, s1, …]` for Q8_1 and `[d0, d1, …]` for Q8_0 and Q8_K (whose group sums the
/// kernels read from the block itself).
pub(crate) fn act_scales(ty: DType, act_row: &[u8], out: &mut Vec<f32>) {
    dispatch!(ty, T => <<T as BlockType>::VecDotType as ActFormat>::act_scales(act_row, out))
}

/// `out[i][j] = ws[i] · acts[j]` for a tile of `RW` weight rows and `R` activation rows
/// (`acts[j]` the quantized row, `scales[j]` its [`act_scales`]). Every output of a tile is
/// computed with the same operations in the same order as in any other tile shape, so a product
/// does not depend on which rows share its tile. The caller has checked that `available(ty)`
/// and that all rows are whole, matching blocks.
pub(crate) fn dot_tile<const RW: usize, const R: usize>(
    ty: DType,
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
    ty: DType,
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
        w: [Raw::empty()],
        nb,
        a: [Raw::new(&act[..nb * ab])],
        s: [Raw::new(&scales[..nb * spb])],
    };
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: row r < out.len(), so its wrb bytes lie in `w` (asserted above; `ptr_at`
        // checks it in debug builds).
        t.w[0] = Raw::from_raw(unsafe { ptr_at(w, r * wrb, wrb) }, wrb);
        let mut v = [[0.0f32]];
        // SAFETY: `available(ty)` (the caller's contract) and `isa()` guarantee the features;
        // the tile's rows hold `nb` blocks and the activation `nb` blocks and scales (asserted).
        unsafe { kernel(&t, &mut v) };
        *o = v[0][0];
    }
}

/// A tile kernel: `out` from the operands of a [`Tile`] (see [`dot_tile`]).
pub type Kernel<const RW: usize, const R: usize> = unsafe fn(&Tile<RW, R>, &mut [[f32; R]; RW]);

/// The kernel for `ty` on `isa`.
///
/// # Panics
/// If `ty` has no tiled kernels (callers check [`available`]).
#[inline]
fn kernel<const RW: usize, const R: usize>(ty: DType, isa: Isa) -> Kernel<RW, R> {
    match dispatch!(ty, T => T::tile_kernel::<RW, R>(isa)) {
        Some(k) => k,
        None => panic!("{ty:?} has no tiled kernels"),
    }
}

/// Bytes of a weight block, bytes of an activation block and activation scales per block of
/// the tiled kernels of `ty`.
#[inline]
fn block_sizes(ty: DType) -> (usize, usize, usize) {
    dispatch!(ty, T => (
        T::BLCK_BYTES,
        <<T as BlockType>::VecDotType as BlockFormat>::BLCK_BYTES,
        <<T as BlockType>::VecDotType as ActFormat>::SCALES_PER_BLOCK,
    ))
}

/// [`dot_tile`] with the kernels of `isa`.
///
/// # Safety
/// `isa` must be one of [`isas`] (an instruction set this CPU runs).
pub(crate) unsafe fn dot_tile_isa<const RW: usize, const R: usize>(
    isa: Isa,
    ty: DType,
    ws: [&[u8]; RW],
    acts: [&[u8]; R],
    scales: [&[f32]; R],
    out: &mut [[f32; R]; RW],
) {
    let (wb, ab, spb) = block_sizes(ty);
    let nb = ws[0].len() / wb;
    let mut wp = [Raw::empty(); RW];
    for i in 0..RW {
        // The kernels read blocks 0..nb of every weight row unchecked (checked against these
        // lengths in debug builds).
        assert!(ws[i].len() >= nb * wb);
        wp[i] = Raw::new(&ws[i][..nb * wb]);
    }
    let mut ap = [Raw::empty(); R];
    let mut sp = [Raw::empty(); R];
    for j in 0..R {
        // ... and of every activation row and its scales.
        assert!(acts[j].len() >= nb * ab && scales[j].len() >= nb * spb);
        ap[j] = Raw::new(&acts[j][..nb * ab]);
        sp[j] = Raw::new(&scales[j][..nb * spb]);
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
/// and the activation scales `s[j]` (each with its length, which the kernels' accesses are
/// checked against in debug builds).
pub struct Tile<const RW: usize, const R: usize> {
    pub(crate) w: [Raw<u8>; RW],
    pub(crate) nb: usize,
    pub(crate) a: [Raw<u8>; R],
    pub(crate) s: [Raw<f32>; R],
}

#[cfg(test)]
mod tests {
    use super::*;
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
        for ty in [DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K] {
            if !available(ty) {
                continue;
            }
            // An odd number of blocks too, where the block size allows (the last block alone).
            let k = matches!(ty, DType::Q4_K | DType::Q6_K);
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
                        quantize_activations(vec_dot_type(ty).unwrap(), &x).unwrap()
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
        use crate::qdot::{quantize_activations, vec_dot_scalar};
        use crate::DType;
        let cols = 64;
        let mut w = Vec::new();
        for _ in 0..cols / 32 {
            w.extend_from_slice(&0x3c00u16.to_le_bytes()); // d = 1.0
            w.extend(std::iter::repeat_n(0x80u8, 32)); // qs = -128
        }
        let x: Vec<f32> = (0..cols)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let a = quantize_activations(DType::Q8_0, &x).unwrap();
        let mut sc = Vec::new();
        act_scales(DType::Q8_0, &a, &mut sc);
        if !available(DType::Q8_0) {
            return;
        }
        let want = vec_dot_scalar(DType::Q8_0, &w, &a, cols).unwrap();
        assert!(want.abs() > 1000.0, "{want}");
        for isa in isas() {
            let mut out = [[0.0f32]];
            // SAFETY: `isa` comes from `isas()`.
            unsafe { dot_tile_isa::<1, 1>(isa, DType::Q8_0, [&w], [&a], [&sc], &mut out) };
            assert_eq!(out[0][0], want, "{isa:?}");
        }
    }

    /// A weight row one byte shorter than the `nb` blocks its tile claims: with debug assertions
    /// the kernel's range check fires before the read past the row (in release builds it would
    /// read past it, which is why [`dot_tile_isa`] asserts the lengths).
    #[cfg(debug_assertions)]
    fn short_weight_row(ty: DType) {
        use crate::qdot::{quantize_activations, vec_dot_type};
        use crate::quantize::quantize_to_vec;
        if !available(ty) {
            panic!("pointer range: no tiled kernels on this CPU to check");
        }
        let cols = 512;
        let w: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let w = quantize_to_vec(ty, &w).unwrap();
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.11).cos()).collect();
        let a = quantize_activations(vec_dot_type(ty).unwrap(), &x).unwrap();
        let mut sc = Vec::new();
        act_scales(ty, &a, &mut sc);
        let t = Tile {
            w: [Raw::new(&w[..w.len() - 1])],
            nb: w.len() / block_sizes(ty).0,
            a: [Raw::new(&a)],
            s: [Raw::new(&sc)],
        };
        for isa in isas() {
            let mut out = [[0.0f32]];
            // SAFETY: `isa` comes from `isas()`; the weight row is one byte short of `nb` blocks,
            // which the kernel's debug assertion reports before reading (this test only exists
            // with debug assertions).
            unsafe { kernel::<1, 1>(ty, isa)(&t, &mut out) };
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "pointer range")]
    fn short_weight_row_q8_0_is_caught() {
        short_weight_row(DType::Q8_0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "pointer range")]
    fn short_weight_row_q4_1_is_caught() {
        short_weight_row(DType::Q4_1);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "pointer range")]
    fn short_weight_row_q4_k_is_caught() {
        short_weight_row(DType::Q4_K);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "pointer range")]
    fn short_weight_row_q6_k_is_caught() {
        short_weight_row(DType::Q6_K);
    }
}
