//! Token masks: which vocabulary tokens keep a [`Matcher`] alive.
//!
//! The vocabulary is stored as byte tries laid out in depth-first order, so a walk is a
//! single loop over an array: each trie node advances the matcher state of its parent by
//! one byte, and a node whose state dies skips its whole subtree.
//!
//! Inside a string, nearly every token is allowed; walking the full trie there would visit
//! most of it. Tokens that are *plain string content* (no `"`, `\` or control byte, and
//! whole UTF-8 characters) are therefore precomputed with their character count: in a
//! string state they are allowed directly (subject to `maxLength`), and only the remaining
//! tokens are walked, in a second trie.

use crate::grammar::{Grammar, UNBOUNDED};
use crate::matcher::{plain_string_room, step_set, utf8_next, utf8_start, Matcher, StackSet};

/// A vocabulary prepared for computing token masks; build once per tokenizer.
pub struct TokenIndex {
    n_tokens: usize,
    /// Every token with bytes.
    full: Trie,
    /// Tokens that are not plain string content.
    special: Trie,
    /// Plain string-content tokens and their character counts.
    plain: Vec<u32>,
    plain_chars: Vec<u32>,
}

impl std::fmt::Debug for TokenIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIndex")
            .field("tokens", &self.n_tokens)
            .field("trie_nodes", &self.full.bytes.len())
            .field("plain_tokens", &self.plain.len())
            .finish()
    }
}

/// A byte trie in depth-first order (the root itself is not stored).
#[derive(Default)]
struct Trie {
    /// Byte on the edge into node `i`.
    bytes: Vec<u8>,
    /// Depth of node `i` (1 for children of the root).
    depth: Vec<u32>,
    /// One past the last node of the subtree of node `i`.
    end: Vec<u32>,
    /// Tokens ending at node `i` are `tokens[tok_start[i]..tok_start[i + 1]]`.
    tok_start: Vec<u32>,
    tokens: Vec<u32>,
    max_depth: usize,
}

impl Trie {
    fn build(mut entries: Vec<(&[u8], u32)>) -> Trie {
        entries.sort_unstable();
        let mut t = Trie::default();
        let mut path: Vec<usize> = Vec::new();
        let mut prev: &[u8] = &[];
        for (bytes, id) in entries {
            let common = prev
                .iter()
                .zip(bytes.iter())
                .take_while(|(a, b)| a == b)
                .count()
                .min(path.len());
            while path.len() > common {
                if let Some(n) = path.pop() {
                    t.end[n] = t.bytes.len() as u32;
                }
            }
            for (d, &b) in bytes.iter().enumerate().skip(common) {
                path.push(t.bytes.len());
                t.bytes.push(b);
                t.depth.push(d as u32 + 1);
                t.end.push(0);
                t.tok_start.push(t.tokens.len() as u32);
            }
            t.tokens.push(id);
            t.max_depth = t.max_depth.max(bytes.len());
            prev = bytes;
        }
        while let Some(n) = path.pop() {
            t.end[n] = t.bytes.len() as u32;
        }
        t.tok_start.push(t.tokens.len() as u32);
        t
    }

    fn tokens_at(&self, i: usize) -> &[u32] {
        let lo = self.tok_start[i] as usize;
        let hi = self.tok_start[i + 1] as usize;
        &self.tokens[lo..hi]
    }

    /// Marks every token whose bytes some stack of `start` accepts.
    fn walk(
        &self,
        g: &Grammar,
        start: &StackSet,
        allowed: &mut [bool],
        levels: &mut Vec<StackSet>,
    ) {
        if levels.len() <= self.max_depth {
            levels.resize_with(self.max_depth + 1, StackSet::default);
        }
        let n = self.bytes.len();
        let mut i = 0;
        while i < n {
            let d = self.depth[i] as usize;
            let (below, here) = levels.split_at_mut(d);
            let prev = if d == 1 { start } else { &below[d - 1] };
            let cur = &mut here[0];
            step_set(g, prev.live(), self.bytes[i], cur);
            if cur.is_empty() {
                i = self.end[i] as usize;
                continue;
            }
            for &t in self.tokens_at(i) {
                if let Some(a) = allowed.get_mut(t as usize) {
                    *a = true;
                }
            }
            i += 1;
        }
    }
}

