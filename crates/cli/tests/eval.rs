//! `llama31 eval`: JSON reports (model hash, settings, version), the results cache that resumes
//! a run, prompt dumps, `--completions`, and errors on bad data files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, llama31};
use serde_json::Value;

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llama31-cli-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The SHA-256 of a file by coreutils' `sha256sum` (independent of our hashing).
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn run_json(args: &[&str]) -> (Value, String) {
    let out = llama31(args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "llama31 {args:?} failed: {stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

#[test]
fn mmlu_report_dump_and_resume() {
    let dir = tmp("mmlu");
    let model = fixture(MODEL);
    let data = fixture("mmlu.jsonl");
    let out = dir.join("report.json");
    let dump = dir.join("prompts.jsonl");
    let args = [
        "eval",
        "mmlu",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--subjects",
        "anatomy",
        "--limit",
        "4",
        "--json",
        "--out",
        out.to_str().unwrap(),
        "--dump-prompts",
        dump.to_str().unwrap(),
    ];
    let (report, stderr) = run_json(&args);
    assert_eq!(report["task"], "mmlu");
    assert_eq!(report["llama31_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["model"]["sha256"], sha256sum(&model));
    assert_eq!(report["data"]["test"]["sha256"], sha256sum(&data));
    assert_eq!(report["settings"]["shots"], 0);
    assert_eq!(report["settings"]["letters"][1]["text"], " B");
    assert_eq!(report["results"]["total"], 4);
    assert_eq!(report["results"]["subjects"][0]["subject"], "anatomy");
    let correct = report["results"]["correct"].as_u64().unwrap();
    assert_eq!(
        report["results"]["micro_accuracy"].as_f64().unwrap(),
        correct as f64 / 4.0
    );
    assert!(report["timing"]["questions_per_s"].as_f64().unwrap() > 0.0);
    assert!(stderr.contains("scored 4 questions"), "{stderr}");
    // The written report is the printed one.
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written["results"], report["results"]);
    // One dumped line per question, with the prompt ids and the letter ids.
    let lines: Vec<Value> = std::fs::read_to_string(&dump)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let hits = lines.iter().filter(|l| l["pred"] == l["answer"]).count();
    assert_eq!(hits as u64, correct);
    for l in &lines {
        assert!(l["tokens"].as_array().unwrap().len() > 20);
        assert_eq!(l["letter_ids"].as_array().unwrap().len(), 4);
    }
    // Run again: everything comes from the cache next to the report.
    assert!(dir.join("report.json.cache.jsonl").exists());
    let (again, stderr) = run_json(&args);
    assert!(stderr.contains("scored 0 questions"), "{stderr}");
    assert_eq!(again["results"], report["results"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_data_files_are_reported_with_their_line() {
    let dir = tmp("bad");
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"question\": \"q\", \"choices\": [\"a\",\"b\",\"c\",\"d\"], \"answer\": 0, \"subject\": \"s\"}\n\
         {\"question\": \"q\", \"choices\": [\"a\",\"b\"], \"answer\": 0, \"subject\": \"s\"}\n",
    )
    .unwrap();
    let model = fixture(MODEL);
    let out = llama31(
        &[
            "eval",
            "mmlu",
            "--model",
            model.to_str().unwrap(),
            "--data",
            bad.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.jsonl:2: expected 4 choices, found 2"),
        "{stderr}"
    );
    let he = dir.join("he.jsonl");
    std::fs::write(&he, "{\"task_id\": \"x\"\n").unwrap();
    let out = llama31(
        &[
            "eval",
            "humaneval",
            "--data",
            he.to_str().unwrap(),
            "--completions",
            he.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("he.jsonl:1: not valid JSON"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn humaneval_scores_a_completions_file() {
    let dir = tmp("completions");
    let data = fixture("HumanEval.jsonl.gz");
    // Canonical solutions for the first three problems and a wrong one for the fourth.
    let text = gunzip(&data);
    let mut lines = String::new();
    for (i, line) in text.lines().take(4).enumerate() {
        let task: Value = serde_json::from_str(line).unwrap();
        let completion = if i < 3 {
            task["canonical_solution"].clone()
        } else {
            Value::from("    return None\n")
        };
        lines.push_str(
            &serde_json::json!({"task_id": task["task_id"], "completion": completion}).to_string(),
        );
        lines.push('\n');
    }
    let completions = dir.join("samples.jsonl");
    std::fs::write(&completions, lines).unwrap();
    let (report, stderr) = run_json(&[
        "eval",
        "humaneval",
        "--data",
        data.to_str().unwrap(),
        "--completions",
        completions.to_str().unwrap(),
        "--json",
    ]);
    assert!(stderr.contains("sandbox: network namespace"), "{stderr}");
    assert_eq!(report["results"]["problems"], 4);
    assert_eq!(report["results"]["samples_passed"], 3);
    assert_eq!(report["results"]["pass_at_k"]["pass@1"], 0.75);
    assert_eq!(report["results"]["samples"][3]["result"], "failed (exit 1)");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Decompresses with the system's `gzip`.
fn gunzip(path: &Path) -> String {
    let o = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn humaneval_and_math_generate_and_resume() {
    let dir = tmp("generate");
    let model = fixture(MODEL);
    let data = fixture("HumanEval.jsonl.gz");
    let out = dir.join("he.json");
    let args = [
        "eval",
        "humaneval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "2",
        "--max-tokens",
        "24",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    let (report, stderr) = run_json(&args);
    assert_eq!(
        report["settings"]["mode"], "chat",
        "SmolLM2-Instruct has a chat template"
    );
    assert_eq!(report["model"]["sha256"], sha256sum(&model));
    assert_eq!(report["results"]["problems"], 2);
    assert!(report["results"]["pass_at_k"]["pass@1"].is_number());
    assert!(stderr.contains("generated 2 samples"), "{stderr}");
    let (again, stderr) = run_json(&args);
    assert!(stderr.contains("generated 0 samples"), "{stderr}");
    assert_eq!(
        again["results"]["pass_at_k"],
        report["results"]["pass_at_k"]
    );

    let math = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../eval/tests/data/math.jsonl");
    let (report, _) = run_json(&[
        "eval",
        "math",
        "--model",
        model.to_str().unwrap(),
        "--data",
        math.to_str().unwrap(),
        "--limit",
        "2",
        "--max-tokens",
        "24",
        "--json",
    ]);
    assert_eq!(report["task"], "math");
    assert_eq!(report["results"]["total"], 2);
    assert_eq!(
        report["results"]["problems"][0]["reference"],
        "\\frac{3}{4}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
