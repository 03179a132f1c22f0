//! The error type of this crate: every variant names the file and says what is wrong and where.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading or writing a model file.
///
/// Every variant that concerns a file carries its `path` (for in-memory buffers, the name given to
/// the constructor), and where it makes sense the byte `offset` at which the problem was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Opening, mapping, reading or writing the file failed.
    #[error("{}: I/O error: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file ends before a structure that it announces.
    #[error(
        "{}: truncated: {what} at byte {offset} needs {needed} bytes, but only {available} remain",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    /// The file does not start with the expected magic bytes.
    #[error("{}: not a {format} file: magic bytes are {found:02x?}", path.display())]
    BadMagic {
        path: PathBuf,
        format: &'static str,
        found: Vec<u8>,
    },
    /// The file's format version is not supported.
    #[error("{}: unsupported {format} version {version} ({hint})", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        format: &'static str,
        version: u32,
        hint: &'static str,
    },
    /// A GGUF metadata value has a type id outside the specification.
    #[error("{}: metadata key `{key}` at byte {offset} has unknown value type {type_id}", path.display())]
    UnknownValueType {
        path: PathBuf,
        key: String,
        offset: u64,
        type_id: u32,
    },
    /// A GGUF tensor has a ggml type id that this crate does not know.
    #[error("{}: tensor `{tensor}` has unknown ggml type {type_id}", path.display())]
    UnknownGgmlType {
        path: PathBuf,
        tensor: String,
        type_id: u32,
    },
    /// The same metadata key appears twice.
    #[error("{}: duplicate metadata key `{key}`", path.display())]
    DuplicateKey { path: PathBuf, key: String },
    /// The same tensor name appears twice.
    #[error("{}: duplicate tensor name `{name}`", path.display())]
    DuplicateTensor { path: PathBuf, name: String },
    /// `general.alignment` is zero or not a power of two.
    #[error("{}: invalid alignment {alignment}: must be a non-zero power of two", path.display())]
    InvalidAlignment { path: PathBuf, alignment: u64 },
    /// A tensor's description is inconsistent (dims, offset, size, overlap, ...).
    #[error("{}: tensor `{name}`: {msg}", path.display())]
    InvalidTensor {
        path: PathBuf,
        name: String,
        msg: String,
    },
    /// Any other structural problem in the file.
    #[error("{}: invalid {format} file at byte {offset}: {msg}", path.display())]
    Invalid {
        path: PathBuf,
        format: &'static str,
        offset: u64,
        msg: String,
    },
    /// A required metadata key is absent.
    #[error("{}: metadata key `{key}` is missing", path.display())]
    MissingKey { path: PathBuf, key: String },
    /// A metadata key has a type that cannot be converted to the requested one.
    #[error("{}: metadata key `{key}`: expected {expected}, found {found}", path.display())]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: String,
    },
    /// A tensor was requested by a name that the file does not contain.
    #[error("{}: no tensor named `{name}`", path.display())]
    TensorNotFound { path: PathBuf, name: String },
    /// The safetensors header or data is invalid (error from the `safetensors` crate).
    #[error("{}: invalid safetensors file: {msg}", path.display())]
    Safetensors { path: PathBuf, msg: String },
    /// A sharded checkpoint's index refers to a shard file that does not exist.
    #[error("{}: shard `{shard}` (for tensor `{tensor}`) does not exist", path.display())]
    MissingShard {
        path: PathBuf,
        shard: String,
        tensor: String,
    },
    /// A tensor has a dtype that this crate cannot hand out.
    #[error("{}: tensor `{name}` has unsupported dtype {dtype}", path.display())]
    UnsupportedDType {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    /// A pickle refers to a global that the restricted unpickler refuses to touch.
    #[error(
        "{}: pickle refers to forbidden global `{global}` (only collections.OrderedDict, \
         torch._utils._rebuild_tensor_v2 and torch storage types are allowed); nothing was executed",
        path.display()
    )]
    ForbiddenGlobal { path: PathBuf, global: String },
    /// The pickle stream is malformed or uses an unsupported opcode.
    #[error("{}: pickle `{entry}` at byte {offset}: {msg}", path.display())]
    Pickle {
        path: PathBuf,
        entry: String,
        offset: u64,
        msg: String,
    },
    /// The zip container of a PyTorch checkpoint is malformed or unsupported.
    #[error("{}: zip: {msg}", path.display())]
    Zip { path: PathBuf, msg: String },
    /// A JSON file (safetensors index) is malformed.
    #[error("{}: invalid JSON: {msg}", path.display())]
    Json { path: PathBuf, msg: String },
    /// Model-parallel shards of a tensor disagree (shape, dtype, presence).
    #[error("{}: tensor `{name}`: shards disagree: {msg}", path.display())]
    ShardMismatch {
        path: PathBuf,
        name: String,
        msg: String,
    },
    /// The path is none of the things that make a model: `msg` says what it is not and what was
    /// expected.
    #[error("{} is not a model: {msg}", path.display())]
    NotAModel { path: PathBuf, msg: String },
    /// Writing a file was asked for something inconsistent.
    #[error("{}: cannot write: {msg}", path.display())]
    Write { path: PathBuf, msg: String },
}

impl FormatError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            source,
        }
    }
}
