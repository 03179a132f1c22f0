//! Python `json.dumps` and `repr(float)` output, byte for byte.
//!
//! Meta's `ToolUtils` and the Hugging Face templates serialize with Python's `json` module, whose
//! separators, float formatting and escaping differ from `serde_json`'s.

use serde_json::Value;
use std::fmt::Write as _;

/// Options of Python's `json.dumps` that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpOptions {
    /// `indent=` (None: one line with `", "` / `": "` separators).
    pub indent: Option<usize>,
    /// `sort_keys=`.
    pub sort_keys: bool,
    /// `ensure_ascii=` (Python's default is true; Hugging Face's `tojson` uses false).
    pub ensure_ascii: bool,
}

impl DumpOptions {
    /// `json.dumps(x)` with Python's defaults.
    pub const PYTHON_DEFAULT: DumpOptions = DumpOptions {
        indent: None,
        sort_keys: false,
        ensure_ascii: true,
    };
    /// Hugging Face transformers' `tojson` filter (ensure_ascii=False).
    pub const HF: DumpOptions = DumpOptions {
        indent: None,
        sort_keys: false,
        ensure_ascii: false,
    };
}

/// `json.dumps(value, ...)` as Python writes it.
pub fn dumps(value: &Value, opts: DumpOptions) -> String {
    let mut out = String::new();
    write_value(&mut out, value, opts, 0);
    out
}

fn newline_indent(out: &mut String, opts: DumpOptions, depth: usize) {
    if let Some(n) = opts.indent {
        out.push('\n');
        for _ in 0..n.saturating_mul(depth) {
            out.push(' ');
        }
    }
}

fn write_value(out: &mut String, value: &Value, opts: DumpOptions, depth: usize) {
    let item_sep = if opts.indent.is_some() { "," } else { ", " };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&python_number(n)),
        Value::String(s) => write_string(out, s, opts.ensure_ascii),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline_indent(out, opts, depth + 1);
                write_value(out, item, opts, depth + 1);
            }
            newline_indent(out, opts, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if opts.sort_keys {
                entries.sort_by(|a, b| python_str_cmp(a.0, b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline_indent(out, opts, depth + 1);
                write_string(out, k, opts.ensure_ascii);
                out.push_str(": ");
                write_value(out, v, opts, depth + 1);
            }
            newline_indent(out, opts, depth);
            out.push('}');
        }
    }
}

/// Python compares strings by code point, which is the order of `char`s.
fn python_str_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.chars().cmp(b.chars())
}

/// Writes a JSON string literal the way Python's encoder does.
pub fn write_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        // A placeholder of a masked render (see `mask`) stays, as the JSON form of its text.
        if let Some(p) = crate::mask::json_placeholder(c, ensure_ascii) {
            out.push(p);
            continue;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as Python prints it (`repr` for floats).
pub fn python_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) => python_float_repr(f),
        None => n.to_string(),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents in [-4, 16).
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "1.5e-7", "-3e16".
    let sci = format!("{:e}", f);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_like_python() {
        assert_eq!(python_float_repr(2.25), "2.25");
        assert_eq!(python_float_repr(5.0), "5.0");
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(1.5e-7), "1.5e-07");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(0.00001), "1e-05");
        assert_eq!(python_float_repr(123456789012345.6), "123456789012345.6");
        assert_eq!(python_float_repr(-2.5), "-2.5");
    }

    #[test]
    fn dumps_like_python() {
        let v = json!({"b": [1, 2.0, "é\n"], "a": {}, "c": []});
        assert_eq!(
            dumps(&v, DumpOptions::PYTHON_DEFAULT),
            r#"{"b": [1, 2.0, "\u00e9\n"], "a": {}, "c": []}"#
        );
        let sorted = DumpOptions {
            indent: Some(2),
            sort_keys: true,
            ensure_ascii: false,
        };
        assert_eq!(
            dumps(&v, sorted),
            "{\n  \"a\": {},\n  \"b\": [\n    1,\n    2.0,\n    \"é\\n\"\n  ],\n  \"c\": []\n}"
        );
        assert_eq!(
            dumps(&json!("😀"), DumpOptions::PYTHON_DEFAULT),
            r#""\ud83d\ude00""#
        );
    }
}
