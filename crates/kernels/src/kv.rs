//! Element types of a KV cache and reading their rows: f32 as computed, f16 and bf16 (rounded to
//! nearest even), and ggml's Q8_0 blocks (32 values: an f16 scale and 32 int8), as llama.cpp's
//! `--cache-type-k/-v` store them.
//!
//! A cache holds rows of `width` values (one position's keys or values of every KV head). Rows are
//! encoded once when written ([`encode_rows`]); attention decodes them as it reads
//! ([`KvRows::segment`], and the tiled kernels' loaders), so a position's keys are the same bits
//! whichever step reads them.

use crate::convert::encode_into;
use crate::quants::f16::{bf16_to_f32, f16_to_f32};
use crate::quants::q8_0::Q8_0;
use crate::quants::BlockFormat;
use crate::{check_len, mul, DType, KernelError, Result};

/// Values per Q8_0 block.
pub const Q8_0_BLOCK: usize = 32;
/// Bytes per Q8_0 block (f16 scale + 32 int8).
pub const Q8_0_BYTES: usize = 34;

/// The element type of a KV cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum KvType {
    /// f32: the values as computed (exact).
    #[default]
    F32,
    /// IEEE binary16, rounded to nearest even: half the memory.
    F16,
    /// bfloat16, rounded to nearest even: half the memory, f32's range, 8 significant bits.
    Bf16,
    /// ggml's Q8_0 blocks along the row: 34 bytes per 32 values (about 0.27 of f32's memory).
    /// Rows must be a multiple of 32 values wide.
    Q8_0,
}

impl KvType {
    /// Every type, f32 first.
    pub const ALL: [KvType; 4] = [KvType::F32, KvType::F16, KvType::Bf16, KvType::Q8_0];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
            KvType::Bf16 => "bf16",
            KvType::Q8_0 => "q8_0",
        }
    }

    /// The ggml type with this encoding.
    pub fn dtype(self) -> DType {
        match self {
            KvType::F32 => DType::F32,
            KvType::F16 => DType::F16,
            KvType::Bf16 => DType::BF16,
            KvType::Q8_0 => DType::Q8_0,
        }
    }

    /// Bytes of one row of `width` values (an error where Q8_0 blocks do not divide the row).
    pub fn row_bytes(self, width: usize) -> Result<usize> {
        match self {
            KvType::F32 => mul("kv row", width, 4),
            KvType::F16 | KvType::Bf16 => mul("kv row", width, 2),
            KvType::Q8_0 => {
                if !width.is_multiple_of(Q8_0_BLOCK) {
                    return Err(KernelError::Invalid(format!(
                        "a q8_0 KV cache needs rows of a multiple of {Q8_0_BLOCK} values; this \
                         model's keys and values are {width} wide"
                    )));
                }
                mul("kv row", width / Q8_0_BLOCK, Q8_0_BYTES)
            }
        }
    }
}

impl std::str::FromStr for KvType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(KvType::F32),
            "f16" => Ok(KvType::F16),
            "bf16" => Ok(KvType::Bf16),
            "q8_0" | "q8" => Ok(KvType::Q8_0),
            other => Err(format!(
                "unknown KV cache type {other:?} (f32, f16, bf16 or q8_0)"
            )),
        }
    }
}

