//! The type each tensor gets: llama.cpp's `llama_tensor_get_type` (`src/llama-quant.cpp`) for the
//! Llama architecture and the file types of [`FileType`], without an importance matrix or user
//! overrides.
//!
//! Tensors are visited in llama.cpp's order ([`llama_order`]): the per-category counters (`attn_v`
//! and `ffn_down` seen so far) decide which layers of the `_M` mixes get more bits.

use std::cmp::Ordering;

use llama31_formats::DType;

use crate::error::{QuantizeError, Result};
use crate::ftype::FileType;

/// What the type choice needs to know about a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanTensor {
    /// GGUF name (`blk.N.attn_v.weight`).
    pub name: String,
    /// Row length (`ne[0]`, the innermost dimension).
    pub ne0: usize,
    /// Number of dimensions.
    pub n_dims: usize,
    /// The tensor's type in the input.
    pub input_type: DType,
}

/// Model hyper-parameters the mixes look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanModel {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
}

impl PlanModel {
    fn n_gqa(&self) -> usize {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    /// llama.cpp's `LLM_TYPE_70B` for the Llama architecture: 80 layers with grouped-query
    /// attention.
    fn is_70b(&self) -> bool {
        self.n_layer == 80 && self.n_head != self.n_head_kv
    }
}

/// The layer number in a `blk.N.` name, as `sscanf("blk.%d.")` reads it.
fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    if end == 0 || !rest[end..].starts_with('.') {
        return None;
    }
    rest[..end].parse().ok()
}

