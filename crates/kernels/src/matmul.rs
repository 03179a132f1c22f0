//! Dot products and `out = x · Wᵀ` with weights read from F32/F16/BF16 bytes.
//!
//! `matmul` is parallel over blocks of output rows (rayon). Each task decodes a few weight rows
//! into a thread-local f32 scratch (so any dtype and any alignment work) and dots them with
//! every activation row. The dot product has a portable 16-accumulator twin (`dot_scalar`) and
//! an AVX2+FMA version picked at run time.

use std::cell::RefCell;
use std::sync::OnceLock;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::checked::ptr_at;
use crate::checked::raw_at_mut;
use crate::convert::WeightRef;
pub use crate::matmul_quant::{matmul_quantized, matvec_quantized_many};
use crate::{check_len, mul, Result};

/// Portable dot product with 16 independent accumulators (vectorizable by the compiler).
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    let mut s8 = [0.0f32; 8];
    for i in 0..8 {
        s8[i] = acc[i] + acc[i + 8];
    }
    let s4 = [s8[0] + s8[4], s8[1] + s8[5], s8[2] + s8[6], s8[3] + s8[7]];
    (s4[0] + s4[2]) + (s4[1] + s4[3]) + tail
}

/// # Safety
/// SAFETY: the caller must have checked at run time that the CPU supports AVX2 and FMA
/// ([`crate::cpu::cpu`]); slice bounds are checked inside.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut acc2 = _mm256_setzero_ps();
    let mut acc3 = _mm256_setzero_ps();
    let mut i = 0usize;
    // SAFETY: every load reads 8 f32 at offsets i..i+8 (resp. +8, +16, +24) with i + 32 <= n
    // (resp. i + 8 <= n), and n is at most the length of both slices: the ranges `ptr_at`
    // checks in debug builds.
    unsafe {
        while i + 32 <= n {
            acc0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ptr_at(a, i, 8)),
                _mm256_loadu_ps(ptr_at(b, i, 8)),
                acc0,
            );
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ptr_at(a, i + 8, 8)),
                _mm256_loadu_ps(ptr_at(b, i + 8, 8)),
                acc1,
            );
            acc2 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ptr_at(a, i + 16, 8)),
                _mm256_loadu_ps(ptr_at(b, i + 16, 8)),
                acc2,
            );
            acc3 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ptr_at(a, i + 24, 8)),
                _mm256_loadu_ps(ptr_at(b, i + 24, 8)),
                acc3,
            );
            i += 32;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(ptr_at(a, i, 8)),
                _mm256_loadu_ps(ptr_at(b, i, 8)),
                acc0,
            );
            i += 8;
        }
    }
    let acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
    let hi = _mm256_extractf128_ps(acc, 1);
    let lo = _mm256_castps256_ps128(acc);
    let s = _mm_add_ps(hi, lo);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    let mut total = _mm_cvtss_f32(s);
    for j in i..n {
        total += a[j] * b[j];
    }
    total
}

#[cfg(target_arch = "x86_64")]
fn dot_avx2_entry(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: this function is only selected by `dot_fn` after run-time detection of AVX2 and
    // FMA on this CPU.
    unsafe { dot_avx2_fma(a, b) }
}

/// Signature of a dot-product implementation.
pub type DotFn = fn(&[f32], &[f32]) -> f32;

/// The dot product implementation for this CPU (detected once).
pub fn dot_fn() -> DotFn {
    static F: OnceLock<DotFn> = OnceLock::new();
    *F.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::cpu().avx2_fma() {
                tracing::debug!("kernels: using AVX2+FMA dot product");
                return dot_avx2_entry as fn(&[f32], &[f32]) -> f32;
            }
        }
        tracing::debug!("kernels: using portable dot product");
        dot_scalar as fn(&[f32], &[f32]) -> f32
    })
}

/// Dot product of the common prefix of `a` and `b`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_fn()(a, b)
}