impl std::fmt::Display for KvType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Cached rows of keys or values, `width` values each, as stored.
#[derive(Debug, Clone, Copy)]
pub enum KvRows<'a> {
    F32(&'a [f32]),
    /// Rows of `KvType::row_bytes(width)` bytes of the given (non-f32) type.
    Encoded(KvType, &'a [u8]),
}

impl KvRows<'_> {
    /// The element type.
    pub fn kv_type(&self) -> KvType {
        match self {
            KvRows::F32(_) => KvType::F32,
            KvRows::Encoded(t, _) => *t,
        }
    }

    /// Whole rows of `width` values held.
    pub fn rows(&self, width: usize) -> Result<usize> {
        let rb = self.kv_type().row_bytes(width)?;
        Ok(match self {
            KvRows::F32(v) => v.len().checked_div(width).unwrap_or(0),
            KvRows::Encoded(_, b) => b.len().checked_div(rb).unwrap_or(0),
        })
    }

    /// Values `col .. col + out.len()` of row `row` (rows of `width` values) into `out`.
    /// For Q8_0, `col` and `out.len()` need not be block-aligned.
    pub fn segment(&self, width: usize, row: usize, col: usize, out: &mut [f32]) -> Result<()> {
        let n = out.len();
        if col + n > width {
            return Err(KernelError::Invalid(format!(
                "kv segment {col}..{} of a row of {width}",
                col + n
            )));
        }
        match *self {
            KvRows::F32(v) => {
                let at = mul("kv", row, width)? + col;
                let src = v.get(at..at + n).ok_or(KernelError::Length {
                    what: "kv rows",
                    expected: at + n,
                    got: v.len(),
                })?;
                out.copy_from_slice(src);
            }
            KvRows::Encoded(ty, b) => {
                let rb = ty.row_bytes(width)?;
                let r = mul("kv", row, rb)?;
                let rowb = b.get(r..r + rb).ok_or(KernelError::Length {
                    what: "kv rows",
                    expected: r + rb,
                    got: b.len(),
                })?;
                for (i, o) in out.iter_mut().enumerate() {
                    *o = decode_one(ty, rowb, col + i);
                }
            }
        }
        Ok(())
    }
}

/// Value `c` of an encoded (non-f32) row `rowb`.
fn decode_one(ty: KvType, rowb: &[u8], c: usize) -> f32 {
    let u16_at = |i: usize| u16::from_le_bytes([rowb[i], rowb[i + 1]]);
    match ty {
        KvType::F32 => f32::from_le_bytes([
            rowb[4 * c],
            rowb[4 * c + 1],
            rowb[4 * c + 2],
            rowb[4 * c + 3],
        ]),
        KvType::F16 => f16_to_f32(u16_at(2 * c)),
        KvType::Bf16 => bf16_to_f32(u16_at(2 * c)),
        KvType::Q8_0 => {
            let b = (c / Q8_0_BLOCK) * Q8_0_BYTES;
            let d = f16_to_f32(u16_at(b));
            d * f32::from(rowb[b + 2 + c % Q8_0_BLOCK] as i8)
        }
    }
}

