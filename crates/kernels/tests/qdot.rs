//! Quantized dot products against 8-bit activations (`llama31_kernels::qdot`).
//!
//! (a) AVX2 vs scalar kernels; (b) scalar kernels vs an f64 dot of the dequantized operands;
//! (c) ggml's `test-quantize-fns` dot-product budget on its cosine input; (d) typed errors.

use llama31_kernels::qdot::{
    dequantize_activations, has_avx2_kernel, quantize_activations, quantize_row_q8_1,
    quantize_row_q8_k, vec_dot, vec_dot_avx2, vec_dot_scalar, vec_dot_type,
};
use llama31_kernels::quant::dequantize_to_vec;
use llama31_kernels::quantize::quantize_to_vec;
use llama31_kernels::{f16_to_f32, DType, KernelError};

const ALL: [DType; 10] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q2_K,
    DType::Q3_K,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
];

/// splitmix64
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly normal (Irwin–Hall of 4), with occasional large outliers.
    fn value(&mut self) -> f32 {
        let g = (0..4).map(|_| self.unit()).sum::<f32>() - 2.0;
        if self.next().is_multiple_of(53) {
            g * 25.0
        } else {
            g
        }
    }
}

const N: usize = 2048; // 64 legacy blocks, 8 super-blocks
const ROWS: usize = 4;

fn rows(seed: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut r = Rng(seed);
    (0..ROWS)
        .map(|i| {
            // vary the scale between rows; one row has a positive offset (helps Q4_1/Q5_1 mins)
            let s = [1.0f32, 0.01, 300.0, 1.0][i];
            let off = if i == 3 { 0.7 } else { 0.0 };
            let w = (0..N).map(|_| s * r.value() + off).collect();
            let a = (0..N).map(|_| r.value() + off).collect();
            (w, a)
        })
        .collect()
}

/// `Σ |w_i a_i|` in f64: the scale the relative tolerances refer to (the dot itself may cancel).
fn abs_scale(w: &[f32], a: &[f32]) -> f64 {
    w.iter()
        .zip(a)
        .map(|(&x, &y)| (x as f64 * y as f64).abs())
        .sum()
}

