//! Read-only memory maps of model files (or owned buffers, for tests and in-memory data).

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use crate::error::{FormatError, Result};

/// The bytes of a model file: a read-only memory map, or an owned buffer.
#[derive(Debug)]
pub enum Bytes {
    /// A read-only map of a file.
    Mapped(memmap2::Mmap),
    /// An owned buffer (used for in-memory parsing and for empty files, which cannot be mapped).
    Owned(Vec<u8>),
}

impl Bytes {
    /// Maps `path` read-only.
    pub fn map_file(path: &Path) -> Result<Bytes> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        let len = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
        if len == 0 {
            return Ok(Bytes::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only and we never create a mutable view of it. Memory-mapping is
        // only sound while no one truncates or rewrites the file: if another process shrinks the
        // file while it is mapped, touching the lost pages raises SIGBUS, and a concurrent rewrite
        // changes bytes we already validated. Model files are treated as immutable while open; this
        // is the same contract llama.cpp, candle and safetensors rely on. All bounds are checked
        // against the length of the map, which is fixed at map time.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| FormatError::io(path, e))?;
        tracing::debug!(path = %path.display(), bytes = map.len(), "mapped file");
        Ok(Bytes::Mapped(map))
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}
