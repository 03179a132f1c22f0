//! The hub's HTTP routes, as `huggingface_hub` uses them: `GET /api/models/{repo}/revision/{rev}`
//! for the commit and the file list, `HEAD /{repo}/resolve/{rev}/{file}` for `X-Repo-Commit`,
//! the ETag (the sha256 of LFS files) and the size, and `GET` of the file (after the 302 to the
//! CDN) with `Range` to resume.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

use crate::error::{Error, Result};
use crate::spec::{safe_component, safe_rel_path, RepoId};

/// The largest API answer read (a repo's file list); more is an error, not an allocation.
const MAX_API_JSON: u64 = 32 << 20;
const MAX_REDIRECTS: usize = 10;

/// Download progress, one file at a time (the library prints nothing itself).
pub trait Progress {
    /// A transfer of `file` starts (again, after an interruption) at byte `from` of `total`.
    fn start(&mut self, _file: &str, _total: Option<u64>, _from: u64) {}
    /// `bytes` more arrived.
    fn advance(&mut self, _bytes: u64) {}
    /// `file` is complete and verified.
    fn finish(&mut self, _file: &str) {}
    /// `file` was already in the cache.
    fn cached(&mut self, _file: &str) {}
}

impl Progress for () {}

/// What `HEAD resolve/...` says about a file.
#[derive(Clone, Debug)]
pub(crate) struct FileMeta {
    pub repo: RepoId,
    pub commit: String,
    pub etag: String,
    pub size: Option<u64>,
    /// Where to GET it: the redirect's target, or the resolve URL.
    pub url: String,
}

/// A blocking client for one endpoint.
pub struct Client {
    agent: ureq::Agent,
    endpoint: Url,
    token: Option<String>,
    retries: u32,
}

enum Transfer {
    Retry(String),
    Fatal(Error),
}

