//! A hand-written scanner for the Llama 3 pre-tokenizer pattern
//!
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//!
//! It yields exactly the pieces `fancy_regex::Regex::find_iter` yields for that pattern (checked by
//! a randomized test against fancy-regex), about an order of magnitude faster.

use crate::unicode::{CharClass, Classifier};

/// Splits `text` into Llama 3 pre-tokens, calling `f` for each (non-empty) piece in order.
///
/// `fold_long_s`: whether `'ſ` counts as the contraction `'s` (true regex `(?i:)` semantics, as in
/// tiktoken and Hugging Face); llama.cpp's adapted pattern uses `'[sS]` and does not fold it.
pub(crate) fn split_llama3<'a>(text: &'a str, fold_long_s: bool, mut f: impl FnMut(&'a str)) {
    let cls = Classifier::get();
    let mut i = 0usize;
    while i < text.len() {
        let end = piece_end(text, i, fold_long_s, cls);
        // `piece_end` always advances by at least one character; guard anyway.
        let end = if end <= i {
            next_boundary(text, i)
        } else {
            end
        };
        if let Some(piece) = text.get(i..end) {
            f(piece);
        }
        i = end;
    }
}

#[inline]
fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

fn next_boundary(text: &str, i: usize) -> usize {
    char_at(text, i).map_or(text.len(), |c| i + c.len_utf8())
}

#[inline]
fn fold(c: char, fold_long_s: bool) -> char {
    if fold_long_s && c == '\u{17f}' {
        's'
    } else {
        c.to_ascii_lowercase()
    }
}

/// End of the run of characters of class `class` starting at `i`.
#[inline]
fn run_end(text: &str, mut i: usize, class: CharClass, cls: Classifier) -> usize {
    let bytes = text.as_bytes();
    while let Some(&b) = bytes.get(i) {
        if b < 0x80 {
            if cls.class(b as char) != class {
                break;
            }
            i += 1;
        } else {
            match char_at(text, i) {
                Some(c) if cls.class(c) == class => i += c.len_utf8(),
                _ => break,
            }
        }
    }
    i
}

fn piece_end(text: &str, i: usize, fold_long_s: bool, cls: Classifier) -> usize {
    let Some(c) = char_at(text, i) else {
        return text.len();
    };
    let after_c = i + c.len_utf8();
    let next = char_at(text, after_c);

    // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if c == '\'' {
        if let Some(c2) = next {
            let after_c2 = after_c + c2.len_utf8();
            match fold(c2, fold_long_s) {
                's' | 't' | 'm' | 'd' => return after_c2,
                l @ ('r' | 'v' | 'l') => {
                    let want = if l == 'l' { 'l' } else { 'e' };
                    if let Some(c3) = char_at(text, after_c2) {
                        if fold(c3, fold_long_s) == want {
                            return after_c2 + c3.len_utf8();
                        }
                    }
                }
                _ => {}
            }
        }
    }

    let class = cls.class(c);
    // 2. [^\r\n\p{L}\p{N}]?\p{L}+
    if class == CharClass::Letter {
        return run_end(text, after_c, CharClass::Letter, cls);
    }
    if c != '\r' && c != '\n' && class != CharClass::Number {
        if let Some(n) = next {
            if cls.class(n) == CharClass::Letter {
                return run_end(text, after_c, CharClass::Letter, cls);
            }
        }
    }
    // 3. \p{N}{1,3}
    if class == CharClass::Number {
        let mut end = after_c;
        for _ in 0..2 {
            match char_at(text, end) {
                Some(n) if cls.class(n) == CharClass::Number => end += n.len_utf8(),
                _ => break,
            }
        }
        return end;
    }
    // 4. ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let sym_start = if c == ' ' && next.is_some_and(|n| cls.class(n) == CharClass::Other) {
        Some(after_c)
    } else if class == CharClass::Other {
        Some(i)
    } else {
        None
    };
    if let Some(s) = sym_start {
        let mut end = run_end(text, s, CharClass::Other, cls);
        let bytes = text.as_bytes();
        while matches!(bytes.get(end), Some(b'\r' | b'\n')) {
            end += 1;
        }
        return end;
    }
    // Here `c` is whitespace. Find the whitespace run and its last \r or \n.
    let mut end = i;
    let mut last_newline_end = None;
    let mut last_char_start = i;
    while let Some(w) = char_at(text, end) {
        if cls.class(w) != CharClass::Space {
            break;
        }
        last_char_start = end;
        end += w.len_utf8();
        if w == '\r' || w == '\n' {
            last_newline_end = Some(end);
        }
    }
    // 5. \s*[\r\n]+
    if let Some(e) = last_newline_end {
        return e;
    }
    // 6. \s+(?!\S)
    if end >= text.len() {
        return end;
    }
    if last_char_start > i {
        return last_char_start;
    }
    // 7. \s+
    end
}
