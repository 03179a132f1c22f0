//! The hub client against a local emulator of the hub (tests/common/emulator.rs): routes,
//! redirects, headers, errors, resume, verification, offline mode, the cache layout, list, rm.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::emulator::{sha256_hex, Emulator, Repo};
use llama31_hub::{Cache, Error, Hub, HubConfig, Progress, Spec};

const TOKEN: &str = "hf_testtoken123";

/// Deterministic bytes that differ per seed.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn gguf_repo() -> Repo {
    Repo::new("test-org/Tiny-GGUF", 0xa1)
        .file("README.md", b"# tiny\n".to_vec(), false)
        .file("tiny-Q4_K_M.gguf", bytes(300_000, 1), true)
        .file("tiny-Q8_0.gguf", bytes(500_000, 2), true)
        .file("tiny-F16.gguf", bytes(200_000, 3), true)
}

fn hub(emu: &Emulator, cache: &Path, token: Option<&str>) -> Hub {
    hub_with(&emu.url, cache, token, false, 3)
}

fn hub_with(endpoint: &str, cache: &Path, token: Option<&str>, offline: bool, retries: u32) -> Hub {
    Hub::new(HubConfig {
        endpoint: endpoint.to_string(),
        token: token.map(str::to_string),
        offline,
        cache: Cache::new(cache),
        retries,
    })
    .expect("hub config is valid")
}

fn spec(s: &str) -> Spec {
    Spec::parse(s).expect("spec parses")
}

/// Records what the progress callback was told.
#[derive(Default)]
struct Recorder {
    starts: Vec<(String, Option<u64>, u64)>,
    bytes: u64,
    finished: Vec<String>,
    cached: Vec<String>,
}

impl Progress for Recorder {
    fn start(&mut self, file: &str, total: Option<u64>, from: u64) {
        self.starts.push((file.into(), total, from));
    }
    fn advance(&mut self, bytes: u64) {
        self.bytes += bytes;
    }
    fn finish(&mut self, file: &str) {
        self.finished.push(file.into());
    }
    fn cached(&mut self, file: &str) {
        self.cached.push(file.into());
    }
}

fn repo_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join(format!("models--{}", id.replace('/', "--")))
}