fn dot64(w: &[f32], a: &[f32]) -> f64 {
    w.iter().zip(a).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// The exact value the kernels compute, in f64, from dequantized operands. For Q4_1/Q5_1 ggml
/// uses the activation block's stored `s` (f16 of `d·Σq`) for the `m · Σa` part, so does this.
fn reference(ty: DType, wb: &[u8], ab: &[u8], n: usize) -> (f64, f64) {
    let wd = dequantize_to_vec(ty, wb, n).unwrap();
    let act = vec_dot_type(ty).unwrap();
    let ad = dequantize_activations(act, ab, n).unwrap();
    let scale = abs_scale(&wd, &ad);
    if act != DType::Q8_1 {
        return (dot64(&wd, &ad), scale);
    }
    let mut total = 0.0f64;
    for (k, (wb, ab)) in wb
        .chunks_exact(ty.type_size())
        .zip(ab.chunks_exact(act.type_size()))
        .enumerate()
    {
        let m = f16_to_f32(u16::from_le_bytes([wb[2], wb[3]])) as f64;
        let s = f16_to_f32(u16::from_le_bytes([ab[2], ab[3]])) as f64;
        let r = 32 * k..32 * k + 32;
        total += wd[r.clone()]
            .iter()
            .zip(&ad[r])
            .map(|(&x, &y)| (x as f64 - m) * y as f64)
            .sum::<f64>()
            + m * s;
    }
    (total, scale)
}

#[test]
fn avx2_matches_scalar_and_scalar_matches_dequantized_math() {
    let mut avx2_checked = 0;
    for ty in ALL {
        for (r, (w, a)) in rows(0x5eed ^ ty as u64).iter().enumerate() {
            let wb = quantize_to_vec(ty, w).unwrap();
            let ab = quantize_activations(vec_dot_type(ty).unwrap(), a).unwrap();
            let s = vec_dot_scalar(ty, &wb, &ab, N).unwrap();
            let (exact, scale) = reference(ty, &wb, &ab, N);
            assert!(scale > 0.0);
            let rel = (s as f64 - exact).abs() / scale;
            assert!(
                rel <= 1e-4,
                "{ty:?} row {r}: scalar {s} vs dequantized f64 {exact} (rel {rel:e})"
            );
            // (a) AVX2 against the scalar twin: same integer sums, f32 order may differ.
            if let Some(v) = vec_dot_avx2(ty, &wb, &ab, N).unwrap() {
                avx2_checked += 1;
                let rel = (v as f64 - s as f64).abs() / scale;
                assert!(rel <= 1e-5, "{ty:?} row {r}: avx2 {v} vs scalar {s}");
            }
            // the dispatcher runs one of the two
            let d = vec_dot(ty, &wb, &ab, N).unwrap();
            let avx = vec_dot_avx2(ty, &wb, &ab, N).unwrap();
            assert_eq!(d, avx.unwrap_or(s), "{ty:?}: dispatch");
        }
    }
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
    {
        assert_eq!(
            avx2_checked,
            7 * ROWS,
            "AVX2 kernels expected for the legacy quants, Q4_K and Q6_K"
        );
    }
}

/// AVX2 must reproduce the scalar integer sums for any block contents, including levels and
/// bytes the quantizers never produce (e.g. activation -128, 6-bit scales ≥ 32). Scales are set
/// to 1.0: legacy results are then exact integers, and the k-quant kernels use the scalar f32
/// formula per super-block, so all results must be equal.
#[test]
fn avx2_integer_sums_equal_scalar_on_arbitrary_bytes() {
    let mut r = Rng(77);
    for ty in ALL {
        if !has_avx2_kernel(ty) {
            continue;
        }
        let act = vec_dot_type(ty).unwrap();
        for _ in 0..20 {
            let n = 256 * 3;
            let mut wb: Vec<u8> = (0..llama31_kernels::quants::bytes_for(ty, n).unwrap())
                .map(|_| r.next() as u8)
                .collect();
            let mut ab: Vec<u8> = (0..llama31_kernels::quants::bytes_for(act, n).unwrap())
                .map(|_| r.next() as u8)
                .collect();
            let one = 0x3c00u16.to_le_bytes(); // f16 1.0
            let zero = [0u8, 0];
            for b in wb.chunks_exact_mut(ty.type_size()) {
                match ty {
                    DType::Q4_1 | DType::Q5_1 => {
                        b[..2].copy_from_slice(&one);
                        b[2..4].copy_from_slice(&zero); // m
                    }
                    DType::Q4_K => {
                        b[..2].copy_from_slice(&one);
                        b[2..4].copy_from_slice(&one); // dmin
                    }
                    DType::Q6_K => b[208..210].copy_from_slice(&one),
                    _ => b[..2].copy_from_slice(&one),
                }
            }
            for b in ab.chunks_exact_mut(act.type_size()) {
                match act {
                    DType::Q8_K => b[..4].copy_from_slice(&1.0f32.to_le_bytes()),
                    DType::Q8_1 => {
                        b[..2].copy_from_slice(&one);
                        b[2..4].copy_from_slice(&zero); // s
                    }
                    DType::Q8_0 => b[..2].copy_from_slice(&one),
                    other => panic!("{other} is not an activation format"),
                }
            }
            let s = vec_dot_scalar(ty, &wb, &ab, n).unwrap();
            let v = vec_dot_avx2(ty, &wb, &ab, n).unwrap().unwrap();
            assert_eq!(s, v, "{ty:?}");
            if act != DType::Q8_K {
                // small enough to be exact in f32 whatever the summation order
                assert_eq!(s, s.round(), "{ty:?}: integer result expected");
            }
        }
    }
}

/// ggml `test-quantize-fns`: weights `0.1 + 2cos(i)`, activations `0.1 + 2cos(i + 1)`, 4096
/// elements; error = |dot - reference| / n, budget 0.02 (0.04 for 2- and 3-bit types).
#[test]
fn ggml_dot_product_budget_on_cosine_input() {
    let n = 32 * 128;
    let w: Vec<f32> = (0..n).map(|i| 0.1 + 2.0 * (i as f32).cos()).collect();
    let a: Vec<f32> = (0..n).map(|i| 0.1 + 2.0 * (i as f32 + 1.0).cos()).collect();
    let ref_orig = dot64(&w, &a);
    for ty in ALL {
        let budget = match ty {
            DType::Q2_K | DType::Q3_K => 0.04,
            _ => 0.02,
        };
        let wb = quantize_to_vec(ty, &w).unwrap();
        let ab = quantize_activations(vec_dot_type(ty).unwrap(), &a).unwrap();
        let wd = dequantize_to_vec(ty, &wb, n).unwrap();
        let ref_deqw = dot64(&wd, &a);
        for (name, v) in [
            ("scalar", vec_dot_scalar(ty, &wb, &ab, n).unwrap()),
            ("dispatch", vec_dot(ty, &wb, &ab, n).unwrap()),
        ] {
            let e_deqw = (v as f64 - ref_deqw).abs() / n as f64;
            let e_ggml = (v as f64 - ref_orig).abs() / n as f64;
            eprintln!("{ty:?} {name}: err vs deq·f32 {e_deqw:.2e}, vs f32·f32 (ggml) {e_ggml:.2e}");
            assert!(e_deqw <= budget, "{ty:?} {name}: {e_deqw} > {budget}");
            assert!(e_ggml <= budget, "{ty:?} {name}: {e_ggml} > {budget}");
        }
    }
}

#[test]
fn activation_quantizers_round_trip_and_sums() {
    let mut r = Rng(9);
    let x: Vec<f32> = (0..1024).map(|_| r.value()).collect();
    // Q8_1: q = round(x / d), d = amax / 127, s ≈ d · Σq
    let mut b = vec![0u8; 36 * 32];
    quantize_row_q8_1(&x, &mut b).unwrap();
    let deq = dequantize_activations(DType::Q8_1, &b, x.len()).unwrap();
    for (k, blk) in b.chunks_exact(36).enumerate() {
        let xs = &x[32 * k..32 * k + 32];
        let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
        assert!((d - amax / 127.0).abs() <= amax / 127.0 * 1e-3);
        let qsum: i32 = blk[4..].iter().map(|&q| q as i8 as i32).sum();
        assert_eq!(
            blk[4..].iter().map(|&q| (q as i8).unsigned_abs()).max(),
            Some(127)
        );
        let s = f16_to_f32(u16::from_le_bytes([blk[2], blk[3]]));
        let want = qsum as f32 * amax / 127.0;
        assert!(
            (s - want).abs() <= want.abs() * 1e-3 + 1e-6,
            "s {s} vs {want}"
        );
        for (o, v) in deq[32 * k..32 * k + 32].iter().zip(xs) {
            assert!((o - v).abs() <= d * 0.5 + amax * 2e-3);
        }
    }
    // Q8_K: f32 d = -max/127 (sign of the largest-magnitude value), bsums = Σ of 16 quants
    let mut b = vec![0u8; 292 * 4];
    quantize_row_q8_k(&x, &mut b).unwrap();
    for (k, blk) in b.chunks_exact(292).enumerate() {
        let xs = &x[256 * k..256 * k + 256];
        let big = xs
            .iter()
            .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = f32::from_le_bytes([blk[0], blk[1], blk[2], blk[3]]);
        assert!(
            (d + big / 127.0).abs() <= big.abs() * 1e-6,
            "d {d} vs {big}"
        );
        let qs = &blk[4..260];
        for (j, &q) in qs.iter().enumerate() {
            let back = q as i8 as f32 * d;
            assert!((back - xs[j]).abs() <= d.abs() * 0.5001);
        }
        for j in 0..16 {
            let want: i32 = qs[16 * j..16 * j + 16]
                .iter()
                .map(|&q| q as i8 as i32)
                .sum();
            let got = i16::from_le_bytes([blk[260 + 2 * j], blk[261 + 2 * j]]);
            assert_eq!(i32::from(got), want);
        }
    }
    // an all-zero block quantizes to zeros
    let z = quantize_activations(DType::Q8_K, &[0.0; 256]).unwrap();
    assert!(z.iter().all(|&v| v == 0));
}

#[test]
fn wrong_lengths_are_typed_errors() {
    for ty in ALL {
        let n = ty.block_size() * 2;
        let act = vec_dot_type(ty).unwrap();
        let w = vec![0u8; llama31_kernels::quants::bytes_for(ty, n).unwrap()];
        let a = vec![0u8; llama31_kernels::quants::bytes_for(act, n).unwrap()];
        assert_eq!(vec_dot(ty, &w, &a, n), Ok(0.0));
        for f in [vec_dot, vec_dot_scalar] {
            assert!(matches!(
                f(ty, &w[1..], &a, n),
                Err(KernelError::Length { .. })
            ));
            assert!(matches!(
                f(ty, &w, &a[..a.len() - 1], n),
                Err(KernelError::Length { .. })
            ));
            assert!(matches!(f(ty, &w, &a, n + 1), Err(KernelError::Invalid(_))));
            assert!(matches!(
                f(ty, &w, &a, n / 2),
                Err(KernelError::Length { .. })
            ));
        }
        assert!(matches!(
            vec_dot_avx2(ty, &w, &[], n),
            Err(KernelError::Length { .. })
        ));
        assert!(matches!(
            vec_dot(ty, &w, &a, usize::MAX / 2 * 2),
            Err(KernelError::Invalid(_) | KernelError::Overflow(_) | KernelError::Length { .. })
        ));
    }
    let mut small = vec![0u8; 35];
    assert!(matches!(
        quantize_row_q8_1(&[0.0; 32], &mut small),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        quantize_row_q8_k(&[0.0; 32], &mut small),
        Err(KernelError::Invalid(_))
    ));
    assert!(matches!(
        dequantize_activations(DType::Q8_0, &[0u8; 33], 32),
        Err(KernelError::Length { .. })
    ));
}
