//! Every weight type as *units* of 32 weights: integer levels (exact in bfloat16: at most 128 in
//! magnitude) and, per half-unit of 16, an f32 scale and an f32 offset, such that ggml's
//! dequantized weight is `scale · level + offset` bit for bit. The bf16 kernels multiply the
//! levels with the activations exactly and apply the scales (and offsets, through the
//! activations' sums) in f32.

use std::mem::offset_of;

use crate::quants::q2_k::{BlockQ2K, Q2K};
use crate::quants::q3_k::{BlockQ3K, Q3K};
use crate::quants::q4_0::{BlockQ4_0, Q4_0};
use crate::quants::q4_1::{BlockQ4_1, Q4_1};
use crate::quants::q4_k::{BlockQ4K, Q4K};
use crate::quants::q5_0::{BlockQ5_0, Q5_0};
use crate::quants::q5_1::{BlockQ5_1, Q5_1};
use crate::quants::q5_k::{BlockQ5K, Q5K};
use crate::quants::q6_k::{BlockQ6K, Q6K};
use crate::quants::q8_0::{BlockQ8_0, Q8_0};
use crate::quants::util::{get_scale_min_k4, rd_f16};
use crate::quants::{BlockFormat, QK_K};

/// Weights per unit.
pub(crate) const UNIT: usize = 32;
/// Most units in one block (a k-quant super-block).
pub(crate) const MAX_UNITS: usize = QK_K / UNIT;

/// Where a type's offsets live: none, one per unit, or one per half-unit of 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offsets {
    None,
    PerUnit,
    PerHalf,
}

impl Offsets {
    /// Offsets (and activation sums) per unit.
    pub(crate) const fn per_unit(self) -> usize {
        match self {
            Offsets::None => 0,
            Offsets::PerUnit => 1,
            Offsets::PerHalf => 2,
        }
    }
}

/// The scales and offsets of one block's units: `scales[u][h]` and `offsets[u][h]` apply to
/// weights `16h..16h + 16` of unit `u` (both halves equal where the type has one per unit).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Params {
    pub(crate) scales: [[f32; 2]; MAX_UNITS],
    pub(crate) offsets: [[f32; 2]; MAX_UNITS],
}

/// A weight type seen as units (see the module documentation).
pub(crate) trait Units: BlockFormat {
    /// Units per block.
    const UNITS: usize = Self::BLCK_SIZE / UNIT;
    /// Where the offsets live.
    const OFFSETS: Offsets;
    /// Whether the two halves of a unit have their own scales (else both are equal).
    const HALF_SCALES: bool = false;

    /// The scales and offsets of the block's units.
    fn params(b: &[u8], p: &mut Params);

    /// The integer levels of unit `u` of the block.
    fn levels(b: &[u8], u: usize, q: &mut [i8; UNIT]);
}

/// The 4-bit value of weight `e` of a legacy block's 16 nibble bytes (low nibbles first).
#[inline]
fn nib(qs: &[u8], e: usize) -> u8 {
    if e < 16 {
        qs[e] & 0x0f
    } else {
        qs[e - 16] >> 4
    }
}

fn fill(p: &mut Params, u: usize, scale: f32, offset: f32) {
    p.scales[u] = [scale; 2];
    p.offsets[u] = [offset; 2];
}

impl Units for Q4_0 {
    const OFFSETS: Offsets = Offsets::None;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        fill(p, 0, rd_f16(b, offset_of!(BlockQ4_0, d)), 0.0);
    }
    #[inline]
    fn levels(b: &[u8], _u: usize, q: &mut [i8; UNIT]) {
        let qs = &b[offset_of!(BlockQ4_0, qs)..][..16];
        for (e, v) in q.iter_mut().enumerate() {
            *v = nib(qs, e) as i8 - 8;
        }
    }
}

impl Units for Q4_1 {
    const OFFSETS: Offsets = Offsets::PerUnit;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        let d = rd_f16(b, offset_of!(BlockQ4_1, d));
        fill(p, 0, d, rd_f16(b, offset_of!(BlockQ4_1, m)));
    }
    #[inline]
    fn levels(b: &[u8], _u: usize, q: &mut [i8; UNIT]) {
        let qs = &b[offset_of!(BlockQ4_1, qs)..][..16];
        for (e, v) in q.iter_mut().enumerate() {
            *v = nib(qs, e) as i8;
        }
    }
}

/// Bit `e` of a legacy five-bit block's `qh` moved to bit 4.
#[inline]
fn fifth(qh: &[u8], e: usize) -> u8 {
    ((qh[e / 8] >> (e % 8)) & 1) << 4
}