/// llama.cpp's `weight_name_comparer`: by layer number (non-layer tensors, `-1`, first), then
/// by name.
pub fn llama_order(a: &str, b: &str) -> Ordering {
    let la = layer_of(a).unwrap_or(-1);
    let lb = layer_of(b).unwrap_or(-1);
    la.cmp(&lb).then_with(|| a.cmp(b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttentionQ,
    AttentionV,
    AttentionK,
    AttentionQkv,
    AttentionKvB,
    AttentionOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        return Category::Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return Category::TokenEmbd;
    }
    let has = |s: &str| name.contains(s);
    if has("attn_qkv.weight") {
        Category::AttentionQkv
    } else if has("attn_kv_b.weight") {
        Category::AttentionKvB
    } else if has("attn_v.weight") {
        Category::AttentionV
    } else if has("attn_k.weight") {
        Category::AttentionK
    } else if has("attn_q.weight") {
        Category::AttentionQ
    } else if has("attn_output.weight") {
        Category::AttentionOutput
    } else if has("ffn_up") {
        Category::FfnUp
    } else if has("ffn_gate") {
        Category::FfnGate
    } else if has("ffn_down") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

fn is_attn_v(c: Category) -> bool {
    matches!(
        c,
        Category::AttentionV | Category::AttentionQkv | Category::AttentionKvB
    )
}

/// `tensor_allows_quantization`: 2-D (or more) tensors whose name ends in `weight`, except norms
/// and the other small tensors llama.cpp keeps as they are.
pub fn allows_quantization(name: &str, n_dims: usize) -> bool {
    if n_dims < 2 || !name.ends_with("weight") || name.contains("_norm.weight") {
        return false;
    }
    const KEEP: &[&str] = &[
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    !(KEEP.iter().any(|k| name.contains(k))
        || name == "position_embd.weight"
        || name == "token_types.weight")
}

/// The state `quantize_state_impl` keeps while types are chosen.
struct State {
    model: PlanModel,
    ftype: FileType,
    n_attention_wv: usize,
    i_attention_wv: usize,
    n_ffn_down: usize,
    i_ffn_down: usize,
    has_tied_embeddings: bool,
    n_fallback: usize,
}

fn use_more_bits(i_layer: usize, n_layers: usize) -> bool {
    // (the last clause is reached only when i_layer >= n_layers / 8)
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

impl State {
    /// `llama_tensor_get_type_impl` for the supported file types.
    fn impl_type(&mut self, mut new_type: DType, t: &PlanTensor, cat: Category) -> DType {
        use DType as G;
        use FileType as F;
        let ftype = self.ftype;
        if cat == Category::Output || (self.has_tied_embeddings && cat == Category::TokenEmbd) {
            if !t.ne0.is_multiple_of(new_type.block_size()) {
                new_type = G::Q8_0;
            } else if new_type != G::Q8_0 {
                new_type = G::Q6_K;
            }
        } else if cat == Category::TokenEmbd {
            // Only the ternary and IQ file types change the token embeddings.
        } else if is_attn_v(cat) {
            let gqa = self.model.n_gqa();
            let i = self.i_attention_wv;
            match ftype {
                F::Q2_K => new_type = if gqa >= 4 { G::Q4_K } else { G::Q3_K },
                F::Q3_K_M => new_type = if i < 2 { G::Q5_K } else { G::Q4_K },
                F::Q3_K_L => new_type = G::Q5_K,
                F::Q4_K_M | F::Q5_K_M if use_more_bits(i, self.n_attention_wv) => {
                    new_type = G::Q6_K
                }
                F::Q4_K_S if i < 4 => new_type = G::Q5_K,
                _ => {}
            }
            if self.model.is_70b() && matches!(new_type, G::Q3_K | G::Q4_K) {
                new_type = G::Q5_K;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::FfnDown {
            let (i_layer, n_layer) = (self.i_ffn_down, self.n_ffn_down);
            match ftype {
                F::Q2_K => new_type = G::Q3_K,
                F::Q3_K_M => {
                    new_type = if i_layer < n_layer / 16 {
                        G::Q5_K
                    } else {
                        G::Q4_K
                    }
                }
                F::Q3_K_L => new_type = G::Q5_K,
                F::Q4_K_M | F::Q5_K_M if use_more_bits(i_layer, n_layer) => new_type = G::Q6_K,
                F::Q4_K_S if i_layer < n_layer / 8 => new_type = G::Q5_K,
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if cat == Category::AttentionOutput {
            match ftype {
                F::Q2_K => new_type = G::Q3_K,
                F::Q3_K_M => new_type = G::Q4_K,
                F::Q3_K_L => new_type = G::Q5_K,
                _ => {}
            }
        } else if cat == Category::AttentionQkv {
            match ftype {
                F::Q3_K_M | F::Q3_K_L => new_type = G::Q4_K,
                F::Q4_K_M => new_type = G::Q5_K,
                F::Q5_K_M => new_type = G::Q6_K,
                _ => {}
            }
        }
        new_type
    }

    /// `tensor_type_fallback`: a type whose blocks fit the row length.
    fn fallback(&mut self, t: &PlanTensor, target: DType) -> Result<DType> {
        use DType as G;
        let qk = target.block_size();
        if t.ne0.is_multiple_of(qk) {
            return Ok(target);
        }
        self.n_fallback += 1;
        let mut ret = match target {
            G::Q2_K | G::Q3_K => G::Q4_0,
            G::Q4_K => G::Q5_0,
            G::Q5_K => G::Q5_1,
            G::Q6_K => G::Q8_0,
            other if qk <= 32 => other,
            other => {
                return Err(QuantizeError::NoFallback {
                    tensor: t.name.clone(),
                    ty: other.to_string(),
                    cols: t.ne0,
                })
            }
        };
        if !t.ne0.is_multiple_of(ret.block_size()) {
            ret = G::F16;
        }
        tracing::debug!(
            tensor = t.name.as_str(),
            cols = t.ne0,
            from = %target,
            to = %ret,
            "row length not divisible by the block size: falling back"
        );
        Ok(ret)
    }
}

/// The chosen type of every tensor and how many needed a fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One type per input tensor, in the order given.
    pub types: Vec<DType>,
    /// Tensors whose row length forced a fallback type.
    pub n_fallback: usize,
}

/// Chooses the output type of every tensor (given in [`llama_order`]) for `ftype`, as
/// llama-quantize does without an importance matrix.
pub fn plan(tensors: &[PlanTensor], model: PlanModel, ftype: FileType) -> Result<Plan> {
    let mut st = State {
        model,
        ftype,
        n_attention_wv: tensors
            .iter()
            .filter(|t| is_attn_v(category(&t.name)))
            .count(),
        i_attention_wv: 0,
        n_ffn_down: model.n_layer,
        i_ffn_down: 0,
        has_tied_embeddings: !tensors
            .iter()
            .any(|t| category(&t.name) == Category::Output),
        n_fallback: 0,
    };
    let default_type = ftype.default_type();
    let mut types = Vec::with_capacity(tensors.len());
    for t in tensors {
        if !allows_quantization(&t.name, t.n_dims) {
            types.push(t.input_type);
            continue;
        }
        let mut new_type = default_type;
        if default_type.is_quantized() {
            new_type = st.impl_type(new_type, t, category(&t.name));
            new_type = st.fallback(t, new_type)?;
        }
        types.push(new_type);
    }
    Ok(Plan {
        types,
        n_fallback: st.n_fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_layer_then_name() {
        let mut names = vec![
            "blk.10.attn_q.weight",
            "output.weight",
            "blk.2.ffn_down.weight",
            "blk.2.attn_k.weight",
            "token_embd.weight",
            "rope_freqs.weight",
        ];
        names.sort_by(|a, b| llama_order(a, b));
        assert_eq!(
            names,
            [
                "output.weight",
                "rope_freqs.weight",
                "token_embd.weight",
                "blk.2.attn_k.weight",
                "blk.2.ffn_down.weight",
                "blk.10.attn_q.weight"
            ]
        );
    }

    #[test]
    fn more_bits_layers() {
        // llama.cpp's rule for 32 layers: the first 4, the last 4, and every third from 6.
        let got: Vec<usize> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(
            got,
            [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
    }

    #[test]
    fn norms_and_vectors_are_kept() {
        assert!(!allows_quantization("blk.0.attn_norm.weight", 1));
        assert!(!allows_quantization("blk.0.attn_q.weight", 1));
        assert!(!allows_quantization("rope_freqs.weight", 1));
        assert!(allows_quantization("blk.0.attn_q.weight", 2));
    }
}
