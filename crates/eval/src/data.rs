//! Reading untrusted data files: size-limited reads (gzip included), JSON lines and CSV records
//! with the line each came from.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{EvalError, Result};

/// The largest data file (after decompression) the harness reads.
pub const MAX_DATA_BYTES: u64 = 512 << 20;

/// Reads a file (gunzipping it when its name ends in `.gz`) as UTF-8 text, refusing more than
/// [`MAX_DATA_BYTES`]. Invalid UTF-8 is reported with the line it is on.
pub fn read_text(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let gz = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".gz"));
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_DATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| EvalError::io(path, e))?;
    if bytes.len() as u64 > MAX_DATA_BYTES {
        return Err(EvalError::data(
            path,
            0,
            format!("larger than {} MiB", MAX_DATA_BYTES >> 20),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        EvalError::data(path, line, "not valid UTF-8")
    })
}

/// The JSON objects of a JSON-lines text with their 1-based line numbers; blank lines are
/// skipped, anything else that is not a JSON object is an error naming the line.
pub fn jsonl_objects(path: &Path, text: &str) -> Result<Vec<(usize, Map<String, Value>)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(trimmed)
            .map_err(|e| EvalError::data(path, line_no, format!("not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => out.push((line_no, map)),
            other => {
                return Err(EvalError::data(
                    path,
                    line_no,
                    format!("expected a JSON object, found {}", json_kind(&other)),
                ))
            }
        }
    }
    Ok(out)
}

/// A short name of a JSON value's type, for messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A required string field of a JSON-lines record.
pub fn str_field<'a>(
    path: &Path,
    line: usize,
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a str> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EvalError::data(
            path,
            line,
            format!("`{key}` must be a string, found {}", json_kind(other)),
        )),
        None => Err(EvalError::data(path, line, format!("missing `{key}`"))),
    }
}

/// One CSV record: its fields and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Parses RFC 4180 CSV (the layout pandas writes): comma-separated fields, double quotes around
/// fields that hold commas, quotes or line breaks, `""` for a quote inside them, `\n` or `\r\n`
/// between records. Blank lines are skipped. An unterminated quote or text after a closing
/// quote is an error naming the line.
pub fn parse_csv(path: &Path, text: &str) -> Result<Vec<CsvRecord>> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut in_quotes = false;
    let mut quoted_field = false;
    let mut after_quote = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    in_quotes = false;
                    after_quote = true;
                }
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted_field = false;
                after_quote = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if !(fields.is_empty() && field.is_empty() && !quoted_field) {
                    fields.push(std::mem::take(&mut field));
                    records.push(CsvRecord {
                        line: record_line,
                        fields: std::mem::take(&mut fields),
                    });
                }
                quoted_field = false;
                after_quote = false;
                line += 1;
                record_line = line;
            }
            '"' if field.is_empty() && !quoted_field => {
                in_quotes = true;
                quoted_field = true;
            }
            _ if after_quote => {
                return Err(EvalError::data(
                    path,
                    line,
                    format!("unexpected {c:?} after a closing quote"),
                ))
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(EvalError::data(
            path,
            record_line,
            "a quoted field is never closed",
        ));
    }
    if !(fields.is_empty() && field.is_empty() && !quoted_field) {
        fields.push(field);
        records.push(CsvRecord {
            line: record_line,
            fields,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.csv")
    }

    #[test]
    fn csv_quotes_commas_newlines_and_crlf() {
        let text = "a,\"b, c\",\"say \"\"hi\"\"\"\r\n\r\n\"two\nlines\",x,\n";
        let recs = parse_csv(p(), text).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].fields, ["a", "b, c", "say \"hi\""]);
        assert_eq!(recs[0].line, 1);
        assert_eq!(recs[1].fields, ["two\nlines", "x", ""]);
        assert_eq!(recs[1].line, 3);
    }

    #[test]
    fn csv_last_record_without_newline_and_empty_quoted() {
        let recs = parse_csv(p(), "q,\"\"").unwrap();
        assert_eq!(recs[0].fields, ["q", ""]);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let err = parse_csv(p(), "a,b\nc,\"open\nmore").unwrap_err();
        assert!(err.to_string().contains("t.csv:2:"), "{err}");
        let err = parse_csv(p(), "a,b\n\"x\"y,z\n").unwrap_err();
        assert!(err.to_string().contains("t.csv:2:"), "{err}");
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let err = jsonl_objects(Path::new("d.jsonl"), "{\"a\":1}\n\n[1]\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.jsonl:3: expected a JSON object, found an array"
        );
        let err = jsonl_objects(Path::new("d.jsonl"), "{\"a\":1}\n{oops\n").unwrap_err();
        assert!(
            err.to_string().starts_with("d.jsonl:2: not valid JSON"),
            "{err}"
        );
    }
}
