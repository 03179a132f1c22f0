//! llama.cpp GGUF LoRA adapters (written by its `convert_lora_to_gguf.py`).
//!
//! Metadata `general.type = "adapter"`, `adapter.type = "lora"`, `general.architecture = "llama"`,
//! `adapter.lora.alpha`; tensors `blk.N.<stem>.weight.lora_a` (`ne = [in, r]`) and `.lora_b`
//! (`ne = [r, out]`) in F32, F16, BF16 or Q8_0. The scale is llama.cpp's: `alpha / r`, or 1 when
//! alpha is 0 or absent. q/k `lora_b` rows are in GGUF's (interleaved) order.

use std::collections::BTreeMap;
use std::path::Path;

use llama31_formats::{DType, GgufFile};
use llama31_kernels::convert::to_f32_vec;
use llama31_kernels::quant::dequantize_to_vec;
use llama31_kernels::rope::RopeLayout;

use super::{adapter_err, check_term, AdapterFormat, LoraAdapter, LoraModule, LoraTerm};
use crate::error::Result;

/// Reads a GGUF adapter file.
pub fn load_file(path: &Path) -> Result<LoraAdapter> {
    let file = GgufFile::open(path)?;
    let err = |m: String| adapter_err(path, m);
    match file.opt_str("general.type")? {
        Some("adapter") => {}
        Some(t) => {
            return Err(err(format!(
                "general.type is {t:?}: a model, not an adapter (pass it as the model)"
            )))
        }
        None => return Err(err("no general.type (expected \"adapter\")".into())),
    }
    match file.opt_str("adapter.type")? {
        Some("lora") => {}
        Some(t) => {
            return Err(err(format!(
                "adapter.type {t:?} is not supported (only lora)"
            )))
        }
        None => return Err(err("no adapter.type (expected \"lora\")".into())),
    }
    match file.opt_str("general.architecture")? {
        Some("llama") => {}
        Some(a) => return Err(err(format!("an adapter for architecture {a:?}, not llama"))),
        None => return Err(err("no general.architecture".into())),
    }
    let alpha = file.opt_f32("adapter.lora.alpha")?.unwrap_or(0.0);
    if !alpha.is_finite() {
        return Err(err(format!("adapter.lora.alpha {alpha} is not finite")));
    }
    let mut pairs: BTreeMap<(usize, LoraModule), [Option<String>; 2]> = BTreeMap::new();
    for info in file.tensor_infos() {
        let name = info.name.as_str();
        let (layer, module, which) = parse_name(path, name)?;
        let slot = &mut pairs.entry((layer, module)).or_default()[which];
        if slot.is_some() {
            return Err(err(format!("{name} appears twice")));
        }
        *slot = Some(name.to_string());
    }
    let mut terms = Vec::with_capacity(pairs.len());
    for ((layer, module), names) in pairs {
        let [Some(na), Some(nb)] = names else {
            return Err(err(format!(
                "blk.{layer}.{} has only one of lora_a / lora_b",
                module.gguf_name()
            )));
        };
        let (ta, tb) = (file.tensor(&na)?, file.tensor(&nb)?);
        let (sa, sb) = (ta.shape.clone(), tb.shape.clone());
        if sa.len() != 2 || sb.len() != 2 || sa[0] != sb[1] {
            return Err(err(format!(
                "{na} has shape {sa:?} and {nb} {sb:?} (expected [r, in] and [out, r])"
            )));
        }
        let rank = sa[0];
        let term = LoraTerm {
            layer,
            module,
            rank,
            in_features: sa[1],
            out_features: sb[0],
            a: values(path, &na, ta.dtype, ta.data, ta.numel())?,
            b: values(path, &nb, tb.dtype, tb.data, tb.numel())?,
            scale: if alpha != 0.0 {
                alpha / rank.max(1) as f32
            } else {
                1.0
            },
        };
        check_term(path, &term)?;
        terms.push(term);
    }
    if terms.is_empty() {
        return Err(err("no LoRA tensors".into()));
    }
    Ok(LoraAdapter {
        name: path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("adapter")
            .to_string(),
        format: AdapterFormat::Gguf,
        layout: RopeLayout::Interleaved,
        terms,
    })
}

fn values(path: &Path, name: &str, dtype: DType, data: &[u8], n: usize) -> Result<Vec<f32>> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => Ok(to_f32_vec(dtype, data)?),
        DType::Q8_0 => Ok(dequantize_to_vec(dtype, data, n)?),
        other => Err(adapter_err(
            path,
            format!("{name}: dtype {other} (llama.cpp adapters are F32, F16, BF16 or Q8_0)"),
        )),
    }
}

/// `(layer, module, 0 for lora_a / 1 for lora_b)` of a GGUF adapter tensor name.
fn parse_name(path: &Path, name: &str) -> Result<(usize, LoraModule, usize)> {
    let unsupported = |what: &str| adapter_err(path, format!("{name}: {what} is not supported"));
    let (stem, which) = if let Some(s) = name.strip_suffix(".weight.lora_a") {
        (s, 0)
    } else if let Some(s) = name.strip_suffix(".weight.lora_b") {
        (s, 1)
    } else {
        return Err(unsupported("a tensor that is not a lora_a / lora_b"));
    };
    let Some(rest) = stem.strip_prefix("blk.") else {
        return Err(unsupported(
            "a LoRA outside the layers (token_embd / output)",
        ));
    };
    let (layer, module) = rest
        .split_once('.')
        .ok_or_else(|| unsupported("this tensor name"))?;
    let layer: usize = layer
        .parse()
        .map_err(|_| unsupported("this layer number"))?;
    let module = LoraModule::from_gguf(module).ok_or_else(|| {
        unsupported(&format!(
            "target {module:?} (known: attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, \
             ffn_down)"
        ))
    })?;
    Ok((layer, module, which))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let p = Path::new("a.gguf");
        assert_eq!(
            parse_name(p, "blk.3.ffn_down.weight.lora_b").unwrap(),
            (3, LoraModule::Down, 1)
        );
        assert_eq!(
            parse_name(p, "blk.0.attn_q.weight.lora_a").unwrap(),
            (0, LoraModule::Q, 0)
        );
        for bad in [
            "token_embd.weight.lora_a",
            "blk.0.attn_qkv.weight.lora_a",
            "blk.0.attn_q.weight",
            "blk.x.attn_q.weight.lora_a",
        ] {
            assert!(parse_name(p, bad).is_err(), "{bad}");
        }
    }
}
