//! `encode`/`decode` on arbitrary text with the real Llama 3 and SmolLM2 tokenizers: text
//! encoded as ordinary text decodes back to itself (byte-level BPE loses nothing but the bytes
//! the vocabulary has no token for, which llama.cpp drops as well: SmolLM2 lacks some control
//! characters), with special tokens parsed too, and streamed decoding gives the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

use llama31_tokenizer::StreamDecoder;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    static PRESENT: OnceLock<[[bool; 256]; 2]> = OnceLock::new();
    let toks = [llama31_fuzz::llama3(), llama31_fuzz::smollm2()];
    let present = PRESENT.get_or_init(|| toks.map(llama31_fuzz::single_bytes));
    for (tok, present) in toks.into_iter().zip(present) {
        let want: Vec<u8> = text.bytes().filter(|&b| present[usize::from(b)]).collect();
        let plain = tok.encode(&text, false);
        assert_eq!(tok.decode(&plain), want, "round trip as text");
        let special = tok.encode(&text, true);
        assert_eq!(tok.decode(&special), want, "round trip with specials");
        let mut stream = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &plain {
            streamed.push_str(&stream.push(tok, id));
        }
        streamed.push_str(&stream.finish());
        if want.len() == text.len() {
            assert_eq!(streamed, text, "streamed decode");
        }
        // Marked spans: the whole text as plain is the same as no special parsing (bar
        // always-matched added tokens, which neither vocabulary here has).
        let all = [0..text.len()];
        assert_eq!(tok.encode_with_plain_spans(&text, &all), plain);
    }
});
