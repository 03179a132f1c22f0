//! With `keep_quantized`, the SmolLM2 Q4_1 weights are used where they lie, mapped or read into
//! memory: resident memory grows by less than 1.3 × the file size through load and a forward
//! pass (dequantizing to f32 grows it by several times the file size). Its own test binary, so no
//! other test allocates in the same process while it measures.

mod common;

use llama31_model::{FileLoading, LoadOptions, LogitsMode, Model, WeightMode};

/// Resident set size of this process in bytes (Linux `/proc/self/status`).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn keep_quantized_weights_stay_mapped() {
    let path = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} not found: run scripts/fetch-fixtures.sh",
        path.display()
    );
    let file_bytes = std::fs::metadata(&path).unwrap().len() as usize;
    // Mapped or read into (huge-page) memory, the weights are held once.
    for file_loading in [FileLoading::Map, FileLoading::Read] {
        let before = rss();
        let max_seq = 64;
        let model = Model::load(
            &path,
            LoadOptions {
                max_seq_len: Some(max_seq),
                file_loading,
                weights: WeightMode::AsStored,
                ..Default::default()
            },
        )
        .unwrap();
        let mut cache = model.new_cache(max_seq).unwrap();
        let tokens: Vec<u32> = (0..16u32).map(|i| (i * 2_654_435_761u32) % 49152).collect();
        let logits = model
            .forward(&tokens, 0, &mut cache, LogitsMode::Last)
            .unwrap();
        assert_eq!(logits.len(), model.config().vocab_size);
        let grown = rss().saturating_sub(before);
        let budget = file_bytes * 13 / 10;
        eprintln!(
            "{file_loading:?}: rss grew {:.1} MiB; file {:.1} MiB, KV cache {:.1} MiB, budget {:.1} MiB",
            grown as f64 / 1048576.0,
            file_bytes as f64 / 1048576.0,
            cache.bytes() as f64 / 1048576.0,
            budget as f64 / 1048576.0
        );
        assert!(
            grown < budget,
            "{file_loading:?}: resident memory grew by {grown} bytes, not below 1.3 × the file's {file_bytes}"
        );
        drop(cache);
        drop(model);
    }
}
