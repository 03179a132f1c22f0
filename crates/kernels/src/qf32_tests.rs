//! Quantized weights × f32 activations ([`crate::matmul()`] and [`crate::dot_bytes`] on a
//! quantized [`WeightRef`]) against the same weights dequantized by ggml's `to_float` and stored
//! as F32: every weight type, decode and batched products, the SIMD kernels and their scalar twin.
//! The promise is bit-equality with the dequantized matrix, for every batch size.

use crate::convert::WeightRef;
use crate::dot_bytes::{dot_bytes_fn, dot_bytes_scalar};
use crate::matmul::matmul;
use crate::quant::dequantize_to_vec;
use crate::quants::WEIGHT_TYPES;
use crate::DType;

/// xorshift values in −1..1 with occasional outliers (as activations of a real model have).
fn values(seed: &mut u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let u = ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            if (*seed >> 8).is_multiple_of(31) {
                u * 20.0
            } else {
                u
            }
        })
        .collect()
}

/// `rows × cols` random weights quantized to `ty` (ggml's reference quantization), and the same
/// weights dequantized, as F32 bytes.
fn weights(ty: DType, seed: &mut u64, rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>) {
    let w = values(seed, rows * cols);
    let q = crate::quantize::quantize_to_vec(ty, &w).expect("quantize");
    let deq = dequantize_to_vec(ty, &q, rows * cols).expect("dequantize");
    (q, deq.iter().flat_map(|v| v.to_le_bytes()).collect())
}

#[test]
fn row_dot_equals_the_dequantized_row_bit_for_bit() {
    let mut seed = 0x1234_5678_9abc_def1u64;
    for ty in WEIGHT_TYPES {
        for blocks in [1usize, 2, 3, 7] {
            let cols = blocks * ty.block_size();
            let (q, f) = weights(ty, &mut seed, 1, cols);
            let x = values(&mut seed, cols);
            // Unaligned copies: rows are read at any address.
            let mut qu = vec![0u8];
            qu.extend(&q);
            let simd = dot_bytes_fn()(ty, &qu[1..], &x);
            let simd_f32 = dot_bytes_fn()(DType::F32, &f, &x);
            assert_eq!(simd.to_bits(), simd_f32.to_bits(), "{ty} {blocks} blocks");
            let scalar = dot_bytes_scalar(ty, &q, &x);
            let scalar_f32 = dot_bytes_scalar(DType::F32, &f, &x);
            assert_eq!(scalar.to_bits(), scalar_f32.to_bits(), "{ty} scalar");
            // The twins differ only in summation order.
            let mag: f32 = f
                .chunks_exact(4)
                .zip(&x)
                .map(|(b, x)| (f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * x).abs())
                .sum();
            assert!(
                (simd - scalar).abs() <= 1e-6 * mag.max(1.0),
                "{ty}: simd {simd} vs scalar {scalar}"
            );
        }
    }
}

#[test]
fn matmul_equals_the_dequantized_matrix_for_every_batch_size() {
    let mut seed = 0x0bad_cafe_f00d_1234u64;
    for ty in WEIGHT_TYPES {
        let (rows, cols) = (19usize, 2 * ty.block_size());
        let (q, f) = weights(ty, &mut seed, rows, cols);
        let wq = WeightRef::new(ty, &q, rows, cols).expect("quantized view");
        let wf = WeightRef::new(DType::F32, &f, rows, cols).expect("f32 view");
        let n_max = 6;
        let x = values(&mut seed, n_max * cols);
        let mut one = vec![0.0f32; rows * n_max];
        for t in 0..n_max {
            let xr = &x[t * cols..(t + 1) * cols];
            matmul(&mut one[t * rows..(t + 1) * rows], xr, 1, &wq).expect("matvec");
        }
        for n in 1..=n_max {
            let mut oq = vec![0.0f32; n * rows];
            let mut of = vec![0.0f32; n * rows];
            matmul(&mut oq, &x[..n * cols], n, &wq).expect("quantized matmul");
            matmul(&mut of, &x[..n * cols], n, &wf).expect("f32 matmul");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&oq), bits(&of), "{ty} n={n}: quantized vs dequantized");
            assert_eq!(
                bits(&oq),
                bits(&one[..n * rows]),
                "{ty} n={n}: vs one row at a time"
            );
        }
    }
}

#[test]
fn quantized_views_check_their_sizes() {
    assert!(WeightRef::new(DType::Q4_K, &[0u8; 144], 1, 256).is_ok());
    assert!(WeightRef::new(DType::Q4_K, &[0u8; 144], 1, 128).is_err());
    assert!(WeightRef::new(DType::Q4_K, &[0u8; 143], 1, 256).is_err());
    let w = WeightRef::new(DType::Q4_0, &[0u8; 36], 2, 32).expect("view");
    let mut out = vec![0.0f32; 20];
    assert!(matmul(&mut out, &[0.0; 20], 1, &w).is_err());
    let mut row = [1.0f32; 32];
    w.decode_rows(1, &mut row).expect("row 1");
    assert!(row.iter().all(|&v| v == 0.0));
    let mut three = [0.0f32; 96];
    assert!(w.decode_rows(0, &mut three).is_err());
}
