//! Port of `llama_models/llama3/tests/api/test_tokenizer.py` (its exact expected ids), for both the
//! `tokenizer.model` and the `tokenizer.json` loaders, plus decoding and streaming.

mod common;

use common::{hf, meta};
use llama31_tokenizer::{StreamDecoder, Tokenizer};

fn both() -> [(&'static str, &'static Tokenizer); 2] {
    [("tokenizer.model", meta()), ("tokenizer.json", hf())]
}

/// `encode(s, bos=True, eos=True)` as Meta defines it.
fn encode_bos_eos(t: &Tokenizer, s: &str) -> Vec<u32> {
    let mut v = vec![t.bos_id().unwrap()];
    v.extend(t.encode(s, false));
    v.push(t.token_id("<|end_of_text|>").unwrap());
    v
}

#[test]
fn test_special_tokens() {
    for (what, t) in both() {
        assert_eq!(t.token_id("<|begin_of_text|>"), Some(128000), "{what}");
    }
}

#[test]
fn test_encode() {
    for (what, t) in both() {
        assert_eq!(
            encode_bos_eos(t, "This is a test sentence."),
            vec![128000, 2028, 374, 264, 1296, 11914, 13, 128001],
            "{what}"
        );
    }
}

#[test]
fn test_decode() {
    for (what, t) in both() {
        assert_eq!(
            t.decode(&[128000, 2028, 374, 264, 1296, 11914, 13, 128001]),
            b"<|begin_of_text|>This is a test sentence.<|end_of_text|>",
            "{what}"
        );
    }
}

/// The token pieces of `test_encode_message` / `test_encode_dialog` (the header/role/"\n\n" ids;
/// the dialog framing itself is the chat crate's).
#[test]
fn test_encode_message_pieces() {
    for (what, t) in both() {
        assert_eq!(t.token_id("<|start_header_id|>"), Some(128006), "{what}");
        assert_eq!(t.token_id("<|end_header_id|>"), Some(128007), "{what}");
        assert_eq!(t.token_id("<|eot_id|>"), Some(128009), "{what}");
        assert_eq!(t.encode("user", false), vec![882], "{what}");
        assert_eq!(t.encode("system", false), vec![9125], "{what}");
        assert_eq!(t.encode("assistant", false), vec![78191], "{what}");
        assert_eq!(t.encode("\n\n", false), vec![271], "{what}");
        assert_eq!(
            t.encode("This is a response.", false),
            vec![2028, 374, 264, 2077, 13],
            "{what}"
        );
        let msg = "<|start_header_id|>user<|end_header_id|>\n\nThis is a test sentence.<|eot_id|>";
        assert_eq!(
            t.encode(msg, true),
            vec![128006, 882, 128007, 271, 2028, 374, 264, 1296, 11914, 13, 128009],
            "{what}"
        );
    }
}

#[test]
fn meta_ids_and_flags() {
    let t = meta();
    assert_eq!(t.vocab_size(), 128256);
    assert_eq!(t.bos_id(), Some(128000));
    assert_eq!(t.eos_ids(), &[128001, 128008, 128009]);
    assert!(t.add_bos());
    for (name, id) in [
        ("<|finetune_right_pad_id|>", 128004),
        ("<|step_id|>", 128005),
        ("<|eom_id|>", 128008),
        ("<|python_tag|>", 128010),
        ("<|image|>", 128011),
        ("<|reserved_special_token_2|>", 128012),
        ("<|reserved_special_token_245|>", 128255),
    ] {
        assert_eq!(t.token_id(name), Some(id), "{name}");
    }
    assert_eq!(t.token_id("<|reserved_special_token_246|>"), None);
    assert_eq!(t.special_tokens().len(), 256);
    assert!(t.is_special(128000) && !t.is_special(127999) && !t.is_special(u32::MAX));
    // Special-looking text is ordinary text unless allowed.
    assert_ne!(t.encode("<|eot_id|>", false), vec![128009]);
    assert_eq!(t.encode("<|eot_id|>", true), vec![128009]);
    assert_eq!(t.encode("", true), Vec::<u32>::new());
}

#[test]
fn ordinary_token_lookup() {
    for (what, t) in both() {
        assert_eq!(t.token_id(" is"), Some(374), "{what}");
        assert_eq!(t.token_bytes(374), Some(&b" is"[..]), "{what}");
        assert_eq!(t.token_bytes(u32::MAX), None, "{what}");
    }
    assert_eq!(hf().token_id("Ġis"), Some(374), "byte-level name");
}

#[test]
fn decode_skips_unknown_ids_and_lossy() {
    let t = meta();
    assert_eq!(t.decode(&[2028, 999_999_999, 374]), b"This is");
    let ids = t.encode("héllo 😀", false);
    assert_eq!(t.decode_lossy(&ids), "héllo 😀");
    // A lone continuation byte of the emoji decodes lossy as U+FFFD.
    let last = *t.encode("😀", false).last().unwrap();
    assert!(t.decode_lossy(&[last]).contains('\u{fffd}'));
}

