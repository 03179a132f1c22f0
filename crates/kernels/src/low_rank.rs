//! Low-rank updates `y += s · (x · Aᵀ) · Bᵀ` (an unmerged LoRA term) for a few rows of `x`.
//!
//! `A` is `[r, in]` and `B` `[out, r]` with a small `r`: the work is `r · (in + out)` multiply-adds
//! per row, a few percent of the base product, so the cost that matters is the call itself. Small
//! products run on the calling thread (no fork/join per call); large ones split the outputs over
//! the pool. Every output is one fixed-order dot product of its row, so a row's result does not
//! depend on the other rows or on how the work is split.

use rayon::prelude::*;

use crate::matmul::dot_fn;
use crate::{check_len, KernelError, Result};

/// Multiply-adds below which a product stays on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 14;

/// `dst[t, o] += scale · Σ_k Bᵀ[k, o] · (Σ_i A[k, i] · x[t, i])` for `t < m`, with `A` `[r, in]`
/// and `B` given transposed (`bt`: `[r, out]`, so the second product runs along contiguous rows);
/// `tmp` is scratch. PEFT's order: the low-rank product first (over `k` in order), then the scale,
/// then the add.
#[allow(clippy::too_many_arguments)]
pub fn low_rank_add(
    dst: &mut [f32],
    x: &[f32],
    m: usize,
    a: &[f32],
    bt: &[f32],
    rank: usize,
    scale: f32,
    tmp: &mut Vec<f32>,
) -> Result<()> {
    if m == 0 {
        return Ok(());
    }
    if rank == 0 || !a.len().is_multiple_of(rank) || !bt.len().is_multiple_of(rank) {
        return Err(KernelError::Invalid(format!(
            "low-rank update: rank {rank} with A of {} and B of {} values",
            a.len(),
            bt.len()
        )));
    }
    let (inp, out) = (a.len() / rank, bt.len() / rank);
    check_len(
        "low-rank input",
        m.checked_mul(inp).ok_or(KernelError::Overflow("x"))?,
        x.len(),
    )?;
    check_len(
        "low-rank output",
        m.checked_mul(out).ok_or(KernelError::Overflow("dst"))?,
        dst.len(),
    )?;
    let dot = dot_fn();
    let need = m * rank;
    if tmp.len() < need {
        tmp.resize(need, 0.0);
    }
    let t = &mut tmp[..need];
    let a_part = |(row, tr): (&[f32], &mut [f32])| {
        for (k, v) in tr.iter_mut().enumerate() {
            *v = dot(&a[k * inp..(k + 1) * inp], row);
        }
    };
    if m * inp * rank < PARALLEL_MIN_WORK {
        x.chunks_exact(inp)
            .zip(t.chunks_exact_mut(rank))
            .for_each(a_part);
    } else {
        // One task per (row, k): each value is still one dot product.
        t.par_iter_mut().enumerate().for_each(|(i, v)| {
            let (row, k) = (i / rank, i % rank);
            *v = dot(&a[k * inp..(k + 1) * inp], &x[row * inp..(row + 1) * inp]);
        });
    }
    let update = b_part_fn();
    let t = &*t;
    if m * out * rank < PARALLEL_MIN_WORK {
        for (d, tr) in dst.chunks_exact_mut(out).zip(t.chunks_exact(rank)) {
            update(bt, out, 0, d, tr, scale);
        }
        return Ok(());
    }
    let chunk = out
        .div_ceil(rayon::current_num_threads().max(1) * 2)
        .next_multiple_of(LANES);
    for (d, tr) in dst.chunks_exact_mut(out).zip(t.chunks_exact(rank)) {
        d.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, d)| update(bt, out, c * chunk, d, tr, scale));
    }
    Ok(())
}

/// Outputs per register block of the second product.
const LANES: usize = 16;

/// Signature of the second product: outputs `o0..o0 + d.len()` of one row,
/// `d[j] += scale · Σ_k t[k] · Bᵀ[k, o0 + j]` (`bt`: `[r, out]`).
type BPartFn = fn(&[f32], usize, usize, &mut [f32], &[f32], f32);

/// The second product, summed over `k` in order with separate multiplies and adds (never fused):
/// the same bits whatever instruction set the compiler picks for it.
#[inline(always)]
fn b_part_body(bt: &[f32], out: usize, o0: usize, d: &mut [f32], tr: &[f32], scale: f32) {
    let mut chunks = d.chunks_exact_mut(LANES);
    let mut o = o0;
    for dc in &mut chunks {
        let mut acc = [0.0f32; LANES];
        for (k, &tk) in tr.iter().enumerate() {
            let Some(b) = bt.get(k * out + o..k * out + o + LANES) else {
                return;
            };
            for (a, &bv) in acc.iter_mut().zip(b) {
                *a += tk * bv;
            }
        }
        for (y, a) in dc.iter_mut().zip(acc) {
            *y += a * scale;
        }
        o += LANES;
    }
    for (j, y) in chunks.into_remainder().iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for (k, &tk) in tr.iter().enumerate() {
            acc += tk * bt.get(k * out + o + j).copied().unwrap_or(0.0);
        }
        *y += acc * scale;
    }
}

