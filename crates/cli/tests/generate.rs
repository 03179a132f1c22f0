//! `llama31 run`, `chat` and `info` with the real SmolLM2-135M-Instruct GGUF.

mod common;

use common::*;
use serde_json::Value;

fn smollm2() -> String {
    fixture("SmolLM2-135M-Instruct.Q4_1.gguf")
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn run_answers_the_capital_of_france() {
    let m = smollm2();
    let out = llama31_ok(
        &[
            "run",
            "--model",
            &m,
            "--prompt",
            "What is the capital of France?",
            "--temp",
            "0",
            "-n",
            "32",
            // The f32 path answers this one right; llama.cpp's Q4_1 arithmetic (our default,
            // see `greedy_tokens_equal_llama_cpp_q4_1_until_a_close_call`) does not.
            "--dequantize",
        ],
        b"",
    );
    assert!(out.contains("Paris"), "reply: {out}");
}

#[test]
fn chat_keeps_history_and_resets() {
    let m = smollm2();
    let input = b"What is the capital of France?\n/reset\nWhat is the capital of Germany?\n/exit\n";
    let out = llama31_ok(
        &[
            "chat",
            "--model",
            &m,
            "--temp",
            "0",
            "-n",
            "24",
            "--dequantize",
        ],
        input,
    );
    assert!(out.contains("Paris"), "first reply: {out}");
    assert!(out.contains("Berlin"), "second reply: {out}");
}

#[test]
fn chat_lists_its_commands_and_sends_unknown_ones_nowhere() {
    let m = smollm2();
    let out = llama31(
        &["chat", "--model", &m, "--temp", "0", "-n", "8"],
        b"/help\n/bogus\n/exit\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown command /bogus"), "{stderr}");
    assert_eq!(stderr.matches("commands: /reset").count(), 2, "{stderr}");
    // Nothing went to the model: no reply, no speed report.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("tok/s"), "{stderr}");
}

/// Ctrl-C at the prompt starts a new prompt line; a second one in a row quits (exit 130).
#[test]
fn ctrl_c_at_the_prompt_then_again_quits() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let m = smollm2();
    let mut child = Command::new(env!("CARGO_BIN_EXE_llama31"))
        .args(["chat", "--model", &m])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("llama31 starts");
    let _stdin = child.stdin.take();
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let wait_for = |what: &str, seen: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !seen.contains(what) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!("no {what:?} on stderr: {seen}"),
            }
        }
    };
    let interrupt = |pid: u32| {
        let ok = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -INT {pid}");
    };
    wait_for("> ", &mut seen);
    interrupt(child.id());
    wait_for("(Ctrl-C again quits)", &mut seen);
    assert!(
        child.try_wait().expect("wait").is_none(),
        "one Ctrl-C quit: {seen}"
    );
    interrupt(child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "a second Ctrl-C did not quit: {seen}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "{seen}");
}