/// Every file name in `dir` (recursively), relative.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn quant_tag_picks_the_file_and_fills_huggingface_hubs_layout() {
    let repo = gguf_repo();
    let q8 = repo.files[2].data.clone();
    let emu = Emulator::start(vec![repo.clone()]);
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(&emu, tmp.path(), Some(TOKEN));
    let mut rec = Recorder::default();
    let got = hub
        .resolve(&spec("hf://test-org/Tiny-GGUF:q8_0"), &mut rec)
        .unwrap();

    let dir = repo_dir(tmp.path(), "test-org/Tiny-GGUF");
    let sha = sha256_hex(&q8);
    assert_eq!(got.commit, repo.commit);
    assert_eq!(
        got.path,
        dir.join("snapshots")
            .join(&repo.commit)
            .join("tiny-Q8_0.gguf")
    );
    assert_eq!(fs::read(&got.path).unwrap(), *q8);
    assert_eq!(got.downloaded, q8.len() as u64);
    // the layout huggingface_hub reads: relative symlink to the blob named by the sha256, refs/main
    let link = fs::read_link(&got.path).unwrap();
    assert_eq!(link, Path::new("../../blobs").join(&sha));
    assert_eq!(
        fs::read_to_string(dir.join("refs/main")).unwrap(),
        repo.commit
    );
    assert_eq!(
        tree(&dir),
        vec![
            format!("blobs/{sha}"),
            "refs/main".into(),
            format!("snapshots/{}/tiny-Q8_0.gguf", repo.commit)
        ]
    );
    assert_eq!(
        rec.starts,
        vec![("tiny-Q8_0.gguf".to_string(), Some(q8.len() as u64), 0)]
    );
    assert_eq!(rec.bytes, q8.len() as u64);
    assert_eq!(rec.finished, vec!["tiny-Q8_0.gguf".to_string()]);

    // the routes: API, HEAD resolve (302 not followed), GET on the CDN; the token only to the hub
    let seen = emu.seen();
    let routes: Vec<(&str, &str, &str)> = seen
        .iter()
        .map(|s| {
            (
                s.server,
                s.method.as_str(),
                s.path.split('?').next().unwrap(),
            )
        })
        .collect();
    let resolve = format!("/test-org/Tiny-GGUF/resolve/{}/tiny-Q8_0.gguf", repo.commit);
    let blob = format!("/blobs/{sha}");
    assert_eq!(
        routes,
        vec![
            ("hub", "GET", "/api/models/test-org/Tiny-GGUF/revision/main"),
            ("hub", "HEAD", resolve.as_str()),
            ("cdn", "GET", blob.as_str()),
        ]
    );
    for s in &seen {
        let auth = s.headers.get("authorization").map(String::as_str);
        match s.server {
            "hub" => assert_eq!(auth, Some(format!("Bearer {TOKEN}").as_str())),
            _ => assert_eq!(auth, None, "the token leaked to the CDN's host"),
        }
    }

    // without a tag: Q4_K_M; a second resolve downloads nothing
    let got = hub
        .resolve(&spec("hf://test-org/Tiny-GGUF"), &mut ())
        .unwrap();
    assert!(got.path.ends_with("tiny-Q4_K_M.gguf"));
    let gets = emu.content_gets().len();
    let mut rec = Recorder::default();
    let again = hub
        .resolve(&spec("test-org/Tiny-GGUF:Q8_0"), &mut rec)
        .unwrap();
    assert_eq!(again.downloaded, 0);
    assert_eq!(rec.cached, vec!["tiny-Q8_0.gguf".to_string()]);
    assert_eq!(emu.content_gets().len(), gets);

    // one file by name, a non-LFS file served by resolve itself
    let readme = hub
        .resolve(&spec("hf://test-org/Tiny-GGUF/README.md"), &mut ())
        .unwrap();
    assert_eq!(fs::read(&readme.path).unwrap(), b"# tiny\n");
}

#[test]
fn a_cut_connection_is_resumed_with_range() {
    let repo = gguf_repo();
    let data = repo.files[1].data.clone();
    let emu = Emulator::start(vec![repo]);
    emu.cut("tiny-Q4_K_M.gguf", 100_000, 1);
    let tmp = tempfile::tempdir().unwrap();
    let mut rec = Recorder::default();
    let got = hub(&emu, tmp.path(), None)
        .resolve(&spec("hf://test-org/Tiny-GGUF:Q4_K_M"), &mut rec)
        .unwrap();
    assert_eq!(sha256_hex(&fs::read(&got.path).unwrap()), sha256_hex(&data));
    let gets = emu.content_gets();
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[0].headers.get("range"), None);
    assert_eq!(
        gets[1].headers.get("range").map(String::as_str),
        Some("bytes=100000-")
    );
    assert_eq!(
        rec.starts[1].2, 100_000,
        "the second transfer starts where the first stopped"
    );
}

#[test]
fn an_interrupted_pull_leaves_only_an_incomplete_file_and_the_next_one_resumes() {
    let repo = gguf_repo();
    let data = repo.files[1].data.clone();
    let sha = sha256_hex(&data);
    let emu = Emulator::start(vec![repo.clone()]);
    emu.cut("tiny-Q4_K_M.gguf", 123_456, 10);
    let tmp = tempfile::tempdir().unwrap();
    let s = spec("hf://test-org/Tiny-GGUF");
    let err = hub_with(&emu.url, tmp.path(), None, false, 1)
        .resolve(&s, &mut ())
        .unwrap_err();
    assert!(
        matches!(err, Error::Interrupted { have: 123_456, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("run the command again to resume"),
        "{err}"
    );
    let dir = repo_dir(tmp.path(), "test-org/Tiny-GGUF");
    assert_eq!(
        tree(&dir),
        vec![format!("blobs/{sha}.incomplete"), "refs/main".to_string()]
    );
    assert_eq!(
        fs::metadata(dir.join("blobs").join(format!("{sha}.incomplete")))
            .unwrap()
            .len(),
        123_456
    );
    // nothing that looks complete: offline resolution does not find it
    let offline = hub_with("http://127.0.0.1:9", tmp.path(), None, true, 0).resolve(&s, &mut ());
    assert!(matches!(offline, Err(Error::NotCached { .. })));

    emu.heal();
    emu.clear_seen();
    let got = hub(&emu, tmp.path(), None).resolve(&s, &mut ()).unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), *data);
    let gets = emu.content_gets();
    assert_eq!(gets.len(), 1);
    assert_eq!(
        gets[0].headers.get("range").map(String::as_str),
        Some("bytes=123456-")
    );
    assert!(!dir.join("blobs").join(format!("{sha}.incomplete")).exists());
}

