//! `llama31 pull`, `--model hf://...`, `list` and `rm` against a local emulator of the Hugging
//! Face hub (the hub crate's tests/common/emulator.rs), with the tiny model's real GGUF.

mod common;
#[path = "../../hub/tests/common/emulator.rs"]
mod emulator;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use emulator::{sha256_hex, Emulator, Repo};

const TOKEN: &str = "hf_clitest42";
const REPO: &str = "test-org/llama31-tiny-GGUF";

/// Runs `llama31 ARGS` with the hub variables pointed at `home` and `endpoint` (nothing
/// inherited from the caller's environment).
fn run(args: &[&str], home: &Path, endpoint: &str, extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llama31"));
    cmd.args(args).stdin(Stdio::null());
    for var in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "HF_TOKEN_PATH",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HF_HOME", home).env("HF_ENDPOINT", endpoint);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("llama31 runs")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `info`'s report up to the memory plan (which depends on the memory free right now), with
/// `path` written as PATH.
fn report(text: &str, path: &Path) -> String {
    let text = text.replace(&path.display().to_string(), "PATH");
    text.lines()
        .take_while(|l| !l.starts_with("memory plan"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn pull_info_offline_list_and_rm_with_the_tiny_gguf() {
    let fixture = common::fixture("tiny/llama31-tiny-bf16.gguf");
    let data = std::fs::read(&fixture).unwrap();
    let mut repo = Repo::new(REPO, 0x7e)
        .file("README.md", b"tiny\n".to_vec(), false)
        .file("llama31-tiny-BF16.gguf", data.clone(), true);
    repo.gated = Some(TOKEN.into());
    let emu = Emulator::start(vec![repo.clone()]);
    let home = tempfile::tempdir().unwrap();
    let token = [("HF_TOKEN", TOKEN)];

    // gated: without the token the error says what to do
    let out = run(&["pull", REPO], home.path(), &emu.url, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HTTP 401") && err.contains("HF_TOKEN") && err.contains("accept the license"),
        "{err}"
    );
    emu.clear_seen();

    // pull prints the snapshot path; the file is the fixture, byte for byte
    let stdout = ok(
        run(
            &["pull", &format!("hf://{REPO}:bf16")],
            home.path(),
            &emu.url,
            &token,
        ),
        "pull",
    );
    let path = PathBuf::from(stdout.trim());
    let expected = home
        .path()
        .join("hub/models--test-org--llama31-tiny-GGUF/snapshots")
        .join(&repo.commit)
        .join("llama31-tiny-BF16.gguf");
    assert_eq!(path, expected);
    assert_eq!(
        sha256_hex(&std::fs::read(&path).unwrap()),
        sha256_hex(&data)
    );
    assert!(emu.seen().iter().filter(|s| s.server == "hub").all(|s| s
        .headers
        .get("authorization")
        .map(String::as_str)
        == Some("Bearer hf_clitest42")));
    assert!(emu
        .seen()
        .iter()
        .filter(|s| s.server == "cdn")
        .all(|s| !s.headers.contains_key("authorization")));

    // info on the spec reports what info on the fixture reports
    let local = ok(
        run(
            &["info", "--model", fixture.to_str().unwrap()],
            home.path(),
            &emu.url,
            &[],
        ),
        "info",
    );
    let spec = format!("hf://{REPO}");
    let remote = ok(
        run(&["info", "--model", &spec], home.path(), &emu.url, &token),
        "info hf://",
    );
    assert!(remote.contains("format: GGUF"), "{remote}");
    assert_eq!(report(&remote, &path), report(&local, &fixture));
    // and tokenize through the same entry point
    let tok_local = ok(
        run(
            &["tokenize", "--model", fixture.to_str().unwrap()],
            home.path(),
            &emu.url,
            &[],
        ),
        "tok",
    );
    let tok_remote = ok(
        run(
            &["tokenize", "--model", &spec],
            home.path(),
            &emu.url,
            &token,
        ),
        "tok hf://",
    );
    assert_eq!(tok_local, tok_remote);
    assert_eq!(emu.content_gets().len(), 1, "the file was downloaded once");

    // offline: no hub at all
    emu.clear_seen();
    let offline = [("HF_HUB_OFFLINE", "1")];
    let again = ok(
        run(
            &["info", "--model", &spec],
            home.path(),
            "http://127.0.0.1:9",
            &offline,
        ),
        "offline info",
    );
    assert_eq!(report(&again, &path), report(&local, &fixture));
    let out = run(
        &["info", "--model", "hf://test-org/other:Q4_K_M"],
        home.path(),
        "http://127.0.0.1:9",
        &offline,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the cache"));
    assert!(emu.seen().is_empty());

    // list, then rm
    let list = ok(run(&["list"], home.path(), &emu.url, &[]), "list");
    let row = list
        .lines()
        .find(|l| l.starts_with(REPO))
        .unwrap_or_else(|| panic!("{list}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "main");
    assert_eq!(cols[2], &repo.commit[..8]);
    assert_eq!(cols[3], "1");
    assert!(row.ends_with("GGUF BF16"), "{row}");
    let out = run(
        &["rm", "hf://test-org/llama31-tiny-GGUF:BF16"],
        home.path(),
        &emu.url,
        &[],
    );
    assert!(!out.status.success(), "rm takes a repo, not a file");
    ok(run(&["rm", REPO], home.path(), &emu.url, &[]), "rm");
    assert!(!home
        .path()
        .join("hub/models--test-org--llama31-tiny-GGUF")
        .exists());
    let list = run(&["list"], home.path(), &emu.url, &[]);
    assert!(String::from_utf8_lossy(&list.stderr).contains("no models"));
}

/// A repo file from a fixture file (LFS when large, as the hub stores weights and big tokenizers).
fn from_fixture(repo: Repo, name: &str, path: &Path) -> Repo {
    let data = std::fs::read(path).unwrap();
    let lfs = data.len() > 1_000_000;
    repo.file(name, data, lfs)
}

#[test]
fn safetensors_and_meta_repos_load_through_hf_specs() {
    let hf = common::fixture("tiny/hf-tied");
    let meta = common::fixture("tiny/meta");
    let mut repo =
        Repo::new("test-org/llama31-tiny", 0x3c).file("README.md", b"tiny\n".to_vec(), false);
    for name in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        repo = from_fixture(repo, name, &hf.join(name));
    }
    for name in ["consolidated.00.pth", "params.json", "tokenizer.model"] {
        repo = from_fixture(repo, &format!("original/{name}"), &meta.join(name));
    }
    let emu = Emulator::start(vec![repo.clone()]);
    let home = tempfile::tempdir().unwrap();
    let snapshot = home
        .path()
        .join("hub/models--test-org--llama31-tiny/snapshots")
        .join(&repo.commit);

    let spec = "hf://test-org/llama31-tiny";
    let remote = ok(
        run(&["info", "--model", spec], home.path(), &emu.url, &[]),
        "info hf://",
    );
    let local = ok(
        run(
            &["info", "--model", hf.to_str().unwrap()],
            home.path(),
            &emu.url,
            &[],
        ),
        "info",
    );
    assert!(remote.contains("safetensors"), "{remote}");
    assert_eq!(report(&remote, &snapshot), report(&local, &hf));
    assert!(
        !snapshot.join("original").exists(),
        "the safetensors model does not fetch original/"
    );

    let spec = "hf://test-org/llama31-tiny/original";
    let remote = ok(
        run(&["info", "--model", spec], home.path(), &emu.url, &[]),
        "info hf:// original",
    );
    let local = ok(
        run(
            &["info", "--model", meta.to_str().unwrap()],
            home.path(),
            &emu.url,
            &[],
        ),
        "info",
    );
    assert_eq!(
        report(&remote, &snapshot.join("original")),
        report(&local, &meta)
    );
    assert!(!snapshot.join("README.md").exists());
}
