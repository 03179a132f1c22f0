//! Typed errors; each message says what went wrong and what to do about it.

use std::path::PathBuf;

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong resolving a model on the hub.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `hf://` spec does not parse.
    #[error(
        "invalid model spec {spec:?}: {why} (expected hf://ORG/NAME[@REVISION][:QUANT|/FILE])"
    )]
    InvalidSpec { spec: String, why: String },

    /// A file name (from the user or the server) that could escape its folder.
    #[error("unsafe file name {0:?} (absolute, empty, `.`/`..` components or odd characters)")]
    UnsafePath(String),

    /// 401/403: no token, a refused token, or a gated repo not yet accepted.
    #[error(
        "{url}: HTTP {status}: access to {repo} was refused{token}. Llama 3.1 repos are gated: \
         accept the license on https://huggingface.co/{repo} while logged in, create a read \
         token at https://huggingface.co/settings/tokens, and set HF_TOKEN=hf_... (or write it \
         to $HF_HOME/token). A private or mistyped repo gives the same answer"
    )]
    Gated {
        repo: String,
        url: String,
        status: u16,
        token: &'static str,
    },

    /// 404: the repo, the revision or the file does not exist.
    #[error("{what} does not exist on the hub ({url}: HTTP 404{code}); check the spelling on https://huggingface.co/{repo}")]
    NotFound {
        repo: String,
        what: String,
        url: String,
        code: String,
    },

    /// Any other HTTP error status.
    #[error("{url}: HTTP {status}")]
    Http { url: String, status: u16 },

    /// The connection failed (DNS, refused, TLS, timeout).
    #[error("{url}: {message} (no network? set HF_HUB_OFFLINE=1 to use only the cache, or HF_ENDPOINT for a mirror)")]
    Network { url: String, message: String },

    /// The server answered something this client cannot use.
    #[error("{url}: unexpected answer from the hub: {why}")]
    BadResponse { url: String, why: String },

    /// Too many redirects.
    #[error("{url}: more than {max} redirects")]
    TooManyRedirects { url: String, max: usize },

    /// A downloaded file's sha256 is not the one the hub announced; the partial file was deleted.
    #[error("{file}: sha256 {actual} does not match the hub's {expected}; the download was deleted, run the command again")]
    ShaMismatch {
        file: String,
        expected: String,
        actual: String,
    },

    /// A downloaded file's size is not the one the hub announced; the partial file was deleted.
    #[error("{file}: got {actual} bytes, the hub announced {expected}; the download was deleted, run the command again")]
    SizeMismatch {
        file: String,
        expected: u64,
        actual: u64,
    },

    /// The transfer kept failing; the partial file stays and the next run resumes it.
    #[error("{file}: download interrupted at {have} bytes of {total} ({why}); run the command again to resume")]
    Interrupted {
        file: String,
        have: u64,
        total: String,
        why: String,
    },

    /// Offline mode (or no network) and the cache lacks what is asked for.
    #[error("{what} is not in the cache {cache} and HF_HUB_OFFLINE is set (or the hub is unreachable); pull it while online: llama31 pull {spec}")]
    NotCached {
        spec: String,
        what: String,
        cache: PathBuf,
    },

    /// The repo (or folder) holds no model files this tool can load.
    #[error("{repo}{dir}: no model files (a .gguf, config.json with safetensors, or Meta's params.json with consolidated.*.pth); files: {files}")]
    NoModelFiles {
        repo: String,
        dir: String,
        files: String,
    },

    /// No GGUF file matches the quant tag.
    #[error("{repo}: no .gguf file matches {quant:?}; available: {available}")]
    QuantNotFound {
        repo: String,
        quant: String,
        available: String,
    },

    /// A GGUF split into parts, which the loader does not read.
    #[error("{repo}: {file} is one part of a split GGUF; split files are not supported yet: merge them with llama.cpp's `llama-gguf-split --merge`, or pick a quant that is a single file")]
    SplitGguf { repo: String, file: String },

    /// `rm` of a folder that is not a repo folder directly inside the cache.
    #[error("refusing to remove {0}: not a repo folder inside the hub cache")]
    OutsideCache(PathBuf),

    /// `rm` of a repo that is not cached.
    #[error("{repo} is not in the cache {cache} (see llama31 list)")]
    RepoNotCached { repo: String, cache: PathBuf },

    /// A configuration value (environment) that cannot be used.
    #[error("{0}")]
    Config(String),

    /// A file-system error on a cache path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
