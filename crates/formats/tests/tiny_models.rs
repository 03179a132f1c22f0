//! The tiny random Llama 3.1 checkpoints written by `scripts/make-tiny-models.py` (torch.save,
//! HF safetensors, llama.cpp's converter) into `<cache>/tiny/`. Each tensor's bytes are checked
//! against the sha256 the generator recorded in `manifest.json` (independent of this crate).
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use llama31_formats::{DType, MetaCheckpoint, PthFile, WeightFile, WeightFormat};
use serde_json::Value;

fn tiny() -> PathBuf {
    common::cache_dir().join("tiny")
}

struct Expect {
    dtype: String,
    shape: Vec<usize>,
    sha: String,
}

fn manifest(model: &str) -> BTreeMap<String, Expect> {
    let text = std::fs::read_to_string(tiny().join("manifest.json"))
        .expect("tiny/manifest.json (run scripts/make-tiny-models.py)");
    let m: Value = serde_json::from_str(&text).unwrap();
    let tensors = m["models"][model]["tensors"]
        .as_object()
        .unwrap_or_else(|| panic!("no model {model}"));
    tensors
        .iter()
        .map(|(k, v)| {
            let shape = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (
                k.clone(),
                Expect {
                    dtype: v["dtype"].as_str().unwrap().to_owned(),
                    shape,
                    sha: v["sha256"].as_str().unwrap().to_owned(),
                },
            )
        })
        .collect()
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F32 => "float32",
        _ => "other",
    }
}

#[test]
fn meta_single_shard_matches_manifest() {
    let want = manifest("meta");
    let dir = tiny().join("meta");
    let f = PthFile::open(dir.join("consolidated.00.pth")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.names().count(), want.len());
    for (key, e) in &want {
        let name = key.strip_prefix("consolidated.00.pth:").unwrap();
        let t = f.tensor(name).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(dtype_name(t.dtype), e.dtype, "{name}");
        assert_eq!(t.shape, e.shape, "{name}");
        assert_eq!(common::sha256_hex(t.data), e.sha, "{name}");
    }
    let w = WeightFile::open(&dir).unwrap();
    assert_eq!(w.format(), WeightFormat::MetaPth);
    let emb = w.get("tok_embeddings.weight").unwrap();
    assert!(emb.is_borrowed());
    assert_eq!(emb.shape, vec![128256, 64]);
}

#[test]
fn meta_two_shards_match_manifest_and_join_to_the_single_shard_tensors() {
    let shards = manifest("meta-mp2");
    let single = manifest("meta");
    let dir = tiny().join("meta-mp2");
    let ck = MetaCheckpoint::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ck.shards().len(), 2);
    for (key, e) in &shards {
        let (file, name) = key.split_once(':').unwrap();
        let shard = ck
            .shards()
            .iter()
            .find(|s| s.path().ends_with(file))
            .unwrap();
        let t = shard.tensor(name).unwrap();
        assert_eq!(
            (t.shape.clone(), common::sha256_hex(t.data)),
            (e.shape.clone(), e.sha.clone()),
            "{key}"
        );
    }
    // Joining by the Llama rule must reproduce the unsharded checkpoint byte for byte.
    let mut joined_copies = 0;
    for (key, e) in &single {
        let name = key.strip_prefix("consolidated.00.pth:").unwrap();
        let t = ck.get(name).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(t.shape, e.shape, "{name}");
        assert_eq!(ck.joined_shape(name).unwrap(), e.shape, "{name}");
        assert_eq!(common::sha256_hex(&t.data), e.sha, "{name}");
        if !t.is_borrowed() {
            joined_copies += 1;
            let mut buf = vec![0u8; t.data.len()];
            ck.join_into(name, &mut buf).unwrap();
            assert_eq!(buf.as_slice(), &*t.data);
        }
    }
    // 7 split matrices per layer × 2 layers + tok_embeddings + output.
    assert_eq!(joined_copies, 7 * 2 + 2);
}

#[test]
fn hf_sharded_and_tied_match_manifest() {
    for model in ["hf-untied", "hf-tied"] {
        let want = manifest(model);
        let w = WeightFile::open(tiny().join(model)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.format(), WeightFormat::Safetensors);
        assert_eq!(w.names().len(), want.len(), "{model}");
        for (name, e) in &want {
            let t = w.tensor(name).unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(dtype_name(t.dtype), e.dtype, "{model} {name}");
            assert_eq!(t.shape, e.shape, "{model} {name}");
            assert_eq!(common::sha256_hex(t.data), e.sha, "{model} {name}");
        }
    }
}

#[test]
fn gguf_converted_by_llama_cpp_matches_manifest() {
    let want = manifest("gguf");
    let w =
        WeightFile::open(tiny().join("llama31-tiny-bf16.gguf")).unwrap_or_else(|e| panic!("{e}"));
    let g = w.as_gguf().unwrap();
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(g.tensor_infos().len(), want.len());
    for (name, e) in &want {
        let info = g.tensor_info(name).unwrap_or_else(|| panic!("{name}"));
        // The manifest records GGUF order (innermost first).
        let ne: Vec<usize> = info.ne.iter().map(|&d| d as usize).collect();
        assert_eq!(ne, e.shape, "{name}");
        assert_eq!(info.ggml_type.to_string(), e.dtype, "{name}");
        let t = g.tensor(name).unwrap();
        assert_eq!(common::sha256_hex(t.data), e.sha, "{name}");
    }
}
