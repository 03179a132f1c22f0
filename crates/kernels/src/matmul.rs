//! Dot products and `out = x · Wᵀ` with weights read from F32/F16/BF16 bytes.
//!
//! `matmul` is parallel over blocks of output rows (rayon). Each task decodes a few weight rows
//! into a thread-local f32 scratch (so any dtype and any alignment work) and dots them with
//! every activation row. The dot product has a portable 16-accumulator twin (`dot_scalar`) and
//! an AVX2+FMA version picked at run time.

use std::cell::RefCell;
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::convert::WeightRef;
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
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut acc2 = _mm256_setzero_ps();
    let mut acc3 = _mm256_setzero_ps();
    let mut i = 0usize;
    // SAFETY: every load reads 8 f32 at offsets i..i+8 (resp. +8, +16, +24) with i + 32 <= n
    // (resp. i + 8 <= n), and n is at most the length of both slices.
    unsafe {
        while i + 32 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                acc1,
            );
            acc2 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 16)),
                _mm256_loadu_ps(pb.add(i + 16)),
                acc2,
            );
            acc3 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 24)),
                _mm256_loadu_ps(pb.add(i + 24)),
                acc3,
            );
            i += 32;
        }
        while i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
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
    let px = x.as_ptr();
    let pw = w.as_ptr();
    // Two accumulators per row, even and odd 8-wide chunks, as `dot_bytes_avx2` does for F32.
    let mut a0 = [_mm256_setzero_ps(); 4];
    let mut a1 = [_mm256_setzero_ps(); 4];
    let mut i = 0usize;
    // SAFETY: i + 16 <= c, x has c elements and w at least 4·c (checked above), so every load
    // (x[i..i+16], w[k·c + i..k·c + i + 16] for k < 4) is in bounds.
    unsafe {
        while i + 16 <= c {
            let x0 = _mm256_loadu_ps(px.add(i));
            let x1 = _mm256_loadu_ps(px.add(i + 8));
            for k in 0..4 {
                let wk = pw.add(k * c + i);
                a0[k] = _mm256_fmadd_ps(_mm256_loadu_ps(wk), x0, a0[k]);
                a1[k] = _mm256_fmadd_ps(_mm256_loadu_ps(wk.add(8)), x1, a1[k]);
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

#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: the pointer is only used to write disjoint elements from different tasks (see
// `matmul`), and the buffer outlives the parallel region.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// `out[t, o] = Σ_i x[t, i] · w[o, i]` for `t < n`: `x` is `n × w.cols`, `out` is `n × w.rows`,
/// both row-major. Accumulates in f32.
pub fn matmul(out: &mut [f32], x: &[f32], n: usize, w: &WeightRef<'_>) -> Result<()> {
    let (rows, cols) = (w.rows, w.cols);
    check_len("matmul input", mul("matmul input", n, cols)?, x.len())?;
    check_len("matmul output", mul("matmul output", n, rows)?, out.len())?;
    check_len(
        "matmul weight bytes",
        mul(
            "matmul weight",
            mul("matmul weight", rows, cols)?,
            crate::convert::float_size(w.dtype)?,
        )?,
        w.bytes.len(),
    )?;
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
    let optr = SendPtr(out.as_mut_ptr());
    let total = out.len();
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
                            debug_assert!(idx < total);
                            // SAFETY: idx < n * rows == out.len() (checked above); each (t, row)
                            // pair is written by exactly one task because tasks own disjoint row
                            // blocks [r0, r0 + nr); `out` is borrowed mutably for the whole call.
                            unsafe { *optr.0.add(idx) = *v };
                        }
                        r += k;
                    }
                }
                Ok(())
            })
        });
    let _ = total;
    res
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
    let optr = SendPtr(out.as_mut_ptr());
    (0..rows)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each(|r| {
            let optr = &optr;
            let wr = &w.bytes[r * rb..(r + 1) * rb];
            for t in 0..n {
                let v = f(dtype, wr, &x[t * cols..(t + 1) * cols]);
                // SAFETY: t * rows + r < n * rows == out.len() (checked by `matmul`); each index is
                // written by exactly the task that owns row r; `out` is mutably borrowed throughout.
                unsafe { *optr.0.add(t * rows + r) = v };
            }
        });
    Ok(())
}

