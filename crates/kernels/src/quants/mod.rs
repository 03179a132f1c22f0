//! GGUF/ggml block types, one module each: the `#[repr(C)]` block struct mirroring
//! `ggml-common.h` (with a size assertion), its dequantization, its reference quantization, its
//! scalar dot product against the activation format ggml pairs it with (the oracle) and its SIMD
//! kernels. Every type implements [`BlockFormat`]; the weight types also [`GgmlType`], the
//! activation formats [`ActFormat`]. The runtime enums [`QuantType`] and [`ActType`] reach the
//! implementations through [`dispatch!`] and [`dispatch_act!`], the only matches that map an enum
//! value to its type.
//!
//! Blocks are read and written as little-endian bytes at the structs' `offset_of!` positions, so
//! input of any alignment works.
//!
//! | weights                      | activations (`VecDotType`) |
//! |------------------------------|----------------------------|
//! | Q4_0, Q5_0, Q8_0             | Q8_0                       |
//! | Q4_1, Q5_1                   | Q8_1                       |
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K | Q8_K                       |

use crate::{mul, KernelError, Result};

pub mod f16;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd;
pub(crate) mod util;

/// Elements per block of the legacy quants.
pub const QK: usize = 32;
/// Elements per super-block of the k-quants.
pub const QK_K: usize = 256;

/// A block format: weights or activations, `BLCK_SIZE` values in `BLCK_BYTES` bytes.
pub trait BlockFormat {
    /// The `#[repr(C)]` block struct.
    type Block;
    /// Values per block.
    const BLCK_SIZE: usize;
    /// Bytes per block.
    const BLCK_BYTES: usize = std::mem::size_of::<Self::Block>();
    /// ggml's type id (`enum ggml_type`).
    const GGML_ID: u32;

    /// Dequantizes one block (`block`: `BLCK_BYTES` bytes, `out`: `BLCK_SIZE` values), bit-exact
    /// with ggml's `dequantize_row_*` (same operation order, no fused multiply-add).
    fn to_float(block: &[u8], out: &mut [f32]);

    /// Quantizes one block (`x`: `BLCK_SIZE` values into `BLCK_BYTES` bytes), bit-identical with
    /// ggml's `quantize_row_*_ref`.
    fn from_float(x: &[f32], block: &mut [u8]);
}

/// A weight type: a [`BlockFormat`] with dot products against its activation format.
///
/// The SIMD entry points return `None` (or are absent) where the type has no such kernel or the
/// CPU lacks its features; callers pick a kernel once per call or row chunk, never per block.
pub trait GgmlType: BlockFormat {
    /// The runtime tag.
    const DTYPE: QuantType;
    /// ggml's `vec_dot_type`: what activations are quantized to before the dot product.
    type VecDotType: ActFormat;
    /// Whether [`GgmlType::vec_dot_avx2`] has a kernel (on a CPU with AVX2/FMA/F16C).
    const HAS_AVX2_DOT: bool = false;

    /// The scalar dot product of whole blocks `w` with whole blocks `a` of the same length, as
    /// ggml's generic (`*_generic`) code computes it: the oracle of the SIMD kernels.
    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32;

    /// The AVX2 dot product (same integer sums per block as [`GgmlType::vec_dot_unopt`]), or
    /// `None` when there is none or the CPU lacks AVX2/FMA/F16C.
    #[inline]
    fn vec_dot_avx2(w: &[u8], a: &[u8]) -> Option<f32> {
        let _ = (w, a);
        None
    }

