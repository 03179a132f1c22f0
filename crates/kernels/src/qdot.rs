//! Dot products of quantized weight rows against 8-bit quantized activations, as ggml computes
//! them on the CPU (`ggml_vec_dot_<w>_<a>`).
//!
//! ggml never multiplies quantized weights by f32 activations: it first quantizes the activation
//! row to the weight type's `vec_dot_type` and then sums integer products block by block:
//!
//! | weights                    | activations |
//! |----------------------------|-------------|
//! | Q4_0, Q5_0, Q8_0           | Q8_0        |
//! | Q4_1, Q5_1                 | Q8_1        |
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K | Q8_K      |
//!
//! The scalar kernels here follow ggml's generic (`*_generic`) code: the same integer sums per
//! block and the same f32 scaling (for the k-quants one integer sum per super-block where ggml
//! spreads it over 8 f32 lanes). AVX2 kernels (`qdot_avx2`, chosen at run time) exist for Q4_0,
//! Q4_1, Q5_0, Q5_1, Q8_0, Q4_K and Q6_K and compute identical integer sums per block; for the
//! legacy quants the f32 accumulation over blocks is reordered, the k-quants are bit-identical.
//! Q2_K, Q3_K and Q5_K run the scalar kernel everywhere.

use std::mem::{offset_of, size_of};

use crate::convert::f16_to_f32;
use crate::quant::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, QuantType, QK, QK_K,
};
use crate::{check_len, mul, KernelError, Result};

/// `block_q8_1`: 32 activations, `a = d · q`, plus `s = d · Σq` (both f16).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: u16,
    pub s: u16,
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// `block_q8_K`: 256 activations, `a = d · q` (f32 `d`), plus the sums of each 16 quants.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

/// 8-bit activation formats used by the dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActType {
    Q8_0,
    Q8_1,
    Q8K,
}

impl ActType {
    /// Activations per block.
    pub fn block_elems(self) -> usize {
        match self {
            ActType::Q8_0 | ActType::Q8_1 => QK,
            ActType::Q8K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            ActType::Q8_0 => size_of::<BlockQ8_0>(),
            ActType::Q8_1 => size_of::<BlockQ8_1>(),
            ActType::Q8K => size_of::<BlockQ8K>(),
        }
    }

    /// Bytes needed for `n` activations (a multiple of the block size).
    pub fn bytes_for(self, n: usize) -> Result<usize> {
        if !n.is_multiple_of(self.block_elems()) {
            return Err(KernelError::Invalid(format!(
                "{self:?}: {n} activations is not a multiple of the block size {}",
                self.block_elems()
            )));
        }
        mul(
            "activation bytes",
            n / self.block_elems(),
            self.block_bytes(),
        )
    }
}

/// ggml's `vec_dot_type`: the activation format a weight type is multiplied with.
pub fn vec_dot_type(ty: QuantType) -> ActType {
    match ty {
        QuantType::Q4_0 | QuantType::Q5_0 | QuantType::Q8_0 => ActType::Q8_0,
        QuantType::Q4_1 | QuantType::Q5_1 => ActType::Q8_1,
        QuantType::Q2K | QuantType::Q3K | QuantType::Q4K | QuantType::Q5K | QuantType::Q6K => {
            ActType::Q8K
        }
    }
}

