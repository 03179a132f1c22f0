//! GGUF writer (version 3): metadata + tensors with alignment padding.
//!
//! Used by tests to build (and then corrupt) files, and by `llama31 quantize`. Shapes are given
//! row-major (outermost first) like everywhere in this crate; the writer stores them innermost
//! first as GGUF requires.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::dtype::DType;
use crate::error::{FormatError, Result};
use crate::gguf::read::{GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_DIMS};
use crate::gguf::types::{GgufArray, GgufValue};

/// A tensor to be written.
#[derive(Debug, Clone)]
pub struct GgufWriterTensor<'a> {
    /// Tensor name.
    pub name: String,
    /// ggml type of `data`.
    pub ggml_type: DType,
    /// Row-major shape, outermost first.
    pub shape: Vec<usize>,
    /// Raw bytes, exactly `ggml_type.bytes_for_shape(&shape)` long; `None` for tensors added with
    /// [`GgufWriter::add_tensor_info`] whose data is streamed later.
    pub data: Option<Cow<'a, [u8]>>,
}

/// Builds a GGUF v3 file in memory or streams it to a writer.
#[derive(Debug, Clone, Default)]
pub struct GgufWriter<'a> {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<GgufWriterTensor<'a>>,
}

fn werr(msg: impl Into<String>) -> FormatError {
    FormatError::Write {
        path: PathBuf::from("<gguf writer>"),
        msg: msg.into(),
    }
}

