//! `out = x · Wᵀ` with the activations rounded to bfloat16 ([`crate::Activations::Bf16`]).
//!
//! The definition (and the portable path, [`matmul_bf16_reference`]): every activation is
//! rounded to the nearest bf16 ([`round_bf16`]), then multiplied with the weights as
//! [`crate::matmul()`] multiplies f32 activations — for a quantized matrix, with the weights
//! dequantized exactly as ggml does.
//!
//! On a CPU with AVX512-BF16 a quantized matrix takes the kernels of `x86`: each unit of 32
//! weights ([`units`]) is multiplied as its integer levels (exact in bf16) with the bf16
//! activations in one `vdpbf16ps` — exact products, the pairs summed in f32 — and scaled per
//! half-unit in f32; the weights' offsets (Q4_1's `m`, the k-quants' mins) meet the activations
//! through their sums. That reads the quantized bytes once, like the 8-bit kernels, and agrees
//! with the definition within f32 rounding. [`dot_row_twin`] is its scalar twin, bit for bit.

pub(crate) mod units;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::cell::RefCell;

use rayon::prelude::*;

use crate::convert::WeightRef;
use crate::matmul::SendPtr;
use crate::{check_len, mul, DType, Result};
use units::{dispatch_units, Offsets, Params, Units, UNIT};

/// `x` rounded to the nearest bfloat16, ties to even, as an f32. NaN stays NaN; results below
/// f32's smallest normal flush to zero (with `x`'s sign), as AVX512-BF16 reads them.
#[inline]
pub fn round_bf16(x: f32) -> f32 {
    let b = x.to_bits();
    if x.is_nan() {
        return f32::from_bits((b | 0x0040_0000) & 0xffff_0000);
    }
    let r = f32::from_bits(b.wrapping_add(0x7fff + ((b >> 16) & 1)) & 0xffff_0000);
    if r.is_subnormal() {
        return f32::from_bits(b & 0x8000_0000);
    }
    r
}

/// `out[t, o] = Σ_i bf16(x[t, i]) · w[o, i]` (`x`: `n × w.cols`, `out`: `n × w.rows`): the
/// activations rounded into `xr` (reused scratch), then [`crate::matmul()`].
pub fn matmul_bf16_reference(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightRef<'_>,
    xr: &mut Vec<f32>,
) -> Result<()> {
    check_len("matmul input", mul("matmul input", n, w.cols)?, x.len())?;
    xr.clear();
    xr.extend(x.iter().map(|&v| round_bf16(v)));
    crate::matmul::matmul(out, xr, n, w)
}

/// Reused buffers of [`matmul_bf16`] and [`matmul_f32_split`]: the activations as bf16 terms
/// and their sums.
#[derive(Debug, Default)]
pub struct Bf16Scratch {
    bits: Vec<u16>,
    sums16: Vec<f32>,
    sums32: Vec<f32>,
    rounded: Vec<f32>,
}

/// Activation rows as the kernels read them: `K` bf16 terms per value.
struct Prepared<'a> {
    /// Per row, `K` blocks of `cols` bf16 bits: the terms, largest first.
    bits: &'a [u16],
    /// Sums per offset group (16 or 32 values), `groups` per row.
    sums: &'a [f32],
    groups: usize,
    /// Bits per row (`K · cols`).
    width: usize,
}

impl Prepared<'_> {
    fn row(&self, t: usize) -> (&[u16], &[f32]) {
        (
            &self.bits[t * self.width..][..self.width],
            &self.sums[t * self.groups..][..self.groups],
        )
    }
}

/// The bf16 bits of [`round_bf16`]`(x)`.
#[inline]
fn bf16_bits(x: f32) -> u16 {
    (round_bf16(x).to_bits() >> 16) as u16
}

/// `x` as `K` bf16 terms, largest first: `K = 1` rounds it; `K = 3` splits it into
/// `hi + mid + lo`, each the rounding of what the previous terms leave (exact for every normal
/// f32 whose parts stay normal: 3 × 8 significant bits hold f32's 24).
#[inline]
fn terms<const K: usize>(x: f32) -> [u16; K] {
    let mut t = [0u16; K];
    let mut r = x;
    for b in t.iter_mut() {
        *b = bf16_bits(r);
        r -= crate::convert::bf16_to_f32(*b);
    }
    t
}

