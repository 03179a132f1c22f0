//! safetensors reader on arbitrary bytes: header JSON, offsets and dtypes, then every tensor.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llama31_formats::SafetensorsFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = SafetensorsFile::from_bytes("fuzz.safetensors", data.to_vec()) {
        let _ = f.metadata().len();
        let names: Vec<String> = f.names().map(str::to_string).collect();
        for name in names {
            if let Ok(t) = f.tensor(&name) {
                llama31_fuzz::exercise_tensor(t.dtype, &t.shape, t.data);
            }
        }
    }
});