/// `out[t, o] = Σ_i x[t, i] · w[o, i]` for a block-quantized weight `w` (`rows × cols` of type
/// `ty`, row-major, whole blocks per row), as ggml computes it: each activation row is quantized
/// once to [`crate::qdot::vec_dot_type`]`(ty)` into `act` (grown on demand and reused, so a warm
/// decode step does not allocate), then every output is one [`crate::qdot::vec_dot`]. Parallel
/// over output rows.
#[allow(clippy::too_many_arguments)]
pub fn matmul_quantized(
    out: &mut [f32],
    x: &[f32],
    n: usize,
    ty: crate::DType,
    w: &[u8],
    rows: usize,
    cols: usize,
    act: &mut Vec<u8>,
) -> Result<()> {
    use crate::qdot::{quantize_activations_into, vec_dot_fn, vec_dot_type};
    use crate::quants::bytes_for;
    let at = vec_dot_type(ty)?;
    check_len("matmul input", mul("matmul input", n, cols)?, x.len())?;
    check_len("matmul output", mul("matmul output", n, rows)?, out.len())?;
    let wrb = bytes_for(ty, cols)?;
    check_len(
        "quantized matmul weight bytes",
        mul("quantized matmul weight", rows, wrb)?,
        w.len(),
    )?;
    if n == 0 || rows == 0 {
        return Ok(());
    }
    let arb = bytes_for(at, cols)?;
    let need = mul("quantized activations", n, arb)?;
    if act.len() < need {
        act.resize(need, 0);
    }
    let act = &mut act[..need];
    for (src, dst) in x.chunks_exact(cols).zip(act.chunks_exact_mut(arb)) {
        quantize_activations_into(at, src, dst)?;
    }
    let act = &*act;
    #[cfg(target_arch = "x86_64")]
    if crate::qgemm::available(ty) {
        return QSCALES.with(|sc| {
            let mut sc = sc.borrow_mut();
            sc.clear();
            for row in act.chunks_exact(arb) {
                crate::qgemm::act_scales(ty, row, &mut sc);
            }
            tiled_quantized(out, ty, w, wrb, act, arb, &sc, rows, n);
            Ok(())
        });
    }
    // Sizes are checked above: every weight row is `wrb` bytes of whole blocks, every activation
    // row `arb` bytes for the same `cols`.
    let dotf = vec_dot_fn(ty)?;
    let dotq = |wr: &[u8], a: &[u8]| dotf(wr, a);
    let threads = rayon::current_num_threads().max(1);
    if n == 1 {
        let min_len = (rows / (threads * 8)).max(16);
        out.par_iter_mut()
            .with_min_len(min_len)
            .zip(w.par_chunks_exact(wrb))
            .for_each(|(o, wr)| *o = dotq(wr, act));
        return Ok(());
    }
    // Batched: tasks own blocks of QROW_BLOCK weight rows (kept in L1) and stream every
    // activation row past them.
    let n_blocks = rows.div_ceil(QROW_BLOCK);
    let min_len = (n_blocks / (threads * 4)).max(1);
    let optr = SendPtr(out.as_mut_ptr());
    (0..n_blocks)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each(|b| {
            let optr = &optr;
            let r0 = b * QROW_BLOCK;
            let r1 = (r0 + QROW_BLOCK).min(rows);
            for (t, a) in act.chunks_exact(arb).enumerate() {
                for r in r0..r1 {
                    let v = dotq(&w[r * wrb..(r + 1) * wrb], a);
                    // SAFETY: t < n and r < rows, so t * rows + r < n * rows == out.len()
                    // (checked above); each index is written only by the task that owns row
                    // block b; `out` is mutably borrowed for the whole call.
                    unsafe { *optr.0.add(t * rows + r) = v };
                }
            }
        });
    Ok(())
}

