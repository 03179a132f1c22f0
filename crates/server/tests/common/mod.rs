//! A real server on loopback (SmolLM2-135M-Instruct) and a minimal blocking HTTP/1.1 client, so
//! tests see exactly the bytes a client gets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use llama31_chat::{ChatFormatter, ChatTemplate};
use llama31_engine::{default_stop_tokens, Engine, EngineConfig};
use llama31_model::{LoadOptions, Model};
use llama31_server::{app, AppState, Backend, ServerConfig};
use llama31_tokenizer::Tokenizer;
use serde_json::Value;

pub fn cache_dir() -> PathBuf {
    std::env::var_os("LLAMA31_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/llama31"))
}

pub fn smollm2_path() -> PathBuf {
    let p = cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "{} missing: run scripts/fetch-fixtures.sh",
        p.display()
    );
    p
}

/// Starts a server on 127.0.0.1:0 in a background runtime; returns its address.
pub fn start(config: ServerConfig, engine: EngineConfig) -> SocketAddr {
    let path = smollm2_path();
    let tok = Arc::new(Tokenizer::from_gguf_file(&path).unwrap());
    let gguf = llama31_formats::GgufFile::open(&path).unwrap();
    let template = gguf
        .opt_str("tokenizer.chat_template")
        .unwrap()
        .map(|t| ChatTemplate::new(t).unwrap());
    let formatter = ChatFormatter::for_tokenizer(&tok, template);
    let model = Model::load(
        &path,
        LoadOptions {
            max_seq_len: Some(engine.ctx),
            progress: None,
            weights: llama31_model::WeightMode::Dequantized,
            ..Default::default()
        },
    )
    .unwrap();
    let stop = default_stop_tokens(&tok, &model.config().eos_token_ids);
    let vocab = model.config().vocab_size;
    let engine = Engine::start(Arc::new(model), Arc::clone(&tok), engine).unwrap();
    let state = AppState::new(config);
    state.set_backend(Backend::new(engine, tok, formatter, stop, vocab));
    serve(state)
}

/// Starts a server for the tiny random Llama 3.1 (HF directory, 128,256-token vocabulary, Meta's
/// dialog format) made by `scripts/setup-python.sh --tiny`.
pub fn start_tiny_llama(engine: EngineConfig) -> SocketAddr {
    let dir = cache_dir().join("tiny/hf-untied");
    assert!(
        dir.exists(),
        "{} missing: run scripts/setup-python.sh --tiny",
        dir.display()
    );
    let tok = Arc::new(Tokenizer::from_hf_json_file(&dir.join("tokenizer.json")).unwrap());
    let formatter = ChatFormatter::for_tokenizer(&tok, None);
    assert!(matches!(formatter, Some(ChatFormatter::Llama3)));
    let model = Model::load(
        &dir,
        LoadOptions {
            max_seq_len: Some(engine.ctx),
            progress: None,
            ..Default::default()
        },
    )
    .unwrap();
    let stop = default_stop_tokens(&tok, &model.config().eos_token_ids);
    let vocab = model.config().vocab_size;
    let engine = Engine::start(Arc::new(model), Arc::clone(&tok), engine).unwrap();
    let state = AppState::new(ServerConfig::default());
    state.set_backend(Backend::new(engine, tok, formatter, stop, vocab));
    serve(state)
}