    /// The dot product on this CPU: the AVX2 kernel where there is one, else the scalar one.
    #[inline]
    fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
        match Self::vec_dot_avx2(w, a) {
            Some(v) => v,
            None => Self::vec_dot_unopt(w, a),
        }
    }

    /// The tiled kernel of `RW` weight rows × `R` activation rows on `isa`
    /// ([`crate::qgemm`]), or `None` when the type has none.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn tile_kernel<const RW: usize, const R: usize>(
        isa: crate::cpu::Isa,
    ) -> Option<crate::qgemm::Kernel<RW, R>> {
        let _ = isa;
        None
    }

    /// Whether batched products on `isa` use tiles of four weight rows × four activation rows
    /// rather than two × four.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn wide_tiles(isa: crate::cpu::Isa) -> bool {
        let _ = isa;
        false
    }

    /// Bytes of one block of eight rows repacked for [`crate::qgemm_x8`], or `None` when the
    /// type has no eight-row kernels.
    #[cfg(target_arch = "x86_64")]
    const X8_BLOCK_BYTES: Option<usize> = None;

    /// Repacks blocks `0..nb` of eight rows into `dst` (`nb` repacked blocks). Only called where
    /// `X8_BLOCK_BYTES` is `Some`.
    #[cfg(target_arch = "x86_64")]
    fn x8_repack(rows: [&[u8]; crate::qgemm_x8::ROWS], nb: usize, dst: &mut [u8]) {
        let _ = (rows, nb, dst);
        unreachable!("{:?} has no eight-row kernels", Self::DTYPE)
    }

    /// Whether the eight-row kernel on `isa` reads the activation blocks' sums
    /// ([`crate::qgemm_x8::act_sums`]).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn x8_needs_sums(isa: crate::cpu::Isa) -> bool {
        let _ = isa;
        false
    }

    /// The eight-row kernel: `out[j][r]` = repacked row `r` of `x` (`nb` blocks) · activation
    /// row `a[j]` (scales `s[j]`, sums `c[j]` where [`GgmlType::x8_needs_sums`]).
    ///
    /// # Safety
    /// `isa` is one this CPU runs, `X8_BLOCK_BYTES` is `Some`, and the pointers address `nb`
    /// readable blocks (and scales and sums) each.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn x8_tile<const R: usize>(
        isa: crate::cpu::Isa,
        x: *const u8,
        nb: usize,
        a: [*const u8; R],
        s: [*const f32; R],
        c: [*const i32; R],
        out: &mut [[f32; crate::qgemm_x8::ROWS]; R],
    ) {
        let _ = (isa, x, nb, a, s, c, out);
        unreachable!("{:?} has no eight-row kernels", Self::DTYPE)
    }
}

/// An 8-bit activation format (the `VecDotType` of a weight type).
pub trait ActFormat: BlockFormat {
    /// The runtime tag.
    const ACT: ActType;
    /// f32 scales per block in [`ActFormat::act_scales`].
    const SCALES_PER_BLOCK: usize;

    /// Quantizes a row of whole blocks (`dst`: exactly its bytes, checked by the caller).
    fn quantize_row(src: &[f32], dst: &mut [u8]) -> Result<()> {
        for (x, b) in src
            .chunks_exact(Self::BLCK_SIZE)
            .zip(dst.chunks_exact_mut(Self::BLCK_BYTES))
        {
            Self::from_float(x, b);
        }
        Ok(())
    }

    /// The f32 scales of the blocks of one quantized row (what the tiled kernels read instead of
    /// the f16 or f32 in the blocks), appended to `out`.
    fn act_scales(row: &[u8], out: &mut Vec<f32>);
}

/// The quantized weight types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

