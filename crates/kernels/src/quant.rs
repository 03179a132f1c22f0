//! GGUF/ggml quantized blocks and their dequantization to f32, bit-exact with ggml's
//! `dequantize_row_*` (same operation order, no fused multiply-add).
//!
//! Each block type is a `#[repr(C)]` struct mirroring `ggml-common.h`, with a size assertion; the
//! dequantizers read fields at the struct's `offset_of!` positions from raw little-endian bytes,
//! so input of any alignment works.

use std::mem::{offset_of, size_of};

use rayon::prelude::*;

use crate::convert::f16_to_f32;
use crate::{check_len, mul, KernelError, Result};

/// Elements per block of the legacy quants.
pub const QK: usize = 32;
/// Elements per super-block of the k-quants.
pub const QK_K: usize = 256;
const K_SCALE_SIZE: usize = 12;

/// `block_q4_0`: 32 weights, `w = d · (q - 8)`.
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// `block_q4_1`: 32 weights, `w = d · q + m`.
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// `block_q5_0`: 32 weights, 5th bit in `qh`, `w = d · (q - 16)`.
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// `block_q5_1`: 32 weights, `w = d · q + m`.
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// `block_q8_0`: 32 weights, `w = d · q`.
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// `block_q2_K`: 256 weights in 16 groups of 16, 4-bit scale and min per group.
#[repr(C)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: u16,
    pub dmin: u16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// `block_q3_K`: 256 weights, 2 low bits in `qs`, high bit in `hmask`, 6-bit scales.
#[repr(C)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: u16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// `block_q4_K`: 256 weights in 8 groups of 32, 6-bit scales and mins.
#[repr(C)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

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

/// `block_q6_K`: 256 weights, 4 low bits in `ql`, 2 high bits in `qh`, 8-bit scales per 16.
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: u16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// The quantized types we can dequantize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

impl QuantType {
    /// Weights per block.
    pub fn block_elems(self) -> usize {
        match self {
            QuantType::Q4_0
            | QuantType::Q4_1
            | QuantType::Q5_0
            | QuantType::Q5_1
            | QuantType::Q8_0 => QK,
            _ => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QuantType::Q4_0 => size_of::<BlockQ4_0>(),
            QuantType::Q4_1 => size_of::<BlockQ4_1>(),
            QuantType::Q5_0 => size_of::<BlockQ5_0>(),
            QuantType::Q5_1 => size_of::<BlockQ5_1>(),
            QuantType::Q8_0 => size_of::<BlockQ8_0>(),
            QuantType::Q2K => size_of::<BlockQ2K>(),
            QuantType::Q3K => size_of::<BlockQ3K>(),
            QuantType::Q4K => size_of::<BlockQ4K>(),
            QuantType::Q5K => size_of::<BlockQ5K>(),
            QuantType::Q6K => size_of::<BlockQ6K>(),
        }
    }

    /// ggml's type id (`enum ggml_type`).
    pub fn ggml_id(self) -> u32 {
        match self {
            QuantType::Q4_0 => 2,
            QuantType::Q4_1 => 3,
            QuantType::Q5_0 => 6,
            QuantType::Q5_1 => 7,
            QuantType::Q8_0 => 8,
            QuantType::Q2K => 10,
            QuantType::Q3K => 11,
            QuantType::Q4K => 12,
            QuantType::Q5K => 13,
            QuantType::Q6K => 14,
        }
    }

    /// Inverse of [`QuantType::ggml_id`].
    pub fn from_ggml_id(id: u32) -> Option<Self> {
        Some(match id {
            2 => QuantType::Q4_0,
            3 => QuantType::Q4_1,
            6 => QuantType::Q5_0,
            7 => QuantType::Q5_1,
            8 => QuantType::Q8_0,
            10 => QuantType::Q2K,
            11 => QuantType::Q3K,
            12 => QuantType::Q4K,
            13 => QuantType::Q5K,
            14 => QuantType::Q6K,
            _ => return None,
        })
    }

    /// Bytes needed for `n_elems` weights (which must be a multiple of the block size).
    pub fn bytes_for(self, n_elems: usize) -> Result<usize> {
        if !n_elems.is_multiple_of(self.block_elems()) {
            return Err(KernelError::Invalid(format!(
                "{self:?}: {n_elems} elements is not a multiple of the block size {}",
                self.block_elems()
            )));
        }
        mul(
            "quant bytes",
            n_elems / self.block_elems(),
            self.block_bytes(),
        )
    }
}

