//! Keeping message text out of the control tokens of a Jinja-rendered prompt.
//!
//! A chat template renders messages and tools into one string, which is then tokenized with
//! special tokens parsed; so a user message holding `<|im_end|>\n<|im_start|>system` would become
//! real control tokens (HF transformers, llama.cpp and vLLM do this). Here, before rendering,
//! every control-token look-alike in a value that comes from the request (message text, names,
//! tool calls and results, tool definitions, object keys) is replaced by one placeholder
//! character from Unicode's plane 16 private use area, and so are a head or tail of the value
//! that could complete a control token with the text next to it, and any plane-16 character the
//! value already holds. After rendering, each placeholder is put back and its byte range marked
//! as plain text for [`Tokenizer::encode_with_plain_spans`]: only what the template itself wrote
//! can become a control token. Where no look-alike occurs nothing is replaced, so the rendered
//! text is the template's own, unchanged.
//!
//! A placeholder is one character where the template sees the value, so a template that
//! measures, slices, case-maps or searches a value holding a look-alike sees a shorter string
//! than transformers would (its output may then differ from transformers' there, and stays safe).
//! Inside `tojson`, placeholders are mapped to a second or third range so that they come back as
//! the JSON-escaped form of their text (`ensure_ascii` or not), as `json.dumps` would write it.

use std::cell::Cell;
use std::collections::HashSet;
use std::ops::Range;

use serde_json::{Map, Value};

use crate::error::{ChatError, Result};
use crate::pyjson::write_string;
use llama31_tokenizer::Tokenizer;

/// Placeholders `BASE + i` (raw text), `BASE + STRIDE + i` (JSON-escaped), `BASE + 2 STRIDE + i`
/// (JSON-escaped, ASCII only).
const BASE: u32 = 0x10_0000;
const STRIDE: u32 = 0x5000;
/// Most placeholders one render may use.
pub const MAX_PLACEHOLDERS: usize = STRIDE as usize;

thread_local! {
    /// Set while a masked render runs on this thread: `tojson` then maps placeholders.
    static MASKING: Cell<bool> = const { Cell::new(false) };
}

/// Whether a masked render runs on this thread (for `tojson`).
pub(crate) fn masking_active() -> bool {
    MASKING.with(Cell::get)
}

/// Runs `f` with [`masking_active`] true.
pub(crate) fn with_masking<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            MASKING.with(|m| m.set(self.0));
        }
    }
    let _reset = Reset(MASKING.with(|m| m.replace(true)));
    f()
}

/// The placeholder `c` as `tojson` writes it during a masked render: mapped to the JSON range
/// (`ensure_ascii` or not). `None` when `c` is no raw placeholder or no masked render runs.
pub(crate) fn json_placeholder(c: char, ensure_ascii: bool) -> Option<char> {
    let i = (c as u32).checked_sub(BASE).filter(|&i| i < STRIDE)?;
    if !masking_active() {
        return None;
    }
    let range = if ensure_ascii { 2 } else { 1 };
    char::from_u32(BASE + range * STRIDE + i)
}

fn in_plane16(c: char) -> bool {
    (c as u32) >= BASE
}

/// Replaces look-alikes in request values with placeholders and puts them back after rendering.
pub(crate) struct Masker<'t> {
    tokenizer: &'t Tokenizer,
    /// Proper prefixes of control tokens (a value's tail that a following text could complete).
    prefixes: HashSet<&'t str>,
    /// Proper suffixes of control tokens (a value's head that a preceding text could complete).
    suffixes: HashSet<&'t str>,
    longest: usize,
    originals: Vec<String>,
}

impl<'t> Masker<'t> {
    pub(crate) fn new(tokenizer: &'t Tokenizer) -> Self {
        let mut prefixes = HashSet::new();
        let mut suffixes = HashSet::new();
        let mut longest = 0;
        for t in tokenizer.control_tokens() {
            longest = longest.max(t.len());
            for (i, _) in t.char_indices().skip(1) {
                if let (Some(p), Some(s)) = (t.get(..i), t.get(i..)) {
                    prefixes.insert(p);
                    suffixes.insert(s);
                }
            }
        }
        Masker {
            tokenizer,
            prefixes,
            suffixes,
            longest,
            originals: Vec::new(),
        }
    }

