//! `response_format` and forced tool calls as engine constraints (JSON-schema grammars).

use std::sync::Arc;

use serde_json::{json, Value};

use llama31_engine::{Constraint, ConstraintMatcher};
use llama31_grammar::{Grammar, GrammarOptions, Matcher, TokenIndex};

use crate::error::ApiError;
use crate::params::{get, type_name, Obj};

/// A JSON grammar over the model's vocabulary.
#[derive(Debug)]
pub struct JsonConstraint {
    grammar: Arc<Grammar>,
    index: Arc<TokenIndex>,
}

impl JsonConstraint {
    pub fn new(grammar: Grammar, index: Arc<TokenIndex>) -> Self {
        JsonConstraint {
            grammar: Arc::new(grammar),
            index,
        }
    }
}

struct JsonMatcher {
    matcher: Matcher,
    index: Arc<TokenIndex>,
}

impl Constraint for JsonConstraint {
    fn matcher(&self) -> Box<dyn ConstraintMatcher> {
        Box::new(JsonMatcher {
            matcher: Matcher::new(Arc::clone(&self.grammar)),
            index: Arc::clone(&self.index),
        })
    }
}

impl ConstraintMatcher for JsonMatcher {
    fn accepts(&self, bytes: &[u8]) -> bool {
        self.matcher.clone().accept_bytes(bytes)
    }
    fn accept(&mut self, bytes: &[u8]) -> bool {
        self.matcher.accept_bytes(bytes)
    }
    fn is_complete(&self) -> bool {
        self.matcher.is_complete()
    }
    fn can_continue(&self) -> bool {
        self.matcher.can_continue()
    }
    fn allowed(&self, allowed: &mut [bool]) {
        self.index.allowed(&self.matcher, allowed);
    }
}

/// The grammar `response_format` asks for (`None` for `text` or when absent).
pub fn response_format(o: &Obj) -> Result<Option<Grammar>, ApiError> {
    let rf = match get(o, "response_format") {
        None => return Ok(None),
        Some(Value::Object(rf)) => rf,
        Some(v) => {
            return Err(ApiError::field(
                "response_format",
                format!("'response_format' must be an object, got {}.", type_name(v)),
            ))
        }
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Grammar::any_json_object_with(options(1)))),
        Some("json_schema") => {
            let js = rf
                .get("json_schema")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    ApiError::field(
                        "response_format",
                        "'response_format.json_schema' must be an object with a 'schema'.",
                    )
                })?;
            let schema = js.get("schema").cloned().unwrap_or_else(|| json!({}));
            compile(&schema, "response_format", 1).map(Some)
        }
        other => Err(ApiError::field(
            "response_format",
            format!(
                "'response_format.type' must be 'text', 'json_object' or 'json_schema', got {}.",
                other.map_or("nothing".to_string(), |s| format!("{s:?}"))
            ),
        )),
    }
}

/// Grammar options allowing `max_whitespace` whitespace bytes in a row (small models otherwise
/// spend their token budget on newlines).
pub fn options(max_whitespace: u8) -> GrammarOptions {
    GrammarOptions {
        max_whitespace,
        ..GrammarOptions::default()
    }
}

/// Compiles a JSON schema; errors name `param`.
pub fn compile(schema: &Value, param: &str, max_whitespace: u8) -> Result<Grammar, ApiError> {
    Grammar::from_json_schema_with(schema, options(max_whitespace))
        .map_err(|e| ApiError::field(param, format!("Unsupported or invalid JSON schema: {e}")))
}