/// Products of one activation row `x` (`cols` values) with up to four quantized matrices of the
/// same type and width (`ws[i]` holds `outs[i].len()` rows): the decode step's q/k/v or gate/up.
/// The activations are quantized once and all rows run in one parallel loop, one hand-over
/// between threads instead of one per matrix. Every output equals that of [`matmul_quantized`]
/// with `n = 1`, bit for bit.
pub fn matvec_quantized_many(
    outs: &mut [&mut [f32]],
    ws: &[&[u8]],
    x: &[f32],
    ty: crate::DType,
    cols: usize,
    act: &mut Vec<u8>,
) -> Result<()> {
    use crate::qdot::{quantize_activations_into, vec_dot_type};
    use crate::quants::bytes_for;
    const MAX: usize = 4;
    let at = vec_dot_type(ty)?;
    if outs.len() != ws.len() || outs.len() > MAX {
        return Err(crate::KernelError::Invalid(format!(
            "{} outputs for {} matrices (at most {MAX})",
            outs.len(),
            ws.len()
        )));
    }
    check_len("matvec input", cols, x.len())?;
    let wrb = bytes_for(ty, cols)?;
    for (o, w) in outs.iter().zip(ws) {
        check_len(
            "quantized matvec weight bytes",
            mul("quantized matvec weight", o.len(), wrb)?,
            w.len(),
        )?;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::qgemm::available(ty) {
        let arb = bytes_for(at, cols)?;
        if act.len() < arb {
            act.resize(arb, 0);
        }
        let act = &mut act[..arb];
        quantize_activations_into(at, x, act)?;
        let act = &*act;
        return QSCALES.with(|sc| {
            let mut sc = sc.borrow_mut();
            sc.clear();
            crate::qgemm::act_scales(ty, act, &mut sc);
            let scales = &sc[..];
            // Global row g belongs to matrix i where starts[i] <= g < starts[i + 1].
            let mut starts = [0usize; MAX + 1];
            let mut ptrs = [SendPtr(std::ptr::null_mut()); MAX];
            for (i, o) in outs.iter_mut().enumerate() {
                starts[i + 1] = starts[i] + o.len();
                ptrs[i] = SendPtr(o.as_mut_ptr());
            }
            let k = outs.len();
            let total = starts[k];
            let threads = rayon::current_num_threads().max(1);
            let chunk = (total / (threads * 8)).max(16);
            let (starts, ptrs) = (&starts, &ptrs);
            // Chunks of global rows, split where a matrix ends.
            (0..total.div_ceil(chunk)).into_par_iter().for_each(|c| {
                let (mut g, g1) = (c * chunk, ((c + 1) * chunk).min(total));
                while g < g1 {
                    let i = (1..k).take_while(|&i| starts[i] <= g).count();
                    let end = g1.min(starts[i + 1]);
                    let (r0, r1) = (g - starts[i], end - starts[i]);
                    // SAFETY: r0 < r1 <= outs[i].len() (starts are prefix sums of the lengths);
                    // these rows are written by this task alone, and `outs` is mutably borrowed
                    // throughout.
                    let o = unsafe { std::slice::from_raw_parts_mut(ptrs[i].0.add(r0), r1 - r0) };
                    let wr = &ws[i][r0 * wrb..r1 * wrb];
                    crate::qgemm::dot_rows(ty, wr, wrb, act, scales, o);
                    g = end;
                }
            });
            Ok(())
        });
    }
    for (o, w) in outs.iter_mut().zip(ws) {
        let rows = o.len();
        matmul_quantized(o, x, 1, ty, w, rows, cols, act)?;
    }
    Ok(())
}

thread_local! {
    /// f32 scales of the activation rows of the current quantized product.
    static QSCALES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The tiled quantized product ([`crate::qgemm`]): decode (one row) in parallel over weight
/// rows; batches in tasks of QROW_BLOCK weight rows, each pair of weight rows multiplied with
/// four activation rows at a time. Sizes were checked by [`matmul_quantized`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn tiled_quantized(
    out: &mut [f32],
    ty: crate::DType,
    w: &[u8],
    wrb: usize,
    act: &[u8],
    arb: usize,
    scales: &[f32],
    rows: usize,
    n: usize,
) {
    use crate::qgemm::dot_tile;
    let spr = scales.len() / n.max(1); // scales per activation row
    let threads = rayon::current_num_threads().max(1);
    if n == 1 {
        // Decode: one weight row per product (tiles of several weight rows interleave their
        // streams and measured slower on Q4_1, Q4_K and Q6_K), in chunks of rows with one
        // dispatch each.
        let chunk = (rows / (threads * 8)).max(16);
        out.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| {
            let r0 = c * chunk;
            let wr = &w[r0 * wrb..(r0 + o.len()) * wrb];
            crate::qgemm::dot_rows(ty, wr, wrb, act, scales, o);
        });
        return;
    }
    let n_blocks = rows.div_ceil(QROW_BLOCK);
    let min_len = (n_blocks / (threads * 4)).max(1);
    let optr = SendPtr(out.as_mut_ptr());
    // Tiles of four weight rows where the kernel has the registers for them.
    let wide = crate::qgemm::wide_tiles(ty);
    // Batches of Q4_1, Q4_K, Q6_K and Q8_0: weights repacked eight rows at a time
    // ([`crate::qgemm_x8`]), with the activation blocks' sums where the kernel reads them.
    let x8 = crate::qgemm_x8::repacks(ty) && n >= 4;
    let sums_guard = QSUMS.with(|c| {
        let mut v = std::mem::take(&mut *c.borrow_mut());
        v.clear();
        if x8 && crate::qgemm::isa().is_some_and(|isa| crate::qgemm_x8::needs_sums(ty, isa)) {
            for t in 0..n {
                crate::qgemm_x8::act_sums(&act[t * arb..(t + 1) * arb], &mut v);
            }
        }
        v
    });
    let sums = &sums_guard[..];
    let spr_sums = sums.len() / n;
    let crow = |t: usize| &sums[t * spr_sums..(t + 1) * spr_sums];
    let arow = |t: usize| &act[t * arb..(t + 1) * arb];
    let srow = |t: usize| &scales[t * spr..(t + 1) * spr];
    (0..n_blocks)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each(|b| {
            let optr = &optr;
            let r0 = b * QROW_BLOCK;
            let r1 = (r0 + QROW_BLOCK).min(rows);
            // Whole groups of eight rows repacked (the rest below).
            let r_rest = if x8 {
                // SAFETY: r1 <= rows, `out` holds n * rows values (checked by
                // `matmul_quantized`), and only this task writes rows r0..r1.
                unsafe { x8_rows(ty, w, wrb, (r0, r1), n, (&arow, &srow, &crow), optr, rows) }
            } else {
                r0
            };
            let mut t = 0;
            while t < n {
                let k = if t + 4 <= n { 4 } else { 1 };
                // Tiles of four (where `wide`) or two weight rows × four activation rows, then
                // the odd row alone.
                let mut r = r_rest;
                if k == 4 {
                    let acts = [arow(t), arow(t + 1), arow(t + 2), arow(t + 3)];
                    let scs = [srow(t), srow(t + 1), srow(t + 2), srow(t + 3)];
                    let tiles = QuadTiles {
                        ty,
                        w,
                        wrb,
                        acts,
                        scs,
                        out: optr,
                        rows,
                        t,
                    };
                    // SAFETY: t + 4 <= n and r1 <= rows, `out` holds n * rows values
                    // (checked by `matmul_quantized`), and only this task writes rows r0..r1.
                    unsafe {
                        if wide {
                            r = tiles.run::<4>(r, r1);
                        }
                        r = tiles.run::<2>(r, r1);
                    }
                }
                for r in r..r1 {
                    let wr = &w[r * wrb..(r + 1) * wrb];
                    let mut v = [0.0f32; 4];
                    if k == 4 {
                        let mut o = [[0.0f32; 4]];
                        dot_tile::<1, 4>(
                            ty,
                            [wr],
                            [arow(t), arow(t + 1), arow(t + 2), arow(t + 3)],
                            [srow(t), srow(t + 1), srow(t + 2), srow(t + 3)],
                            &mut o,
                        );
                        v = o[0];
                    } else {
                        let mut one = [[0.0f32]];
                        dot_tile::<1, 1>(ty, [wr], [arow(t)], [srow(t)], &mut one);
                        v[0] = one[0][0];
                    }
                    for (j, val) in v.iter().take(k).enumerate() {
                        // SAFETY: t + j < n and r < rows, so (t + j) * rows + r < n * rows ==
                        // out.len() (checked by `matmul_quantized`); each index is written only by
                        // the task that owns row block b; `out` is mutably borrowed throughout.
                        unsafe { *optr.0.add((t + j) * rows + r) = *val };
                    }
                }
                t += k;
            }
        });
    QSUMS.with(|c| *c.borrow_mut() = sums_guard);
}

