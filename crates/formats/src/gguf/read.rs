//! GGUF reader: parses and validates the header of an untrusted file, then hands out zero-copy
//! tensor views into the memory map.
//!
//! Layout (GGUF v2/v3, little-endian): magic `GGUF`, `u32` version, `u64` tensor count, `u64` kv
//! count, kv pairs (`string key`, `u32 type`, value), tensor infos (`string name`, `u32 n_dims`,
//! `u64 ne[n_dims]` innermost first, `u32 ggml type`, `u64 offset` relative to the data section),
//! padding to `general.alignment` (default 32), then the data section.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::dtype::DType;
use crate::error::{FormatError, Result};
use crate::gguf::types::{GgufArray, GgufValue, GgufValueType};
use crate::mmap::{Bytes, FileLoading};
use crate::tensor::TensorView;

/// The GGUF magic bytes.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of tensor data when the file does not set `general.alignment`.
pub const GGUF_DEFAULT_ALIGNMENT: usize = 32;
/// Maximum number of dimensions of a GGUF tensor (`GGML_MAX_DIMS`).
pub const GGUF_MAX_DIMS: usize = 4;
/// Maximum nesting depth of metadata arrays accepted by the reader.
pub const GGUF_MAX_ARRAY_DEPTH: usize = 8;

/// One tensor's description from the GGUF header (already validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// Tensor name.
    pub name: String,
    /// ggml element type.
    pub ggml_type: DType,
    /// Dimensions as stored in the file: innermost (row length) first, like ggml's `ne`.
    pub ne: Vec<u64>,
    /// Row-major shape, outermost first (`ne` reversed).
    pub shape: Vec<usize>,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes.
    pub n_bytes: usize,
}

/// A parsed GGUF file (v2 or v3). Tensor data stays in the memory map.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    bytes: std::sync::Arc<Bytes>,
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_offset: usize,
}

