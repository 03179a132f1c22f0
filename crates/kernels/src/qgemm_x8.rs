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
//!
//! This module is the driver and the layout helpers; each type's repacking and kernels live with
//! the type in [`crate::quants`] ([`crate::quants::BlockType::x8_tile`]).

// Tiles index weights, activations and accumulators by the same row index.
#![allow(clippy::needless_range_loop)]

use crate::checked::ptr_at;
use crate::cpu::Isa;
use crate::quants::{dispatch, ActFormat, BlockFormat, BlockType};
use crate::DType;

/// Rows per repacked group.
pub(crate) const ROWS: usize = 8;

/// Whether batched products of `ty` repack its weights here.
pub(crate) fn repacks(ty: DType) -> bool {
    dispatch!(ty, T => T::X8_BLOCK_BYTES.is_some(), _ => false)
}

/// Bytes of `nb` repacked blocks of eight rows of `ty` (one of [`repacks`]).
pub(crate) fn group_bytes(ty: DType, nb: usize) -> usize {
    nb * dispatch!(ty, T => T::X8_BLOCK_BYTES.unwrap_or(0))
}

/// Repacks blocks `0..nb` of eight rows of `ty` (one of [`repacks`]) into `dst`
/// ([`group_bytes`]`(ty, nb)` bytes).
///
/// # Panics
/// If a row holds fewer than `nb` blocks or `dst` is shorter (callers pass checked lengths).
pub(crate) fn repack(ty: DType, rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
    dispatch!(ty, T => T::x8_repack(rows, nb, dst))
}

/// Whether the kernels of `ty` on `isa` read the activation blocks' sums ([`act_sums`]).
pub(crate) fn needs_sums(ty: DType, isa: Isa) -> bool {
    dispatch!(ty, T => T::x8_needs_sums(isa))
}

pub(crate) use crate::quants::q8_0::act_sums;

/// Runs `one(block, r, out)` for block `b < nb` of every row `r` (`in_bytes` each), `out` the
/// `b`-th `out_bytes` of `dst`.
#[inline]
pub(crate) fn repack_with(
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
#[inline]
pub(crate) fn interleave(src: &[u8], r: usize, out: &mut [u8], off: usize) {
    for (k, four) in src.chunks_exact(4).enumerate() {
        let o = off + (k * ROWS + r) * 4;
        out[o..o + 4].copy_from_slice(four);
    }
}

/// The f16 at `x[o..o + 2]` as f32 bytes, written at `out[off + 4r..]`.
#[inline]
pub(crate) fn put_f32_of_f16(x: &[u8], o: usize, r: usize, out: &mut [u8], off: usize) {
    let v = crate::quants::f16::f16_to_f32(u16::from_le_bytes([x[o], x[o + 1]]));
    out[off + 4 * r..off + 4 * r + 4].copy_from_slice(&v.to_le_bytes());
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
    ty: DType,
    packed: &[u8],
    nb: usize,
    acts: [&[u8]; R],
    scales: [&[f32]; R],
    sums: [&[i32]; R],
    out: &mut [[f32; ROWS]; R],
) {
    // The kernels read `nb` blocks of everything unchecked.
    assert!(repacks(ty) && packed.len() >= group_bytes(ty, nb));
    let (ab, spb) = dispatch!(ty, T => (
        <<T as BlockType>::VecDotType as BlockFormat>::BLCK_BYTES,
        <<T as BlockType>::VecDotType as ActFormat>::SCALES_PER_BLOCK,
    ));
    let mut a = [std::ptr::null::<u8>(); R];
    let mut s = [std::ptr::null::<f32>(); R];
    let mut c = [std::ptr::null::<i32>(); R];
    // Sums are read only where the kernel needs them.
    let cn = if needs_sums(ty, isa) { nb } else { 0 };
    for j in 0..R {
        assert!(acts[j].len() >= nb * ab && scales[j].len() >= nb * spb);
        assert!(sums[j].len() >= cn);
        // SAFETY: the ranges are asserted above (and checked again by `ptr_at` in debug builds).
        unsafe {
            a[j] = ptr_at(acts[j], 0, nb * ab);
            s[j] = ptr_at(scales[j], 0, nb * spb);
            c[j] = ptr_at(sums[j], 0, cn);
        }
    }
    // SAFETY: as above.
    let x = unsafe { ptr_at(packed, 0, group_bytes(ty, nb)) };
    // SAFETY: the sizes are asserted above (and `repacks(ty)`, so the type has the kernel); the
    // caller guarantees `isa`. The kernels check their accesses against `nb` blocks behind every
    // pointer in debug builds.
    unsafe { dispatch!(ty, T => T::x8_tile::<R>(isa, x, nb, a, s, c, out)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qgemm::{act_scales, dot_tile_isa, isas};
    use crate::quants::QK_K;

    /// Every repacked row equals the GGUF-layout kernels bit for bit, on every instruction set,
    /// for tiles of four activation rows and of one.
    #[test]
    fn repacked_rows_equal_the_gguf_layout_kernels_bit_for_bit() {
        for ty in [DType::Q4_1, DType::Q4_K, DType::Q6_K, DType::Q8_0] {
            if crate::qgemm::available(ty) {
                repacked_rows_match(ty);
            }
        }
    }

    fn repacked_rows_match(ty: DType) {
        use crate::qdot::{quantize_activations, vec_dot_type};
        use crate::quantize::quantize_to_vec;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let k = matches!(ty, DType::Q4_K | DType::Q6_K);
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
            let sums: Vec<Vec<i32>> = acts
                .iter()
                .map(|a| {
                    let mut v = Vec::new();
                    if ty == DType::Q8_0 {
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
