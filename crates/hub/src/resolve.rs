//! Spec → local path: the commit and file list from the API, the files fetched into the cache
//! (or found there), and the path a loader opens. Offline, the same from the cache alone.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use crate::cache::{hf_home, Cache};
use crate::client::{Client, Progress};
use crate::error::{Error, Result};
use crate::select::{self, index_shards, Plan};
use crate::spec::{safe_rel_path, RepoId, Spec};

/// The largest `model.safetensors.index.json` read.
const MAX_INDEX_JSON: u64 = 64 << 20;

/// Where and how to reach the hub.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// `https://huggingface.co`, or a mirror (`HF_ENDPOINT`).
    pub endpoint: String,
    /// Sent as `Authorization: Bearer` (`HF_TOKEN`, else `$HF_HOME/token`).
    pub token: Option<String>,
    /// Resolve from the cache only (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// The cache folder.
    pub cache: Cache,
    /// How many times an interrupted transfer is resumed before giving up.
    pub retries: u32,
}

impl HubConfig {
    /// The configuration `huggingface_hub` reads from the environment: `HF_ENDPOINT`,
    /// `HF_TOKEN` (or the `token` file in `HF_HOME`, or `HF_TOKEN_PATH`), `HF_HUB_OFFLINE`,
    /// `HF_HUB_CACHE` / `HF_HOME`.
    pub fn from_env() -> HubConfig {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let path = var("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| hf_home().join("token"));
                fs::read_to_string(path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
        });
        HubConfig {
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".to_string()),
            token,
            offline,
            cache: Cache::from_env(),
            retries: 3,
        }
    }
}

/// A resolved spec.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// What to load: a file, or the snapshot folder (or a folder in it).
    pub path: PathBuf,
    /// The repo.
    pub repo: RepoId,
    /// The commit the files come from.
    pub commit: String,
    /// Every file of the model, in the snapshot.
    pub files: Vec<PathBuf>,
    /// Bytes downloaded now (0 when everything was cached).
    pub downloaded: u64,
}

/// A hub client with its cache.
pub struct Hub {
    config: HubConfig,
    client: Client,
}

impl Hub {
    /// A hub for `config`.
    pub fn new(config: HubConfig) -> Result<Hub> {
        let client = Client::new(&config.endpoint, config.token.clone(), config.retries)?;
        Ok(Hub { config, client })
    }

    /// A hub configured from the environment ([`HubConfig::from_env`]).
    pub fn from_env() -> Result<Hub> {
        Hub::new(HubConfig::from_env())
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.config.cache
    }

