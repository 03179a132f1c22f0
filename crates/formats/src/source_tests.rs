//! Detection of every kind of model source, and clear errors for everything else.

use super::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gguf_bytes() -> Vec<u8> {
    let mut w = crate::GgufWriter::new();
    w.add_metadata("general.architecture", "llama".to_string());
    w.to_bytes().unwrap()
}

fn safetensors_bytes() -> Vec<u8> {
    let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&1.0f32.to_le_bytes());
    out
}

const TIKTOKEN: &[u8] = b"IQ== 0\nIg== 1\nIw== 2\nJA== 3\n";
const TOKENIZER_JSON: &[u8] =
    br#"{"version": "1.0", "added_tokens": [{"id": 0, "content": "}\"{"}],
  "normalizer": null, "model": {"type": "BPE", "vocab": {}, "merges": []}}"#;
const CONFIG_JSON: &[u8] = br#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}"#;

fn kind(path: &Path) -> SourceKind {
    match detect_source(path) {
        Ok(s) => s.kind(),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn error(path: &Path) -> String {
    match detect_source(path) {
        Ok(s) => panic!("{} detected as {:?}", path.display(), s.kind()),
        Err(e @ FormatError::NotAModel { .. }) => e.to_string(),
        Err(e) => panic!("{}: not NotAModel: {e}", path.display()),
    }
}

#[test]
fn every_kind_of_file_is_detected_by_content() {
    let t = tempfile::tempdir().unwrap();
    // Names say nothing: content decides.
    assert_eq!(
        kind(&write(t.path(), "a.bin", &gguf_bytes())),
        SourceKind::Gguf
    );
    let st = write(t.path(), "b.bin", &safetensors_bytes());
    assert_eq!(kind(&st), SourceKind::Safetensors);
    assert_eq!(
        kind(&write(t.path(), "c.txt", TIKTOKEN)),
        SourceKind::TiktokenModel
    );
    assert_eq!(
        kind(&write(t.path(), "d", TOKENIZER_JSON)),
        SourceKind::TokenizerJson
    );
    let s = detect_source(&st).unwrap();
    assert_eq!(s.weights(), Some(WeightFormat::Safetensors));
    assert_eq!(s.dir(), t.path());
    assert_eq!(
        s.tokenizer(),
        TokenizerLocation::HfJson(t.path().join("tokenizer.json"))
    );
}

#[test]
fn model_directories_are_detected() {
    let hf = tempfile::tempdir().unwrap();
    write(hf.path(), "config.json", CONFIG_JSON);
    write(hf.path(), "model.safetensors", &safetensors_bytes());
    write(hf.path(), "tokenizer.json", TOKENIZER_JSON);
    let s = detect_source(hf.path()).unwrap();
    assert_eq!(s.kind(), SourceKind::HfDir);
    assert_eq!(s.dir(), hf.path());

    let meta = tempfile::tempdir().unwrap();
    write(meta.path(), "params.json", br#"{"dim": 64, "n_layers": 1}"#);
    write(
        meta.path(),
        "consolidated.00.pth",
        b"PK\x03\x04rest of a zip",
    );
    write(meta.path(), "tokenizer.model", TIKTOKEN);
    let s = detect_source(meta.path()).unwrap();
    assert_eq!(s.kind(), SourceKind::MetaDir);
    assert_eq!(
        s.tokenizer(),
        TokenizerLocation::Tiktoken(meta.path().join("tokenizer.model"))
    );
    // A consolidated.00.pth that is not a zip is named.
    write(meta.path(), "consolidated.00.pth", b"not a zip");
    let e = error(meta.path());
    assert!(e.contains("no zip signature"), "{e}");
}

#[test]
fn a_text_file_is_not_a_model_nor_a_tokenizer() {
    let t = tempfile::tempdir().unwrap();
    let p = write(
        t.path(),
        "notes.txt",
        b"Some notes.\nNothing to see here.\n",
    );
    let e = error(&p);
    assert!(e.contains("notes.txt is not a model"), "{e}");
    for not in [
        "not GGUF",
        "not safetensors",
        "not a tiktoken tokenizer.model",
        "not a tokenizer.json",
        "expected a .gguf",
    ] {
        assert!(e.contains(not), "{not:?} missing: {e}");
    }
    // Base64-looking words are not enough for tiktoken.
    let p = write(t.path(), "words.txt", b"abcd efgh\n");
    error(&p);
}

#[test]
fn random_bytes_and_empty_files_are_errors() {
    let t = tempfile::tempdir().unwrap();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let e = error(&write(t.path(), "random.bin", &random));
    assert!(e.contains("not GGUF"), "{e}");
    let e = error(&write(t.path(), "empty.gguf", b""));
    assert!(e.contains("empty"), "{e}");
    // A GGUF name with a short or wrong start is not GGUF.
    let e = error(&write(t.path(), "short.gguf", b"GG"));
    assert!(e.contains("no GGUF magic"), "{e}");
    // A safetensors length prefix larger than the file is not safetensors.
    let mut bad = safetensors_bytes();
    bad[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    error(&write(t.path(), "bad.safetensors", &bad));
}

#[test]
fn a_config_json_alone_is_not_a_tokenizer() {
    let t = tempfile::tempdir().unwrap();
    let e = error(&write(t.path(), "config.json", CONFIG_JSON));
    assert!(e.contains("not a tokenizer.json"), "{e}");
    assert!(e.contains("config.json: give the directory"), "{e}");
    let e = error(&write(t.path(), "params.json", br#"{"dim": 4096}"#));
    assert!(e.contains("Meta params.json"), "{e}");
    // A cut-off tokenizer.json is not one either.
    error(&write(t.path(), "broken.json", b"{\"model\": "));
}

#[test]
fn directories_without_a_model_are_errors() {
    let empty = tempfile::tempdir().unwrap();
    let e = error(empty.path());
    assert!(e.contains("the directory is empty"), "{e}");

    let tok = tempfile::tempdir().unwrap();
    write(tok.path(), "tokenizer.json", TOKENIZER_JSON);
    let e = error(tok.path());
    assert!(e.contains("tokenizer.json but no weights"), "{e}");

    let cfg = tempfile::tempdir().unwrap();
    write(cfg.path(), "config.json", CONFIG_JSON);
    let e = error(cfg.path());
    assert!(e.contains("config.json but no *.safetensors"), "{e}");
    write(cfg.path(), "model.safetensors", &safetensors_bytes());
    assert_eq!(kind(cfg.path()), SourceKind::HfDir);

    let params = tempfile::tempdir().unwrap();
    write(params.path(), "params.json", br#"{"dim": 64}"#);
    let e = error(params.path());
    assert!(e.contains("params.json but no consolidated.00.pth"), "{e}");
    write(params.path(), "consolidated.01.pth", b"PK\x03\x04");
    let e = error(params.path());
    assert!(e.contains("no consolidated.00.pth"), "{e}");

    let other = tempfile::tempdir().unwrap();
    write(other.path(), "README.md", b"# hi\n");
    let e = error(other.path());
    assert!(e.contains("neither *.safetensors"), "{e}");
}

#[test]
fn missing_paths_are_io_errors() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope");
    assert!(matches!(
        detect_source(&missing),
        Err(FormatError::Io { .. })
    ));
}

#[test]
fn a_tokenizer_is_not_weights() {
    let t = tempfile::tempdir().unwrap();
    let p = write(t.path(), "tokenizer.model", TIKTOKEN);
    let e = crate::detect(&p).unwrap_err().to_string();
    assert!(
        e.contains("tokenizer.model (tiktoken), which holds no weights"),
        "{e}"
    );
}

#[test]
fn only_a_prefix_is_read_of_a_large_tiktoken_file() {
    let t = tempfile::tempdir().unwrap();
    let mut big = Vec::new();
    let mut rank = 0usize;
    while big.len() < 3 * PREFIX_LEN {
        big.extend_from_slice(format!("QUJDRA== {rank}\n").as_bytes());
        rank += 1;
    }
    // A line that is cut at the prefix's end does not spoil the detection.
    assert_eq!(
        kind(&write(t.path(), "big.model", &big)),
        SourceKind::TiktokenModel
    );
}

#[test]
fn the_fixtures_are_detected() {
    let Some(home) = std::env::var_os("HOME") else {
        return;
    };
    let cache = PathBuf::from(home).join(".cache/llama31");
    let cases = [
        ("tokenizer.model", SourceKind::TiktokenModel),
        ("tokenizer.json", SourceKind::TokenizerJson),
        ("SmolLM2-135M-Instruct.F32.gguf", SourceKind::Gguf),
        ("tiny/hf-untied", SourceKind::HfDir),
        ("tiny/hf-tied", SourceKind::HfDir),
        ("tiny/hf-tied/model.safetensors", SourceKind::Safetensors),
        ("tiny/meta", SourceKind::MetaDir),
        ("tiny/meta-mp2", SourceKind::MetaDir),
    ];
    for (rel, want) in cases {
        let p = cache.join(rel);
        if p.exists() {
            assert_eq!(kind(&p), want, "{rel}");
        }
    }
}
