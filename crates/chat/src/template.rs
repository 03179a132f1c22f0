//! Jinja chat templates (Hugging Face / GGUF `tokenizer.chat_template`) for models other than
//! Llama 3.1, rendered with minijinja configured like `transformers`, and sandboxed: fuel,
//! a recursion limit and an output cap turn hostile templates into typed errors.

use crate::error::{ChatError, Result};
use crate::pyjson::{dumps, DumpOptions};
use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error as JError, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const TEMPLATE_NAME: &str = "chat_template";
const RAISE_MARKER: &str = "raise_exception: ";

/// Resource limits of a template render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Instructions a render may execute (minijinja fuel).
    pub fuel: u64,
    /// Nesting depth of macro calls, includes and loops in recursion.
    pub recursion: usize,
    /// Maximum bytes of output.
    pub max_output: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        TemplateLimits {
            fuel: 5_000_000,
            recursion: 200,
            max_output: 8 << 20,
        }
    }
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    limits: TemplateLimits,
}

/// Python `json.dumps` as `transformers` registers it (`ensure_ascii=False`, `indent`,
/// `sort_keys`).
fn tojson_filter(value: &JValue, indent: Option<JValue>, kwargs: Kwargs) -> Result<JValue, JError> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<JValue>>("indent")?,
    };
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => Some(usize::try_from(v).map_err(|_| {
            JError::new(
                ErrorKind::InvalidOperation,
                "tojson: indent must be a small integer",
            )
        })?),
    };
    if indent.is_some_and(|i| i > 64) {
        return Err(JError::new(
            ErrorKind::InvalidOperation,
            "tojson: indent too large",
        ));
    }
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let _ = kwargs.get::<Option<JValue>>("separators")?;
    kwargs.assert_all_used()?;
    let json: Value = serde_json::to_value(value)
        .map_err(|e| JError::new(ErrorKind::BadSerialization, e.to_string()))?;
    let s = dumps(
        &json,
        DumpOptions {
            indent,
            sort_keys,
            ensure_ascii,
        },
    );
    Ok(JValue::from_safe_string(s))
}

fn raise_exception(msg: String) -> Result<JValue, JError> {
    Err(JError::new(
        ErrorKind::InvalidOperation,
        format!("{RAISE_MARKER}{msg}"),
    ))
}

fn strftime_now(fmt: String) -> Result<String, JError> {
    use std::fmt::Write as _;
    let mut s = String::new();
    write!(s, "{}", chrono::Local::now().format(&fmt)).map_err(|_| {
        JError::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: invalid format {fmt:?}"),
        )
    })?;
    Ok(s)
}

/// A writer that refuses to grow past a limit.
struct CappedWriter {
    buf: Vec<u8>,
    limit: usize,
    overflow: Arc<AtomicBool>,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.overflow.store(true, Ordering::Relaxed);
            return Err(io::Error::other("template output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn map_error(e: &JError, limits: &TemplateLimits, overflow: bool) -> ChatError {
    if overflow {
        return ChatError::TemplateOutputTooLarge {
            limit: limits.max_output,
        };
    }
    // Look through the chain (errors from macros and includes are wrapped).
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(je) = err.downcast_ref::<JError>() {
            match je.kind() {
                ErrorKind::OutOfFuel => return ChatError::TemplateOutOfFuel,
                ErrorKind::SyntaxError => return ChatError::TemplateSyntax(je.to_string()),
                _ => {}
            }
            if let Some(detail) = je.detail() {
                if let Some(msg) = detail.strip_prefix(RAISE_MARKER) {
                    return ChatError::TemplateException(msg.to_string());
                }
                if detail.contains("recursion limit exceeded") {
                    return ChatError::TemplateRecursion;
                }
                if detail.contains("repeated string is too large") {
                    return ChatError::TemplateOutputTooLarge {
                        limit: limits.max_output,
                    };
                }
            }
        }
        cur = err.source();
    }
    ChatError::TemplateRender(e.to_string())
}

impl ChatTemplate {
    /// Compiles a template with the default limits.
    pub fn new(source: &str) -> Result<ChatTemplate> {
        ChatTemplate::with_limits(source, TemplateLimits::default())
    }

    /// Compiles a template with the given limits.
    pub fn with_limits(source: &str, limits: TemplateLimits) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.recursion);
        env.add_filter("tojson", tojson_filter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| match map_error(&e, &limits, false) {
                ChatError::TemplateRender(m) => ChatError::TemplateSyntax(m),
                other => other,
            })?;
        Ok(ChatTemplate { env, limits })
    }

    /// The limits in force.
    pub fn limits(&self) -> TemplateLimits {
        self.limits
    }

    /// Renders the template like `transformers`' `apply_chat_template(tokenize=False)`:
    /// context `messages`, `tools` (none when absent), `add_generation_prompt`, `bos_token`,
    /// `eos_token`, plus `extra` keyword arguments (which may override the others).
    pub fn render(
        &self,
        messages: &Value,
        tools: Option<&Value>,
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
        extra: &Map<String, Value>,
    ) -> Result<String> {
        let mut ctx = Map::new();
        ctx.insert("messages".into(), messages.clone());
        ctx.insert("tools".into(), tools.cloned().unwrap_or(Value::Null));
        ctx.insert("documents".into(), Value::Null);
        ctx.insert(
            "add_generation_prompt".into(),
            Value::Bool(add_generation_prompt),
        );
        ctx.insert("bos_token".into(), Value::String(bos_token.into()));
        ctx.insert("eos_token".into(), Value::String(eos_token.into()));
        for (k, v) in extra {
            ctx.insert(k.clone(), v.clone());
        }
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatError::TemplateRender(e.to_string()))?;
        let overflow = Arc::new(AtomicBool::new(false));
        let mut w = CappedWriter {
            buf: Vec::new(),
            limit: self.limits.max_output,
            overflow: overflow.clone(),
        };
        let result = tmpl
            .render_captured_to(JValue::from_serialize(&ctx), &mut w)
            .map(|_| ());
        if let Err(e) = result {
            let err = map_error(&e, &self.limits, overflow.load(Ordering::Relaxed));
            tracing::debug!(error = %err, "chat template render failed");
            return Err(err);
        }
        String::from_utf8(w.buf).map_err(|e| ChatError::TemplateRender(e.to_string()))
    }

    /// Renders typed messages (converted to the OpenAI form).
    pub fn render_messages(
        &self,
        messages: &[crate::messages::Message],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String> {
        let json = Value::Array(messages.iter().map(|m| m.to_openai_json()).collect());
        self.render(
            &json,
            None,
            add_generation_prompt,
            bos_token,
            eos_token,
            &Map::new(),
        )
    }
}
