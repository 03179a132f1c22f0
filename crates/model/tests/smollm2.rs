//! The real SmolLM2-135M-Instruct Q4_1 GGUF (dequantized at load): last-token logits vs
//! llama.cpp's (`goldens/generation/smollm2_logits.json`, made by
//! `scripts/goldens/llamacpp_goldens.py`). llama.cpp multiplies Q4_1 weights by Q8-quantized
//! activations, so logits agree only approximately; the top-1 token must agree.

mod common;

use llama31_model::{LoadOptions, LogitsMode, Model};

#[test]
fn smollm2_q4_1_top1_matches_llama_cpp() {
    let path = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} not found: run scripts/fetch-fixtures.sh",
        path.display()
    );
    let g: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::goldens().join("generation/smollm2_logits.json")).unwrap(),
    )
    .unwrap();
    let model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(512),
            progress: None,
            weights: llama31_model::WeightMode::Dequantized,
            ..Default::default()
        },
    )
    .unwrap();
    let c = model.config();
    assert_eq!(
        (c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim),
        (576, 30, 9, 3, 64)
    );
    assert_eq!((c.ffn_dim, c.vocab_size), (1536, 49152));
    assert!(c.tie_embeddings, "SmolLM2 GGUF has no output.weight");
    let mut agree = 0;
    let prompts = g["prompts"].as_array().unwrap();
    let mut worst = 0.0f32;
    for p in prompts {
        let ids: Vec<u32> = p["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let top10: Vec<(usize, f32)> = p["top10"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e[0].as_u64().unwrap() as usize,
                    e[1].as_f64().unwrap() as f32,
                )
            })
            .collect();
        let mut cache = model.new_cache(ids.len()).unwrap();
        let logits = model
            .forward(&ids, 0, &mut cache, LogitsMode::Last)
            .unwrap();
        let top = logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
                if v > b.1 {
                    (i, v)
                } else {
                    b
                }
            });
        let maxdiff = top10
            .iter()
            .map(|&(i, v)| (logits[i] - v).abs())
            .fold(0.0f32, f32::max);
        worst = worst.max(maxdiff);
        eprintln!(
            "{}: ours top1 {} ({:.3}), llama.cpp {} ({:.3}); max |Δlogit| over llama.cpp's top-10 = {maxdiff:.3}",
            p["name"], top.0, top.1, top10[0].0, top10[0].1
        );
        if top.0 == top10[0].0 {
            agree += 1;
        }
        assert!(
            maxdiff < 1.0,
            "{}: logits far from llama.cpp ({maxdiff})",
            p["name"]
        );
    }
    eprintln!(
        "top-1 agreement {agree}/{}; worst top-10 |Δlogit| {worst:.3}",
        prompts.len()
    );
    assert_eq!(agree, prompts.len());

    // Tight check: llama.cpp on the same weights dequantized to F32 by gguf-py (F32 matmuls), which
    // is what our load-time dequantization fallback computes; only f32 rounding order differs.
    let f32_golden = common::goldens().join("generation/smollm2_f32_logits.json");
    let text = std::fs::read_to_string(&f32_golden)
        .unwrap_or_else(|e| panic!("{}: {e}", f32_golden.display()));
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    for p in g["prompts"].as_array().unwrap() {
        let ids: Vec<u32> = p["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let mut cache = model.new_cache(ids.len()).unwrap();
        let logits = model
            .forward(&ids, 0, &mut cache, LogitsMode::Last)
            .unwrap();
        let top10: Vec<(usize, f32)> = p["top10"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e[0].as_u64().unwrap() as usize,
                    e[1].as_f64().unwrap() as f32,
                )
            })
            .collect();
        let maxdiff = top10
            .iter()
            .map(|&(i, v)| (logits[i] - v).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "{} vs llama.cpp F32-dequantized: max |dlogit| over its top-10 = {maxdiff:.2e}",
            p["name"]
        );
        // Goldens are rounded to 5 decimals.
        assert!(maxdiff < 1e-4, "{}: {maxdiff}", p["name"]);
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let theirs: Vec<usize> = top10[..3].iter().map(|e| e.0).collect();
        assert_eq!(order[..3].to_vec(), theirs, "{}: top-3 differ", p["name"]);
    }
}
