//! Weights are mapped, not copied: resident memory after loading a bf16 checkpoint and running it
//! stays within the file size + the KV cache + 10 %. (Its own test binary, so no other test
//! allocates in the same process while it measures.)

mod common;

use llama31_model::{LoadOptions, LogitsMode, Model};

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

fn dir_size(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
        .map(|e| e.metadata().unwrap().len() as usize)
        .sum()
}

#[cfg(target_os = "linux")]
#[test]
fn bf16_weights_are_mapped_not_copied() {
    let dir = common::tiny("hf-untied").unwrap();
    let file_bytes = dir_size(&dir);
    let before = rss();
    let max_seq = 256;
    let model = Model::load(
        &dir,
        LoadOptions {
            max_seq_len: Some(max_seq),
            progress: None,
            ..Default::default()
        },
    )
    .unwrap();
    let mut cache = model.new_cache(max_seq).unwrap();
    // Touch every weight: a full forward pass over a short prompt.
    let tokens: Vec<u32> = vec![128000, 791, 4062, 14198, 39935, 35308, 927, 279];
    let logits = model
        .forward(&tokens, 0, &mut cache, LogitsMode::Last)
        .unwrap();
    assert_eq!(logits.len(), model.config().vocab_size);
    let grown = rss().saturating_sub(before);
    let kv = cache.bytes();
    let budget = (file_bytes + kv) * 11 / 10;
    eprintln!(
        "rss grew {:.1} MiB; file {:.1} MiB, KV cache {:.1} MiB, budget {:.1} MiB",
        grown as f64 / 1048576.0,
        file_bytes as f64 / 1048576.0,
        kv as f64 / 1048576.0,
        budget as f64 / 1048576.0
    );
    assert!(
        grown <= budget,
        "resident memory grew by {grown} bytes, more than file {file_bytes} + KV {kv} + 10 %"
    );
}