/// Greedy ids of `llama31 run --temp 0 --json [weights]` for a golden case (chat format unless
/// `raw`); `weights` is `--quantized` or `--dequantize`.
fn greedy(case: &Value, weights: &str) -> (Vec<u64>, Value) {
    let m = smollm2();
    let name = case["name"].as_str().unwrap();
    let raw = name.starts_with("raw");
    let want = case["greedy_ids"].as_array().unwrap();
    let n = want.len().to_string();
    let mut args = vec![
        "run", "--model", &m, "--temp", "0", "-n", &n, "--json", weights,
    ];
    let prompt;
    let messages_file;
    if raw {
        prompt = case["prompt_text"].as_str().unwrap().to_string();
        args.extend(["--raw", "--prompt", &prompt]);
    } else {
        // Chat cases: the golden prompt ids must equal our rendering of the same messages
        // (the dialogs of scripts/goldens/llamacpp_goldens.py).
        let msgs = match name {
            "chat_capital_france" => {
                serde_json::json!([{"role": "user", "content": "What is the capital of France?"}])
            }
            "chat_system_haiku" => serde_json::json!([
                {"role": "system", "content": "You are a concise poet."},
                {"role": "user", "content": "Write a haiku about the sea."}
            ]),
            "chat_multi_turn" => serde_json::json!([
                {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello! How can I help you today?"},
                {"role": "user", "content": "List three primary colors."}
            ]),
            other => panic!("unknown chat case {other}"),
        };
        messages_file = temp_file(
            &format!("greedy-{name}.json"),
            &serde_json::to_vec(&msgs).unwrap(),
        );
        args.extend(["--messages", messages_file.to_str().unwrap()]);
    }
    let out = llama31_ok(&args, b"");
    let got: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(
        got["prompt_tokens"], case["prompt_ids"],
        "prompt ids of {name}"
    );
    let mut ids: Vec<u64> = got["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    // The goldens include the end token when generation stopped on one.
    if got["finish_reason"] == "stop" && ids.len() < want.len() {
        ids.push(want[ids.len()].as_u64().unwrap());
    }
    (ids, got)
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Compares our greedy tokens with the golden ones up to the first step whose reference top-2
/// margin is below `close_call` (there, rounding differences may legitimately pick the other
/// token); returns how many steps had to agree.
fn check_greedy(golden_file: &str, close_call: f64, weights: &str) -> usize {
    let cases = read_jsonl(&golden(golden_file));
    assert!(cases.len() >= 4);
    let mut compared = 0;
    for case in &cases {
        let (ids, _) = greedy(case, weights);
        let want: Vec<u64> = numbers(&case["greedy_ids"])
            .iter()
            .map(|&x| x as u64)
            .collect();
        let must = numbers(&case["greedy_margins"])
            .iter()
            .position(|&m| m < close_call)
            .unwrap_or(want.len());
        let same = ids.iter().zip(&want).take_while(|(a, b)| a == b).count();
        assert!(
            same >= must,
            "{golden_file} {}: only {same} greedy tokens agree, {must} expected\n got {ids:?}\nwant {want:?}",
            case["name"]
        );
        compared += must;
    }
    compared
}

/// Greedy decoding against llama.cpp on the same Q4_1 file, both multiplying the Q4_1 blocks
/// with 8-bit activations (our default). llama.cpp keeps its KV cache in F16 and sums in another
/// order, so the paths must agree up to the first step where llama.cpp's top-2 margin is below
/// 0.5 (the exact-arithmetic check is `greedy_tokens_equal_llama_cpp_f32`).
#[test]
fn greedy_tokens_equal_llama_cpp_q4_1_until_a_close_call() {
    let compared = check_greedy("generation/smollm2_greedy.jsonl", 0.5, "--quantized");
    assert!(
        compared >= 5,
        "too few decisive steps compared ({compared})"
    );
}

/// The same with the weights dequantized to f32 (no activation quantization): further from
/// llama.cpp's Q4_1 arithmetic, still equal up to its first close call.
#[test]
fn greedy_dequantized_equal_llama_cpp_q4_1_until_a_close_call() {
    let compared = check_greedy("generation/smollm2_greedy.jsonl", 0.5, "--dequantize");
    assert!(
        compared >= 5,
        "too few decisive steps compared ({compared})"
    );
}

/// Greedy decoding equals llama.cpp's on the same weights dequantized to F32 (F32 KV cache), where
/// both sides compute in f32: every step whose top-2 margin exceeds rounding noise must agree.
#[test]
fn greedy_tokens_equal_llama_cpp_f32() {
    let compared = check_greedy("generation/smollm2_f32_greedy.jsonl", 1e-2, "--dequantize");
    assert!(
        compared >= 100,
        "too few decisive steps compared ({compared})"
    );
}

#[test]
fn info_describes_the_model() {
    let out = llama31_ok(&["info", "--model", &smollm2()], b"");
    for needle in [
        "GGUF",
        "layers 30",
        "Q4_1",
        "Jinja template",
        "general.architecture: llama",
    ] {
        assert!(out.contains(needle), "info lacks {needle:?}:\n{out}");
    }
}

#[test]
fn a_prompt_longer_than_the_context_is_an_error_with_counts() {
    let m = smollm2();
    let long = "word ".repeat(200);
    let err = llama31_err(
        &[
            "run", "--model", &m, "--prompt", &long, "--raw", "--ctx", "64", "-n", "8",
        ],
        b"",
    );
    assert!(err.contains("64"), "{err}");
}

#[test]
fn a_tokenizer_is_not_a_model() {
    let err = llama31_err(
        &[
            "run",
            "--model",
            fixture("tokenizer.model").to_str().unwrap(),
            "--prompt",
            "hi",
        ],
        b"",
    );
    assert!(err.contains("not a model"), "{err}");
}

#[test]
fn bench_reports_prefill_and_decode_speed() {
    let gguf = fixture("tiny/llama31-tiny-bf16.gguf");
    let out = llama31_ok(
        &[
            "bench",
            "--model",
            gguf.to_str().unwrap(),
            "-p",
            "16",
            "-n",
            "4",
            "-r",
            "1",
            "--json",
        ],
        b"",
    );
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(last["pp"].as_f64().unwrap() > 0.0, "{out}");
    assert!(last["tg"].as_f64().unwrap() > 0.0, "{out}");
    let err = llama31_err(
        &["bench", "--model", gguf.to_str().unwrap(), "-r", "0"],
        b"",
    );
    assert!(err.contains("--reps"), "{err}");
}

/// A context past the model's trained length is refused at once (it used to build a RoPE table
/// and a KV cache for 200 million positions); the default context is cut to the model's.
#[test]
fn ctx_past_the_trained_length_is_refused() {
    let m = fixture("tiny/hf-untied");
    let m = m.to_str().unwrap();
    let start = std::time::Instant::now();
    let e = llama31_err(
        &[
            "run",
            "--model",
            m,
            "--prompt",
            "hi",
            "--raw",
            "--ctx",
            "200000000",
            "-n",
            "1",
        ],
        b"",
    );
    assert!(e.contains("200000000") && e.contains("131072"), "{e}");
    assert!(start.elapsed().as_secs() < 30);
    let e = llama31_err(
        &[
            "perplexity",
            "--model",
            m,
            "--file",
            golden("forward/text_short.txt").to_str().unwrap(),
            "--ctx",
            "131073",
        ],
        b"",
    );
    assert!(e.contains("131073"), "{e}");
}

/// `run --lookup-ngram`: the same tokens as without, fewer forward passes when the reply copies
/// its prompt.
#[test]
fn prompt_lookup_changes_passes_not_tokens() {
    let m = fixture("SmolLM2-135M-Instruct.Q4_1.gguf");
    let prompt = "Copy this Python code exactly, with no comment:\n\ndef fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n";
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "run",
            "--model",
            m.to_str().unwrap(),
            "--prompt",
            prompt,
            "--temp",
            "0",
            "-n",
            "48",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = llama31_ok(&args, b"");
        serde_json::from_str(out.trim().lines().last().unwrap()).unwrap()
    };
    let plain = run(&[]);
    let spec = run(&["--lookup-ngram", "3", "--draft-max", "6"]);
    assert_eq!(plain["tokens"], spec["tokens"]);
    assert!(plain["speculation"].is_null());
    let accepted = spec["speculation"]["accepted"].as_u64().unwrap();
    let passes = spec["speculation"]["passes"].as_u64().unwrap();
    assert!(accepted > 5, "{spec}");
    assert!(passes + accepted <= 48, "{spec}");
}

/// `run --draft-model`: SmolLM2 F32 drafted by its own Q4_1 file gives the same tokens as without
/// (greedy, and sampling with a seed), in fewer forward passes; a draft model of another vocabulary
/// is refused.
#[test]
fn a_draft_model_changes_passes_not_tokens() {
    let target = fixture("SmolLM2-135M-Instruct.F32.gguf");
    let draft = fixture("SmolLM2-135M-Instruct.Q4_1.gguf");
    let prompt = "Write a Python function that returns the n-th Fibonacci number.";
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "run",
            "--model",
            target.to_str().unwrap(),
            "--prompt",
            prompt,
            "-n",
            "40",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = llama31_ok(&args, b"");
        serde_json::from_str(out.trim().lines().last().unwrap()).unwrap()
    };
    let with_draft = ["--draft-model", draft.to_str().unwrap(), "--draft-max", "6"];
    for sampling in [&["--temp", "0"][..], &["--temp", "0.8", "--seed", "7"][..]] {
        let plain = run(sampling);
        let spec = run(&[sampling, &with_draft[..]].concat());
        assert_eq!(plain["tokens"], spec["tokens"], "{sampling:?}");
        assert!(plain["speculation"].is_null());
        let accepted = spec["speculation"]["accepted"].as_u64().unwrap();
        let passes = spec["speculation"]["passes"].as_u64().unwrap();
        if sampling[1] == "0" {
            assert!(accepted > 10, "{spec}");
            assert!(passes + accepted <= 40, "{spec}");
        }
    }
    let err = llama31_err(
        &[
            "run",
            "--model",
            target.to_str().unwrap(),
            "--prompt",
            "hi",
            "--draft-model",
            fixture("tiny/llama31-tiny-bf16.gguf").to_str().unwrap(),
        ],
        b"",
    );
    assert!(err.contains("another vocabulary"), "{err}");
}

/// `bench --draft-model`: speculative against plain greedy decoding on the same prompt, with the
/// acceptance; the tiny model drafted by the same weights from another file takes its guesses.
#[test]
fn bench_reports_speculative_acceptance_and_speed() {
    let out = llama31_ok(
        &[
            "bench",
            "--model",
            fixture("tiny/llama31-tiny-bf16.gguf").to_str().unwrap(),
            "-p",
            "8",
            "-n",
            "24",
            "-r",
            "1",
            "--draft-model",
            fixture("tiny/hf-untied").to_str().unwrap(),
            "--json",
        ],
        b"",
    );
    assert!(out.contains("speculative tg24:"), "{out}");
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let spec = &last["speculative"];
    assert!(spec["tg"].as_f64().unwrap() > 0.0, "{out}");
    assert!(spec["tg_plain"].as_f64().unwrap() > 0.0, "{out}");
    assert!(spec["acceptance"].as_f64().unwrap() > 0.5, "{out}");
    assert!(spec["passes"].as_u64().unwrap() < 24, "{out}");
}