impl Client {
    /// A client for `endpoint` (`https://huggingface.co` or a mirror), sending `token` as
    /// `Authorization: Bearer` to the endpoint's origin only; an interrupted transfer is resumed
    /// `retries` times before giving up.
    pub fn new(endpoint: &str, token: Option<String>, retries: u32) -> Result<Client> {
        let endpoint = Url::parse(endpoint.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Error::Config(format!("HF_ENDPOINT {endpoint:?} is not an http(s) URL"))
            })?;
        if let Some(t) = &token {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::Config(
                    "HF_TOKEN (or $HF_HOME/token) holds characters a token cannot have; paste it again".into(),
                ));
            }
        }
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(60))
            .user_agent(concat!("llama31/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent,
            endpoint,
            token,
            retries,
        })
    }

    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| {
                Error::Config(format!("HF_ENDPOINT {} cannot take a path", self.endpoint))
            })?
            .pop_if_empty()
            .extend(segments.iter().flat_map(|s| s.split('/')));
        Ok(url)
    }

    /// Sends a request, following redirects (all of them, or only relative ones as the hub's
    /// metadata requests do); the token goes only to the endpoint's origin, never to the host a
    /// redirect leads to (the CDN).
    fn send(
        &self,
        method: &str,
        start: &Url,
        range: Option<u64>,
        follow_all: bool,
    ) -> Result<ureq::Response> {
        let mut url = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self
                .agent
                .request(method, url.as_str())
                .set("Accept-Encoding", "identity");
            if let Some(from) = range {
                req = req.set("Range", &format!("bytes={from}-"));
            }
            if let Some(token) = &self.token {
                if url.origin() == self.endpoint.origin() {
                    req = req.set("Authorization", &format!("Bearer {token}"));
                } else {
                    tracing::debug!(
                        "not sending the token to {}",
                        url.origin().ascii_serialization()
                    );
                }
            }
            let resp = match req.call() {
                Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    let text = t.to_string();
                    let message = text.strip_prefix(&format!("{url}: ")).unwrap_or(&text);
                    return Err(Error::Network {
                        url: url.to_string(),
                        message: message.to_string(),
                    });
                }
            };
            if !matches!(resp.status(), 301 | 302 | 303 | 307 | 308) {
                return Ok(resp);
            }
            let Some(location) = resp.header("Location") else {
                return Ok(resp);
            };
            let relative = Url::parse(location).is_err();
            if !follow_all && !relative {
                return Ok(resp);
            }
            let next = url.join(location).map_err(|e| Error::BadResponse {
                url: url.to_string(),
                why: format!("redirect to {location:?}: {e}"),
            })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(Error::BadResponse {
                    url: url.to_string(),
                    why: format!("redirect to {next}"),
                });
            }
            tracing::debug!("{} redirected to {next}", url);
            url = next;
        }
        Err(Error::TooManyRedirects {
            url: start.to_string(),
            max: MAX_REDIRECTS,
        })
    }

    /// A 2xx answer, or the error its status means.
    fn check(&self, resp: ureq::Response, repo: &RepoId, what: &str) -> Result<ureq::Response> {
        let url = resp.get_url().to_string();
        match resp.status() {
            200..=299 => Ok(resp),
            status @ (401 | 403) => Err(Error::Gated {
                repo: repo.to_string(),
                url,
                status,
                token: if self.token.is_some() {
                    " (the token sent was refused, or its account has no access yet)"
                } else {
                    " (no token was sent: HF_TOKEN is not set and $HF_HOME/token does not exist)"
                },
            }),
            404 => {
                let code = resp
                    .header("X-Error-Code")
                    .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
                    .map(|c| format!(", {c}"))
                    .unwrap_or_default();
                Err(Error::NotFound {
                    repo: repo.to_string(),
                    what: what.to_string(),
                    url,
                    code,
                })
            }
            status => Err(Error::Http { url, status }),
        }
    }

    /// The commit a revision points to and the repo's files.
    pub(crate) fn model_info(
        &self,
        repo: &RepoId,
        revision: &str,
    ) -> Result<(String, Vec<String>)> {
        #[derive(serde::Deserialize)]
        struct Info {
            sha: Option<String>,
            #[serde(default)]
            siblings: Vec<Sibling>,
        }
        #[derive(serde::Deserialize)]
        struct Sibling {
            rfilename: String,
        }
        let url = self.url(&["api", "models", &repo.to_string(), "revision", revision])?;
        let resp = self.send("GET", &url, None, true)?;
        let resp = self.check(resp, repo, &format!("{repo}@{revision}"))?;
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_API_JSON + 1)
            .read_to_end(&mut body)
            .map_err(|e| Error::Network {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        let bad = |why: String| Error::BadResponse {
            url: url.to_string(),
            why,
        };
        if body.len() as u64 > MAX_API_JSON {
            return Err(bad(format!(
                "the model info is larger than {} MiB",
                MAX_API_JSON >> 20
            )));
        }
        let info: Info =
            serde_json::from_slice(&body).map_err(|e| bad(format!("model info: {e}")))?;
        let sha = info
            .sha
            .filter(|s| safe_component(s))
            .ok_or_else(|| bad("no usable `sha` (commit)".into()))?;
        let files = info
            .siblings
            .into_iter()
            .map(|s| safe_rel_path(&s.rfilename).map(str::to_string))
            .collect::<Result<Vec<_>>>()?;
        Ok((sha, files))
    }

    /// `HEAD resolve/{revision}/{file}`: commit, ETag, size and where the bytes are.
    pub(crate) fn file_meta(&self, repo: &RepoId, revision: &str, file: &str) -> Result<FileMeta> {
        let url = self.url(&[&repo.to_string(), "resolve", revision, safe_rel_path(file)?])?;
        let resp = self.send("HEAD", &url, None, false)?;
        let redirected = (300..400).contains(&resp.status());
        let resp = if redirected {
            resp
        } else {
            self.check(resp, repo, &format!("{repo}/{file}"))?
        };
        let at = resp.get_url().to_string();
        let bad = |why: &str| Error::BadResponse {
            url: at.clone(),
            why: why.to_string(),
        };
        let commit = resp
            .header("X-Repo-Commit")
            .filter(|c| safe_component(c))
            .ok_or_else(|| bad("no usable X-Repo-Commit header"))?
            .to_string();
        let etag = resp
            .header("X-Linked-Etag")
            .or_else(|| resp.header("ETag"))
            .map(normalize_etag)
            .filter(|e| safe_component(e))
            .ok_or_else(|| bad("no usable ETag header"))?;
        let size_header = match resp.header("X-Linked-Size") {
            Some(s) => Some(s),
            None if !redirected => resp.header("Content-Length"),
            None => None,
        };
        let size = match size_header {
            Some(s) => Some(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| bad("the size header is not a number"))?,
            ),
            None => None,
        };
        let url = match (redirected, resp.header("Location")) {
            (true, Some(loc)) => Url::parse(&at)
                .and_then(|u| u.join(loc))
                .map_err(|e| bad(&format!("redirect to {loc:?}: {e}")))?
                .to_string(),
            _ => at.clone(),
        };
        Ok(FileMeta {
            repo: repo.clone(),
            commit,
            etag,
            size,
            url,
        })
    }

    /// Downloads a file into `blob`: into `blob.incomplete` first (resumed with `Range` from its
    /// length), then checked (size; sha256 when the ETag is one) and renamed.
    pub(crate) fn download(
        &self,
        meta: &FileMeta,
        file: &str,
        blob: &Path,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        let name = blob.file_name().and_then(|n| n.to_str()).unwrap_or("blob");
        let partial = blob.with_file_name(format!("{name}.incomplete"));
        let mut attempt = 0;
        loop {
            let have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
            let outcome = match meta.size {
                Some(size) if have == size && size > 0 => Ok(()),
                _ => self.transfer(meta, file, &partial, have, progress),
            };
            match outcome {
                Ok(()) => break,
                Err(Transfer::Fatal(e)) => return Err(e),
                Err(Transfer::Retry(why)) if attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!(
                        "{file}: {why}; resuming (try {attempt} of {})",
                        self.retries
                    );
                    std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
                }
                Err(Transfer::Retry(why)) => {
                    let have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
                    let total = meta.size.map_or("?".to_string(), |s| s.to_string());
                    return Err(Error::Interrupted {
                        file: file.to_string(),
                        have,
                        total,
                        why,
                    });
                }
            }
        }
        let (len, sha) = hash_file(&partial)?;
        if let Some(expected) = meta.size.filter(|&s| s != len) {
            let _ = fs::remove_file(&partial);
            return Err(Error::SizeMismatch {
                file: file.to_string(),
                expected,
                actual: len,
            });
        }
        if is_sha256(&meta.etag) && !sha.eq_ignore_ascii_case(&meta.etag) {
            let _ = fs::remove_file(&partial);
            return Err(Error::ShaMismatch {
                file: file.to_string(),
                expected: meta.etag.clone(),
                actual: sha,
            });
        }
        // On disk before the rename gives it its final name.
        File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(Error::io(&partial))?;
        fs::rename(&partial, blob).map_err(Error::io(blob))?;
        progress.finish(file);
        tracing::info!("{file}: {len} bytes, sha256 {sha}");
        Ok(())
    }

    fn transfer(
        &self,
        meta: &FileMeta,
        file: &str,
        partial: &Path,
        have: u64,
        progress: &mut dyn Progress,
    ) -> Result<(), Transfer> {
        let io = |e: std::io::Error| {
            Transfer::Fatal(Error::Io {
                path: partial.to_path_buf(),
                source: e,
            })
        };
        let url = Url::parse(&meta.url).map_err(|e| {
            Transfer::Fatal(Error::BadResponse {
                url: meta.url.clone(),
                why: e.to_string(),
            })
        })?;
        let resp = match self.send("GET", &url, (have > 0).then_some(have), true) {
            Ok(r) => r,
            Err(Error::Network { message, .. }) => return Err(Transfer::Retry(message)),
            Err(e) => return Err(Transfer::Fatal(e)),
        };
        let mut from = have;
        match resp.status() {
            206 => {
                let expected = format!("bytes {have}-");
                if !resp
                    .header("Content-Range")
                    .is_some_and(|r| r.starts_with(&expected))
                {
                    File::create(partial).map_err(io)?;
                    return Err(Transfer::Retry(
                        "the server answered another range; restarting".into(),
                    ));
                }
            }
            416 => {
                File::create(partial).map_err(io)?;
                return Err(Transfer::Retry(
                    "the server refused the range; restarting".into(),
                ));
            }
            200 => {
                if have > 0 {
                    tracing::info!("{file}: the server ignored Range, starting over");
                }
                from = 0;
            }
            status => {
                let what = format!("{}/{file}", meta.repo);
                return Err(Transfer::Fatal(match self.check(resp, &meta.repo, &what) {
                    Err(e) => e,
                    Ok(_) => Error::Http {
                        url: meta.url.clone(),
                        status,
                    },
                }));
            }
        }
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(partial)
            .map_err(io)?;
        if from == 0 {
            out.set_len(0).map_err(io)?;
        }
        progress.start(file, meta.size, from);
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 1 << 18];
        let mut at = from;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.flush().map_err(io)?;
                    return Err(Transfer::Retry(format!(
                        "connection lost at byte {at}: {e}"
                    )));
                }
            };
            out.write_all(&buf[..n]).map_err(io)?;
            at += n as u64;
            progress.advance(n as u64);
            if let Some(size) = meta.size.filter(|&s| at > s) {
                drop(out);
                let _ = fs::remove_file(partial);
                return Err(Transfer::Fatal(Error::SizeMismatch {
                    file: file.to_string(),
                    expected: size,
                    actual: at,
                }));
            }
        }
        out.sync_all().map_err(io)?;
        match meta.size {
            Some(size) if at < size => Err(Transfer::Retry(format!(
                "connection closed at byte {at} of {size}"
            ))),
            _ => Ok(()),
        }
    }
}

/// `W/"abc"` → `abc`.
fn normalize_etag(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Length and sha256 (lowercase hex) of a file.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((len, hex))
}
