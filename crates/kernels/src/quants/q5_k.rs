//! Q5_K: like Q4_K (super-blocks of 256 weights, 6-bit scales and mins per 32) plus one high bit
//! per weight in `qh`; multiplied with Q8_K activations (scalar kernel only).

use std::mem::{offset_of, size_of};

use super::q8_k::{q8k, Q8K};
use super::util::{
    blocks, get_scale_min_k4, min_term, qk_scales_and_levels, rd_f16, scaled_isum, scales_mins_k4,
};
use super::{BlockFormat, BlockType, QK_K};
use crate::DType;

const K_SCALE_SIZE: usize = 12;

/// `block_q5_K`: like Q4_K plus one high bit per weight in `qh`.
#[repr(C)]
pub struct BlockQ5K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

/// The Q5K weight type.
pub struct Q5K;

impl BlockFormat for Q5K {
    type Block = BlockQ5K;
    const BLCK_SIZE: usize = QK_K;
    const DTYPE: DType = DType::Q5_K;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ5K, d));
        let min = rd_f16(b, offset_of!(BlockQ5K, dmin));
        let scales = &b[offset_of!(BlockQ5K, scales)..][..K_SCALE_SIZE];
        let qh = &b[offset_of!(BlockQ5K, qh)..][..QK_K / 8];
        let qs = &b[offset_of!(BlockQ5K, qs)..][..QK_K / 2];
        let mut yi = 0;
        let (mut u1, mut u2) = (1u8, 2u8);
        for (g, ql) in qs.chunks_exact(32).enumerate() {
            let is = 2 * g;
            let (sc, m) = get_scale_min_k4(is, scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = get_scale_min_k4(is + 1, scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            for l in 0..32 {
                let hi = if qh[l] & u1 != 0 { 16 } else { 0 };
                y[yi] = d1 * ((ql[l] & 0x0f) + hi) as f32 - m1;
                yi += 1;
            }
            for l in 0..32 {
                let hi = if qh[l] & u2 != 0 { 16 } else { 0 };
                y[yi] = d2 * ((ql[l] >> 4) + hi) as f32 - m2;
                yi += 1;
            }
            u1 = u1.wrapping_shl(2);
            u2 = u2.wrapping_shl(2);
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let mut l = [0u8; QK_K];
        let offs = (
            offset_of!(BlockQ5K, d),
            offset_of!(BlockQ5K, dmin),
            offset_of!(BlockQ5K, scales),
        );
        qk_scales_and_levels(x, b, offs, 31, (-0.5, 0.1, 15), &mut l);
        let (qlo, qho) = (offset_of!(BlockQ5K, qs), offset_of!(BlockQ5K, qh));
        let mut qh = [0u8; QK_K / 8];
        let (mut m1, mut m2) = (1u8, 2u8);
        for (n, j0) in (0..QK_K).step_by(64).enumerate() {
            for k in 0..32 {
                let mut l1 = l[j0 + k];
                if l1 > 15 {
                    l1 -= 16;
                    qh[k] |= m1;
                }
                let mut l2 = l[j0 + k + 32];
                if l2 > 15 {
                    l2 -= 16;
                    qh[k] |= m2;
                }
                b[qlo + 32 * n + k] = l1 | (l2 << 4);
            }
            m1 = m1.wrapping_shl(2);
            m2 = m2.wrapping_shl(2);
        }
        b[qho..qho + QK_K / 8].copy_from_slice(&qh);
    }
}

impl BlockType for Q5K {
    type VecDotType = Q8K;

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q5K>(w, a) {
            let y = q8k(y);
            let qs = &x[offset_of!(BlockQ5K, qs)..][..QK_K / 2];
            let qh = &x[offset_of!(BlockQ5K, qh)..][..QK_K / 8];
            let mut lv = [0i8; QK_K];
            for (g, q) in qs.chunks_exact(32).enumerate() {
                let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
                for (l, &v) in q.iter().enumerate() {
                    let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                    let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                    lv[64 * g + l] = ((v & 0x0f) + h1) as i8;
                    lv[64 * g + 32 + l] = ((v >> 4) + h2) as i8;
                }
            }
            let (sc, mn) = scales_mins_k4(&x[offset_of!(BlockQ5K, scales)..][..12]);
            let isum = scaled_isum(&lv, &sc, y.qs);
            let summ = min_term(&y.bsums, &mn);
            let d = rd_f16(x, offset_of!(BlockQ5K, d)) * y.d;
            let dmin = rd_f16(x, offset_of!(BlockQ5K, dmin)) * y.d;
            sumf += d * isum as f32 - dmin * summ as f32;
        }
        sumf
    }
}
