//! The pythonic tool-call list of Llama 3.2 (`[f(a=1), g(b="x")]`) and Python literals.
//!
//! A small recursive-descent parser for the subset of Python that `ast.literal_eval` accepts in
//! keyword arguments: strings (single, double, triple quotes, escapes, r-prefix, implicit
//! concatenation), ints, floats, True/False/None, lists, tuples, dicts, unary minus.

use serde_json::{Map, Number, Value};

/// Why a text is not a pythonic call list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyParseError(pub String);

const MAX_DEPTH: usize = 64;

/// One parsed call: the function name and its keyword arguments.
pub type PyCall = (String, Map<String, Value>);

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

type PResult<T> = Result<T, PyParseError>;

fn err<T>(msg: impl Into<String>) -> PResult<T> {
    Err(PyParseError(msg.into()))
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
                self.pos += 1;
            } else if c == '\\' && self.rest().starts_with("\\\n") {
                self.pos += 2;
            } else {
                break;
            }
        }
    }
    fn expect(&mut self, c: char) -> PResult<()> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            err(format!("expected {c:?} at byte {}", self.pos))
        }
    }
    fn ident(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let start = self.pos;
        let mut first = true;
        while let Some(c) = self.peek() {
            let ok = if first {
                c == '_' || c.is_alphabetic()
            } else {
                c == '_' || c.is_alphanumeric()
            };
            if !ok {
                break;
            }
            first = false;
            self.pos += c.len_utf8();
        }
        if self.pos == start {
            None
        } else {
            self.s.get(start..self.pos)
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err("nesting too deep");
        }
        Ok(())
    }

    /// A call `name(kw=value, ...)` with keyword arguments only.
    fn call(&mut self) -> PResult<(String, Map<String, Value>)> {
        let name = match self.ident() {
            Some(n) if !is_keyword(n) => n.to_string(),
            _ => return err(format!("expected a function name at byte {}", self.pos)),
        };
        let args = self.call_args()?;
        Ok((name, args))
    }

    /// `(kw=value, ...)`, keyword arguments only.
    fn call_args(&mut self) -> PResult<Map<String, Value>> {
        self.expect('(')?;
        let mut args = Map::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(')') {
                self.pos += 1;
                break;
            }
            let save = self.pos;
            let key = match self.ident() {
                Some(k) if !is_keyword(k) => k.to_string(),
                _ => return err(format!("expected a keyword argument at byte {save}")),
            };
            self.skip_ws();
            if self.peek() != Some('=') || self.rest().starts_with("==") {
                return err(format!("positional argument at byte {save}"));
            }
            self.pos += 1;
            let value = self.literal()?;
            if args.contains_key(&key) {
                return err(format!("keyword argument repeated: {key}"));
            }
            args.insert(key, value);
            self.skip_ws();
            match self.bump() {
                Some(',') => continue,
                Some(')') => break,
                _ => return err(format!("expected ',' or ')' at byte {}", self.pos)),
            }
        }
        Ok(args)
    }

    fn literal(&mut self) -> PResult<Value> {
        self.enter()?;
        let v = self.literal_inner();
        self.depth -= 1;
        v
    }

    fn literal_inner(&mut self) -> PResult<Value> {
        self.skip_ws();
        let c = match self.peek() {
            Some(c) => c,
            None => return err("unexpected end of input"),
        };
        match c {
            '"' | '\'' => self.strings(),
            '[' => {
                self.pos += 1;
                Ok(Value::Array(self.sequence(']')?))
            }
            '(' => {
                self.pos += 1;
                Ok(Value::Array(self.sequence(')')?))
            }
            '{' => {
                self.pos += 1;
                self.dict()
            }
            '-' | '+' => {
                self.pos += 1;
                let v = self.literal()?;
                match v {
                    Value::Number(n) if c == '+' => Ok(Value::Number(n)),
                    Value::Number(n) => negate(&n),
                    _ => err("unary sign on a non-number"),
                }
            }
            c if c.is_ascii_digit() || c == '.' => self.number(),
            _ => {
                let save = self.pos;
                match self.ident() {
                    Some("True") => Ok(Value::Bool(true)),
                    Some("False") => Ok(Value::Bool(false)),
                    Some("None") => Ok(Value::Null),
                    Some(p) if self.peek().is_some_and(|q| q == '"' || q == '\'') => {
                        if p.eq_ignore_ascii_case("r") || p.eq_ignore_ascii_case("u") {
                            self.pos = save;
                            self.strings()
                        } else {
                            err(format!("unsupported string prefix {p:?}"))
                        }
                    }
                    _ => err(format!("not a Python literal at byte {save}")),
                }
            }
        }
    }

    fn sequence(&mut self, close: char) -> PResult<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.literal()?);
            self.skip_ws();
            match self.bump() {
                Some(',') => continue,
                Some(c) if c == close => return Ok(items),
                _ => return err(format!("expected ',' or {close:?} at byte {}", self.pos)),
            }
        }
    }

    fn dict(&mut self) -> PResult<Value> {
        let mut map = Map::new();
        loop {
            self.skip_ws();
            if self.peek() == Some('}') {
                self.pos += 1;
                return Ok(Value::Object(map));
            }
            let key = match self.literal()? {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => if b { "true" } else { "false" }.to_string(),
                Value::Null => "null".to_string(),
                _ => return err("unhashable dict key"),
            };
            self.expect(':')?;
            let value = self.literal()?;
            map.insert(key, value);
            self.skip_ws();
            match self.bump() {
                Some(',') => continue,
                Some('}') => return Ok(Value::Object(map)),
                _ => return err(format!("expected ',' or '}}' at byte {}", self.pos)),
            }
        }
    }

    fn number(&mut self) -> PResult<Value> {
        let start = self.pos;
        let rest = self.rest();
        let lower = rest.get(..2).map(str::to_ascii_lowercase);
        let radix = match lower.as_deref() {
            Some("0x") => 16,
            Some("0o") => 8,
            Some("0b") => 2,
            _ => 10,
        };
        if radix != 10 {
            self.pos += 2;
            let digits_start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.pos += 1;
            }
            let digits: String = self.s[digits_start..self.pos]
                .chars()
                .filter(|c| *c != '_')
                .collect();
            return match i64::from_str_radix(&digits, radix) {
                Ok(v) => Ok(Value::Number(v.into())),
                Err(_) => err(format!("bad integer at byte {start}")),
            };
        }
        let mut is_float = false;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() || c == '_' {
                self.pos += 1;
            } else if c == '.' {
                is_float = true;
                self.pos += 1;
            } else if c == 'e' || c == 'E' {
                is_float = true;
                self.pos += 1;
                if matches!(self.peek(), Some('+') | Some('-')) {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
        let text: String = self.s[start..self.pos]
            .chars()
            .filter(|c| *c != '_')
            .collect();
        if self.peek().is_some_and(|c| c.is_alphanumeric()) {
            return err(format!("bad number at byte {start}"));
        }
        if is_float {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| PyParseError("bad float".into())),
                _ => err(format!("bad float at byte {start}")),
            }
        } else {
            if text.len() > 1 && text.starts_with('0') && text.chars().any(|c| c != '0') {
                return err("leading zeros in decimal integer");
            }
            if let Ok(v) = text.parse::<i64>() {
                Ok(Value::Number(v.into()))
            } else if let Ok(v) = text.parse::<u64>() {
                Ok(Value::Number(v.into()))
            } else {
                err(format!("integer out of range at byte {start}"))
            }
        }
    }

    /// One or more adjacent string literals (Python concatenates them).
    fn strings(&mut self) -> PResult<Value> {
        let mut out = String::new();
        let mut read_one = false;
        loop {
            self.skip_ws();
            let save = self.pos;
            let mut raw = false;
            if let Some(c) = self.peek() {
                if matches!(c, 'r' | 'R' | 'u' | 'U') {
                    let next = self.rest().chars().nth(1);
                    if next == Some('"') || next == Some('\'') {
                        raw = c == 'r' || c == 'R';
                        self.pos += 1;
                    }
                }
            }
            if matches!(self.peek(), Some('"') | Some('\'')) {
                self.one_string(raw, &mut out)?;
                read_one = true;
            } else {
                self.pos = save;
                if !read_one {
                    return err("expected a string");
                }
                return Ok(Value::String(out));
            }
        }
    }

    fn one_string(&mut self, raw: bool, out: &mut String) -> PResult<()> {
        let quote = match self.bump() {
            Some(q) => q,
            None => return err("expected a quote"),
        };
        let triple: String = std::iter::repeat_n(quote, 3).collect();
        let is_triple = self.rest().starts_with(&triple[..2]);
        if is_triple {
            self.pos += 2;
        }
        loop {
            let c = match self.bump() {
                Some(c) => c,
                None => return err("unterminated string"),
            };
            if c == quote {
                if !is_triple {
                    return Ok(());
                }
                if self.rest().starts_with(&triple[..2]) {
                    self.pos += 2;
                    return Ok(());
                }
                out.push(c);
                continue;
            }
            if c == '\n' && !is_triple {
                return err("newline in string");
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = match self.bump() {
                Some(e) => e,
                None => return err("unterminated string"),
            };
            if raw {
                out.push('\\');
                out.push(e);
                continue;
            }
            match e {
                '\n' => {}
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\u{b}'),
                'x' => out.push(self.hex_escape(2)?),
                'u' => out.push(self.hex_escape(4)?),
                'U' => out.push(self.hex_escape(8)?),
                '0'..='7' => {
                    let mut v = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match self.peek().and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                v = v * 8 + d;
                                self.pos += 1;
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn hex_escape(&mut self, n: usize) -> PResult<char> {
        let digits = match self.rest().get(..n) {
            Some(d) if d.chars().all(|c| c.is_ascii_hexdigit()) => d,
            _ => return err("truncated \\x/\\u escape"),
        };
        self.pos += n;
        let v = u32::from_str_radix(digits, 16).map_err(|e| PyParseError(e.to_string()))?;
        char::from_u32(v).ok_or_else(|| PyParseError(format!("invalid code point {v:#x}")))
    }
}

fn negate(n: &Number) -> PResult<Value> {
    if let Some(i) = n.as_i64() {
        return i
            .checked_neg()
            .map(|v| Value::Number(v.into()))
            .ok_or_else(|| PyParseError("integer out of range".into()));
    }
    if let Some(u) = n.as_u64() {
        if u == 1u64 << 63 {
            return Ok(Value::Number(i64::MIN.into()));
        }
        return err("integer out of range");
    }
    match n.as_f64().and_then(|f| Number::from_f64(-f)) {
        Some(m) => Ok(Value::Number(m)),
        None => err("bad float"),
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "True"
            | "False"
            | "None"
            | "and"
            | "or"
            | "not"
            | "in"
            | "is"
            | "if"
            | "else"
            | "for"
            | "lambda"
            | "def"
            | "class"
            | "return"
            | "import"
            | "from"
    )
}

/// Parses `[f(a=1), g(b="x")]` into `(name, arguments)` pairs, like Meta's
/// `parse_python_list_for_function_calls`. The list must be non-empty, every element a call of a
/// plain name with keyword arguments only, and every argument a Python literal.
pub fn parse_python_list(input: &str) -> Result<Vec<PyCall>, PyParseError> {
    // Python refuses indented first lines (IndentationError); blank lines are fine.
    let trimmed_start = input.trim_start_matches(['\n', '\r']);
    if trimmed_start.starts_with([' ', '\t']) {
        return err("unexpected indent");
    }
    let mut p = Parser {
        s: trimmed_start,
        pos: 0,
        depth: 0,
    };
    p.expect('[')?;
    let mut calls = Vec::new();
    loop {
        p.skip_ws();
        if p.peek() == Some(']') {
            p.pos += 1;
            break;
        }
        calls.push(p.call()?);
        p.skip_ws();
        match p.bump() {
            Some(',') => continue,
            Some(']') => break,
            _ => return err(format!("expected ',' or ']' at byte {}", p.pos)),
        }
    }
    p.skip_ws();
    if p.pos != p.s.len() {
        return err(format!("trailing text at byte {}", p.pos));
    }
    if calls.is_empty() {
        return err("empty list");
    }
    Ok(calls)
}

/// Meta's `is_valid_python_list`: a non-empty list of keyword-only calls of plain names.
pub fn is_valid_python_list(input: &str) -> bool {
    parse_python_list(input).is_ok()
}

/// Parses the keyword arguments of a call written `(kw=value, ...)` at the start of `input`;
/// returns them and the number of bytes read.
pub fn parse_call_args(input: &str) -> Result<(Map<String, Value>, usize), PyParseError> {
    let mut p = Parser {
        s: input,
        pos: 0,
        depth: 0,
    };
    let args = p.call_args()?;
    Ok((args, p.pos))
}

/// Meta's `format_value` of the `python_list` tool prompt format (no escaping, like Meta).
pub fn format_python_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{s}\""),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) => crate::pyjson::python_number(n),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(format_python_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}={}", format_python_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
