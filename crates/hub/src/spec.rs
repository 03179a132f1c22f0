//! `hf://ORG/NAME[@REVISION][:QUANT|/FILE]`: parsing and the name checks that keep every path
//! built from a spec or a server answer inside the cache.

use std::fmt;

use crate::error::{Error, Result};

/// The scheme that marks a model spec on `--model`.
pub const HF_SCHEME: &str = "hf://";

/// Whether `s` is a hub spec (`hf://...`) rather than a local path.
pub fn is_hub_spec(s: &str) -> bool {
    s.starts_with(HF_SCHEME)
}

/// A repo id, `org/name`, checked against the hub's rules (so the cache folder
/// `models--org--name` maps back to exactly one id).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RepoId {
    org: String,
    name: String,
}

impl RepoId {
    /// Parses and checks `org/name`.
    pub fn parse(s: &str) -> Result<RepoId> {
        let bad = |why: &str| Error::InvalidSpec {
            spec: s.to_string(),
            why: why.to_string(),
        };
        let (org, name) = s
            .split_once('/')
            .ok_or_else(|| bad("a repo id is ORG/NAME"))?;
        for part in [org, name] {
            check_repo_part(part).map_err(|why| bad(&why))?;
        }
        Ok(RepoId {
            org: org.to_string(),
            name: name.to_string(),
        })
    }

    /// The cache folder name, `models--org--name`.
    pub fn folder_name(&self) -> String {
        format!("models--{}--{}", self.org, self.name)
    }

    /// The repo id from a cache folder name, if it is one.
    pub fn from_folder_name(folder: &str) -> Option<RepoId> {
        let rest = folder.strip_prefix("models--")?;
        let (org, name) = rest.split_once("--")?;
        RepoId::parse(&format!("{org}/{name}")).ok()
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.org, self.name)
    }
}

fn check_repo_part(part: &str) -> Result<(), String> {
    if part.is_empty() || part.len() > 96 {
        return Err(format!("{part:?} must have 1 to 96 characters"));
    }
    if !part
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "{part:?} may hold only letters, digits, '-', '_' and '.'"
        ));
    }
    if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
        return Err(format!("{part:?} may not start or end with '-' or '.'"));
    }
    if part.contains("--") || part.contains("..") {
        return Err(format!("{part:?} may not contain '--' or '..'"));
    }
    Ok(())
}

/// A name that goes into a path as a single component: a revision, a commit, an ETag.
pub(crate) fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Checks a repo-relative file name (`dir/file.ext`): no absolute path, no empty, `.` or `..`
/// component, no backslash, control character or drive letter. Returns it unchanged.
pub fn safe_rel_path(s: &str) -> Result<&str> {
    let ok = !s.is_empty()
        && s.len() <= 1024
        && !s.starts_with('/')
        && !s.chars().any(|c| c.is_control() || c == '\\' || c == ':')
        && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(s)
    } else {
        Err(Error::UnsafePath(s.to_string()))
    }
}

/// What part of a repo a spec asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The repo's model: a GGUF (Q4_K_M, else the first), else safetensors, else Meta's files.
    Auto,
    /// The GGUF whose name holds this quant tag (case-insensitive).
    Quant(String),
    /// One file, or the model files of one folder (`original`).
    File(String),
}

/// A parsed `hf://` spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// `org/name`.
    pub repo: RepoId,
    /// A branch, tag or commit; `main` unless `@REVISION` is given.
    pub revision: String,
    /// The part of the repo asked for.
    pub target: Target,
}

impl Spec {
    /// Parses `[hf://]ORG/NAME[@REVISION][:QUANT|/FILE]`.
    pub fn parse(spec: &str) -> Result<Spec> {
        let bad = |why: &str| Error::InvalidSpec {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let s = spec.strip_prefix(HF_SCHEME).unwrap_or(spec);
        let (org, rest) = s
            .split_once('/')
            .ok_or_else(|| bad("a repo id is ORG/NAME"))?;
        let cut = rest.find([':', '/']).unwrap_or(rest.len());
        let (name_rev, tail) = rest.split_at(cut);
        let (name, revision) = match name_rev.split_once('@') {
            Some((n, r)) if safe_component(r) => (n, r.to_string()),
            Some(_) => return Err(bad("a revision is letters, digits, '-', '_' and '.'")),
            None => (name_rev, "main".to_string()),
        };
        let repo = RepoId::parse(&format!("{org}/{name}"))?;
        let target = if let Some(q) = tail.strip_prefix(':') {
            if !safe_component(q) {
                return Err(bad("a quant tag is letters, digits, '-', '_' and '.'"));
            }
            Target::Quant(q.to_string())
        } else if let Some(f) = tail.strip_prefix('/') {
            let f = f.trim_end_matches('/');
            safe_rel_path(f).map_err(|_| bad("the file name is empty or unsafe"))?;
            Target::File(f.to_string())
        } else {
            Target::Auto
        };
        Ok(Spec {
            repo,
            revision,
            target,
        })
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repo)?;
        if self.revision != "main" {
            write!(f, "@{}", self.revision)?;
        }
        match &self.target {
            Target::Auto => Ok(()),
            Target::Quant(q) => write!(f, ":{q}"),
            Target::File(p) => write!(f, "/{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        let s = Spec::parse("hf://bartowski/Meta-Llama-3.1-8B-Instruct-GGUF:q4_k_m").unwrap();
        assert_eq!(
            s.repo.to_string(),
            "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
        );
        assert_eq!(s.target, Target::Quant("q4_k_m".into()));
        assert_eq!(s.revision, "main");
        let s = Spec::parse("meta-llama/Llama-3.1-8B@v1.0/original").unwrap();
        assert_eq!(s.revision, "v1.0");
        assert_eq!(s.target, Target::File("original".into()));
        assert_eq!(s.to_string(), "meta-llama/Llama-3.1-8B@v1.0/original");
        let s = Spec::parse("hf://a/b").unwrap();
        assert_eq!(s.target, Target::Auto);
        assert_eq!(s.repo.folder_name(), "models--a--b");
        assert_eq!(RepoId::from_folder_name("models--a--b"), Some(s.repo));
    }

    #[test]
    fn rejects_escapes() {
        for bad in [
            "hf://a",
            "hf://../b",
            "hf://a/..",
            "hf://a/b/../../etc/passwd",
            "hf://a/b//x",
            "hf://a--x/b",
            "hf://a/b:",
            "hf://a/b:../x",
            "hf://a/b@../x",
            "hf://a/b/c\\d",
            "hf://a/b/C:x",
        ] {
            assert!(Spec::parse(bad).is_err(), "{bad} parsed");
        }
        assert!(safe_rel_path("/etc/passwd").is_err());
        assert!(safe_rel_path("a/./b").is_err());
        assert!(safe_rel_path("original/params.json").is_ok());
        assert!(!safe_component("../x"));
        assert!(!safe_component(".incomplete"));
    }
}