/// A bounds-checked little-endian cursor over untrusted bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn truncated(&self, what: &str, needed: u64) -> FormatError {
        FormatError::Truncated {
            path: self.path.to_path_buf(),
            what: what.to_owned(),
            offset: self.pos as u64,
            needed,
            available: self.remaining() as u64,
        }
    }

    fn invalid(&self, offset: usize, msg: impl Into<String>) -> FormatError {
        FormatError::Invalid {
            path: self.path.to_path_buf(),
            format: "GGUF",
            offset: offset as u64,
            msg: msg.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.truncated(what, n as u64))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(what, n as u64))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length/count read from the file, bounded by `min_elem_size * count <= remaining`.
    fn count(&mut self, what: &str, min_elem_size: usize) -> Result<usize> {
        let at = self.pos;
        let n = self.u64(what)?;
        let needed = n.checked_mul(min_elem_size as u64);
        match needed {
            Some(b) if b <= self.remaining() as u64 => Ok(n as usize),
            _ => Err(FormatError::Truncated {
                path: self.path.to_path_buf(),
                what: format!("{what} ({n} items of at least {min_elem_size} bytes)"),
                offset: at as u64,
                needed: needed.unwrap_or(u64::MAX),
                available: self.remaining() as u64,
            }),
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        self.string_lazy(|| what.to_owned())
    }

    /// Reads a string; `what` (for error messages) is only built on error, which keeps the
    /// 100k-element token and merge arrays cheap to parse.
    fn string_lazy(&mut self, what: impl Fn() -> String) -> Result<String> {
        let at = self.pos;
        let len = match self.array::<8>("string length") {
            Ok(b) => u64::from_le_bytes(b),
            Err(_) => return Err(self.truncated(&format!("{} length", what()), 8)),
        };
        let bytes = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.remaining())
            .and_then(|n| self.buf.get(self.pos..self.pos + n))
            .ok_or_else(|| FormatError::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
                offset: (at + 8) as u64,
                needed: len,
                available: self.remaining() as u64,
            })?;
        self.pos += bytes.len();
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.invalid(at, format!("{} is not valid UTF-8: {e}", what()))),
        }
    }

    fn value_type(&mut self, key: &str) -> Result<GgufValueType> {
        let at = self.pos;
        let id = self.u32(&format!("type of `{key}`"))?;
        GgufValueType::from_id(id).ok_or_else(|| FormatError::UnknownValueType {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            offset: at as u64,
            type_id: id,
        })
    }

    fn value(&mut self, key: &str, t: GgufValueType, depth: usize) -> Result<GgufValue> {
        use GgufValueType as T;
        let w = |k: &str| format!("value of `{k}`");
        Ok(match t {
            T::U8 => GgufValue::U8(u8::from_le_bytes(self.array(&w(key))?)),
            T::I8 => GgufValue::I8(i8::from_le_bytes(self.array(&w(key))?)),
            T::U16 => GgufValue::U16(u16::from_le_bytes(self.array(&w(key))?)),
            T::I16 => GgufValue::I16(i16::from_le_bytes(self.array(&w(key))?)),
            T::U32 => GgufValue::U32(u32::from_le_bytes(self.array(&w(key))?)),
            T::I32 => GgufValue::I32(i32::from_le_bytes(self.array(&w(key))?)),
            T::F32 => GgufValue::F32(f32::from_le_bytes(self.array(&w(key))?)),
            T::U64 => GgufValue::U64(u64::from_le_bytes(self.array(&w(key))?)),
            T::I64 => GgufValue::I64(i64::from_le_bytes(self.array(&w(key))?)),
            T::F64 => GgufValue::F64(f64::from_le_bytes(self.array(&w(key))?)),
            T::Bool => {
                let at = self.pos;
                match self.array::<1>(&w(key))?[0] {
                    0 => GgufValue::Bool(false),
                    1 => GgufValue::Bool(true),
                    b => {
                        return Err(
                            self.invalid(at, format!("`{key}`: bool value {b} is not 0 or 1"))
                        )
                    }
                }
            }
            T::String => GgufValue::String(self.string(&w(key))?),
            T::Array => GgufValue::Array(self.array_value(key, depth)?),
        })
    }

    fn array_value(&mut self, key: &str, depth: usize) -> Result<GgufArray> {
        if depth >= GGUF_MAX_ARRAY_DEPTH {
            return Err(self.invalid(
                self.pos,
                format!("`{key}`: arrays nested deeper than {GGUF_MAX_ARRAY_DEPTH}"),
            ));
        }
        let et = self.value_type(key)?;
        let n = self.count(&format!("array `{key}`"), et.min_size())?;
        macro_rules! prim {
            ($variant:ident, $t:ty) => {{
                let size = std::mem::size_of::<$t>();
                // `count` checked n * size <= remaining, so this cannot overflow or over-read.
                let raw = self.take(n * size, &format!("array `{key}`"))?;
                GgufArray::$variant(
                    raw.chunks_exact(size)
                        .map(|c| {
                            let mut a = [0u8; std::mem::size_of::<$t>()];
                            a.copy_from_slice(c);
                            <$t>::from_le_bytes(a)
                        })
                        .collect(),
                )
            }};
        }
        use GgufValueType as T;
        Ok(match et {
            T::U8 => prim!(U8, u8),
            T::I8 => prim!(I8, i8),
            T::U16 => prim!(U16, u16),
            T::I16 => prim!(I16, i16),
            T::U32 => prim!(U32, u32),
            T::I32 => prim!(I32, i32),
            T::F32 => prim!(F32, f32),
            T::U64 => prim!(U64, u64),
            T::I64 => prim!(I64, i64),
            T::F64 => prim!(F64, f64),
            T::Bool => {
                let at = self.pos;
                let raw = self.take(n, &format!("array `{key}`"))?;
                let mut v = Vec::with_capacity(n);
                for (i, &b) in raw.iter().enumerate() {
                    match b {
                        0 => v.push(false),
                        1 => v.push(true),
                        _ => {
                            return Err(self.invalid(
                                at + i,
                                format!("`{key}`[{i}]: bool value {b} is not 0 or 1"),
                            ))
                        }
                    }
                }
                GgufArray::Bool(v)
            }
            T::String => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.string_lazy(|| format!("`{key}`[{i}]"))?);
                }
                GgufArray::String(v)
            }
            T::Array => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array_value(key, depth + 1)?);
                }
                GgufArray::Array(v)
            }
        })
    }
}