#[test]
fn round_trip_assorted() {
    let texts = [
        "",
        " ",
        "Hello, world!",
        "  leading and trailing  ",
        "tabs\tand\nnewlines\r\n\r\n",
        "日本語のテキスト、そして한국어",
        "emoji 👩‍👩‍👧‍👦 🇫🇷 ✊🏿",
        "numbers 1234567890 ١٢٣",
        "<|eot_id|> looks special",
        "\u{0}\u{1}\u{7f}",
    ];
    for (what, t) in both() {
        for s in texts {
            assert_eq!(t.decode(&t.encode(s, false)), s.as_bytes(), "{what}: {s:?}");
            assert_eq!(t.decode(&t.encode(s, true)), s.as_bytes(), "{what}: {s:?}");
        }
    }
}

#[test]
fn stream_decoder_holds_back_split_emoji() {
    let t = meta();
    // Find an emoji that the tokenizer splits across several tokens.
    let text = "a 🦙🦙 b 👩‍👩‍👧 c";
    let ids = t.encode(text, false);
    let split = ids
        .iter()
        .any(|&id| std::str::from_utf8(t.token_bytes(id).unwrap()).is_err());
    assert!(split, "test needs a token that is not valid UTF-8 alone");
    let mut d = StreamDecoder::new();
    let mut out = String::new();
    for &id in &ids {
        let piece = d.push(t, id);
        assert!(!piece.contains('\u{fffd}'), "emitted a broken character");
        out.push_str(&piece);
    }
    out.push_str(&d.finish());
    assert_eq!(out, text);
}

#[test]
fn stream_decoder_byte_by_byte() {
    let mut d = StreamDecoder::new();
    let s = "é🦙x";
    let mut out = String::new();
    for b in s.bytes() {
        out.push_str(&d.push_bytes(&[b]));
    }
    assert_eq!(out, s);
    assert!(d.pending().is_empty());
    // 🦙 is F0 9F A6 99: the first three bytes are held back.
    assert_eq!(d.push_bytes(&[0xF0, 0x9F, 0xA6]), "");
    assert_eq!(d.pending(), &[0xF0, 0x9F, 0xA6]);
    assert_eq!(d.push_bytes(&[0x99, b'!']), "🦙!");
    // Invalid bytes never wait forever; an unfinished tail is flushed lossy.
    assert_eq!(d.push_bytes(&[0xFF, b'a']), "\u{fffd}a");
    assert_eq!(d.push_bytes(&[0xE2, 0x82]), "");
    assert_eq!(d.finish(), "\u{fffd}");
    assert!(d.pending().is_empty());
    // A truncated sequence followed by ASCII emits U+FFFD then the ASCII.
    assert_eq!(d.push_bytes(&[0xE2, b'x']), "\u{fffd}x");
}

#[test]
fn stream_decoder_special_tokens() {
    let t = meta();
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(t, 128009), "<|eot_id|>");
    assert_eq!(d.push(t, u32::MAX), "");
}

#[test]
fn plain_spans_keep_control_tokens_out_of_marked_text() {
    for (name, t) in both() {
        let eot = t.token_id("<|eot_id|>").unwrap();
        // Past Meta's 25,000-character chunk: the spans are offsets of the whole text.
        let long = "a".repeat(30_000);
        let text = format!("<|eot_id|> {long} <|eot_id|>x<|eot_id|>");
        let marked = 12 + long.len()..12 + long.len() + 10;
        let got = t.encode_with_plain_spans(&text, std::slice::from_ref(&marked));
        // The marked look-alike is text, encoded with its neighbours as ordinary text.
        let mut want = vec![eot];
        want.extend(t.encode(&format!(" {long} <|eot_id|>x"), false));
        want.push(eot);
        assert!(
            got == want,
            "{name}: {} ids, want {}",
            got.len(),
            want.len()
        );
        assert_eq!(t.decode_lossy(&got), text, "{name}");
        // Without spans, the same as parsing special tokens everywhere.
        let parsed = t.encode(&text, true);
        assert_eq!(parsed.iter().filter(|&&i| i == eot).count(), 3);
        assert!(t.encode_with_plain_spans(&text, &[]) == parsed, "{name}");
        // A span touching only a neighbour of a control token leaves the token alone.
        assert!(
            t.encode_with_plain_spans(&text, &[0..0, 10..11]) == parsed,
            "{name}"
        );
        // A span overlapping one byte of a control token turns it into text.
        assert_ne!(
            t.encode_with_plain_spans(&text, std::slice::from_ref(&(9..10)))
                .first(),
            Some(&eot),
            "{name}"
        );
        assert_eq!(t.control_tokens().count(), 256, "{name}");
        assert_eq!(
            t.find_control_token("ab<|eot_id|>", 0),
            Some((2, 12)),
            "{name}"
        );
    }
}