/// Dots of `x` with 4 consecutive rows of `w` (each `x.len()` long): one load of `x` per 4 FMAs.
///
/// Each of the four results is bit-identical to [`crate::dot_bytes::dot_bytes_fn`] on the same
/// row stored as F32 (same accumulators, same order, same tail), so a matrix product gives the
/// same value for an output whichever path computes it: a sequence's logits do not depend on how
/// many other rows share its batch.
pub type Dot4Fn = fn(&[f32], &[f32], &mut [f32; 4]);

/// Portable twin of the 4-row dot, equal to [`crate::dot_bytes::dot_bytes_scalar`] on F32 rows.
pub fn dot4_scalar(x: &[f32], w: &[f32], out: &mut [f32; 4]) {
    let c = x.len();
    for (k, o) in out.iter_mut().enumerate() {
        *o = crate::dot_bytes::dot_f32_scalar(&w[k * c..(k + 1) * c], x);
    }
}

/// # Safety
/// SAFETY: the caller must have checked at run time that the CPU supports AVX2 and FMA
/// ([`crate::cpu::cpu`]); slice bounds are checked inside.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot4_avx2(x: &[f32], w: &[f32], out: &mut [f32; 4]) {
    use std::arch::x86_64::*;
    let c = x.len();
    if w.len() < 4 * c {
        dot4_scalar(x, w, out);
        return;
    }
    // Two accumulators per row, even and odd 8-wide chunks, as `dot_bytes_avx2` does for F32.
    let mut a0 = [_mm256_setzero_ps(); 4];
    let mut a1 = [_mm256_setzero_ps(); 4];
    let mut i = 0usize;
    // SAFETY: i + 16 <= c, x has c elements and w at least 4·c (checked above), so every load
    // (x[i..i+16], w[k·c + i..k·c + i + 16] for k < 4) is in bounds: the ranges `ptr_at` checks
    // in debug builds.
    unsafe {
        while i + 16 <= c {
            let x0 = _mm256_loadu_ps(ptr_at(x, i, 8));
            let x1 = _mm256_loadu_ps(ptr_at(x, i + 8, 8));
            for k in 0..4 {
                let wk = k * c + i;
                a0[k] = _mm256_fmadd_ps(_mm256_loadu_ps(ptr_at(w, wk, 8)), x0, a0[k]);
                a1[k] = _mm256_fmadd_ps(_mm256_loadu_ps(ptr_at(w, wk + 8, 8)), x1, a1[k]);
            }
            i += 16;
        }
    }
    for (k, o) in out.iter_mut().enumerate() {
        let v = _mm256_add_ps(a0[k], a1[k]);
        let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        *o = _mm_cvtss_f32(s)
            + crate::dot_bytes::dot_f32_scalar(&w[k * c + i..(k + 1) * c], &x[i..c]);
    }
}

#[cfg(target_arch = "x86_64")]
fn dot4_avx2_entry(x: &[f32], w: &[f32], out: &mut [f32; 4]) {
    // SAFETY: only selected by `dot4_fn` after run-time detection of AVX2 and FMA.
    unsafe { dot4_avx2(x, w, out) }
}

/// The 4-row dot for this CPU (detected once).
pub fn dot4_fn() -> Dot4Fn {
    static F: OnceLock<Dot4Fn> = OnceLock::new();
    *F.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::cpu().avx2_fma_f16c() {
                return dot4_avx2_entry as Dot4Fn;
            }
        }
        dot4_scalar as Dot4Fn
    })
}

/// Weight rows decoded per task step.
const ROW_BLOCK: usize = 8;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// An output buffer shared by parallel tasks that write disjoint elements of it: the pointer and
/// the length of the slice it was made from (which [`SendPtr::at`] checks in debug builds).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr {
    ptr: *mut f32,
    len: usize,
}

