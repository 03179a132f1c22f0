//! Meta checkpoints: `consolidated.NN.pth` files written by `torch.save` (a zip of stored entries:
//! `<prefix>/data.pkl`, `<prefix>/data/<storage key>`, `<prefix>/byteorder`, `<prefix>/version`).
//!
//! [`PthFile`] reads one file with the restricted unpickler ([`pickle`]), which never executes
//! anything, and hands tensors out zero-copy. [`MetaCheckpoint`] opens a directory of
//! model-parallel shards and joins sharded tensors ([`shards`]).

pub mod pickle;
pub mod shards;
pub mod zip;

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{FormatError, Result};
use crate::mmap::{Bytes, FileLoading};
use crate::tensor::{TensorData, TensorView};
use pickle::{TensorDesc, Value};
use zip::ZipIndex;

/// One tensor of a `.pth` file.
#[derive(Debug, Clone, PartialEq)]
pub struct PthTensor {
    /// Key in the state dict.
    pub name: String,
    /// What the pickle says about it (storage, offset, shape, stride).
    pub desc: TensorDesc,
    /// Byte range of the tensor's data in the file, when it is contiguous.
    contiguous: Option<Range<usize>>,
}

impl PthTensor {
    /// Whether the tensor is a row-major contiguous view of its storage.
    pub fn is_contiguous(&self) -> bool {
        self.contiguous.is_some()
    }
}

/// A `torch.save`d state dict, memory-mapped.
#[derive(Debug)]
pub struct PthFile {
    path: PathBuf,
    bytes: std::sync::Arc<Bytes>,
    tensors: Vec<PthTensor>,
    index: HashMap<String, usize>,
}

fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

impl PthFile {
    /// Memory-maps and parses the checkpoint at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, FileLoading::Map)
    }

    /// Like [`PthFile::open`], mapping the file or reading it into memory as `loading` decides
    /// ([`Bytes::open`]).
    pub fn open_with(path: impl AsRef<Path>, loading: FileLoading) -> Result<Self> {
        let path = path.as_ref();
        let bytes = Bytes::open(path, loading)?;
        Self::parse(path.to_path_buf(), bytes)
    }

    /// Parses a checkpoint held in memory; `name` is used in error messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::parse(name.into(), Bytes::Owned(bytes))
    }

    fn parse(path: PathBuf, bytes: Bytes) -> Result<Self> {
        if bytes.get(..2) != Some(b"PK".as_slice()) {
            return Err(FormatError::BadMagic {
                path,
                format: "PyTorch zip checkpoint",
                found: bytes.get(..bytes.len().min(4)).unwrap_or(&[]).to_vec(),
            });
        }
        let zip = ZipIndex::parse(&path, &bytes)?;
        let pkl: Vec<&zip::ZipEntry> = zip
            .entries()
            .iter()
            .filter(|e| e.name.ends_with("/data.pkl") && e.name.matches('/').count() == 1)
            .collect();
        let pkl = match pkl.as_slice() {
            [one] => *one,
            [] => {
                return Err(FormatError::Zip {
                    path,
                    msg: "no `<prefix>/data.pkl` entry (not a torch.save checkpoint)".into(),
                })
            }
            _ => {
                return Err(FormatError::Zip {
                    path,
                    msg: "several `<prefix>/data.pkl` entries".into(),
                })
            }
        };
        let prefix = pkl.name.trim_end_matches("data.pkl").to_owned();
        if let Some(bo) = zip.get(&format!("{prefix}byteorder")) {
            let v = bytes.get(bo.data.clone()).unwrap_or(&[]);
            if v != b"little" {
                return Err(FormatError::Zip {
                    path,
                    msg: format!(
                        "byteorder is {:?}, only little-endian is supported",
                        String::from_utf8_lossy(v)
                    ),
                });
            }
        }
        let pkl_bytes = bytes.get(pkl.data.clone()).unwrap_or(&[]);
        let value = pickle::unpickle(&path, &pkl.name, pkl_bytes)?;
        let Value::Dict(items) = value else {
            return Err(FormatError::Pickle {
                path,
                entry: pkl.name.clone(),
                offset: 0,
                msg: "top-level object is not a dict (state dict expected)".into(),
            });
        };
        let mut tensors = Vec::with_capacity(items.len());
        let mut index = HashMap::with_capacity(items.len());
        for (k, v) in items {
            let (Value::Str(name), Value::Tensor(desc)) = (k, v) else {
                tracing::debug!(path = %path.display(), "skipping non-tensor state dict entry");
                continue;
            };
            let bad = |msg: String| FormatError::InvalidTensor {
                path: path.clone(),
                name: name.clone(),
                msg,
            };
            let storage_name = format!("{prefix}data/{}", desc.storage.key);
            let entry = zip
                .get(&storage_name)
                .ok_or_else(|| bad(format!("storage entry `{storage_name}` is missing")))?;
            let elem = desc
                .storage
                .dtype
                .elem_size()
                .ok_or_else(|| bad("storage has no element size".into()))?;
            let storage_bytes = desc.storage.numel.checked_mul(elem);
            if storage_bytes.is_none_or(|b| b > entry.data.len()) {
                return Err(bad(format!(
                    "storage `{}` declares {} elements of {} but its entry has {} bytes",
                    desc.storage.key,
                    desc.storage.numel,
                    desc.storage.dtype,
                    entry.data.len()
                )));
            }
            let numel = desc
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad(format!("shape {:?} overflows", desc.shape)))?;
            let contiguous = if is_contiguous(&desc.shape, &desc.stride) {
                let end_elem = desc.storage_offset.checked_add(numel);
                if end_elem.is_none_or(|e| e > desc.storage.numel) {
                    return Err(bad(format!(
                        "offset {} + {numel} elements exceed the storage's {} elements",
                        desc.storage_offset, desc.storage.numel
                    )));
                }
                // Both fit in the storage, whose byte size was checked above: no overflow.
                let start = entry.data.start + desc.storage_offset * elem;
                Some(start..start + numel * elem)
            } else {
                None
            };
            if index.insert(name.clone(), tensors.len()).is_some() {
                return Err(FormatError::DuplicateTensor { path, name });
            }
            tensors.push(PthTensor {
                name,
                desc,
                contiguous,
            });
        }
        tracing::debug!(path = %path.display(), tensors = tensors.len(), "opened torch checkpoint");
        Ok(PthFile {
            path,
            bytes: std::sync::Arc::new(bytes),
            tensors,
            index,
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

    /// Tensors in state-dict order.
    pub fn tensor_infos(&self) -> &[PthTensor] {
        &self.tensors
    }

    /// Tensor names in state-dict order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|t| t.name.as_str())
    }

    /// Whether the file holds tensor `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// A zero-copy view of tensor `name`; non-contiguous tensors are reported as errors.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let t = self
            .index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
            .ok_or_else(|| FormatError::TensorNotFound {
                path: self.path.clone(),
                name: name.to_owned(),
            })?;
        let range = t.contiguous.clone().ok_or_else(|| FormatError::InvalidTensor {
            path: self.path.clone(),
            name: name.to_owned(),
            msg: format!(
                "not contiguous (shape {:?}, stride {:?}); only row-major contiguous tensors are supported",
                t.desc.shape, t.desc.stride
            ),
        })?;
        let data = self
            .bytes
            .get(range)
            .ok_or_else(|| FormatError::InvalidTensor {
                path: self.path.clone(),
                name: name.to_owned(),
                msg: "data lies outside the file".into(),
            })?;
        Ok(TensorView {
            name: &t.name,
            dtype: t.desc.storage.dtype,
            shape: t.desc.shape.clone(),
            data,
        })
    }
}