const QROW_BLOCK: usize = 32;

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Repacked rows of the current task ([`x8_rows`]).
    static X8: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Sums of the activation blocks of the current product ([`crate::qgemm_x8::act_sums`]).
    static QSUMS: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// The quantized activation row `t`, its block scales and its block sums (empty where unused).
#[cfg(target_arch = "x86_64")]
type ActRows<'f, 'a> = (
    &'f dyn Fn(usize) -> &'a [u8],
    &'f dyn Fn(usize) -> &'a [f32],
    &'f dyn Fn(usize) -> &'a [i32],
);

/// The products of weight rows `r0..` of `ty` (one of [`crate::qgemm_x8::repacks`]) in whole
/// groups of eight, repacked once into scratch memory, with all `n` activation rows (four at a
/// time, then one by one), written into the `[n × rows]` output; returns the first row left (`r1`
/// when `r1 - r0` is a multiple of eight).
///
/// # Safety
/// `out` points to `n * rows` values, `r1 <= rows`, and no other thread writes rows `r0..r1`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn x8_rows<'a>(
    ty: crate::DType,
    w: &[u8],
    wrb: usize,
    (r0, r1): (usize, usize),
    n: usize,
    (arow, srow, crow): ActRows<'_, 'a>,
    out: &SendPtr,
    rows: usize,
) -> usize {
    use crate::qgemm_x8::{group_bytes, repack, tile, ROWS};
    let groups = (r1 - r0) / ROWS;
    if groups == 0 {
        return r0;
    }
    let Some(isa) = crate::qgemm::isa() else {
        return r0;
    };
    let nb = wrb / ty.type_size();
    let gb = group_bytes(ty, nb);
    X8.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < groups * gb {
            buf.resize(groups * gb, 0);
        }
        for g in 0..groups {
            let rg = r0 + g * ROWS;
            let rows8 = std::array::from_fn(|i| &w[(rg + i) * wrb..(rg + i + 1) * wrb]);
            repack(ty, rows8, nb, &mut buf[g * gb..(g + 1) * gb]);
        }
        let put = |t: usize, rg: usize, v: &[f32; ROWS]| {
            for (i, val) in v.iter().enumerate() {
                // SAFETY: t < n and rg + i < r1 <= rows, so the index is below n * rows, the
                // length of `out` (the caller's contract); only this task writes these rows.
                unsafe { *out.0.add(t * rows + rg + i) = *val };
            }
        };
        let mut t = 0;
        while t + 4 <= n {
            let acts = [arow(t), arow(t + 1), arow(t + 2), arow(t + 3)];
            let scs = [srow(t), srow(t + 1), srow(t + 2), srow(t + 3)];
            let cs = [crow(t), crow(t + 1), crow(t + 2), crow(t + 3)];
            for g in 0..groups {
                let mut o = [[0.0f32; ROWS]; 4];
                // SAFETY: `isa` is the CPU's ([`crate::qgemm::isa`]).
                unsafe { tile::<4>(isa, ty, &buf[g * gb..], nb, acts, scs, cs, &mut o) };
                for (j, v) in o.iter().enumerate() {
                    put(t + j, r0 + g * ROWS, v);
                }
            }
            t += 4;
        }
        for t in t..n {
            for g in 0..groups {
                let mut o = [[0.0f32; ROWS]; 1];
                let (a, sc, c) = ([arow(t)], [srow(t)], [crow(t)]);
                // SAFETY: as above.
                unsafe { tile::<1>(isa, ty, &buf[g * gb..], nb, a, sc, c, &mut o) };
                put(t, r0 + g * ROWS, &o[0]);
            }
        }
    });
    r0 + groups * ROWS
}

