//! Meta's tiktoken `tokenizer.model` loading on arbitrary bytes; a tokenizer that loads must
//! encode and decode.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llama31_tokenizer::Tokenizer;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tokenizer::from_tiktoken_bytes(data) {
        let text = "Hello, world! <|eot_id|> 12345 ünï 日本";
        let ids = t.encode(text, true);
        let _ = t.decode(&ids);
    }
});
