//! `llama31 quantize` to a float type converts a checkpoint without changing the model: the GGUF it
//! writes from the tiny HF (tied, F16) and Meta (2 model-parallel shards, BF16) checkpoints scores the
//! per-token NLLs HF transformers computed for those weights (goldens/forward/nll.json, ctx 128).
//! That covers the q/k permutation, the tied embeddings and the llama3 `rope_freqs` tensor.
//! (Byte-level agreement with llama.cpp's converter and quantizer is in
//! crates/quantize/tests/llamacpp.rs.)

mod common;

use common::*;
use serde_json::Value;

fn converted_nll_matches(variant: &str, ftype: &str, reference: &str) {
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(golden("forward/nll.json")).unwrap())
            .unwrap();
    let case = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == reference && c["ctx"] == 128)
        .expect("a ctx-128 case");
    let dir =
        std::env::temp_dir().join(format!("llama31-convert-{variant}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("model.gguf");
    let src = fixture(&format!("tiny/{variant}"));
    llama31_ok(
        &[
            "quantize",
            src.to_str().unwrap(),
            out.to_str().unwrap(),
            "--type",
            ftype,
        ],
        b"",
    );
    let text = golden(&format!("forward/{}", case["text"].as_str().unwrap()));
    let got: Value = serde_json::from_str(
        llama31_ok(
            &[
                "perplexity",
                "--model",
                out.to_str().unwrap(),
                "--file",
                text.to_str().unwrap(),
                "--ctx",
                "128",
                "--json",
            ],
            b"",
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(got["tokens"], case["tokens"]);
    let want = case["nll"].as_array().unwrap();
    let nll = got["nll"].as_array().unwrap();
    assert_eq!(nll.len(), want.len());
    let worst = nll
        .iter()
        .zip(want)
        .map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs())
        .fold(0.0f64, f64::max);
    assert!(worst <= 2e-3, "{variant} → {ftype}: max |dNLL| {worst}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn hf_tied_f16_to_gguf_keeps_the_model() {
    converted_nll_matches("hf-tied", "F16", "hf-tied");
}

#[test]
fn meta_shards_to_bf16_gguf_keep_the_model() {
    converted_nll_matches("meta-mp2", "BF16", "hf-untied");
}

/// Runs `llama31 quantize SRC DIR/out.gguf --type f16` with a tmpfs of `size` bytes mounted on
/// `dir` (in a user + mount namespace of its own: no privileges needed, nothing left mounted).
/// Returns the command's output and exit code and what the tmpfs held afterwards.
fn quantize_on_tmpfs(
    src: &std::path::Path,
    dir: &std::path::Path,
    size: u64,
) -> (String, i32, String) {
    let script = r#"mount -t tmpfs -o size="$SIZE" tmpfs "$DIR" || exit 90
"$BIN" quantize "$SRC" "$DIR/out.gguf" --type f16 >"$LOG" 2>&1
echo "$?" >>"$LOG.rc"
ls -lA "$DIR" >"$LOG.ls""#;
    let log = dir.with_extension("log");
    let status = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .env("SIZE", size.to_string())
        .env("DIR", dir)
        .env("BIN", env!("CARGO_BIN_EXE_llama31"))
        .env("SRC", src)
        .env("LOG", &log)
        .status()
        .expect("unshare (util-linux) runs");
    assert!(
        status.success(),
        "could not mount a tmpfs in a namespace: {status}"
    );
    let read = |ext: &str| std::fs::read_to_string(format!("{}{ext}", log.display())).unwrap();
    let rc = read(".rc").trim().parse().unwrap();
    (read(""), rc, read(".ls"))
}

#[test]
fn a_full_disk_leaves_no_file_that_looks_complete() {
    let src = fixture("tiny/hf-tied");
    let tmp = tempfile::tempdir().unwrap();
    // The output's size, written to an ordinary directory.
    let full = tmp.path().join("full.gguf");
    llama31_ok(
        &[
            "quantize",
            src.to_str().unwrap(),
            full.to_str().unwrap(),
            "--type",
            "f16",
        ],
        b"",
    );
    let bytes = std::fs::metadata(&full).unwrap().len();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&full).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o644,
        0o644,
        "readable like any written file: {mode:o}"
    );

    // Half the room it needs: the write fails, the error says why, nothing is left.
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let (out, rc, ls) = quantize_on_tmpfs(&src, &small, (bytes / 2).max(4096));
    assert_ne!(rc, 0, "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    assert!(!ls.contains("out.gguf"), "a file is left: {ls}");
    assert!(!ls.contains(".partial"), "a temporary file is left: {ls}");

    // Room enough: the same command writes the same bytes, and only the output.
    let big = tmp.path().join("big");
    std::fs::create_dir(&big).unwrap();
    let (out, rc, ls) = quantize_on_tmpfs(&src, &big, bytes * 2 + (1 << 20));
    assert_eq!(rc, 0, "{out}");
    assert!(ls.contains("out.gguf") && !ls.contains(".partial"), "{ls}");
    assert!(ls.contains(&bytes.to_string()), "{ls}");
}
