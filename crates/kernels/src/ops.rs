//! Elementwise and row-wise operations: RMSNorm, softmax, SiLU, SwiGLU, residual add.

use crate::{check_len, KernelError, Result};

/// RMSNorm over each row of `x` (`rows × w.len()`): `out = x / sqrt(mean(x²) + eps) * w`,
/// computed in f32 like Meta's `RMSNorm._norm(x.float()) * weight`.
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) -> Result<()> {
    let d = w.len();
    check_len("rmsnorm output", x.len(), out.len())?;
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(KernelError::Invalid(format!(
            "rmsnorm: input length {} is not a multiple of the weight length {d}",
            x.len()
        )));
    }
    for (orow, xrow) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let ss: f32 = xrow.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let r = 1.0 / (ss + eps).sqrt();
        for ((o, xv), wv) in orow.iter_mut().zip(xrow).zip(w) {
            *o = (xv * r) * wv;
        }
    }
    Ok(())
}

/// In-place numerically stable softmax of one row (empty rows are left alone).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return;
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// SiLU (`x · σ(x)`).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `gate = silu(gate) * up`, elementwise.
pub fn swiglu(gate: &mut [f32], up: &[f32]) -> Result<()> {
    check_len("swiglu", gate.len(), up.len())?;
    for (g, u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
    Ok(())
}

/// `x += y`, elementwise.
pub fn add_assign(x: &mut [f32], y: &[f32]) -> Result<()> {
    check_len("add", x.len(), y.len())?;
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmsnorm_hand_values() {
        // x = [3, 4]: mean square 12.5, rsqrt = 0.28284271
        let mut out = [0.0; 2];
        rmsnorm(&mut out, &[3.0, 4.0], &[1.0, 2.0], 0.0).unwrap();
        assert!((out[0] - 0.848_528_1).abs() < 1e-6);
        assert!((out[1] - 2.262_741_7).abs() < 1e-6);
        assert!(rmsnorm(&mut out, &[1.0, 2.0, 3.0], &[1.0, 2.0], 0.0).is_err());
    }

    #[test]
    fn softmax_hand_values() {
        let mut x = [1.0f32, 2.0, 3.0];
        softmax(&mut x);
        // e^-2, e^-1, 1 normalised
        let z = (-2f32).exp() + (-1f32).exp() + 1.0;
        assert!((x[2] - 1.0 / z).abs() < 1e-7);
        assert!((x[0] - (-2f32).exp() / z).abs() < 1e-7);
    }

    #[test]
    fn silu_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        let mut g = [1.0f32, -1.0];
        swiglu(&mut g, &[2.0, 3.0]).unwrap();
        assert!((g[0] - 1.462_117_2).abs() < 1e-6);
        assert!((g[1] + 0.806_824_2).abs() < 1e-6);
    }
}
