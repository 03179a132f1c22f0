//! Models by name from the Hugging Face hub: `hf://ORG/NAME[@REV][:QUANT|/FILE]` wherever a
//! model path is taken, and `llama31 pull` / `list` / `rm`. The library (`llama31-hub`) does the
//! work; here are the progress bars and the tables.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use llama31_hub::{is_hub_spec, Hub, Progress, Resolved, Spec, Target};

/// The local path for a model argument: an `hf://` spec is fetched (or found in the cache),
/// anything else is returned as is.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    match path.to_str().filter(|s| is_hub_spec(s)) {
        Some(spec) => Ok(fetch(spec, false)?.path),
        None => Ok(path.to_path_buf()),
    }
}

fn fetch(spec: &str, announce_cached: bool) -> Result<Resolved> {
    let spec = Spec::parse(spec)?;
    let hub = Hub::from_env()?;
    let mut bars = Bars::default();
    let got = hub
        .resolve(&spec, &mut bars)
        .with_context(|| format!("getting {spec} from the Hugging Face hub"))?;
    bars.clear();
    let short = got.commit.get(..8).unwrap_or(&got.commit);
    if got.downloaded > 0 {
        eprintln!(
            "{spec}: {} files at {short}, {} downloaded into {}",
            got.files.len(),
            HumanBytes(got.downloaded),
            hub.cache().root().display()
        );
    } else if announce_cached {
        eprintln!("{spec}: already in the cache at {short}");
    } else {
        tracing::info!("{spec}: cached at {short}");
    }
    Ok(got)
}

/// One progress bar per file, with speed and ETA, on stderr (hidden when it is not a terminal).
#[derive(Default)]
struct Bars {
    bar: Option<ProgressBar>,
}

impl Bars {
    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn start(&mut self, file: &str, total: Option<u64>, from: u64) {
        self.clear();
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:32!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(file.to_string());
        bar.set_position(from);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self, file: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            eprintln!("{file}: {} downloaded", HumanBytes(bar.position()));
        }
    }
}

/// `llama31 pull REPO[:QUANT|/FILE]`.
#[derive(Args)]
pub struct PullArgs {
    /// ORG/NAME[@REVISION][:QUANT|/FILE], with or without hf:// (e.g.
    /// bartowski/Meta-Llama-3.1-8B-Instruct-GGUF:Q4_K_M, meta-llama/Llama-3.1-8B-Instruct,
    /// meta-llama/Llama-3.1-8B-Instruct/original).
    spec: String,
}

/// Fetches a model into the cache and prints its local path.
pub fn pull(args: PullArgs) -> Result<()> {
    let got = fetch(&args.spec, true)?;
    println!("{}", got.path.display());
    Ok(())
}

/// `llama31 list`.
#[derive(Args)]
pub struct ListArgs {}

/// Prints the cached models, one line per snapshot.
pub fn list(_args: ListArgs) -> Result<()> {
    let hub = Hub::from_env()?;
    let repos = hub.cache().list()?;
    if repos.is_empty() {
        eprintln!("no models in {}", hub.cache().root().display());
        return Ok(());
    }
    let rows: Vec<[String; 6]> = repos
        .iter()
        .flat_map(|r| {
            let formats = r.formats().join(", ");
            r.snapshots.iter().map(move |s| {
                [
                    r.repo.to_string(),
                    if s.refs.is_empty() {
                        "-".into()
                    } else {
                        s.refs.join(",")
                    },
                    s.commit.get(..8).unwrap_or(&s.commit).to_string(),
                    s.files.len().to_string(),
                    HumanBytes(s.size).to_string(),
                    formats.clone(),
                ]
            })
        })
        .collect();
    let header = ["REPO", "REVISION", "COMMIT", "FILES", "SIZE", "FORMAT"].map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    eprintln!("cache: {}", hub.cache().root().display());
    Ok(())
}

/// `llama31 rm REPO`.
#[derive(Args)]
pub struct RmArgs {
    /// ORG/NAME (with or without hf://): the whole repo's folder in the cache is deleted.
    repo: String,
}

/// Deletes one repo's folder from the cache.
pub fn rm(args: RmArgs) -> Result<()> {
    let spec = Spec::parse(&args.repo)?;
    if spec.target != Target::Auto || spec.revision != "main" {
        bail!(
            "rm removes a whole repo from the cache: give ORG/NAME, not {}",
            args.repo
        );
    }
    let hub = Hub::from_env()?;
    let (path, size) = hub.cache().remove(&spec.repo)?;
    eprintln!("removed {} ({} freed)", path.display(), HumanBytes(size));
    Ok(())
}
