//! Corrupt or unsupported tokenizer files give typed errors, never panics.

use llama31_tokenizer::{GgufVocab, Tokenizer, TokenizerError};

/// A tiny valid tokenizer.model: all 256 bytes plus "ab".
fn tiny_model() -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = String::new();
    for b in 0..=255u8 {
        s.push_str(&format!("{} {}\n", b64.encode([b]), b));
    }
    s.push_str(&format!("{} 256\n", b64.encode(b"ab")));
    s
}

fn tiktoken(s: &str) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::from_tiktoken_bytes(s.as_bytes())
}

#[test]
fn tiny_tiktoken_model_works() {
    let t = tiktoken(&tiny_model()).unwrap();
    assert_eq!(t.vocab_size(), 257 + 256);
    assert_eq!(t.encode("abc", false), vec![256, u32::from(b'c')]);
    assert_eq!(t.bos_id(), Some(257));
    assert_eq!(t.token_id("<|eot_id|>"), Some(257 + 9));
}

#[test]
fn empty_file() {
    assert!(matches!(tiktoken(""), Err(TokenizerError::Empty)));
    assert!(matches!(tiktoken("\n\n  \n"), Err(TokenizerError::Empty)));
}

#[test]
fn bad_base64() {
    let s = format!("{}!!!notbase64 257\n", tiny_model());
    assert!(
        matches!(tiktoken(&s), Err(TokenizerError::BadBase64 { line: 258 })),
        "{:?}",
        tiktoken(&s).err()
    );
}

#[test]
fn bad_rank() {
    let s = format!("{}YWJj x7\n", tiny_model());
    assert!(matches!(
        tiktoken(&s),
        Err(TokenizerError::BadRank { line: 258 })
    ));
    let s = format!("{}YWJj -1\n", tiny_model());
    assert!(matches!(
        tiktoken(&s),
        Err(TokenizerError::BadRank { line: 258 })
    ));
    let s = format!("{}YWJj 99999999999999\n", tiny_model());
    assert!(matches!(tiktoken(&s), Err(TokenizerError::BadRank { .. })));
}

#[test]
fn duplicate_rank() {
    let s = format!("{}YWJj 256\n", tiny_model());
    assert!(matches!(
        tiktoken(&s),
        Err(TokenizerError::DuplicateRank { rank: 256 })
    ));
}

#[test]
fn duplicate_token() {
    let s = format!("{}YWI= 257\n", tiny_model());
    assert!(matches!(
        tiktoken(&s),
        Err(TokenizerError::DuplicateToken { .. })
    ));
}

#[test]
fn line_without_space() {
    let s = format!("{}YWJj\n", tiny_model());
    assert!(matches!(
        tiktoken(&s),
        Err(TokenizerError::BadLine { line: 258 })
    ));
    let s = format!("{}YWJj 257 9\n", tiny_model());
    assert!(matches!(
        tiktoken(&s),
        Err(TokenizerError::BadLine { line: 258 })
    ));
}

#[test]
fn rank_gap_and_missing_byte() {
    let s = format!("{}YWJj 1000\n", tiny_model());
    assert!(matches!(
        tiktoken(&s),
        Err(TokenizerError::RankOutOfRange { rank: 1000, .. })
    ));
    let s: String = tiny_model()
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(matches!(
        tiktoken(&s),
        Err(TokenizerError::MissingByteToken { byte: 0 })
            | Err(TokenizerError::RankOutOfRange { .. })
    ));
}

#[test]
fn not_utf8_and_missing_file() {
    assert!(matches!(
        Tokenizer::from_tiktoken_bytes(&[0xff, 0xfe, b' ', b'1']),
        Err(TokenizerError::NotUtf8)
    ));
    let e = Tokenizer::from_tiktoken_file(std::path::Path::new("/nonexistent/tokenizer.model"));
    assert!(matches!(e, Err(TokenizerError::Io { .. })));
    let e = Tokenizer::from_hf_json_file(std::path::Path::new("/nonexistent/tokenizer.json"));
    assert!(matches!(e, Err(TokenizerError::Io { .. })));
}

fn hf(json: &str) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::from_hf_json_bytes(json.as_bytes())
}

const PRE: &str =
    r#"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#;

