//! `llama31 quantize` + `llama31 perplexity --save-logits / --kl-divergence-base` against llama.cpp's
//! `llama-perplexity --kl-divergence` figures on the same text (goldens/quantize/llamacpp_quantize.json,
//! section `kl`, made by scripts/goldens/quantize_llamacpp.py): SmolLM2's F32 GGUF is the base, its
//! Q8_0 and Q4_K_M quantizations are compared against it.
//!
//! The base perplexity pins the protocol (which tokens, chunks and positions are scored); the
//! quantized models run with `--quantized` (8-bit activations, as llama.cpp multiplies), so their
//! KL, PPL ratio and top-1 agreement are close to llama.cpp's but not equal (another engine's
//! arithmetic on 189 scored tokens): the PPL ratio must fall within llama.cpp's standard error, the
//! mean KL within 35 % and the top-1 agreement within 3 points.

mod common;

use common::*;
use serde_json::Value;

fn kl_golden() -> Value {
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(golden("quantize/llamacpp_quantize.json")).unwrap(),
    )
    .unwrap();
    g["kl"].clone()
}

fn json_line(out: &str) -> Value {
    serde_json::from_str(out.lines().last().expect("a JSON line")).expect("JSON")
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn kl_report_matches_llamacpp_on_smollm2() {
    let g = kl_golden();
    let dir = std::env::temp_dir().join(format!("llama31-kl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f32 = fixture("SmolLM2-135M-Instruct.F32.gguf");
    let f32 = f32.to_str().unwrap();
    let text = repo().join(g["text"].as_str().unwrap());
    let base = dir.join("base.bin");
    let ctx = g["ctx"].as_u64().unwrap().to_string();
    let chunks = g["chunks"].as_u64().unwrap().to_string();
    let saved = json_line(&llama31_ok(
        &[
            "perplexity",
            "--model",
            f32,
            "--file",
            text.to_str().unwrap(),
            "--ctx",
            &ctx,
            "--chunks",
            &chunks,
            "--save-logits",
            base.to_str().unwrap(),
            "--json",
        ],
        b"",
    ));
    assert_eq!(saved["chunks"], g["base"]["chunks"]);
    assert_eq!(saved["scored"], g["base"]["scored"]);
    let (ours, theirs) = (
        saved["ppl"].as_f64().unwrap(),
        g["base"]["ppl"].as_f64().unwrap(),
    );
    assert!(
        rel(ours, theirs) < 1e-3,
        "base PPL {ours} vs llama.cpp {theirs}"
    );

    for (name, want) in g["models"].as_object().unwrap() {
        let q = dir.join(format!("{name}.gguf"));
        llama31_ok(&["quantize", f32, q.to_str().unwrap(), "--type", name], b"");
        let r = json_line(&llama31_ok(
            &[
                "perplexity",
                "--model",
                q.to_str().unwrap(),
                "--kl-divergence-base",
                base.to_str().unwrap(),
                "--quantized",
                "--json",
            ],
            b"",
        ));
        assert_eq!(r["scored"], want["scored"], "{name}");
        let f = |v: &Value| v[0].as_f64().unwrap();
        assert!(
            rel(f(&r["ppl_base"]), f(&want["ppl_base"])) < 1e-3,
            "{name}: PPL(base) {} vs llama.cpp {}",
            r["ppl_base"],
            want["ppl_base"]
        );
        // ln(PPL(Q)/PPL(base)) within llama.cpp's own standard error of it.
        let (ratio, ratio_ref) = (f(&r["ln_ppl_ratio"]), f(&want["ln_ppl_ratio"]));
        assert!(
            (ratio - ratio_ref).abs() <= want["ln_ppl_ratio"][1].as_f64().unwrap(),
            "{name}: ln(PPL(Q)/PPL(base)) {} vs llama.cpp {}",
            r["ln_ppl_ratio"],
            want["ln_ppl_ratio"]
        );
        let (kl, kl_ref) = (f(&r["kld"]), f(&want["kld"]));
        assert!(
            rel(kl, kl_ref) < 0.35,
            "{name}: mean KL {kl} vs llama.cpp {kl_ref}"
        );
        let (top, top_ref) = (f(&r["same_top"]), f(&want["same_top"]));
        assert!(
            (top - top_ref).abs() < 0.03,
            "{name}: top-1 agreement {top} vs llama.cpp {top_ref}"
        );
    }

    // The file says which context it was saved with.
    let err = llama31_err(
        &[
            "perplexity",
            "--model",
            f32,
            "--kl-divergence-base",
            base.to_str().unwrap(),
            "--ctx",
            "256",
        ],
        b"",
    );
    assert!(err.contains("--ctx 128"), "{err}");
    // A truncated file is refused before anything runs.
    let bytes = std::fs::read(&base).unwrap();
    let cut = dir.join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let err = llama31_err(
        &[
            "perplexity",
            "--model",
            f32,
            "--kl-divergence-base",
            cut.to_str().unwrap(),
        ],
        b"",
    );
    assert!(err.contains("logits"), "{err}");
    // Logits of another vocabulary.
    let tiny = fixture("tiny/llama31-tiny-bf16.gguf");
    let err = llama31_err(
        &[
            "perplexity",
            "--model",
            tiny.to_str().unwrap(),
            "--kl-divergence-base",
            base.to_str().unwrap(),
        ],
        b"",
    );
    assert!(err.contains("49152") && err.contains("128256"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn quantize_rejects_bad_arguments() {
    let f32 = fixture("SmolLM2-135M-Instruct.F32.gguf");
    let out = std::env::temp_dir().join(format!("llama31-q-{}.gguf", std::process::id()));
    let err = llama31_err(
        &[
            "quantize",
            f32.to_str().unwrap(),
            out.to_str().unwrap(),
            "--type",
            "Q4_K_Z",
        ],
        b"",
    );
    assert!(err.contains("Q4_K_Z") && err.contains("Q4_K_M"), "{err}");
    let q41 = fixture("SmolLM2-135M-Instruct.Q4_1.gguf");
    let err = llama31_err(
        &[
            "quantize",
            q41.to_str().unwrap(),
            out.to_str().unwrap(),
            "--type",
            "Q8_0",
        ],
        b"",
    );
    assert!(err.contains("--allow-requantize"), "{err}");
    let err = llama31_err(
        &[
            "quantize",
            "/nonexistent/model.gguf",
            out.to_str().unwrap(),
            "--type",
            "Q8_0",
        ],
        b"",
    );
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
    assert!(!out.exists());
}