/// A Meta checkpoint directory: `consolidated.00.pth` … `consolidated.NN.pth` (model-parallel
/// shards, numbered without gaps).
#[derive(Debug)]
pub struct MetaCheckpoint {
    dir: PathBuf,
    shards: Vec<PthFile>,
}

/// The shard files of a Meta checkpoint directory, in order; error on gaps.
pub fn consolidated_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut numbered = Vec::new();
    for p in crate::safetensors::list_with_suffix(dir, ".pth")? {
        let Some(n) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(num) = n
            .strip_prefix("consolidated.")
            .and_then(|r| r.strip_suffix(".pth"))
        else {
            continue;
        };
        match num.parse::<usize>() {
            Ok(i) => numbered.push((i, p)),
            Err(_) => continue,
        }
    }
    numbered.sort();
    for (want, (i, p)) in numbered.iter().enumerate() {
        if *i != want {
            return Err(FormatError::NotAModel {
                path: dir.to_path_buf(),
                msg: format!("shard {want} is missing (found {})", p.display()),
            });
        }
    }
    if numbered.is_empty() {
        return Err(FormatError::NotAModel {
            path: dir.to_path_buf(),
            msg: "no consolidated.NN.pth files".into(),
        });
    }
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}

impl MetaCheckpoint {
    /// Opens every `consolidated.NN.pth` in `dir`; all shards must hold the same tensor names.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, FileLoading::Map)
    }

    /// Like [`MetaCheckpoint::open`], each shard mapped or read as `loading` decides.
    pub fn open_with(dir: impl AsRef<Path>, loading: FileLoading) -> Result<Self> {
        let dir = dir.as_ref();
        let shards = consolidated_files(dir)?
            .iter()
            .map(|p| PthFile::open_with(p, loading))
            .collect::<Result<Vec<_>>>()?;
        if let Some((first, rest)) = shards.split_first() {
            for s in rest {
                for n in first.names() {
                    if !s.contains(n) {
                        return Err(FormatError::ShardMismatch {
                            path: s.path().to_path_buf(),
                            name: n.to_owned(),
                            msg: format!("present in {} but missing here", first.path().display()),
                        });
                    }
                }
                if s.tensors.len() != first.tensors.len() {
                    return Err(FormatError::ShardMismatch {
                        path: s.path().to_path_buf(),
                        name: String::new(),
                        msg: format!(
                            "{} tensors, shard 0 has {}",
                            s.tensors.len(),
                            first.tensors.len()
                        ),
                    });
                }
            }
        }
        Ok(MetaCheckpoint {
            dir: dir.to_path_buf(),
            shards,
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The shard files.
    pub fn shards(&self) -> &[PthFile] {
        &self.shards
    }

    /// Tensor names (shard 0's state-dict order).
    pub fn names(&self) -> Vec<&str> {
        self.shards
            .first()
            .map(|s| s.names().collect())
            .unwrap_or_default()
    }

    fn parts(&self, name: &str) -> Result<Vec<TensorView<'_>>> {
        self.shards.iter().map(|s| s.tensor(name)).collect()
    }

    /// The dim along which tensor `name` is split across shards (`None`: replicated). The Llama 3
    /// rule ([`shards::llama_shard_dim`]), except that a Llama 2 style `tok_embeddings` (split
    /// over the embedding dim) is detected from the shard shapes ([`shards::tok_embeddings_dim`]).
    pub fn shard_dim(&self, name: &str) -> Option<usize> {
        if name == "tok_embeddings.weight" {
            let first = self.shards.first()?;
            let emb = first.tensor_infos().iter().find(|t| t.name == name)?;
            let out = first
                .tensor_infos()
                .iter()
                .find(|t| t.name == "output.weight");
            return Some(shards::tok_embeddings_dim(
                &emb.desc.shape,
                out.map(|t| t.desc.shape.as_slice()),
            ));
        }
        shards::llama_shard_dim(name)
    }

    /// A zero-copy view, only possible when there is one shard or the tensor is replicated.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let first = self.shards.first().ok_or_else(|| FormatError::NotAModel {
            path: self.dir.clone(),
            msg: "no shards".into(),
        })?;
        if self.shards.len() == 1 || self.shard_dim(name).is_none() {
            return first.tensor(name);
        }
        Err(FormatError::ShardMismatch {
            path: self.dir.clone(),
            name: name.to_owned(),
            msg: format!(
                "split across {} model-parallel shards: use `get` / `join_into` (a copy is needed)",
                self.shards.len()
            ),
        })
    }

    /// The full (joined) shape of tensor `name`.
    pub fn joined_shape(&self, name: &str) -> Result<Vec<usize>> {
        let parts = self.parts(name)?;
        shards::joined_shape(&self.dir, name, &parts, self.shard_dim(name))
    }

    /// Joins tensor `name` from all shards into `out` (exactly the joined byte size).
    pub fn join_into(&self, name: &str, out: &mut [u8]) -> Result<()> {
        let parts = self.parts(name)?;
        shards::join_into(&self.dir, name, &parts, self.shard_dim(name), out)
    }

    /// Tensor `name`: borrowed when one shard holds all of it, otherwise joined into an owned
    /// buffer using the Llama model-parallel rule ([`MetaCheckpoint::shard_dim`]).
    pub fn get(&self, name: &str) -> Result<TensorData<'_>> {
        let mut parts = self.parts(name)?;
        let dim = self.shard_dim(name);
        if parts.len() == 1 {
            if let Some(p) = parts.pop() {
                return Ok(p.into());
            }
        }
        let shape = shards::joined_shape(&self.dir, name, &parts, dim)?;
        let first = parts.first().ok_or_else(|| FormatError::TensorNotFound {
            path: self.dir.clone(),
            name: name.to_owned(),
        })?;
        if dim.is_none() {
            return Ok(TensorData {
                name: name.to_owned(),
                dtype: first.dtype,
                shape,
                data: Cow::Borrowed(first.data),
            });
        }
        let n = first
            .dtype
            .bytes_for_shape(&shape)
            .ok_or_else(|| FormatError::ShardMismatch {
                path: self.dir.clone(),
                name: name.to_owned(),
                msg: "joined size overflows".into(),
            })?;
        let mut out = vec![0u8; n];
        shards::join_into(&self.dir, name, &parts, dim, &mut out)?;
        Ok(TensorData {
            name: name.to_owned(),
            dtype: first.dtype,
            shape,
            data: Cow::Owned(out),
        })
    }
}
