//! Reading and checking the fields of a request body (a JSON object). Every wrong type or value is
//! a 400 naming the field; unknown fields are ignored (clients send `user`, `metadata`, …).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::ApiError;
use llama31_engine::SamplingParams;

pub type Obj = Map<String, Value>;

/// Parses a body into a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Obj, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            None,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    match value {
        Value::Object(o) => Ok(o),
        other => Err(ApiError::invalid(
            None,
            format!(
                "The request body must be a JSON object, not {}.",
                type_name(&other)
            ),
        )),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::field(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, but got {}.",
            type_name(got)
        ),
    )
}

/// A present, non-null field.
pub fn get<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

pub fn opt_bool(o: &Obj, key: &str) -> Result<Option<bool>, ApiError> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong(key, "a boolean", v)),
    }
}

pub fn opt_str<'a>(o: &'a Obj, key: &str) -> Result<Option<&'a str>, ApiError> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong(key, "a string", v)),
    }
}

/// A number within `[lo, hi]` (NaN cannot occur in JSON, but huge values can).
pub fn opt_f32(o: &Obj, key: &str, lo: f64, hi: f64) -> Result<Option<f32>, ApiError> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if !(f >= lo && f <= hi) {
                return Err(ApiError::field(
                    key,
                    format!("'{key}' must be between {lo} and {hi}, got {n}."),
                ));
            }
            Ok(Some(f as f32))
        }
        Some(v) => Err(wrong(key, "a number", v)),
    }
}

/// An integer within `[lo, hi]`.
pub fn opt_int(o: &Obj, key: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if i >= lo && i <= hi => Ok(Some(i)),
            _ => Err(ApiError::field(
                key,
                format!("'{key}' must be an integer between {lo} and {hi}, got {n}."),
            )),
        },
        Some(v) => Err(wrong(key, "an integer", v)),
    }
}

/// The fields shared by chat and text completions.
#[derive(Debug, Clone)]
pub struct Common {
    pub max_tokens: Option<usize>,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    /// llama.cpp's `ignore_eos`: generate `max_tokens` tokens whatever the model says (benchmarks).
    pub ignore_eos: bool,
}

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_n: usize,
    pub max_stop: usize,
    pub max_stop_len: usize,
    pub ctx: usize,
    pub vocab: usize,
}