impl Units for Q5_0 {
    const OFFSETS: Offsets = Offsets::None;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        fill(p, 0, rd_f16(b, offset_of!(BlockQ5_0, d)), 0.0);
    }
    #[inline]
    fn levels(b: &[u8], _u: usize, q: &mut [i8; UNIT]) {
        let qs = &b[offset_of!(BlockQ5_0, qs)..][..16];
        let qh = &b[offset_of!(BlockQ5_0, qh)..][..4];
        for (e, v) in q.iter_mut().enumerate() {
            *v = (nib(qs, e) | fifth(qh, e)) as i8 - 16;
        }
    }
}

impl Units for Q5_1 {
    const OFFSETS: Offsets = Offsets::PerUnit;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        let d = rd_f16(b, offset_of!(BlockQ5_1, d));
        fill(p, 0, d, rd_f16(b, offset_of!(BlockQ5_1, m)));
    }
    #[inline]
    fn levels(b: &[u8], _u: usize, q: &mut [i8; UNIT]) {
        let qs = &b[offset_of!(BlockQ5_1, qs)..][..16];
        let qh = &b[offset_of!(BlockQ5_1, qh)..][..4];
        for (e, v) in q.iter_mut().enumerate() {
            *v = (nib(qs, e) | fifth(qh, e)) as i8;
        }
    }
}

impl Units for Q8_0 {
    const OFFSETS: Offsets = Offsets::None;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        fill(p, 0, rd_f16(b, offset_of!(BlockQ8_0, d)), 0.0);
    }
    #[inline]
    fn levels(b: &[u8], _u: usize, q: &mut [i8; UNIT]) {
        let qs = &b[offset_of!(BlockQ8_0, qs)..][..32];
        for (v, &x) in q.iter_mut().zip(qs) {
            *v = x as i8;
        }
    }
}

impl Units for Q2K {
    const HALF_SCALES: bool = true;
    const OFFSETS: Offsets = Offsets::PerHalf;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        let d = rd_f16(b, offset_of!(BlockQ2K, d));
        let min = rd_f16(b, offset_of!(BlockQ2K, dmin));
        let sc = &b[offset_of!(BlockQ2K, scales)..][..16];
        for u in 0..8 {
            for h in 0..2 {
                // Unit u = 4·half + shift step; its two halves use consecutive scale bytes.
                let s = sc[2 * u + h];
                p.scales[u][h] = d * (s & 0x0f) as f32;
                p.offsets[u][h] = -(min * (s >> 4) as f32);
            }
        }
    }
    #[inline]
    fn levels(b: &[u8], u: usize, q: &mut [i8; UNIT]) {
        let qs = &b[offset_of!(BlockQ2K, qs)..][32 * (u / 4)..][..32];
        let shift = 2 * (u % 4);
        for (v, &x) in q.iter_mut().zip(qs) {
            *v = ((x >> shift) & 3) as i8;
        }
    }
}

impl Units for Q3K {
    const HALF_SCALES: bool = true;
    const OFFSETS: Offsets = Offsets::None;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        let d = rd_f16(b, offset_of!(BlockQ3K, d));
        let sc = crate::quants::q3_k::unpack_scales(b);
        for u in 0..8 {
            for h in 0..2 {
                p.scales[u][h] = d * (sc[2 * u + h] as i32 - 32) as f32;
                p.offsets[u][h] = 0.0;
            }
        }
    }
    #[inline]
    fn levels(b: &[u8], u: usize, q: &mut [i8; UNIT]) {
        let qs = &b[offset_of!(BlockQ3K, qs)..][32 * (u / 4)..][..32];
        let hm = &b[offset_of!(BlockQ3K, hmask)..][..32];
        let shift = 2 * (u % 4);
        for (e, v) in q.iter_mut().enumerate() {
            let lo = ((qs[e] >> shift) & 3) as i8;
            let sub = if hm[e] & (1 << u) != 0 { 0 } else { 4 };
            *v = lo - sub;
        }
    }
}

impl Units for Q4K {
    const OFFSETS: Offsets = Offsets::PerUnit;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        let d = rd_f16(b, offset_of!(BlockQ4K, d));
        let min = rd_f16(b, offset_of!(BlockQ4K, dmin));
        let sc = &b[offset_of!(BlockQ4K, scales)..][..12];
        for u in 0..8 {
            let (s, m) = get_scale_min_k4(u, sc);
            fill(p, u, d * s as f32, -(min * m as f32));
        }
    }
    #[inline]
    fn levels(b: &[u8], u: usize, q: &mut [i8; UNIT]) {
        let qs = &b[offset_of!(BlockQ4K, qs)..][32 * (u / 2)..][..32];
        let shift = 4 * (u % 2);
        for (v, &x) in q.iter_mut().zip(qs) {
            *v = ((x >> shift) & 0x0f) as i8;
        }
    }
}

