//! Activation precisions against the dequantized reference, per weight type.
//!
//! For SmolLM2 Q4_1 as shipped, SmolLM2's F32 GGUF quantized here to one file per block type
//! family (Q4_0, Q5_1, Q8_0, Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K) and the tiny Llama 3.1 GGUF
//! quantized to Q8_0, Q4_1 and Q5_0, every token's NLL over a 64-token text is computed with the
//! weights dequantized at load (the exact path, checked against HF elsewhere) and with the weights
//! kept quantized under each activation precision. `f32` must give the dequantized NLL within
//! 1e-4; `bf16` must be closer to it than `q8` on average (it rounds less).

use std::path::{Path, PathBuf};

use llama31_model::{Activations, LoadOptions, LogitsMode, Model, WeightMode};
use llama31_quantize::{quantize, FileType, QuantizeOptions};

fn fixture(rel: &str) -> PathBuf {
    let base = std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/llama31")
        });
    let p = base.join(rel);
    assert!(
        p.exists(),
        "fixture {} not found: run scripts/fetch-fixtures.sh and scripts/setup-python.sh --tiny",
        p.display()
    );
    p
}

/// Deterministic token ids below `vocab`.
fn ids(n: usize, vocab: usize) -> Vec<u32> {
    let mut s = 0x5eed_u64;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// NLL of each next token, the prompt run as one batch (positions 0..n-1 predict 1..n).
fn nll(model: &Model, toks: &[u32]) -> Vec<f64> {
    let vocab = model.config().vocab_size;
    let mut cache = model.new_cache(toks.len()).expect("cache");
    let logits = model
        .forward(&toks[..toks.len() - 1], 0, &mut cache, LogitsMode::All)
        .expect("forward");
    logits
        .chunks_exact(vocab)
        .zip(&toks[1..])
        .map(|(row, &t)| {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln() + m;
            lse - row[t as usize] as f64
        })
        .collect()
}

fn load(path: &Path, weights: WeightMode, activations: Activations) -> Model {
    let opts = LoadOptions {
        weights,
        activations,
        max_seq_len: Some(64),
        ..Default::default()
    };
    Model::load(path, opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mean_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}

fn check(name: &str, path: &Path) {
    let reference = load(path, WeightMode::Dequantized, Activations::default());
    let toks = ids(64, reference.config().vocab_size);
    let want = nll(&reference, &toks);
    drop(reference);
    let mut mean = Vec::new();
    for act in [Activations::F32, Activations::Bf16, Activations::Q8] {
        let got = nll(&load(path, WeightMode::AsStored, act), &toks);
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        let m = mean_abs_diff(&got, &want);
        eprintln!("{name} {act}: mean |dNLL| {m:.2e}, max {max:.2e}");
        if act == Activations::F32 {
            assert!(
                max <= 1e-4,
                "{name}: f32 activations, max |dNLL| {max:e} > 1e-4"
            );
        }
        mean.push(m);
    }
    assert!(
        mean[1] < mean[2],
        "{name}: bf16 activations (mean |dNLL| {:e}) not closer than q8 ({:e})",
        mean[1],
        mean[2]
    );
}

#[test]
fn f32_activations_give_the_dequantized_nll_for_every_weight_type() {
    check("smollm2/Q4_1", &fixture("SmolLM2-135M-Instruct.Q4_1.gguf"));
    let dir = tempfile::Builder::new()
        .prefix("llama31-activations-")
        .tempdir()
        .expect("temp dir");
    let quantized = |src: &Path, name: &str, ft: &str| {
        let out = dir.path().join(format!("{ft}.gguf"));
        let ftype: FileType = ft.parse().expect("file type");
        quantize(src, &out, &QuantizeOptions::new(ftype), &mut |_| {}).expect("quantize");
        check(&format!("{name}/{ft}"), &out);
        std::fs::remove_file(&out).expect("remove");
    };
    let tiny = fixture("tiny/llama31-tiny-bf16.gguf");
    for ft in ["Q8_0", "Q4_1", "Q5_0"] {
        quantized(&tiny, "tiny", ft);
    }
    let f32_gguf = fixture("SmolLM2-135M-Instruct.F32.gguf");
    for ft in [
        "Q4_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K",
    ] {
        quantized(&f32_gguf, "smollm2", ft);
    }
}