#[test]
fn concurrent_pulls_of_one_file_download_it_once() {
    let repo = gguf_repo();
    let data = repo.files[2].data.clone();
    let emu = Emulator::start(vec![repo]);
    let tmp = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (url, dir) = (emu.url.clone(), tmp.path().to_path_buf());
            std::thread::spawn(move || {
                let hub = hub_with(&url, &dir, None, false, 0);
                hub.resolve(&spec("hf://test-org/Tiny-GGUF:Q8_0"), &mut ())
                    .unwrap()
                    .path
            })
        })
        .collect();
    for t in threads {
        assert_eq!(fs::read(t.join().unwrap()).unwrap(), *data);
    }
    assert_eq!(emu.content_gets().len(), 1);
    let lock = tmp
        .path()
        .join(".locks/models--test-org--Tiny-GGUF")
        .join(format!("{}.lock", sha256_hex(&data)));
    assert!(lock.exists(), "the lock huggingface_hub takes too");
}

#[test]
fn a_server_that_ignores_range_gets_a_full_restart() {
    let repo = gguf_repo();
    let data = repo.files[1].data.clone();
    let emu = Emulator::start(vec![repo]);
    emu.cut("tiny-Q4_K_M.gguf", 50_000, 1);
    emu.ignore_range(true);
    let tmp = tempfile::tempdir().unwrap();
    let got = hub(&emu, tmp.path(), None)
        .resolve(&spec("hf://test-org/Tiny-GGUF"), &mut ())
        .unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), *data);
    let gets = emu.content_gets();
    assert_eq!(gets.len(), 2);
    assert!(gets[1].headers.contains_key("range"));
}

#[test]
fn corrupted_bytes_fail_the_sha256_and_leave_nothing() {
    let emu = Emulator::start(vec![gguf_repo()]);
    emu.corrupt("tiny-F16.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let err = hub(&emu, tmp.path(), None)
        .resolve(&spec("hf://test-org/Tiny-GGUF:F16"), &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::ShaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("sha256"), "{err}");
    let dir = repo_dir(tmp.path(), "test-org/Tiny-GGUF");
    assert_eq!(
        tree(&dir),
        vec!["refs/main".to_string()],
        "no blob, no partial, no snapshot entry"
    );
}

#[test]
fn gated_repos_need_the_token_and_say_how_to_get_access() {
    let mut repo = gguf_repo();
    repo.gated = Some(TOKEN.into());
    let emu = Emulator::start(vec![repo]);
    let tmp = tempfile::tempdir().unwrap();
    let s = spec("hf://test-org/Tiny-GGUF:Q8_0");
    let err = hub(&emu, tmp.path(), None)
        .resolve(&s, &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::Gated { status: 401, .. }), "{err}");
    let msg = err.to_string();
    for needle in [
        "gated",
        "accept the license",
        "HF_TOKEN",
        "settings/tokens",
        "no token was sent",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    let err = hub(&emu, tmp.path(), Some("hf_wrong"))
        .resolve(&s, &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::Gated { status: 403, .. }), "{err}");
    assert!(err.to_string().contains("refused"), "{err}");
    hub(&emu, tmp.path(), Some(TOKEN))
        .resolve(&s, &mut ())
        .unwrap();
}

