//! Joining model-parallel shards (Meta 70B/405B checkpoints are split over 8 files).
//!
//! The Llama rule (from Meta's fairscale layers in `llama_models/llama3/model.py`):
//! column-parallel weights (`wq`, `wk`, `wv`, `w1`, `w3`, `output`) are split along dim 0 (output
//! features); row-parallel weights (`wo`, `w2`) along dim 1; everything else (norms,
//! `rope.freqs`) is replicated and must be identical in every shard.
//!
//! `tok_embeddings.weight` differs between generations: Llama 3.x uses `VocabParallelEmbedding`
//! (split along dim 0, the vocabulary — transformers' `convert_llama_weights_to_hf.py` uses
//! `concat_dim = 0` for Llama 3), Llama 1/2 used `ParallelEmbedding` (split along dim 1).
//! [`llama_shard_dim`] gives the Llama 3 rule; [`crate::MetaCheckpoint`] detects the Llama 2 layout
//! from the shapes (see [`tok_embeddings_dim`]).

use std::path::Path;

use crate::error::{FormatError, Result};
use crate::tensor::TensorView;

/// The dimension along which a Llama tensor is split across model-parallel shards, or `None` when
/// every shard holds an identical copy.
pub fn llama_shard_dim(name: &str) -> Option<usize> {
    if name == "tok_embeddings.weight" || name == "output.weight" {
        return Some(0);
    }
    const DIM0: [&str; 5] = [
        "attention.wq.weight",
        "attention.wk.weight",
        "attention.wv.weight",
        "feed_forward.w1.weight",
        "feed_forward.w3.weight",
    ];
    const DIM1: [&str; 2] = ["attention.wo.weight", "feed_forward.w2.weight"];
    if DIM0.iter().any(|s| name.ends_with(s)) {
        Some(0)
    } else if DIM1.iter().any(|s| name.ends_with(s)) {
        Some(1)
    } else {
        None
    }
}

/// The split dim of `tok_embeddings.weight` given one shard's shape of it and of `output.weight`:
/// Llama 3 shards both as `[vocab / n, dim]` (dim 0); Llama 2 shards the embedding as
/// `[vocab, dim / n]` (dim 1). Without `output.weight` the Llama 3 rule applies.
pub fn tok_embeddings_dim(emb_shard: &[usize], output_shard: Option<&[usize]>) -> usize {
    match output_shard {
        Some(out) if out != emb_shard && emb_shard.len() == 2 && out.len() == 2 => 1,
        _ => 0,
    }
}

fn mismatch(path: &Path, name: &str, msg: String) -> FormatError {
    FormatError::ShardMismatch {
        path: path.to_path_buf(),
        name: name.to_owned(),
        msg,
    }
}

