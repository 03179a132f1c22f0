//! `huggingface_hub`'s cache layout: `models--{org}--{name}/blobs/{etag}`,
//! `snapshots/{commit}/{file}` (a relative symlink to the blob) and `refs/{revision}` (the commit).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::select::gguf_quant;
use crate::spec::{safe_component, safe_rel_path, RepoId};

/// The hub cache folder.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

/// One snapshot (commit) of a cached repo.
#[derive(Clone, Debug)]
pub struct CachedSnapshot {
    /// The commit hash.
    pub commit: String,
    /// The refs (branches, tags) that point to it.
    pub refs: Vec<String>,
    /// Its files, repo-relative, sorted.
    pub files: Vec<String>,
    /// The sum of the sizes of its files.
    pub size: u64,
}

/// A cached repo, as `llama31 list` shows it.
#[derive(Clone, Debug)]
pub struct CachedRepo {
    /// `org/name`.
    pub repo: RepoId,
    /// Its folder.
    pub path: PathBuf,
    /// Its snapshots, sorted by commit.
    pub snapshots: Vec<CachedSnapshot>,
    /// The size of its blobs (what deleting it frees).
    pub size: u64,
}

impl CachedRepo {
    /// The formats its files hold: `GGUF Q4_K_M`, `safetensors`, `Meta`.
    pub fn formats(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |s: String| {
            if !out.contains(&s) {
                out.push(s);
            }
        };
        for file in self.snapshots.iter().flat_map(|s| &s.files) {
            let base = file.rsplit('/').next().unwrap_or(file);
            let lower = base.to_ascii_lowercase();
            if lower.ends_with(".gguf") {
                push(match gguf_quant(base) {
                    Some(q) => format!("GGUF {q}"),
                    None => "GGUF".to_string(),
                });
            } else if lower.ends_with(".safetensors") {
                push("safetensors".to_string());
            } else if lower.starts_with("consolidated.") && lower.ends_with(".pth") {
                push("Meta".to_string());
            }
        }
        out
    }
}

