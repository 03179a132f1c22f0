//! A local stand-in for the Hugging Face hub on 127.0.0.1: the model-info API, `resolve` with
//! LFS files 302-redirected to a second server (another port, like the CDN), `Range` requests,
//! gated repos, 404s with `X-Error-Code`, and faults on demand (a connection cut after some
//! bytes, corrupted bytes, `Range` ignored). It records every request it sees.
//!
//! Shared by the hub crate's tests and the CLI's (`#[path]`-included there).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// A file in an emulated repo.
#[derive(Clone)]
pub struct RepoFile {
    pub name: String,
    pub data: Arc<Vec<u8>>,
    /// Stored in LFS: redirected to the CDN, ETag = sha256.
    pub lfs: bool,
}

/// An emulated repo.
#[derive(Clone)]
pub struct Repo {
    pub id: String,
    pub commit: String,
    pub files: Vec<RepoFile>,
    /// The token that may read it; requests without it get 401, with another 403.
    pub gated: Option<String>,
}

impl Repo {
    pub fn new(id: &str, commit_seed: u8) -> Repo {
        Repo {
            id: id.into(),
            commit: format!("{commit_seed:02x}").repeat(20),
            files: Vec::new(),
            gated: None,
        }
    }

    pub fn file(mut self, name: &str, data: Vec<u8>, lfs: bool) -> Repo {
        self.files.push(RepoFile {
            name: name.into(),
            data: Arc::new(data),
            lfs,
        });
        self
    }
}

/// A request as the emulator saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `hub` or `cdn`.
    pub server: &'static str,
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    repos: Vec<Repo>,
    /// file name → (bytes sent before the cut, how many more GETs to cut).
    cut: HashMap<String, (usize, usize)>,
    /// Files whose bytes are served corrupted.
    corrupt: Vec<String>,
    ignore_range: bool,
    /// (old id, new id): requests under the old id get a relative 307 to the new one.
    renamed: Vec<(String, String)>,
    /// The model-info API answers something that is not JSON.
    broken_api: bool,
    /// The model-info API answers valid JSON after this many bytes of leading whitespace.
    padded_api: usize,
    /// `resolve` answers without `X-Repo-Commit`.
    no_commit_header: bool,
    seen: Vec<Seen>,
    cdn: String,
}

/// The running emulator (its threads live as long as the test process).
#[derive(Clone)]
pub struct Emulator {
    /// The hub's base URL (what HF_ENDPOINT is set to).
    pub url: String,
    /// The CDN's base URL.
    pub cdn: String,
    state: Arc<Mutex<State>>,
}

/// Lowercase hex sha256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Emulator {
    pub fn start(repos: Vec<Repo>) -> Emulator {
        let hub = TcpListener::bind("127.0.0.1:0").expect("bind hub");
        let cdn = TcpListener::bind("127.0.0.1:0").expect("bind cdn");
        let url = format!("http://127.0.0.1:{}", hub.local_addr().unwrap().port());
        let cdn_url = format!("http://127.0.0.1:{}", cdn.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State {
            repos,
            cdn: cdn_url.clone(),
            ..State::default()
        }));
        for (listener, server) in [(hub, "hub"), (cdn, "cdn")] {
            let state = state.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let state = state.clone();
                    std::thread::spawn(move || serve(stream, server, &state));
                }
            });
        }
        Emulator {
            url,
            cdn: cdn_url,
            state,
        }
    }

    /// Cuts the connection after `bytes` bytes of `file` for the next `times` GETs.
    pub fn cut(&self, file: &str, bytes: usize, times: usize) {
        self.state
            .lock()
            .unwrap()
            .cut
            .insert(file.into(), (bytes, times));
    }

    pub fn corrupt(&self, file: &str) {
        self.state.lock().unwrap().corrupt.push(file.into());
    }

    pub fn heal(&self) {
        let mut s = self.state.lock().unwrap();
        s.cut.clear();
        s.corrupt.clear();
    }

    /// Requests for `old` are redirected (307, relative Location) to `new`, as for a renamed repo.
    pub fn rename(&self, old: &str, new: &str) {
        self.state
            .lock()
            .unwrap()
            .renamed
            .push((old.into(), new.into()));
    }

    pub fn break_api(&self, yes: bool) {
        self.state.lock().unwrap().broken_api = yes;
    }

    pub fn pad_api(&self, bytes: usize) {
        self.state.lock().unwrap().padded_api = bytes;
    }

    pub fn drop_commit_header(&self, yes: bool) {
        self.state.lock().unwrap().no_commit_header = yes;
    }

    pub fn ignore_range(&self, yes: bool) {
        self.state.lock().unwrap().ignore_range = yes;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn clear_seen(&self) {
        self.state.lock().unwrap().seen.clear();
    }

    /// GETs of file contents (the CDN, or resolve of non-LFS files).
    pub fn content_gets(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == "GET" && (s.server == "cdn" || s.path.contains("/resolve/")))
            .collect()
    }
}

fn serve(stream: TcpStream, server: &'static str, state: &Mutex<State>) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = match (parts.next(), parts.next()) {
        (Some(m), Some(p)) => (m.to_string(), p.to_string()),
        _ => return,
    };
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let seen = Seen {
        server,
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
    };
    state.lock().unwrap().seen.push(seen);
    let mut out = stream;
    let reply = if server == "hub" {
        hub_route(&method, &path, &headers, state)
    } else {
        cdn_route(&path, &headers, state)
    };
    let head = method == "HEAD";
    let Reply {
        status,
        headers,
        body,
        cut,
    } = reply;
    let mut text = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    for (k, v) in &headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers.iter().any(|(k, _)| k == "Content-Length") {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let _ = out.write_all(text.as_bytes());
    if !head {
        let n = cut.unwrap_or(body.len()).min(body.len());
        let _ = out.write_all(&body[..n]);
    }
    let _ = out.flush();
    let _ = out.shutdown(std::net::Shutdown::Both);
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cut: Option<usize>,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.as_bytes().to_vec(),
        cut: None,
    }
}

