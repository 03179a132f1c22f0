//! The opt-in quantized forward path (`WeightMode::AsStored`) on the real
//! SmolLM2-135M-Instruct Q4_1 GGUF: weights stay quantized and are multiplied by 8-bit
//! quantized activations (as llama.cpp does), so logits differ from the exact dequantized path
//! only by the activation rounding. Compares every position's logits on `goldens/forward/
//! text_short.txt` (tokenized by the GGUF's own tokenizer) between the two paths.

mod common;

use std::path::PathBuf;

use llama31_model::{LoadOptions, LogitsMode, Model, WeightMode};
use llama31_tokenizer::Tokenizer;

fn model_path() -> PathBuf {
    let path = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} not found: run scripts/fetch-fixtures.sh",
        path.display()
    );
    path
}

fn gguf_tokenizer(path: &std::path::Path) -> Tokenizer {
    Tokenizer::from_gguf_file(path).unwrap()
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln() + m;
    row.iter().map(|&v| v as f64 - lse).collect()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[test]
fn quantized_path_tracks_dequantized_logits() {
    let path = model_path();
    let text = std::fs::read_to_string(common::goldens().join("forward/text_short.txt")).unwrap();
    let tok = gguf_tokenizer(&path);
    let mut ids: Vec<u32> = tok.encode(&text, false);
    ids.truncate(128);
    assert!(ids.len() >= 32, "only {} tokens", ids.len());
    let opts = |weights| LoadOptions {
        max_seq_len: Some(ids.len()),
        progress: None,
        weights,
        ..Default::default()
    };
    let deq = Model::load(&path, opts(WeightMode::Dequantized)).unwrap();
    let quant = Model::load(&path, opts(WeightMode::AsStored)).unwrap();
    let w = quant.weights();
    assert!(
        w.tok_embeddings.weight().is_quantized()
            && w.layers.iter().all(|l| l.wq.weight().is_quantized()),
        "keep_quantized left the Q4_1 weights dequantized"
    );
    assert!(!deq.weights().layers[0].wq.weight().is_quantized());
    let vocab = deq.config().vocab_size;

    // Prefill (batched) on all positions, and a few single-token decode steps (the n == 1 path).
    let run = |m: &Model| {
        let mut cache = m.new_cache(ids.len()).unwrap();
        let split = ids.len() - 4;
        let mut all = m
            .forward(&ids[..split], 0, &mut cache, LogitsMode::All)
            .unwrap();
        for (i, &t) in ids[split..].iter().enumerate() {
            all.extend(
                m.forward(&[t], split + i, &mut cache, LogitsMode::Last)
                    .unwrap(),
            );
        }
        all
    };
    let a = run(&deq);
    let b = run(&quant);
    assert_eq!(a.len(), ids.len() * vocab);
    assert_eq!(b.len(), a.len());
    assert!(b.iter().all(|v| v.is_finite()));

    let mut agree = 0usize;
    let mut kl_sum = 0.0f64;
    for (ra, rb) in a.chunks_exact(vocab).zip(b.chunks_exact(vocab)) {
        if argmax(ra) == argmax(rb) {
            agree += 1;
        }
        let (la, lb) = (log_softmax(ra), log_softmax(rb));
        kl_sum += la
            .iter()
            .zip(&lb)
            .map(|(p, q)| p.exp() * (p - q))
            .sum::<f64>();
    }
    let n = ids.len();
    let top1 = agree as f64 / n as f64;
    let kl = kl_sum / n as f64;
    eprintln!(
        "{n} positions: top-1 agreement {:.1} %, mean KL(deq || quant) {kl:.5}",
        top1 * 100.0
    );
    assert!(top1 >= 0.9, "top-1 agreement {:.1} % < 90 %", top1 * 100.0);
    assert!(kl < 0.05, "mean KL {kl} >= 0.05");
    // The paths really differ (the activations are rounded to 8 bits): not the same code twice.
    assert!(a != b, "quantized path produced bit-identical logits");
}

#[test]
fn quantized_matches_default_for_unquantized_checkpoints() {
    // keep_quantized only affects block-quantized tensors: an f32/bf16 checkpoint loads the same.
    let dir = common::tiny("hf-untied").unwrap();
    let opts = |weights| LoadOptions {
        max_seq_len: Some(16),
        progress: None,
        weights,
        ..Default::default()
    };
    let a = Model::load(&dir, opts(WeightMode::Dequantized)).unwrap();
    let b = Model::load(&dir, opts(WeightMode::AsStored)).unwrap();
    let toks = [128000u32, 791, 4062, 14198];
    let mut ca = a.new_cache(16).unwrap();
    let mut cb = b.new_cache(16).unwrap();
    let la = a.forward(&toks, 0, &mut ca, LogitsMode::All).unwrap();
    let lb = b.forward(&toks, 0, &mut cb, LogitsMode::All).unwrap();
    assert_eq!(la, lb);
}