impl SendPtr {
    /// The buffer `s`, which must stay mutably borrowed while the pointer is used.
    pub(crate) fn new(s: &mut [f32]) -> Self {
        SendPtr {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }

    /// No buffer (a placeholder to be overwritten).
    pub(crate) fn null() -> Self {
        SendPtr {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }

    /// The pointer to element `at`, to write `n` elements from there.
    ///
    /// # Safety
    /// `[at, at + n)` must lie within the buffer (asserted in debug builds), the buffer must still
    /// be borrowed, and no other task may access those elements meanwhile.
    #[inline(always)]
    #[track_caller]
    pub(crate) unsafe fn at(&self, at: usize, n: usize) -> *mut f32 {
        // SAFETY: the caller's contract; `ptr` addresses `len` elements.
        unsafe { raw_at_mut(self.ptr, self.len, at, n) }
    }
}
// SAFETY: the pointer is only used to write disjoint elements from different tasks (see
// `matmul`), and the buffer outlives the parallel region.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// `out[t, o] = Σ_i x[t, i] · w[o, i]` for `t < n`: `x` is `n × w.cols`, `out` is `n × w.rows`,
/// both row-major. Accumulates in f32.
///
/// A block-quantized `w` is multiplied with the f32 activations as they are: each block is
/// dequantized (bit-exact with ggml) just before its products, in the same accumulators and order
/// as for the same weights stored dequantized as F32 — so the result equals that of the F32
/// matrix bit for bit, at the quantized matrix's memory traffic.
pub fn matmul(out: &mut [f32], x: &[f32], n: usize, w: &WeightRef<'_>) -> Result<()> {
    let (rows, cols) = (w.rows, w.cols);
    check_sizes(out, x, n, w)?;
    if n == 0 || rows == 0 {
        return Ok(());
    }
    if n <= DIRECT_MAX_ROWS {
        return matmul_direct(out, x, n, w);
    }
    let dotf = crate::dot_bytes::dot_f32_fn();
    let dot4f = dot4_fn();
    let n_blocks = rows.div_ceil(ROW_BLOCK);
    let threads = rayon::current_num_threads().max(1);
    let min_len = (n_blocks / (threads * 4)).max(1);
    let optr = SendPtr::new(out);
    let res: Result<()> = (0..n_blocks)
        .into_par_iter()
        .with_min_len(min_len)
        .try_for_each(|b| {
            let optr = &optr;
            let r0 = b * ROW_BLOCK;
            let nr = ROW_BLOCK.min(rows - r0);
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                let need = nr * cols;
                if s.len() < need {
                    s.resize(need, 0.0);
                }
                let wrows = &mut s[..need];
                w.decode_rows(r0, wrows)?;
                let mut four = [0.0f32; 4];
                for t in 0..n {
                    let xr = &x[t * cols..(t + 1) * cols];
                    let mut r = 0;
                    while r < nr {
                        let k = if r + 4 <= nr {
                            dot4f(xr, &wrows[r * cols..(r + 4) * cols], &mut four);
                            4
                        } else {
                            four[0] = dotf(&wrows[r * cols..(r + 1) * cols], xr);
                            1
                        };
                        for (j, v) in four.iter().take(k).enumerate() {
                            let idx = t * rows + r0 + r + j;
                            // SAFETY: idx < n * rows == out.len() (checked above); each (t, row)
                            // pair is written by exactly one task because tasks own disjoint row
                            // blocks [r0, r0 + nr); `out` is borrowed mutably for the whole call.
                            // `at` checks idx < out.len() in debug builds.
                            unsafe { *optr.at(idx, 1) = *v };
                        }
                        r += k;
                    }
                }
                Ok(())
            })
        });
    res
}

/// Checks that `x` is `n × w.cols`, `out` is `n × w.rows` and `w`'s bytes are exactly its rows
/// of a type [`crate::matmul()`] multiplies.
pub(crate) fn check_sizes(out: &[f32], x: &[f32], n: usize, w: &WeightRef<'_>) -> Result<()> {
    let (rows, cols) = (w.rows, w.cols);
    check_len("matmul input", mul("matmul input", n, cols)?, x.len())?;
    check_len("matmul output", mul("matmul output", n, rows)?, out.len())?;
    let row_bytes = crate::convert::row_bytes_of(w.dtype, cols)?;
    check_len(
        "matmul weight bytes",
        mul("matmul weight", rows, row_bytes)?,
        w.bytes.len(),
    )
}

