//! Q3_K: super-blocks of 256 weights, 2 low bits in `qs`, the high bit in `hmask`, 6-bit group
//! scales packed in 12 bytes and an f16 `d`; multiplied with Q8_K activations (scalar kernel
//! only).

use std::mem::{offset_of, size_of};

use super::q8_k::{q8k, Q8K};
use super::util::{blocks, make_q3_quants, nearest_int, pack2, put_f16, rd_f16, scaled_isum};
use super::{BlockFormat, BlockType, QK_K};
use crate::DType;

/// `block_q3_K`: 256 weights, 2 low bits in `qs`, high bit in `hmask`, 6-bit scales.
#[repr(C)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: u16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// The sixteen 6-bit scales of a Q3_K block (`b`: one whole block), unpacked as ggml does (as
/// stored, before the `- 32`).
#[inline(always)]
pub(crate) fn unpack_scales(b: &[u8]) -> [i8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let sb = &b[offset_of!(BlockQ3K, scales)..][..12];
    let mut aux = [0u32; 4];
    for (i, a) in aux.iter_mut().take(3).enumerate() {
        *a = u32::from_le_bytes([sb[4 * i], sb[4 * i + 1], sb[4 * i + 2], sb[4 * i + 3]]);
    }
    let tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4);
    aux[3] = ((aux[1] >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4);
    aux[0] = (aux[0] & KMASK2) | ((tmp & KMASK1) << 4);
    aux[1] = (aux[1] & KMASK2) | (((tmp >> 2) & KMASK1) << 4);
    let mut scales = [0i8; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        *s = (aux[i / 4] >> (8 * (i % 4))) as u8 as i8;
    }
    scales
}

/// The Q3K weight type.
pub struct Q3K;

impl BlockFormat for Q3K {
    type Block = BlockQ3K;
    const BLCK_SIZE: usize = QK_K;
    const DTYPE: DType = DType::Q3_K;

    fn to_float(b: &[u8], y: &mut [f32]) {
        let d_all = rd_f16(b, offset_of!(BlockQ3K, d));
        let hm = &b[offset_of!(BlockQ3K, hmask)..][..QK_K / 8];
        let qs_all = &b[offset_of!(BlockQ3K, qs)..][..QK_K / 4];
        let scales = unpack_scales(b);
        let mut yi = 0;
        let mut is = 0;
        let mut m: u8 = 1;
        for n in 0..QK_K / 128 {
            let q = &qs_all[n * 32..n * 32 + 32];
            let mut shift = 0;
            for _ in 0..4 {
                for half in 0..2 {
                    let dl = d_all * (scales[is] as i32 - 32) as f32;
                    is += 1;
                    for l in 0..16 {
                        let li = l + 16 * half;
                        let lo = ((q[li] >> shift) & 3) as i32;
                        let sub = if hm[li] & m != 0 { 0 } else { 4 };
                        y[yi] = dl * (lo - sub) as f32;
                        yi += 1;
                    }
                }
                shift += 2;
                m = m.wrapping_shl(1);
            }
        }
    }

    fn from_float(x: &[f32], b: &mut [u8]) {
        let mut l = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let mut max_scale = 0.0f32;
        let mut amax = 0.0f32;
        for (j, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            scales[j] = make_q3_quants(4, xs, ls);
            if scales[j].abs() > amax {
                amax = scales[j].abs();
                max_scale = scales[j];
            }
        }
        let mut sc = [0u8; 12];
        let d = if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                let lv = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    sc[j] = lv & 0xf;
                } else {
                    sc[j - 8] |= (lv & 0xf) << 4;
                }
                sc[j % 4 + 8] |= (lv >> 4) << (2 * (j / 4));
            }
            put_f16(b, offset_of!(BlockQ3K, d), 1.0 / iscale)
        } else {
            put_f16(b, offset_of!(BlockQ3K, d), 0.0)
        };
        b[offset_of!(BlockQ3K, scales)..][..12].copy_from_slice(&sc);
        for j in 0..QK_K / 16 {
            let low = if j < 8 { sc[j] & 0xf } else { sc[j - 8] >> 4 };
            let s = (low | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i32 - 32;
            let dl = d * s as f32;
            if dl == 0.0 {
                continue;
            }
            for ii in 0..16 {
                l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dl).clamp(-4, 3) + 4) as u8;
            }
        }
        let mut hmask = [0u8; QK_K / 8];
        for (j, v) in l.iter_mut().enumerate() {
            if *v > 3 {
                hmask[j % (QK_K / 8)] |= 1 << (j / (QK_K / 8));
                *v -= 4;
            }
        }
        b[offset_of!(BlockQ3K, hmask)..][..QK_K / 8].copy_from_slice(&hmask);
        pack2(&l, &mut b[offset_of!(BlockQ3K, qs)..][..QK_K / 4]);
    }
}

impl BlockType for Q3K {
    type VecDotType = Q8K;

    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32 {
        const KMASK1: u32 = 0x0303_0303;
        const KMASK2: u32 = 0x0f0f_0f0f;
        let mut sumf = 0.0f32;
        for (x, y) in blocks::<Q3K>(w, a) {
            let y = q8k(y);
            let hm = &x[offset_of!(BlockQ3K, hmask)..][..QK_K / 8];
            let qs = &x[offset_of!(BlockQ3K, qs)..][..QK_K / 4];
            let sb = &x[offset_of!(BlockQ3K, scales)..][..12];
            let mut aux = [0u32; 4];
            for (i, v) in aux.iter_mut().take(3).enumerate() {
                *v = u32::from_le_bytes([sb[4 * i], sb[4 * i + 1], sb[4 * i + 2], sb[4 * i + 3]]);
            }
            let tmp = aux[2];
            aux[2] = ((aux[0] >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4);
            aux[3] = ((aux[1] >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4);
            aux[0] = (aux[0] & KMASK2) | ((tmp & KMASK1) << 4);
            aux[1] = (aux[1] & KMASK2) | (((tmp >> 2) & KMASK1) << 4);
            let mut sc = [0i32; 16];
            for (i, s) in sc.iter_mut().enumerate() {
                *s = i32::from((aux[i / 4] >> (8 * (i % 4))) as u8 as i8) - 32;
            }
            let mut lv = [0i8; QK_K];
            for (n, q) in qs.chunks_exact(32).enumerate() {
                for k in 0..4 {
                    let m = 1u8 << (4 * n + k);
                    for (l, &v) in q.iter().enumerate() {
                        let lo = ((v >> (2 * k)) & 3) as i8;
                        lv[128 * n + 32 * k + l] = lo - if hm[l] & m != 0 { 0 } else { 4 };
                    }
                }
            }
            let isum = scaled_isum(&lv, &sc, y.qs);
            sumf += rd_f16(x, offset_of!(BlockQ3K, d)) * y.d * isum as f32;
        }
        sumf
    }
}
