//! [`TensorView`]: a zero-copy view of one tensor, common to all formats.

use crate::dtype::DType;

/// A tensor inside a mapped file: name, dtype, shape and the raw bytes (a slice of the map).
///
/// `shape` is row-major, outermost dimension first (the PyTorch / safetensors / numpy order). GGUF
/// stores dims innermost first (`ne[0]` is the row length); the GGUF reader reverses them, so a
/// GGUF tensor with `ne = [4096, 128256]` has `shape == [128256, 4096]`.
///
/// For block-quantized types (`DType::is_quantized`) the innermost dimension is a multiple of the block
/// size and `data` holds `numel / block_size` blocks, rows one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorView<'a> {
    /// Tensor name as stored in the file.
    pub name: &'a str,
    /// Element type.
    pub dtype: DType,
    /// Row-major shape, outermost first.
    pub shape: Vec<usize>,
    /// Raw little-endian bytes, exactly `dtype.bytes_for_shape(&shape)` long.
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A tensor whose bytes are either borrowed from a map (zero-copy) or owned (e.g. joined from
/// model-parallel shards). Returned by [`crate::WeightFile::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorData<'a> {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Row-major shape, outermost first.
    pub shape: Vec<usize>,
    /// Raw little-endian bytes.
    pub data: std::borrow::Cow<'a, [u8]>,
}

impl TensorData<'_> {
    /// A view of this tensor.
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            name: &self.name,
            dtype: self.dtype,
            shape: self.shape.clone(),
            data: &self.data,
        }
    }

    /// Whether the bytes are borrowed from the file (no copy was made).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.data, std::borrow::Cow::Borrowed(_))
    }
}

impl<'a> From<TensorView<'a>> for TensorData<'a> {
    fn from(v: TensorView<'a>) -> Self {
        TensorData {
            name: v.name.to_owned(),
            dtype: v.dtype,
            shape: v.shape,
            data: std::borrow::Cow::Borrowed(v.data),
        }
    }
}
