//! LoRA adapters as models of the server: listed with their parent, picked by `model`, mixed with
//! the base in one continuous batch (each request gets the text it gets alone), loaded and
//! unloaded while requests run, reported in `/metrics` as vLLM does.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use common::*;
use llama31_engine::EngineConfig;
use serde_json::{json, Value};

fn golden(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../goldens/lora")).join(rel)
}

fn engine(slots: usize) -> EngineConfig {
    EngineConfig {
        slots,
        ctx: 256,
        ..EngineConfig::default()
    }
}

/// The greedy tokens (as text pieces) of a completion of `prompt` by `model`.
fn complete(addr: SocketAddr, model: &str, prompt: &str, n: usize) -> Vec<String> {
    let r = post(
        addr,
        "/v1/completions",
        &json!({"model": model, "prompt": prompt, "max_tokens": n, "temperature": 0,
                "ignore_eos": true, "logprobs": 0}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["model"], model);
    let tokens: Vec<String> = v["choices"][0]["logprobs"]["tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(tokens.len(), n, "{v}");
    tokens
}

#[test]
fn adapters_are_models_and_mix_in_one_batch() {
    let addr = start_tiny_llama_lora(
        engine(4),
        &[
            ("r8", golden("peft-r8")),
            ("qv", golden("peft-qv-layer1.gguf")),
        ],
        None,
    );
    // Listed, with the base as parent.
    let models = get(addr, "/v1/models").json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tiny", "qv", "r8"]);
    assert_eq!(models["data"][2]["parent"], "tiny");
    assert!(models["data"][2]["root"]
        .as_str()
        .unwrap()
        .ends_with("peft-r8"));
    assert_eq!(get(addr, "/v1/models/qv").json()["parent"], "tiny");

    // Unknown model: 404 in OpenAI's shape.
    let r = post(
        addr,
        "/v1/completions",
        &json!({"model": "nope", "prompt": "x", "max_tokens": 1}),
    );
    assert_eq!(r.status, 404);
    let (msg, param, _) = r.error();
    assert!(msg.contains("nope"), "{msg}");
    assert_eq!(param, "model");
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    assert_eq!(get(addr, "/v1/models/nope").status, 404);

    // Alone, one after another.
    let cases = [
        ("tiny", "The capital of France is"),
        ("r8", "The capital of France is"),
        ("qv", "Once upon a time"),
        ("r8", "def fibonacci(n):"),
    ];
    let alone: Vec<Vec<String>> = cases
        .iter()
        .map(|(m, p)| complete(addr, m, p, 12))
        .collect();
    // The adapters change what the model says.
    assert_ne!(alone[0], alone[1], "peft-r8 left the greedy text unchanged");
    assert_ne!(alone[2], complete(addr, "tiny", cases[2].1, 12));
    // Together: all four in flight at once share steps.
    let together: Vec<Vec<String>> = std::thread::scope(|s| {
        let hs: Vec<_> = cases
            .iter()
            .map(|(m, p)| s.spawn(move || complete(addr, m, p, 12)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
    // The prefix cache never hands one adapter's keys and values to another: the same prompt
    // right after, on the base, is still the base's text.
    assert_eq!(complete(addr, "tiny", cases[0].1, 12), alone[0]);
    assert_eq!(complete(addr, "r8", cases[0].1, 12), alone[1]);
}

#[test]
fn load_and_unload_under_traffic() {
    let key = "k";
    let auth = [
        ("Authorization", "Bearer k"),
        ("Content-Type", "application/json"),
    ];
    let addr = start_tiny_llama_lora(engine(4), &[], Some(key));
    let call =
        |path: &str, body: &Value| request(addr, "POST", path, &auth, body.to_string().as_bytes());
    // Behind the API key.
    let r = post(
        addr,
        "/v1/load_lora_adapter",
        &json!({"lora_name": "r8", "lora_path": golden("peft-r8")}),
    );
    assert_eq!(r.status, 401);
    // Bad requests.
    let r = call(
        "/v1/load_lora_adapter",
        &json!({"lora_name": "x", "lora_path": "/nonexistent"}),
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().0.contains("/nonexistent"));
    let r = call(
        "/v1/load_lora_adapter",
        &json!({"lora_path": golden("peft-r8")}),
    );
    assert_eq!(r.status, 400);
    let r = call("/v1/unload_lora_adapter", &json!({"lora_name": "r8"}));
    assert_eq!(r.status, 404);

    let complete_auth = |model: &str, n: usize| {
        call(
            "/v1/completions",
            &json!({"model": model, "prompt": "Hello there", "max_tokens": n,
                    "temperature": 0, "ignore_eos": true}),
        )
    };
    std::thread::scope(|s| {
        // Base traffic throughout.
        let base: Vec<_> = (0..3)
            .map(|_| s.spawn(move || complete_auth("tiny", 40)))
            .collect();
        let r = call(
            "/v1/load_lora_adapter",
            &json!({"lora_name": "r8", "lora_path": golden("peft-r8")}),
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            "Success: LoRA adapter 'r8' added successfully."
        );
        let r = call(
            "/v1/load_lora_adapter",
            &json!({"lora_name": "r8", "lora_path": golden("peft-r8")}),
        );
        assert_eq!(r.status, 400, "a second load of one name");
        // Requests on the adapter, then an unload while they run.
        let on_adapter: Vec<_> = (0..3)
            .map(|_| s.spawn(move || complete_auth("r8", 120)))
            .collect();
        let mut seen_running = false;
        for _ in 0..200 {
            let m = metrics_auth(addr);
            if m.contains("running_lora_adapters=\"r8\"") {
                seen_running = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            seen_running,
            "vllm:lora_requests_info never listed r8 as running"
        );
        let r = call("/v1/unload_lora_adapter", &json!({"lora_name": "r8"}));
        assert_eq!(r.status, 200);
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            "Success: LoRA adapter 'r8' removed successfully."
        );
        // Every request admitted before the unload finished in full.
        for h in on_adapter.into_iter().chain(base) {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            assert!(
                v["usage"]["completion_tokens"].as_u64().unwrap() >= 40,
                "{v}"
            );
        }
    });
    // Gone now.
    assert_eq!(complete_auth("r8", 1).status, 404);
    assert!(metrics_auth(addr).contains("running_lora_adapters=\"\""));
    let models = request(addr, "GET", "/v1/models", &auth, b"").json();
    assert_eq!(models["data"].as_array().unwrap().len(), 1);
}

fn metrics_auth(addr: SocketAddr) -> String {
    String::from_utf8(
        request(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", "Bearer k")],
            b"",
        )
        .body,
    )
    .unwrap()
}
