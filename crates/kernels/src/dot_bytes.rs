//! Dot products of an f32 activation row with a weight row read straight from its stored
//! bytes (F32/F16/BF16 or a block-quantized weight type, any alignment): used by matmul for
//! decode-sized batches, where decoding the row to a scratch buffer first would double the
//! memory traffic.
//!
//! A quantized row is dequantized one block at a time (ggml's exact `to_float`) into a buffer in
//! L1 and multiplied in the accumulators and order of an F32 row, so the result is that of the
//! row stored dequantized, bit for bit.

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
use crate::checked::{load_at, ptr_at};

use crate::convert::{bf16_to_f32, f16_to_f32};
use crate::quants::{dispatch, BlockFormat, QK_K};
use crate::DType;

/// Signature of a bytes·f32 dot implementation: `(dtype, weight row bytes, x)`. `dtype` must be
/// F32, F16, BF16 or a quantized weight type (checked once per call by the callers, e.g.
/// [`crate::WeightRef::new`] and [`crate::matmul()`]), a quantized row whole blocks; any other
/// type panics.
pub type DotBytesFn = fn(DType, &[u8], &[f32]) -> f32;

/// Portable twin: the oracle for the SIMD version.
pub fn dot_bytes_scalar(dtype: DType, w: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    match dtype {
        DType::F32 => {
            for (i, (b, xv)) in w.chunks_exact(4).zip(x).enumerate() {
                acc[i % 8] += f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * xv;
            }
        }
        DType::BF16 => {
            for (i, (b, xv)) in w.chunks_exact(2).zip(x).enumerate() {
                acc[i % 8] += bf16_to_f32(u16::from_le_bytes([b[0], b[1]])) * xv;
            }
        }
        DType::F16 => {
            for (i, (b, xv)) in w.chunks_exact(2).zip(x).enumerate() {
                acc[i % 8] += f16_to_f32(u16::from_le_bytes([b[0], b[1]])) * xv;
            }
        }
        q if q.is_quantized() => dispatch!(q, T => {
            let mut buf = [0.0f32; QK_K];
            let buf = &mut buf[..T::BLCK_SIZE];
            let blocks = w.chunks_exact(T::BLCK_BYTES).zip(x.chunks_exact(T::BLCK_SIZE));
            for (bi, (b, xs)) in blocks.enumerate() {
                T::to_float(b, buf);
                for (j, (wv, xv)) in buf.iter().zip(xs).enumerate() {
                    acc[(bi * T::BLCK_SIZE + j) % 8] += wv * xv;
                }
            }
        }),
        other => panic!("dot_bytes: {other} is not F32, F16 or BF16"),
    }
    acc.iter().sum()
}

/// [`dot_bytes_scalar`] for an F32 row given as floats (the same accumulators and order).
pub fn dot_f32_scalar(w: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (i, (wv, xv)) in w.iter().zip(x).enumerate() {
        acc[i % 8] += wv * xv;
    }
    acc.iter().sum()
}

/// The dot of an F32 row given as floats with `x`, bit-identical to [`dot_bytes_fn`] on the
/// row's bytes (used by matmul's batched path so both paths agree exactly).
pub type DotF32Fn = fn(&[f32], &[f32]) -> f32;

fn dot_f32_dispatch(w: &[f32], x: &[f32]) -> f32 {
    // SAFETY: f32 has no padding and every bit pattern of its 4 bytes is a valid u8; the byte
    // slice covers exactly the memory of `w`, which stays borrowed for the call.
    let bytes =
        unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<u8>(), std::mem::size_of_val(w)) };
    dot_bytes_fn()(DType::F32, bytes, x)
}

/// See [`DotF32Fn`].
pub fn dot_f32_fn() -> DotF32Fn {
    dot_f32_dispatch
}

