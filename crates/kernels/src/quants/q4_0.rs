//! Q4_0: blocks of 32 weights, `w = d · (q - 8)` with 4-bit `q` and an f16 `d`; multiplied with
//! Q8_0 activations.

use std::mem::{offset_of, size_of};

use super::q8_0::{BlockQ8_0, Q8_0};
use super::util::{blocks, i8s, inv, put_f16, rd_f16, signed_absmax};
use super::{BlockFormat, BlockType, QK};
use crate::DType;

/// `block_q4_0`: 32 weights, `w = d · (q - 8)`.
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// The Q4_0 weight type.
pub struct Q4_0;

impl BlockFormat for Q4_0 {
    type Block = BlockQ4_0;
    const BLCK_SIZE: usize = QK;
    const DTYPE: DType = DType::Q4_0;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ4_0, d));
        let qs = &b[offset_of!(BlockQ4_0, qs)..][..QK / 2];
        for j in 0..QK / 2 {
            let x0 = (qs[j] & 0x0f) as i32 - 8;
            let x1 = (qs[j] >> 4) as i32 - 8;
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let (max, _) = signed_absmax(x);
        let d = max / -8.0;
        let id = inv(d);
        put_f16(b, offset_of!(BlockQ4_0, d), d);
        let qs = &mut b[offset_of!(BlockQ4_0, qs)..][..QK / 2];
        for (j, q) in qs.iter_mut().enumerate() {
            let xi0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
            let xi1 = ((x[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
            *q = xi0 | (xi1 << 4);
        }
    }
}

impl BlockType for Q4_0 {
    type VecDotType = Q8_0;
    super::avx2_vec_dot!();

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q4_0>(w, a) {
            let xq = &x[offset_of!(BlockQ4_0, qs)..][..QK / 2];
            let yq = &y[offset_of!(BlockQ8_0, qs)..][..QK];
            let (mut s0, mut s1) = (0i32, 0i32);
            for ((&q, y0), y1) in xq.iter().zip(i8s(&yq[..16])).zip(i8s(&yq[16..])) {
                s0 += (i32::from(q & 0x0f) - 8) * y0;
                s1 += (i32::from(q >> 4) - 8) * y1;
            }
            sumf += (s0 + s1) as f32 * rd_f16(x, 0) * rd_f16(y, 0);
        }
        sumf
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::{offset_of, size_of};

    use super::{BlockQ4_0, BlockQ8_0};
    use crate::quants::simd::{d_prod, hsum, isum, load32, nibbles};

    const B40: usize = size_of::<BlockQ4_0>();
    const B80: usize = size_of::<BlockQ8_0>();

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_avx2(w: &[u8], a: &[u8]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in w.chunks_exact(B40).zip(a.chunks_exact(B80)) {
            let q = nibbles(&x[offset_of!(BlockQ4_0, qs)..]);
            let yv = load32(&y[offset_of!(BlockQ8_0, qs)..]);
            let s = _mm256_cvtepi32_ps(isum(q, yv, 8));
            let d = _mm256_set1_ps(d_prod(x, 0, y, 0));
            acc = _mm256_fmadd_ps(d, s, acc);
        }
        hsum(acc)
    }
}
