//! GGUF reader on arbitrary bytes: header, metadata, tensor infos, then every tensor read and
//! what the model-config and tokenizer loaders make of the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llama31_formats::GgufFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = GgufFile::from_bytes("fuzz.gguf", data.to_vec()) {
        llama31_fuzz::exercise_gguf(&g);
    }
});