/// Four activation rows `t..t + 4` against weight rows taken `RW` at a time, written into the
/// `[n × rows]` output.
#[cfg(target_arch = "x86_64")]
struct QuadTiles<'a> {
    ty: crate::DType,
    w: &'a [u8],
    wrb: usize,
    acts: [&'a [u8]; 4],
    scs: [&'a [f32]; 4],
    out: &'a SendPtr,
    rows: usize,
    t: usize,
}

#[cfg(target_arch = "x86_64")]
impl QuadTiles<'_> {
    /// Tiles of `RW` weight rows from `r` while they fit below `r1`; returns the first row left.
    ///
    /// # Safety
    /// `out` points to `(t + 4) * rows` or more values, `r1 <= rows`, and no other thread writes
    /// the rows `r..r1` of the four activation rows.
    unsafe fn run<const RW: usize>(&self, mut r: usize, r1: usize) -> usize {
        while r + RW <= r1 {
            let mut o = [[0.0f32; 4]; RW];
            let ws: [&[u8]; RW] =
                std::array::from_fn(|i| &self.w[(r + i) * self.wrb..(r + i + 1) * self.wrb]);
            crate::qgemm::dot_tile::<RW, 4>(self.ty, ws, self.acts, self.scs, &mut o);
            for (i, oi) in o.iter().enumerate() {
                for (j, val) in oi.iter().enumerate() {
                    // SAFETY: (t + j) * rows + r + i < (t + 4) * rows because r + i < r1 <= rows
                    // (the caller's contract), and this thread alone writes these rows.
                    unsafe { *self.out.0.add((self.t + j) * self.rows + r + i) = *val };
                }
            }
            r += RW;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn lcg(seed: &mut u64) -> f32 {
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

    /// The quantized product equals, output by output, the scalar oracle `vec_dot_scalar` on the
    /// activation row quantized by itself (legacy quants may differ by f32 reordering only).
    #[test]
    fn matvec_quantized_many_equals_one_matrix_at_a_time() {
        use crate::quantize::quantize_to_vec;
        use crate::DType;
        let mut seed = 5;
        let cols = 512usize;
        for ty in [
            DType::Q4_1,
            DType::Q8_0,
            DType::Q4_K,
            DType::Q6_K,
            DType::Q5_0,
        ] {
            let rows = [37usize, 8, 21];
            let ws: Vec<Vec<u8>> = rows
                .iter()
                .map(|&r| {
                    let f: Vec<f32> = (0..r * cols).map(|_| lcg(&mut seed)).collect();
                    quantize_to_vec(ty, &f).unwrap()
                })
                .collect();
            let x: Vec<f32> = (0..cols).map(|_| lcg(&mut seed)).collect();
            let mut act = Vec::new();
            let mut outs: Vec<Vec<f32>> = rows.iter().map(|&r| vec![0.0; r]).collect();
            {
                let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
                let w: Vec<&[u8]> = ws.iter().map(|v| v.as_slice()).collect();
                matvec_quantized_many(&mut o, &w, &x, ty, cols, &mut act).unwrap();
            }
            for ((w, &r), got) in ws.iter().zip(&rows).zip(&outs) {
                let mut want = vec![0.0f32; r];
                matmul_quantized(&mut want, &x, 1, ty, w, r, cols, &mut act).unwrap();
                let same = want
                    .iter()
                    .zip(got)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty:?}: {want:?} vs {got:?}");
            }
            // Mismatched sizes are errors, not panics.
            let mut short = vec![0.0f32; 3];
            let err = matvec_quantized_many(&mut [&mut short], &[&ws[0]], &x, ty, cols, &mut act);
            assert!(err.is_err());
        }
    }

    #[test]
    fn matmul_quantized_matches_scalar_oracle() {
        use crate::qdot::{quantize_activations, vec_dot_scalar, vec_dot_type};
        use crate::quantize::quantize_to_vec;
        use crate::DType;
        let mut seed = 11;
        let (rows, cols) = (37usize, 512usize);
        for ty in [
            DType::Q4_0,
            DType::Q4_1,
            DType::Q5_0,
            DType::Q5_1,
            DType::Q8_0,
            DType::Q4_K,
            DType::Q5_K,
            DType::Q6_K,
        ] {
            let wf: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut seed)).collect();
            let Ok(wq) = quantize_to_vec(ty, &wf) else {
                continue;
            };
            let wrb = crate::quants::bytes_for(ty, cols).unwrap();
            let mut act = Vec::new();
            let mut single = Vec::new();
            for n in [1usize, 3, 9] {
                let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut seed)).collect();
                let mut out = vec![0.0f32; n * rows];
                matmul_quantized(&mut out, &x, n, ty, &wq, rows, cols, &mut act).unwrap();
                // Each row alone gives the same bits as inside the batch (tiles of 4 + rest).
                single.clear();
                for t in 0..n {
                    let mut one = vec![0.0f32; rows];
                    let xt = &x[t * cols..(t + 1) * cols];
                    matmul_quantized(&mut one, xt, 1, ty, &wq, rows, cols, &mut act).unwrap();
                    single.extend(one);
                }
                for (i, (a, b)) in out.iter().zip(&single).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{ty:?} n={n} index {i}");
                }
                for t in 0..n {
                    let a = quantize_activations(
                        vec_dot_type(ty).unwrap(),
                        &x[t * cols..(t + 1) * cols],
                    )
                    .unwrap();
                    for r in 0..rows {
                        let want =
                            vec_dot_scalar(ty, &wq[r * wrb..(r + 1) * wrb], &a, cols).unwrap();
                        let got = out[t * rows + r];
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{ty:?} n={n} t={t} r={r}: {got} vs {want}"
                        );
                    }
                }
            }
            let mut out = vec![0.0f32; rows];
            assert!(
                matmul_quantized(&mut out, &[0.0; 5], 1, ty, &wq, rows, cols, &mut act).is_err()
            );
            assert!(matmul_quantized(
                &mut out,
                &vec![0.0; cols],
                1,
                ty,
                &wq[1..],
                rows,
                cols,
                &mut act
            )
            .is_err());
        }
    }
}