fn hf_doc(model: &str, pre: &str) -> String {
    format!(
        r#"{{"version":"1.0","added_tokens":[{{"id":3,"content":"<|end|>","special":true}}],"normalizer":null,"pre_tokenizer":{pre},"post_processor":null,"decoder":{{"type":"ByteLevel"}},"model":{model}}}"#
    )
}

const BPE_MODEL: &str = r#"{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}"#;

#[test]
fn hf_minimal_bpe_works_both_merge_forms() {
    let t = hf(&hf_doc(BPE_MODEL, PRE)).unwrap();
    assert_eq!(t.encode("abab", false), vec![2, 2]);
    assert_eq!(t.encode("ab<|end|>", true), vec![2, 3]);
    assert_eq!(
        t.encode("<|end|>", false),
        Vec::<u32>::new(),
        "'<' etc. are not in this vocab"
    );
    let arr = BPE_MODEL.replace(r#"["a b"]"#, r#"[["a","b"]]"#);
    let t = hf(&hf_doc(&arr, PRE)).unwrap();
    assert_eq!(t.encode("abab", false), vec![2, 2]);
}

#[test]
fn hf_unsupported_models() {
    for ty in ["WordPiece", "Unigram", "WordLevel"] {
        let m = format!(r#"{{"type":"{ty}","vocab":{{}}}}"#);
        match hf(&hf_doc(&m, PRE)) {
            Err(TokenizerError::UnsupportedModel(name)) => assert_eq!(name, ty),
            other => panic!("{ty}: {:?}", other.err()),
        }
    }
}

#[test]
fn hf_unsupported_pre_tokenizer_and_normalizer() {
    let pre = r#"{"type":"Metaspace","replacement":"▁"}"#;
    assert!(
        matches!(hf(&hf_doc(BPE_MODEL, pre)), Err(TokenizerError::UnsupportedPreTokenizer(n)) if n == "Metaspace")
    );
    let pre = r#"{"type":"Split","pattern":{"Regex":"a"},"behavior":"Removed","invert":false}"#;
    assert!(matches!(
        hf(&hf_doc(BPE_MODEL, pre)),
        Err(TokenizerError::UnsupportedPreTokenizer(_))
    ));
    let doc =
        hf_doc(BPE_MODEL, PRE).replace(r#""normalizer":null"#, r#""normalizer":{"type":"NFC"}"#);
    assert!(matches!(hf(&doc), Err(TokenizerError::UnsupportedNormalizer(n)) if n == "NFC"));
    let doc = hf_doc(BPE_MODEL, PRE).replace(
        r#""decoder":{"type":"ByteLevel"}"#,
        r#""decoder":{"type":"Metaspace"}"#,
    );
    assert!(matches!(
        hf(&doc),
        Err(TokenizerError::UnsupportedDecoder(_))
    ));
    let pre =
        r#"{"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated","invert":false}"#;
    let doc = hf_doc(
        BPE_MODEL,
        &format!(r#"{{"type":"Sequence","pretokenizers":[{pre},{PRE}]}}"#),
    );
    assert!(matches!(hf(&doc), Err(TokenizerError::BadRegex { .. })));
}

#[test]
fn hf_bad_json() {
    assert!(matches!(
        hf("{not json"),
        Err(TokenizerError::InvalidJson(_))
    ));
    assert!(matches!(hf(""), Err(TokenizerError::InvalidJson(_))));
    assert!(matches!(hf("[]"), Err(TokenizerError::InvalidHfJson(_))));
    assert!(matches!(
        hf(
            r#"{"model":{"type":"BPE","vocab":[],"merges":[]},"pre_tokenizer":{"type":"ByteLevel"}}"#
        ),
        Err(TokenizerError::InvalidHfJson(_))
    ));
    let m = r#"{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[7]}"#;
    assert!(matches!(
        hf(&hf_doc(m, PRE)),
        Err(TokenizerError::InvalidHfJson(_))
    ));
    let m = r#"{"type":"BPE","vocab":{"a":0,"b":99999999999},"merges":[]}"#;
    assert!(matches!(
        hf(&hf_doc(m, PRE)),
        Err(TokenizerError::InvalidHfJson(_))
    ));
}

fn gguf(model: &str, pre: Option<&str>) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::from_gguf_vocab(GgufVocab {
        model: model.into(),
        pre: pre.map(str::to_string),
        tokens: vec!["a".into(), "b".into(), "ab".into(), "<s>".into()],
        token_types: vec![1, 1, 1, 3],
        merges: vec!["a b".into()],
        bos_id: Some(3),
        ..Default::default()
    })
}

#[test]
fn gguf_models_and_pre_names() {
    assert!(
        matches!(gguf("llama", Some("default")), Err(TokenizerError::UnsupportedModel(m)) if m == "llama")
    );
    assert!(matches!(gguf("bert", None), Err(TokenizerError::UnsupportedModel(m)) if m == "bert"));
    assert!(
        matches!(gguf("gpt2", Some("no-such-pre")), Err(TokenizerError::UnsupportedPreTokenizer(p)) if p == "no-such-pre")
    );
    for pre in [
        "llama-bpe",
        "llama3",
        "smollm",
        "gpt2",
        "gpt-2",
        "default",
        "qwen2",
        "dbrx",
        "starcoder",
        "refact",
        "falcon",
        "deepseek-llm",
        "deepseek-coder",
        "mpt",
        "olmo",
        "tekken",
        "gpt-4o",
    ] {
        let t = gguf("gpt2", Some(pre)).unwrap_or_else(|e| panic!("{pre}: {e}"));
        assert_eq!(t.encode("ab", false), vec![2], "{pre}");
        assert_eq!(t.encode("<s>", true), vec![3], "{pre}");
    }
    assert!(gguf("gpt2", Some("llama-bpe")).unwrap().add_bos());
    assert!(!gguf("gpt2", Some("smollm")).unwrap().add_bos());
}

#[test]
fn gguf_bad_vocab() {
    let base = GgufVocab {
        model: "gpt2".into(),
        pre: Some("gpt2".into()),
        ..Default::default()
    };
    assert!(matches!(
        Tokenizer::from_gguf_vocab(base.clone()),
        Err(TokenizerError::InvalidVocab(_))
    ));
    let v = GgufVocab {
        tokens: vec!["a".into(), "a".into()],
        ..base.clone()
    };
    assert!(matches!(
        Tokenizer::from_gguf_vocab(v),
        Err(TokenizerError::DuplicateToken { .. })
    ));
    let v = GgufVocab {
        tokens: vec!["a".into()],
        token_types: vec![1, 1],
        ..base.clone()
    };
    assert!(matches!(
        Tokenizer::from_gguf_vocab(v),
        Err(TokenizerError::InvalidVocab(_))
    ));
    // Out-of-range special ids and malformed merges are ignored, not fatal.
    let v = GgufVocab {
        tokens: vec!["a".into()],
        merges: vec!["nospace".into(), " ".into(), "x y".into()],
        bos_id: Some(7),
        eos_id: Some(u32::MAX),
        ..base
    };
    let t = Tokenizer::from_gguf_vocab(v).unwrap();
    assert_eq!(t.bos_id(), None);
    assert!(t.eos_ids().is_empty());
    assert_eq!(
        t.encode("a?a", false),
        vec![0, 0],
        "unknown bytes are dropped like llama.cpp"
    );
}

/// GGUF user-defined tokens (type 4) are matched even without allow_special, as llama.cpp does
/// (`tokenizer_st_partition` only skips CONTROL/UNKNOWN when parse_special is false); control
/// tokens (type 3) only with allow_special.
#[test]
fn gguf_user_defined_always_matched() {
    let t = Tokenizer::from_gguf_vocab(GgufVocab {
        model: "gpt2".into(),
        pre: Some("gpt2".into()),
        tokens: vec![
            "<".into(),
            "u".into(),
            ">".into(),
            "<u>".into(),
            "<c>".into(),
            "c".into(),
        ],
        token_types: vec![1, 1, 1, 4, 3, 1],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.encode("<u>", false), vec![3]);
    assert_eq!(t.encode("<c>", false), vec![0, 5, 2]);
    assert_eq!(t.encode("<c><u>", true), vec![4, 3]);
    assert!(t.is_special(3) && t.is_special(4) && !t.is_special(0));
}