/// The shape of the joined tensor; checks that the parts agree in dtype, rank and every dimension
/// except `dim` (all dimensions, and the bytes, when `dim` is `None`).
pub fn joined_shape(
    path: &Path,
    name: &str,
    parts: &[TensorView<'_>],
    dim: Option<usize>,
) -> Result<Vec<usize>> {
    let first = parts
        .first()
        .ok_or_else(|| mismatch(path, name, "no shards".into()))?;
    let mut shape = first.shape.clone();
    for (i, p) in parts.iter().enumerate().skip(1) {
        if p.dtype != first.dtype {
            return Err(mismatch(
                path,
                name,
                format!("shard {i} is {}, shard 0 is {}", p.dtype, first.dtype),
            ));
        }
        if p.shape.len() != first.shape.len() {
            return Err(mismatch(
                path,
                name,
                format!(
                    "shard {i} has shape {:?}, shard 0 {:?}",
                    p.shape, first.shape
                ),
            ));
        }
        for (d, (&a, &b)) in p.shape.iter().zip(&first.shape).enumerate() {
            if Some(d) != dim && a != b {
                return Err(mismatch(
                    path,
                    name,
                    format!(
                        "shard {i} has shape {:?}, shard 0 {:?}",
                        p.shape, first.shape
                    ),
                ));
            }
        }
        match dim {
            None => {
                if p.data != first.data {
                    return Err(mismatch(
                        path,
                        name,
                        format!("replicated tensor differs between shard 0 and shard {i}"),
                    ));
                }
            }
            Some(d) => {
                let (Some(total), Some(&add)) = (shape.get_mut(d), p.shape.get(d)) else {
                    return Err(mismatch(path, name, format!("dimension {d} out of range")));
                };
                *total = total
                    .checked_add(add)
                    .ok_or_else(|| mismatch(path, name, "joined shape overflows".into()))?;
            }
        }
    }
    if let Some(d) = dim {
        if d >= shape.len() {
            return Err(mismatch(
                path,
                name,
                format!("cannot join along dim {d} of a {}-d tensor", shape.len()),
            ));
        }
    }
    Ok(shape)
}

/// Concatenates `parts` along `dim` (or copies part 0 when `dim` is `None`) into `out`, which must
/// be exactly the joined tensor's byte size. Only plain (non-quantized) dtypes can be joined.
pub fn join_into(
    path: &Path,
    name: &str,
    parts: &[TensorView<'_>],
    dim: Option<usize>,
    out: &mut [u8],
) -> Result<()> {
    let shape = joined_shape(path, name, parts, dim)?;
    let first = parts
        .first()
        .ok_or_else(|| mismatch(path, name, "no shards".into()))?;
    let elem = first.dtype.elem_size().ok_or_else(|| {
        mismatch(
            path,
            name,
            format!("cannot join quantized dtype {}", first.dtype),
        )
    })?;
    let total = first
        .dtype
        .bytes_for_shape(&shape)
        .ok_or_else(|| mismatch(path, name, "joined size overflows".into()))?;
    if out.len() != total {
        return Err(mismatch(
            path,
            name,
            format!(
                "output buffer has {} bytes, joined tensor needs {total}",
                out.len()
            ),
        ));
    }
    let Some(dim) = dim else {
        out.copy_from_slice(first.data);
        return Ok(());
    };
    // Row-major: outer = product of dims before `dim`; each part contributes a contiguous chunk of
    // shape[dim] * inner elements per outer index.
    let outer: usize = shape.iter().take(dim).product();
    let inner: usize = shape.iter().skip(dim + 1).product();
    let mut w = 0usize;
    for o in 0..outer {
        for p in parts {
            let chunk = p.shape.get(dim).copied().unwrap_or(0) * inner * elem;
            let src = p
                .data
                .get(o * chunk..(o + 1) * chunk)
                .ok_or_else(|| mismatch(path, name, "shard data shorter than its shape".into()))?;
            let dst = out
                .get_mut(w..w + chunk)
                .ok_or_else(|| mismatch(path, name, "output buffer too short".into()))?;
            dst.copy_from_slice(src);
            w += chunk;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn view<'a>(name: &'a str, shape: &[usize], data: &'a [u8]) -> TensorView<'a> {
        TensorView {
            name,
            dtype: DType::I8,
            shape: shape.to_vec(),
            data,
        }
    }

    #[test]
    fn llama_rule() {
        assert_eq!(llama_shard_dim("tok_embeddings.weight"), Some(0));
        assert_eq!(llama_shard_dim("output.weight"), Some(0));
        assert_eq!(llama_shard_dim("layers.3.attention.wq.weight"), Some(0));
        assert_eq!(llama_shard_dim("layers.3.attention.wo.weight"), Some(1));
        assert_eq!(llama_shard_dim("layers.3.feed_forward.w2.weight"), Some(1));
        assert_eq!(llama_shard_dim("layers.3.feed_forward.w3.weight"), Some(0));
        assert_eq!(llama_shard_dim("layers.3.attention_norm.weight"), None);
        assert_eq!(llama_shard_dim("norm.weight"), None);
        assert_eq!(llama_shard_dim("rope.freqs"), None);
    }

    #[test]
    fn tok_embeddings_layouts() {
        // Llama 3 (vocab 128256, dim 8192, 8 shards): both [16032, 8192].
        assert_eq!(tok_embeddings_dim(&[16032, 8192], Some(&[16032, 8192])), 0);
        // Llama 2 (vocab 32000, dim 8192, 8 shards): embedding [32000, 1024], output [4000, 8192].
        assert_eq!(tok_embeddings_dim(&[32000, 1024], Some(&[4000, 8192])), 1);
        assert_eq!(tok_embeddings_dim(&[32000, 1024], None), 0);
    }

    #[test]
    fn join_dim0_and_dim1() {
        // a = [[1,2],[3,4]], b = [[5,6],[7,8]] (i8)
        let a = [1u8, 2, 3, 4];
        let b = [5u8, 6, 7, 8];
        let parts = [view("x", &[2, 2], &a), view("x", &[2, 2], &b)];
        let p = Path::new("d");
        assert_eq!(joined_shape(p, "x", &parts, Some(0)).unwrap(), vec![4, 2]);
        let mut out = [0u8; 8];
        join_into(p, "x", &parts, Some(0), &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(joined_shape(p, "x", &parts, Some(1)).unwrap(), vec![2, 4]);
        join_into(p, "x", &parts, Some(1), &mut out).unwrap();
        assert_eq!(out, [1, 2, 5, 6, 3, 4, 7, 8]);
        // Replicated parts must be identical.
        assert!(join_into(p, "x", &parts, None, &mut out[..4]).is_err());
        // Wrong output size.
        assert!(join_into(p, "x", &parts, Some(0), &mut out[..7]).is_err());
        // Shape mismatch off the join dim.
        let c = [0u8; 6];
        let bad = [view("x", &[2, 2], &a), view("x", &[2, 3], &c)];
        assert!(joined_shape(p, "x", &bad, Some(0)).is_err());
        assert_eq!(joined_shape(p, "x", &bad, Some(1)).unwrap(), vec![2, 5]);
    }
}
