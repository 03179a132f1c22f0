//! `llama31 info`: what a model path holds — config, tensors, tokenizer, chat template, provenance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use llama31_model::{plan_for, FileLoading, KvType, LoadOptions, Model, Workload};

use crate::source::{self, Source, SourceExt, SourceKind};
use llama31_chat::ChatFormatter;

#[derive(Args)]
pub struct InfoArgs {
    /// A .gguf file, an HF or Meta model dir, or hf://ORG/NAME[:QUANT|/FILE] (`llama31 pull`).
    #[arg(long)]
    model: PathBuf,
    /// Plan memory for this many sequences at once (`serve --parallel`).
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    #[command(flatten)]
    weights: crate::load::WeightArgs,
}

fn human(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

fn files(source: &Source) -> Result<Vec<(PathBuf, u64)>> {
    let path = source.path();
    let mut out = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            // Followed: a hub cache's snapshot holds links to its blobs.
            let meta = std::fs::metadata(entry.path())?;
            if meta.is_file() {
                out.push((entry.path(), meta.len()));
            }
        }
        out.sort();
    } else {
        out.push((path.to_path_buf(), std::fs::metadata(path)?.len()));
    }
    Ok(out)
}

fn provenance(source: &Source) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let dir = source.path();
    match source.kind() {
        SourceKind::Gguf => {
            let gguf = llama31_formats::GgufFile::open(dir)?;
            out.push(("gguf.version".into(), gguf.version().to_string()));
            for (key, value) in gguf.metadata() {
                if key.starts_with("general.") {
                    let v = match value.as_str() {
                        Some(s) => s.to_string(),
                        None => value
                            .as_integer()
                            .map(|i| i.to_string())
                            .or_else(|| value.as_f64().map(|f| f.to_string()))
                            .unwrap_or_else(|| value.type_name()),
                    };
                    out.push((key.clone(), v));
                }
            }
        }
        SourceKind::HfDir => {
            if let Some(cfg) = read_json(&dir.join("config.json")) {
                for key in [
                    "_name_or_path",
                    "architectures",
                    "model_type",
                    "torch_dtype",
                    "transformers_version",
                ] {
                    if let Some(v) = cfg.get(key) {
                        out.push((key.into(), v.to_string()));
                    }
                }
            }
        }
        SourceKind::MetaDir => {
            if let Some(params) = read_json(&dir.join("params.json")) {
                out.push(("params.json".into(), params.to_string()));
            }
        }
        _ => {}
    }
    Ok(out)
}

/// The memory plan: per KV type, the cache per token, the total at the trained context and the
/// longest context that fits the budget.
fn print_plan(source: &Source, args: &InfoArgs, trained: usize) -> Result<()> {
    let work = Workload {
        sequences: args.parallel.max(1),
        step_rows: llama31_engine::PREFILL_CHUNK,
        logit_rows: args.parallel.max(1),
    };
    let budget = args.weights.budget();
    let keep = args.weights.keep_quantized();
    let base = plan_for(source, keep, KvType::F32, work, budget.clone())?;
    let mut lines = Vec::new();
    for ty in KvType::ALL {
        let Ok(plan) = base.with_kv_type(ty) else {
            lines.push(format!(
                "  --kv-type {ty}: not for this model's key/value width"
            ));
            continue;
        };
        if lines.is_empty() {
            println!(
                "memory plan ({} sequence(s); budget: {}):",
                work.sequences,
                budget.describe()
            );
            println!(
                "  weights {} ({}), buffers {}",
                human(plan.weights),
                if keep { "as stored" } else { "dequantized" },
                human(plan.scratch)
            );
        }
        let mark = if ty == args.weights.kv_type() {
            " (selected)"
        } else {
            ""
        };
        lines.push(format!(
            "  --kv-type {ty}{mark}: {:.1} KiB per token; {} at the trained {trained} tokens; \
             longest that fits: {}",
            plan.kv_per_token as f64 / 1024.0,
            human(plan.total(trained)),
            plan.largest_ctx()
                .map_or_else(|| "none".into(), |n| format!("{n} tokens")),
        ));
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn run(args: InfoArgs) -> Result<()> {
    let source = source::detect(&args.model)?;
    println!("path: {}", source.path().display());
    println!("format: {}", source.kind_name());
    println!("files:");
    for (p, len) in files(&source)? {
        println!("  {} ({})", p.display(), human(len));
    }

    let tokenizer = source.load_tokenizer()?;
    println!("tokenizer:");
    println!("  vocabulary: {} tokens", tokenizer.vocab_size());
    let named = |id: u32| match tokenizer.token_bytes(id) {
        Some(b) => format!("{id} {:?}", String::from_utf8_lossy(b)),
        None => id.to_string(),
    };
    match tokenizer.bos_id() {
        Some(id) => println!(
            "  begin-of-text: {} ({} to prompts)",
            named(id),
            if tokenizer.add_bos() {
                "added"
            } else {
                "not added"
            }
        ),
        None => println!("  begin-of-text: none"),
    }
    let eos: Vec<String> = tokenizer.eos_ids().iter().map(|&id| named(id)).collect();
    println!("  end-of-generation: {}", eos.join(", "));
    match source.chat_format(&tokenizer) {
        Ok(ChatFormatter::Llama3) => {
            println!("chat format: Llama 3 (native, as Meta's ChatFormat)")
        }
        Ok(ChatFormatter::Template(_)) => {
            let t = source.chat_template()?.unwrap_or_default();
            println!("chat format: Jinja template ({} bytes):", t.len());
            for line in t.lines() {
                println!("    {line}");
            }
        }
        Err(e) => println!("chat format: none ({})", crate::report::error_line(&e)),
    }

    if !source.is_tokenizer_only() {
        // Weights as stored and mapped: nothing is converted or read just to describe the model,
        // and nothing is printed between the lines of this report.
        let opts = LoadOptions {
            max_seq_len: Some(1),
            file_loading: FileLoading::Map,
            ..Default::default()
        };
        let model = Model::load_source(&source, opts)
            .with_context(|| format!("loading model {}", source.path().display()))?;
        let c = model.config();
        println!("config:");
        println!(
            "  dim {}, layers {}, heads {} (kv {}), head_dim {}, ffn {}, vocab {}",
            c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.vocab_size
        );
        println!(
            "  norm_eps {}, rope_theta {}, max_seq_len {}, tied embeddings {}",
            c.norm_eps, c.rope_theta, c.max_seq_len, c.tie_embeddings
        );
        match &c.rope_scaling {
            Some(s) => println!(
                "  rope scaling: llama3, factor {}, low_freq_factor {}, high_freq_factor {}, \
                 original_max_position_embeddings {}",
                s.factor, s.low_freq_factor, s.high_freq_factor, s.original_max_position_embeddings
            ),
            None => println!("  rope scaling: none"),
        }
        let mut by_type: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for t in model.tensor_summary() {
            let e = by_type.entry(t.dtype.as_str()).or_default();
            e.0 += 1;
            e.1 += t.bytes;
        }
        println!("tensors: {}", model.tensor_summary().len());
        for (dtype, (count, bytes)) in by_type {
            println!("  {dtype}: {count} tensors, {}", human(bytes as u64));
        }
        print_plan(&source, &args, c.max_seq_len)?;
    }
    let prov = provenance(&source)?;
    if !prov.is_empty() {
        println!("provenance:");
        for (k, v) in prov {
            println!("  {k}: {v}");
        }
    }
    Ok(())
}
