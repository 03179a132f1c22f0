//! Hashes of the outputs of the quantized kernels on fixed pseudo-random inputs, to compare two
//! builds bit for bit: `cargo test -p llama31-kernels --release --test bit_hashes -- --ignored
//! --nocapture` (and again with `LLAMA31_KERNELS=avx2`). Only the public API is used, so the same
//! file runs on any version of the crate.

use llama31_kernels::matmul::{matmul_quantized, matvec_quantized_many};
use llama31_kernels::qdot::{quantize_activations, vec_dot, vec_dot_scalar, vec_dot_type};
use llama31_kernels::quant::dequantize_to_vec;
use llama31_kernels::quantize::quantize_to_vec;
use llama31_kernels::DType;

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

struct Fnv(u64);
impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &v in b {
            self.0 ^= u64::from(v);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }
}

fn values(seed: &mut u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
            if (*seed >> 20).is_multiple_of(61) {
                u * 20.0 * scale
            } else {
                u * scale
            }
        })
        .collect()
}

#[test]
#[ignore = "prints hashes to compare two builds"]
fn print_bit_hashes() {
    let mut all = Fnv::new();
    for ty in ALL {
        let k = ty.block_size() == 256;
        let shapes: &[(usize, usize)] = if k {
            &[(67, 1280), (40, 256)]
        } else {
            &[(67, 1280), (45, 96)]
        };
        let mut h = Fnv::new();
        let mut seed = 0x1234_5678 ^ ty.ggml_id().unwrap() as u64;
        for &(rows, cols) in shapes {
            let wf = values(&mut seed, rows * cols, 1.0);
            let wq = quantize_to_vec(ty, &wf).unwrap();
            h.bytes(&wq);
            h.f32s(&dequantize_to_vec(ty, &wq, rows * cols).unwrap());
            let mut act = Vec::new();
            for n in [1usize, 3, 8, 64] {
                let x = values(&mut seed, n * cols, 3.0);
                let mut out = vec![0.0f32; n * rows];
                matmul_quantized(&mut out, &x, n, ty, &wq, rows, cols, &mut act).unwrap();
                h.f32s(&out);
                let a = quantize_activations(vec_dot_type(ty).unwrap(), &x[..cols]).unwrap();
                h.bytes(&a);
                let wrb = llama31_kernels::quants::bytes_for(ty, cols).unwrap();
                for r in 0..rows.min(5) {
                    let w = &wq[r * wrb..(r + 1) * wrb];
                    h.f32s(&[
                        vec_dot(ty, w, &a, cols).unwrap(),
                        vec_dot_scalar(ty, w, &a, cols).unwrap(),
                    ]);
                }
            }
            // Three matrices at once (rows split 30 / 30 / rest).
            let x = values(&mut seed, cols, 2.0);
            if rows > 60 {
                let wrb = llama31_kernels::quants::bytes_for(ty, cols).unwrap();
                let (w0, rest) = wq.split_at(30 * wrb);
                let (w1, w2) = rest.split_at(30 * wrb);
                let mut o0 = vec![0.0f32; 30];
                let mut o1 = vec![0.0f32; 30];
                let mut o2 = vec![0.0f32; rows - 60];
                matvec_quantized_many(
                    &mut [&mut o0, &mut o1, &mut o2],
                    &[w0, w1, w2],
                    &x,
                    ty,
                    cols,
                    &mut act,
                )
                .unwrap();
                h.f32s(&o0);
                h.f32s(&o1);
                h.f32s(&o2);
            }
        }
        println!("{ty:?}: {:016x}", h.0);
        all.bytes(&h.0.to_le_bytes());
    }
    println!("all: {:016x}", all.0);
}