fn b_part_portable(bt: &[f32], out: usize, o0: usize, d: &mut [f32], tr: &[f32], scale: f32) {
    b_part_body(bt, out, o0, d, tr, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn b_part_avx512(bt: &[f32], out: usize, o0: usize, d: &mut [f32], tr: &[f32], scale: f32) {
    b_part_body(bt, out, o0, d, tr, scale)
}

#[cfg(target_arch = "x86_64")]
fn b_part_avx512_entry(bt: &[f32], out: usize, o0: usize, d: &mut [f32], tr: &[f32], scale: f32) {
    // SAFETY: chosen by `b_part_fn` only when the CPU has AVX-512F.
    unsafe { b_part_avx512(bt, out, o0, d, tr, scale) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn b_part_avx2(bt: &[f32], out: usize, o0: usize, d: &mut [f32], tr: &[f32], scale: f32) {
    b_part_body(bt, out, o0, d, tr, scale)
}

#[cfg(target_arch = "x86_64")]
fn b_part_avx2_entry(bt: &[f32], out: usize, o0: usize, d: &mut [f32], tr: &[f32], scale: f32) {
    // SAFETY: chosen by `b_part_fn` only when the CPU has AVX2.
    unsafe { b_part_avx2(bt, out, o0, d, tr, scale) }
}

/// The widest second product this CPU runs.
fn b_part_fn() -> BPartFn {
    #[cfg(target_arch = "x86_64")]
    {
        let c = crate::cpu::cpu();
        if c.avx512f {
            return b_part_avx512_entry;
        }
        if c.avx2 {
            return b_part_avx2_entry;
        }
    }
    b_part_portable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::tests::lcg;

    /// Against f64 arithmetic, and each row the same bits alone or among others, serial or
    /// split over threads.
    #[test]
    fn matches_f64_and_is_row_invariant() {
        let mut seed = 7;
        for (m, inp, out, r) in [(1, 64, 32, 8), (3, 100, 300, 16), (2, 2048, 8192, 16)] {
            let a: Vec<f32> = (0..r * inp).map(|_| lcg(&mut seed)).collect();
            let b: Vec<f32> = (0..out * r).map(|_| lcg(&mut seed)).collect();
            let x: Vec<f32> = (0..m * inp).map(|_| lcg(&mut seed)).collect();
            let base: Vec<f32> = (0..m * out).map(|_| lcg(&mut seed)).collect();
            let bt: Vec<f32> = (0..r * out).map(|i| b[(i % out) * r + i / out]).collect();
            let mut y = base.clone();
            let mut tmp = Vec::new();
            low_rank_add(&mut y, &x, m, &a, &bt, r, 0.5, &mut tmp).unwrap();
            for t in 0..m {
                for o in 0..out {
                    let mut u = 0.0f64;
                    for k in 0..r {
                        let ax: f64 = (0..inp)
                            .map(|i| a[k * inp + i] as f64 * x[t * inp + i] as f64)
                            .sum();
                        u += b[o * r + k] as f64 * ax;
                    }
                    let want = base[t * out + o] as f64 + 0.5 * u;
                    let got = y[t * out + o] as f64;
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{got} vs {want}"
                    );
                }
                let mut alone = base[t * out..(t + 1) * out].to_vec();
                low_rank_add(
                    &mut alone,
                    &x[t * inp..(t + 1) * inp],
                    1,
                    &a,
                    &bt,
                    r,
                    0.5,
                    &mut tmp,
                )
                .unwrap();
                assert!(alone
                    .iter()
                    .zip(&y[t * out..(t + 1) * out])
                    .all(|(p, q)| p.to_bits() == q.to_bits()));
            }
        }
    }

    /// The SIMD second product gives the portable one's bits.
    #[test]
    fn simd_second_product_matches_portable() {
        let mut seed = 3;
        let (r, out) = (16, 1000);
        let bt: Vec<f32> = (0..r * out).map(|_| lcg(&mut seed)).collect();
        let t: Vec<f32> = (0..r).map(|_| lcg(&mut seed)).collect();
        let d0: Vec<f32> = (0..out - 37).map(|_| lcg(&mut seed)).collect();
        let (mut a, mut b) = (d0.clone(), d0.clone());
        b_part_portable(&bt, out, 37, &mut a, &t, 0.7);
        b_part_fn()(&bt, out, 37, &mut b, &t, 0.7);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_ne!(a, d0);
    }

    #[test]
    fn refuses_bad_sizes() {
        let mut tmp = Vec::new();
        let (a, b) = (vec![0.0; 8], vec![0.0; 6]);
        assert!(low_rank_add(&mut [0.0; 3], &[0.0; 4], 1, &a, &b, 2, 1.0, &mut tmp).is_ok());
        assert!(low_rank_add(&mut [0.0; 3], &[0.0; 5], 1, &a, &b, 2, 1.0, &mut tmp).is_err());
        assert!(low_rank_add(&mut [0.0; 4], &[0.0; 4], 1, &a, &b, 2, 1.0, &mut tmp).is_err());
        assert!(low_rank_add(&mut [0.0; 3], &[0.0; 4], 1, &a, &b, 0, 1.0, &mut tmp).is_err());
        assert!(low_rank_add(&mut [0.0; 3], &[0.0; 4], 1, &a, &b, 3, 1.0, &mut tmp).is_err());
    }
}
