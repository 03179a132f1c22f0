//! Per-token NLL of the tiny Llama 3.1 models from every checkpoint format vs HF transformers
//! float32 (`goldens/forward/nll.json`, made by `scripts/goldens/forward_goldens.py`).
//!
//! Protocol (from the golden file): tokens = [BOS] + encode(text, no specials); consecutive
//! chunks of `ctx` tokens, positions restarting at 0 in each chunk; NLL of every token after the
//! first in its chunk. We feed each chunk in sub-batches through the KV cache (batched prefill
//! with a causal mask inside each sub-batch), which must give the same values.

mod common;

use llama31_model::{KvType, LoadOptions, Model};
use llama31_tokenizer::Tokenizer;
use serde_json::Value;

const TOLERANCE: f64 = 2e-3;
fn golden() -> Value {
    let p = common::goldens().join("forward/nll.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn tokens_for(text_file: &str) -> Option<Vec<u32>> {
    let tk = common::cache_dir().join("tokenizer.model");
    assert!(
        tk.exists(),
        "{} not found: run scripts/fetch-fixtures.sh",
        tk.display()
    );
    let tok = Tokenizer::from_tiktoken_file(&tk).unwrap();
    let text = std::fs::read_to_string(common::goldens().join("forward").join(text_file)).unwrap();
    let mut ids = vec![128000u32];
    ids.extend(tok.encode(&text, false));
    Some(ids)
}

fn check(format_dir: &str, golden_model: &str, text: &str) {
    check_kv(format_dir, golden_model, text, KvType::F32, TOLERANCE);
}

/// [`check`] with a KV cache of `kv_type`, whose max |ΔNLL| against HF's f32 must stay within
/// `tolerance`; returns (max, mean) |ΔNLL|.
fn check_kv(
    format_dir: &str,
    golden_model: &str,
    text: &str,
    kv_type: KvType,
    tolerance: f64,
) -> (f64, f64) {
    let g = golden();
    let case = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == golden_model && c["text"] == text)
        .unwrap_or_else(|| panic!("no golden case for {golden_model}/{text}"));
    let ctx = case["ctx"].as_u64().unwrap() as usize;
    let want: Vec<f64> = case["nll"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let Some(path) = common::tiny(format_dir) else {
        return (0.0, 0.0);
    };
    let Some(tokens) = tokens_for(text) else {
        return (0.0, 0.0);
    };
    assert_eq!(
        tokens.len() as u64,
        case["tokens"].as_u64().unwrap(),
        "token count (tokenizer drift?)"
    );
    let model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(ctx),
            progress: None,
            kv_type,
            ..Default::default()
        },
    )
    .unwrap();
    let got = common::run_nll(&model, &tokens, ctx);
    assert_eq!(got.len(), want.len());
    let (mut max, mut at, mut sum) = (0.0f64, 0usize, 0.0f64);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let d = (a - b).abs();
        sum += d;
        if d > max {
            max = d;
            at = i;
        }
    }
    let mean = sum / got.len().max(1) as f64;
    eprintln!(
        "{format_dir} {text} ctx {ctx} kv {kv_type}: {} tokens, max |ΔNLL| = {max:.3e} at {at}, \
         mean {mean:.3e}",
        got.len()
    );
    assert!(
        max <= tolerance,
        "{format_dir}/{text} kv {kv_type}: max |ΔNLL| {max} at token {at}"
    );
    (max, mean)
}

#[test]
fn hf_untied_short() {
    check("hf-untied", "hf-untied", "text_short.txt");
}

#[test]
fn hf_tied_short() {
    check("hf-tied", "hf-tied", "text_short.txt");
}

#[test]
fn meta_short() {
    check("meta", "hf-untied", "text_short.txt");
}

#[test]
fn meta_mp2_short() {
    check("meta-mp2", "hf-untied", "text_short.txt");
}

#[test]
fn gguf_short() {
    check("llama31-tiny-bf16.gguf", "hf-untied", "text_short.txt");
}

#[test]
#[ignore = "slow (~1 min on 2 cores): run with --ignored"]
fn hf_untied_long_past_8192() {
    check("hf-untied", "hf-untied", "text_long.txt");
}

#[test]
#[ignore = "slow (~1 min on 2 cores): run with --ignored"]
fn hf_tied_long_past_8192() {
    check("hf-tied", "hf-tied", "text_long.txt");
}

#[test]
#[ignore = "slow: long context for every format (run with --ignored)"]
fn meta_long_past_8192() {
    check("meta", "hf-untied", "text_long.txt");
}

#[test]
#[ignore = "slow: long context for every format (run with --ignored)"]
fn meta_mp2_long_past_8192() {
    check("meta-mp2", "hf-untied", "text_long.txt");
}

#[test]
#[ignore = "slow: long context for every format (run with --ignored)"]
fn gguf_long_past_8192() {
    check("llama31-tiny-bf16.gguf", "hf-untied", "text_long.txt");
}

/// Every KV cache type on the long text (one chunk of 9,000 positions, past RoPE's original
/// 8,192) against HF's f32 NLLs; prints max and mean |ΔNLL| per type (the numbers in
/// bench/RESULTS.md).
#[test]
#[ignore = "slow (~4 min on 2 cores): run with --ignored"]
fn kv_types_long_past_8192() {
    for (ty, tol) in KV_TOLERANCES {
        check_kv("hf-untied", "hf-untied", "text_long.txt", ty, tol);
    }
}

/// Every KV cache type on the short text: f32 within the usual tolerance, the rounded types
/// within theirs — and each rounded type really rounds (it moves the NLLs).
#[test]
fn kv_types_short() {
    let mut means = Vec::new();
    for (ty, tol) in KV_TOLERANCES {
        means.push((
            ty,
            check_kv("hf-untied", "hf-untied", "text_short.txt", ty, tol).1,
        ));
    }
    let f32_mean = means[0].1;
    for (ty, mean) in &means[1..] {
        assert!(
            *mean > f32_mean || f32_mean == 0.0,
            "{ty} does not move the NLLs ({mean} vs f32's {f32_mean})"
        );
    }
}

/// Max |ΔNLL| against HF's f32 per KV type.
const KV_TOLERANCES: [(KvType, f64); 4] = [
    (KvType::F32, TOLERANCE),
    (KvType::F16, 2e-2),
    (KvType::Bf16, 1.5e-1),
    (KvType::Q8_0, 3e-1),
];
