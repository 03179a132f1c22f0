//! f16 and bf16 conversions to f32 (scalar; the F16C forms used by the SIMD kernels live in
//! [`super::simd`]).

/// Converts IEEE binary16 bits to f32 (exact, handles subnormals, inf and NaN).
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Converts bfloat16 bits to f32 (exact: bf16 is the top half of an f32).
#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Branch-free binary16 → f32 that the compiler can vectorize (exact for all inputs,
/// including subnormals, infinities and NaN payloads).
#[inline(always)]
pub(crate) fn f16_to_f32_fast(h: u16) -> f32 {
    let h = u32::from(h);
    let sign = (h & 0x8000) << 16;
    let em = h & 0x7fff;
    let exp = em & 0x7c00;
    // Normal numbers: rebias exponent (127 - 15 = 112).
    let normal = (em << 13) + (112 << 23);
    // Inf/NaN: exponent all ones.
    let infnan = (em << 13) | 0x7f80_0000;
    // Subnormals (and zero): value = mantissa * 2^-24, exact in f32.
    let sub = ((em as f32) * f32::from_bits(0x3380_0000)).to_bits(); // 2^-24
    let bits = if exp == 0x7c00 {
        infnan
    } else if exp == 0 {
        sub
    } else {
        normal
    };
    f32::from_bits(bits | sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_fast_matches_half_for_all_bit_patterns() {
        for bits in 0..=u16::MAX {
            let a = f16_to_f32_fast(bits);
            let b = half::f16::from_bits(bits).to_f32();
            if b.is_nan() {
                assert!(a.is_nan(), "bits {bits:#06x}");
            } else {
                assert_eq!(a.to_bits(), b.to_bits(), "bits {bits:#06x}");
            }
        }
    }

    #[test]
    fn bf16_known_values() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc000), -2.0);
        assert_eq!(bf16_to_f32(0x3e80), 0.25);
        assert!(bf16_to_f32(0x7fc0).is_nan());
    }

    #[test]
    fn f16_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
    }
}