#[test]
fn missing_repos_files_and_quants_are_named() {
    let emu = Emulator::start(vec![gguf_repo()]);
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(&emu, tmp.path(), None);
    let err = hub
        .resolve(&spec("hf://test-org/Nope"), &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("RepoNotFound"), "{err}");
    let err = hub
        .resolve(&spec("hf://test-org/Tiny-GGUF/missing.gguf"), &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = hub
        .resolve(&spec("hf://test-org/Tiny-GGUF:Q2_K"), &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::QuantNotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("tiny-Q8_0.gguf"),
        "lists what there is: {err}"
    );
    let err = hub
        .resolve(&spec("hf://test-org/Tiny-GGUF@v9"), &mut ())
        .unwrap_err();
    assert!(err.to_string().contains("RevisionNotFound"), "{err}");
}

#[test]
fn a_renamed_repo_is_followed_through_relative_redirects() {
    let repo = gguf_repo();
    let q8 = repo.files[2].data.clone();
    let emu = Emulator::start(vec![repo]);
    emu.rename("old-org/Tiny-GGUF", "test-org/Tiny-GGUF");
    let tmp = tempfile::tempdir().unwrap();
    let got = hub(&emu, tmp.path(), Some(TOKEN))
        .resolve(&spec("hf://old-org/Tiny-GGUF:Q8_0"), &mut ())
        .unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), *q8);
    assert!(
        got.path
            .starts_with(repo_dir(tmp.path(), "old-org/Tiny-GGUF")),
        "cached under the name asked for"
    );
    let heads: Vec<String> = emu
        .seen()
        .into_iter()
        .filter(|s| s.method == "HEAD")
        .map(|s| s.path)
        .collect();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(heads[0].starts_with("/old-org/Tiny-GGUF/resolve/"));
    assert!(heads[1].starts_with("/test-org/Tiny-GGUF/resolve/"));
    // same host: the token follows a relative redirect
    assert!(emu
        .seen()
        .iter()
        .filter(|s| s.server == "hub")
        .all(|s| s.headers.contains_key("authorization")));
}

#[test]
fn answers_the_client_cannot_use_are_typed_errors() {
    let emu = Emulator::start(vec![gguf_repo()]);
    let tmp = tempfile::tempdir().unwrap();
    let s = spec("hf://test-org/Tiny-GGUF:Q8_0");
    emu.break_api(true);
    let err = hub(&emu, tmp.path(), None)
        .resolve(&s, &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::BadResponse { .. }), "{err}");
    emu.break_api(false);
    emu.drop_commit_header(true);
    let err = hub(&emu, tmp.path(), None)
        .resolve(&s, &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::BadResponse { .. }), "{err}");
    assert!(err.to_string().contains("X-Repo-Commit"), "{err}");
    assert!(
        !repo_dir(tmp.path(), "test-org/Tiny-GGUF")
            .join("blobs")
            .exists(),
        "nothing downloaded"
    );
    // the file list is read up to 32 MiB: valid JSON after 33 MiB of padding is refused, after
    // 1 MiB it is read
    emu.drop_commit_header(false);
    emu.pad_api(33 << 20);
    let err = hub(&emu, tmp.path(), None)
        .resolve(&s, &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::BadResponse { .. }), "{err}");
    assert!(err.to_string().contains("larger than 32 MiB"), "{err}");
    emu.pad_api(1 << 20);
    hub(&emu, tmp.path(), None).resolve(&s, &mut ()).unwrap();
}

#[test]
fn unsafe_file_names_from_the_server_are_refused() {
    let repo = Repo::new("evil/repo", 0x0e).file("../../escape.gguf", bytes(10, 9), true);
    let emu = Emulator::start(vec![repo]);
    let tmp = tempfile::tempdir().unwrap();
    let err = hub(&emu, tmp.path(), None)
        .resolve(&spec("hf://evil/repo"), &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::UnsafePath(_)), "{err}");
    assert!(!tmp.path().join("escape.gguf").exists());
}

