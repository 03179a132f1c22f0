//! The result cache: one JSON line per finished unit of work (a generation, a scored question),
//! keyed by a settings hash and a key, appended and flushed as soon as the work is done, so an
//! interrupted run resumes where it stopped.
//!
//! Line format: `{"settings": "<16 hex>", "key": "<task id>#<sample>", "value": {...}}`. Lines
//! written under other settings are kept in the file and ignored; a torn last line (the run was
//! killed mid-write) is skipped with a warning.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{EvalError, Result};

/// A hash of the settings that determine the results (16 hex digits of the SHA-256 of their
/// JSON text).
pub fn settings_hash(settings: &Value) -> String {
    let text = settings.to_string();
    let digest = Sha256::digest(text.as_bytes());
    hex(&digest[..8])
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An append-only JSON-lines cache of results.
#[derive(Debug)]
pub struct ResultCache {
    path: PathBuf,
    settings: String,
    entries: HashMap<String, Value>,
    file: File,
    reused: usize,
}

impl ResultCache {
    /// Opens (or creates) the cache at `path` and loads the entries written under `settings`.
    pub fn open(path: &Path, settings: &str) -> Result<ResultCache> {
        let mut entries = HashMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let parsed: Option<(String, String, Value)> =
                    serde_json::from_str::<Value>(line).ok().and_then(|v| {
                        Some((
                            v.get("settings")?.as_str()?.to_string(),
                            v.get("key")?.as_str()?.to_string(),
                            v.get("value")?.clone(),
                        ))
                    });
                match parsed {
                    Some((s, key, value)) if s == settings => {
                        entries.insert(key, value);
                    }
                    Some(_) => {}
                    None => tracing::warn!(
                        file = %path.display(),
                        line = i + 1,
                        "skipping an unreadable cache line"
                    ),
                }
            }
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| EvalError::io(path, e))?;
        // A torn last line must not swallow the next entry.
        let len = file.metadata().map_err(|e| EvalError::io(path, e))?.len();
        if len > 0 {
            let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
            if bytes.last() != Some(&b'\n') {
                file.write_all(b"\n").map_err(|e| EvalError::io(path, e))?;
            }
        }
        if !entries.is_empty() {
            tracing::info!(file = %path.display(), entries = entries.len(), "resuming from cache");
        }
        Ok(ResultCache {
            path: path.to_path_buf(),
            settings: settings.to_string(),
            entries,
            file,
            reused: 0,
        })
    }

    /// The cached value of `key`, if any (counted as reused).
    pub fn get(&mut self, key: &str) -> Option<Value> {
        let v = self.entries.get(key).cloned();
        if v.is_some() {
            self.reused += 1;
        }
        v
    }

    /// Records `value` under `key` (written and flushed at once).
    pub fn put(&mut self, key: &str, value: Value) -> Result<()> {
        let line = json!({"settings": self.settings, "key": key, "value": value});
        let mut text = line.to_string();
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| EvalError::io(&self.path, e))?;
        self.entries.insert(key.to_string(), value);
        Ok(())
    }

    /// Entries taken from the cache so far.
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// SHA-256 of a file, or for a directory of the sorted `name  sha256` lines of its regular
/// files (a model directory).
pub fn path_sha256(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| EvalError::io(path, e))?;
    if !meta.is_dir() {
        return file_sha256(path);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| EvalError::io(path, e))? {
        let entry = entry.map_err(|e| EvalError::io(path, e))?;
        if entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    let mut listing = String::new();
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        listing.push_str(&format!(
            "{}  {}\n",
            file_sha256(&f)?,
            name.unwrap_or_default()
        ));
    }
    Ok(hex(&Sha256::digest(listing.as_bytes())))
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| EvalError::io(path, e))?;
    Ok(hex(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_entries_of_the_same_settings_only() {
        let dir = std::env::temp_dir().join(format!("llama31-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("c.jsonl");
        {
            let mut c = ResultCache::open(&path, "aaaa").unwrap();
            c.put("t#0", json!({"text": "x"})).unwrap();
            let mut other = ResultCache::open(&path, "bbbb").unwrap();
            other.put("t#0", json!({"text": "other"})).unwrap();
        }
        // A torn line, as left by a killed run.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"settings": "aaaa", "key": "t#1", "val"#)
            .unwrap();
        drop(f);
        let mut c = ResultCache::open(&path, "aaaa").unwrap();
        assert_eq!(c.get("t#0"), Some(json!({"text": "x"})));
        assert_eq!(c.get("t#1"), None);
        c.put("t#1", json!({"text": "y"})).unwrap();
        let mut again = ResultCache::open(&path, "aaaa").unwrap();
        assert_eq!(again.get("t#1"), Some(json!({"text": "y"})));
        assert_eq!(again.reused(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn settings_hash_depends_on_every_field() {
        let a = settings_hash(&json!({"shots": 5, "chat": false}));
        assert_eq!(a.len(), 16);
        assert_ne!(a, settings_hash(&json!({"shots": 0, "chat": false})));
        assert_eq!(a, settings_hash(&json!({"shots": 5, "chat": false})));
    }
}
