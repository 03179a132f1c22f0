//! `llama31 info`: paths that are not a model fail before anything is printed about a format; the report of a model.

mod common;

use common::{cache, fixture, llama31, llama31_err, llama31_ok, temp_file};

#[test]
fn a_text_file_is_not_a_model_and_no_format_is_printed() {
    let p = temp_file("notes.txt", b"Some notes.\nNothing to see here.\n");
    let out = llama31(&["info", "--model", p.to_str().unwrap()], b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("format:"), "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    let err = llama31_err(&["info", "--model", p.to_str().unwrap()], b"");
    assert!(err.contains("notes.txt is not a model"), "{err}");
    for not in [
        "not GGUF",
        "not safetensors",
        "not a tiktoken tokenizer.model",
        "not a tokenizer.json",
    ] {
        assert!(err.contains(not), "{not:?} missing: {err}");
    }
    assert!(!err.contains("a tokenizer, not a model"), "{err}");
}

#[test]
fn a_config_json_random_bytes_and_empty_dirs_are_errors() {
    let cfg = temp_file("config.json", br#"{"architectures": ["LlamaForCausalLM"]}"#);
    let err = llama31_err(&["info", "--model", cfg.to_str().unwrap()], b"");
    assert!(err.contains("not a tokenizer.json"), "{err}");
    let random: Vec<u8> = (0..2048u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let bin = temp_file("random.bin", &random);
    let err = llama31_err(&["info", "--model", bin.to_str().unwrap()], b"");
    assert!(err.contains("is not a model"), "{err}");
    let empty = temp_file("empty.gguf", b"");
    let err = llama31_err(&["info", "--model", empty.to_str().unwrap()], b"");
    assert!(err.contains("empty"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err = llama31_err(&["info", "--model", dir.path().to_str().unwrap()], b"");
    assert!(err.contains("the directory is empty"), "{err}");
    std::fs::copy(fixture("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    let err = llama31_err(&["info", "--model", dir.path().to_str().unwrap()], b"");
    assert!(err.contains("tokenizer.json but no weights"), "{err}");
}

#[test]
fn a_tokenizer_is_described_and_not_loaded_as_a_model() {
    let out = llama31_ok(
        &[
            "info",
            "--model",
            fixture("tokenizer.model").to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.contains("format: tokenizer.model (tiktoken)"), "{out}");
    assert!(!out.contains("config:"), "{out}");
}

#[test]
fn a_tokenizer_is_not_a_model_to_run() {
    let err = llama31_err(
        &[
            "run",
            "--model",
            fixture("tokenizer.json").to_str().unwrap(),
            "--prompt",
            "hi",
        ],
        b"",
    );
    assert!(err.contains("which holds no weights"), "{err}");
}

#[test]
fn model_directories_and_files_are_described() {
    let tiny = cache().join("tiny");
    for (rel, format) in [
        ("hf-tied", "format: Hugging Face model directory"),
        ("hf-tied/model.safetensors", "format: safetensors file"),
        ("meta", "format: Meta checkpoint directory"),
        ("llama31-tiny-bf16.gguf", "format: GGUF"),
    ] {
        let p = tiny.join(rel);
        if !p.exists() {
            eprintln!("skipping {rel}: fixture missing");
            continue;
        }
        let out = llama31_ok(&["info", "--model", p.to_str().unwrap()], b"");
        assert!(out.contains(format), "{rel}: {out}");
        assert!(out.contains("config:"), "{rel}: {out}");
    }
}

/// The report reads as text (no Rust debug output), shows the whole chat template, and nothing
/// of the loader lands on stderr between its lines.
#[test]
fn the_report_is_plain_text_with_the_whole_template() {
    let m = fixture("SmolLM2-135M-Instruct.Q4_1.gguf");
    let out = llama31(&["info", "--model", m.to_str().unwrap()], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("begin-of-text: 1 \"<|im_start|>\" (not added to prompts)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("end-of-generation: 2 \"<|im_end|>\", 0 \"<|endoftext|>\""),
        "{stdout}"
    );
    assert!(!stdout.contains("Some("), "{stdout}");
    // The template's last line is there, indented under its heading.
    assert!(
        stdout.contains("chat format: Jinja template (368 bytes):\n    {% for message"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n    ' }}{% endif %}\nconfig:"),
        "{stdout}"
    );
    assert!(!stderr.contains("loaded"), "{stderr}");
    let tiny = cache().join("tiny/meta");
    let out = llama31_ok(&["info", "--model", tiny.to_str().unwrap()], b"");
    assert!(
        out.contains("rope scaling: llama3, factor 8, low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192"),
        "{out}"
    );
}
