//! Hugging Face PEFT LoRA directories: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! Tensor names are `base_model.model.model.layers.N.{self_attn,mlp}.<module>.lora_{A,B}.weight`
//! (`A`: `[r, in]`, `B`: `[out, r]`). Each module's rank and alpha come from `r` / `lora_alpha`
//! unless a `rank_pattern` / `alpha_pattern` key matches its name the way PEFT matches it (the
//! first key, in file order, for which `(.*\.)?(KEY)$` matches `model.layers.N.<parent>.<module>`);
//! the scale is `alpha / r`, or `alpha / √r` with `use_rslora`.

use std::path::Path;

use llama31_formats::{DType, SafetensorsFile};
use llama31_kernels::convert::to_f32_vec;
use llama31_kernels::quant::dequantize_to_vec;
use llama31_kernels::rope::RopeLayout;
use serde_json::{Map, Value};

use super::{adapter_err, check_term, AdapterFormat, LoraAdapter, LoraModule, LoraTerm, MAX_RANK};
use crate::error::{ModelError, Result};

/// Largest `adapter_config.json` read (real ones are under 2 KB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The parts of `adapter_config.json` that decide what the adapter computes.
#[derive(Debug)]
struct PeftConfig {
    r: usize,
    alpha: f64,
    rslora: bool,
    /// `(regex, rank)` in file order.
    rank_pattern: Vec<(regex::Regex, usize)>,
    /// `(regex, alpha)` in file order.
    alpha_pattern: Vec<(regex::Regex, f64)>,
}

impl PeftConfig {
    fn rank_alpha(&self, key: &str) -> (usize, f64) {
        let r = self
            .rank_pattern
            .iter()
            .find(|(re, _)| re.is_match(key))
            .map_or(self.r, |&(_, r)| r);
        let alpha = self
            .alpha_pattern
            .iter()
            .find(|(re, _)| re.is_match(key))
            .map_or(self.alpha, |&(_, a)| a);
        (r, alpha)
    }

    fn scale(&self, r: usize, alpha: f64) -> f32 {
        let s = if self.rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        };
        s as f32
    }
}

/// Reads a PEFT directory.
pub fn load_dir(dir: &Path) -> Result<LoraAdapter> {
    let cfg_path = dir.join("adapter_config.json");
    let text = read_small(&cfg_path)?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| adapter_err(&cfg_path, format!("not valid JSON: {e}")))?;
    let cfg = parse_config(&cfg_path, &value)?;
    let st_path = dir.join("adapter_model.safetensors");
    if !st_path.is_file() {
        let hint = if dir.join("adapter_model.bin").is_file() {
            " (adapter_model.bin, a pickle, is not read: save the adapter with \
             safe_serialization=True)"
        } else {
            ""
        };
        return Err(adapter_err(
            &st_path,
            format!("missing: a PEFT adapter needs adapter_model.safetensors{hint}"),
        ));
    }
    let file = SafetensorsFile::open(&st_path)?;
    let mut pairs: std::collections::BTreeMap<(usize, LoraModule), [Option<Vec<usize>>; 2]> =
        Default::default();
    let mut names: Vec<&str> = file.names().collect();
    names.sort_unstable();
    for name in &names {
        let (layer, module, which) = parse_name(&st_path, name)?;
        let t = file.tensor(name)?;
        if t.shape.len() != 2 {
            return Err(adapter_err(
                &st_path,
                format!("{name}: shape {:?} is not 2-D", t.shape),
            ));
        }
        let slot = &mut pairs.entry((layer, module)).or_default()[which];
        if slot.is_some() {
            return Err(adapter_err(&st_path, format!("{name} appears twice")));
        }
        *slot = Some(t.shape.clone());
    }
    let mut terms = Vec::with_capacity(pairs.len());
    for ((layer, module), shapes) in pairs {
        let key = format!(
            "model.layers.{layer}.{}.{}",
            module.hf_parent(),
            module.hf_name()
        );
        let [Some(sa), Some(sb)] = shapes else {
            let missing = if shapes[0].is_none() {
                "lora_A"
            } else {
                "lora_B"
            };
            return Err(adapter_err(
                &st_path,
                format!("{key} has no {missing} tensor"),
            ));
        };
        let (rank, in_features, out_features) = (sa[0], sa[1], sb[0]);
        if sb[1] != rank {
            return Err(adapter_err(
                &st_path,
                format!("{key}: lora_A is {sa:?} but lora_B is {sb:?} (ranks differ)"),
            ));
        }
        let (r, alpha) = cfg.rank_alpha(&key);
        if r != rank {
            return Err(adapter_err(
                &st_path,
                format!(
                    "{key}: the tensors have rank {rank} but adapter_config.json gives r = {r} \
                     (rank_pattern) for it"
                ),
            ));
        }
        let term = LoraTerm {
            layer,
            module,
            rank,
            in_features,
            out_features,
            a: read_f32(&file, &st_path, &tensor_name(layer, module, 0))?,
            b: read_f32(&file, &st_path, &tensor_name(layer, module, 1))?,
            scale: cfg.scale(r, alpha),
        };
        check_term(&st_path, &term)?;
        terms.push(term);
    }
    if terms.is_empty() {
        return Err(adapter_err(&st_path, "no LoRA tensors"));
    }
    Ok(LoraAdapter {
        name: stem(dir),
        format: AdapterFormat::Peft,
        layout: RopeLayout::RotateHalf,
        terms,
    })
}

