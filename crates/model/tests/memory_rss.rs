//! The memory plan against the resident memory the process really uses (Linux `/proc/self/statm`):
//! the weights of SmolLM2-135M Q4_1 read into memory, then a KV cache of each type filled to its
//! last position. One test in its own process, so that no other test's allocations move the RSS.

mod common;

use llama31_model::{
    plan_for, Budget, FileLoading, KvType, LoadOptions, LogitsMode, Model, Workload,
};

const MIB: f64 = (1 << 20) as f64;

/// Resident bytes of this process.
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn planned_weights_and_kv_cache_match_measured_rss() {
    let Some(before) = rss() else {
        eprintln!("no /proc/self/statm: nothing to measure");
        return;
    };
    let path = common::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} missing: run scripts/fetch-fixtures.sh",
        path.display()
    );
    let source = llama31_formats::ModelSource::detect(&path).unwrap();
    let ctx = 1024;
    let work = Workload {
        sequences: 1,
        step_rows: 256,
        logit_rows: 1,
    };
    let model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(ctx),
            file_loading: FileLoading::Read,
            ..Default::default()
        },
    )
    .unwrap();
    let loaded = rss().unwrap() - before;
    let plan = plan_for(&source, true, KvType::F32, work, Budget::given(1 << 40)).unwrap();
    eprintln!(
        "weights: planned {:.1} MiB, RSS grew {:.1} MiB",
        plan.weights as f64 / MIB,
        loaded as f64 / MIB
    );
    // The file is read whole (its tokenizer metadata too, ~2 MiB) plus the norms as f32.
    let w = plan.weights as f64;
    assert!(
        (loaded as f64) > 0.97 * w && (loaded as f64) < 1.06 * w + 8.0 * MIB,
        "weights planned {w}, measured {loaded}"
    );

    let vocab = model.config().vocab_size as u32;
    let tokens: Vec<u32> = (0..ctx as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % vocab)
        .collect();
    // A warm-up step, so that the per-thread attention buffers and the step's activation buffers
    // (reused by every cache) are resident before measuring.
    {
        let mut c = model.new_cache(512).unwrap();
        model
            .forward(&tokens[..256], 0, &mut c, LogitsMode::Last)
            .unwrap();
        model
            .forward(&tokens[256..512], 256, &mut c, LogitsMode::Last)
            .unwrap();
    }
    let mut model = model;
    // Every cache is kept until the end: freed memory may be reused without being returned.
    let mut caches = Vec::new();
    for ty in KvType::ALL {
        model.set_kv_type(ty).unwrap();
        let plan = plan_for(&source, true, ty, work, Budget::given(1 << 40)).unwrap();
        let start = rss().unwrap();
        let mut cache = model.new_cache(ctx).unwrap();
        for (i, chunk) in tokens.chunks(256).enumerate() {
            model
                .forward(chunk, i * 256, &mut cache, LogitsMode::Last)
                .unwrap();
        }
        assert_eq!(cache.len(), ctx);
        let grew = rss().unwrap().saturating_sub(start) as f64;
        let kv = plan.kv_bytes(ctx) as f64;
        eprintln!(
            "{ty}: KV cache planned {:.2} MiB (of {:.2} MiB with buffers), RSS grew {:.2} MiB",
            kv / MIB,
            (kv + plan.scratch as f64) / MIB,
            grew / MIB
        );
        assert_eq!(cache.bytes() as f64, kv, "{ty}");
        // Every page of the cache is written; the step buffers were already resident.
        assert!(
            grew >= 0.99 * kv && grew <= kv + plan.scratch as f64,
            "{ty}: planned {kv}, grew {grew}"
        );
        caches.push(cache);
    }
}
