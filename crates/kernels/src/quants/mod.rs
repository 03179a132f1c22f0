//! GGUF/ggml block types, one module each: the `#[repr(C)]` block struct mirroring
//! `ggml-common.h` (with a size assertion), its dequantization, its reference quantization, its
//! scalar dot product against the activation format ggml pairs it with (the oracle) and its SIMD
//! kernels. Every type implements [`BlockFormat`]; the weight types also [`BlockType`], the
//! activation formats [`ActFormat`]. A runtime [`DType`] reaches the implementations through
//! [`dispatch!`] and [`dispatch_act!`], the only matches that map an enum value to its type.
//!
//! Blocks are read and written as little-endian bytes at the structs' `offset_of!` positions, so
//! input of any alignment works.
//!
//! | weights                      | activations (`VecDotType`) |
//! |------------------------------|----------------------------|
//! | Q4_0, Q5_0, Q8_0             | Q8_0                       |
//! | Q4_1, Q5_1                   | Q8_1                       |
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K | Q8_K                       |

use crate::{mul, DType, KernelError, Result};

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
    /// The element type (which also gives ggml's type id).
    const DTYPE: DType;

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
pub trait BlockType: BlockFormat {
    /// ggml's `vec_dot_type`: what activations are quantized to before the dot product.
    type VecDotType: ActFormat;
    /// Whether [`BlockType::vec_dot_avx2`] has a kernel (on a CPU with AVX2/FMA/F16C).
    const HAS_AVX2_DOT: bool = false;

    /// The scalar dot product of whole blocks `w` with whole blocks `a` of the same length, as
    /// ggml's generic (`*_generic`) code computes it: the oracle of the SIMD kernels.
    fn vec_dot_unopt(w: &[u8], a: &[u8]) -> f32;