impl Units for Q5K {
    const OFFSETS: Offsets = Offsets::PerUnit;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        let d = rd_f16(b, offset_of!(BlockQ5K, d));
        let min = rd_f16(b, offset_of!(BlockQ5K, dmin));
        let sc = &b[offset_of!(BlockQ5K, scales)..][..12];
        for u in 0..8 {
            let (s, m) = get_scale_min_k4(u, sc);
            fill(p, u, d * s as f32, -(min * m as f32));
        }
    }
    #[inline]
    fn levels(b: &[u8], u: usize, q: &mut [i8; UNIT]) {
        let qs = &b[offset_of!(BlockQ5K, qs)..][32 * (u / 2)..][..32];
        let qh = &b[offset_of!(BlockQ5K, qh)..][..32];
        let shift = 4 * (u % 2);
        for (e, v) in q.iter_mut().enumerate() {
            let hi = ((qh[e] >> u) & 1) << 4;
            *v = (((qs[e] >> shift) & 0x0f) | hi) as i8;
        }
    }
}

impl Units for Q6K {
    const HALF_SCALES: bool = true;
    const OFFSETS: Offsets = Offsets::None;
    #[inline(always)]
    fn params(b: &[u8], p: &mut Params) {
        let d = rd_f16(b, offset_of!(BlockQ6K, d));
        let sc = &b[offset_of!(BlockQ6K, scales)..][..16];
        for u in 0..8 {
            let (h, k) = (u / 4, u % 4);
            for half in 0..2 {
                p.scales[u][half] = d * (sc[8 * h + 2 * k + half] as i8) as f32;
                p.offsets[u][half] = 0.0;
            }
        }
    }
    #[inline]
    fn levels(b: &[u8], u: usize, q: &mut [i8; UNIT]) {
        let (h, k) = (u / 4, u % 4);
        let ql = &b[offset_of!(BlockQ6K, ql)..][64 * h + 32 * (k & 1)..][..32];
        let qh = &b[offset_of!(BlockQ6K, qh)..][32 * h..][..32];
        let shift = 4 * (k >> 1);
        for (e, v) in q.iter_mut().enumerate() {
            let lo = (ql[e] >> shift) & 0x0f;
            let hi = (qh[e] >> (2 * k)) & 3;
            *v = (lo | (hi << 4)) as i8 - 32;
        }
    }
}

/// Runs `$body` with `$T` the [`Units`] type of the weight type `$ty`, or `$other`.
macro_rules! dispatch_units {
    ($ty:expr, $T:ident => $body:expr, $p:pat => $other:expr) => {
        $crate::quants::dispatch!($ty, $T => $body, $p => $other)
    };
}
pub(crate) use dispatch_units;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quants::WEIGHT_TYPES;

    /// `scale · level + offset` is ggml's dequantized weight, bit for bit, for every type.
    fn check<T: Units>(seed: &mut u64) {
        let n = 4 * T::BLCK_SIZE;
        let x: Vec<f32> = (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        let mut blocks = vec![0u8; n / T::BLCK_SIZE * T::BLCK_BYTES];
        for (v, b) in x
            .chunks_exact(T::BLCK_SIZE)
            .zip(blocks.chunks_exact_mut(T::BLCK_BYTES))
        {
            T::from_float(v, b);
        }
        let mut y = vec![0.0f32; T::BLCK_SIZE];
        for b in blocks.chunks_exact(T::BLCK_BYTES) {
            T::to_float(b, &mut y);
            let mut p = Params::default();
            T::params(b, &mut p);
            for u in 0..T::UNITS {
                let mut q = [0i8; UNIT];
                T::levels(b, u, &mut q);
                for (e, &l) in q.iter().enumerate() {
                    assert!((-128..=127).contains(&(l as i32)));
                    let (s, o) = (p.scales[u][e / 16], p.offsets[u][e / 16]);
                    // Types without offsets dequantize as `scale · level` (no `+ 0.0`, which
                    // would turn −0 into +0).
                    let w = if T::OFFSETS == Offsets::None {
                        s * l as f32
                    } else {
                        s * l as f32 + o
                    };
                    let want = y[u * UNIT + e];
                    assert_eq!(
                        w.to_bits(),
                        want.to_bits(),
                        "{:?} unit {u} weight {e}",
                        T::DTYPE
                    );
                }
                if T::OFFSETS != Offsets::PerHalf {
                    assert_eq!(p.offsets[u][0].to_bits(), p.offsets[u][1].to_bits());
                }
                if T::OFFSETS == Offsets::None {
                    assert_eq!(p.offsets[u], [0.0; 2]);
                }
            }
        }
    }

    #[test]
    fn units_are_ggml_dequantization_bit_for_bit() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for ty in WEIGHT_TYPES {
            dispatch_units!(ty, T => check::<T>(&mut seed), other => panic!("{other}"));
        }
    }
}
