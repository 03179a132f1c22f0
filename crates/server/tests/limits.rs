//! Authentication, the bounded queue, disconnects and the loading state, each on a server of its
//! own (SmolLM2-135M-Instruct on loopback).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{get, post, request};
use llama31_engine::EngineConfig;
use llama31_server::{AppState, ServerConfig};
use serde_json::json;

fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let text = String::from_utf8(get(addr, "/metrics").body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

#[test]
fn api_key_is_required_except_for_health() {
    let addr = common::start(
        ServerConfig {
            api_key: Some("s3cret-key".into()),
            ..ServerConfig::default()
        },
        EngineConfig {
            slots: 1,
            ctx: 256,
            max_queue: 4,
            step_tokens: 64,
        },
    );
    assert_eq!(get(addr, "/health").status, 200);
    let body = json!({"prompt": "Hi", "max_tokens": 1}).to_string();
    let r = request(addr, "POST", "/v1/completions", &[], body.as_bytes());
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    for bad in [
        "Bearer wrong",
        "Bearer s3cret-ke",
        "Bearer s3cret-key2",
        "s3cret-key",
        "Basic s3cret-key",
    ] {
        let r = request(
            addr,
            "POST",
            "/v1/completions",
            &[("Authorization", bad)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 401, "{bad}");
    }
    assert_eq!(get(addr, "/v1/models").status, 401);
    let r = request(
        addr,
        "POST",
        "/v1/completions",
        &[("Authorization", "Bearer s3cret-key")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn loading_server_answers_503() {
    let state = AppState::new(ServerConfig::default());
    let addr = common::serve(state);
    let r = get(addr, "/health");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "loading");
    let r = post(
        addr,
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    r.error();
}

/// Starts a streaming completion that would run long and returns the socket after the first
/// token arrived.
fn start_stream(addr: std::net::SocketAddr, max_tokens: usize) -> TcpStream {
    let body = json!({"prompt": "Once upon a time", "max_tokens": max_tokens, "stream": true, "temperature": 0, "logit_bias": {"2": -100}}).to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"text\"") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    s
}

#[test]
fn queue_is_bounded_and_disconnects_free_the_slot() {
    let addr = common::start(
        ServerConfig::default(),
        EngineConfig {
            slots: 1,
            ctx: 512,
            max_queue: 1,
            step_tokens: 64,
        },
    );
    // A long stream holds the only slot; one request may wait; the next is refused with 503.
    let running = start_stream(addr, 400);
    let waiting = std::thread::spawn(move || {
        post(
            addr,
            "/v1/completions",
            &json!({"prompt": "Hello", "max_tokens": 3, "temperature": 0}),
        )
    });
    let t0 = Instant::now();
    while metric(addr, "llama31_queue_depth") < 1.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "request never queued"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = post(
        addr,
        "/v1/completions",
        &json!({"prompt": "Hello", "max_tokens": 3}),
    );
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["error"]["code"], "server_busy");
    // The client of the long stream goes away: its slot is freed at once and the waiting request
    // runs to completion.
    let cancelled = metric(addr, "llama31_cancelled_total");
    let t0 = Instant::now();
    drop(running);
    let done = waiting.join().unwrap();
    assert_eq!(done.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!(metric(addr, "llama31_cancelled_total"), cancelled + 1.0);

    // A non-streaming client that disconnects is cancelled too (during prefill or decode).
    let body =
        json!({"prompt": "Write a long essay.", "max_tokens": 400, "logit_bias": {"2": -100}})
            .to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let t0 = Instant::now();
    while metric(addr, "llama31_active_slots") < 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(s);
    let t0 = Instant::now();
    while metric(addr, "llama31_cancelled_total") < cancelled + 2.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "a disconnected non-streaming request kept its slot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(addr, "/health").status, 200);
}

/// Probes: `/live` answers while loading, `/ready` only once the model serves; a draining server
/// (shutdown began) is not ready and refuses new work with 503 in OpenAI's shape.
#[test]
fn probes_and_draining() {
    let state = AppState::new(ServerConfig::default());
    let addr = common::serve(std::sync::Arc::clone(&state));
    assert_eq!(get(addr, "/live").status, 200);
    let r = get(addr, "/ready");
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (503, json!("loading"))
    );
    state.start_draining();
    let r = get(addr, "/ready");
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (503, json!("draining"))
    );
    let r = post(
        addr,
        "/v1/completions",
        &json!({"prompt": "x", "max_tokens": 1}),
    );
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "server_draining");
    assert_eq!(r.header("retry-after"), Some("1"));
}