/// Minimum size of one tensor info in the file: name length (8) + n_dims (4) + one dim (8) +
/// type (4) + offset (8).
const MIN_TENSOR_INFO_SIZE: usize = 32;
/// Minimum size of one kv pair: key length (8) + type (4) + smallest value (1).
const MIN_KV_SIZE: usize = 13;

impl GgufFile {
    /// Memory-maps and parses the GGUF file at `path`, validating the whole header.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        Self::open_with(path, FileLoading::Map)
    }

    /// Like [`GgufFile::open`], mapping the file or reading it into memory as `loading` decides
    /// ([`Bytes::open`]).
    pub fn open_with(path: impl AsRef<Path>, loading: FileLoading) -> Result<GgufFile> {
        let path = path.as_ref();
        let bytes = Bytes::open(path, loading)?;
        Self::parse(path.to_path_buf(), bytes)
    }

    /// Parses a GGUF file held in memory; `name` is used in error messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<GgufFile> {
        Self::parse(name.into(), Bytes::Owned(bytes))
    }

    fn parse(path: PathBuf, bytes: Bytes) -> Result<GgufFile> {
        let parsed = parse_header(&path, &bytes)?;
        tracing::debug!(
            path = %path.display(),
            version = parsed.version,
            tensors = parsed.tensors.len(),
            kv = parsed.metadata.len(),
            "parsed GGUF header"
        );
        Ok(GgufFile {
            path,
            bytes: std::sync::Arc::new(bytes),
            version: parsed.version,
            metadata: parsed.metadata,
            key_index: parsed.key_index,
            tensors: parsed.tensors,
            tensor_index: parsed.tensor_index,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
        })
    }

    /// The file's bytes, shared: weights keep them alive through [`SharedBytes`].
    pub fn shared_bytes(&self) -> &std::sync::Arc<Bytes> {
        &self.bytes
    }

    /// The path (or name) the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Absolute byte offset of the data section.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// All metadata pairs, in file order.
    pub fn metadata(&self) -> &[(String, GgufValue)] {
        &self.metadata
    }

    /// Metadata keys, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.metadata.iter().map(|(k, _)| k.as_str())
    }

    /// The raw value for `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.key_index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.key_index.contains_key(key)
    }

    fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key).ok_or_else(|| FormatError::MissingKey {
            path: self.path.clone(),
            key: key.to_owned(),
        })
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &GgufValue) -> FormatError {
        FormatError::WrongType {
            path: self.path.clone(),
            key: key.to_owned(),
            expected,
            found: format!("{} ({v})", v.type_name()),
        }
    }

    fn conv_u64(&self, key: &str, v: &GgufValue) -> Result<u64> {
        v.as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| self.wrong(key, "an unsigned integer", v))
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| self.wrong(key, "a string", v))
    }

    /// An integer value of any integer type that fits in `u32`.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        u32::try_from(self.conv_u64(key, v)?)
            .map_err(|_| self.wrong(key, "an integer that fits u32", v))
    }

    /// An integer value of any integer type that fits in `u64`.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        self.conv_u64(key, v)
    }

    /// An integer value of any integer type that fits in `i64`.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        let v = self.require(key)?;
        v.as_integer()
            .and_then(|i| i64::try_from(i).ok())
            .ok_or_else(|| self.wrong(key, "an integer that fits i64", v))
    }

    /// A float value (`f32`; `f64` and integers are converted).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| self.wrong(key, "a number", v))
    }

    /// A bool value.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            GgufValue::Bool(b) => Ok(*b),
            v => Err(self.wrong(key, "a bool", v)),
        }
    }

    /// An array value of any element type.
    pub fn get_array(&self, key: &str) -> Result<&GgufArray> {
        match self.require(key)? {
            GgufValue::Array(a) => Ok(a),
            v => Err(self.wrong(key, "an array", v)),
        }
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        match self.require(key)? {
            GgufValue::Array(GgufArray::String(a)) => Ok(a),
            v => Err(self.wrong(key, "an array of strings", v)),
        }
    }

    /// An array of integers that all fit in `i32` (borrowed when stored as `i32`).
    pub fn get_i32_array(&self, key: &str) -> Result<Cow<'_, [i32]>> {
        let v = self.require(key)?;
        match v {
            GgufValue::Array(GgufArray::I32(a)) => Ok(Cow::Borrowed(a)),
            GgufValue::Array(a) => a
                .to_i64_vec()
                .and_then(|v| v.into_iter().map(|x| i32::try_from(x).ok()).collect())
                .map(Cow::Owned)
                .ok_or_else(|| self.wrong(key, "an array of integers that fit i32", v)),
            _ => Err(self.wrong(key, "an array of integers", v)),
        }
    }

    /// An array of integers that all fit in `u32` (borrowed when stored as `u32`).
    pub fn get_u32_array(&self, key: &str) -> Result<Cow<'_, [u32]>> {
        let v = self.require(key)?;
        match v {
            GgufValue::Array(GgufArray::U32(a)) => Ok(Cow::Borrowed(a)),
            GgufValue::Array(a) => a
                .to_i64_vec()
                .and_then(|v| v.into_iter().map(|x| u32::try_from(x).ok()).collect())
                .map(Cow::Owned)
                .ok_or_else(|| self.wrong(key, "an array of integers that fit u32", v)),
            _ => Err(self.wrong(key, "an array of integers", v)),
        }
    }

    /// An array of floats (borrowed when stored as `f32`; `f64` arrays are converted).
    pub fn get_f32_array(&self, key: &str) -> Result<Cow<'_, [f32]>> {
        match self.require(key)? {
            GgufValue::Array(GgufArray::F32(a)) => Ok(Cow::Borrowed(a)),
            GgufValue::Array(GgufArray::F64(a)) => {
                Ok(Cow::Owned(a.iter().map(|&x| x as f32).collect()))
            }
            v => Err(self.wrong(key, "an array of floats", v)),
        }
    }

    /// Like [`get_str`](Self::get_str) but `Ok(None)` when the key is absent.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.opt(key, Self::get_str)
    }

    /// Like [`get_u32`](Self::get_u32) but `Ok(None)` when the key is absent.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.opt(key, Self::get_u32)
    }

    /// Like [`get_u64`](Self::get_u64) but `Ok(None)` when the key is absent.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.opt(key, Self::get_u64)
    }

    /// Like [`get_f32`](Self::get_f32) but `Ok(None)` when the key is absent.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.opt(key, Self::get_f32)
    }

    /// Like [`get_bool`](Self::get_bool) but `Ok(None)` when the key is absent.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.opt(key, Self::get_bool)
    }

    fn opt<'s, T>(
        &'s self,
        key: &str,
        f: impl Fn(&'s Self, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.contains_key(key) {
            f(self, key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Tensor descriptions, in file order.
    pub fn tensor_infos(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The description of tensor `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// A zero-copy view of tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| FormatError::TensorNotFound {
                path: self.path.clone(),
                name: name.to_owned(),
            })?;
        self.view(info)
    }

    /// Zero-copy views of all tensors, in file order.
    pub fn tensors(&self) -> impl Iterator<Item = Result<TensorView<'_>>> {
        self.tensors.iter().map(|t| self.view(t))
    }

    /// The view for one of this file's tensor infos.
    pub fn view<'s>(&'s self, info: &'s GgufTensorInfo) -> Result<TensorView<'s>> {
        // Bounds were validated at open; this re-check only guards against misuse with a foreign
        // info and turns it into an error instead of a panic.
        let start = usize::try_from(info.offset)
            .ok()
            .and_then(|o| o.checked_add(self.data_offset));
        let data = start
            .and_then(|s| s.checked_add(info.n_bytes).map(|e| (s, e)))
            .and_then(|(s, e)| self.bytes.get(s..e))
            .ok_or_else(|| FormatError::InvalidTensor {
                path: self.path.clone(),
                name: info.name.clone(),
                msg: "data lies outside the file".into(),
            })?;
        Ok(TensorView {
            name: &info.name,
            dtype: info.ggml_type,
            shape: info.shape.clone(),
            data,
        })
    }
}

struct ParsedHeader {
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<GgufTensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_offset: usize,
}

fn parse_header(path: &Path, buf: &[u8]) -> Result<ParsedHeader> {
    let mut c = Cursor { buf, pos: 0, path };
    let magic = c.array::<4>("magic")?;
    if magic != GGUF_MAGIC {
        return Err(FormatError::BadMagic {
            path: path.to_path_buf(),
            format: "GGUF",
            found: magic.to_vec(),
        });
    }
    let version = c.u32("version")?;
    match version {
        2 | 3 => {}
        1 => return Err(FormatError::UnsupportedVersion {
            path: path.to_path_buf(),
            format: "GGUF",
            version,
            hint:
                "GGUF v1 (32-bit counts) is obsolete; re-convert the model with a current llama.cpp",
        }),
        v if v & 0xFFFF == 0 => {
            return Err(FormatError::UnsupportedVersion {
                path: path.to_path_buf(),
                format: "GGUF",
                version,
                hint: "looks byte-swapped: big-endian GGUF files are not supported",
            })
        }
        _ => {
            return Err(FormatError::UnsupportedVersion {
                path: path.to_path_buf(),
                format: "GGUF",
                version,
                hint: "only versions 2 and 3 are supported",
            })
        }
    }
    let n_tensors = c.count("tensor count", MIN_TENSOR_INFO_SIZE)?;
    let n_kv = c.count("metadata kv count", MIN_KV_SIZE)?;

    let mut metadata = Vec::with_capacity(n_kv);
    let mut key_index = HashMap::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key #{i}"))?;
        let t = c.value_type(&key)?;
        let value = c.value(&key, t, 0)?;
        if key_index.contains_key(&key) {
            return Err(FormatError::DuplicateKey {
                path: path.to_path_buf(),
                key,
            });
        }
        key_index.insert(key.clone(), metadata.len());
        metadata.push((key, value));
    }

    let alignment = match key_index
        .get("general.alignment")
        .and_then(|&i| metadata.get(i))
    {
        None => GGUF_DEFAULT_ALIGNMENT,
        Some((_, v)) => {
            let a = v.as_integer().ok_or_else(|| FormatError::WrongType {
                path: path.to_path_buf(),
                key: "general.alignment".into(),
                expected: "an unsigned integer",
                found: v.type_name(),
            })?;
            match usize::try_from(a) {
                Ok(a) if a.is_power_of_two() => a,
                _ => {
                    return Err(FormatError::InvalidAlignment {
                        path: path.to_path_buf(),
                        alignment: u64::try_from(a).unwrap_or(0),
                    })
                }
            }
        }
    };

    let mut raw = Vec::with_capacity(n_tensors);
    let mut tensor_index = HashMap::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let name = c.string(&format!("tensor #{i} name"))?;
        let bad = |msg: String| FormatError::InvalidTensor {
            path: path.to_path_buf(),
            name: name.clone(),
            msg,
        };
        let n_dims = c.u32(&format!("tensor `{name}` n_dims"))? as usize;
        if n_dims == 0 || n_dims > GGUF_MAX_DIMS {
            return Err(bad(format!(
                "n_dims is {n_dims}, must be 1..={GGUF_MAX_DIMS}"
            )));
        }
        let mut ne = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            ne.push(c.u64(&format!("tensor `{name}` dims"))?);
        }
        let type_id = c.u32(&format!("tensor `{name}` type"))?;
        let offset = c.u64(&format!("tensor `{name}` offset"))?;
        let ggml_type =
            DType::from_ggml_id(type_id).ok_or_else(|| FormatError::UnknownGgmlType {
                path: path.to_path_buf(),
                tensor: name.clone(),
                type_id,
            })?;
        if let Some(d) = ne.iter().position(|&d| d == 0) {
            return Err(bad(format!("dimension {d} is zero (ne = {ne:?})")));
        }
        let mut numel: u64 = 1;
        for &d in &ne {
            numel = numel
                .checked_mul(d)
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or_else(|| bad(format!("element count overflows (ne = {ne:?})")))?;
        }
        let row = ne.first().copied().unwrap_or(1);
        let blk = ggml_type.block_size() as u64;
        if row % blk != 0 {
            return Err(bad(format!(
                "row length {row} is not a multiple of the {ggml_type} block size {blk}"
            )));
        }
        let n_bytes = (numel / blk)
            .checked_mul(ggml_type.type_size() as u64)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| bad(format!("byte size overflows (ne = {ne:?})")))?;
        if offset % alignment as u64 != 0 {
            return Err(bad(format!(
                "offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        let shape = ne
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d} too large"))))
            .collect::<Result<Vec<_>>>()?;
        if tensor_index.contains_key(&name) {
            return Err(FormatError::DuplicateTensor {
                path: path.to_path_buf(),
                name,
            });
        }
        tensor_index.insert(name.clone(), raw.len());
        raw.push(GgufTensorInfo {
            name,
            ggml_type,
            ne,
            shape,
            offset,
            n_bytes,
        });
    }

    let header_end = c.pos;
    let data_offset = header_end
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| c.invalid(header_end, "data offset overflows"))?;
    if !raw.is_empty() && data_offset > buf.len() {
        return Err(FormatError::Truncated {
            path: path.to_path_buf(),
            what: "padding before the data section".into(),
            offset: header_end as u64,
            needed: (data_offset - header_end) as u64,
            available: (buf.len() - header_end) as u64,
        });
    }
    let data_len = buf.len().saturating_sub(data_offset) as u64;
    for t in &raw {
        let end = t.offset.checked_add(t.n_bytes as u64);
        if end.is_none_or(|e| e > data_len) {
            return Err(FormatError::InvalidTensor {
                path: path.to_path_buf(),
                name: t.name.clone(),
                msg: format!(
                    "data [{}, +{}) relative to the data section at byte {data_offset} ends past the end \
                     of the file ({} bytes)",
                    t.offset,
                    t.n_bytes,
                    buf.len()
                ),
            });
        }
    }
    // Overlap check: sort by offset, each tensor must start at or after the previous one's end.
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by_key(|&i| raw.get(i).map(|t| t.offset));
    for w in order.windows(2) {
        if let [ia, ib] = *w {
            let (Some(a), Some(b)) = (raw.get(ia), raw.get(ib)) else {
                continue;
            };
            // Both ends were checked above to fit in the data section, so no overflow.
            if b.offset < a.offset + a.n_bytes as u64 {
                return Err(FormatError::InvalidTensor {
                    path: path.to_path_buf(),
                    name: b.name.clone(),
                    msg: format!(
                        "data at offset {} overlaps tensor `{}` at [{}, {})",
                        b.offset,
                        a.name,
                        a.offset,
                        a.offset + a.n_bytes as u64
                    ),
                });
            }
        }
    }
    Ok(ParsedHeader {
        version,
        metadata,
        key_index,
        tensors: raw,
        tensor_index,
        alignment,
        data_offset,
    })
}
