//! UTF-8-safe streaming detokenization.

use crate::{TokenId, Tokenizer};

/// Turns a stream of token ids into text, never emitting a broken UTF-8 sequence: bytes of an
/// incomplete trailing character are held back until the next token completes them. Bytes that can
/// never become valid UTF-8 are emitted as U+FFFD.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one token and returns the text that is now complete (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: TokenId) -> String {
        match tokenizer.token_bytes(id) {
            Some(bytes) => self.push_bytes(bytes),
            None => {
                tracing::warn!("stream decoder: unknown token id {id}");
                String::new()
            }
        }
    }

    /// Adds raw bytes and returns the text that is now complete (possibly empty).
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut consumed = 0usize;
        loop {
            let rest = self.pending.get(consumed..).unwrap_or_default();
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    consumed = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if let Some(Ok(s)) = rest.get(..valid).map(std::str::from_utf8) {
                        out.push_str(s);
                    }
                    match e.error_len() {
                        // Incomplete sequence at the end: keep it for the next token.
                        None => {
                            consumed += valid;
                            break;
                        }
                        Some(bad) => {
                            out.push('\u{fffd}');
                            consumed += valid + bad;
                        }
                    }
                }
            }
        }
        self.pending.drain(..consumed.min(self.pending.len()));
        out
    }

    /// Bytes held back, waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Flushes what is held back (an incomplete character becomes U+FFFD) and resets.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