/// # Safety
/// SAFETY: the caller must have checked at run time that the CPU supports AVX2, FMA and F16C
/// ([`crate::cpu::cpu`]); slice bounds are checked inside.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_bytes_avx2(dtype: DType, w: &[u8], x: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = x.len().min(w.len() / dtype.type_size());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0usize;
    // SAFETY: for all loads below, element i + 16 <= n, and n is at most the number of elements in
    // both `w` (n · size bytes) and `x` (the ranges `load_at` and `ptr_at` check in debug builds);
    // all loads are unaligned loads (`loadu`).
    unsafe {
        match dtype {
            DType::F32 => {
                while i + 16 <= n {
                    let w0 = _mm256_loadu_ps(load_at::<32, u8>(w, 4 * i).cast());
                    let w1 = _mm256_loadu_ps(load_at::<32, u8>(w, 4 * i + 32).cast());
                    acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(ptr_at(x, i, 8)), acc0);
                    acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(ptr_at(x, i + 8, 8)), acc1);
                    i += 16;
                }
            }
            DType::BF16 => {
                while i + 16 <= n {
                    let raw = _mm256_loadu_si256(load_at::<32, u8>(w, 2 * i).cast());
                    let lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(raw));
                    let hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(raw, 1));
                    let w0 = _mm256_castsi256_ps(_mm256_slli_epi32(lo, 16));
                    let w1 = _mm256_castsi256_ps(_mm256_slli_epi32(hi, 16));
                    acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(ptr_at(x, i, 8)), acc0);
                    acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(ptr_at(x, i + 8, 8)), acc1);
                    i += 16;
                }
            }
            DType::F16 => {
                while i + 16 <= n {
                    let w0 = _mm256_cvtph_ps(_mm_loadu_si128(load_at::<16, u8>(w, 2 * i).cast()));
                    let w1 =
                        _mm256_cvtph_ps(_mm_loadu_si128(load_at::<16, u8>(w, 2 * i + 16).cast()));
                    acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(ptr_at(x, i, 8)), acc0);
                    acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(ptr_at(x, i + 8, 8)), acc1);
                    i += 16;
                }
            }
            q if q.is_quantized() => {
                (acc0, acc1) = dispatch!(q, T => dot_blocks_avx2::<T>(w, x));
                i = n;
            }
            other => panic!("dot_bytes: {other} is not F32, F16 or BF16"),
        }
    }
    let acc = _mm256_add_ps(acc0, acc1);
    let s = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    if dtype.is_quantized() {
        // Whole blocks: no tail, but the same `+ 0.0` as a float row's empty tail.
        return _mm_cvtss_f32(s) + dot_bytes_scalar(DType::F32, &[], &[]);
    }
    let es = dtype.type_size();
    _mm_cvtss_f32(s) + dot_bytes_scalar(dtype, &w[i * es..n * es], &x[i..n])
}

/// The two accumulators of [`dot_bytes_avx2`] over whole blocks of the quantized type `T`: each
/// block dequantized into an L1 buffer, then elements `16k..16k+8` into the first accumulator and
/// `16k+8..16k+16` into the second, as for an F32 row.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_blocks_avx2<T: BlockFormat>(
    w: &[u8],
    x: &[f32],
) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut buf = [0.0f32; QK_K];
    let buf = &mut buf[..T::BLCK_SIZE];
    for (b, xs) in w
        .chunks_exact(T::BLCK_BYTES)
        .zip(x.chunks_exact(T::BLCK_SIZE))
    {
        T::to_float(b, buf);
        for (wv, xv) in buf.chunks_exact(16).zip(xs.chunks_exact(16)) {
            // SAFETY: both chunks hold exactly 16 f32 (the ranges `ptr_at` checks in debug
            // builds); `loadu` has no alignment requirement.
            unsafe {
                let (w0, x0) = (ptr_at(wv, 0, 8), ptr_at(xv, 0, 8));
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0), _mm256_loadu_ps(x0), acc0);
                let (w1, x1) = (ptr_at(wv, 8, 8), ptr_at(xv, 8, 8));
                acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1), _mm256_loadu_ps(x1), acc1);
            }
        }
    }
    (acc0, acc1)
}

#[cfg(target_arch = "x86_64")]
fn dot_bytes_avx2_entry(dtype: DType, w: &[u8], x: &[f32]) -> f32 {
    // SAFETY: only selected by `dot_bytes_fn` after run-time detection of AVX2, FMA and F16C.
    unsafe { dot_bytes_avx2(dtype, w, x) }
}

/// The bytes·f32 dot for this CPU (detected once).
pub fn dot_bytes_fn() -> DotBytesFn {
    static F: OnceLock<DotBytesFn> = OnceLock::new();
    *F.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::cpu().avx2_fma_f16c() {
                return dot_bytes_avx2_entry as DotBytesFn;
            }
        }
        dot_bytes_scalar as DotBytesFn
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_matches_scalar_twin_for_all_dtypes_and_alignments() {
        let f = dot_bytes_fn();
        for n in [0usize, 1, 15, 16, 17, 33, 64, 100] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.25)
                .collect();
            let wv: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
            for dt in [DType::F32, DType::F16, DType::BF16] {
                let mut bytes = vec![0u8]; // misalign by one byte
                for v in &wv {
                    match dt {
                        DType::F32 => bytes.extend(v.to_le_bytes()),
                        DType::F16 => bytes.extend(half::f16::from_f32(*v).to_bits().to_le_bytes()),
                        DType::BF16 => bytes.extend(((v.to_bits() >> 16) as u16).to_le_bytes()),
                        _ => unreachable!(),
                    }
                }
                let exact: f32 = wv.iter().zip(&x).map(|(a, b)| a * b).sum();
                let s = dot_bytes_scalar(dt, &bytes[1..], &x);
                let v = f(dt, &bytes[1..], &x);
                assert!(
                    (s - exact).abs() < 1e-4,
                    "{dt:?} n={n}: scalar {s} vs {exact}"
                );
                assert!(
                    (v - exact).abs() < 1e-4,
                    "{dt:?} n={n}: simd {v} vs {exact}"
                );
            }
        }
    }
}