pub fn common(o: &Obj, limits: &Limits, max_tokens_keys: &[&str]) -> Result<Common, ApiError> {
    let mut max_tokens = None;
    for key in max_tokens_keys {
        if let Some(v) = opt_int(o, key, i64::MIN, i64::MAX)? {
            if v < 1 {
                return Err(ApiError::field(
                    key,
                    format!("'{key}' must be at least 1, got {v}."),
                ));
            }
            if v as u64 > limits.ctx as u64 {
                return Err(ApiError::field(
                    key,
                    format!(
                        "'{key}' is {v}, more than the context of {} tokens.",
                        limits.ctx
                    ),
                )
                .with_code("context_length_exceeded"));
            }
            max_tokens = Some(v as usize);
        }
    }
    let temperature = opt_f32(o, "temperature", 0.0, 2.0)?.unwrap_or(1.0);
    let top_p = opt_f32(o, "top_p", 0.0, 1.0)?.unwrap_or(1.0);
    if top_p <= 0.0 {
        return Err(ApiError::field("top_p", "'top_p' must be greater than 0."));
    }
    let top_k = opt_int(o, "top_k", -1, i64::from(i32::MAX))?
        .unwrap_or(0)
        .max(0) as i32;
    let min_p = opt_f32(o, "min_p", 0.0, 1.0)?.unwrap_or(0.0);
    let repeat_penalty = opt_f32(o, "repeat_penalty", 0.01, 100.0)?.unwrap_or(1.0);
    let presence_penalty = opt_f32(o, "presence_penalty", -2.0, 2.0)?.unwrap_or(0.0);
    let frequency_penalty = opt_f32(o, "frequency_penalty", -2.0, 2.0)?.unwrap_or(0.0);
    let seed = match get(o, "seed") {
        None => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .or_else(|| n.as_i64().map(|i| i as u64))
                .ok_or_else(|| {
                    ApiError::field("seed", format!("'seed' must be an integer, got {n}."))
                })?,
        ),
        Some(v) => return Err(wrong("seed", "an integer", v)),
    };
    let logit_bias = logit_bias(o, limits.vocab)?;
    let stop = stop_strings(o, limits)?;
    let n = opt_int(o, "n", 1, limits.max_n as i64)
        .map_err(|_| {
            ApiError::field(
                "n",
                format!("'n' must be an integer between 1 and {}.", limits.max_n),
            )
        })?
        .unwrap_or(1) as usize;
    let stream = opt_bool(o, "stream")?.unwrap_or(false);
    let include_usage = match get(o, "stream_options") {
        None => false,
        Some(Value::Object(so)) => opt_bool(so, "include_usage")
            .map_err(|_| {
                ApiError::field(
                    "stream_options",
                    "'stream_options.include_usage' must be a boolean.",
                )
            })?
            .unwrap_or(false),
        Some(v) => return Err(wrong("stream_options", "an object", v)),
    };
    Ok(Common {
        max_tokens,
        sampling: SamplingParams {
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty,
            repeat_last_n: 64,
            presence_penalty,
            frequency_penalty,
            logit_bias,
            seed,
        },
        stop,
        n,
        stream,
        include_usage,
        ignore_eos: opt_bool(o, "ignore_eos")?.unwrap_or(false),
    })
}

fn logit_bias(o: &Obj, vocab: usize) -> Result<BTreeMap<u32, f32>, ApiError> {
    let mut out = BTreeMap::new();
    let map = match get(o, "logit_bias") {
        None => return Ok(out),
        Some(Value::Object(m)) => m,
        Some(v) => return Err(wrong("logit_bias", "an object", v)),
    };
    if map.len() > 1024 {
        return Err(ApiError::field(
            "logit_bias",
            "'logit_bias' has more than 1024 entries.",
        ));
    }
    for (k, v) in map {
        let id: u32 = k.parse().map_err(|_| {
            ApiError::field(
                "logit_bias",
                format!("'logit_bias' key {k:?} is not a token id."),
            )
        })?;
        if id as usize >= vocab {
            return Err(ApiError::field(
                "logit_bias",
                format!("'logit_bias' token id {id} is outside the vocabulary of {vocab} tokens."),
            ));
        }
        let b = match v {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            other => return Err(wrong("logit_bias", "numbers as values", other)),
        };
        if !(-100.0..=100.0).contains(&b) {
            return Err(ApiError::field(
                "logit_bias",
                format!("'logit_bias' values must be between -100 and 100, got {b} for {id}."),
            ));
        }
        out.insert(id, b as f32);
    }
    Ok(out)
}

fn stop_strings(o: &Obj, limits: &Limits) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = match get(o, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            if a.len() > limits.max_stop {
                return Err(ApiError::field(
                    "stop",
                    format!(
                        "'stop' has {} strings; at most {} are allowed.",
                        a.len(),
                        limits.max_stop
                    ),
                ));
            }
            a.iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(wrong("stop", "strings", other)),
                })
                .collect::<Result<_, _>>()?
        }
        Some(v) => return Err(wrong("stop", "a string or an array of strings", v)),
    };
    for s in &list {
        if s.is_empty() {
            return Err(ApiError::field("stop", "'stop' strings must not be empty."));
        }
        if s.len() > limits.max_stop_len {
            return Err(ApiError::field(
                "stop",
                format!(
                    "'stop' strings must be at most {} bytes.",
                    limits.max_stop_len
                ),
            ));
        }
    }
    Ok(list)
}