#[inline]
pub(crate) fn rd_f16(b: &[u8], off: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

#[inline]
fn put_f16(b: &mut [u8], off: usize, x: f32) {
    b[off..off + 2].copy_from_slice(&half::f16::from_f32(x).to_bits().to_le_bytes());
}

#[inline]
fn rd_f32(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// ggml's `nearest_int`: round to nearest, ties to even, valid for |x| ≤ 4194303.
#[inline]
fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    let i = val.to_bits() as i32;
    (i & 0x007f_ffff) - 0x0040_0000
}

fn q8_1_block(x: &[f32], b: &mut [u8]) {
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

fn q8_k_block(x: &[f32], b: &mut [u8]) {
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

fn quantize_act(act: ActType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    check_len("activation bytes", act.bytes_for(src.len())?, dst.len())?;
    let f: fn(&[f32], &mut [u8]) = match act {
        ActType::Q8_0 => return crate::quantize::quantize_row_q8_0(src, dst),
        ActType::Q8_1 => q8_1_block,
        ActType::Q8K => q8_k_block,
    };
    for (x, b) in src
        .chunks_exact(act.block_elems())
        .zip(dst.chunks_exact_mut(act.block_bytes()))
    {
        f(x, b);
    }
    Ok(())
}

/// ggml's `quantize_row_q8_1_ref`: `dst` must hold `src.len() / 32 · 36` bytes.
pub fn quantize_row_q8_1(src: &[f32], dst: &mut [u8]) -> Result<()> {
    quantize_act(ActType::Q8_1, src, dst)
}

/// ggml's `quantize_row_q8_K_ref`: `dst` must hold `src.len() / 256 · 292` bytes.
/// (An all-zero block gets zero `bsums`, where ggml leaves them unwritten.)
pub fn quantize_row_q8_k(src: &[f32], dst: &mut [u8]) -> Result<()> {
    quantize_act(ActType::Q8K, src, dst)
}

/// Quantizes an activation row to `act` into a new vector.
pub fn quantize_activations(act: ActType, src: &[f32]) -> Result<Vec<u8>> {
    let mut dst = vec![0u8; act.bytes_for(src.len())?];
    quantize_act(act, src, &mut dst)?;
    Ok(dst)
}

/// Quantizes an activation row to `act` into `dst` (exactly `act.bytes_for(src.len())` bytes).
pub fn quantize_activations_into(act: ActType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    quantize_act(act, src, dst)
}

/// Dequantizes `n` activations of format `act` (`d · q`).
pub fn dequantize_activations(act: ActType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    check_len("activation bytes", act.bytes_for(n)?, bytes.len())?;
    let mut out = Vec::with_capacity(n);
    for b in bytes.chunks_exact(act.block_bytes()) {
        let (d, qs) = match act {
            ActType::Q8_0 => (rd_f16(b, 0), &b[2..2 + QK]),
            ActType::Q8_1 => (rd_f16(b, 0), &b[4..4 + QK]),
            ActType::Q8K => (rd_f32(b, 0), &b[4..4 + QK_K]),
        };
        out.extend(qs.iter().map(|&q| f32::from(q as i8) * d));
    }
    Ok(out)
}

/// Checks sizes for a dot of `n` elements of weight type `ty` against its activation type.
fn check_dot(ty: QuantType, w: &[u8], a: &[u8], n: usize) -> Result<()> {
    check_len("quantized weight bytes", ty.bytes_for(n)?, w.len())?;
    check_len(
        "quantized activation bytes",
        vec_dot_type(ty).bytes_for(n)?,
        a.len(),
    )
}

/// Dot product of `n` quantized weights (`ty`) with `n` activations quantized to
/// [`vec_dot_type`]`(ty)`, using AVX2 where the CPU has it and a kernel exists.
pub fn vec_dot(ty: QuantType, w: &[u8], a: &[u8], n: usize) -> Result<f32> {
    check_dot(ty, w, a, n)?;
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = crate::qdot_avx2::dot(ty, w, a) {
        return Ok(v);
    }
    Ok(scalar(ty, w, a))
}

/// [`vec_dot`] without the per-call size checks, for callers that checked once that `w` holds
/// `ty.bytes_for(n)` and `a` `vec_dot_type(ty).bytes_for(n)` bytes for the same `n` (whole
/// blocks). The kernels only read through bounds-checked sub-slices, so wrong sizes give a wrong
/// sum or a panic, never undefined behaviour.
pub(crate) fn vec_dot_prechecked(ty: QuantType, w: &[u8], a: &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = crate::qdot_avx2::dot(ty, w, a) {
        return v;
    }
    scalar(ty, w, a)
}

/// The scalar reference kernel (ggml's generic code), whatever the CPU.
pub fn vec_dot_scalar(ty: QuantType, w: &[u8], a: &[u8], n: usize) -> Result<f32> {
    check_dot(ty, w, a, n)?;
    Ok(scalar(ty, w, a))
}

/// The AVX2 kernel alone: `Ok(None)` when the CPU lacks AVX2/FMA/F16C or `ty` has no AVX2 kernel.
pub fn vec_dot_avx2(ty: QuantType, w: &[u8], a: &[u8], n: usize) -> Result<Option<f32>> {
    check_dot(ty, w, a, n)?;
    #[cfg(target_arch = "x86_64")]
    {
        Ok(crate::qdot_avx2::dot(ty, w, a))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Ok(None)
    }
}

/// Whether [`vec_dot`] runs an AVX2 kernel for `ty` on this CPU.
pub fn has_avx2_kernel(ty: QuantType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::qdot_avx2::available(ty)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ty;
        false
    }
}

/// Sizes must have been checked: whole blocks on both sides.
fn scalar(ty: QuantType, w: &[u8], a: &[u8]) -> f32 {
    match ty {
        QuantType::Q4_0 => dot_q4_0(w, a),
        QuantType::Q4_1 => dot_q4_1(w, a),
        QuantType::Q5_0 => dot_q5_0(w, a),
        QuantType::Q5_1 => dot_q5_1(w, a),
        QuantType::Q8_0 => dot_q8_0(w, a),
        QuantType::Q2K => dot_q2_k(w, a),
        QuantType::Q3K => dot_q3_k(w, a),
        QuantType::Q4K => dot_q4_k(w, a),
        QuantType::Q5K => dot_q5_k(w, a),
        QuantType::Q6K => dot_q6_k(w, a),
    }
}

#[inline]
fn i8s(b: &[u8]) -> impl Iterator<Item = i32> + '_ {
    b.iter().map(|&v| i32::from(v as i8))
}

fn blocks<'a>(
    ty: QuantType,
    w: &'a [u8],
    a: &'a [u8],
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    w.chunks_exact(ty.block_bytes())
        .zip(a.chunks_exact(vec_dot_type(ty).block_bytes()))
}

