//! Rotary position embeddings with precomputed cos/sin tables.
//!
//! Two layouts exist for the same rotation:
//! - [`RopeLayout::Interleaved`]: pairs `(x[2i], x[2i+1])` — Meta's `consolidated.*.pth`
//!   (`torch.view_as_complex`) and GGUF from `convert_hf_to_gguf.py` (which permutes HF q/k back).
//! - [`RopeLayout::RotateHalf`]: pairs `(x[i], x[i + d/2])` — Hugging Face checkpoints, whose
//!   q/k rows were permuted by `convert_llama_weights_to_hf.py`.

use crate::{check_len, mul, KernelError, Result};

/// Which elements of a head form a rotation pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    Interleaved,
    RotateHalf,
}

/// The rotate-half row that becomes row `j` of the interleaved layout, in a matrix of `rows`
/// rows holding `heads` heads (llama.cpp's converter `permute`:
/// `reshape(heads, 2, rows / heads / 2, …).swapaxes(1, 2)`): how Hugging Face q/k rows map to
/// GGUF's and Meta's. Identity when `heads` does not divide the rows into pairs.
pub fn interleaved_source_row(j: usize, rows: usize, heads: usize) -> usize {
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        return j;
    }
    let half = rows / heads / 2;
    let (head, r) = (j / (2 * half), j % (2 * half));
    head * 2 * half + (r % 2) * half + r / 2
}

/// Llama 3 frequency scaling parameters (Meta's `apply_scaling`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: f32,
}

/// Base inverse frequencies `1 / theta^(2i/d)` for `i < d/2`, computed in f32 like
/// `1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))`.
pub fn base_inv_freqs(head_dim: usize, theta: f32) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| {
            let e = (2 * i) as f32 / head_dim as f32;
            let p = (theta as f64).powf(e as f64) as f32;
            1.0f32 / p
        })
        .collect()
}

/// Meta's `apply_scaling` (equal to HF's `_compute_llama3_parameters`), in f32.
pub fn llama3_scale(freqs: &[f32], s: &Llama3Scaling) -> Vec<f32> {
    let low_freq_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
    let high_freq_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
    freqs
        .iter()
        .map(|&f| {
            let wavelen = (2.0 * std::f64::consts::PI / f as f64) as f32;
            let new_f = if wavelen > low_freq_wavelen {
                f / s.factor
            } else {
                f
            };
            if wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen {
                let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                    / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * new_f / s.factor + smooth * new_f
            } else {
                new_f
            }
        })
        .collect()
}

/// Precomputed `cos`/`sin` of `pos · inv_freq[i]` for `pos < max_pos`, `i < head_dim/2`.
#[derive(Debug, Clone)]
pub struct RopeTable {
    head_dim: usize,
    max_pos: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Builds the table from inverse frequencies (`head_dim / 2` of them).
    pub fn new(inv_freqs: &[f32], max_pos: usize) -> Result<Self> {
        let half = inv_freqs.len();
        if half == 0 {
            return Err(KernelError::Invalid("rope: no frequencies".into()));
        }
        let n = mul("rope table", max_pos, half)?;
        let mut cos = Vec::with_capacity(n);
        let mut sin = Vec::with_capacity(n);
        for p in 0..max_pos {
            let t = p as f32;
            for &f in inv_freqs {
                // Angle rounded to f32 like `torch.outer(t, freqs)`; cos/sin evaluated exactly.
                let a = (t * f) as f64;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Ok(Self {
            head_dim: 2 * half,
            max_pos,
            cos,
            sin,
        })
    }

    /// Head dimension this table rotates.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The `cos` and `sin` rows (`head_dim / 2` values each) of position `pos`.
    pub fn cos_sin(&self, pos: usize) -> Option<(&[f32], &[f32])> {
        let half = self.head_dim / 2;
        let r = pos.checked_mul(half)?..pos.checked_add(1)?.checked_mul(half)?;
        Some((self.cos.get(r.clone())?, self.sin.get(r)?))
    }

    /// Number of positions in the table.
    pub fn max_pos(&self) -> usize {
        self.max_pos
    }

    /// Rotates `x` (`rows × n_heads·head_dim`, row `t` at position `start_pos + t`) in place.
    pub fn apply(
        &self,
        x: &mut [f32],
        n_heads: usize,
        start_pos: usize,
        layout: RopeLayout,
    ) -> Result<()> {
        let hd = self.head_dim;
        let half = hd / 2;
        let row = mul("rope row", n_heads, hd)?;
        if row == 0 || !x.len().is_multiple_of(row) {
            return Err(KernelError::Invalid(format!(
                "rope: input length {} is not a multiple of {n_heads} heads × {hd}",
                x.len()
            )));
        }
        let rows = x.len() / row;
        let end = start_pos
            .checked_add(rows)
            .ok_or(KernelError::Overflow("rope positions"))?;
        if end > self.max_pos {
            return Err(KernelError::Invalid(format!(
                "rope: position {} is beyond the table's {} positions (max_seq_len)",
                end - 1,
                self.max_pos
            )));
        }
        for (t, xr) in x.chunks_exact_mut(row).enumerate() {
            let p = start_pos + t;
            let c = &self.cos[p * half..(p + 1) * half];
            let s = &self.sin[p * half..(p + 1) * half];
            for head in xr.chunks_exact_mut(hd) {
                match layout {
                    RopeLayout::Interleaved => {
                        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                            let (x0, x1) = (pair[0], pair[1]);
                            pair[0] = x0 * c[i] - x1 * s[i];
                            pair[1] = x0 * s[i] + x1 * c[i];
                        }
                    }
                    RopeLayout::RotateHalf => {
                        let (a, b) = head.split_at_mut(half);
                        for i in 0..half {
                            let (x0, x1) = (a[i], b[i]);
                            a[i] = x0 * c[i] - x1 * s[i];
                            b[i] = x1 * c[i] + x0 * s[i];
                        }
                    }
                }
            }
        }
        check_len("rope", rows * row, x.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_freqs_hand_values() {
        let f = base_inv_freqs(4, 10000.0);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0], 1.0);
        assert!((f[1] - 0.01).abs() < 1e-9);
    }

    #[test]
    fn layouts_agree_after_permutation() {
        // HF rotate-half rows are Meta's interleaved rows permuted: new[j] = old[perm[j]] with
        // perm = [0, 2, 4, ..., 1, 3, 5, ...].
        let hd = 8;
        let table = RopeTable::new(&base_inv_freqs(hd, 500000.0), 16).unwrap();
        let meta: Vec<f32> = (0..hd).map(|i| (i as f32 * 0.37).sin()).collect();
        let perm: Vec<usize> = (0..hd / 2)
            .map(|i| 2 * i)
            .chain((0..hd / 2).map(|i| 2 * i + 1))
            .collect();
        let mut hf: Vec<f32> = perm.iter().map(|&p| meta[p]).collect();
        let mut m = meta.clone();
        table.apply(&mut m, 1, 5, RopeLayout::Interleaved).unwrap();
        table.apply(&mut hf, 1, 5, RopeLayout::RotateHalf).unwrap();
        for (j, &p) in perm.iter().enumerate() {
            assert!((hf[j] - m[p]).abs() < 1e-7);
        }
        // Rotation preserves the norm and position 0 is the identity.
        let mut z = meta.clone();
        table.apply(&mut z, 1, 0, RopeLayout::Interleaved).unwrap();
        assert_eq!(z, meta);
        assert!(table.apply(&mut z, 1, 16, RopeLayout::Interleaved).is_err());
    }
}