/// Character count of `bytes` if it is plain string content: no `"`, `\` or byte below
/// 0x20, and a sequence of whole, well-formed UTF-8 characters.
fn plain_chars(bytes: &[u8]) -> Option<u32> {
    let mut pending = 0u8;
    let mut chars = 0u32;
    for &b in bytes {
        if pending != 0 {
            pending = utf8_next(pending, b)?;
            continue;
        }
        if b < 0x20 || b == b'"' || b == b'\\' {
            return None;
        }
        pending = utf8_start(b)?;
        chars += 1;
    }
    (pending == 0 && !bytes.is_empty()).then_some(chars)
}

impl TokenIndex {
    /// Indexes a vocabulary.
    ///
    /// `tokens[i]` is the byte string token `i` decodes to, or `None` for special/control
    /// tokens, which the mask never allows. Tokens with no bytes are never allowed either.
    pub fn new(tokens: &[Option<Vec<u8>>]) -> TokenIndex {
        let mut all = Vec::new();
        let mut special = Vec::new();
        let mut plain = Vec::new();
        let mut plain_counts = Vec::new();
        for (id, tok) in tokens.iter().enumerate() {
            let Some(bytes) = tok.as_deref().filter(|b| !b.is_empty()) else {
                continue;
            };
            let id = id as u32;
            all.push((bytes, id));
            match plain_chars(bytes) {
                Some(c) => {
                    plain.push(id);
                    plain_counts.push(c);
                }
                None => special.push((bytes, id)),
            }
        }
        TokenIndex {
            n_tokens: tokens.len(),
            full: Trie::build(all),
            special: Trie::build(special),
            plain,
            plain_chars: plain_counts,
        }
    }

    /// Size of the vocabulary this index was built from.
    pub fn len(&self) -> usize {
        self.n_tokens
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.n_tokens == 0
    }

    /// Sets `allowed[i]` to whether appending token `i`'s bytes to the matcher's document
    /// keeps it a valid prefix, i.e. whether `matcher.clone().accept_bytes(token_i)` would
    /// return `true`. Special tokens and tokens without bytes are `false`.
    ///
    /// `allowed` should have [`TokenIndex::len`] entries; entries past the vocabulary are
    /// set to `false` and tokens past the end of `allowed` are skipped. End-of-sequence is
    /// the caller's decision (see [`Matcher::is_complete`] and [`Matcher::can_continue`]).
    pub fn allowed(&self, matcher: &Matcher, allowed: &mut [bool]) {
        allowed.fill(false);
        let g = &**matcher.grammar();
        let mut in_string = StackSet::default();
        let mut others = StackSet::default();
        let mut room = 0u32;
        for s in matcher.stacks() {
            match plain_string_room(g, s) {
                Some(r) => {
                    room = room.max(r);
                    in_string.push_copy(s);
                }
                None => {
                    others.push_copy(s);
                }
            }
        }
        let mut levels = Vec::new();
        if !in_string.is_empty() {
            if room == UNBOUNDED {
                for &t in &self.plain {
                    if let Some(a) = allowed.get_mut(t as usize) {
                        *a = true;
                    }
                }
            } else {
                for (&t, &c) in self.plain.iter().zip(self.plain_chars.iter()) {
                    if c <= room {
                        if let Some(a) = allowed.get_mut(t as usize) {
                            *a = true;
                        }
                    }
                }
            }
            self.special.walk(g, &in_string, allowed, &mut levels);
        }
        if !others.is_empty() {
            self.full.walk(g, &others, allowed, &mut levels);
        }
    }
}