impl Cache {
    /// A cache at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// The cache `huggingface_hub` uses: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    pub fn from_env() -> Cache {
        for var in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"] {
            if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
                return Cache::new(p);
            }
        }
        Cache::new(hf_home().join("hub"))
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `models--org--name`.
    pub fn repo_dir(&self, repo: &RepoId) -> PathBuf {
        self.root.join(repo.folder_name())
    }

    /// `snapshots/{commit}`.
    pub(crate) fn snapshot_dir(&self, repo: &RepoId, commit: &str) -> PathBuf {
        self.repo_dir(repo).join("snapshots").join(commit)
    }

    /// `blobs/{etag}`.
    pub(crate) fn blob_path(&self, repo: &RepoId, etag: &str) -> PathBuf {
        self.repo_dir(repo).join("blobs").join(etag)
    }

    /// Holds `.locks/models--org--name/{etag}.lock` (an exclusive `flock`, as `huggingface_hub`'s
    /// `filelock` takes it) until the returned file is dropped, so that two processes never
    /// write the same blob; waits while another one holds it.
    pub(crate) fn lock_blob(&self, repo: &RepoId, etag: &str) -> Result<fs::File> {
        let dir = self.root.join(".locks").join(repo.folder_name());
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let path = dir.join(format!("{etag}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                tracing::info!(
                    "waiting for another download of the same file ({})",
                    path.display()
                );
                file.lock().map_err(Error::io(&path))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::Io { path, source: e }),
        }
        Ok(file)
    }

    /// The commit `refs/{revision}` names, if cached; a revision that is itself a cached
    /// snapshot's commit resolves to itself.
    pub fn read_ref(&self, repo: &RepoId, revision: &str) -> Option<String> {
        let path = self.repo_dir(repo).join("refs").join(revision);
        if let Ok(text) = fs::read_to_string(&path) {
            let commit = text.trim();
            if safe_component(commit) {
                return Some(commit.to_string());
            }
            tracing::warn!("ignoring {}: not a commit hash", path.display());
        }
        self.snapshot_dir(repo, revision)
            .is_dir()
            .then(|| revision.to_string())
    }

    /// Writes `refs/{revision}` (unless the revision is the commit itself).
    pub(crate) fn write_ref(&self, repo: &RepoId, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let dir = self.repo_dir(repo).join("refs");
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let tmp = dir.join(unique_tmp(revision));
        fs::write(&tmp, commit).map_err(Error::io(&tmp))?;
        let path = dir.join(revision);
        fs::rename(&tmp, &path).map_err(Error::io(&path))
    }

    /// Points `snapshots/{commit}/{file}` at `blobs/{etag}` with a relative symlink (a copy where
    /// symlinks are not available), made under a temporary name and renamed over the old entry so
    /// that a concurrent reader always finds one.
    pub(crate) fn link(
        &self,
        repo: &RepoId,
        commit: &str,
        file: &str,
        etag: &str,
    ) -> Result<PathBuf> {
        let file = safe_rel_path(file)?;
        let path = self.snapshot_dir(repo, commit).join(file);
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&parent).map_err(Error::io(&parent))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = parent.join(unique_tmp(name));
        let depth = 2 + file.matches('/').count();
        let target: PathBuf = std::iter::repeat_n("..", depth)
            .collect::<PathBuf>()
            .join("blobs")
            .join(etag);
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &tmp).map_err(Error::io(&tmp))?;
        #[cfg(not(unix))]
        fs::copy(self.blob_path(repo, etag), &tmp).map_err(Error::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(Error::io(&path))?;
        Ok(path)
    }

    /// The files of a snapshot (repo-relative, sorted), counting only those whose blob exists.
    pub fn snapshot_files(&self, repo: &RepoId, commit: &str) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.snapshot_dir(repo, commit), "", &mut out);
        out.sort();
        out
    }

    /// Every cached model repo.
    pub fn list(&self) -> Result<Vec<CachedRepo>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Io {
                    path: self.root.clone(),
                    source: e,
                })
            }
        };
        let mut repos = Vec::new();
        for entry in entries.flatten() {
            let Some(repo) = entry
                .file_name()
                .to_str()
                .and_then(RepoId::from_folder_name)
            else {
                continue;
            };
            repos.push(self.describe(repo));
        }
        repos.sort_by(|a, b| a.repo.cmp(&b.repo));
        Ok(repos)
    }

    fn describe(&self, repo: RepoId) -> CachedRepo {
        let dir = self.repo_dir(&repo);
        let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut names = Vec::new();
        walk_all(&dir.join("refs"), "", &mut names);
        for name in names {
            if let Some(commit) = self.read_ref(&repo, &name) {
                refs.entry(commit).or_default().push(name);
            }
        }
        let mut snapshots = Vec::new();
        for entry in fs::read_dir(dir.join("snapshots"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(commit) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let files = self.snapshot_files(&repo, &commit);
            let snap = self.snapshot_dir(&repo, &commit);
            let size = files
                .iter()
                .filter_map(|f| fs::metadata(snap.join(f)).ok())
                .map(|m| m.len())
                .sum();
            let refs = refs.remove(&commit).unwrap_or_default();
            snapshots.push(CachedSnapshot {
                commit,
                refs,
                files,
                size,
            });
        }
        snapshots.sort_by(|a, b| a.commit.cmp(&b.commit));
        let size = fs::read_dir(dir.join("blobs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        CachedRepo {
            repo,
            path: dir,
            snapshots,
            size,
        }
    }

    /// Deletes a repo's folder (and nothing else): refuses a folder that is a symlink or that does
    /// not sit directly in the cache. Returns the folder and the bytes its blobs held.
    pub fn remove(&self, repo: &RepoId) -> Result<(PathBuf, u64)> {
        let dir = self.repo_dir(repo);
        let meta = match fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::RepoNotCached {
                    repo: repo.to_string(),
                    cache: self.root.clone(),
                })
            }
            Err(e) => {
                return Err(Error::Io {
                    path: dir,
                    source: e,
                })
            }
        };
        if !meta.is_dir() {
            return Err(Error::OutsideCache(dir));
        }
        let root = fs::canonicalize(&self.root).map_err(Error::io(&self.root))?;
        let real = fs::canonicalize(&dir).map_err(Error::io(&dir))?;
        if real.parent() != Some(root.as_path()) || real.file_name() != dir.file_name() {
            return Err(Error::OutsideCache(real));
        }
        let size = self.describe(repo.clone()).size;
        fs::remove_dir_all(&real).map_err(Error::io(&real))?;
        tracing::info!("removed {}", real.display());
        Ok((real, size))
    }
}

/// A hidden name next to `name`, unique to this process and call.
fn unique_tmp(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".{name}.{}.{n}.tmp", std::process::id())
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub(crate) fn hf_home() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("huggingface");
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .unwrap_or_default();
    PathBuf::from(home).join(".cache").join("huggingface")
}

/// Files under `dir` whose target exists (a dangling link is not a cached file).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') && name.ends_with(".tmp") {
            continue; // a link or ref being written (or left by a crash)
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, &rel, out),
            Ok(m) if m.is_file() => out.push(rel),
            _ => {}
        }
    }
}

/// Every file under `dir` (refs may be nested: `refs/pr/1`).
fn walk_all(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    walk(dir, prefix, out);
    out.retain(|n| !n.rsplit('/').next().unwrap_or(n).starts_with('.'));
}
