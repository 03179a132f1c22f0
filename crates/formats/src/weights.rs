//! [`WeightFile`]: open any supported checkpoint by path and get tensors by name.

use std::path::Path;

use crate::error::Result;
use crate::gguf::GgufFile;
use crate::mmap::{FileLoading, SharedBytes};
use crate::pth::MetaCheckpoint;
use crate::safetensors::SafetensorsModel;
use crate::source::ModelSource;
use crate::tensor::{TensorData, TensorView};

/// Any supported checkpoint, detected from the path.
#[derive(Debug)]
#[non_exhaustive]
pub enum WeightFile {
    /// A `.gguf` file.
    Gguf(GgufFile),
    /// A `.safetensors` file or an HF directory with `*.safetensors` (+ index).
    Safetensors(SafetensorsModel),
    /// A Meta directory with `consolidated.NN.pth` (one or more model-parallel shards).
    Meta(MetaCheckpoint),
}

/// What kind of checkpoint a path holds (see [`detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    Gguf,
    Safetensors,
    /// A Meta directory with `consolidated.*.pth`.
    MetaPth,
}

/// Detects the checkpoint format of `path` without parsing it, by content
/// ([`ModelSource::detect`]); a bare tokenizer is [`FormatError::NotAModel`].
pub fn detect(path: &Path) -> Result<WeightFormat> {
    ModelSource::detect(path)?.weight_format()
}

impl WeightFile {
    /// Opens a `.gguf` file, a `.safetensors` file, or a directory (Meta `consolidated.NN.pth`,
    /// else HF safetensors).
    pub fn open(path: impl AsRef<Path>) -> Result<WeightFile> {
        Self::open_with(path, FileLoading::Map)
    }

    /// Like [`WeightFile::open`], the files mapped or read into memory as `loading` decides
    /// ([`Bytes::open`](crate::mmap::Bytes::open)).
    pub fn open_with(path: impl AsRef<Path>, loading: FileLoading) -> Result<WeightFile> {
        Self::open_source_with(&ModelSource::detect(path)?, loading)
    }

    /// Opens the weights of an already detected `source` (a bare tokenizer is
    /// [`FormatError::NotAModel`]), loaded as `loading` says.
    pub fn open_source_with(source: &ModelSource, loading: FileLoading) -> Result<WeightFile> {
        let path = source.path();
        match source.weight_format()? {
            WeightFormat::Gguf => Ok(WeightFile::Gguf(GgufFile::open_with(path, loading)?)),
            WeightFormat::Safetensors => Ok(WeightFile::Safetensors(SafetensorsModel::open_with(
                path, loading,
            )?)),
            WeightFormat::MetaPth => {
                Ok(WeightFile::Meta(MetaCheckpoint::open_with(path, loading)?))
            }
        }
    }

    /// All tensor names (file order for GGUF, sorted otherwise).
    pub fn names(&self) -> Vec<&str> {
        match self {
            WeightFile::Gguf(g) => g.tensor_infos().iter().map(|t| t.name.as_str()).collect(),
            WeightFile::Safetensors(s) => s.names().iter().map(String::as_str).collect(),
            WeightFile::Meta(m) => m.names(),
        }
    }

    /// A zero-copy view of tensor `name`. For a Meta checkpoint with several model-parallel shards
    /// this fails for split tensors: use [`get`](Self::get), which joins them.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        match self {
            WeightFile::Gguf(g) => g.tensor(name),
            WeightFile::Safetensors(s) => s.tensor(name),
            WeightFile::Meta(m) => m.tensor(name),
        }
    }

    /// Tensor `name`, borrowed from the map whenever possible (always, except for tensors split
    /// across Meta model-parallel shards, which are joined into an owned buffer).
    pub fn get(&self, name: &str) -> Result<TensorData<'_>> {
        match self {
            WeightFile::Meta(m) => m.get(name),
            other => other.tensor(name).map(TensorData::from),
        }
    }

    /// `part` (a tensor's bytes borrowed from this checkpoint) as a range of the shared file it
    /// lies in, which keeps that file's bytes alive on its own; `None` for bytes that are not part
    /// of any of the checkpoint's files (e.g. tensors joined from model-parallel shards).
    pub fn shared(&self, part: &[u8]) -> Option<SharedBytes> {
        match self {
            WeightFile::Gguf(g) => SharedBytes::within(g.shared_bytes(), part),
            WeightFile::Safetensors(s) => s
                .shards()
                .iter()
                .find_map(|f| SharedBytes::within(f.shared_bytes(), part)),
            WeightFile::Meta(m) => m
                .shards()
                .iter()
                .find_map(|f| SharedBytes::within(f.shared_bytes(), part)),
        }
    }

    /// The format of this checkpoint.
    pub fn format(&self) -> WeightFormat {
        match self {
            WeightFile::Gguf(_) => WeightFormat::Gguf,
            WeightFile::Safetensors(_) => WeightFormat::Safetensors,
            WeightFile::Meta(_) => WeightFormat::MetaPth,
        }
    }

    /// The GGUF file, if this is one (for metadata access).
    pub fn as_gguf(&self) -> Option<&GgufFile> {
        match self {
            WeightFile::Gguf(g) => Some(g),
            _ => None,
        }
    }
}
