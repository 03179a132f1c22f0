//! [`DType`]: the one element type of the workspace — what a [`crate::TensorView`] holds in any
//! format, the ggml type ids used in GGUF, and the types the kernels compute with.

use std::fmt;

/// An element type: the plain types of every format and ggml's block-quantized types.
///
/// Plain types are normalised across formats: a GGUF tensor of ggml type `F32` has
/// `DType::F32`, exactly like a safetensors `F32` tensor. Every type listed here is *known*: its
/// block size and bytes per block are defined, so a reader can validate tensor sizes. Whether a
/// type can be computed with is the kernels' business. All types except [`DType::U8`] and
/// [`DType::Bool`] have a ggml type id (`enum ggml_type` in `ggml.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
#[non_exhaustive]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    Bool,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    IQ1_M,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

impl DType {
    /// Every type that has a ggml id, in ggml id order.
    pub const GGML: [DType; 32] = [
        DType::F32,
        DType::F16,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q8_1,
        DType::Q2_K,
        DType::Q3_K,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
        DType::Q8_K,
        DType::IQ2_XXS,
        DType::IQ2_XS,
        DType::IQ3_XXS,
        DType::IQ1_S,
        DType::IQ4_NL,
        DType::IQ3_S,
        DType::IQ2_S,
        DType::IQ4_XS,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F64,
        DType::IQ1_M,
        DType::BF16,
        DType::TQ1_0,
        DType::TQ2_0,
        DType::MXFP4,
    ];

    /// The type for a GGUF type id, or `None` for ids that are unknown or were removed from ggml
    /// (4, 5, 31..=33, 36..=38).
    pub fn from_ggml_id(id: u32) -> Option<DType> {
        use DType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            39 => MXFP4,
            _ => return None,
        })
    }

    /// The GGUF type id, or `None` for the types GGUF cannot store (`U8`, `Bool`).
    pub fn ggml_id(self) -> Option<u32> {
        use DType::*;
        Some(match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            IQ2_XXS => 16,
            IQ2_XS => 17,
            IQ3_XXS => 18,
            IQ1_S => 19,
            IQ4_NL => 20,
            IQ3_S => 21,
            IQ2_S => 22,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1_M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            MXFP4 => 39,
            U8 | Bool => return None,
        })
    }

    /// Number of elements in one block (1 for plain types).
    pub fn block_size(self) -> usize {
        use DType::*;
        match self {
            F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64 | U8 | Bool => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4_NL | MXFP4 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S
            | IQ3_S | IQ2_S | IQ4_XS | IQ1_M | TQ1_0 | TQ2_0 => 256,
        }
    }

    /// Bytes in one block (`ggml_type_size`; the element size for plain types).
    pub fn type_size(self) -> usize {
        use DType::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            I8 | U8 | Bool => 1,
            I16 => 2,
            I32 => 4,
            I64 | F64 => 8,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
            IQ2_XXS => 66,
            IQ2_XS => 74,
            IQ3_XXS => 98,
            IQ1_S => 50,
            IQ4_NL => 18,
            IQ3_S => 110,
            IQ2_S => 82,
            IQ4_XS => 136,
            IQ1_M => 56,
            TQ1_0 => 54,
            TQ2_0 => 66,
            MXFP4 => 17,
        }
    }

    /// Whether this is a block-quantized type (block size > 1).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes per element for plain types; `None` for block-quantized types.
    pub fn elem_size(self) -> Option<usize> {
        (!self.is_quantized()).then(|| self.type_size())
    }

    /// Bytes needed for a row-major tensor of this type and shape (outermost first); `None` on
    /// overflow or when a quantized type's innermost dimension is missing or not a multiple of
    /// the block size.
    pub fn bytes_for_shape(self, shape: &[usize]) -> Option<usize> {
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        if !self.is_quantized() {
            return numel.checked_mul(self.type_size());
        }
        let inner = *shape.last()?;
        if inner % self.block_size() != 0 {
            return None;
        }
        (numel / self.block_size()).checked_mul(self.type_size())
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for t in DType::GGML {
            assert_eq!(DType::from_ggml_id(t.ggml_id().unwrap()), Some(t));
        }
        for removed in [4u32, 5, 31, 32, 33, 36, 37, 38, 40, 1000] {
            assert_eq!(DType::from_ggml_id(removed), None, "id {removed}");
        }
        assert_eq!(DType::U8.ggml_id(), None);
        assert_eq!(DType::Bool.ggml_id(), None);
    }

    #[test]
    fn block_sizes_match_ggml() {
        // Values from ggml.c type_traits (blck_size, type_size).
        assert_eq!(
            (DType::Q4_0.block_size(), DType::Q4_0.type_size()),
            (32, 18)
        );
        assert_eq!(
            (DType::Q4_K.block_size(), DType::Q4_K.type_size()),
            (256, 144)
        );
        assert_eq!(
            (DType::Q6_K.block_size(), DType::Q6_K.type_size()),
            (256, 210)
        );
        assert_eq!(DType::Q4_1.bytes_for_shape(&[2, 64]), Some(2 * 2 * 20));
        assert_eq!(DType::Q4_1.bytes_for_shape(&[2, 33]), None);
        assert_eq!(DType::Q4_1.bytes_for_shape(&[]), None);
        assert_eq!(DType::F16.bytes_for_shape(&[3, 5]), Some(30));
        assert_eq!(DType::F32.bytes_for_shape(&[]), Some(4));
        assert_eq!(DType::F32.bytes_for_shape(&[usize::MAX, 2]), None);
        assert_eq!(DType::Bool.elem_size(), Some(1));
        assert_eq!(DType::Q8_K.elem_size(), None);
        assert_eq!(DType::Q4_K.to_string(), "Q4_K");
        assert_eq!(DType::BF16.to_string(), "BF16");
    }
}