/// The tiny random Llama 3.1 with LoRA adapters served as models (`(name, path)`, loaded the way
/// `llama31 serve --lora NAME=PATH` loads them) and able to load more; `api_key` guards every
/// route but `/health`.
pub fn start_tiny_llama_lora(
    engine: EngineConfig,
    adapters: &[(&str, PathBuf)],
    api_key: Option<&str>,
) -> SocketAddr {
    use llama31_engine::Adapter;
    use llama31_model::{LoraAdapter, LoraSet};
    use llama31_server::lora::{LoraLoader, Served};
    let dir = cache_dir().join("tiny/hf-untied");
    assert!(
        dir.exists(),
        "{} missing: run scripts/setup-python.sh --tiny",
        dir.display()
    );
    let tok = Arc::new(Tokenizer::from_hf_json_file(&dir.join("tokenizer.json")).unwrap());
    let formatter = ChatFormatter::for_tokenizer(&tok, None);
    let model = Arc::new(
        Model::load(
            &dir,
            LoadOptions {
                max_seq_len: Some(engine.ctx),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let stop = default_stop_tokens(&tok, &model.config().eos_token_ids);
    let vocab = model.config().vocab_size;
    let m = Arc::clone(&model);
    let loader: LoraLoader = Arc::new(move |name: &str, path: &std::path::Path| {
        let a = LoraAdapter::load(path).map_err(|e| e.to_string())?;
        let set = LoraSet::new(&m, &[(&a, 1.0)]).map_err(|e| e.to_string())?;
        Ok(Adapter::new(name, Arc::new(set)))
    });
    let state = AppState::new(ServerConfig {
        model_id: "tiny".into(),
        api_key: api_key.map(str::to_string),
        ..ServerConfig::default()
    });
    for (name, path) in adapters {
        let adapter = loader(name, path).unwrap();
        let served = Served {
            adapter,
            path: path.display().to_string(),
            created: 0,
        };
        state.adapters.insert(name, served, 16).unwrap();
    }
    let engine = Engine::start(model, Arc::clone(&tok), engine).unwrap();
    state.set_backend(Backend::new(engine, tok, formatter, stop, vocab).with_lora_loader(loader));
    serve(state)
}

/// Serves `state` (with or without a backend) in a background thread.
pub fn serve(state: Arc<AppState>) -> SocketAddr {
    spawn_server(move |listener| async move {
        axum::serve(listener, app(state)).await.unwrap();
    })
}

/// Serves `state` with the accept loop of `llama31 serve` (header-read and write timeouts) in a
/// background thread.
pub fn serve_with(
    state: Arc<AppState>,
    options: llama31_server::serve::ServeOptions,
) -> SocketAddr {
    spawn_server(move |listener| async move {
        llama31_server::serve::serve(listener, app(state), options, std::future::pending()).await;
    })
}

/// Binds a loopback port and runs `run(listener)` on a runtime of its own thread.
fn spawn_server<F, Fut>(run: F) -> SocketAddr
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            run(listener).await;
        });
    });
    rx.recv().unwrap()
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `data:` payloads of an SSE body (`[DONE]` included as a string).
    pub fn sse(&self) -> Vec<String> {
        let text = std::str::from_utf8(&self.body).expect("SSE body is UTF-8");
        text.split("\n\n")
            .filter_map(|ev| ev.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }

    /// An OpenAI-shaped error: returns (message, param, type).
    pub fn error(&self) -> (String, Value, String) {
        let v = self.json();
        let e = &v["error"];
        assert!(e.is_object(), "not an OpenAI error: {v}");
        assert!(e.get("code").is_some() && e.get("param").is_some(), "{v}");
        (
            e["message"].as_str().unwrap().to_string(),
            e["param"].clone(),
            e["type"].as_str().unwrap().to_string(),
        )
    }
}

pub fn raw_request(addr: SocketAddr, head_and_body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    s.write_all(head_and_body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    parse_response(&buf)
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw_request(addr, &bytes)
}

pub fn post(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

fn parse_response(buf: &[u8]) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of response head");
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        b = &b[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
    out
}

/// Concatenated `delta.content` of a chat stream, and the parsed chunks.
pub fn stream_text(resp: &Resp) -> (String, Vec<Value>) {
    let events = resp.sse();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("bad chunk {e}: {err}")))
        .collect();
    let mut text = String::new();
    for c in &chunks {
        if let Some(choices) = c["choices"].as_array() {
            for ch in choices {
                if let Some(t) = ch["delta"]["content"].as_str() {
                    text.push_str(t);
                }
                if let Some(t) = ch["text"].as_str() {
                    text.push_str(t);
                }
            }
        }
    }
    (text, chunks)
}