/// The value `K` terms represent, summed largest first.
#[inline]
fn value(t: &[u16]) -> f32 {
    t.iter()
        .fold(0.0f32, |a, &b| a + crate::convert::bf16_to_f32(b))
}

/// Splits `n` rows of `cols` activations into `K` bf16 terms and sums the represented values of
/// each group of 16 (in order, in f32) and of each unit of 32 (its two halves' sums added).
fn prepare<'a, const K: usize>(
    s: &'a mut Bf16Scratch,
    x: &[f32],
    cols: usize,
    offsets: Offsets,
) -> Prepared<'a> {
    s.bits.clear();
    s.sums16.clear();
    s.sums32.clear();
    for row in x.chunks_exact(cols) {
        let start = s.bits.len();
        s.bits.resize(start + K * cols, 0);
        let dst = &mut s.bits[start..];
        for (i, &v) in row.iter().enumerate() {
            for (k, b) in terms::<K>(v).into_iter().enumerate() {
                dst[k * cols + i] = b;
            }
        }
        if offsets != Offsets::None {
            let mut t = [0u16; K];
            for g in 0..cols / 16 {
                let mut acc = 0.0f32;
                for i in 16 * g..16 * g + 16 {
                    for (k, b) in t.iter_mut().enumerate() {
                        *b = dst[k * cols + i];
                    }
                    acc += value(&t);
                }
                s.sums16.push(acc);
            }
        }
    }
    if offsets == Offsets::PerUnit {
        let s16 = &s.sums16;
        s.sums32.extend(s16.chunks_exact(2).map(|p| p[0] + p[1]));
    }
    let (sums, groups) = match offsets {
        Offsets::None => (&s.sums32[..], 0),
        Offsets::PerUnit => (&s.sums32[..], cols / UNIT),
        Offsets::PerHalf => (&s.sums16[..], cols / 16),
    };
    Prepared {
        bits: &s.bits,
        sums,
        groups,
        width: K * cols,
    }
}

