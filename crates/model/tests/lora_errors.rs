//! Bad adapters get typed errors with a clear message (never a panic): each case corrupts a copy
//! of a real adapter from `goldens/lora/` in one way.

mod common;

use std::path::{Path, PathBuf};

use llama31_formats::{GgufFile, GgufWriter};
use llama31_model::{LoadOptions, LoraAdapter, Model};

fn golden_dir() -> PathBuf {
    common::goldens().join("lora")
}

/// A copy of `peft-r8` in a temp dir, its config edited by `edit`.
fn peft_copy(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = golden_dir().join("peft-r8");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("adapter_config.json")).unwrap())
            .unwrap();
    edit(&mut cfg);
    std::fs::write(
        tmp.path().join("adapter_config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        src.join("adapter_model.safetensors"),
        tmp.path().join("adapter_model.safetensors"),
    )
    .unwrap();
    tmp
}

fn load_err(path: &Path) -> String {
    let e = LoraAdapter::load(path).unwrap_err().to_string();
    eprintln!("{}: {e}", path.display());
    e
}

fn assert_has(e: &str, needle: &str) {
    assert!(e.contains(needle), "expected {needle:?} in: {e}");
}

#[test]
fn peft_config_errors() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit); 7] = [
        ("DoRA", |c| c["use_dora"] = true.into()),
        ("modules_to_save", |c| {
            c["modules_to_save"] = serde_json::json!(["lm_head"])
        }),
        ("rank 0", |c| c["r"] = 0.into()),
        ("rank 8 but adapter_config.json gives r = 4", |c| {
            c["r"] = 4.into()
        }),
        ("unknown target module \"c_attn\"", |c| {
            c["target_modules"] = serde_json::json!(["q_proj", "c_attn"])
        }),
        ("peft_type \"PREFIX_TUNING\"", |c| {
            c["peft_type"] = "PREFIX_TUNING".into()
        }),
        ("bias \"all\"", |c| c["bias"] = "all".into()),
    ];
    for (needle, edit) in cases {
        let dir = peft_copy(edit);
        assert_has(&load_err(dir.path()), needle);
    }
    // Not JSON at all.
    let dir = peft_copy(|_| {});
    std::fs::write(dir.path().join("adapter_config.json"), "{\"peft_type\": ").unwrap();
    assert_has(&load_err(dir.path()), "not valid JSON");
}

#[test]
fn peft_file_errors() {
    // Missing tensors file, with a hint when the pickle is there.
    let dir = peft_copy(|_| {});
    std::fs::remove_file(dir.path().join("adapter_model.safetensors")).unwrap();
    assert_has(&load_err(dir.path()), "adapter_model.safetensors");
    std::fs::write(dir.path().join("adapter_model.bin"), b"PK").unwrap();
    assert_has(&load_err(dir.path()), "safe_serialization");
    // Missing directory.
    assert_has(&load_err(&dir.path().join("nope")), "nope");

    // NaN inside lora_A of layer 0's q_proj, and a truncated file.
    let dir = peft_copy(|_| {});
    let st = dir.path().join("adapter_model.safetensors");
    let mut bytes = std::fs::read(&st).unwrap();
    let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
    let name = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize + 8 + hlen;
    let good = bytes.clone();
    bytes[start + 4 * 5..start + 4 * 6].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&st, &bytes).unwrap();
    assert_has(&load_err(dir.path()), "NaN or Inf");
    std::fs::write(&st, &good[..good.len() - 100]).unwrap();
    assert_has(&load_err(dir.path()), "invalid safetensors file");

    // Something that is not an adapter at all.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"hello").unwrap();
    assert_has(&load_err(&junk), "not a LoRA adapter");
}

/// Rewrites the golden GGUF adapter with `edit` applied to its metadata and tensors.
fn gguf_copy(tmp: &Path, edit: impl Fn(&str, &mut Vec<u8>) -> bool, arch: &str) -> PathBuf {
    let src = GgufFile::open(golden_dir().join("peft-r8.gguf")).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        if k == "general.architecture" {
            w.add_metadata(k.clone(), arch.to_string());
        } else {
            w.add_metadata(k.clone(), v.clone());
        }
    }
    for t in src.tensors() {
        let t = t.unwrap();
        let mut data = t.data.to_vec();
        if edit(t.name, &mut data) {
            w.add_tensor(t.name, t.dtype, &t.shape, data);
        }
    }
    let out = tmp.join("edited.gguf");
    w.write_file(&out).unwrap();
    out
}

#[test]
fn gguf_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = gguf_copy(tmp.path(), |_, _| true, "qwen2");
    assert_has(&load_err(&p), "architecture \"qwen2\"");
    let p = gguf_copy(
        tmp.path(),
        |name, d| {
            if name == "blk.1.ffn_up.weight.lora_b" {
                d[..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
            }
            true
        },
        "llama",
    );
    assert_has(&load_err(&p), "NaN or Inf");
    let p = gguf_copy(
        tmp.path(),
        |name, _| name != "blk.0.attn_k.weight.lora_b",
        "llama",
    );
    assert_has(&load_err(&p), "only one of lora_a / lora_b");
    // A model file is not an adapter.
    let model = common::tiny("llama31-tiny-bf16.gguf").unwrap();
    assert_has(&load_err(&model), "not an adapter");
    // The golden file itself loads.
    assert!(LoraAdapter::load(gguf_copy(tmp.path(), |_, _| true, "llama")).is_ok());
}

/// An adapter made for the tiny model does not fit SmolLM2 (another width and depth).
#[test]
fn adapter_for_another_model() {
    let smol = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(smol.exists(), "run scripts/fetch-fixtures.sh");
    let mut model = Model::load(&smol, LoadOptions::default()).unwrap();
    let adapter = LoraAdapter::load(golden_dir().join("peft-r8")).unwrap();
    let e = model
        .attach_lora(&[(&adapter, 1.0)])
        .unwrap_err()
        .to_string();
    assert_has(&e, "another model");
    let e = model
        .merge_lora(&[(&adapter, 1.0)])
        .unwrap_err()
        .to_string();
    assert_has(&e, "another model");
    let e = model
        .attach_lora(&[(&adapter, f32::NAN)])
        .unwrap_err()
        .to_string();
    assert_has(&e, "not finite");
}
