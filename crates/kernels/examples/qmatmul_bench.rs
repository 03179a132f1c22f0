//! Rough timing of quantized matrix products (decode and prefill shapes) for the types with
//! tiled kernels and a few without:
//! `cargo run --release -p llama31-kernels --example qmatmul_bench -- [rows] [cols] [iters]`.

use std::time::Instant;

use llama31_kernels::matmul::matmul_quantized;
use llama31_kernels::quantize::quantize_to_vec;
use llama31_kernels::DType;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let rows = a.first().copied().unwrap_or(2048);
    let cols = a.get(1).copied().unwrap_or(2048);
    let iters = a.get(2).copied().unwrap_or(20);
    let w: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
    for ty in [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q8_0,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
    ] {
        let wq = quantize_to_vec(ty, &w).expect("quantize");
        let mut act = Vec::new();
        let mut line = format!("{ty:?} {rows}x{cols}:");
        for n in [1usize, 64] {
            let x: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut out = vec![0.0f32; n * rows];
            matmul_quantized(&mut out, &x, n, ty, &wq, rows, cols, &mut act).expect("matmul");
            let it = if n == 1 { iters * 10 } else { iters };
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = Instant::now();
                for _ in 0..it {
                    matmul_quantized(&mut out, &x, n, ty, &wq, rows, cols, &mut act)
                        .expect("matmul");
                }
                best = best.min(t.elapsed().as_secs_f64() / it as f64);
            }
            line += &format!("  n={n}: {:8.3} ms", best * 1e3);
        }
        println!("{line}");
    }
}
