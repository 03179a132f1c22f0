//! The memory plan on the command line: `--ctx auto` (the default of `run`, `chat` and `serve`),
//! a `--ctx` that does not fit refused before anything is allocated, `--kv-type`, `--mem-limit`,
//! and `info`'s plan — on the tiny Llama 3.1 GGUF (131,072-token trained context).

mod common;

use common::*;

fn tiny() -> String {
    fixture("tiny/llama31-tiny-bf16.gguf")
        .to_str()
        .unwrap()
        .to_string()
}

/// Runs `run --raw --prompt hi -n 1` with `extra` arguments; returns (success, stderr).
fn run_tiny(extra: &[&str]) -> (bool, String) {
    let m = tiny();
    let mut args = vec!["run", "--model", &m, "--raw", "--prompt", "hi", "-n", "1"];
    args.extend_from_slice(extra);
    let out = llama31(&args, b"");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The number after `prefix` in `text` (`"context: 1234 tokens"` → 1234).
fn number_after(text: &str, prefix: &str) -> usize {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {text}"));
    text[at + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {prefix:?} in {text}"))
}

/// With room for it, auto takes the whole trained context; under a limit, the longest context
/// that fits it — longer with a smaller KV type — and that context then runs.
#[test]
fn ctx_auto_takes_the_longest_context_that_fits() {
    let (ok, err) = run_tiny(&["--mem-limit", "4GiB"]);
    assert!(ok, "{err}");
    assert_eq!(number_after(&err, "context: "), 131072, "{err}");

    let (ok, f32_err) = run_tiny(&["--ctx", "auto", "--mem-limit", "100MiB"]);
    assert!(ok, "{f32_err}");
    let f32_ctx = number_after(&f32_err, "context: ");
    assert!(f32_ctx > 256 && f32_ctx < 131072, "{f32_err}");
    assert_eq!(
        f32_ctx,
        number_after(&f32_err, "longest context that fits: "),
        "{f32_err}"
    );
    let (ok, q8_err) = run_tiny(&["--mem-limit", "100MiB", "--kv-type", "q8_0"]);
    assert!(ok, "{q8_err}");
    let q8_ctx = number_after(&q8_err, "context: ");
    assert!(q8_ctx > f32_ctx, "q8_0 {q8_ctx} vs f32 {f32_ctx}");
    assert!(q8_err.contains("q8_0"), "{q8_err}");
}

/// A context that does not fit is refused with the numbers and the longest that would; that one
/// then runs. Past the trained context is refused whatever the memory.
#[test]
fn a_ctx_that_does_not_fit_is_refused_with_the_longest_that_would() {
    let (ok, err) = run_tiny(&["--ctx", "131072", "--mem-limit", "120MiB"]);
    assert!(!ok, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("not enough memory") && err.contains("the 0.12 GiB limit given"),
        "{err}"
    );
    assert!(err.contains("KV cache") && err.contains("weights"), "{err}");
    let longest = number_after(&err, "the longest context that fits is ");
    assert!(longest > 2 && longest < 131072, "{err}");
    let (ok, out) = run_tiny(&["--ctx", &longest.to_string(), "--mem-limit", "120MiB"]);
    assert!(ok, "{out}");
    let (ok, out) = run_tiny(&["--ctx", &(longest + 1).to_string(), "--mem-limit", "120MiB"]);
    assert!(!ok && out.contains("not enough memory"), "{out}");

    let (ok, err) = run_tiny(&["--ctx", "131073", "--mem-limit", "1TiB"]);
    assert!(
        !ok && err.contains("131073") && err.contains("131072"),
        "{err}"
    );
    let (ok, err) = run_tiny(&["--mem-limit", "lots"]);
    assert!(!ok && err.contains("lots"), "{err}");
}

/// `info` prints the plan: per KV type the bytes per token and the longest context that fits.
#[test]
fn info_prints_the_memory_plan() {
    let m = tiny();
    let out = llama31_ok(&["info", "--model", &m, "--mem-limit", "1GiB"], b"");
    assert!(out.contains("memory plan (1 sequence(s); budget: the 1.00 GiB limit given)"));
    // 2 layers × 32-wide keys and values: 512 bytes per token in f32, 256 in f16, 136 in q8_0.
    for (ty, per_token) in [
        ("f32 (selected)", "0.5 KiB"),
        ("f16", "0.2 KiB"),
        ("bf16", "0.2 KiB"),
        ("q8_0", "0.1 KiB"),
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("--kv-type {ty}:")))
            .unwrap_or_else(|| panic!("no {ty} line in {out}"));
        assert!(line.contains(per_token), "{line}");
        assert!(line.contains("longest that fits: 131072 tokens"), "{line}");
    }
    let out = llama31_ok(
        &[
            "info",
            "--model",
            &m,
            "--mem-limit",
            "100MiB",
            "--parallel",
            "8",
        ],
        b"",
    );
    let f32_line = out.lines().find(|l| l.contains("--kv-type f32")).unwrap();
    assert!(
        number_after(f32_line, "longest that fits: ") < 131072,
        "{out}"
    );
}

/// A child process killed when dropped (also when an assertion fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident bytes of process `pid`.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

/// `serve` with a q8_0 cache answers; `--kv-commit` makes the slots' caches resident at startup
/// (two slots × 65,536 positions × 2 layers × 2 × 34 bytes = 17 MiB more than without).
#[test]
fn serve_with_a_q8_0_cache_commits_it_at_startup() {
    if !std::path::Path::new("/proc/self/status").exists() {
        return;
    }
    let m = tiny();
    let mut rss = Vec::new();
    for commit in [false, true] {
        let mut args = vec![
            "--model",
            &m,
            "--parallel",
            "2",
            "--ctx",
            "65536",
            "--kv-type",
            "q8_0",
        ];
        if commit {
            args.push("--kv-commit");
        }
        let (child, addr) = spawn_serve(&args);
        let child = Killed(child);
        let (status, body) = http(
            &addr,
            "POST",
            "/v1/completions",
            r#"{"model":"llama31-tiny-bf16.gguf","prompt":"hello","max_tokens":2}"#,
        );
        assert_eq!(status, 200, "{body}");
        rss.push(rss_of(child.0.id()));
    }
    let kv = 2 * 65536 * 2 * 2 * 34;
    let grew = rss[1].saturating_sub(rss[0]);
    assert!(
        grew as f64 > 0.9 * kv as f64 && (grew as f64) < 1.5 * kv as f64 + 4e6,
        "RSS {rss:?}: committed {grew} bytes for a {kv}-byte cache"
    );
}
