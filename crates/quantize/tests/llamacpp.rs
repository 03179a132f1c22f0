//! `quantize` against llama.cpp's own quantizer: the tensor types and bytes llama.cpp's
//! `llama_model_quantize` wrote (goldens/quantize/llamacpp_quantize.json, made by
//! scripts/goldens/quantize_llamacpp.py) for SmolLM2's F32 GGUF and for the GGUF llama.cpp
//! converted from the tiny random Llama 3.1 checkpoint, which must equal what we write from the
//! F32 GGUF, and from the HF and Meta directories of that checkpoint.

use std::path::{Path, PathBuf};

use llama31_formats::GgufFile;
use llama31_quantize::{quantize, FileType, QuantizeOptions};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cache() -> PathBuf {
    match std::env::var_os("LLAMA31_CACHE") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/llama31")
        }
    }
}

fn fixture(rel: &str) -> PathBuf {
    let p = cache().join(rel);
    assert!(
        p.exists(),
        "missing fixture {} — run scripts/fetch-fixtures.sh (and scripts/setup-python.sh --tiny for tiny/)",
        p.display()
    );
    p
}

fn golden() -> Value {
    let p = repo().join("goldens/quantize/llamacpp_quantize.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("golden is readable")).expect("JSON")
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn file_sha256(p: &Path) -> String {
    hex(&std::fs::read(p).expect("readable"))
}

/// A fresh temporary directory for `test`'s outputs, deleted with everything in it when dropped.
fn out_dir(test: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("llama31-quantize-{test}-"))
        .tempdir()
        .expect("temp dir")
}

/// Quantizes `input` and compares every tensor (order, type, bytes) with llama.cpp's list; the
/// output file is in the returned directory (deleted when dropped).
fn check(input: &Path, ftype: &str, want: &Value, what: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = out_dir(&what.replace(['/', ' '], "_"));
    let out = dir.path().join(format!("{ftype}.gguf"));
    let ft: FileType = ftype.parse().expect("known type");
    quantize(input, &out, &QuantizeOptions::new(ft), &mut |_| {}).expect("quantize succeeds");
    let g = GgufFile::open(&out).expect("our output parses");
    let want = want.as_object().expect("tensor map");
    let names: Vec<&str> = g.tensor_infos().iter().map(|t| t.name.as_str()).collect();
    let want_names: Vec<&str> = want.keys().map(String::as_str).collect();
    assert_eq!(names, want_names, "{what} {ftype}: tensor order");
    let mut bad = Vec::new();
    for t in g.tensor_infos() {
        let (ty, sha) = want[&t.name]
            .as_str()
            .and_then(|s| s.split_once(' '))
            .expect("\"TYPE sha256\"");
        let view = g.tensor(&t.name).expect("tensor");
        if t.ggml_type.to_string() != ty {
            bad.push(format!(
                "{}: type {} vs llama.cpp {ty}",
                t.name, t.ggml_type
            ));
        } else if hex(view.data) != sha {
            bad.push(format!("{}: {ty} bytes differ", t.name));
        }
    }
    assert!(
        bad.is_empty(),
        "{what} {ftype}: {} tensors differ from llama.cpp: {bad:#?}",
        bad.len()
    );
    (dir, out)
}

#[test]
fn smollm2_f32_matches_llamacpp() {
    let g = golden();
    let s = &g["smollm2"];
    let input = fixture("SmolLM2-135M-Instruct.F32.gguf");
    assert_eq!(
        file_sha256(&input),
        s["input_sha256"].as_str().unwrap(),
        "the F32 GGUF differs from the one the goldens were made from (scripts/make-smollm2-f32.py, run by scripts/setup-python.sh --tiny)"
    );
    for (ftype, case) in s["ftypes"].as_object().unwrap() {
        let (_dir, out) = check(&input, ftype, &case["llamacpp_tensors"], "smollm2");
        let cmp = &case["comparison"];
        if cmp["file_identical"].as_bool() == Some(true) {
            assert_eq!(
                file_sha256(&out),
                cmp["file_sha256_llamacpp"].as_str().unwrap(),
                "{ftype}: the whole file (metadata and layout) should equal llama.cpp's"
            );
        }
    }
}

#[test]
fn tiny_checkpoints_match_llamacpp_convert_then_quantize() {
    let g = golden();
    let t = &g["tiny"];
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny/manifest.json")).expect("manifest"),
    )
    .expect("JSON");
    for (variant, digests) in t["tensor_digests"].as_object().unwrap() {
        for (name, sha) in digests.as_object().unwrap() {
            assert_eq!(
                &manifest["models"][variant]["tensors"][name]["sha256"], sha,
                "tiny model {variant} tensor {name} differs from the goldens' (rerun \
                 scripts/make-tiny-models.py with the pinned versions)"
            );
        }
    }
    for (ftype, case) in t["ftypes"].as_object().unwrap() {
        for variant in ["hf-untied", "meta", "meta-mp2"] {
            let input = fixture(&format!("tiny/{variant}"));
            check(
                &input,
                ftype,
                &case["llamacpp_tensors"],
                &format!("tiny {variant}"),
            );
        }
    }
}

