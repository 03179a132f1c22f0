//! Text-level streaming: UTF-8-safe incremental decoding and stop-string holdback.
//!
//! Tokens arrive as byte pieces. [`Utf8Stream`] turns them into text, holding back an incomplete
//! trailing UTF-8 sequence until its remaining bytes arrive (invalid bytes become U+FFFD, one per
//! maximal invalid subsequence, exactly like `String::from_utf8_lossy`). [`StopStrings`] then
//! holds back the longest tail of the text that could still grow into a stop string, so that
//! streamed text never contains a prefix of a stop string that later completes, and cuts the
//! text at the earliest complete stop string (which is itself never emitted).

use crate::error::EngineError;

/// Incremental UTF-8 decoder.
#[derive(Debug, Clone, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes` and writes every complete character decoded so far to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        let mut pos = 0usize;
        while let Some(rest) = self.pending.get(pos..) {
            if rest.is_empty() {
                break;
            }
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    pos = self.pending.len();
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if let Some(Ok(s)) = rest.get(..valid).map(std::str::from_utf8) {
                        out.push_str(s);
                    }
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            pos += valid + bad;
                        }
                        None => {
                            // An incomplete sequence at the end: wait for more bytes.
                            pos += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..pos.min(self.pending.len()));
    }

    /// Whether bytes of an incomplete character are being held.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: a held incomplete sequence becomes U+FFFD.
    pub fn finish(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

/// Stop-string matcher with holdback.
#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    held: String,
}

impl StopStrings {
    /// A matcher for `stops`; an empty stop string is an error (it would match everywhere).
    pub fn new(stops: &[String]) -> Result<Self, EngineError> {
        if let Some(index) = stops.iter().position(String::is_empty) {
            return Err(EngineError::EmptyStopString { index });
        }
        Ok(Self {
            stops: stops.to_vec(),
            held: String::new(),
        })
    }

    /// The stop strings.
    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// The text currently held back (a possible prefix of a stop string).
    pub fn held(&self) -> &str {
        &self.held
    }

    /// Appends `text`. Writes the text that is safe to emit to `emit`. If a stop string is now
    /// complete, writes only the text before its earliest occurrence, drops the rest, and returns
    /// the index of that stop string (the first listed one if several start at the same place).
    pub fn push(&mut self, text: &str, emit: &mut String) -> Option<usize> {
        if self.stops.is_empty() {
            emit.push_str(text);
            return None;
        }
        self.held.push_str(text);
        // Everything emitted earlier cannot start a match (see `holdback_start`), so only the
        // held text needs searching.
        let mut best: Option<(usize, usize)> = None;
        for (i, stop) in self.stops.iter().enumerate() {
            if let Some(pos) = self.held.find(stop.as_str()) {
                if best.is_none_or(|(p, _)| pos < p) {
                    best = Some((pos, i));
                }
            }
        }
        if let Some((pos, i)) = best {
            emit.push_str(self.held.get(..pos).unwrap_or_default());
            self.held.clear();
            return Some(i);
        }
        let cut = self.holdback_start();
        emit.push_str(self.held.get(..cut).unwrap_or_default());
        self.held.drain(..cut);
        None
    }

    /// The earliest char boundary `i` such that `held[i..]` is a proper prefix of some stop string
    /// (`held.len()` if none).
    fn holdback_start(&self) -> usize {
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let lo = self.held.len().saturating_sub(longest.saturating_sub(1));
        (lo..self.held.len())
            .filter(|&i| self.held.is_char_boundary(i))
            .find(|&i| {
                let tail = self.held.get(i..).unwrap_or_default();
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.held.len())
    }

    /// Ends the stream (no stop string completed): releases the held text.
    pub fn finish(&mut self, emit: &mut String) {
        emit.push_str(&self.held);
        self.held.clear();
    }
}

/// Token bytes → text that is safe to show: [`Utf8Stream`] followed by [`StopStrings`].
#[derive(Debug, Clone)]
pub struct TextOut {
    utf8: Utf8Stream,
    stops: StopStrings,
    text: String,
}

impl TextOut {
    /// A stream cut at the earliest of `stops` (empty strings are an error).
    pub fn new(stops: &[String]) -> Result<Self, EngineError> {
        Ok(Self {
            utf8: Utf8Stream::new(),
            stops: StopStrings::new(stops)?,
            text: String::new(),
        })
    }

    /// Appends a token's bytes; writes the text now safe to show to `emit`. Returns the index of
    /// a stop string that completed (then `emit` got only the text before it).
    pub fn push(&mut self, bytes: &[u8], emit: &mut String) -> Option<usize> {
        self.text.clear();
        self.utf8.push(bytes, &mut self.text);
        self.stops.push(&self.text, emit)
    }

