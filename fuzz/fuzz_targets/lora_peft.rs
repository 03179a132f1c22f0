//! A PEFT adapter folder from arbitrary bytes: `adapter_config.json` and
//! `adapter_model.safetensors` (the input split at its first 0xFF byte).
#![no_main]
use libfuzzer_sys::fuzz_target;
use llama31_model::LoraAdapter;

fuzz_target!(|data: &[u8]| {
    let (config, weights) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("adapter_config.json"), config).is_err()
        || std::fs::write(dir.path().join("adapter_model.safetensors"), weights).is_err()
    {
        return;
    }
    let _ = LoraAdapter::load(dir.path());
});
