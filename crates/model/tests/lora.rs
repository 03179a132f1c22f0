//! LoRA adapters against HF PEFT (`goldens/lora/nll.json`, made by
//! `scripts/goldens/lora_goldens.py` with PEFT 0.21.2 in float32): per-token NLL of the tiny
//! Llama 3.1 model with each adapter — unmerged and merged, from the PEFT directory and from the
//! GGUF that llama.cpp's `convert_lora_to_gguf.py` wrote — on the base from the HF directory
//! (rotate-half q/k rows), the Meta directory and the GGUF (interleaved rows, so `lora_B` of q/k
//! is permuted).

mod common;

use llama31_model::{LoadOptions, LoraAdapter, Model};
use serde_json::Value;

const TOLERANCE: f64 = 2e-3;

fn golden() -> Value {
    let p = common::goldens().join("lora/nll.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> (f64, usize) {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .enumerate()
        .fold(
            (0.0, 0),
            |(m, at), (i, d)| if d > m { (d, i) } else { (m, at) },
        )
}

/// Every base format × {adapter as PEFT dir, unmerged and merged; as GGUF, unmerged} for one
/// adapter of the goldens.
fn check_adapter(name: &str) {
    let g = golden();
    let ctx = g["ctx"].as_u64().unwrap() as usize;
    let tokens: Vec<u32> = g["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let a = &g["adapters"][name];
    let base = floats(&g["base"]["nll"]);
    let unmerged = floats(&a["peft_unmerged"]);
    let merged = floats(&a["peft_merged"]);
    // The converter keeps one alpha per file, so llama.cpp scales every module by alpha / r: for
    // rsLoRA or per-module alphas that is not PEFT's scale, and the GGUF form is compared with
    // PEFT run at llama.cpp's scales.
    let gguf_ref = if a["llamacpp_scale_differs_from_peft"].as_bool().unwrap() {
        floats(&a["peft_unmerged_with_llamacpp_scales"])
    } else {
        unmerged.clone()
    };
    // The adapter must matter, or the comparisons below would prove nothing.
    let (shift, _) = max_diff(&unmerged, &base);
    assert!(shift > 0.1, "{name}: the adapter moves NLL by only {shift}");

    let dir = common::goldens().join("lora").join(name);
    let gguf = common::goldens().join("lora").join(format!("{name}.gguf"));
    let peft = LoraAdapter::load(&dir).unwrap();
    let conv = LoraAdapter::load(&gguf).unwrap();
    for base_dir in ["hf-untied", "meta", "llama31-tiny-bf16.gguf"] {
        let path = common::tiny(base_dir).unwrap();
        let load = || {
            Model::load(
                &path,
                LoadOptions {
                    max_seq_len: Some(ctx),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let cases: [(&str, &LoraAdapter, bool, &[f64]); 3] = [
            ("peft unmerged", &peft, false, &unmerged),
            ("peft merged", &peft, true, &merged),
            ("gguf unmerged", &conv, false, &gguf_ref),
        ];
        for (what, adapter, merge, want) in cases {
            let mut model = load();
            if merge {
                model.merge_lora(&[(adapter, 1.0)]).unwrap();
            } else {
                model.attach_lora(&[(adapter, 1.0)]).unwrap();
            }
            let got = common::run_nll(&model, &tokens, ctx);
            let (d, at) = max_diff(&got, want);
            eprintln!("{name} on {base_dir}, {what}: max |ΔNLL| {d:.2e} at {at}");
            assert!(
                d <= TOLERANCE,
                "{name} on {base_dir}, {what}: max |ΔNLL| {d} at token {at}"
            );
        }
    }
}

#[test]
fn peft_r8_all_modules() {
    check_adapter("peft-r8");
}

#[test]
fn peft_rslora_rank_and_alpha_patterns() {
    check_adapter("peft-rslora");
}

#[test]
fn peft_qv_one_layer() {
    check_adapter("peft-qv-layer1");
}

/// A user's scale multiplies the adapter's: scale 0 is the base model, and two adapters stacked
/// at half scale each equal one at scale 1 when they are the same adapter.
#[test]
fn user_scales() {
    let g = golden();
    let ctx = g["ctx"].as_u64().unwrap() as usize;
    let tokens: Vec<u32> = g["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let path = common::tiny("hf-untied").unwrap();
    let mut model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(ctx),
            ..Default::default()
        },
    )
    .unwrap();
    let adapter = LoraAdapter::load(common::goldens().join("lora/peft-r8")).unwrap();
    model.attach_lora(&[(&adapter, 0.0)]).unwrap();
    let (d, _) = max_diff(
        &common::run_nll(&model, &tokens, ctx),
        &floats(&g["base"]["nll"]),
    );
    assert!(d <= TOLERANCE, "scale 0: {d}");
    model
        .attach_lora(&[(&adapter, 0.5), (&adapter, 0.5)])
        .unwrap();
    let (d, _) = max_diff(
        &common::run_nll(&model, &tokens, ctx),
        &floats(&g["adapters"]["peft-r8"]["peft_unmerged"]),
    );
    assert!(d <= TOLERANCE, "two halves: {d}");
}

/// Sequences with and without an adapter in one batch get the bits each gets alone (the rows of
/// a step are grouped by adapter; every row's result is independent of the others).
#[test]
fn mixed_batch_equals_alone() {
    use llama31_model::{BatchSeq, LogitsMode, LoraSet};
    let path = common::tiny("llama31-tiny-bf16.gguf").unwrap();
    let model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(64),
            ..Default::default()
        },
    )
    .unwrap();
    let r8 = LoraAdapter::load(common::goldens().join("lora/peft-r8")).unwrap();
    let qv = LoraAdapter::load(common::goldens().join("lora/peft-qv-layer1.gguf")).unwrap();
    let sets = [
        LoraSet::new(&model, &[(&r8, 1.0)]).unwrap(),
        LoraSet::new(&model, &[(&qv, 1.0)]).unwrap(),
    ];
    let prompts: [&[u32]; 4] = [
        &[128000, 791, 6864, 315, 9822],
        &[128000, 40, 1093],
        &[128000, 12, 13, 14, 15, 16, 17],
        &[128000, 9906],
    ];
    let picks = [Some(0usize), None, Some(1), Some(0)];
    let alone: Vec<Vec<f32>> = prompts
        .iter()
        .zip(picks)
        .map(|(p, pick)| {
            let mut cache = model.new_cache(64).unwrap();
            let mut scratch = model.new_scratch();
            let mut out = Vec::new();
            model
                .forward_batch(
                    &mut [BatchSeq {
                        tokens: p,
                        start_pos: 0,
                        cache: &mut cache,
                        logits: LogitsMode::All,
                        lora: pick.map(|i| &sets[i]),
                    }],
                    &mut scratch,
                    &mut out,
                )
                .unwrap();
            out
        })
        .collect();
    let mut caches: Vec<_> = prompts
        .iter()
        .map(|_| model.new_cache(64).unwrap())
        .collect();
    let mut batch: Vec<BatchSeq> = prompts
        .iter()
        .zip(caches.iter_mut())
        .zip(picks)
        .map(|((p, cache), pick)| BatchSeq {
            tokens: p,
            start_pos: 0,
            cache,
            logits: LogitsMode::All,
            lora: pick.map(|i| &sets[i]),
        })
        .collect();
    let mut out = Vec::new();
    model
        .forward_batch(&mut batch, &mut model.new_scratch(), &mut out)
        .unwrap();
    let together: Vec<f32> = alone.concat();
    assert_eq!(out.len(), together.len());
    assert!(
        out.iter()
            .zip(&together)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "a mixed batch changed some logits"
    );
    // And the adapters do change the logits.
    let mut cache = model.new_cache(64).unwrap();
    let base = model
        .forward(prompts[0], 0, &mut cache, LogitsMode::All)
        .unwrap();
    assert_ne!(base, alone[0]);
}
