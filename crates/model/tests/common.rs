#![allow(dead_code)]

use std::path::PathBuf;

/// `$LLAMA31_CACHE` or `$HOME/.cache/llama31`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("LLAMA31_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/llama31")
}

/// A tiny test model; missing fixtures fail the test with the command that makes them.
pub fn tiny(name: &str) -> Option<PathBuf> {
    let p = cache_dir().join("tiny").join(name);
    assert!(
        p.exists(),
        "fixture {} not found: run scripts/setup-python.sh --tiny",
        p.display()
    );
    Some(p)
}

pub fn goldens() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../goldens"))
}

/// Per-token NLL of `tokens[1..]` given the prefix, computed from full logits rows.
pub fn nll_from_logits(logits: &[f32], vocab: usize, next: &[u32]) -> Vec<f64> {
    next.iter()
        .enumerate()
        .map(|(i, &t)| {
            let row = &logits[i * vocab..(i + 1) * vocab];
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln() + m;
            lse - row[t as usize] as f64
        })
        .collect()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks the fixture's tensors against `tensor_digests[key]` of `goldens/forward/nll.json`, so a
/// regenerated fixture that drifted from the goldens fails loudly instead of giving odd NLLs.
pub fn check_digests(path: &std::path::Path, key: &str, golden: &serde_json::Value) {
    use llama31_formats::WeightFile;
    let digests = golden["tensor_digests"][key]
        .as_object()
        .unwrap_or_else(|| panic!("no digests for {key}"));
    let wf = WeightFile::open(path).unwrap();
    for (name, d) in digests {
        let want = d["sha256"].as_str().unwrap();
        let bytes: Vec<u8> = match (&wf, name.split_once(':')) {
            (WeightFile::Meta(m), Some((file, tensor))) => {
                let idx = m
                    .shards()
                    .iter()
                    .position(|s| s.path().file_name().is_some_and(|f| f == file))
                    .unwrap_or_else(|| panic!("{key}: shard {file} missing"));
                m.shards()[idx].tensor(tensor).unwrap().data.to_vec()
            }
            _ => wf.tensor(name).unwrap().data.to_vec(),
        };
        assert_eq!(
            hex(&sha256(&bytes)),
            want,
            "{key}: tensor {name} drifted from the goldens; regenerate the fixtures or goldens"
        );
    }
}

/// Tokens per forward call inside a chunk (bounds the All-logits buffer to ~32 MiB).
const SUB: usize = 64;

/// NLLs for `tokens` under the golden chunk protocol: consecutive chunks of `ctx` tokens,
/// positions restarting at 0 in each, every token after the first scored from the earlier ones;
/// each chunk is fed in sub-batches through the KV cache.
pub fn run_nll(model: &llama31_model::Model, tokens: &[u32], ctx: usize) -> Vec<f64> {
    let vocab = model.config().vocab_size;
    let mut cache = model.new_cache(ctx).unwrap();
    let mut out = Vec::with_capacity(tokens.len());
    let mut logits = Vec::new();
    for chunk in tokens.chunks(ctx) {
        let mut pos = 0;
        while pos < chunk.len() {
            let end = (pos + SUB).min(chunk.len());
            model
                .forward_into(
                    &chunk[pos..end],
                    pos,
                    &mut cache,
                    llama31_model::LogitsMode::All,
                    &mut logits,
                )
                .unwrap();
            // Row i predicts chunk[pos + i + 1].
            let next_end = end.min(chunk.len() - 1);
            if next_end > pos {
                out.extend(nll_from_logits(
                    &logits,
                    vocab,
                    &chunk[pos + 1..next_end + 1],
                ));
            }
            pos = end;
        }
    }
    out
}