fn stem(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("adapter")
        .trim_end_matches(".gguf")
        .to_string()
}

fn tensor_name(layer: usize, module: LoraModule, which: usize) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{}.lora_{}.weight",
        module.hf_parent(),
        module.hf_name(),
        ["A", "B"][which]
    )
}

pub(crate) fn read_small(path: &Path) -> Result<String> {
    let io = |e| ModelError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(adapter_err(
            path,
            format!("{} bytes (at most {MAX_CONFIG_BYTES})", meta.len()),
        ));
    }
    std::fs::read_to_string(path).map_err(io)
}

/// `(layer, module, 0 for A / 1 for B)` of a PEFT tensor name; anything that is not a LoRA A/B
/// of one of the seven projections is refused with what it is.
fn parse_name(path: &Path, name: &str) -> Result<(usize, LoraModule, usize)> {
    let unsupported = |what: &str| adapter_err(path, format!("{name}: {what} is not supported"));
    if name.contains("lora_magnitude_vector") {
        return Err(unsupported("DoRA (use_dora)"));
    }
    if name.contains("modules_to_save") {
        return Err(unsupported("a fully trained module (modules_to_save)"));
    }
    if name.contains("lora_embedding_") || name.contains("embed_tokens") {
        return Err(unsupported("a LoRA on the embeddings"));
    }
    if name.contains("lm_head") {
        return Err(unsupported("a LoRA on the output head (lm_head)"));
    }
    let rest = name
        .strip_prefix("base_model.model.model.layers.")
        .ok_or_else(|| unsupported("a tensor outside model.layers"))?;
    let (layer, rest) = rest
        .split_once('.')
        .ok_or_else(|| unsupported("this tensor name"))?;
    let layer: usize = layer
        .parse()
        .map_err(|_| unsupported("this layer number"))?;
    let (parent, rest) = rest
        .split_once('.')
        .ok_or_else(|| unsupported("this tensor name"))?;
    let (module, rest) = rest
        .split_once('.')
        .ok_or_else(|| unsupported("this tensor name"))?;
    let module = LoraModule::from_hf(module)
        .filter(|m| m.hf_parent() == parent)
        .ok_or_else(|| {
            unsupported(&format!(
                "target module {parent}.{module} (known: q_proj, k_proj, v_proj, o_proj, \
                 gate_proj, up_proj, down_proj)"
            ))
        })?;
    let which = match rest {
        "lora_A.weight" => 0,
        "lora_B.weight" => 1,
        r if r.ends_with("bias") => return Err(unsupported("a bias (bias / lora_bias)")),
        _ => return Err(unsupported("this LoRA tensor")),
    };
    Ok((layer, module, which))
}

fn read_f32(file: &SafetensorsFile, path: &Path, name: &str) -> Result<Vec<f32>> {
    let t = file.tensor(name)?;
    let v = match t.dtype {
        DType::F32 | DType::F16 | DType::BF16 => to_f32_vec(t.dtype, t.data)?,
        q if q.is_quantized() => dequantize_to_vec(q, t.data, t.numel())?,
        other => {
            return Err(adapter_err(
                path,
                format!("{name}: dtype {other} (expected F32, F16 or BF16)"),
            ))
        }
    };
    Ok(v)
}