impl<'a> GgufWriter<'a> {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a metadata pair. Setting `general.alignment` changes the data alignment.
    pub fn add_metadata(
        &mut self,
        key: impl Into<String>,
        value: impl Into<GgufValue>,
    ) -> &mut Self {
        let key = key.into();
        let value = value.into();
        if let Some(slot) = self.metadata.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.metadata.push((key, value));
        }
        self
    }

    /// Adds a tensor. Sizes and names are checked by [`write_to`](Self::write_to).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ggml_type: DType,
        shape: &[usize],
        data: impl Into<Cow<'a, [u8]>>,
    ) -> &mut Self {
        self.tensors.push(GgufWriterTensor {
            name: name.into(),
            ggml_type,
            shape: shape.to_vec(),
            data: Some(data.into()),
        });
        self
    }

    /// Adds a tensor whose data will be streamed after the header (for outputs too large to hold
    /// in memory): call [`write_header_to`](Self::write_header_to), then
    /// [`write_tensor_data`](Self::write_tensor_data) for every tensor in order.
    pub fn add_tensor_info(
        &mut self,
        name: impl Into<String>,
        ggml_type: DType,
        shape: &[usize],
    ) -> &mut Self {
        self.tensors.push(GgufWriterTensor {
            name: name.into(),
            ggml_type,
            shape: shape.to_vec(),
            data: None,
        });
        self
    }

    /// The alignment the file will use (`general.alignment` if set, else 32).
    pub fn alignment(&self) -> Result<usize> {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => Ok(GGUF_DEFAULT_ALIGNMENT),
            Some((_, v)) => match v.as_integer().and_then(|a| usize::try_from(a).ok()) {
                Some(a) if a.is_power_of_two() => Ok(a),
                _ => Err(werr(format!("general.alignment {v} is not a power of two"))),
            },
        }
    }

    /// Serialises the file into a vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// Writes the file to `path` (created or truncated).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let f = std::fs::File::create(path).map_err(|e| FormatError::io(path, e))?;
        let mut w = std::io::BufWriter::new(f);
        self.write_to(&mut w).map_err(|e| match e {
            FormatError::Write { msg, .. } => FormatError::Write {
                path: path.to_path_buf(),
                msg,
            },
            FormatError::Io { source, .. } => FormatError::io(path, source),
            other => other,
        })?;
        w.flush().map_err(|e| FormatError::io(path, e))
    }

    /// Checks names and shapes; returns each tensor's byte size and offset in the data section.
    fn layout(&self, alignment: usize) -> Result<Vec<(usize, usize)>> {
        let mut names = HashSet::new();
        let mut out = Vec::with_capacity(self.tensors.len());
        let mut offset = 0usize;
        for t in &self.tensors {
            if !names.insert(t.name.as_str()) {
                return Err(werr(format!("duplicate tensor name `{}`", t.name)));
            }
            if t.shape.is_empty() || t.shape.len() > GGUF_MAX_DIMS {
                return Err(werr(format!(
                    "tensor `{}`: {} dims, must be 1..=4",
                    t.name,
                    t.shape.len()
                )));
            }
            if t.shape.contains(&0) {
                return Err(werr(format!(
                    "tensor `{}`: shape {:?} has a zero dimension",
                    t.name, t.shape
                )));
            }
            if t.ggml_type.ggml_id().is_none() {
                return Err(werr(format!(
                    "tensor `{}`: {} has no ggml type id",
                    t.name, t.ggml_type
                )));
            }
            let need = t.ggml_type.bytes_for_shape(&t.shape).ok_or_else(|| {
                werr(format!(
                    "tensor `{}`: shape {:?} invalid for {} (block size {})",
                    t.name,
                    t.shape,
                    t.ggml_type,
                    t.ggml_type.block_size()
                ))
            })?;
            if let Some(d) = &t.data {
                if need != d.len() {
                    return Err(werr(format!(
                        "tensor `{}`: {} bytes of data, shape {:?} of {} needs {need}",
                        t.name,
                        d.len(),
                        t.shape,
                        t.ggml_type
                    )));
                }
            }
            out.push((need, offset));
            offset = offset
                .checked_add(need)
                .and_then(|o| o.checked_next_multiple_of(alignment))
                .ok_or_else(|| werr("data section size overflows"))?;
        }
        Ok(out)
    }

    /// Writes the header (magic, counts, metadata, tensor infos, padding) to `w`. The data of each
    /// tensor must follow, in order, via [`write_tensor_data`](Self::write_tensor_data).
    pub fn write_header_to<W: Write>(&self, w: &mut W) -> Result<()> {
        let alignment = self.alignment()?;
        let layout = self.layout(alignment)?;
        let mut header = Vec::new();
        header.extend_from_slice(&GGUF_MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            write_string(&mut header, k);
            header.extend_from_slice(&v.value_type().id().to_le_bytes());
            write_value(&mut header, v);
        }
        for (t, &(_, off)) in self.tensors.iter().zip(&layout) {
            write_string(&mut header, &t.name);
            header.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for &d in t.shape.iter().rev() {
                header.extend_from_slice(&(d as u64).to_le_bytes());
            }
            let id = t.ggml_type.ggml_id().ok_or_else(|| {
                werr(format!(
                    "tensor `{}`: {} has no ggml type id",
                    t.name, t.ggml_type
                ))
            })?;
            header.extend_from_slice(&id.to_le_bytes());
            header.extend_from_slice(&(off as u64).to_le_bytes());
        }
        let padded = header.len().next_multiple_of(alignment);
        header.resize(padded, 0);
        w.write_all(&header)
            .map_err(|e| FormatError::io("<gguf writer>", e))
    }

    /// Writes tensor `index`'s data plus the padding that aligns the next tensor.
    pub fn write_tensor_data<W: Write>(&self, w: &mut W, index: usize, data: &[u8]) -> Result<()> {
        let alignment = self.alignment()?;
        let t = self
            .tensors
            .get(index)
            .ok_or_else(|| werr(format!("no tensor #{index}")))?;
        let need = t.ggml_type.bytes_for_shape(&t.shape);
        if need != Some(data.len()) {
            return Err(werr(format!(
                "tensor `{}`: {} bytes of data, shape {:?} of {} needs {need:?}",
                t.name,
                data.len(),
                t.shape,
                t.ggml_type
            )));
        }
        let io = |e| FormatError::io("<gguf writer>", e);
        w.write_all(data).map_err(io)?;
        let pad = data.len().next_multiple_of(alignment) - data.len();
        w.write_all(&vec![0u8; pad]).map_err(io)
    }

    /// Streams the whole file to `w` (every tensor must have been added with data).
    pub fn write_to<W: Write>(&self, w: &mut W) -> Result<()> {
        self.layout(self.alignment()?)?;
        if let Some(t) = self.tensors.iter().find(|t| t.data.is_none()) {
            return Err(werr(format!(
                "tensor `{}` was added without data: use write_header_to + write_tensor_data",
                t.name
            )));
        }
        self.write_header_to(w)?;
        for (i, t) in self.tensors.iter().enumerate() {
            if let Some(d) = &t.data {
                self.write_tensor_data(w, i, d)?;
            }
        }
        Ok(())
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => write_string(out, s),
        GgufValue::Array(a) => write_array(out, a),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn write_array(out: &mut Vec<u8>, a: &GgufArray) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! prim {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        GgufArray::U8(v) => prim!(v),
        GgufArray::I8(v) => prim!(v),
        GgufArray::U16(v) => prim!(v),
        GgufArray::I16(v) => prim!(v),
        GgufArray::U32(v) => prim!(v),
        GgufArray::I32(v) => prim!(v),
        GgufArray::F32(v) => prim!(v),
        GgufArray::U64(v) => prim!(v),
        GgufArray::I64(v) => prim!(v),
        GgufArray::F64(v) => prim!(v),
        GgufArray::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        GgufArray::String(v) => v.iter().for_each(|s| write_string(out, s)),
        GgufArray::Array(v) => v.iter().for_each(|inner| write_array(out, inner)),
    }
}
