//! GPT-2's byte-level alphabet: every byte is shown as a printable character (`Ġ` for a space).
//! Hugging Face `tokenizer.json` and GGUF store byte-level BPE tokens in this form.

use std::sync::OnceLock;

fn tables() -> &'static ([char; 256], rustc_hash::FxHashMap<char, u8>) {
    static T: OnceLock<([char; 256], rustc_hash::FxHashMap<char, u8>)> = OnceLock::new();
    T.get_or_init(|| {
        let mut to_char = ['\0'; 256];
        let mut n = 0u32;
        for b in 0..=255u8 {
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            let cp = if printable {
                u32::from(b)
            } else {
                let cp = 256 + n;
                n += 1;
                cp
            };
            to_char[usize::from(b)] = char::from_u32(cp).unwrap_or('\u{fffd}');
        }
        let mut from = rustc_hash::FxHashMap::default();
        for (b, &c) in to_char.iter().enumerate() {
            from.insert(c, b as u8);
        }
        (to_char, from)
    })
}

/// Raw bytes of a byte-level-encoded token, or `None` if it holds a character outside the alphabet.
pub fn decode(token: &str) -> Option<Vec<u8>> {
    let (_, from) = tables();
    token.chars().map(|c| from.get(&c).copied()).collect()
}

/// Byte-level encoding of raw bytes.
pub fn encode(bytes: &[u8]) -> String {
    let (to, _) = tables();
    bytes.iter().map(|&b| to[usize::from(b)]).collect()
}
