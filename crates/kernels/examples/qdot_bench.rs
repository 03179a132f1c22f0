//! Rough timing of quantized dot products, AVX2 vs scalar, on one row:
//! `cargo run --release -p llama31-kernels --example qdot_bench -- [n] [iters]`.

use std::hint::black_box;
use std::time::Instant;

use llama31_kernels::qdot::{quantize_activations, vec_dot_avx2, vec_dot_scalar, vec_dot_type};
use llama31_kernels::quantize::quantize_to_vec;
use llama31_kernels::DType;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let n = a.first().copied().unwrap_or(4096);
    let iters = a.get(1).copied().unwrap_or(200_000);
    let w: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
    for ty in [
        DType::Q4_0,
        DType::Q8_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q4_K,
        DType::Q6_K,
    ] {
        let wb = quantize_to_vec(ty, &w).expect("quantize weights");
        let ab = quantize_activations(vec_dot_type(ty).unwrap(), &x).expect("quantize activations");
        let time = |f: &dyn Fn() -> f32| {
            let t = Instant::now();
            let mut s = 0.0f32;
            for _ in 0..iters {
                s += f();
            }
            black_box(s);
            t.elapsed().as_secs_f64() / iters as f64
        };
        let scalar = time(&|| vec_dot_scalar(ty, black_box(&wb), black_box(&ab), n).unwrap_or(0.0));
        let has_avx2 = vec_dot_avx2(ty, &wb, &ab, n).ok().flatten().is_some();
        let line = if has_avx2 {
            let avx2 = time(&|| {
                vec_dot_avx2(ty, black_box(&wb), black_box(&ab), n)
                    .ok()
                    .flatten()
                    .unwrap_or(0.0)
            });
            format!("avx2 {:8.1} ns  ({:.1}x)", avx2 * 1e9, scalar / avx2)
        } else {
            "avx2 n/a".to_string()
        };
        println!("{ty:?} n={n}: scalar {:8.1} ns  {line}", scalar * 1e9);
    }
}
