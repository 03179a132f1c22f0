//! Q2_K: super-blocks of 256 weights in 16 groups of 16, 2-bit quants with a 4-bit scale and min
//! per group and f16 `d` and `dmin`; multiplied with Q8_K activations (scalar kernel only).

use std::mem::{offset_of, size_of};

use super::q8_k::{q8k, Q8K};
use super::util::{
    blocks, make_qkx2_quants, min_term, nearest_int, pack2, put_f16, rd_f16, scaled_isum,
};
use super::{BlockFormat, BlockType, QK_K};
use crate::DType;

/// `block_q2_K`: 256 weights in 16 groups of 16, 4-bit scale and min per group.
#[repr(C)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: u16,
    pub dmin: u16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// The Q2K weight type.
pub struct Q2K;

impl BlockFormat for Q2K {
    type Block = BlockQ2K;
    const BLCK_SIZE: usize = QK_K;
    const DTYPE: DType = DType::Q2_K;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d = rd_f16(b, offset_of!(BlockQ2K, d));
        let min = rd_f16(b, offset_of!(BlockQ2K, dmin));
        let scales = &b[offset_of!(BlockQ2K, scales)..][..QK_K / 16];
        let qs_all = &b[offset_of!(BlockQ2K, qs)..][..QK_K / 4];
        let mut yi = 0;
        let mut is = 0;
        for n in 0..QK_K / 128 {
            let q = &qs_all[n * 32..n * 32 + 32];
            let mut shift = 0;
            for _ in 0..4 {
                for half in 0..2 {
                    let sc = scales[is];
                    is += 1;
                    let dl = d * (sc & 0x0f) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for l in 0..16 {
                        let qv = ((q[l + 16 * half] >> shift) & 3) as f32;
                        y[yi] = dl * qv - ml;
                        yi += 1;
                    }
                }
                shift += 2;
            }
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        const Q4SCALE: f32 = 15.0;
        let mut l = [0u8; QK_K];
        let mut mins = [0.0f32; QK_K / 16];
        let mut scales = [0.0f32; QK_K / 16];
        let mut max_scale = 0.0f32;
        let mut max_min = 0.0f32;
        for (j, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let mut weights = [0.0f32; 16];
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            let (s, m) = make_qkx2_quants(3, xs, &weights, ls, (-0.5, 0.1, 15), true);
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }
        let mut sc = [0u8; QK_K / 16];
        let d = if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (o, &s) in sc.iter_mut().zip(&scales) {
                *o = nearest_int(iscale * s) as u8;
            }
            put_f16(b, offset_of!(BlockQ2K, d), max_scale / Q4SCALE)
        } else {
            put_f16(b, offset_of!(BlockQ2K, d), 0.0)
        };
        let dmin = if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (o, &m) in sc.iter_mut().zip(&mins) {
                *o |= (nearest_int(iscale * m) as u8) << 4;
            }
            put_f16(b, offset_of!(BlockQ2K, dmin), max_min / Q4SCALE)
        } else {
            put_f16(b, offset_of!(BlockQ2K, dmin), 0.0)
        };
        let so = offset_of!(BlockQ2K, scales);
        b[so..so + QK_K / 16].copy_from_slice(&sc);
        for (j, &s) in sc.iter().enumerate() {
            let dl = d * (s & 0xf) as f32;
            if dl == 0.0 {
                continue;
            }
            let dm = dmin * (s >> 4) as f32;
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int((x[16 * j + ii] + dm) / dl).clamp(0, 3) as u8;
            }
        }
        pack2(&l, &mut b[offset_of!(BlockQ2K, qs)..][..QK_K / 4]);
    }
}

impl BlockType for Q2K {
    type VecDotType = Q8K;

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q2K>(w, a) {
            let y = q8k(y);
            let qs = &x[offset_of!(BlockQ2K, qs)..][..QK_K / 4];
            let scb = &x[offset_of!(BlockQ2K, scales)..][..QK_K / 16];
            let mut lv = [0i8; QK_K];
            for (n, q) in qs.chunks_exact(32).enumerate() {
                for k in 0..4 {
                    for (l, &v) in q.iter().enumerate() {
                        lv[128 * n + 32 * k + l] = ((v >> (2 * k)) & 3) as i8;
                    }
                }
            }
            let mut sc = [0i32; 16];
            let mut mn = [0i32; 16];
            for ((s, m), &b) in sc.iter_mut().zip(mn.iter_mut()).zip(scb) {
                *s = i32::from(b & 0x0f);
                *m = i32::from(b >> 4);
            }
            let isum = scaled_isum(&lv, &sc, y.qs);
            let summ = min_term(&y.bsums, &mn);
            let dall = y.d * rd_f16(x, offset_of!(BlockQ2K, d));
            let dmin = y.d * rd_f16(x, offset_of!(BlockQ2K, dmin));
            sumf += dall * isum as f32 - dmin * summ as f32;
        }
        sumf
    }
}