    /// Ends the stream: releases the held bytes and text to `emit` (a trailing U+FFFD can still
    /// complete a stop string, whose index is then returned).
    pub fn finish(&mut self, emit: &mut String) -> Option<usize> {
        self.text.clear();
        self.utf8.finish(&mut self.text);
        let hit = self.stops.push(&self.text, emit);
        if hit.is_none() {
            self.stops.finish(emit);
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> StopStrings {
        StopStrings::new(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn utf8_holds_incomplete_sequences() {
        let mut d = Utf8Stream::new();
        let mut out = String::new();
        let smile = "🙂".as_bytes(); // 4 bytes
        d.push(b"a", &mut out);
        assert_eq!(out, "a");
        d.push(&smile[..1], &mut out);
        assert_eq!(out, "a");
        assert!(d.has_pending());
        d.push(&smile[1..3], &mut out);
        assert_eq!(out, "a");
        d.push(&[smile[3], b'b', 0xC3], &mut out);
        assert_eq!(out, "a🙂b");
        d.push(&[0xA9], &mut out);
        assert_eq!(out, "a🙂bé");
        assert!(!d.has_pending());
    }

    #[test]
    fn utf8_invalid_bytes_become_replacement_like_lossy() {
        let inputs: [&[u8]; 4] = [
            b"x\xFFy",
            b"\xC3(z",
            b"\xF0\x9F\x99z",
            b"\xED\xA0\x80!", // surrogate: three invalid bytes
        ];
        for bytes in inputs {
            // Byte by byte and all at once give the same text as from_utf8_lossy.
            let expected = String::from_utf8_lossy(bytes).into_owned();
            let mut d = Utf8Stream::new();
            let mut out = String::new();
            for b in bytes {
                d.push(std::slice::from_ref(b), &mut out);
            }
            d.finish(&mut out);
            assert_eq!(out, expected, "{bytes:?}");
        }
        let mut d = Utf8Stream::new();
        let mut out = String::new();
        d.push(b"ok\xE2\x82", &mut out);
        assert_eq!(out, "ok");
        d.finish(&mut out);
        assert_eq!(out, "ok\u{FFFD}");
    }

    #[test]
    fn stop_string_across_pieces_is_cut_and_never_emitted() {
        let mut s = stops(&["STOP"]);
        let mut emitted = Vec::new();
        let mut stopped = None;
        for piece in ["Hel", "lo S", "T", "O", "P and more"] {
            let mut e = String::new();
            stopped = s.push(piece, &mut e);
            emitted.push(e);
            if stopped.is_some() {
                break;
            }
        }
        assert_eq!(stopped, Some(0));
        assert_eq!(emitted, vec!["Hel", "lo ", "", "", ""]);
    }

    #[test]
    fn held_prefix_is_released_when_it_does_not_complete() {
        let mut s = stops(&["STOP"]);
        let mut e = String::new();
        assert_eq!(s.push("a ST", &mut e), None);
        assert_eq!(e, "a ");
        assert_eq!(s.held(), "ST");
        assert_eq!(s.push("x", &mut e), None);
        assert_eq!(e, "a STx");
        assert_eq!(s.push("ST", &mut e), None);
        s.finish(&mut e);
        assert_eq!(e, "a STxST");
    }

    #[test]
    fn earliest_possible_prefix_is_held() {
        // "aa" then "b": the held tail must start at the second 'a' (first 'a' is released).
        let mut s = stops(&["ab"]);
        let mut e = String::new();
        assert_eq!(s.push("aa", &mut e), None);
        assert_eq!(e, "a");
        assert_eq!(s.push("b", &mut e), Some(0));
        assert_eq!(e, "a");
        // Overlapping candidates: "xxy" with stop "xxy" arriving as "x","x","x","y".
        let mut s = stops(&["xxy"]);
        let mut e = String::new();
        for p in ["x", "x", "x"] {
            assert_eq!(s.push(p, &mut e), None);
        }
        assert_eq!(e, "x");
        assert_eq!(s.push("y", &mut e), Some(0));
        assert_eq!(e, "x");
    }

    #[test]
    fn earliest_occurrence_among_several_stops_wins() {
        let mut s = stops(&["world", "lo w"]);
        let mut e = String::new();
        assert_eq!(s.push("hello world", &mut e), Some(1));
        assert_eq!(e, "hel");
    }

    #[test]
    fn multibyte_stop_strings_respect_char_boundaries() {
        let mut s = stops(&["é!"]);
        let mut e = String::new();
        assert_eq!(s.push("caf", &mut e), None);
        assert_eq!(s.push("é", &mut e), None);
        assert_eq!(e, "caf");
        assert_eq!(s.push("!", &mut e), Some(0));
        assert_eq!(e, "caf");
    }

    #[test]
    fn no_stops_passes_everything_and_empty_stop_is_error() {
        let mut s = StopStrings::new(&[]).unwrap();
        let mut e = String::new();
        assert_eq!(s.push("abc", &mut e), None);
        assert_eq!(e, "abc");
        assert!(matches!(
            StopStrings::new(&["a".into(), String::new()]),
            Err(EngineError::EmptyStopString { index: 1 })
        ));
    }
}
