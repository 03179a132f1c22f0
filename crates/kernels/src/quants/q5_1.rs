//! Q5_1: blocks of 32 weights, `w = d · q + m` with 5-bit `q` (the fifth bits in `qh`) and f16 `d`
//! and `m`; multiplied with Q8_1 activations.

use std::mem::{offset_of, size_of};

use super::q8_1::{BlockQ8_1, Q8_1};
use super::util::{blocks, inv, min_max, pack5, put_f16, q5_isum, qh32, rd_f16};
use super::{BlockFormat, BlockType, QK};
use crate::DType;

/// `block_q5_1`: 32 weights, `w = d · q + m`.
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// The Q5_1 weight type.
pub struct Q5_1;

impl BlockFormat for Q5_1 {
    type Block = BlockQ5_1;
    const BLCK_SIZE: usize = QK;
    const DTYPE: DType = DType::Q5_1;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ5_1, d));
        let m = rd_f16(b, offset_of!(BlockQ5_1, m));
        let o = offset_of!(BlockQ5_1, qh);
        let qh = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let qs = &b[offset_of!(BlockQ5_1, qs)..][..QK / 2];
        for j in 0..QK / 2 {
            let xh0 = ((qh >> j) << 4) & 0x10;
            let xh1 = (qh >> (j + 12)) & 0x10;
            let x0 = (u32::from(qs[j]) & 0x0f) | xh0;
            let x1 = (u32::from(qs[j]) >> 4) | xh1;
            y[j] = x0 as f32 * d + m;
            y[j + QK / 2] = x1 as f32 * d + m;
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inv(d);
        put_f16(b, offset_of!(BlockQ5_1, d), d);
        put_f16(b, offset_of!(BlockQ5_1, m), min);
        let mut xi = [0u8; QK];
        for (q, &v) in xi.iter_mut().zip(x) {
            *q = ((v - min) * id + 0.5) as u8;
        }
        pack5(&xi, b, offset_of!(BlockQ5_1, qs), offset_of!(BlockQ5_1, qh));
    }
}

impl BlockType for Q5_1 {
    type VecDotType = Q8_1;
    super::avx2_vec_dot!();

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q5_1>(w, a) {
            let qs = &x[offset_of!(BlockQ5_1, qs)..][..QK / 2];
            let qh = qh32(x, offset_of!(BlockQ5_1, qh));
            let sumi = q5_isum(qs, qh, &y[offset_of!(BlockQ8_1, qs)..][..QK], 0);
            let dxy = rd_f16(x, offset_of!(BlockQ5_1, d)) * rd_f16(y, offset_of!(BlockQ8_1, d));
            sumf += dxy * sumi as f32
                + rd_f16(x, offset_of!(BlockQ5_1, m)) * rd_f16(y, offset_of!(BlockQ8_1, s));
        }
        sumf
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::{offset_of, size_of};

    use super::{BlockQ5_1, BlockQ8_1};
    use crate::quants::simd::{d_prod, fifth_bits, hsum, isum, load32, nibbles};
    use crate::quants::util::qh32;

    const B51: usize = size_of::<BlockQ5_1>();
    const B81: usize = size_of::<BlockQ8_1>();

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_avx2(w: &[u8], a: &[u8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for (x, y) in w.chunks_exact(B51).zip(a.chunks_exact(B81)) {
            let lo = nibbles(&x[offset_of!(BlockQ5_1, qs)..]);
            let q = _mm256_or_si256(lo, fifth_bits(qh32(x, offset_of!(BlockQ5_1, qh))));
            let yv = load32(&y[offset_of!(BlockQ8_1, qs)..]);
            let s = _mm256_cvtepi32_ps(isum(q, yv, 0));
            let d = d_prod(x, offset_of!(BlockQ5_1, d), y, offset_of!(BlockQ8_1, d));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), s, acc);
            summs += d_prod(x, offset_of!(BlockQ5_1, m), y, offset_of!(BlockQ8_1, s));
        }
        hsum(acc) + summs
    }
}