/// Up to this many activation rows, weights are read straight from their bytes.
const DIRECT_MAX_ROWS: usize = 2;

/// Small-batch path (decode): each weight row is dotted straight from its stored bytes.
fn matmul_direct(out: &mut [f32], x: &[f32], n: usize, w: &WeightRef<'_>) -> Result<()> {
    let (rows, cols) = (w.rows, w.cols);
    let rb = w.row_bytes();
    let f = crate::dot_bytes::dot_bytes_fn();
    let dtype = w.dtype;
    let threads = rayon::current_num_threads().max(1);
    let min_len = (rows / (threads * 8)).max(16);
    if n == 1 {
        out.par_iter_mut()
            .with_min_len(min_len)
            .enumerate()
            .for_each(|(r, o)| *o = f(dtype, &w.bytes[r * rb..(r + 1) * rb], x));
        return Ok(());
    }
    // n rows: compute into a [rows × n] transposed view by output row, then scatter.
    let optr = SendPtr::new(out);
    (0..rows)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each(|r| {
            let optr = &optr;
            let wr = &w.bytes[r * rb..(r + 1) * rb];
            for t in 0..n {
                let v = f(dtype, wr, &x[t * cols..(t + 1) * cols]);
                // SAFETY: t * rows + r < n * rows == out.len() (checked by `matmul`); each index is
                // written by exactly the task that owns row r; `out` is mutably borrowed throughout
                // (`at` checks the index in debug builds).
                unsafe { *optr.at(t * rows + r, 1) = v };
            }
        });
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::DType;

    pub(crate) fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    #[test]
    fn dot_simd_matches_scalar_twin() {
        let mut seed = 1;
        for n in [0usize, 1, 7, 8, 15, 16, 31, 33, 64, 100, 257] {
            let a: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let b: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let s = dot_scalar(&a, &b);
            let f = dot(&a, &b);
            assert!((s as f64 - exact).abs() < 1e-5, "n={n}");
            assert!((f as f64 - exact).abs() < 1e-5, "n={n}");
        }
    }

    fn naive(x: &[f32], w: &[f32], n: usize, rows: usize, cols: usize) -> Vec<f64> {
        let mut o = vec![0.0f64; n * rows];
        for t in 0..n {
            for r in 0..rows {
                o[t * rows + r] = (0..cols)
                    .map(|i| x[t * cols + i] as f64 * w[r * cols + i] as f64)
                    .sum();
            }
        }
        o
    }

    #[test]
    fn matmul_all_dtypes_match_naive() {
        let mut seed = 7;
        for n in [1usize, 2, 3, 5] {
            matmul_case(&mut seed, n);
        }
    }

    fn matmul_case(seed: &mut u64, n: usize) {
        let (rows, cols) = (23usize, 37usize);
        let x: Vec<f32> = (0..n * cols).map(|_| lcg(seed)).collect();
        let wf: Vec<f32> = (0..rows * cols).map(|_| lcg(seed)).collect();
        // Round weights to bf16 / f16 so all three dtypes represent the same values.
        let wb: Vec<f32> = wf
            .iter()
            .map(|v| f32::from_bits(v.to_bits() & 0xffff_0000))
            .collect();
        let reference = naive(&x, &wb, n, rows, cols);
        let f32_bytes: Vec<u8> = wb.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bf16_bytes: Vec<u8> = wb
            .iter()
            .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        let f16_bytes: Vec<u8> = wb
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes())
            .collect();
        let wf16: Vec<f32> = wb
            .iter()
            .map(|v| half::f16::from_f32(*v).to_f32())
            .collect();
        let ref16 = naive(&x, &wf16, n, rows, cols);
        for (dt, bytes, r) in [
            (DType::F32, &f32_bytes, &reference),
            (DType::BF16, &bf16_bytes, &reference),
            (DType::F16, &f16_bytes, &ref16),
        ] {
            let w = WeightRef::new(dt, bytes, rows, cols).unwrap();
            let mut out = vec![0.0f32; n * rows];
            matmul(&mut out, &x, n, &w).unwrap();
            for (a, b) in out.iter().zip(r.iter()) {
                assert!((*a as f64 - b).abs() < 1e-5, "{dt:?}: {a} vs {b}");
            }
        }
    }

    /// An output's value must not depend on how many activation rows share the product (the
    /// decode path reads weight bytes directly, the batched path decodes rows and uses `dot4`).
    #[test]
    fn matmul_rows_are_independent_of_batch_size() {
        let mut seed = 7u64;
        let (rows, cols) = (37usize, 100usize);
        let wf: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed)).collect();
        let x: Vec<f32> = (0..20 * cols).map(|_| lcg(&mut seed)).collect();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let bytes: Vec<u8> = wf
                .iter()
                .flat_map(|v| match dtype {
                    DType::F32 => v.to_le_bytes().to_vec(),
                    DType::F16 => half::f16::from_f32(*v).to_bits().to_le_bytes().to_vec(),
                    DType::BF16 => half::bf16::from_f32(*v).to_bits().to_le_bytes().to_vec(),
                    _ => unreachable!(),
                })
                .collect();
            let w = WeightRef {
                dtype,
                bytes: &bytes,
                rows,
                cols,
            };
            let mut single = vec![0.0f32; 20 * rows];
            for t in 0..20 {
                matmul(
                    &mut single[t * rows..(t + 1) * rows],
                    &x[t * cols..(t + 1) * cols],
                    1,
                    &w,
                )
                .unwrap();
            }
            for n in [2usize, 3, 5, 9, 20] {
                let mut out = vec![0.0f32; n * rows];
                matmul(&mut out, &x[..n * cols], n, &w).unwrap();
                for (i, (a, b)) in out.iter().zip(&single).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{dtype:?} n={n} index {i}");
                }
            }
        }
    }

    #[test]
    fn dot4_matches_scalar_twin() {
        let mut seed = 3;
        for c in [1usize, 7, 8, 9, 64, 77] {
            let x: Vec<f32> = (0..c).map(|_| lcg(&mut seed)).collect();
            let w: Vec<f32> = (0..4 * c).map(|_| lcg(&mut seed)).collect();
            let (mut a, mut b) = ([0.0f32; 4], [0.0f32; 4]);
            dot4_scalar(&x, &w, &mut a);
            dot4_fn()(&x, &w, &mut b);
            for k in 0..4 {
                assert!((a[k] - b[k]).abs() < 1e-5, "c={c} k={k}");
            }
        }
    }

    #[test]
    fn matmul_rejects_bad_sizes() {
        let wb = vec![0u8; 4 * 6];
        let w = WeightRef::new(DType::F32, &wb, 2, 3).unwrap();
        let mut out = vec![0.0; 2];
        assert!(matmul(&mut out, &[0.0; 5], 1, &w).is_err());
        assert!(matmul(&mut out[..1], &[0.0; 3], 1, &w).is_err());
        assert!(matmul(&mut out, &[0.0; 3], 1, &w).is_ok());
    }

    /// `matmul_direct` trusts `matmul`'s size checks: given an output one element short, its
    /// last write is caught by the debug range check (in release builds it would write past it).
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "pointer range")]
    fn matmul_direct_short_output_is_caught() {
        let (rows, cols) = (5usize, 8usize);
        let wb = vec![0u8; 4 * rows * cols];
        let w = WeightRef::new(DType::F32, &wb, rows, cols).unwrap();
        let x = vec![0.0f32; 2 * cols];
        let mut out = vec![0.0f32; 2 * rows - 1];
        let _ = matmul_direct(&mut out, &x, 2, &w);
    }
}
