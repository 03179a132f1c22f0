//! Rough matmul timing: `cargo run --release -p llama31-kernels --example bench_matmul -- [rows] [cols] [n]`.

use std::time::Instant;

use llama31_kernels::{matmul, DType, WeightRef};

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let (rows, cols, n) = (
        a.first().copied().unwrap_or(49152),
        a.get(1).copied().unwrap_or(576),
        a.get(2).copied().unwrap_or(1),
    );
    let x: Vec<f32> = (0..n * cols).map(|i| (i % 7) as f32 * 0.1).collect();
    for dt in [DType::F32, DType::BF16, DType::F16] {
        let bytes = vec![0x3cu8; rows * cols * dt.type_size()];
        let w = WeightRef::new(dt, &bytes, rows, cols).expect("sizes");
        let mut out = vec![0.0f32; n * rows];
        matmul(&mut out, &x, n, &w).expect("matmul");
        let iters = 10;
        let t = Instant::now();
        for _ in 0..iters {
            matmul(&mut out, &x, n, &w).expect("matmul");
        }
        let dt_s = t.elapsed().as_secs_f64() / iters as f64;
        let gb = bytes.len() as f64 / dt_s / 1e9;
        let gflops = 2.0 * (rows * cols * n) as f64 / dt_s / 1e9;
        eprintln!(
            "{dt:?} {rows}x{cols} n={n}: {:.3} ms, {gb:.1} GB/s weights, {gflops:.1} GFLOP/s",
            dt_s * 1e3
        );
    }
}