#[test]
fn conversion_metadata_matches_convert_hf_to_gguf() {
    // HF dir → BF16: the tensors and keys llama.cpp's converter wrote for the same checkpoint.
    let reference = GgufFile::open(fixture("tiny/llama31-tiny-bf16.gguf")).expect("parses");
    let tmp = out_dir("convert");
    let dir = tmp.path();
    let out = dir.join("tiny-hf-bf16.gguf");
    quantize(
        &fixture("tiny/hf-untied"),
        &out,
        &QuantizeOptions::new(FileType::BF16),
        &mut |_| {},
    )
    .expect("converts");
    let ours = GgufFile::open(&out).expect("parses");
    for t in reference.tensor_infos() {
        let a = reference.tensor(&t.name).expect("tensor");
        let b = ours
            .tensor(&t.name)
            .unwrap_or_else(|_| panic!("we wrote {}", t.name));
        assert_eq!((a.dtype, &a.shape), (b.dtype, &b.shape), "{}", t.name);
        assert!(
            a.data == b.data,
            "{}: bytes differ from convert_hf_to_gguf's",
            t.name
        );
    }
    assert_eq!(reference.tensor_infos().len(), ours.tensor_infos().len());
    for (k, v) in reference.metadata() {
        if k.starts_with("llama.")
            || k.starts_with("tokenizer.")
            || k.starts_with("general.sampling.")
            || k == "general.architecture"
        {
            assert_eq!(ours.get(k), Some(v), "metadata key {k}");
        }
    }
    assert_eq!(ours.get_u32("general.file_type").unwrap(), 32);
    // Meta's tiktoken tokenizer.model gives the same vocabulary and merges.
    let out_meta = dir.join("tiny-meta-bf16.gguf");
    quantize(
        &fixture("tiny/meta"),
        &out_meta,
        &QuantizeOptions::new(FileType::BF16),
        &mut |_| {},
    )
    .expect("converts");
    let meta = GgufFile::open(&out_meta).expect("parses");
    for k in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.bos_token_id",
    ] {
        assert_eq!(meta.get(k), reference.get(k), "{k} from tokenizer.model");
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let tmp = out_dir("errors");
    let dir = tmp.path();
    assert!("Q4_K_X".parse::<FileType>().is_err());
    // A quantized GGUF needs allow_requantize.
    let q41 = fixture("SmolLM2-135M-Instruct.Q4_1.gguf");
    let err = quantize(
        &q41,
        &dir.join("x.gguf"),
        &QuantizeOptions::new(FileType::Q8_0),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--allow-requantize") && err.contains("Q4_1"),
        "{err}"
    );
    // Not a model.
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let err = quantize(
        &junk,
        &dir.join("y.gguf"),
        &QuantizeOptions::new(FileType::Q8_0),
        &mut |_| {},
    );
    assert!(err.is_err());
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("y.gguf"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // Writing over the input.
    let err = quantize(
        &q41,
        &q41,
        &QuantizeOptions::new(FileType::Q8_0),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, llama31_quantize::QuantizeError::SameFile(_)),
        "{err}"
    );
}
