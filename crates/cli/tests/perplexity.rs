//! `llama31 perplexity` on the tiny random Llama 3.1 models (from every file format) against
//! per-token NLLs computed by HF transformers in float32 (cross-checked with Meta's model.py);
//! see scripts/goldens/forward_goldens.py and scripts/make-tiny-models.py.

mod common;

use common::*;
use serde_json::Value;

struct Case {
    model: String,
    text: String,
    ctx: u64,
    nll: Vec<f64>,
    tokens: u64,
}

fn cases() -> (Vec<Case>, Value) {
    let text = std::fs::read_to_string(golden("forward/nll.json")).unwrap();
    let g: Value = serde_json::from_str(&text).unwrap();
    let cases = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            model: c["model"].as_str().unwrap().to_string(),
            text: c["text"].as_str().unwrap().to_string(),
            ctx: c["ctx"].as_u64().unwrap(),
            nll: c["nll"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect(),
            tokens: c["tokens"].as_u64().unwrap(),
        })
        .collect();
    (cases, g)
}

/// The model files regenerated on this machine must be the ones the goldens were computed from.
fn check_digests(variant: &str, golden: &Value) {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny/manifest.json")).unwrap())
            .unwrap();
    let want = &golden["tensor_digests"][variant];
    let got = &manifest["models"][variant]["tensors"];
    assert!(want.is_object(), "no digests for {variant} in nll.json");
    for (name, w) in want.as_object().unwrap() {
        assert_eq!(
            got[name]["sha256"], w["sha256"],
            "tiny model {variant} tensor {name} differs from the one the goldens were made from: \
             rerun scripts/make-tiny-models.py with the pinned versions (scripts/requirements.txt)"
        );
    }
}

fn model_path(variant: &str, golden: &Value) -> std::path::PathBuf {
    match variant {
        "gguf" => fixture(&format!(
            "tiny/{}",
            golden["files"]["gguf"].as_str().unwrap()
        )),
        v => fixture(&format!("tiny/{v}")),
    }
}

fn check(variant: &str, long: bool) {
    let (cases, g) = cases();
    check_digests(variant, &g);
    let reference = g["same_nll_as"][variant]
        .as_str()
        .unwrap_or(variant)
        .to_string();
    let path = model_path(variant, &g);
    let mut checked = 0;
    for case in cases.iter().filter(|c| c.model == reference) {
        if (case.ctx > 8192) != long {
            continue;
        }
        let file = golden(&format!("forward/{}", case.text));
        let out = llama31_ok(
            &[
                "perplexity",
                "--model",
                path.to_str().unwrap(),
                "--file",
                file.to_str().unwrap(),
                "--ctx",
                &case.ctx.to_string(),
                "--json",
            ],
            b"",
        );
        let got: Value = serde_json::from_str(out.trim()).expect("--json output");
        assert_eq!(
            got["tokens"].as_u64(),
            Some(case.tokens),
            "{variant} {}",
            case.text
        );
        let nll: Vec<f64> = got["nll"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(
            nll.len(),
            case.nll.len(),
            "{variant} {}: scored tokens",
            case.text
        );
        let (mut worst, mut at) = (0.0f64, 0);
        for (i, (a, b)) in nll.iter().zip(&case.nll).enumerate() {
            let d = (a - b).abs();
            if d > worst {
                worst = d;
                at = i;
            }
        }
        eprintln!(
            "{variant} {} ctx {}: max |dNLL| {worst:.2e} at {at}",
            case.text, case.ctx
        );
        assert!(
            worst <= 2e-3,
            "{variant} {} ctx {}: NLL {} differs from reference {} at scored token {at}",
            case.text,
            case.ctx,
            nll[at],
            case.nll[at]
        );
        checked += 1;
    }
    assert!(checked > 0, "no golden case for {variant}");
}

#[test]
fn hf_safetensors_sharded_bf16() {
    check("hf-untied", false);
}

#[test]
fn hf_safetensors_tied_f16() {
    check("hf-tied", false);
}

#[test]
fn meta_consolidated_pth() {
    check("meta", false);
}

#[test]
fn meta_model_parallel_shards() {
    check("meta-mp2", false);
}

#[test]
fn gguf_from_convert_hf_to_gguf() {
    check("gguf", false);
}

/// One chunk of 9,000 positions: llama3 RoPE scaling past 8,192.
#[test]
fn long_context_past_8192_all_formats() {
    for variant in ["hf-untied", "hf-tied", "meta", "gguf"] {
        check(variant, true);
    }
}
