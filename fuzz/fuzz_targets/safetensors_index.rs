//! A sharded checkpoint's `model.safetensors.index.json` on arbitrary bytes, next to one small
//! real shard: shard names that escape the folder, missing shards, duplicate and unknown tensors.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use llama31_formats::SafetensorsModel;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("a temporary folder");
        // One shard with one f32 tensor "a" of shape [2].
        let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut shard = (header.len() as u64).to_le_bytes().to_vec();
        shard.extend_from_slice(header);
        shard.extend_from_slice(&[0u8; 8]);
        std::fs::write(d.path().join("model-00001-of-00001.safetensors"), shard).expect("write");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let index = dir().path().join("model.safetensors.index.json");
    if std::fs::write(&index, data).is_err() {
        return;
    }
    if let Ok(m) = SafetensorsModel::open_index(&index) {
        let _ = m.names().len();
    }
});
