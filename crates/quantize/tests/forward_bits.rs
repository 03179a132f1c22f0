//! The forward pass gives the same bits as before the backend seam was introduced.
//!
//! For every checkpoint format (HF bf16 sharded, HF f16 tied, Meta, Meta 2-way model-parallel,
//! GGUF bf16) and every quantized weight type kept as stored (SmolLM2 Q4_1 as shipped, and
//! SmolLM2's F32 GGUF quantized here to Q4_0, Q5_1, Q8_0, Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K)
//! plus `--dequantize`, one fixed script of forward calls — a 21-token prompt with every row's
//! logits, three single-token decode steps, and a two-sequence batch mixing a 7-token prompt and a
//! decode step — is run and the SHA-256 of all logits bits is compared with
//! `goldens/forward/logits_bits.json`.
//!
//! That file was recorded by this test at commit c749ac9 (the last commit whose forward called
//! the kernels directly) with `LLAMA31_RECORD_FORWARD_BITS=goldens/forward/logits_bits.json`;
//! CI never records. A refactor of the forward, the backend or the kernels must give the same bits.

use std::path::{Path, PathBuf};

use llama31_model::{BatchSeq, LoadOptions, LogitsMode, Model, Scratch, WeightMode};
use llama31_quantize::{quantize, FileType, QuantizeOptions};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("LLAMA31_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/llama31")
}

fn fixture(rel: &str) -> PathBuf {
    let p = cache_dir().join(rel);
    assert!(
        p.exists(),
        "fixture {} not found: run scripts/fetch-fixtures.sh and scripts/setup-python.sh --tiny",
        p.display()
    );
    p
}

fn golden_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../goldens/forward/logits_bits.json"
    ))
}

/// Deterministic token ids below `vocab` (a fixed LCG, not the tokenizer: the ids need no meaning).
fn ids(n: usize, seed: u64, vocab: usize) -> Vec<u32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// Runs the fixed script of forward calls and returns the digest of every logit's bits, the
/// number of logits rows, and each row's argmax (for a readable failure).
fn run_script(model: &Model) -> (String, usize, Vec<usize>) {
    let vocab = model.config().vocab_size;
    let prompt = ids(24, 7, vocab);
    let other = ids(7, 11, vocab);
    let mut hasher = Sha256::new();
    let mut rows = 0usize;
    let mut argmax = Vec::new();
    let mut take = |logits: &[f32]| {
        assert_eq!(logits.len() % vocab, 0);
        for row in logits.chunks(vocab) {
            for v in row {
                hasher.update(v.to_bits().to_le_bytes());
            }
            let best = row
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
                    if v > b.1 {
                        (i, v)
                    } else {
                        b
                    }
                });
            argmax.push(best.0);
            rows += 1;
        }
    };

    let mut cache = model.new_cache(64).expect("cache");
    let mut out = Vec::new();
    model
        .forward_into(&prompt[..21], 0, &mut cache, LogitsMode::All, &mut out)
        .expect("prefill");
    take(&out);
    for (i, &t) in prompt[21..24].iter().enumerate() {
        model
            .forward_into(&[t], 21 + i, &mut cache, LogitsMode::Last, &mut out)
            .expect("decode");
        take(&out);
    }
    let mut cache2 = model.new_cache(64).expect("cache");
    let mut scratch = Scratch::default();
    let next = [prompt[3]];
    model
        .forward_batch(
            &mut [
                BatchSeq {
                    tokens: &other,
                    start_pos: 0,
                    cache: &mut cache2,
                    logits: LogitsMode::All,
                    lora: None,
                },
                BatchSeq {
                    tokens: &next,
                    start_pos: 24,
                    cache: &mut cache,
                    logits: LogitsMode::Last,
                    lora: None,
                },
            ],
            &mut scratch,
            &mut out,
        )
        .expect("batch");
    take(&out);
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (digest, rows, argmax)
}

fn load(path: &Path, quantized: bool) -> Model {
    let weights = if quantized {
        WeightMode::AsStored
    } else {
        WeightMode::Dequantized
    };
    let opts = LoadOptions {
        weights,
        ..Default::default()
    };
    Model::load(path, opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn forward_logits_are_the_same_bits_as_before_the_backend_seam() {
    let mut cases: Vec<(String, Model)> = Vec::new();
    for dir in ["hf-untied", "hf-tied", "meta", "meta-mp2"] {
        cases.push((
            format!("tiny/{dir}"),
            load(&fixture(&format!("tiny/{dir}")), false),
        ));
    }
    let bf16 = fixture("tiny/llama31-tiny-bf16.gguf");
    cases.push(("tiny/bf16.gguf".into(), load(&bf16, true)));
    let q41 = fixture("SmolLM2-135M-Instruct.Q4_1.gguf");
    cases.push(("smollm2/Q4_1".into(), load(&q41, true)));
    cases.push(("smollm2/Q4_1 dequantized".into(), load(&q41, false)));

    let f32_gguf = fixture("SmolLM2-135M-Instruct.F32.gguf");
    let dir = tempfile::Builder::new()
        .prefix("llama31-forward-bits-")
        .tempdir()
        .expect("temp dir");
    let mut results = Map::new();
    let mut check = |name: String, model: Model| {
        let (sha, rows, argmax) = run_script(&model);
        results.insert(name, json!({"sha256": sha, "rows": rows, "argmax": argmax}));
    };
    for (name, model) in cases {
        check(name, model);
    }
    for ft in [
        "Q4_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K",
    ] {
        let out = dir.path().join(format!("{ft}.gguf"));
        let ftype: FileType = ft.parse().expect("file type");
        quantize(&f32_gguf, &out, &QuantizeOptions::new(ftype), &mut |_| {}).expect("quantize");
        check(format!("smollm2/{ft}"), load(&out, true));
        std::fs::remove_file(&out).expect("remove");
    }

    if let Some(p) = std::env::var_os("LLAMA31_RECORD_FORWARD_BITS") {
        let doc = json!({
            "about": "SHA-256 of the logits bits of a fixed script of forward calls \
                      (crates/quantize/tests/forward_bits.rs), recorded at commit c749ac9",
            "cases": results,
        });
        let text = serde_json::to_string_pretty(&doc).expect("json") + "\n";
        std::fs::write(&p, text).expect("write goldens");
        return;
    }
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(golden_path()).expect("goldens/forward/logits_bits.json"),
    )
    .expect("json");
    let want = golden["cases"].as_object().expect("cases");
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        results.keys().collect::<Vec<_>>(),
        "the same cases"
    );
    let mut bad = Vec::new();
    for (name, got) in &results {
        if got != &want[name] {
            let first_row = got["argmax"]
                .as_array()
                .zip(want[name]["argmax"].as_array())
                .and_then(|(a, b)| a.iter().zip(b).position(|(x, y)| x != y));
            bad.push(format!(
                "{name}: sha256 {} (want {}), first row with another argmax: {first_row:?}",
                got["sha256"], want[name]["sha256"]
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "logits differ from the recorded bits:\n{}",
        bad.join("\n")
    );
}
