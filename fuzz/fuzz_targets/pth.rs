//! Meta's `consolidated.*.pth` reader on arbitrary bytes: the zip directory and the restricted
//! unpickler, then every tensor.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llama31_formats::PthFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = PthFile::from_bytes("fuzz.pth", data.to_vec()) {
        let names: Vec<String> = f.names().map(str::to_string).collect();
        for name in names {
            if let Ok(t) = f.tensor(&name) {
                llama31_fuzz::exercise_tensor(t.dtype, &t.shape, t.data);
            }
        }
    }
});
