//! Finding special tokens in text: leftmost match, longest at a position.

use rustc_hash::FxHashMap;

use crate::TokenId;

#[derive(Debug, Clone, Default)]
pub(crate) struct SpecialMatcher {
    map: FxHashMap<Box<[u8]>, TokenId>,
    /// Distinct token lengths, longest first.
    lengths: Vec<usize>,
    first: Vec<bool>,
}

impl SpecialMatcher {
    pub(crate) fn new(tokens: Vec<(String, TokenId)>) -> Self {
        let mut m = SpecialMatcher {
            first: vec![false; 256],
            ..SpecialMatcher::default()
        };
        for (text, id) in tokens {
            let b = text.into_bytes();
            let Some(&f) = b.first() else { continue };
            if let Some(slot) = m.first.get_mut(usize::from(f)) {
                *slot = true;
            }
            if !m.lengths.contains(&b.len()) {
                m.lengths.push(b.len());
            }
            m.map.insert(b.into_boxed_slice(), id);
        }
        m.lengths.sort_unstable_by(|a, b| b.cmp(a));
        m
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn get(&self, text: &str) -> Option<TokenId> {
        self.map.get(text.as_bytes()).copied()
    }

    /// The first special token in `text[from..]`: `(start, end, id)`.
    pub(crate) fn find(&self, text: &str, from: usize) -> Option<(usize, usize, TokenId)> {
        let bytes = text.as_bytes();
        let tail = bytes.get(from..)?;
        for (off, &b) in tail.iter().enumerate() {
            if !self.first.get(usize::from(b)).copied().unwrap_or(false) {
                continue;
            }
            let start = from + off;
            for &len in &self.lengths {
                let Some(end) = start.checked_add(len) else {
                    continue;
                };
                if let Some(cand) = bytes.get(start..end) {
                    if let Some(&id) = self.map.get(cand) {
                        return Some((start, end, id));
                    }
                }
            }
        }
        None
    }
}
