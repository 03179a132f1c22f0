//! Models by name from the Hugging Face hub.
//!
//! A spec such as `hf://org/name:Q4_K_M`, `hf://org/name/original` or `hf://org/name/file.gguf`
//! resolves to a local path: files are fetched into the cache that Python's `huggingface_hub`
//! uses (`models--org--name/{blobs,snapshots,refs}`), so either tool reuses what the other
//! downloaded. Downloads resume with HTTP `Range` from `blobs/{etag}.incomplete`, LFS files are
//! checked against their sha256 before they are renamed into place, and `HF_HUB_OFFLINE=1`
//! resolves from the cache without any network.
//!
//! This crate does no printing: progress goes to a [`Progress`] callback and diagnostics to
//! `tracing`.

mod cache;
mod client;
mod error;
mod resolve;
mod select;
mod spec;

pub use cache::{Cache, CachedRepo, CachedSnapshot};
pub use client::{Client, Progress};
pub use error::{Error, Result};
pub use resolve::{Hub, HubConfig, Resolved};
pub use select::{gguf_quant, Plan};
pub use spec::{is_hub_spec, safe_rel_path, RepoId, Spec, Target, HF_SCHEME};