#[test]
fn offline_mode_and_an_unreachable_hub_use_the_cache() {
    let emu = Emulator::start(vec![gguf_repo()]);
    let tmp = tempfile::tempdir().unwrap();
    let online = hub(&emu, tmp.path(), None)
        .resolve(&spec("hf://test-org/Tiny-GGUF:Q8_0"), &mut ())
        .unwrap();
    let dead = "http://127.0.0.1:9";
    let offline = hub_with(dead, tmp.path(), None, true, 0);
    let got = offline
        .resolve(&spec("hf://test-org/Tiny-GGUF:q8_0"), &mut ())
        .unwrap();
    assert_eq!(got.path, online.path);
    assert_eq!(got.commit, online.commit);
    // without a tag offline picks among the cached files
    assert_eq!(
        offline
            .resolve(&spec("hf://test-org/Tiny-GGUF"), &mut ())
            .unwrap()
            .path,
        online.path
    );
    let err = offline
        .resolve(&spec("hf://test-org/Tiny-GGUF:F16"), &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::NotCached { .. }), "{err}");
    assert!(err.to_string().contains("HF_HUB_OFFLINE"), "{err}");
    let err = offline
        .resolve(&spec("hf://other/repo"), &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::NotCached { .. }), "{err}");
    // not offline, but no hub: the cache answers
    let unreachable = hub_with(dead, tmp.path(), None, false, 0);
    assert_eq!(
        unreachable
            .resolve(&spec("hf://test-org/Tiny-GGUF:Q8_0"), &mut ())
            .unwrap()
            .path,
        online.path
    );
    let err = unreachable
        .resolve(&spec("hf://test-org/Tiny-GGUF:F16"), &mut ())
        .unwrap_err();
    assert!(matches!(err, Error::Network { .. }), "{err}");
}

/// What `huggingface_hub.hf_hub_download` leaves, written by hand.
fn python_layout(cache: &Path, id: &str, commit: &str, files: &[(&str, &[u8])]) {
    let dir = repo_dir(cache, id);
    fs::create_dir_all(dir.join("blobs")).unwrap();
    fs::create_dir_all(dir.join("refs")).unwrap();
    fs::write(dir.join("refs/main"), commit).unwrap();
    for (name, data) in files {
        let sha = sha256_hex(data);
        fs::write(dir.join("blobs").join(&sha), data).unwrap();
        let link = dir.join("snapshots").join(commit).join(name);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        let up = "../".repeat(2 + name.matches('/').count());
        std::os::unix::fs::symlink(format!("{up}blobs/{sha}"), &link).unwrap();
    }
}

#[test]
fn a_cache_filled_by_python_is_reused_without_downloading() {
    let repo = gguf_repo();
    let q8 = repo.files[2].data.clone();
    let tmp = tempfile::tempdir().unwrap();
    python_layout(
        tmp.path(),
        &repo.id,
        &repo.commit,
        &[("tiny-Q8_0.gguf", &q8)],
    );
    let offline = hub_with("http://127.0.0.1:9", tmp.path(), None, true, 0);
    let got = offline
        .resolve(&spec("hf://test-org/Tiny-GGUF:Q8_0"), &mut ())
        .unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), *q8);
    let emu = Emulator::start(vec![repo]);
    let mut rec = Recorder::default();
    let online = hub(&emu, tmp.path(), None)
        .resolve(&spec("hf://test-org/Tiny-GGUF:Q8_0"), &mut rec)
        .unwrap();
    assert_eq!(online.path, got.path);
    assert_eq!(rec.cached, vec!["tiny-Q8_0.gguf".to_string()]);
    let seen = emu.seen();
    assert_eq!(seen.len(), 1, "only the API call: {seen:?}");
    assert!(seen[0].path.starts_with("/api/models/"));
}