    /// The AVX2 dot product (same integer sums per block as [`BlockType::vec_dot_unopt`]), or
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
    /// row `a[j]` (scales `s[j]`, sums `c[j]` where [`BlockType::x8_needs_sums`]).
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

/// The block types the kernels compute with as weights, in ggml id order: each has a
/// [`BlockType`] implementation, reached through [`dispatch!`].
pub const WEIGHT_TYPES: [DType; 10] = [
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q2_K,
    DType::Q3_K,
    DType::Q4_K,
    DType::Q5_K,
    DType::Q6_K,
];

/// The activation formats of [`WEIGHT_TYPES`] (each has an [`ActFormat`] implementation, reached
/// through [`dispatch_act!`]).
pub const ACT_TYPES: [DType; 3] = [DType::Q8_0, DType::Q8_1, DType::Q8_K];

/// Runs `$body` with `$T` the [`BlockType`] of the weight type `$ty` (a [`DType`]): the one place
/// an enum value is mapped to its implementation. Other types take the `$p => $other` arm, or,
/// without one, panic: that form is only for callers whose entry point has already rejected
/// them (with [`KernelError::Unsupported`]).
macro_rules! dispatch {
    ($ty:expr, $T:ident => $body:expr, $p:pat => $other:expr) => {{
        use $crate::DType as Dt;
        match $ty {
            Dt::Q4_0 => {
                type $T = $crate::quants::q4_0::Q4_0;
                $body
            }
            Dt::Q4_1 => {
                type $T = $crate::quants::q4_1::Q4_1;
                $body
            }
            Dt::Q5_0 => {
                type $T = $crate::quants::q5_0::Q5_0;
                $body
            }
            Dt::Q5_1 => {
                type $T = $crate::quants::q5_1::Q5_1;
                $body
            }
            Dt::Q8_0 => {
                type $T = $crate::quants::q8_0::Q8_0;
                $body
            }
            Dt::Q2_K => {
                type $T = $crate::quants::q2_k::Q2K;
                $body
            }
            Dt::Q3_K => {
                type $T = $crate::quants::q3_k::Q3K;
                $body
            }
            Dt::Q4_K => {
                type $T = $crate::quants::q4_k::Q4K;
                $body
            }
            Dt::Q5_K => {
                type $T = $crate::quants::q5_k::Q5K;
                $body
            }
            Dt::Q6_K => {
                type $T = $crate::quants::q6_k::Q6K;
                $body
            }
            $p => $other,
        }
    }};
    ($ty:expr, $T:ident => $body:expr) => {
        $crate::quants::dispatch!($ty, $T => $body, other => {
            unreachable!("{other}: not a kernel weight type (rejected by the entry point)")
        })
    };
}
pub(crate) use dispatch;

/// [`dispatch!`] for the activation format `$act` (a [`DType`]): `$A` is its [`ActFormat`].
macro_rules! dispatch_act {
    ($act:expr, $A:ident => $body:expr, $p:pat => $other:expr) => {{
        use $crate::DType as Dt;
        match $act {
            Dt::Q8_0 => {
                type $A = $crate::quants::q8_0::Q8_0;
                $body
            }
            Dt::Q8_1 => {
                type $A = $crate::quants::q8_1::Q8_1;
                $body
            }
            Dt::Q8_K => {
                type $A = $crate::quants::q8_k::Q8K;
                $body
            }
            $p => $other,
        }
    }};
}
pub(crate) use dispatch_act;

/// [`BlockType::vec_dot_avx2`] of a type whose module has `x86::dot_avx2(w, a)`, an
/// AVX2 + FMA + F16C dot of whole blocks that only reads through bounds-checked sub-slices.
macro_rules! avx2_vec_dot {
    () => {
        const HAS_AVX2_DOT: bool = true;

        #[inline]
        fn vec_dot_avx2(w: &[u8], a: &[u8]) -> Option<f32> {
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::cpu().avx2_fma_f16c() {
                // SAFETY: the CPU has AVX2, FMA and F16C (checked just above); the kernel only
                // reads through bounds-checked sub-slices of whole blocks.
                return Some(unsafe { x86::dot_avx2(w, a) });
            }
            let _ = (w, a);
            None
        }
    };
}
pub(crate) use avx2_vec_dot;

/// The tile hooks of [`BlockType`] for a type with AVX2 and VNNI tile kernels (`$avx2`,
/// `$vnni` in its `x86` module) and eight-row repacking (`x86::$bytes` per repacked block,
/// `x86::$repack`); with `x8: $x8_avx2, $x8_vnni` also `x8_tile` for kernels that do not read
/// the activation sums.
macro_rules! x86_tile_hooks {
    (tile: $avx2:ident, $vnni:ident; repack: $bytes:ident, $repack:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[inline]
        fn tile_kernel<const RW: usize, const R: usize>(isa: Isa) -> Option<Kernel<RW, R>> {
            let k: Kernel<RW, R> = match isa {
                Isa::Avx2 => x86::$avx2::<RW, R>,
                Isa::Vnni => x86::$vnni::<RW, R>,
            };
            Some(k)
        }

        #[cfg(target_arch = "x86_64")]
        const X8_BLOCK_BYTES: Option<usize> = Some(x86::$bytes);

        #[cfg(target_arch = "x86_64")]
        fn x8_repack(rows: [&[u8]; ROWS], nb: usize, dst: &mut [u8]) {
            x86::$repack(rows, nb, dst)
        }
    };
    (tile: $avx2:ident, $vnni:ident; repack: $bytes:ident, $repack:ident;
     x8: $x8_avx2:ident, $x8_vnni:ident) => {
        $crate::quants::x86_tile_hooks!(tile: $avx2, $vnni; repack: $bytes, $repack);

        #[cfg(target_arch = "x86_64")]
        #[inline]
        unsafe fn x8_tile<const R: usize>(
            isa: Isa,
            x: *const u8,
            nb: usize,
            a: [*const u8; R],
            s: [*const f32; R],
            c: [*const i32; R],
            out: &mut [[f32; ROWS]; R],
        ) {
            let _ = c;
            // SAFETY: the caller guarantees `isa` and `nb` readable blocks behind every pointer.
            unsafe {
                match isa {
                    Isa::Avx2 => x86::$x8_avx2::<R>(x, nb, a, s, out),
                    Isa::Vnni => x86::$x8_vnni::<R>(x, nb, a, s, out),
                }
            }
        }
    };
}
pub(crate) use x86_tile_hooks;

/// Bytes needed for `n` elements of `ty` (a multiple of its block size); any [`DType`].
pub fn bytes_for(ty: DType, n: usize) -> Result<usize> {
    let be = ty.block_size();
    if !n.is_multiple_of(be) {
        return Err(KernelError::Invalid(format!(
            "{ty}: {n} elements is not a multiple of the block size {be}"
        )));
    }
    mul("quant bytes", n / be, ty.type_size())
}

/// ggml's `vec_dot_type`: the activation format the weight type `ty` is multiplied with;
/// [`KernelError::Unsupported`] for a type without quantized dot products.
pub fn vec_dot_type(ty: DType) -> Result<DType> {
    Ok(
        dispatch!(ty, T => <<T as BlockType>::VecDotType as BlockFormat>::DTYPE,
        other => return Err(KernelError::Unsupported(other))),
    )
}

#[cfg(test)]
mod simd_tests;