fn parse_config(path: &Path, v: &Value) -> Result<PeftConfig> {
    let err = |msg: String| adapter_err(path, msg);
    let obj = v
        .as_object()
        .ok_or_else(|| err("not a JSON object".into()))?;
    let str_field = |k: &str| obj.get(k).and_then(Value::as_str);
    match str_field("peft_type") {
        Some("LORA") => {}
        Some(other) => {
            return Err(err(format!(
                "peft_type {other:?} is not supported (only LORA)"
            )))
        }
        None => return Err(err("no peft_type (expected \"LORA\")".into())),
    }
    let truthy = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
    if truthy("use_dora") {
        return Err(err("DoRA (use_dora: true) is not supported".into()));
    }
    if truthy("lora_bias") {
        return Err(err("lora_bias: true is not supported".into()));
    }
    if let Some(m) = obj.get("modules_to_save").filter(|m| !is_empty(m)) {
        return Err(err(format!(
            "modules_to_save {m} is not supported (fully trained modules; only LoRA terms are)"
        )));
    }
    if let Some(m) = obj.get("layer_replication").filter(|m| !is_empty(m)) {
        return Err(err(format!("layer_replication {m} is not supported")));
    }
    match str_field("bias") {
        None | Some("none") => {}
        Some(b) => return Err(err(format!("bias {b:?} is not supported (only \"none\")"))),
    }
    if truthy("fan_in_fan_out") {
        // PEFT itself turns this off for nn.Linear layers (Llama's): A and B stay [r, in] and
        // [out, r].
        tracing::warn!(path = %path.display(), "fan_in_fan_out is ignored for Llama's linear layers, as PEFT does");
    }
    let r = obj
        .get("r")
        .and_then(Value::as_u64)
        .ok_or_else(|| err("no integer r".into()))?;
    let r = positive_rank(r).map_err(|m| err(format!("r: {m}")))?;
    let alpha = obj
        .get("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| err("no number lora_alpha".into()))?;
    if !alpha.is_finite() {
        return Err(err(format!("lora_alpha {alpha} is not finite")));
    }
    let rslora = truthy("use_rslora");
    check_targets(path, obj.get("target_modules"))?;
    let rank_pattern = patterns(path, obj.get("rank_pattern"), |v| {
        v.as_u64()
            .ok_or_else(|| "not an integer".to_string())
            .and_then(positive_rank)
    })?;
    let alpha_pattern = patterns(path, obj.get("alpha_pattern"), |v| {
        v.as_f64()
            .filter(|a| a.is_finite())
            .ok_or_else(|| "not a finite number".to_string())
    })?;
    Ok(PeftConfig {
        r,
        alpha,
        rslora,
        rank_pattern,
        alpha_pattern,
    })
}

fn positive_rank(r: u64) -> std::result::Result<usize, String> {
    match usize::try_from(r) {
        Ok(0) => Err("rank 0".into()),
        Ok(r) if r <= MAX_RANK => Ok(r),
        _ => Err(format!("rank {r} (at most {MAX_RANK})")),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `target_modules` may name only the seven projections (or be `all-linear`, or a regex); the
/// tensors decide what is applied, but an unknown target is a sign of an adapter for something
/// else.
fn check_targets(path: &Path, targets: Option<&Value>) -> Result<()> {
    let Some(Value::Array(list)) = targets else {
        return Ok(());
    };
    for t in list {
        let name = t.as_str().ok_or_else(|| {
            adapter_err(path, format!("target_modules entry {t} is not a string"))
        })?;
        let last = name.rsplit('.').next().unwrap_or(name);
        if LoraModule::from_hf(last).is_none() {
            return Err(adapter_err(
                path,
                format!(
                    "unknown target module {name:?} (supported: q_proj, k_proj, v_proj, o_proj, \
                     gate_proj, up_proj, down_proj)"
                ),
            ));
        }
    }
    Ok(())
}

fn patterns<T>(
    path: &Path,
    v: Option<&Value>,
    value: impl Fn(&Value) -> std::result::Result<T, String>,
) -> Result<Vec<(regex::Regex, T)>> {
    let map = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(adapter_err(
                path,
                format!("pattern {other} is not an object"),
            ))
        }
    };
    pattern_list(path, map, value)
}

fn pattern_list<T>(
    path: &Path,
    map: &Map<String, Value>,
    value: impl Fn(&Value) -> std::result::Result<T, String>,
) -> Result<Vec<(regex::Regex, T)>> {
    map.iter()
        .map(|(k, v)| {
            let re = regex::RegexBuilder::new(&format!(r"^(?:.*\.)?(?:{k})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| adapter_err(path, format!("pattern {k:?}: {e}")))?;
            let val = value(v).map_err(|m| adapter_err(path, format!("pattern {k:?}: {m}")))?;
            Ok((re, val))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Result<PeftConfig> {
        parse_config(
            Path::new("adapter_config.json"),
            &serde_json::from_str(json).unwrap(),
        )
    }

    /// PEFT's `get_pattern_key`: the first key (file order) whose `(.*\.)?(KEY)$` matches.
    #[test]
    fn patterns_match_like_peft() {
        let c = cfg(r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"use_rslora":true,
            "rank_pattern":{"q_proj":4,"layers.1.mlp.down_proj":16},"alpha_pattern":{"v_proj":24}}"#)
        .unwrap();
        assert_eq!(c.rank_alpha("model.layers.0.self_attn.q_proj"), (4, 16.0));
        assert_eq!(c.rank_alpha("model.layers.1.mlp.down_proj"), (16, 16.0));
        assert_eq!(c.rank_alpha("model.layers.0.mlp.down_proj"), (8, 16.0));
        assert_eq!(c.rank_alpha("model.layers.11.mlp.down_proj"), (8, 16.0));
        assert_eq!(c.rank_alpha("model.layers.0.self_attn.v_proj"), (8, 24.0));
        // Not a suffix at a dot boundary.
        assert_eq!(c.rank_alpha("model.layers.0.self_attn.xq_proj"), (8, 16.0));
        assert_eq!(c.scale(4, 16.0), 8.0);
    }

    #[test]
    fn refuses_what_it_cannot_compute() {
        for (json, needle) in [
            (r#"{"peft_type":"IA3","r":8,"lora_alpha":16}"#, "IA3"),
            (
                r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"use_dora":true}"#,
                "DoRA",
            ),
            (
                r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"modules_to_save":["lm_head"]}"#,
                "modules_to_save",
            ),
            (r#"{"peft_type":"LORA","r":0,"lora_alpha":16}"#, "rank 0"),
            (
                r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"bias":"all"}"#,
                "bias",
            ),
            (
                r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj","c_attn"]}"#,
                "c_attn",
            ),
            (
                r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"rank_pattern":{"q_proj":0}}"#,
                "rank 0",
            ),
            (
                r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"rank_pattern":{"(":4}}"#,
                "pattern",
            ),
            (r#"{"peft_type":"LORA","lora_alpha":16}"#, "no integer r"),
        ] {
            let e = cfg(json).unwrap_err().to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
        assert!(cfg(r#"{"peft_type":"LORA","r":8,"lora_alpha":16,"modules_to_save":null,"target_modules":["q_proj","v_proj"]}"#).is_ok());
    }

    #[test]
    fn names() {
        let p = Path::new("x");
        assert_eq!(
            parse_name(
                p,
                "base_model.model.model.layers.12.mlp.down_proj.lora_B.weight"
            )
            .unwrap(),
            (12, LoraModule::Down, 1)
        );
        for (bad, needle) in [
            (
                "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
                "DoRA",
            ),
            ("base_model.model.lm_head.lora_A.weight", "lm_head"),
            (
                "base_model.model.model.embed_tokens.lora_embedding_A",
                "embeddings",
            ),
            (
                "base_model.model.model.layers.0.mlp.q_proj.lora_A.weight",
                "target module",
            ),
            (
                "base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias",
                "bias",
            ),
            (
                "base_model.model.model.layers.x.mlp.up_proj.lora_A.weight",
                "layer",
            ),
        ] {
            let e = parse_name(p, bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