fn dot_q4_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q4_0, w, a) {
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

fn dot_q4_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q4_1, w, a) {
        let xq = &x[offset_of!(BlockQ4_1, qs)..][..QK / 2];
        let yq = &y[offset_of!(BlockQ8_1, qs)..][..QK];
        let (mut s0, mut s1) = (0i32, 0i32);
        for ((&q, y0), y1) in xq.iter().zip(i8s(&yq[..16])).zip(i8s(&yq[16..])) {
            s0 += i32::from(q & 0x0f) * y0;
            s1 += i32::from(q >> 4) * y1;
        }
        let dxy = rd_f16(x, offset_of!(BlockQ4_1, d)) * rd_f16(y, offset_of!(BlockQ8_1, d));
        sumf += dxy * (s0 + s1) as f32
            + rd_f16(x, offset_of!(BlockQ4_1, m)) * rd_f16(y, offset_of!(BlockQ8_1, s));
    }
    sumf
}

/// The 5th bits of a Q5 block as `u32` (bit `j` belongs to element `j`).
#[inline]
fn qh32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Integer sum of a Q5 block (levels 0..31, minus `bias`) against 32 int8 activations.
#[inline]
fn q5_isum(qs: &[u8], qh: u32, yq: &[u8], bias: i32) -> i32 {
    let (mut s0, mut s1) = (0i32, 0i32);
    for (j, ((&q, y0), y1)) in qs
        .iter()
        .zip(i8s(&yq[..16]))
        .zip(i8s(&yq[16..]))
        .enumerate()
    {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        s0 += ((u32::from(q & 0x0f) | h0) as i32 - bias) * y0;
        s1 += ((u32::from(q >> 4) | h1) as i32 - bias) * y1;
    }
    s0 + s1
}

fn dot_q5_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q5_0, w, a) {
        let qs = &x[offset_of!(BlockQ5_0, qs)..][..QK / 2];
        let qh = qh32(x, offset_of!(BlockQ5_0, qh));
        let sumi = q5_isum(qs, qh, &y[offset_of!(BlockQ8_0, qs)..][..QK], 16);
        sumf += (rd_f16(x, 0) * rd_f16(y, 0)) * sumi as f32;
    }
    sumf
}

fn dot_q5_1(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q5_1, w, a) {
        let qs = &x[offset_of!(BlockQ5_1, qs)..][..QK / 2];
        let qh = qh32(x, offset_of!(BlockQ5_1, qh));
        let sumi = q5_isum(qs, qh, &y[offset_of!(BlockQ8_1, qs)..][..QK], 0);
        let dxy = rd_f16(x, offset_of!(BlockQ5_1, d)) * rd_f16(y, offset_of!(BlockQ8_1, d));
        sumf += dxy * sumi as f32
            + rd_f16(x, offset_of!(BlockQ5_1, m)) * rd_f16(y, offset_of!(BlockQ8_1, s));
    }
    sumf
}

fn dot_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q8_0, w, a) {
        let off = offset_of!(BlockQ8_0, qs);
        let sumi: i32 = i8s(&x[off..off + QK])
            .zip(i8s(&y[off..off + QK]))
            .map(|(p, q)| p * q)
            .sum();
        sumf += sumi as f32 * (rd_f16(x, 0) * rd_f16(y, 0));
    }
    sumf
}

// ---- k-quants against Q8_K ----

/// A Q8_K block split into its fields.
pub(crate) struct Q8K<'a> {
    pub(crate) d: f32,
    pub(crate) qs: &'a [u8],
    pub(crate) bsums: [i32; QK_K / 16],
}