fn safetensors_repo() -> Repo {
    let index = serde_json::json!({
        "metadata": {"total_size": 3000},
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "model.norm.weight": "model-00002-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors"
        }
    });
    Repo::new("meta-test/Llama-Tiny", 0x5a)
        .file(
            ".gitattributes",
            b"*.safetensors filter=lfs\n".to_vec(),
            false,
        )
        .file("config.json", b"{\"model_type\":\"llama\"}".to_vec(), false)
        .file("generation_config.json", b"{}".to_vec(), false)
        .file("model-00001-of-00002.safetensors", bytes(1000, 11), true)
        .file("model-00002-of-00002.safetensors", bytes(2000, 12), true)
        .file(
            "model.safetensors.index.json",
            index.to_string().into_bytes(),
            false,
        )
        .file("tokenizer.json", b"{\"model\":{}}".to_vec(), false)
        .file("tokenizer_config.json", b"{}".to_vec(), false)
        .file("unused-extra.bin", bytes(5000, 13), true)
        .file("original/params.json", b"{\"dim\":64}".to_vec(), false)
        .file("original/tokenizer.model", b"tok".to_vec(), true)
        .file("original/consolidated.00.pth", bytes(3000, 14), true)
}

#[test]
fn safetensors_shards_come_from_the_index_and_original_gets_metas_files() {
    let repo = safetensors_repo();
    let emu = Emulator::start(vec![repo.clone()]);
    let tmp = tempfile::tempdir().unwrap();
    let hub = hub(&emu, tmp.path(), None);
    let got = hub
        .resolve(&spec("hf://meta-test/Llama-Tiny"), &mut ())
        .unwrap();
    let snap = repo_dir(tmp.path(), &repo.id)
        .join("snapshots")
        .join(&repo.commit);
    assert_eq!(got.path, snap);
    let expected = [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ];
    assert_eq!(tree(&snap), expected);
    for f in &repo.files {
        if expected.contains(&f.name.as_str()) {
            assert_eq!(fs::read(snap.join(&f.name)).unwrap(), *f.data, "{}", f.name);
        }
    }
    let meta = hub
        .resolve(&spec("hf://meta-test/Llama-Tiny/original"), &mut ())
        .unwrap();
    assert_eq!(meta.path, snap.join("original"));
    assert_eq!(
        tree(&snap.join("original")),
        ["consolidated.00.pth", "params.json", "tokenizer.model"]
    );
    // offline, the index's shards must be there
    let offline = hub_with("http://127.0.0.1:9", tmp.path(), None, true, 0);
    assert_eq!(
        offline
            .resolve(&spec("hf://meta-test/Llama-Tiny"), &mut ())
            .unwrap()
            .files
            .len(),
        7
    );
    fs::remove_file(snap.join("model-00002-of-00002.safetensors")).unwrap();
    assert!(matches!(
        offline.resolve(&spec("hf://meta-test/Llama-Tiny"), &mut ()),
        Err(Error::NotCached { .. })
    ));
}

