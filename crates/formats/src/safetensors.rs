//! safetensors: single files ([`SafetensorsFile`]) and sharded checkpoints
//! ([`SafetensorsModel`], via `model.safetensors.index.json`).
//!
//! Header validation (header size, JSON, offsets contiguous without holes or overlap, byte size =
//! shape × dtype, data ending exactly at the end of the file) is done by the `safetensors` crate;
//! its errors are reported as [`FormatError::Safetensors`] with the file name.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype as StDtype, SafeTensors};

use crate::dtype::DType;
use crate::error::{FormatError, Result};
use crate::mmap::{Bytes, FileLoading};
use crate::tensor::TensorView;

/// Name of the index file of a sharded HF checkpoint.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";

#[derive(Debug, Clone)]
struct StTensor {
    name: String,
    /// `Err(name of the safetensors dtype)` when the dtype is not supported.
    dtype: std::result::Result<DType, String>,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// One memory-mapped `.safetensors` file.
#[derive(Debug)]
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: std::sync::Arc<Bytes>,
    tensors: Vec<StTensor>,
    index: HashMap<String, usize>,
    metadata: HashMap<String, String>,
}

fn map_dtype(d: StDtype) -> std::result::Result<DType, String> {
    Ok(match d {
        StDtype::F32 => DType::F32,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F64 => DType::F64,
        StDtype::I8 => DType::I8,
        StDtype::I16 => DType::I16,
        StDtype::I32 => DType::I32,
        StDtype::I64 => DType::I64,
        StDtype::U8 => DType::U8,
        StDtype::BOOL => DType::Bool,
        other => return Err(format!("{other:?}")),
    })
}