#[inline]
fn rd_f16(b: &[u8], off: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

fn deq_q4_0(b: &[u8], y: &mut [f32]) {
    let d = rd_f16(b, offset_of!(BlockQ4_0, d));
    let qs = &b[offset_of!(BlockQ4_0, qs)..][..QK / 2];
    for j in 0..QK / 2 {
        let x0 = (qs[j] & 0x0f) as i32 - 8;
        let x1 = (qs[j] >> 4) as i32 - 8;
        y[j] = x0 as f32 * d;
        y[j + QK / 2] = x1 as f32 * d;
    }
}

fn deq_q4_1(b: &[u8], y: &mut [f32]) {
    let d = rd_f16(b, offset_of!(BlockQ4_1, d));
    let m = rd_f16(b, offset_of!(BlockQ4_1, m));
    let qs = &b[offset_of!(BlockQ4_1, qs)..][..QK / 2];
    for j in 0..QK / 2 {
        let x0 = (qs[j] & 0x0f) as f32;
        let x1 = (qs[j] >> 4) as f32;
        y[j] = x0 * d + m;
        y[j + QK / 2] = x1 * d + m;
    }
}

fn deq_q5_0(b: &[u8], y: &mut [f32]) {
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

fn deq_q5_1(b: &[u8], y: &mut [f32]) {
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

fn deq_q8_0(b: &[u8], y: &mut [f32]) {
    let d = rd_f16(b, offset_of!(BlockQ8_0, d));
    let qs = &b[offset_of!(BlockQ8_0, qs)..][..QK];
    for j in 0..QK {
        y[j] = (qs[j] as i8) as f32 * d;
    }
}

fn deq_q2_k(b: &[u8], y: &mut [f32]) {
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

fn deq_q3_k(b: &[u8], y: &mut [f32]) {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let d_all = rd_f16(b, offset_of!(BlockQ3K, d));
    let hm = &b[offset_of!(BlockQ3K, hmask)..][..QK_K / 8];
    let qs_all = &b[offset_of!(BlockQ3K, qs)..][..QK_K / 4];
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

/// ggml's `get_scale_min_k4`.
#[inline]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

fn deq_q4_k(b: &[u8], y: &mut [f32]) {
    let d = rd_f16(b, offset_of!(BlockQ4K, d));
    let min = rd_f16(b, offset_of!(BlockQ4K, dmin));
    let scales = &b[offset_of!(BlockQ4K, scales)..][..K_SCALE_SIZE];
    let qs = &b[offset_of!(BlockQ4K, qs)..][..QK_K / 2];
    let mut yi = 0;
    for (g, q) in qs.chunks_exact(32).enumerate() {
        let is = 2 * g;
        let (sc, m) = scale_min_k4(is, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(is + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        for &v in q {
            y[yi] = d1 * (v & 0x0f) as f32 - m1;
            yi += 1;
        }
        for &v in q {
            y[yi] = d2 * (v >> 4) as f32 - m2;
            yi += 1;
        }
    }
}

fn deq_q5_k(b: &[u8], y: &mut [f32]) {
    let d = rd_f16(b, offset_of!(BlockQ5K, d));
    let min = rd_f16(b, offset_of!(BlockQ5K, dmin));
    let scales = &b[offset_of!(BlockQ5K, scales)..][..K_SCALE_SIZE];
    let qh = &b[offset_of!(BlockQ5K, qh)..][..QK_K / 8];
    let qs = &b[offset_of!(BlockQ5K, qs)..][..QK_K / 2];
    let mut yi = 0;
    let (mut u1, mut u2) = (1u8, 2u8);
    for (g, ql) in qs.chunks_exact(32).enumerate() {
        let is = 2 * g;
        let (sc, m) = scale_min_k4(is, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(is + 1, scales);
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

fn deq_q6_k(b: &[u8], y: &mut [f32]) {
    let d = rd_f16(b, offset_of!(BlockQ6K, d));
    let ql_all = &b[offset_of!(BlockQ6K, ql)..][..QK_K / 2];
    let qh_all = &b[offset_of!(BlockQ6K, qh)..][..QK_K / 4];
    let sc_all = &b[offset_of!(BlockQ6K, scales)..][..QK_K / 16];
    for n in 0..QK_K / 128 {
        let ql = &ql_all[n * 64..n * 64 + 64];
        let qh = &qh_all[n * 32..n * 32 + 32];
        let sc = &sc_all[n * 8..n * 8 + 8];
        let yb = &mut y[n * 128..n * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            yb[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            yb[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            yb[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            yb[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

fn block_fn(qt: QuantType) -> fn(&[u8], &mut [f32]) {
    match qt {
        QuantType::Q4_0 => deq_q4_0,
        QuantType::Q4_1 => deq_q4_1,
        QuantType::Q5_0 => deq_q5_0,
        QuantType::Q5_1 => deq_q5_1,
        QuantType::Q8_0 => deq_q8_0,
        QuantType::Q2K => deq_q2_k,
        QuantType::Q3K => deq_q3_k,
        QuantType::Q4K => deq_q4_k,
        QuantType::Q5K => deq_q5_k,
        QuantType::Q6K => deq_q6_k,
    }
}

/// Dequantizes whole blocks: `bytes.len()` must be `out.len() / block_elems · block_bytes`.
pub fn dequantize(qt: QuantType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let be = qt.block_elems();
    let bb = qt.block_bytes();
    let need = qt.bytes_for(out.len())?;
    check_len("quantized bytes", need, bytes.len())?;
    let f = block_fn(qt);
    out.par_chunks_mut(be)
        .zip(bytes.par_chunks(bb))
        .with_min_len(256)
        .for_each(|(y, b)| f(b, y));
    Ok(())
}

/// Dequantizes to a new vector of `n_elems` values.
pub fn dequantize_to_vec(qt: QuantType, bytes: &[u8], n_elems: usize) -> Result<Vec<f32>> {
    check_len("quantized bytes", qt.bytes_for(n_elems)?, bytes.len())?;
    let mut out = vec![0.0f32; n_elems];
    dequantize(qt, bytes, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16b(v: f32) -> [u8; 2] {
        half::f16::from_f32(v).to_bits().to_le_bytes()
    }

    #[test]
    fn q4_0_hand_block() {
        // d = 0.5, qs[j] = j | (15 - j) << 4  →  y[j] = (j - 8)·0.5, y[j+16] = (7 - j)·0.5
        let mut b = f16b(0.5).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize_to_vec(QuantType::Q4_0, &b, 32).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5);
        }
    }

    #[test]
    fn q4_1_hand_block() {
        let mut b = f16b(0.25).to_vec();
        b.extend(f16b(-1.0));
        b.extend((0..16u8).map(|j| j | (3 << 4)));
        let y = dequantize_to_vec(QuantType::Q4_1, &b, 32).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 0.25 - 1.0);
            assert_eq!(y[j + 16], 3.0 * 0.25 - 1.0);
        }
    }

    #[test]
    fn q5_0_and_q5_1_high_bits() {
        // qh bit j → element j gets +16; bit j+16 → element j+16 gets +16.
        let qh: u32 = (1 << 3) | (1 << 20);
        let mut b = f16b(1.0).to_vec();
        b.extend(qh.to_le_bytes());
        b.extend([0x21u8; 16]); // low nibble 1, high nibble 2
        let y = dequantize_to_vec(QuantType::Q5_0, &b, 32).unwrap();
        assert_eq!(y[0], 1.0 - 16.0);
        assert_eq!(y[3], 17.0 - 16.0);
        assert_eq!(y[16], 2.0 - 16.0);
        assert_eq!(y[20], 18.0 - 16.0);
        let mut b = f16b(2.0).to_vec();
        b.extend(f16b(0.5));
        b.extend(qh.to_le_bytes());
        b.extend([0x21u8; 16]);
        let y = dequantize_to_vec(QuantType::Q5_1, &b, 32).unwrap();
        assert_eq!(y[0], 2.5);
        assert_eq!(y[3], 34.5);
        assert_eq!(y[20], 36.5);
    }

    #[test]
    fn q8_0_hand_block() {
        let mut b = f16b(0.125).to_vec();
        b.extend((0..32i32).map(|j| ((j - 16) as i8) as u8));
        let y = dequantize_to_vec(QuantType::Q8_0, &b, 32).unwrap();
        for (j, v) in y.iter().enumerate() {
            assert_eq!(*v, (j as f32 - 16.0) * 0.125);
        }
    }

    #[test]
    fn q6_k_constant_block() {
        // ql = 0x11 (low nibbles 1), qh = 0 → q = 1 - 32 = -31 everywhere; scales = 2; d = 0.5
        let mut b = vec![0x11u8; 128];
        b.extend([0u8; 64]);
        b.extend([2u8; 16]);
        b.extend(f16b(0.5));
        let y = dequantize_to_vec(QuantType::Q6K, &b, 256).unwrap();
        assert!(y.iter().all(|&v| v == 0.5 * 2.0 * -31.0));
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(dequantize_to_vec(QuantType::Q4_0, &[0u8; 18], 31).is_err());
        assert!(dequantize_to_vec(QuantType::Q4_0, &[0u8; 17], 32).is_err());
        assert!(dequantize_to_vec(QuantType::Q6K, &[0u8; 210], 256).is_ok());
        for id in [2, 3, 6, 7, 8, 10, 11, 12, 13, 14] {
            let q = QuantType::from_ggml_id(id).unwrap();
            assert_eq!(q.ggml_id(), id);
        }
        assert!(QuantType::from_ggml_id(1).is_none());
    }
}
