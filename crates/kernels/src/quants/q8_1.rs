//! Q8_1: blocks of 32 activations, `a = d · q` with 8-bit `q`, plus `s = d · Σq` (both f16): the
//! activation format of Q4_1 and Q5_1.

use std::mem::{offset_of, size_of};

use super::util::{put_f16, rd_f16};
use super::{ActFormat, BlockFormat, QK};
use crate::DType;

/// `block_q8_1`: 32 activations, `a = d · q`, plus `s = d · Σq` (both f16).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: u16,
    pub s: u16,
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// The Q8_1 activation type.
pub struct Q8_1;

impl BlockFormat for Q8_1 {
    type Block = BlockQ8_1;
    const BLCK_SIZE: usize = QK;
    const DTYPE: DType = DType::Q8_1;

    /// `d · q` (the sum `s` is not needed).
    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ8_1, d));
        let qs = &b[offset_of!(BlockQ8_1, qs)..][..QK];
        for (o, &q) in y.iter_mut().zip(qs) {
            *o = f32::from(q as i8) * d;
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let amax = x
            .iter()
            .fold(0.0f32, |a, v| if a > v.abs() { a } else { v.abs() });
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(b, offset_of!(BlockQ8_1, d), d);
        let qs = &mut b[offset_of!(BlockQ8_1, qs)..][..QK];
        let mut sum = 0i32;
        for (q, &v) in qs.iter_mut().zip(x) {
            let r = (v * id).round() as i8;
            *q = r as u8;
            sum += i32::from(r);
        }
        // ggml scales the sum by the f32 `d`, not by its f16 rounding.
        put_f16(b, offset_of!(BlockQ8_1, s), sum as f32 * d);
    }
}

impl ActFormat for Q8_1 {
    const SCALES_PER_BLOCK: usize = 2;

    /// `[d0, s0, d1, s1, …]`.
    fn act_scales(row: &[u8], out: &mut Vec<f32>) {
        for b in row.chunks_exact(size_of::<BlockQ8_1>()) {
            out.push(rd_f16(b, offset_of!(BlockQ8_1, d)));
            out.push(rd_f16(b, offset_of!(BlockQ8_1, s)));
        }
    }
}