impl SafetensorsFile {
    /// Memory-maps and validates the safetensors file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, FileLoading::Map)
    }

    /// Like [`SafetensorsFile::open`], mapping the file or reading it into memory as `loading`
    /// decides ([`Bytes::open`]).
    pub fn open_with(path: impl AsRef<Path>, loading: FileLoading) -> Result<Self> {
        let path = path.as_ref();
        let bytes = Bytes::open(path, loading)?;
        Self::parse(path.to_path_buf(), bytes)
    }

    /// Parses a safetensors file held in memory; `name` is used in error messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::parse(name.into(), Bytes::Owned(bytes))
    }

    fn parse(path: PathBuf, bytes: Bytes) -> Result<Self> {
        let st_err = |e: safetensors::SafeTensorError| FormatError::Safetensors {
            path: path.clone(),
            msg: describe(e),
        };
        let (header_len, meta) = SafeTensors::read_metadata(&bytes).map_err(st_err)?;
        let data_start = 8usize.saturating_add(header_len);
        let infos = meta.tensors();
        let mut tensors = Vec::with_capacity(infos.len());
        let mut index = HashMap::with_capacity(infos.len());
        let mut names: Vec<String> = infos.into_keys().collect();
        names.sort();
        for name in names {
            let info = meta.info(&name).ok_or_else(|| FormatError::Safetensors {
                path: path.clone(),
                msg: format!("tensor `{name}` listed but has no info"),
            })?;
            let (s, e) = info.data_offsets;
            let (start, end) = match (data_start.checked_add(s), data_start.checked_add(e)) {
                (Some(a), Some(b)) if a <= b && b <= bytes.len() => (a, b),
                _ => {
                    return Err(FormatError::Safetensors {
                        path: path.clone(),
                        msg: format!("tensor `{name}`: offsets {s}..{e} outside the file"),
                    })
                }
            };
            index.insert(name.clone(), tensors.len());
            tensors.push(StTensor {
                name,
                dtype: map_dtype(info.dtype),
                shape: info.shape.clone(),
                start,
                end,
            });
        }
        let metadata = meta.metadata().clone().unwrap_or_default();
        tracing::debug!(path = %path.display(), tensors = tensors.len(), "opened safetensors");
        Ok(SafetensorsFile {
            path,
            bytes: std::sync::Arc::new(bytes),
            tensors,
            index,
            metadata,
        })
    }

    /// The file's bytes, shared: weights keep them alive through [`SharedBytes`].
    pub fn shared_bytes(&self) -> &std::sync::Arc<Bytes> {
        &self.bytes
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `__metadata__` string map of the header (empty if absent).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|t| t.name.as_str())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Whether the file holds tensor `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// A zero-copy view of tensor `name`; unsupported dtypes give [`FormatError::UnsupportedDType`].
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let t = self
            .index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
            .ok_or_else(|| FormatError::TensorNotFound {
                path: self.path.clone(),
                name: name.to_owned(),
            })?;
        let dtype = t.dtype.clone().map_err(|d| FormatError::UnsupportedDType {
            path: self.path.clone(),
            name: name.to_owned(),
            dtype: d,
        })?;
        let data = self
            .bytes
            .get(t.start..t.end)
            .ok_or_else(|| FormatError::InvalidTensor {
                path: self.path.clone(),
                name: name.to_owned(),
                msg: "data lies outside the file".into(),
            })?;
        Ok(TensorView {
            name: &t.name,
            dtype,
            shape: t.shape.clone(),
            data,
        })
    }
}

fn describe(e: safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooLarge => "header length is larger than 100 MB or than the file".into(),
        E::HeaderTooSmall => "file is shorter than the 8-byte header length".into(),
        E::InvalidHeaderLength => "header length points past the end of the file".into(),
        E::InvalidHeader => "header is not valid UTF-8".into(),
        E::InvalidHeaderStart => "header does not start with `{`".into(),
        E::InvalidHeaderDeserialization => "header is not valid safetensors JSON".into(),
        E::InvalidOffset(name) => format!(
            "tensor `{name}`: data offsets are not contiguous (overlap, hole or reversed range)"
        ),
        E::TensorInvalidInfo => "a tensor's byte size does not equal shape × dtype size".into(),
        E::MetadataIncompleteBuffer => {
            "tensor data does not end exactly at the end of the file (truncated or trailing bytes)"
                .into()
        }
        E::ValidationOverflow => "shape × dtype size overflows".into(),
        other => format!("{other:?}"),
    }
}

#[derive(serde::Deserialize)]
struct IndexJson {
    weight_map: HashMap<String, String>,
}

/// A safetensors checkpoint: one or more shard files, tensors looked up by name.
#[derive(Debug)]
pub struct SafetensorsModel {
    dir: PathBuf,
    shards: Vec<SafetensorsFile>,
    /// tensor name → shard index
    map: HashMap<String, usize>,
    names: Vec<String>,
}

impl SafetensorsModel {
    /// Opens a single `.safetensors` file, or a directory: with `model.safetensors.index.json`
    /// the shards it names (every `weight_map` entry must exist in its shard), otherwise every
    /// `*.safetensors` file in it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, FileLoading::Map)
    }

    /// Like [`SafetensorsModel::open`], each shard mapped or read into memory as `loading`
    /// decides ([`Bytes::open`]).
    pub fn open_with(path: impl AsRef<Path>, loading: FileLoading) -> Result<Self> {
        let path = path.as_ref();
        if path.is_file() {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            return Self::from_shards(dir, vec![SafetensorsFile::open_with(path, loading)?]);
        }
        let index_path = path.join(SAFETENSORS_INDEX);
        if index_path.is_file() {
            return Self::open_index_with(&index_path, loading);
        }
        let mut files = list_with_suffix(path, ".safetensors")?;
        files.sort();
        if files.is_empty() {
            return Err(FormatError::NotAModel {
                path: path.to_path_buf(),
                msg: "no *.safetensors files".into(),
            });
        }
        let shards = files
            .iter()
            .map(|f| SafetensorsFile::open_with(f, loading))
            .collect::<Result<Vec<_>>>()?;
        Self::from_shards(path.to_path_buf(), shards)
    }

    /// Opens a sharded checkpoint from its `model.safetensors.index.json`.
    pub fn open_index(index_path: &Path) -> Result<Self> {
        Self::open_index_with(index_path, FileLoading::Map)
    }

    /// Like [`SafetensorsModel::open_index`], each shard mapped or read as `loading` decides.
    pub fn open_index_with(index_path: &Path, loading: FileLoading) -> Result<Self> {
        let dir = index_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let text =
            std::fs::read_to_string(index_path).map_err(|e| FormatError::io(index_path, e))?;
        let idx: IndexJson = serde_json::from_str(&text).map_err(|e| FormatError::Json {
            path: index_path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let files: BTreeSet<&String> = idx.weight_map.values().collect();
        let mut shards = Vec::with_capacity(files.len());
        let mut shard_of_file = HashMap::new();
        for f in files {
            let tensor = idx
                .weight_map
                .iter()
                .find(|(_, v)| *v == f)
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            let plain = Path::new(f)
                .file_name()
                .is_some_and(|n| n == f.as_str() && f != ".." && f != ".");
            if !plain {
                return Err(FormatError::Json {
                    path: index_path.to_path_buf(),
                    msg: format!(
                        "shard name `{f}` (for tensor `{tensor}`) is not a plain file name"
                    ),
                });
            }
            let p = dir.join(f);
            if !p.is_file() {
                return Err(FormatError::MissingShard {
                    path: index_path.to_path_buf(),
                    shard: f.clone(),
                    tensor,
                });
            }
            shard_of_file.insert(f.clone(), shards.len());
            shards.push(SafetensorsFile::open_with(&p, loading)?);
        }
        let mut map = HashMap::with_capacity(idx.weight_map.len());
        for (name, f) in &idx.weight_map {
            let &si = shard_of_file
                .get(f)
                .ok_or_else(|| FormatError::MissingShard {
                    path: index_path.to_path_buf(),
                    shard: f.clone(),
                    tensor: name.clone(),
                })?;
            let shard = shards.get(si).ok_or_else(|| FormatError::MissingShard {
                path: index_path.to_path_buf(),
                shard: f.clone(),
                tensor: name.clone(),
            })?;
            if !shard.contains(name) {
                return Err(FormatError::TensorNotFound {
                    path: shard.path().to_path_buf(),
                    name: name.clone(),
                });
            }
            map.insert(name.clone(), si);
        }
        let mut names: Vec<String> = map.keys().cloned().collect();
        names.sort();
        Ok(SafetensorsModel {
            dir,
            shards,
            map,
            names,
        })
    }

    fn from_shards(dir: PathBuf, shards: Vec<SafetensorsFile>) -> Result<Self> {
        let mut map = HashMap::new();
        for (i, s) in shards.iter().enumerate() {
            for n in s.names() {
                if map.insert(n.to_owned(), i).is_some() {
                    return Err(FormatError::DuplicateTensor {
                        path: s.path().to_path_buf(),
                        name: n.to_owned(),
                    });
                }
            }
        }
        let mut names: Vec<String> = map.keys().cloned().collect();
        names.sort();
        Ok(SafetensorsModel {
            dir,
            shards,
            map,
            names,
        })
    }

    /// The directory of the checkpoint.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The shard files.
    pub fn shards(&self) -> &[SafetensorsFile] {
        &self.shards
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// A zero-copy view of tensor `name` from whichever shard holds it.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let shard = self
            .map
            .get(name)
            .and_then(|&i| self.shards.get(i))
            .ok_or_else(|| FormatError::TensorNotFound {
                path: self.dir.clone(),
                name: name.to_owned(),
            })?;
        shard.tensor(name)
    }
}

/// Files directly in `dir` whose names end with `suffix`.
pub(crate) fn list_with_suffix(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| FormatError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| FormatError::io(dir, e))?;
        let p = entry.path();
        if p.is_file()
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
        {
            out.push(p);
        }
    }
    Ok(out)
}