    /// Resolves `spec` to local files, downloading what the cache lacks (offline: the cache
    /// only; when the hub is unreachable, the cache with a warning).
    pub fn resolve(&self, spec: &Spec, progress: &mut dyn Progress) -> Result<Resolved> {
        if self.config.offline {
            return self.resolve_cached(spec);
        }
        let (commit, files) = match self.client.model_info(&spec.repo, &spec.revision) {
            Ok(info) => info,
            Err(e @ Error::Network { .. }) => {
                return match self.resolve_cached(spec) {
                    Ok(found) => {
                        tracing::warn!("{e}; using the cached snapshot {}", found.commit);
                        Ok(found)
                    }
                    Err(_) => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        tracing::info!("{}@{} is commit {commit}", spec.repo, spec.revision);
        let cache = &self.config.cache;
        cache.write_ref(&spec.repo, &spec.revision, &commit)?;
        let plan = select::plan(&spec.repo.to_string(), &files, &spec.target)?;
        let mut done = Resolved {
            path: join(cache.snapshot_dir(&spec.repo, &commit), &plan.path),
            repo: spec.repo.clone(),
            commit: commit.clone(),
            files: Vec::new(),
            downloaded: 0,
        };
        for file in &plan.files {
            self.fetch(&mut done, file, progress)?;
        }
        if let Some(index) = &plan.index {
            let path = self.fetch(&mut done, index, progress)?;
            for shard in self.shards(&path, &plan)? {
                if !files.contains(&shard) {
                    return Err(Error::NotFound {
                        repo: spec.repo.to_string(),
                        what: format!("{}/{shard} (listed in {index})", spec.repo),
                        url: "the repo's file list".into(),
                        code: String::new(),
                    });
                }
                self.fetch(&mut done, &shard, progress)?;
            }
        }
        Ok(done)
    }

    /// One file into the snapshot: already there, or its blob already there, or downloaded.
    fn fetch(
        &self,
        done: &mut Resolved,
        file: &str,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf> {
        let cache = &self.config.cache;
        let path = cache
            .snapshot_dir(&done.repo, &done.commit)
            .join(safe_rel_path(file)?);
        if path.is_file() {
            progress.cached(file);
            done.files.push(path.clone());
            return Ok(path);
        }
        let meta = self.client.file_meta(&done.repo, &done.commit, file)?;
        if meta.commit != done.commit {
            tracing::warn!(
                "{file}: the hub says commit {}, expected {}",
                meta.commit,
                done.commit
            );
        }
        let blob = cache.blob_path(&done.repo, &meta.etag);
        let _lock = cache.lock_blob(&done.repo, &meta.etag)?;
        if blob.is_file() {
            progress.cached(file);
        } else {
            let dir = blob.parent().unwrap_or(cache.root()).to_path_buf();
            fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            self.client.download(&meta, file, &blob, progress)?;
            done.downloaded += fs::metadata(&blob).map(|m| m.len()).unwrap_or(0);
        }
        let path = cache.link(&done.repo, &done.commit, file, &meta.etag)?;
        done.files.push(path.clone());
        Ok(path)
    }

    /// The shards a fetched safetensors index lists (checked names, next to the index).
    fn shards(&self, index: &std::path::Path, plan: &Plan) -> Result<Vec<String>> {
        let mut json = Vec::new();
        fs::File::open(index)
            .and_then(|f| f.take(MAX_INDEX_JSON).read_to_end(&mut json))
            .map_err(Error::io(index))?;
        let shards = index_shards(&json, &plan.path).map_err(|why| Error::BadResponse {
            url: index.display().to_string(),
            why: format!("model.safetensors.index.json: {why}"),
        })?;
        for s in &shards {
            safe_rel_path(s)?;
        }
        Ok(shards)
    }

    /// The spec from the cache alone: `refs/{revision}` → snapshot → the same file choice.
    pub fn resolve_cached(&self, spec: &Spec) -> Result<Resolved> {
        let cache = &self.config.cache;
        let not_cached = |what: String| Error::NotCached {
            spec: spec.to_string(),
            what,
            cache: cache.root().to_path_buf(),
        };
        let commit = cache
            .read_ref(&spec.repo, &spec.revision)
            .ok_or_else(|| not_cached(format!("{}@{}", spec.repo, spec.revision)))?;
        let files = cache.snapshot_files(&spec.repo, &commit);
        let plan =
            select::plan(&spec.repo.to_string(), &files, &spec.target).map_err(|e| match e {
                Error::NotFound { .. }
                | Error::NoModelFiles { .. }
                | Error::QuantNotFound { .. } => not_cached(format!("{spec} ({e})")),
                other => other,
            })?;
        let snapshot = cache.snapshot_dir(&spec.repo, &commit);
        let mut wanted = plan.files.clone();
        if let Some(index) = &plan.index {
            wanted.push(index.clone());
            if snapshot.join(index).is_file() {
                wanted.extend(self.shards(&snapshot.join(index), &plan)?);
            }
        }
        let mut found = Vec::new();
        for file in wanted {
            let path = snapshot.join(&file);
            if !path.is_file() {
                return Err(not_cached(format!("{}/{file}", spec.repo)));
            }
            found.push(path);
        }
        Ok(Resolved {
            path: join(snapshot, &plan.path),
            repo: spec.repo.clone(),
            commit,
            files: found,
            downloaded: 0,
        })
    }
}

/// `dir/rel`, or `dir` itself (no trailing slash) when `rel` is empty.
fn join(dir: PathBuf, rel: &str) -> PathBuf {
    if rel.is_empty() {
        dir
    } else {
        dir.join(rel)
    }
}
