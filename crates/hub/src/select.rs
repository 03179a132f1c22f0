//! Which files of a repo make the model a spec asks for.

use crate::error::{Error, Result};
use crate::spec::Target;

/// The quant tag used when a GGUF repo is named without one (as `llama-server -hf` does).
pub const DEFAULT_QUANT: &str = "Q4_K_M";

/// The files to fetch and the path (repo-relative; empty for the snapshot folder) to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Files to fetch, repo-relative.
    pub files: Vec<String>,
    /// What the model path points at, repo-relative.
    pub path: String,
    /// A `model.safetensors.index.json` whose shards must be added once it is fetched.
    pub index: Option<String>,
}

/// Plans the files for `target` among the repo's `files` (repo-relative names).
pub fn plan(repo: &str, files: &[String], target: &Target) -> Result<Plan> {
    match target {
        Target::Quant(q) => plan_gguf(repo, files, Some(q)),
        Target::Auto => plan_dir(repo, files, ""),
        Target::File(f) if files.iter().any(|x| x == f) => {
            if split_part(f).is_some() {
                return Err(Error::SplitGguf {
                    repo: repo.into(),
                    file: f.clone(),
                });
            }
            Ok(Plan {
                files: vec![f.clone()],
                path: f.clone(),
                index: None,
            })
        }
        Target::File(f) if files.iter().any(|x| x.starts_with(&format!("{f}/"))) => {
            plan_dir(repo, files, f)
        }
        Target::File(f) => Err(Error::NotFound {
            repo: repo.into(),
            what: format!("{repo}/{f}"),
            url: "the repo's file list".into(),
            code: String::new(),
        }),
    }
}

/// The model in folder `dir`: GGUF, else safetensors (config + tokenizer files + weights), else
/// Meta's `params.json`, `tokenizer.model` and `consolidated.*.pth`.
fn plan_dir(repo: &str, files: &[String], dir: &str) -> Result<Plan> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let here: Vec<&str> = files
        .iter()
        .filter_map(|f| f.strip_prefix(&prefix))
        .filter(|f| !f.contains('/'))
        .collect();
    let has = |name: &str| here.contains(&name);
    let full = |name: &str| format!("{prefix}{name}");
    if here.iter().any(|f| is_gguf(f)) {
        let ggufs: Vec<String> = here
            .iter()
            .filter(|f| is_gguf(f))
            .map(|f| full(f))
            .collect();
        return plan_gguf(repo, &ggufs, None);
    }
    let optional = [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "special_tokens_map.json",
    ];
    if has("config.json") && (has("model.safetensors") || has("model.safetensors.index.json")) {
        let mut out = vec![full("config.json")];
        out.extend(optional.iter().filter(|n| has(n)).map(|n| full(n)));
        let index = if has("model.safetensors.index.json") {
            Some(full("model.safetensors.index.json"))
        } else {
            out.push(full("model.safetensors"));
            None
        };
        return Ok(Plan {
            files: out,
            path: dir.to_string(),
            index,
        });
    }
    if has("params.json") && here.iter().any(|f| is_consolidated(f)) {
        let mut out = vec![full("params.json")];
        if has("tokenizer.model") {
            out.push(full("tokenizer.model"));
        }
        let mut shards: Vec<String> = here
            .iter()
            .filter(|f| is_consolidated(f))
            .map(|f| full(f))
            .collect();
        shards.sort();
        out.extend(shards);
        return Ok(Plan {
            files: out,
            path: dir.to_string(),
            index: None,
        });
    }
    let mut shown: Vec<&str> = here.clone();
    shown.truncate(20);
    Err(Error::NoModelFiles {
        repo: repo.into(),
        dir: if dir.is_empty() {
            String::new()
        } else {
            format!("/{dir}")
        },
        files: if shown.is_empty() {
            "none".into()
        } else {
            shown.join(", ")
        },
    })
}

