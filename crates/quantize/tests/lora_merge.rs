//! Merged adapters, two ways that must agree bit for bit: `quantize --lora` (merge, then encode
//! the file) and `Model::merge_lora_into(.., MergeInto::Stored)` at load (merge into the stored
//! BF16 weights of the same base file, rounded back the same way); and the rounding's cost against
//! PEFT's float32 merge (`goldens/lora/nll.json`).

use std::path::PathBuf;

use llama31_model::{LoadOptions, LogitsMode, LoraAdapter, MergeInto, Model};
use llama31_quantize::{quantize_merged, FileType, QuantizeOptions};

fn cache(rel: &str) -> PathBuf {
    let base = std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/llama31")
        });
    let p = base.join(rel);
    assert!(
        p.exists(),
        "{} missing: run scripts/setup-python.sh --tiny",
        p.display()
    );
    p
}

fn golden(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../goldens/lora")).join(rel)
}

fn load(p: &std::path::Path) -> Model {
    Model::load(
        p,
        LoadOptions {
            max_seq_len: Some(128),
            ..Default::default()
        },
    )
    .unwrap()
}

fn logits(m: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut cache = m.new_cache(128).unwrap();
    m.forward(tokens, 0, &mut cache, LogitsMode::All).unwrap()
}

#[test]
fn stored_merge_equals_the_merged_file() {
    let base = cache("tiny/llama31-tiny-bf16.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("merged-bf16.gguf");
    for adapter in ["peft-r8.gguf", "peft-rslora"] {
        let a = LoraAdapter::load(golden(adapter)).unwrap();
        quantize_merged(
            &base,
            &out,
            &QuantizeOptions::new(FileType::BF16),
            &[(&a, 1.0)],
            &mut |_| {},
        )
        .unwrap();
        let file = load(&out);
        let mut merged = load(&base);
        merged
            .merge_lora_into(&[(&a, 1.0)], MergeInto::Stored)
            .unwrap();
        // The merged projections kept the base's type.
        let wq = merged.weights().layers[0].wq.weight().view().unwrap();
        assert_eq!(wq.dtype, llama31_formats::DType::BF16);
        let tokens: Vec<u32> = (0..40u32).map(|i| 128000 + (i * 7919) % 256).collect();
        let (x, y) = (logits(&file, &tokens), logits(&merged, &tokens));
        assert!(
            x.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{adapter}: merged at load differs from the merged file"
        );
        // And differs from the f32 merge by the rounding only.
        let mut exact = load(&base);
        exact.merge_lora(&[(&a, 1.0)]).unwrap();
        assert_ne!(logits(&exact, &tokens), y);
    }
}
