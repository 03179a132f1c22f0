//! Randomized equivalence checks: the hand-written Llama 3 scanner against fancy-regex (the engine
//! tiktoken uses), and the two BPE merge algorithms against each other.

mod common;

use llama31_tokenizer::internals::{bpe_both, llama3_pieces, meta_chunks, RegexSplitter};
use llama31_tokenizer::LLAMA3_PATTERN;

/// xorshift64*: a tiny deterministic generator (no extra dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Characters that exercise every branch of the pattern: contractions (incl. ſ, which folds to
/// s), letters and numbers from several scripts, all kinds of whitespace (incl. \x0b, \x1c which
/// Python calls space but Unicode does not, NBSP, ideographic space), symbols, marks, emoji.
const ALPHABET: &[char] = &[
    'a', 'b', 'Z', 's', 'S', 't', 'T', 'r', 'R', 'e', 'E', 'v', 'V', 'm', 'M', 'l', 'L', 'd', 'D',
    'ſ', 'K', '\'', '’', '0', '7', '٣', '½', '²', 'Ⅻ', 'é', 'ß', 'Я', 'ж', '中', '文', 'ア', '한',
    'ا', 'ع', 'ह', '\u{301}', '\u{94d}', ' ', ' ', ' ', '\t', '\n', '\r', '\u{b}', '\u{c}',
    '\u{1c}', '\u{85}', '\u{a0}', '\u{2003}', '\u{3000}', '\u{2028}', '.', ',', '!', '?', '-', '_',
    '<', '|', '>', '(', ')', '{', '}', '"', '#', '$', '😀', '👍', '\u{200d}', '\u{fe0f}', '€', '©',
    '\u{0}',
];

fn random_text(rng: &mut Rng, max_len: usize) -> String {
    let len = rng.below(max_len + 1);
    let mut s = String::with_capacity(len * 2);
    for _ in 0..len {
        if rng.below(10) == 0 {
            // any Unicode scalar value
            let c = loop {
                if let Some(c) = char::from_u32((rng.next() % 0x11_0000) as u32) {
                    break c;
                }
            };
            s.push(c);
        } else {
            s.push(ALPHABET[rng.below(ALPHABET.len())]);
        }
    }
    s
}

#[test]
fn llama3_scanner_equals_fancy_regex() {
    let re = RegexSplitter::new(LLAMA3_PATTERN).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..20_000 {
        let s = random_text(&mut rng, 40);
        let want = re.pieces(&s);
        let got = llama3_pieces(&s, true);
        assert_eq!(got, want, "round {round}: {s:?}");
    }
}

#[test]
fn llama3_scanner_equals_fancy_regex_on_corpus() {
    let re = RegexSplitter::new(LLAMA3_PATTERN).unwrap();
    let corpus: Vec<String> = common::read_jsonl("corpus.jsonl");
    for (i, s) in corpus.iter().enumerate() {
        assert_eq!(
            llama3_pieces(s, true),
            re.pieces(s),
            "corpus line {i}: {}",
            common::shorten(s)
        );
    }
}

#[test]
fn llama_cpp_contractions_do_not_fold_long_s() {
    assert_eq!(llama3_pieces("it'ſ", true), vec!["it", "'ſ"]);
    // Without folding, "'ſ" is not a contraction: the apostrophe joins the letters after it.
    let p = llama3_pieces("it'ſ", false);
    assert_eq!(
        p,
        vec!["it", "'ſ"],
        "'ſ is matched by [^\\r\\n\\p{{L}}\\p{{N}}]?\\p{{L}}+ anyway"
    );
    assert_eq!(llama3_pieces("'ſx", true), vec!["'ſ", "x"]);
    assert_eq!(llama3_pieces("'ſx", false), vec!["'ſx"]);
}

#[test]
fn bpe_linear_equals_heap() {
    let tok = common::meta();
    let hf = common::hf();
    let mut rng = Rng(12345);
    for round in 0..3000 {
        let s = random_text(&mut rng, 60);
        for t in [tok, hf] {
            let (a, b) = bpe_both(t, s.as_bytes());
            assert_eq!(a, b, "round {round}: {s:?}");
            assert_eq!(t.decode(&a), s.as_bytes());
        }
    }
    // Repetitive pieces where equal ranks tie.
    for s in [
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "                         ",
        "abababababababab",
    ] {
        for t in [tok, hf] {
            let (a, b) = bpe_both(t, s.as_bytes());
            assert_eq!(a, b, "{s:?}");
        }
    }
}

/// Meta's `_split_whitespaces_or_nonwhitespaces` on hand-computed cases.
#[test]
fn meta_chunking() {
    let a = "a".repeat(25_000);
    assert_eq!(meta_chunks(&a), vec![a.as_str()]);
    let b = "a".repeat(25_001);
    assert_eq!(meta_chunks(&b), vec![&b[..25_000], &b[25_000..]]);
    // Runs reset at each space/non-space change; \x1c is a space for Python.
    let c = format!("{} {}", "x".repeat(25_000), "y".repeat(10));
    assert_eq!(meta_chunks(&c), vec![c.as_str()]);
    let d = format!("{}\u{1c}", " ".repeat(25_000));
    assert_eq!(meta_chunks(&d), vec![&d[..25_000], &d[25_000..]]);
    assert!(meta_chunks("").is_empty());
    // 400,000-character windows are counted in characters, not bytes.
    let e = "é ".repeat(200_001);
    let chunks = meta_chunks(&e);
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].chars().count(), 400_000);
}