pub(crate) fn q8k(y: &[u8]) -> Q8K<'_> {
    let off = offset_of!(BlockQ8K, bsums);
    let mut bsums = [0i32; QK_K / 16];
    for (j, s) in bsums.iter_mut().enumerate() {
        *s = i32::from(i16::from_le_bytes([y[off + 2 * j], y[off + 2 * j + 1]]));
    }
    Q8K {
        d: rd_f32(y, 0),
        qs: &y[offset_of!(BlockQ8K, qs)..][..QK_K],
        bsums,
    }
}

/// `Σ_g scale[g] · Σ_{l in group g} level[l] · q8[l]` with groups of `QK_K / scales.len()`.
#[inline]
fn scaled_isum(levels: &[i8; QK_K], scales: &[i32], q8: &[u8]) -> i32 {
    let group = QK_K / scales.len();
    let mut isum = 0i32;
    for ((lv, q), &sc) in levels
        .chunks_exact(group)
        .zip(q8.chunks_exact(group))
        .zip(scales)
    {
        let s: i32 = lv
            .iter()
            .zip(i8s(q))
            .map(|(&l, qv)| i32::from(l) * qv)
            .sum();
        isum += sc * s;
    }
    isum
}

/// ggml's `get_scale_min_k4` for all eight 32-element groups.
pub(crate) fn scales_mins_k4(q: &[u8]) -> ([i32; 8], [i32; 8]) {
    let mut sc = [0i32; 8];
    let mut mn = [0i32; 8];
    for j in 0..8 {
        let (s, m) = if j < 4 {
            (q[j] & 63, q[j + 4] & 63)
        } else {
            (
                (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
                (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
            )
        };
        sc[j] = i32::from(s);
        mn[j] = i32::from(m);
    }
    (sc, mn)
}

/// `Σ_j bsums[j] · mins[j / (16 / per)]` — the activation-sum term of the mins.
#[inline]
pub(crate) fn min_term(bsums: &[i32; QK_K / 16], mins: &[i32]) -> i32 {
    let per = QK_K / 16 / mins.len();
    bsums
        .chunks_exact(per)
        .zip(mins)
        .map(|(b, &m)| b.iter().map(|&v| v * m).sum::<i32>())
        .sum()
}

fn dot_q4_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q4K, w, a) {
        let y = q8k(y);
        let qs = &x[offset_of!(BlockQ4K, qs)..][..QK_K / 2];
        let mut lv = [0i8; QK_K];
        for (g, q) in qs.chunks_exact(32).enumerate() {
            for (l, &v) in q.iter().enumerate() {
                lv[64 * g + l] = (v & 0x0f) as i8;
                lv[64 * g + 32 + l] = (v >> 4) as i8;
            }
        }
        let (sc, mn) = scales_mins_k4(&x[offset_of!(BlockQ4K, scales)..][..12]);
        let isum = scaled_isum(&lv, &sc, y.qs);
        let summ = min_term(&y.bsums, &mn);
        let d = rd_f16(x, offset_of!(BlockQ4K, d)) * y.d;
        let dmin = rd_f16(x, offset_of!(BlockQ4K, dmin)) * y.d;
        sumf += d * isum as f32 - dmin * summ as f32;
    }
    sumf
}

fn dot_q5_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q5K, w, a) {
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

fn dot_q6_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q6K, w, a) {
        let y = q8k(y);
        let ql_all = &x[offset_of!(BlockQ6K, ql)..][..QK_K / 2];
        let qh_all = &x[offset_of!(BlockQ6K, qh)..][..QK_K / 4];
        let mut lv = [0i8; QK_K];
        for n in 0..QK_K / 128 {
            let ql = &ql_all[64 * n..64 * n + 64];
            let qh = &qh_all[32 * n..32 * n + 32];
            let o = &mut lv[128 * n..128 * n + 128];
            for l in 0..32 {
                o[l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
                o[l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                o[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                o[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            }
        }
        let mut sc = [0i32; 16];
        for (s, &b) in sc
            .iter_mut()
            .zip(&x[offset_of!(BlockQ6K, scales)..][..QK_K / 16])
        {
            *s = i32::from(b as i8);
        }
        let isum = scaled_isum(&lv, &sc, y.qs);
        sumf += rd_f16(x, offset_of!(BlockQ6K, d)) * y.d * isum as f32;
    }
    sumf
}

fn dot_q2_k(w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q2K, w, a) {
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

fn dot_q3_k(w: &[u8], a: &[u8]) -> f32 {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let mut sumf = 0.0f32;
    for (x, y) in blocks(QuantType::Q3K, w, a) {
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