/// The sum of 16 lanes in the kernels' order: halves, quarters, pairs.
fn hsum16(a: &[f32; 16]) -> f32 {
    let mut h = [0.0f32; 8];
    for i in 0..8 {
        h[i] = a[i] + a[i + 8];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    let d = [q[0] + q[2], q[1] + q[3]];
    d[0] + d[1]
}

/// The scalar twin of the AVX512-BF16 row product, bit for bit: one weight row of `ty` (whole
/// blocks) · one activation row `x`, as `terms` bf16 terms (1: [`matmul_bf16`], 3:
/// [`matmul_f32_split`]). Panics for a type without units (see [`has_units`]) or another count
/// of terms.
pub fn dot_row_twin(ty: DType, w: &[u8], x: &[f32], terms: usize) -> f32 {
    match terms {
        1 => dispatch_units!(ty, T => twin::<T, 1>(w, x), other => panic!("{other}: no units")),
        3 => dispatch_units!(ty, T => twin::<T, 3>(w, x), other => panic!("{other}: no units")),
        k => panic!("{k} terms (1 or 3)"),
    }
}

/// One bf16 product lane as `vdpbf16ps` into zero computes it: two exact products, one sum.
#[inline]
fn dp_lane(q: &[i8; UNIT], x: &[f32], i: usize) -> f32 {
    let p1 = q[2 * i + 1] as f32 * x[2 * i + 1];
    let p0 = q[2 * i] as f32 * x[2 * i];
    (0.0 + p1) + p0
}

fn twin<T: Units, const K: usize>(w: &[u8], x: &[f32]) -> f32 {
    let cols = x.len();
    let mut s = Bf16Scratch::default();
    let prep = prepare::<K>(&mut s, x, cols, T::OFFSETS);
    let (bits, sums) = prep.row(0);
    let xf: Vec<f32> = bits
        .iter()
        .map(|&b| crate::convert::bf16_to_f32(b))
        .collect();
    let (mut h, mut r) = ([0.0f32; 16], [0.0f32; 16]);
    let mut offs = Vec::new();
    let per = T::OFFSETS.per_unit();
    let mut p = Params::default();
    let mut q = [0i8; UNIT];
    for (bi, b) in w.chunks_exact(T::BLCK_BYTES).enumerate() {
        T::params(b, &mut p);
        for u in 0..T::UNITS {
            let gu = bi * T::UNITS + u;
            T::levels(b, u, &mut q);
            let term = |k: usize| &xf[k * cols + gu * UNIT..][..UNIT];
            for i in 0..16 {
                let sc = p.scales[u][i / 8];
                h[i] = dp_lane(&q, term(0), i).mul_add(sc, h[i]);
                if K == 3 {
                    let ml = dp_lane(&q, term(1), i) + dp_lane(&q, term(2), i);
                    r[i] = ml.mul_add(sc, r[i]);
                }
            }
            offs.extend_from_slice(&p.offsets[u][..per]);
        }
    }
    let mut v = hsum16(&h);
    if K > 1 {
        v += hsum16(&r);
    }
    if per == 0 {
        return v;
    }
    let mut macc = [0.0f32; 16];
    for (o, s) in offs.chunks(16).zip(sums.chunks(16)) {
        for (i, m) in macc.iter_mut().enumerate() {
            let (ov, sv) = (
                o.get(i).copied().unwrap_or(0.0),
                s.get(i).copied().unwrap_or(0.0),
            );
            *m = ov.mul_add(sv, *m);
        }
    }
    v + hsum16(&macc)
}

/// Whether `ty` has bf16 kernels (every quantized weight type does).
pub fn has_units(ty: DType) -> bool {
    crate::quants::WEIGHT_TYPES.contains(&ty)
}

/// Whether this CPU runs the AVX512-BF16 kernels.
pub fn fast_available() -> bool {
    crate::cpu::cpu().bf16_dot()
}

/// The kernels' product with `K` terms where this CPU and `w`'s type have them; `Ok(false)`
/// (nothing written) where the caller's portable path must run. Sizes are checked either way.
fn kernels<const K: usize>(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightRef<'_>,
    s: &mut Bf16Scratch,
) -> Result<bool> {
    crate::matmul::check_sizes(out, x, n, w)?;
    #[cfg(target_arch = "x86_64")]
    if has_units(w.dtype) && fast_available() {
        dispatch_units!(w.dtype, T => fast::<T, K>(out, x, n, w, s), other => unreachable!("{other}"));
        return Ok(true);
    }
    let _ = s;
    Ok(false)
}

/// `out[t, o] = Σ_i bf16(x[t, i]) · w[o, i]`: [`matmul_bf16_reference`]'s product, computed by
/// the AVX512-BF16 kernels for a quantized `w` on a CPU that has them (within f32 rounding of
/// the reference, and the same bits for a row whatever the batch), else by the reference.
pub fn matmul_bf16(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightRef<'_>,
    s: &mut Bf16Scratch,
) -> Result<()> {
    if kernels::<1>(out, x, n, w, s)? {
        return Ok(());
    }
    matmul_bf16_reference(out, x, n, w, &mut s.rounded)
}

/// `out[t, o] = Σ_i x[t, i] · w[o, i]` with f32 activations, within f32 rounding of
/// [`crate::matmul()`] (the weights dequantized exactly): on a CPU with AVX512-BF16 each
/// activation is split into three bf16 terms that add up to it, and each term meets the weights'
/// integer levels in `vdpbf16ps` (exact products, f32 sums) — three bf16 products per weight
/// instead of an f32 expansion of every block. Elsewhere, and for float weights,
/// [`crate::matmul()`] itself. The same bits for a row whatever the batch.
pub fn matmul_f32_split(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightRef<'_>,
    s: &mut Bf16Scratch,
) -> Result<()> {
    if kernels::<3>(out, x, n, w, s)? {
        return Ok(());
    }
    crate::matmul::matmul(out, x, n, w)
}

/// Per-thread scratch of the kernels: a row's offsets, expanded rows' levels and scales.
type Expanded = (Vec<f32>, Vec<u16>, Vec<[f32; 2]>);

thread_local! {
    /// Per-thread scratch of the bf16 kernels: offsets of a row (decode), expanded rows (batches).
    static EXPANDED: RefCell<Expanded> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Weight rows expanded together for a batch.
#[cfg(target_arch = "x86_64")]
const ROW_BLOCK: usize = 8;

/// The kernels' product (sizes checked by the caller, the CPU features by `fast_available`).
#[cfg(target_arch = "x86_64")]
fn fast<T: x86::UnitsAvx512, const K: usize>(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightRef<'_>,
    s: &mut Bf16Scratch,
) {
    let (rows, cols) = (w.rows, w.cols);
    if n == 0 || rows == 0 {
        return;
    }
    let rb = w.row_bytes();
    let units = cols / UNIT;
    let per = T::OFFSETS.per_unit();
    let p = prepare::<K>(s, x, cols, T::OFFSETS);
    let p = &p;
    let threads = rayon::current_num_threads().max(1);
    if n == 1 {
        let (xb, sums) = p.row(0);
        // Chunks of rows, the thread-local scratch borrowed once per chunk.
        let chunk = (rows / (threads * 8)).max(16);
        out.par_chunks_mut(chunk).enumerate().for_each(|(c, outs)| {
            EXPANDED.with(|e| {
                let offs = &mut e.borrow_mut().0;
                if offs.len() < units * per {
                    offs.resize(units * per, 0.0);
                }
                for (i, o) in outs.iter_mut().enumerate() {
                    let wr = &w.bytes[(c * chunk + i) * rb..][..rb];
                    // SAFETY: `fast_available` checked AVX512F/BW/BF16 (and F16C, which
                    // AVX-512 implies); the row is whole blocks and `xb` has its `K · cols`
                    // values.
                    *o = unsafe { x86::dot_row::<T, K>(wr, xb, sums, offs) };
                }
            })
        });
        return;
    }
    let n_blocks = rows.div_ceil(ROW_BLOCK);
    let min_len = (n_blocks / (threads * 4)).max(1);
    let optr = SendPtr::new(out);
    (0..n_blocks)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each(|b| {
            let optr = &optr;
            let r0 = b * ROW_BLOCK;
            let nr = ROW_BLOCK.min(rows - r0);
            EXPANDED.with(|e| {
                let e = &mut *e.borrow_mut();
                let (offs, words, scales) = (&mut e.0, &mut e.1, &mut e.2);
                offs.resize(nr * units * per, 0.0);
                words.resize(nr * cols, 0);
                scales.resize(nr * units, [0.0; 2]);
                for r in 0..nr {
                    // SAFETY: as above; each destination is this row's share of the scratch.
                    unsafe {
                        x86::expand_row::<T>(
                            &w.bytes[(r0 + r) * rb..][..rb],
                            &mut words[r * cols..][..cols],
                            &mut scales[r * units..][..units],
                            &mut offs[r * units * per..][..units * per],
                        )
                    };
                }
                for t in 0..n {
                    let (xb, sums) = p.row(t);
                    for r in 0..nr {
                        // SAFETY: as above.
                        let v = unsafe {
                            x86::dot_expanded::<T, K>(
                                &words[r * cols..][..cols],
                                &scales[r * units..][..units],
                                &offs[r * units * per..][..units * per],
                                xb,
                                sums,
                            )
                        };
                        // SAFETY: t < n and r0 + r < rows, so the index is inside `out`
                        // (n · rows values, checked by the caller); each index is written only
                        // by the task that owns row block b; `out` is borrowed for the call
                        // (`at` checks the index in debug builds).
                        unsafe { *optr.at(t * rows + r0 + r, 1) = v };
                    }
                }
            })
        });
}

#[cfg(test)]
mod tests;