/// Encodes `src` (whole rows of `width` f32 values) as `ty` into `dst`, which holds exactly those
/// rows' bytes: f16 and bf16 rounded to nearest even, Q8_0 with ggml's reference quantizer — the
/// bytes llama.cpp's cache of that type would hold.
pub fn encode_rows(ty: KvType, width: usize, src: &[f32], dst: &mut [u8]) -> Result<()> {
    let rb = ty.row_bytes(width)?;
    let rows = src.len().checked_div(width).unwrap_or(0);
    check_len("kv rows", mul("kv rows", rows, width)?, src.len())?;
    check_len("kv row bytes", mul("kv rows", rows, rb)?, dst.len())?;
    if ty == KvType::Q8_0 {
        // One block at a time on this thread: a step writes a few rows per layer, too little to
        // spread over threads.
        for (b, x) in dst
            .chunks_exact_mut(Q8_0_BYTES)
            .zip(src.chunks_exact(Q8_0_BLOCK))
        {
            <Q8_0 as BlockFormat>::from_float(x, b);
        }
        return Ok(());
    }
    encode_into(ty.dtype(), src, dst)
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod load {
    //! Eight consecutive values of a cached row as one AVX register, per element type: the tiled
    //! attention kernels are generic over these loaders.
    use std::arch::x86_64::*;

    use super::{Q8_0_BLOCK, Q8_0_BYTES};
    use crate::checked::{check_range, raw_at};

    /// Loads values `col .. col + 8` of row `row`.
    pub(crate) trait Load8: Copy + Send + Sync {
        /// # Safety
        /// The CPU has AVX2 and F16C; `col` is a multiple of 8 and `col + 8` at most the row's
        /// width; `row` is below the rows the loader was built over.
        unsafe fn load8(self, row: usize, col: usize) -> __m256;
    }

    /// Declares a loader: a slice's pointer, its length (checked against in debug builds) and the
    /// row stride, in elements of the slice.
    macro_rules! rows {
        ($(#[$doc:meta])* $name:ident, $t:ty) => {
            $(#[$doc])*
            #[derive(Clone, Copy)]
            pub(crate) struct $name {
                ptr: *const $t,
                len: usize,
                stride: usize,
            }

            impl $name {
                /// Rows of `stride` elements of `s`, which the caller keeps borrowed while the
                /// loader is used.
                pub(crate) fn new(s: &[$t], stride: usize) -> Self {
                    $name {
                        ptr: s.as_ptr(),
                        len: s.len(),
                        stride,
                    }
                }

                /// The pointer to element `col` of row `row`, to read `n` elements (debug
                /// builds check that they lie in the row and in the slice).
                ///
                /// # Safety
                /// They must (the contract of [`Load8::load8`]).
                #[inline(always)]
                #[track_caller]
                unsafe fn at(self, row: usize, col: usize, n: usize) -> *const $t {
                    check_range(self.stride, col, n);
                    // SAFETY: the caller's contract; `ptr` addresses `len` elements.
                    unsafe { raw_at(self.ptr, self.len, row * self.stride + col, n) }
                }
            }
        };
    }

    rows!(
        /// f32 rows of `stride` values.
        F32Rows,
        f32
    );
    rows!(
        /// f16 rows of `stride` bytes.
        F16Rows,
        u8
    );
    rows!(
        /// bf16 rows of `stride` bytes.
        Bf16Rows,
        u8
    );
    rows!(
        /// Q8_0 rows of `stride` bytes.
        Q8Rows,
        u8
    );

    // SAFETY: the loaders only read through their pointers, from slices the attention call
    // borrows for its whole duration.
    unsafe impl Send for F32Rows {}
    // SAFETY: as above.
    unsafe impl Sync for F32Rows {}
    // SAFETY: as above.
    unsafe impl Send for F16Rows {}
    // SAFETY: as above.
    unsafe impl Sync for F16Rows {}
    // SAFETY: as above.
    unsafe impl Send for Bf16Rows {}
    // SAFETY: as above.
    unsafe impl Sync for Bf16Rows {}
    // SAFETY: as above.
    unsafe impl Send for Q8Rows {}
    // SAFETY: as above.
    unsafe impl Sync for Q8Rows {}

    impl Load8 for F32Rows {
        #[inline(always)]
        unsafe fn load8(self, row: usize, col: usize) -> __m256 {
            // SAFETY: within the rows (the caller's contract; `at` checks it in debug builds).
            unsafe { _mm256_loadu_ps(self.at(row, col, 8)) }
        }
    }

    impl Load8 for F16Rows {
        #[inline(always)]
        unsafe fn load8(self, row: usize, col: usize) -> __m256 {
            // SAFETY: 16 bytes within the row (the caller's contract; `at` checks it in debug
            // builds); F16C is available.
            unsafe {
                let p = self.at(row, 2 * col, 16);
                _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
            }
        }
    }

    impl Load8 for Bf16Rows {
        #[inline(always)]
        unsafe fn load8(self, row: usize, col: usize) -> __m256 {
            // SAFETY: 16 bytes within the row (the caller's contract; `at` checks it in debug
            // builds); AVX2 is available.
            unsafe {
                let p = self.at(row, 2 * col, 16);
                let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w))
            }
        }
    }

    impl Load8 for Q8Rows {
        #[inline(always)]
        unsafe fn load8(self, row: usize, col: usize) -> __m256 {
            // SAFETY: the block holding values col .. col + 8 (col is a multiple of 8, so they
            // lie in one block) is within the row (the caller's contract; `at` checks the scale's
            // 2 bytes and the 8 quants in debug builds); F16C is available.
            unsafe {
                let b = (col / Q8_0_BLOCK) * Q8_0_BYTES;
                let d = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                    self.at(row, b, 2).cast::<u16>().read_unaligned(),
                )));
                let q = _mm_loadl_epi64(self.at(row, b + 2 + col % Q8_0_BLOCK, 8).cast());
                let x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                _mm256_mul_ps(_mm256_set1_ps(_mm_cvtss_f32(d)), x)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 + seed) * 0.731).sin() * (1.0 + i as f32 * 0.01))
            .collect()
    }

    #[test]
    fn row_bytes_and_names() {
        assert_eq!(KvType::F32.row_bytes(64).unwrap(), 256);
        assert_eq!(KvType::F16.row_bytes(64).unwrap(), 128);
        assert_eq!(KvType::Bf16.row_bytes(64).unwrap(), 128);
        assert_eq!(KvType::Q8_0.row_bytes(64).unwrap(), 68);
        assert!(KvType::Q8_0.row_bytes(48).is_err());
        for t in KvType::ALL {
            assert_eq!(t.name().parse::<KvType>().unwrap(), t);
        }
        assert!("q4_0".parse::<KvType>().is_err());
    }

    /// Encoded rows decode to the same values as the conversions and ggml's Q8_0 dequantizer.
    #[test]
    fn encode_then_segment_matches_the_reference_conversions() {
        let width = 64;
        let src: Vec<f32> = [row(width, 1.0), row(width, 9.0)].concat();
        for ty in [KvType::F16, KvType::Bf16, KvType::Q8_0] {
            let mut bytes = vec![0u8; 2 * ty.row_bytes(width).unwrap()];
            encode_rows(ty, width, &src, &mut bytes).unwrap();
            // The reference: the whole-slice encoder and decoder of the kernels.
            let mut want_bytes = vec![0u8; bytes.len()];
            encode_into(ty.dtype(), &src, &mut want_bytes).unwrap();
            assert_eq!(bytes, want_bytes, "{ty}");
            let mut want = vec![0.0f32; src.len()];
            match ty {
                KvType::Q8_0 => crate::quant::dequantize(DType::Q8_0, &bytes, &mut want).unwrap(),
                _ => crate::convert::decode_into(ty.dtype(), &bytes, &mut want).unwrap(),
            }
            let rows = KvRows::Encoded(ty, &bytes);
            assert_eq!(rows.rows(width).unwrap(), 2);
            for r in 0..2 {
                // Unaligned segments too (a head of 16 inside a Q8_0 block of 32).
                for (col, n) in [(0usize, 64usize), (16, 16), (40, 8), (3, 5)] {
                    let mut got = vec![0.0f32; n];
                    rows.segment(width, r, col, &mut got).unwrap();
                    assert_eq!(
                        got,
                        want[r * width + col..r * width + col + n],
                        "{ty} {col}"
                    );
                }
            }
            let err = (want.iter().zip(&src))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let bound = match ty {
                KvType::F16 => 2e-3,
                KvType::Bf16 => 1.6e-2,
                _ => 2e-2,
            };
            assert!(err < bound && err > 0.0, "{ty}: {err}");
            assert!(rows.segment(width, 2, 0, &mut [0.0]).is_err());
            assert!(rows.segment(width, 0, 60, &mut [0.0; 8]).is_err());
        }
        let mut short = vec![0u8; 10];
        assert!(encode_rows(KvType::F16, width, &src, &mut short).is_err());
    }

    /// The loaders check every load against the cached rows' slice in debug builds: eight values
    /// that end one element past the slice are caught before the load.
    #[test]
    #[cfg(all(target_arch = "x86_64", debug_assertions))]
    #[should_panic(expected = "pointer range")]
    fn loader_past_the_cached_rows_is_caught() {
        use super::load::{F32Rows, Load8};
        if !crate::cpu::cpu().avx2_fma_f16c() {
            panic!("pointer range: no AVX2 loaders on this CPU to check");
        }
        let rows = vec![0.0f32; 2 * 16];
        let k = F32Rows::new(&rows[..2 * 16 - 1], 16);
        // SAFETY: the CPU has AVX2 and F16C; values 8..16 of row 1 end one past the slice, which
        // the debug assertion reports before the load (this test only exists with them).
        let _ = unsafe { k.load8(1, 8) };
    }

    /// A Q8_0 row's block read past the row's stride is caught too.
    #[test]
    #[cfg(all(target_arch = "x86_64", debug_assertions))]
    #[should_panic(expected = "pointer range")]
    fn q8_loader_past_the_row_is_caught() {
        use super::load::{Load8, Q8Rows};
        if !crate::cpu::cpu().avx2_fma_f16c() {
            panic!("pointer range: no AVX2 loaders on this CPU to check");
        }
        let bytes = vec![0u8; 4 * Q8_0_BYTES];
        let k = Q8Rows::new(&bytes, 2 * Q8_0_BYTES);
        // SAFETY: the CPU has AVX2 and F16C; column 64 is the third block of a two-block row
        // (inside the slice, outside the row), which the debug assertion reports first.
        let _ = unsafe { k.load8(0, 64) };
    }
}