/// The GGUF whose name holds `quant` (case-insensitive; a match that ends at a word boundary
/// wins, so `Q4_K` picks `-Q4_K.gguf` over `-Q4_K_M.gguf`); without a tag, Q4_K_M if there is
/// one, else the first GGUF. Multimodal projectors (`mmproj`) are never picked.
fn plan_gguf(repo: &str, files: &[String], quant: Option<&str>) -> Result<Plan> {
    let mut ggufs: Vec<&String> = files
        .iter()
        .filter(|f| is_gguf(f) && !f.to_ascii_lowercase().contains("mmproj"))
        .collect();
    ggufs.sort();
    let matching = |tag: &str| -> Option<&String> {
        let tag = tag.to_ascii_lowercase();
        let hits: Vec<&String> = ggufs
            .iter()
            .copied()
            .filter(|f| base(f).to_ascii_lowercase().contains(&tag))
            .collect();
        let bounded = hits.iter().copied().find(|f| {
            let name = base(f).to_ascii_lowercase();
            name.match_indices(&tag).any(|(i, _)| {
                let after = name[i + tag.len()..].chars().next();
                !matches!(after, Some(c) if c.is_ascii_alphanumeric() || c == '_')
            })
        });
        bounded.or(hits.first().copied())
    };
    let chosen = match quant {
        Some(q) => matching(q).ok_or_else(|| Error::QuantNotFound {
            repo: repo.into(),
            quant: q.into(),
            available: if ggufs.is_empty() {
                "no .gguf files".into()
            } else {
                ggufs
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?,
        None => match matching(DEFAULT_QUANT).or(ggufs.first().copied()) {
            Some(f) => f,
            None => {
                return Err(Error::NoModelFiles {
                    repo: repo.into(),
                    dir: String::new(),
                    files: "no .gguf besides multimodal projectors".into(),
                })
            }
        },
    };
    if split_part(chosen).is_some() {
        return Err(Error::SplitGguf {
            repo: repo.into(),
            file: chosen.clone(),
        });
    }
    Ok(Plan {
        files: vec![chosen.clone()],
        path: chosen.clone(),
        index: None,
    })
}

/// The shards a `model.safetensors.index.json` lists (its `weight_map` values), deduplicated.
pub(crate) fn index_shards(json: &[u8], dir: &str) -> std::result::Result<Vec<String>, String> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or("no weight_map object")?;
    let mut shards: Vec<String> = Vec::new();
    for v in map.values() {
        let name = v.as_str().ok_or("a weight_map value is not a string")?;
        let full = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        if !shards.contains(&full) {
            shards.push(full);
        }
    }
    shards.sort();
    Ok(shards)
}

/// The quant tag in a GGUF file name (`Llama-3.2-1B-Instruct-Q4_K_M.gguf` → `Q4_K_M`).
pub fn gguf_quant(name: &str) -> Option<String> {
    let stem = base(name);
    let stem = stem.get(..stem.len().saturating_sub(5)).unwrap_or(stem);
    let stem = match split_part(name) {
        Some(_) => stem.rsplitn(4, '-').nth(3).unwrap_or(stem),
        None => stem,
    };
    stem.rsplit(['-', '.']).find_map(|tok| {
        let up = tok.to_ascii_uppercase();
        let body = up
            .strip_prefix("IQ")
            .or_else(|| up.strip_prefix('Q'))
            .or_else(|| up.strip_prefix("BF"))
            .or_else(|| up.strip_prefix('F'))?;
        let ok = body.starts_with(|c: char| c.is_ascii_digit())
            && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        ok.then_some(up)
    })
}

fn base(f: &str) -> &str {
    f.rsplit('/').next().unwrap_or(f)
}

fn is_gguf(f: &str) -> bool {
    f.to_ascii_lowercase().ends_with(".gguf")
}

fn is_consolidated(f: &str) -> bool {
    f.starts_with("consolidated.") && f.ends_with(".pth")
}

/// `(part, count)` for `name-00001-of-00003.gguf`.
fn split_part(f: &str) -> Option<(u32, u32)> {
    let stem = base(f).strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (_, part) = rest.rsplit_once('-')?;
    let ok = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    (ok(part) && ok(count)).then(|| Some((part.parse().ok()?, count.parse().ok()?)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_gguf_by_tag_default_and_boundary() {
        let files = names(&[
            "README.md",
            "m-Q4_K_M.gguf",
            "m-Q4_K.gguf",
            "m-Q8_0.gguf",
            "mmproj-Q8_0.gguf",
        ]);
        let p = |t| plan("r/m", &files, &t).map(|p| p.path);
        assert_eq!(p(Target::Auto).unwrap(), "m-Q4_K_M.gguf");
        assert_eq!(p(Target::Quant("q8_0".into())).unwrap(), "m-Q8_0.gguf");
        assert_eq!(p(Target::Quant("Q4_K".into())).unwrap(), "m-Q4_K.gguf");
        assert!(matches!(
            p(Target::Quant("Q2_K".into())),
            Err(Error::QuantNotFound { .. })
        ));
        let only = names(&["x-f16.gguf", "x-bf16.gguf"]);
        assert_eq!(
            plan("r/x", &only, &Target::Auto).unwrap().path,
            "x-bf16.gguf"
        );
        assert_eq!(
            gguf_quant("Llama-3.2-1B-Instruct-Q4_K_M.gguf").as_deref(),
            Some("Q4_K_M")
        );
        assert_eq!(gguf_quant("tiny.bf16.gguf").as_deref(), Some("BF16"));
        assert_eq!(
            gguf_quant("big-Q8_0-00002-of-00003.gguf").as_deref(),
            Some("Q8_0")
        );
    }

    #[test]
    fn split_gguf_is_refused() {
        let files = names(&[
            "b-Q4_K_M-00001-of-00002.gguf",
            "b-Q4_K_M-00002-of-00002.gguf",
        ]);
        assert!(matches!(
            plan("r/b", &files, &Target::Auto),
            Err(Error::SplitGguf { .. })
        ));
    }

    #[test]
    fn safetensors_and_meta() {
        let files = names(&[
            "config.json",
            "generation_config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json",
            "original/params.json",
            "original/tokenizer.model",
            "original/consolidated.00.pth",
        ]);
        let p = plan("r/m", &files, &Target::Auto).unwrap();
        assert_eq!(p.path, "");
        assert_eq!(p.index.as_deref(), Some("model.safetensors.index.json"));
        assert_eq!(
            p.files,
            names(&["config.json", "tokenizer.json", "generation_config.json"])
        );
        let p = plan("r/m", &files, &Target::File("original".into())).unwrap();
        assert_eq!(p.path, "original");
        assert_eq!(
            p.files,
            names(&[
                "original/params.json",
                "original/tokenizer.model",
                "original/consolidated.00.pth"
            ])
        );
        let idx = br#"{"metadata":{},"weight_map":{"a":"s2.safetensors","b":"s1.safetensors","c":"s2.safetensors"}}"#;
        assert_eq!(
            index_shards(idx, "").unwrap(),
            names(&["s1.safetensors", "s2.safetensors"])
        );
        assert!(plan("r/m", &names(&["README.md"]), &Target::Auto).is_err());
        assert!(plan("r/m", &files, &Target::File("nope.bin".into())).is_err());
    }
}