#[test]
fn list_describes_the_cache_and_rm_removes_one_repo_only() {
    let emu = Emulator::start(vec![gguf_repo(), safetensors_repo()]);
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("hub");
    let hub = hub(&emu, &cache_dir, None);
    hub.resolve(&spec("hf://test-org/Tiny-GGUF:Q8_0"), &mut ())
        .unwrap();
    hub.resolve(&spec("hf://test-org/Tiny-GGUF:F16"), &mut ())
        .unwrap();
    hub.resolve(&spec("hf://meta-test/Llama-Tiny"), &mut ())
        .unwrap();
    hub.resolve(&spec("hf://meta-test/Llama-Tiny/original"), &mut ())
        .unwrap();
    fs::write(cache_dir.join("version.txt"), "1").unwrap();

    let list = hub.cache().list().unwrap();
    let ids: Vec<String> = list.iter().map(|r| r.repo.to_string()).collect();
    assert_eq!(ids, ["meta-test/Llama-Tiny", "test-org/Tiny-GGUF"]);
    let gguf = &list[1];
    assert_eq!(gguf.formats(), ["GGUF F16", "GGUF Q8_0"]);
    assert_eq!(gguf.size, 700_000);
    assert_eq!(gguf.snapshots.len(), 1);
    assert_eq!(gguf.snapshots[0].refs, ["main"]);
    assert_eq!(gguf.snapshots[0].files, ["tiny-F16.gguf", "tiny-Q8_0.gguf"]);
    assert_eq!(list[0].formats(), ["safetensors", "Meta"]);
    assert_eq!(list[0].snapshots[0].files.len(), 10);

    // rm: that folder and nothing else
    let (removed, size) = hub
        .cache()
        .remove(&"test-org/Tiny-GGUF".parse_repo())
        .unwrap();
    assert_eq!(size, 700_000);
    assert!(!removed.exists());
    assert!(repo_dir(&cache_dir, "meta-test/Llama-Tiny").exists());
    assert!(cache_dir.join("version.txt").exists());
    let err = hub
        .cache()
        .remove(&"test-org/Tiny-GGUF".parse_repo())
        .unwrap_err();
    assert!(matches!(err, Error::RepoNotCached { .. }), "{err}");

    // a repo folder that is a link out of the cache is refused, its target untouched
    let outside = tmp.path().join("precious");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("keep"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, repo_dir(&cache_dir, "a/b")).unwrap();
    let err = hub.cache().remove(&"a/b".parse_repo()).unwrap_err();
    assert!(matches!(err, Error::OutsideCache(_)), "{err}");
    assert!(outside.join("keep").exists());
}

trait ParseRepo {
    fn parse_repo(&self) -> llama31_hub::RepoId;
}

impl ParseRepo for &str {
    fn parse_repo(&self) -> llama31_hub::RepoId {
        llama31_hub::RepoId::parse(self).unwrap()
    }
}

#[test]
fn configuration_comes_from_huggingface_hubs_variables() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("token"), "hf_fromfile\n").unwrap();
    // the only test that touches the environment
    std::env::set_var("HF_HOME", tmp.path());
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:1234/mirror/");
    std::env::set_var("HF_HUB_OFFLINE", "1");
    std::env::remove_var("HF_TOKEN");
    std::env::remove_var("HUGGING_FACE_HUB_TOKEN");
    std::env::remove_var("HF_HUB_CACHE");
    std::env::remove_var("HUGGINGFACE_HUB_CACHE");
    std::env::remove_var("HF_TOKEN_PATH");
    let c = HubConfig::from_env();
    assert_eq!(c.endpoint, "http://127.0.0.1:1234/mirror/");
    assert_eq!(c.token.as_deref(), Some("hf_fromfile"));
    assert!(c.offline);
    assert_eq!(c.cache.root(), tmp.path().join("hub"));
    std::env::set_var("HF_TOKEN", "hf_fromenv");
    std::env::set_var("HF_HUB_CACHE", tmp.path().join("elsewhere"));
    std::env::set_var("HF_HUB_OFFLINE", "0");
    let c = HubConfig::from_env();
    assert_eq!(c.token.as_deref(), Some("hf_fromenv"));
    assert!(!c.offline);
    assert_eq!(c.cache.root(), tmp.path().join("elsewhere"));
}

#[test]
fn the_endpoint_is_the_base_of_every_request() {
    // HF_ENDPOINT pointing at the emulator: every request goes there
    let emu = Emulator::start(vec![gguf_repo()]);
    let tmp = tempfile::tempdir().unwrap();
    let endpoint = format!("{}/", emu.url);
    hub_with(&endpoint, tmp.path(), None, false, 0)
        .resolve(&spec("hf://test-org/Tiny-GGUF:F16"), &mut ())
        .unwrap();
    assert!(emu
        .seen()
        .iter()
        .any(|s| s.path == "/api/models/test-org/Tiny-GGUF/revision/main"));
    let err = Hub::new(HubConfig {
        endpoint: "ftp://example".into(),
        token: None,
        offline: false,
        cache: Cache::new(tmp.path()),
        retries: 0,
    });
    assert!(matches!(err, Err(Error::Config(_))));
}
