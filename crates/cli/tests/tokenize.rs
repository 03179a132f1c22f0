//! `llama31 tokenize` against Meta's tokenizer (llama-models + tiktoken) and llama.cpp, from every source.

mod common;

use common::*;

/// Tokenizes the golden corpus through the CLI and compares line by line with `expected`.
fn check_corpus(model: &str, expected_file: &str) {
    let corpus = std::fs::read(golden("tokenizer/corpus.jsonl")).expect("corpus readable");
    let out = llama31_ok(&["tokenize", "--model", model, "--jsonl"], &corpus);
    let expected = read_jsonl(&golden(expected_file));
    let corpus_lines: Vec<&str> = std::str::from_utf8(&corpus)
        .expect("corpus is UTF-8")
        .lines()
        .collect();
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), expected.len(), "one output line per corpus line");
    assert!(
        expected.len() >= 3000,
        "the corpus has at least 3,000 strings"
    );
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let g: serde_json::Value = serde_json::from_str(g).expect("output line is JSON");
        if &g != e {
            let text: String = serde_json::from_str::<String>(corpus_lines[i])
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect();
            panic!("{model}: line {i} differs for {text:?}:\n got {g}\nwant {e}");
        }
    }
}

#[test]
fn meta_tokenizer_model_matches_meta() {
    let p = fixture("tokenizer.model");
    check_corpus(p.to_str().unwrap(), "tokenizer/llama3_ids.jsonl");
}

#[test]
fn hf_tokenizer_json_matches_meta() {
    let p = fixture("tokenizer.json");
    check_corpus(p.to_str().unwrap(), "tokenizer/llama3_ids.jsonl");
}

#[test]
fn gguf_llama3_vocab_matches_meta() {
    // Written by llama.cpp's convert_hf_to_gguf.py from the Llama 3.1 tokenizer.json.
    let p = fixture("tiny/llama31-tiny-bf16.gguf");
    check_corpus(p.to_str().unwrap(), "tokenizer/llama3_ids.jsonl");
}

#[test]
fn smollm2_gguf_matches_llama_cpp() {
    let p = fixture("SmolLM2-135M-Instruct.Q4_1.gguf");
    check_corpus(p.to_str().unwrap(), "tokenizer/smollm2_ids.jsonl");
}

#[test]
fn bos_flag_prepends_begin_of_text() {
    let p = fixture("tokenizer.model");
    let out = llama31_ok(
        &["tokenize", "--model", p.to_str().unwrap(), "--bos"],
        b"Hello",
    );
    // Meta's test_tokenizer.py: encode("This is a test sentence.", bos=True) starts with 128000.
    let ids: Vec<u32> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids[0], 128000);
    assert_eq!(ids.len(), 2);
}

#[test]
fn special_looking_text_is_ordinary_unless_asked() {
    let p = fixture("tokenizer.model");
    let plain = llama31_ok(&["tokenize", "--model", p.to_str().unwrap()], b"<|eot_id|>");
    let ids: Vec<u32> = serde_json::from_str(plain.trim()).unwrap();
    assert!(ids.len() > 1 && !ids.contains(&128009), "{ids:?}");
    let special = llama31_ok(
        &["tokenize", "--model", p.to_str().unwrap(), "--special"],
        b"<|eot_id|>",
    );
    let ids: Vec<u32> = serde_json::from_str(special.trim()).unwrap();
    assert_eq!(ids, vec![128009]);
}

#[test]
fn corrupt_tokenizer_model_is_a_clear_error() {
    let cases: [(&str, &[u8], &str); 4] = [
        ("bad-base64.model", b"IQ== 0\n!!!notbase64 1\n", "base64"),
        ("bad-rank.model", b"IQ== 0\nIg== one\n", "rank"),
        ("dup-rank.model", b"IQ== 0\nIg== 0\n", "rank"),
        ("no-rank.model", b"IQ==\n", "line"),
    ];
    for (name, bytes, needle) in cases {
        let p = temp_file(name, bytes);
        let err = llama31_err(&["tokenize", "--model", p.to_str().unwrap()], b"hi");
        assert!(
            err.to_lowercase().contains(needle),
            "{name}: error should mention {needle}: {err}"
        );
    }
}

#[test]
fn missing_and_unsupported_tokenizers_are_clear_errors() {
    let err = llama31_err(
        &["tokenize", "--model", "/nonexistent/tokenizer.model"],
        b"",
    );
    assert!(err.contains("/nonexistent"), "{err}");
    let wordpiece = br#"{"model": {"type": "WordPiece", "vocab": {"a": 0}}, "added_tokens": []}"#;
    let p = temp_file("wordpiece.json", wordpiece);
    let err = llama31_err(&["tokenize", "--model", p.to_str().unwrap()], b"hi");
    assert!(err.contains("WordPiece"), "{err}");
    let p = temp_file("broken.json", b"{\"model\": ");
    llama31_err(&["tokenize", "--model", p.to_str().unwrap()], b"hi");
    let err = llama31_err(
        &[
            "tokenize",
            "--model",
            fixture("tokenizer.model").to_str().unwrap(),
            "--jsonl",
        ],
        b"not json\n",
    );
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn unsupported_gguf_tokenizers_are_clear_errors() {
    let cases = [
        ("spm.gguf", "tokenizer.ggml.model", "llama"),
        ("bert.gguf", "tokenizer.ggml.model", "bert"),
        ("pre.gguf", "tokenizer.ggml.pre", "no-such-pre-tokenizer"),
    ];
    for (name, key, value) in cases {
        let p = smollm2_vocab_gguf(name, &[(key, value.to_string().into())]);
        let err = llama31_err(&["tokenize", "--model", p.to_str().unwrap()], b"hello");
        assert!(
            err.contains(value),
            "{name}: error should name {value:?}: {err}"
        );
    }
    // A GGUF without any tokenizer.
    let p = temp_file("no-tokenizer.gguf", &{
        let mut w = llama31_formats::GgufWriter::new();
        w.add_metadata("general.architecture", "llama".to_string());
        w.to_bytes().unwrap()
    });
    let err = llama31_err(&["tokenize", "--model", p.to_str().unwrap()], b"hello");
    assert!(err.contains("tokenizer"), "{err}");
}