fn not_found(code: &str) -> Reply {
    let mut r = reply(404, &format!("{{\"error\":\"{code}\"}}"));
    r.headers.push(("X-Error-Code".into(), code.into()));
    r
}

fn hub_route(
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
    state: &Mutex<State>,
) -> Reply {
    let s = state.lock().unwrap();
    let auth = headers.get("authorization").cloned();
    let gate = |repo: &Repo| -> Option<Reply> {
        let token = repo.gated.as_ref()?;
        match &auth {
            None => Some(reply(
                401,
                "{\"error\":\"Access to this repo is restricted\"}",
            )),
            Some(a) if *a != format!("Bearer {token}") => {
                Some(reply(403, "{\"error\":\"not in the authorized list\"}"))
            }
            Some(_) => None,
        }
    };
    for (old, new) in &s.renamed {
        for prefix in ["/api/models/", "/"] {
            if let Some(rest) = path.strip_prefix(&format!("{prefix}{old}/")) {
                let mut r = reply(307, "");
                r.headers
                    .push(("Location".into(), format!("{prefix}{new}/{rest}")));
                return r;
            }
        }
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((id, rev)) = rest.split_once("/revision/") else {
            return not_found("RepoNotFound");
        };
        let Some(repo) = s.repos.iter().find(|r| r.id == id) else {
            return not_found("RepoNotFound");
        };
        if let Some(r) = gate(repo) {
            return r;
        }
        if rev != "main" && rev != repo.commit {
            return not_found("RevisionNotFound");
        }
        if s.broken_api {
            return reply(200, "<html>not json");
        }
        let siblings: Vec<serde_json::Value> = repo
            .files
            .iter()
            .map(|f| serde_json::json!({ "rfilename": f.name }))
            .collect();
        let body = serde_json::json!({ "id": repo.id, "sha": repo.commit, "siblings": siblings });
        let mut bytes = vec![b' '; s.padded_api];
        bytes.extend(body.to_string().into_bytes());
        return Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: bytes,
            cut: None,
        };
    }
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    if parts.len() < 5 || parts[2] != "resolve" {
        return not_found("RepoNotFound");
    }
    let id = format!("{}/{}", parts[0], parts[1]);
    let Some(repo) = s.repos.iter().find(|r| r.id == id) else {
        return not_found("RepoNotFound");
    };
    if let Some(r) = gate(repo) {
        return r;
    }
    if parts[3] != "main" && parts[3] != repo.commit {
        return not_found("RevisionNotFound");
    }
    let Some(file) = repo.files.iter().find(|f| f.name == parts[4]) else {
        return not_found("EntryNotFound");
    };
    let sha = sha256_hex(&file.data);
    let mut h = vec![("X-Repo-Commit".to_string(), repo.commit.clone())];
    if s.no_commit_header {
        h.clear();
    }
    if file.lfs {
        h.push(("X-Linked-Etag".into(), format!("\"{sha}\"")));
        h.push(("X-Linked-Size".into(), file.data.len().to_string()));
        h.push(("ETag".into(), "W/\"redirect-etag\"".into()));
        h.push((
            "Location".into(),
            format!("{}/blobs/{sha}?file={}", s.cdn, file.name),
        ));
        return Reply {
            status: 302,
            headers: h,
            body: Vec::new(),
            cut: None,
        };
    }
    h.push(("ETag".into(), format!("\"{}\"", &sha[..40])));
    let _ = method;
    Reply {
        status: 200,
        headers: h,
        body: file.data.to_vec(),
        cut: None,
    }
}

fn cdn_route(path: &str, headers: &HashMap<String, String>, state: &Mutex<State>) -> Reply {
    let mut s = state.lock().unwrap();
    let Some(sha) = path
        .strip_prefix("/blobs/")
        .map(|p| p.split('?').next().unwrap_or(p).to_string())
    else {
        return reply(404, "no such blob");
    };
    let Some(file) = s
        .repos
        .iter()
        .flat_map(|r| &r.files)
        .find(|f| sha256_hex(&f.data) == sha)
        .cloned()
    else {
        return reply(404, "no such blob");
    };
    let mut data = file.data.to_vec();
    if s.corrupt.contains(&file.name) {
        let mid = data.len() / 2;
        data[mid] ^= 0xff;
    }
    let cut = match s.cut.get_mut(&file.name) {
        Some((bytes, times)) if *times > 0 => {
            *times -= 1;
            Some(*bytes)
        }
        _ => None,
    };
    let range = headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    match range {
        Some(from) if !s.ignore_range && from < data.len() => {
            let body = data[from..].to_vec();
            let cut = cut.map(|c| c.saturating_sub(from));
            let total = data.len();
            Reply {
                status: 206,
                headers: vec![(
                    "Content-Range".into(),
                    format!("bytes {from}-{}/{total}", total - 1),
                )],
                body,
                cut,
            }
        }
        Some(_) if !s.ignore_range => reply(416, ""),
        _ => Reply {
            status: 200,
            headers: vec![],
            body: data,
            cut,
        },
    }
}