/// Runs `$body` with `$T` the [`GgmlType`] of the [`QuantType`] `$ty`: the one place an enum
/// value is mapped to its implementation.
macro_rules! dispatch {
    ($ty:expr, $T:ident => $body:expr) => {{
        use $crate::quants::QuantType as Qt;
        match $ty {
            Qt::Q4_0 => {
                type $T = $crate::quants::q4_0::Q4_0;
                $body
            }
            Qt::Q4_1 => {
                type $T = $crate::quants::q4_1::Q4_1;
                $body
            }
            Qt::Q5_0 => {
                type $T = $crate::quants::q5_0::Q5_0;
                $body
            }
            Qt::Q5_1 => {
                type $T = $crate::quants::q5_1::Q5_1;
                $body
            }
            Qt::Q8_0 => {
                type $T = $crate::quants::q8_0::Q8_0;
                $body
            }
            Qt::Q2K => {
                type $T = $crate::quants::q2_k::Q2K;
                $body
            }
            Qt::Q3K => {
                type $T = $crate::quants::q3_k::Q3K;
                $body
            }
            Qt::Q4K => {
                type $T = $crate::quants::q4_k::Q4K;
                $body
            }
            Qt::Q5K => {
                type $T = $crate::quants::q5_k::Q5K;
                $body
            }
            Qt::Q6K => {
                type $T = $crate::quants::q6_k::Q6K;
                $body
            }
        }
    }};
}
pub(crate) use dispatch;

/// [`dispatch!`] for the [`ActType`] `$act`: `$A` is its [`ActFormat`].
macro_rules! dispatch_act {
    ($act:expr, $A:ident => $body:expr) => {{
        use $crate::quants::ActType as At;
        match $act {
            At::Q8_0 => {
                type $A = $crate::quants::q8_0::Q8_0;
                $body
            }
            At::Q8_1 => {
                type $A = $crate::quants::q8_1::Q8_1;
                $body
            }
            At::Q8K => {
                type $A = $crate::quants::q8_k::Q8K;
                $body
            }
        }
    }};
}
pub(crate) use dispatch_act;

impl QuantType {
    /// Every type, in ggml id order.
    pub const ALL: [QuantType; 10] = [
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q8_0,
        QuantType::Q2K,
        QuantType::Q3K,
        QuantType::Q4K,
        QuantType::Q5K,
        QuantType::Q6K,
    ];

    /// Weights per block.
    pub fn block_elems(self) -> usize {
        dispatch!(self, T => T::BLCK_SIZE)
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        dispatch!(self, T => T::BLCK_BYTES)
    }

    /// ggml's type id (`enum ggml_type`).
    pub fn ggml_id(self) -> u32 {
        dispatch!(self, T => T::GGML_ID)
    }

    /// Inverse of [`QuantType::ggml_id`].
    pub fn from_ggml_id(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.ggml_id() == id)
    }

    /// ggml's `vec_dot_type`: the activation format this type is multiplied with.
    pub fn vec_dot_type(self) -> ActType {
        dispatch!(self, T => <<T as GgmlType>::VecDotType as ActFormat>::ACT)
    }

    /// Bytes needed for `n_elems` weights (which must be a multiple of the block size).
    pub fn bytes_for(self, n_elems: usize) -> Result<usize> {
        if !n_elems.is_multiple_of(self.block_elems()) {
            return Err(KernelError::Invalid(format!(
                "{self:?}: {n_elems} elements is not a multiple of the block size {}",
                self.block_elems()
            )));
        }
        mul(
            "quant bytes",
            n_elems / self.block_elems(),
            self.block_bytes(),
        )
    }
}

/// 8-bit activation formats used by the dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActType {
    Q8_0,
    Q8_1,
    Q8K,
}

impl ActType {
    /// Activations per block.
    pub fn block_elems(self) -> usize {
        dispatch_act!(self, A => A::BLCK_SIZE)
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        dispatch_act!(self, A => A::BLCK_BYTES)
    }

    /// Bytes needed for `n` activations (a multiple of the block size).
    pub fn bytes_for(self, n: usize) -> Result<usize> {
        if !n.is_multiple_of(self.block_elems()) {
            return Err(KernelError::Invalid(format!(
                "{self:?}: {n} activations is not a multiple of the block size {}",
                self.block_elems()
            )));
        }
        mul(
            "activation bytes",
            n / self.block_elems(),
            self.block_bytes(),
        )
    }
}

#[cfg(test)]
mod simd_tests;
