//! `llama31 serve` as a process: Kubernetes-style probes, gateway metrics, and a graceful drain on
//! SIGTERM (running requests finish, new connections are refused, exit status 0).

mod common;

use common::*;
use serde_json::Value;

#[test]
fn probes_metrics_and_drain_on_sigterm() {
    let model = fixture("tiny/hf-untied");
    let (mut child, addr) = spawn_serve(&[
        "--model",
        model.to_str().unwrap(),
        "--ctx",
        "512",
        "--alias",
        "tiny",
        "--drain-timeout",
        "60",
    ]);
    assert_eq!(http(&addr, "GET", "/live", "").0, 200);
    let (code, body) = http(&addr, "GET", "/ready", "");
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ready"}"#));
    let (_, metrics) = http(&addr, "GET", "/metrics", "");
    for name in [
        "vllm:num_requests_running 0",
        "vllm:num_requests_waiting 0",
        "vllm:kv_cache_usage_perc 0",
        "vllm:gpu_cache_usage_perc 0",
        "vllm:lora_requests_info{",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    // A long streamed completion, then SIGTERM while it runs.
    let stream_addr = addr.clone();
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished_w = std::sync::Arc::clone(&finished);
    let reader = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::net::TcpStream::connect(&stream_addr).unwrap();
        let body = r#"{"prompt": "Once upon a time", "max_tokens": 400, "temperature": 0, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}}"#;
        write!(
            s,
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut lines = BufReader::new(s).lines();
        let mut usage = Value::Null;
        let mut done = false;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                done = true;
                finished_w.store(true, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            let v: Value = serde_json::from_str(data).unwrap();
            if !v["usage"].is_null() {
                usage = v["usage"].clone();
            }
        }
        (usage, done)
    });
    // Wait until the request holds a slot and some cache.
    let t0 = std::time::Instant::now();
    loop {
        let (_, m) = http(&addr, "GET", "/metrics", "");
        let kv: f64 = m
            .lines()
            .find_map(|l| l.strip_prefix("vllm:kv_cache_usage_perc "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if m.contains("vllm:num_requests_running 1") && kv > 0.0 {
            assert!(kv <= 1.0, "{kv}");
            break;
        }
        assert!(t0.elapsed().as_secs() < 60, "the request never started");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(
        !finished.load(std::sync::atomic::Ordering::SeqCst),
        "the request ended before SIGTERM: nothing to drain"
    );
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (usage, done) = reader.join().unwrap();
    assert!(done, "the stream ended without [DONE]");
    assert_eq!(usage["completion_tokens"], 400, "{usage}");
    // The process exits by itself, with status 0, and refused new connections meanwhile.
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed().as_secs() < 60,
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    assert!(std::net::TcpStream::connect(&addr).is_err());
}
