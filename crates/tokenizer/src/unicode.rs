//! Character classes used by the pre-tokenizers.
//!
//! The tables come from `regex-syntax` — the same tables `fancy-regex`/`regex` (and therefore
//! tiktoken's Rust core) use for `\p{L}`, `\p{N}` and `\s` — so the hand-written Llama 3 scanner
//! classifies every code point exactly like the regex it replaces.

use std::sync::OnceLock;

/// The class of a code point as the Llama 3 pattern sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CharClass {
    /// `\p{L}`
    Letter,
    /// `\p{N}`
    Number,
    /// `\s` (Unicode `White_Space`)
    Space,
    /// anything else
    Other,
}

struct Tables {
    /// Sorted, non-overlapping `(start, end_inclusive, class)` for code points >= 0x80.
    ranges: Vec<(u32, u32, CharClass)>,
    ascii: [CharClass; 128],
}

fn class_ranges(pattern: &str) -> Vec<(u32, u32)> {
    let hir = match regex_syntax::ParserBuilder::new()
        .unicode(true)
        .build()
        .parse(pattern)
    {
        Ok(h) => h,
        // The patterns are constants; a failure here is a bug in this file, not bad input.
        Err(e) => {
            tracing::error!("regex-syntax rejected {pattern}: {e}");
            return Vec::new();
        }
    };
    match hir.kind() {
        regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(cls)) => cls
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        _ => Vec::new(),
    }
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut ranges: Vec<(u32, u32, CharClass)> = Vec::new();
        for (pat, class) in [
            (r"\p{L}", CharClass::Letter),
            (r"\p{N}", CharClass::Number),
            (r"\s", CharClass::Space),
        ] {
            for (s, e) in class_ranges(pat) {
                ranges.push((s, e, class));
            }
        }
        // L, N and White_Space are disjoint Unicode sets, so sorting by start suffices.
        ranges.sort_unstable_by_key(|r| r.0);
        let mut ascii = [CharClass::Other; 128];
        for (i, slot) in ascii.iter_mut().enumerate() {
            let c = i as u32;
            *slot = lookup(&ranges, c);
        }
        ranges.retain(|r| r.1 >= 0x80);
        Tables { ranges, ascii }
    })
}

fn lookup(ranges: &[(u32, u32, CharClass)], c: u32) -> CharClass {
    // Find the last range whose start <= c.
    let idx = ranges.partition_point(|r| r.0 <= c);
    if idx == 0 {
        return CharClass::Other;
    }
    match ranges.get(idx - 1) {
        Some(&(_, end, class)) if c <= end => class,
        _ => CharClass::Other,
    }
}

/// A resolved class table; fetch it once and classify many characters.
#[derive(Clone, Copy)]
pub(crate) struct Classifier {
    t: &'static Tables,
}

impl Classifier {
    pub(crate) fn get() -> Self {
        Classifier { t: tables() }
    }

    #[inline]
    pub(crate) fn class(&self, c: char) -> CharClass {
        let u = c as u32;
        if u < 128 {
            self.t.ascii[u as usize]
        } else {
            lookup(&self.t.ranges, u)
        }
    }
}

/// Python's `str.isspace()` (used by Meta's `_split_whitespaces_or_nonwhitespaces`): characters
/// whose bidirectional class is WS, B or S, or whose category is Zs.
#[inline]
pub(crate) fn py_isspace(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact set CPython 3.11 reports for `chr(c).isspace()` over all code points.
    #[test]
    fn py_isspace_matches_cpython() {
        let want: [u32; 29] = [
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000,
            0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
            0x2029, 0x202f, 0x205f, 0x3000,
        ];
        let got: Vec<u32> = (0..0x11_0000u32)
            .filter_map(char::from_u32)
            .filter(|&c| py_isspace(c))
            .map(|c| c as u32)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn classes() {
        let c = Classifier::get();
        assert_eq!(c.class('a'), CharClass::Letter);
        assert_eq!(c.class('ſ'), CharClass::Letter);
        assert_eq!(c.class('中'), CharClass::Letter);
        assert_eq!(c.class('7'), CharClass::Number);
        assert_eq!(c.class('½'), CharClass::Number);
        assert_eq!(c.class('\u{a0}'), CharClass::Space);
        assert_eq!(
            c.class('\u{1c}'),
            CharClass::Other,
            "not Unicode White_Space"
        );
        assert_eq!(c.class('😀'), CharClass::Other);
        assert_eq!(
            c.class('\u{301}'),
            CharClass::Other,
            "combining marks are not letters"
        );
    }
}
