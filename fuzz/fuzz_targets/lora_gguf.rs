//! A llama.cpp GGUF LoRA adapter from arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llama31_model::LoraAdapter;

fuzz_target!(|data: &[u8]| {
    let Ok(mut f) = tempfile::Builder::new().suffix(".gguf").tempfile() else {
        return;
    };
    if std::io::Write::write_all(&mut f, data).is_err() {
        return;
    }
    let _ = LoraAdapter::load(f.path());
});