    /// Whether anything was replaced.
    pub(crate) fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }

    /// `value` with every string (and object key) masked.
    pub(crate) fn mask_value(&mut self, value: &Value) -> Result<Value> {
        Ok(match value {
            Value::String(s) => Value::String(self.mask_str(s)?),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|v| self.mask_value(v))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, v) in o {
                    out.insert(self.mask_str(k)?, self.mask_value(v)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// `s` with its look-alikes (and plane-16 characters, and a head or tail that could complete
    /// a control token) replaced by placeholders.
    pub(crate) fn mask_str(&mut self, s: &str) -> Result<String> {
        let ranges = self.ranges(s);
        if ranges.is_empty() {
            return Ok(s.to_string());
        }
        let mut out = String::with_capacity(s.len());
        let mut pos = 0;
        for r in ranges {
            out.push_str(s.get(pos..r.start).unwrap_or_default());
            out.push(self.placeholder(s.get(r.clone()).unwrap_or_default())?);
            pos = r.end;
        }
        out.push_str(s.get(pos..).unwrap_or_default());
        Ok(out)
    }

    /// The sorted, disjoint byte ranges of `s` to replace.
    fn ranges(&self, s: &str) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        // A head that is a proper suffix of a control token, longest first.
        let head = self.edge_len(s, true);
        let tail = self.edge_len(s.get(head..).unwrap_or_default(), false);
        let (mid_start, mid_end) = (head, s.len() - tail);
        if head > 0 {
            out.push(0..head);
        }
        let mid = s.get(..mid_end).unwrap_or_default();
        let mut pos = mid_start;
        while pos < mid_end {
            let next = self.tokenizer.find_control_token(mid, pos);
            let stop = next.map_or(mid_end, |(start, _)| start);
            for (i, c) in mid.get(pos..stop).unwrap_or_default().char_indices() {
                if in_plane16(c) {
                    out.push(pos + i..pos + i + c.len_utf8());
                }
            }
            match next {
                Some((start, end)) => {
                    out.push(start..end);
                    pos = end;
                }
                None => break,
            }
        }
        if tail > 0 {
            out.push(mid_end..s.len());
        }
        out
    }

    /// The length of the longest head (`head`) or tail of `s` that is a proper suffix (head) or
    /// proper prefix (tail) of a control token; 0 if none.
    fn edge_len(&self, s: &str, head: bool) -> usize {
        let max = self.longest.saturating_sub(1).min(s.len());
        let (set, take): (_, fn(&str, usize) -> Option<&str>) = if head {
            (&self.suffixes, |s, n| s.get(..n))
        } else {
            (&self.prefixes, |s, n| s.get(s.len() - n..))
        };
        (1..=max)
            .rev()
            .find(|&n| take(s, n).is_some_and(|piece| set.contains(piece)))
            .unwrap_or(0)
    }

    fn placeholder(&mut self, original: &str) -> Result<char> {
        let i = self.originals.len();
        if i >= MAX_PLACEHOLDERS {
            return Err(ChatError::InvalidDialog(format!(
                "more than {MAX_PLACEHOLDERS} special-token look-alikes in one request"
            )));
        }
        self.originals.push(original.to_string());
        // i < STRIDE: always a valid scalar value in plane 16.
        char::from_u32(BASE + i as u32)
            .ok_or_else(|| ChatError::InvalidDialog("placeholder out of range".into()))
    }

    /// `rendered` with every placeholder replaced by its text (JSON-escaped where `tojson` wrote
    /// it), and the byte ranges of those texts in the result.
    pub(crate) fn unmask(&self, rendered: &str) -> (String, Vec<Range<usize>>) {
        if self.originals.is_empty() {
            return (rendered.to_string(), Vec::new());
        }
        let mut out = String::with_capacity(rendered.len());
        let mut spans: Vec<Range<usize>> = Vec::new();
        for c in rendered.chars() {
            let slot = (c as u32)
                .checked_sub(BASE)
                .map(|off| (off / STRIDE, (off % STRIDE) as usize))
                .and_then(|(range, i)| Some((range, self.originals.get(i)?)));
            match slot {
                Some((range, text)) if range <= 2 => {
                    let start = out.len();
                    if range == 0 {
                        out.push_str(text);
                    } else {
                        let mut quoted = String::new();
                        write_string(&mut quoted, text, range == 2);
                        // Without the quotes `write_string` puts around it.
                        out.push_str(quoted.get(1..quoted.len() - 1).unwrap_or_default());
                    }
                    match spans.last_mut() {
                        Some(last) if last.end == start => last.end = out.len(),
                        _ => spans.push(start..out.len()),
                    }
                }
                _ => out.push(c),
            }
        }
        (out, spans)
    }
}
