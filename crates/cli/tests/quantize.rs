//! `llama31 quantize` to a float type converts a checkpoint without changing the model: the GGUF it
//! writes from the tiny HF (tied, F16) and Meta (2 model-parallel shards, BF16) checkpoints scores the
//! per-token NLLs HF transformers computed for those weights (goldens/forward/nll.json, ctx 128).
//! That covers the q/k permutation, the tied embeddings and the llama3 `rope_freqs` tensor.
//! (Byte-level agreement with llama.cpp's converter and quantizer is in
//! crates/quantize/tests/llamacpp.rs.)

mod common;

use common::*;
use serde_json::Value;

fn converted_nll_matches(variant: &str, ftype: &str, reference: &str) {
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(golden("forward/nll.json")).unwrap())
            .unwrap();
    let case = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == reference && c["ctx"] == 128)
        .expect("a ctx-128 case");
    let dir =
        std::env::temp_dir().join(format!("llama31-convert-{variant}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("model.gguf");
    let src = fixture(&format!("tiny/{variant}"));
    llama31_ok(
        &[
            "quantize",
            src.to_str().unwrap(),
            out.to_str().unwrap(),
            "--type",
            ftype,
        ],
        b"",
    );
    let text = golden(&format!("forward/{}", case["text"].as_str().unwrap()));
    let got: Value = serde_json::from_str(
        llama31_ok(
            &[
                "perplexity",
                "--model",
                out.to_str().unwrap(),
                "--file",
                text.to_str().unwrap(),
                "--ctx",
                "128",
                "--json",
            ],
            b"",
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(got["tokens"], case["tokens"]);
    let want = case["nll"].as_array().unwrap();
    let nll = got["nll"].as_array().unwrap();
    assert_eq!(nll.len(), want.len());
    let worst = nll
        .iter()
        .zip(want)
        .map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs())
        .fold(0.0f64, f64::max);
    assert!(worst <= 2e-3, "{variant} → {ftype}: max |dNLL| {worst}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hf_tied_f16_to_gguf_keeps_the_model() {
    converted_nll_matches("hf-tied", "F16", "hf-tied");
}

#[test]
fn meta_shards_to_bf16_gguf_keep_the_model() {
    converted_nll_matches("meta-mp2", "BF16", "hf-untied");
}
