//! Q5_0: blocks of 32 weights, `w = d · (q - 16)` with 5-bit `q` (the fifth bits in `qh`) and an
//! f16 `d`; multiplied with Q8_0 activations.

use std::mem::{offset_of, size_of};

use super::q8_0::{BlockQ8_0, Q8_0};
use super::util::{blocks, inv, pack5, put_f16, q5_isum, qh32, rd_f16, signed_absmax};
use super::{BlockFormat, BlockType, QK};
use crate::DType;

/// `block_q5_0`: 32 weights, 5th bit in `qh`, `w = d · (q - 16)`.
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// The Q5_0 weight type.
pub struct Q5_0;

impl BlockFormat for Q5_0 {
    type Block = BlockQ5_0;
    const BLCK_SIZE: usize = QK;
    const DTYPE: DType = DType::Q5_0;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ5_0, d));
        let o = offset_of!(BlockQ5_0, qh);
        let qh = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let qs = &b[offset_of!(BlockQ5_0, qs)..][..QK / 2];
        for j in 0..QK / 2 {
            let xh0 = ((qh >> j) << 4) & 0x10;
            let xh1 = (qh >> (j + 12)) & 0x10;
            let x0 = ((u32::from(qs[j]) & 0x0f) | xh0) as i32 - 16;
            let x1 = ((u32::from(qs[j]) >> 4) | xh1) as i32 - 16;
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let (max, _) = signed_absmax(x);
        let d = max / -16.0;
        let id = inv(d);
        put_f16(b, offset_of!(BlockQ5_0, d), d);
        let mut xi = [0u8; QK];
        for (q, &v) in xi.iter_mut().zip(x) {
            *q = ((v * id + 16.5) as i8).min(31) as u8;
        }
        pack5(&xi, b, offset_of!(BlockQ5_0, qs), offset_of!(BlockQ5_0, qh));
    }
}

impl BlockType for Q5_0 {
    type VecDotType = Q8_0;
    super::avx2_vec_dot!();

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q5_0>(w, a) {
            let qs = &x[offset_of!(BlockQ5_0, qs)..][..QK / 2];
            let qh = qh32(x, offset_of!(BlockQ5_0, qh));
            let sumi = q5_isum(qs, qh, &y[offset_of!(BlockQ8_0, qs)..][..QK], 16);
            sumf += (rd_f16(x, 0) * rd_f16(y, 0)) * sumi as f32;
        }
        sumf
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::{offset_of, size_of};

    use super::{BlockQ5_0, BlockQ8_0};
    use crate::quants::simd::{d_prod, fifth_bits, hsum, isum, load32, nibbles};
    use crate::quants::util::qh32;

    const B50: usize = size_of::<BlockQ5_0>();
    const B80: usize = size_of::<BlockQ8_0>();

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_avx2(w: &[u8], a: &[u8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in w.chunks_exact(B50).zip(a.chunks_exact(B80)) {
            let lo = nibbles(&x[offset_of!(BlockQ5_0, qs)..]);
            let q = _mm256_or_si256(lo, fifth_bits(qh32(x, offset_of!(BlockQ5_0, qh))));
            let yv = load32(&y[offset_of!(BlockQ8_0, qs)..]);
            let s = _mm256_cvtepi32_ps(isum(q, yv, 16));
            let d = _mm256_set1_ps(d_prod(x, 0, y, 0));
            acc = _mm256_fmadd_ps(d, s, acc);
        }
        hsum(acc)
    }
}
