//! Helpers shared by the CLI integration tests: paths to fixtures and goldens, running the binary.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fixture cache filled by `scripts/fetch-fixtures.sh` (and `make-tiny-models.py`).
pub fn cache() -> PathBuf {
    match std::env::var_os("LLAMA31_CACHE") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/llama31")
        }
    }
}

/// A fixture file that must exist; the message says how to get it.
pub fn fixture(rel: &str) -> PathBuf {
    let p = cache().join(rel);
    assert!(
        p.exists(),
        "missing fixture {} — run scripts/fetch-fixtures.sh (and scripts/setup-python.sh + scripts/make-tiny-models.py for tiny/)",
        p.display()
    );
    p
}

/// A committed golden file.
pub fn golden(rel: &str) -> PathBuf {
    let p = repo().join("goldens").join(rel);
    assert!(p.exists(), "missing golden file {}", p.display());
    p
}

/// Reads a JSON-lines file into values.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("golden file is readable");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("golden line is JSON"))
        .collect()
}

/// Runs `llama31 ARGS` with `stdin` as standard input.
pub fn llama31(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llama31"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("llama31 starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("llama31 runs");
    writer.join().expect("stdin writer");
    out
}

/// Runs `llama31 ARGS`, asserts success and returns stdout as text.
pub fn llama31_ok(args: &[&str], stdin: &[u8]) -> String {
    let out = llama31(args, stdin);
    assert!(
        out.status.success(),
        "llama31 {:?} failed ({}): {}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Runs `llama31 ARGS`, asserts it fails with exit code 2 and a message on stderr, returns stderr.
pub fn llama31_err(args: &[&str], stdin: &[u8]) -> String {
    let out = llama31(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "llama31 {:?} should fail with exit code 2, got {} (stderr: {})",
        args,
        out.status,
        stderr
    );
    assert!(
        !stderr.contains("panicked"),
        "llama31 {args:?} panicked: {stderr}"
    );
    assert!(stderr.contains("error:"), "no error message: {stderr}");
    stderr
}

/// A temporary file whose name ends with `name` (so its extension tells its format), holding
/// `bytes`; deleted when dropped.
pub fn temp_file(name: &str, bytes: &[u8]) -> tempfile::TempPath {
    let f = tempfile::Builder::new()
        .prefix("llama31-test-")
        .suffix(name)
        .tempfile()
        .unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f.into_temp_path()
}

/// A copy of SmolLM2's GGUF tokenizer metadata (no tensors) with `changes` applied, written to a
/// temporary file (deleted when dropped).
pub fn smollm2_vocab_gguf(
    name: &str,
    changes: &[(&str, llama31_formats::GgufValue)],
) -> tempfile::TempPath {
    let src = llama31_formats::GgufFile::open(fixture("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let mut w = llama31_formats::GgufWriter::new();
    for (key, value) in src.metadata() {
        if key.starts_with("tokenizer.") || key == "general.architecture" {
            match changes.iter().find(|(k, _)| k == key) {
                Some((_, v)) => w.add_metadata(key.clone(), v.clone()),
                None => w.add_metadata(key.clone(), value.clone()),
            };
        }
    }
    for (k, v) in changes {
        if !src.contains_key(k) {
            w.add_metadata(k.to_string(), v.clone());
        }
    }
    temp_file(name, &w.to_bytes().unwrap())
}

/// `llama31 serve ARGS --port 0` in the background: the child and the `host:port` it listens on,
/// once it has said the model is loaded. Its log keeps being drained so it never blocks.
pub fn spawn_serve(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_llama31"))
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("llama31 serve starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.expect("serve log is text");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_string);
        }
        if line.contains("ready") || line.starts_with("error") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, addr.expect("serve printed its address"))
}

/// One HTTP/1.1 request on a new connection (`Connection: close`): status and body.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).expect("server accepts");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}
