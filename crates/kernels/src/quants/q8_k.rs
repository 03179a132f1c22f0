//! Q8_K: super-blocks of 256 activations, `a = d · q` with 8-bit `q` and an f32 `d`, plus the sums
//! of each 16 quants: the activation format of the k-quants.

use std::mem::{offset_of, size_of};

use super::util::{nearest_int, rd_f32};
use super::{ActFormat, BlockFormat, QK_K};
use crate::DType;

/// `block_q8_K`: 256 activations, `a = d · q` (f32 `d`), plus the sums of each 16 quants.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

/// The Q8_K activation type.
pub struct Q8K;

impl BlockFormat for Q8K {
    type Block = BlockQ8K;
    const BLCK_SIZE: usize = QK_K;
    const DTYPE: DType = DType::Q8_K;

    /// `d · q` (the group sums are not needed).
    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f32(b, offset_of!(BlockQ8K, d));
        let qs = &b[offset_of!(BlockQ8K, qs)..][..QK_K];
        for (o, &q) in y.iter_mut().zip(qs) {
            *o = f32::from(q as i8) * d;
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let mut max = 0.0f32;
        let mut amax = 0.0f32;
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            // ggml leaves `bsums` untouched here; we zero the whole block.
            b.fill(0);
            return;
        }
        let iscale = -127.0f32 / max;
        let qs_off = offset_of!(BlockQ8K, qs);
        for (j, &v) in x.iter().enumerate() {
            b[qs_off + j] = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        let bs_off = offset_of!(BlockQ8K, bsums);
        for j in 0..QK_K / 16 {
            let s: i32 = b[qs_off + 16 * j..qs_off + 16 * j + 16]
                .iter()
                .map(|&q| i32::from(q as i8))
                .sum();
            b[bs_off + 2 * j..bs_off + 2 * j + 2].copy_from_slice(&(s as i16).to_le_bytes());
        }
        let d = 1.0 / iscale;
        b[..4].copy_from_slice(&d.to_le_bytes());
    }
}

impl ActFormat for Q8K {
    const SCALES_PER_BLOCK: usize = 1;

    /// `[d0, d1, …]` (the kernels read the group sums from the blocks).
    fn act_scales(row: &[u8], out: &mut Vec<f32>) {
        for b in row.chunks_exact(size_of::<BlockQ8K>()) {
            out.push(rd_f32(b, offset_of!(BlockQ8K, d)));
        }
    }
}

/// A Q8_K block split into its fields.
pub(crate) struct Q8KView<'a> {
    pub(crate) d: f32,
    pub(crate) qs: &'a [u8],
    pub(crate) bsums: [i32; QK_K / 16],
}

/// The fields of the Q8_K block `y`.
#[inline]
pub(crate) fn q8k(y: &[u8]) -> Q8KView<'_> {
    let off = offset_of!(BlockQ8K, bsums);
    let mut bsums = [0i32; QK_K / 16];
    for (j, s) in bsums.iter_mut().enumerate() {
        *s = i32::from(i16::from_le_bytes([y[off + 2 * j], y[off + 2 * j + 1]]));
    }
    Q8KView {
        d: rd_f32(y, 0),
        qs: &y[offset_of!(BlockQ8K, qs)..][..QK_K],
        bsums,
    }
}
