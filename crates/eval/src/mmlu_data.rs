//! MMLU questions from the original CSV release (`data/{test,dev,val}/{subject}_{split}.csv`, no
//! header: question, A, B, C, D, answer) or from JSON lines (`question`; `choices` or
//! `answer_a`…`answer_d`; `answer` or `correct_answer` as a letter or 0–3; `subject` or `topic`).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::data::{json_kind, jsonl_objects, parse_csv, read_text, str_field};
use crate::error::{EvalError, Result};

/// The answer letters, in choice order.
pub const LETTERS: [char; 4] = ['A', 'B', 'C', 'D'];

/// One multiple-choice question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The subject key: lower case, words joined by `_` (`high_school_us_history`).
    pub subject: String,
    pub question: String,
    pub choices: [String; 4],
    /// Index of the correct choice (0–3).
    pub answer: usize,
    /// Where the question came from (`file:line`).
    pub origin: String,
}

/// The subject key of a subject name as written in either layout (`moral scenarios`,
/// `moral_scenarios`, `Moral Scenarios` → `moral_scenarios`).
pub fn subject_key(name: &str) -> String {
    name.split(|c: char| c == '_' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join("_")
}

/// The subject as the original prompt writes it (`_` → space).
pub fn subject_display(key: &str) -> String {
    key.replace('_', " ")
}

/// Loads questions from a `.jsonl` (optionally `.gz`) file, a `.csv` file named
/// `{subject}_{split}.csv`, or a directory: its `split/` subdirectory when there is one (the
/// original `data/` layout), else the directory itself, reading every `.csv` and `.jsonl` file in
/// name order. Rows that repeat the column names (a header row) are skipped with a warning.
pub fn load_questions(path: &Path, split: &str) -> Result<Vec<Question>> {
    let meta = std::fs::metadata(path).map_err(|e| EvalError::io(path, e))?;
    if !meta.is_dir() {
        return load_file(path, split);
    }
    let dir = if path.join(split).is_dir() {
        path.join(split)
    } else {
        path.to_path_buf()
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| EvalError::io(&dir, e))? {
        let entry = entry.map_err(|e| EvalError::io(&dir, e))?;
        let p = entry.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_file()
            && (name.ends_with(".csv") || name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"))
        {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(EvalError::data(
            &dir,
            0,
            "no .csv or .jsonl files in this directory",
        ));
    }
    let mut out = Vec::new();
    for f in files {
        out.extend(load_file(&f, split)?);
    }
    Ok(out)
}

fn load_file(path: &Path, split: &str) -> Result<Vec<Question>> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let text = read_text(path)?;
    if name.ends_with(".csv") {
        load_csv(path, &text, split)
    } else {
        load_jsonl(path, &text)
    }
}

/// The subject of an original-release CSV file: its name without `.csv` and the split suffix.
fn csv_subject(path: &Path, split: &str) -> String {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .trim_end_matches(".csv");
    let mut s = stem;
    for suffix in [split, "test", "dev", "val"] {
        if let Some(rest) = s.strip_suffix(&format!("_{suffix}")) {
            s = rest;
            break;
        }
    }
    subject_key(s)
}

fn is_header(question: &str, answer: &str) -> bool {
    question.trim().eq_ignore_ascii_case("question")
        && answer.trim().to_lowercase().contains("answer")
}

fn load_csv(path: &Path, text: &str, split: &str) -> Result<Vec<Question>> {
    let subject = csv_subject(path, split);
    if subject.is_empty() {
        return Err(EvalError::data(
            path,
            0,
            "cannot tell the subject from the file name (expected {subject}_{split}.csv)",
        ));
    }
    let mut out = Vec::new();
    for rec in parse_csv(path, text)? {
        let f = &rec.fields;
        if f.len() != 6 {
            return Err(EvalError::data(
                path,
                rec.line,
                format!(
                    "expected 6 fields (question, A, B, C, D, answer), found {}",
                    f.len()
                ),
            ));
        }
        if is_header(&f[0], &f[5]) {
            tracing::warn!(file = %path.display(), line = rec.line, "skipping a header row");
            continue;
        }
        let answer = parse_letter(&f[5]).ok_or_else(|| {
            EvalError::data(
                path,
                rec.line,
                format!("answer {:?} is not one of A, B, C, D", f[5]),
            )
        })?;
        out.push(Question {
            subject: subject.clone(),
            question: f[0].clone(),
            choices: [f[1].clone(), f[2].clone(), f[3].clone(), f[4].clone()],
            answer,
            origin: format!("{}:{}", path.display(), rec.line),
        });
    }
    Ok(out)
}

fn parse_letter(s: &str) -> Option<usize> {
    let t = s.trim();
    let mut chars = t.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    LETTERS.iter().position(|&l| l == c.to_ascii_uppercase())
}

/// A choice or answer value: a string, or a number written as JSON writes it.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
}

fn load_jsonl(path: &Path, text: &str) -> Result<Vec<Question>> {
    let mut out = Vec::new();
    for (line, obj) in jsonl_objects(path, text)? {
        if let Some(q) = json_question(path, line, &obj)? {
            out.push(q);
        }
    }
    Ok(out)
}

fn json_question(path: &Path, line: usize, obj: &Map<String, Value>) -> Result<Option<Question>> {
    let err = |m: String| EvalError::data(path, line, m);
    let question = str_field(path, line, obj, "question")?;
    let choices: Vec<String> = if let Some(v) = obj.get("choices") {
        let Value::Array(items) = v else {
            return Err(err(format!(
                "`choices` must be an array, found {}",
                json_kind(v)
            )));
        };
        items
            .iter()
            .map(|c| {
                scalar_text(c).ok_or_else(|| {
                    err(format!(
                        "`choices` must hold strings, found {}",
                        json_kind(c)
                    ))
                })
            })
            .collect::<Result<_>>()?
    } else {
        ["answer_a", "answer_b", "answer_c", "answer_d"]
            .iter()
            .map(|k| match obj.get(*k) {
                Some(v) => scalar_text(v)
                    .ok_or_else(|| err(format!("`{k}` must be a string, found {}", json_kind(v)))),
                None => Err(err(format!("missing `choices` (or `{k}`)"))),
            })
            .collect::<Result<_>>()?
    };
    let answer_value = obj
        .get("answer")
        .or_else(|| obj.get("correct_answer"))
        .ok_or_else(|| err("missing `answer` (or `correct_answer`)".into()))?;
    let subject = match obj.get("subject").or_else(|| obj.get("topic")) {
        Some(Value::String(s)) => subject_key(s),
        Some(other) => {
            return Err(err(format!(
                "`subject` must be a string, found {}",
                json_kind(other)
            )))
        }
        None => return Err(err("missing `subject` (or `topic`)".into())),
    };
    if let Value::String(a) = answer_value {
        if is_header(question, a) {
            tracing::warn!(file = %path.display(), line, "skipping a row that repeats the column names");
            return Ok(None);
        }
    }
    let choices: [String; 4] = choices
        .try_into()
        .map_err(|c: Vec<String>| err(format!("expected 4 choices, found {}", c.len())))?;
    let answer = match answer_value {
        Value::String(s) => {
            parse_letter(s).ok_or_else(|| err(format!("answer {s:?} is not one of A, B, C, D")))?
        }
        Value::Number(n) => match n.as_u64() {
            Some(i @ 0..=3) => i as usize,
            _ => return Err(err(format!("answer {n} is not an index 0–3"))),
        },
        other => {
            return Err(err(format!(
                "answer must be a letter or an index, found {}",
                json_kind(other)
            )))
        }
    };
    if subject.is_empty() {
        return Err(err("the subject is empty".into()));
    }
    Ok(Some(Question {
        subject,
        question: question.to_string(),
        choices,
        answer,
        origin: format!("{}:{}", path.display(), line),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_keys_join_both_layouts() {
        assert_eq!(subject_key("moral scenarios"), "moral_scenarios");
        assert_eq!(
            subject_key("High_School_US_History"),
            "high_school_us_history"
        );
        assert_eq!(subject_display("us_foreign_policy"), "us foreign policy");
    }

    #[test]
    fn jsonl_variants_and_header_rows() {
        let text = concat!(
            r#"{"question": "q1", "answer_a": "a", "answer_b": "b", "answer_c": "c", "answer_d": 4, "correct_answer": "D", "topic": "college physics"}"#,
            "\n",
            r#"{"question": "question", "answer_a": "answer_a", "answer_b": "answer_b", "answer_c": "answer_c", "answer_d": "answer_d", "correct_answer": "answer", "topic": "x"}"#,
            "\n",
            r#"{"question": "q2", "choices": ["w", "x", "y", "z"], "answer": 1, "subject": "college_physics"}"#,
            "\n"
        );
        let qs = load_jsonl(Path::new("m.jsonl"), text).unwrap();
        assert_eq!(qs.len(), 2);
        assert_eq!(qs[0].answer, 3);
        assert_eq!(qs[0].choices[3], "4");
        assert_eq!(qs[0].subject, "college_physics");
        assert_eq!(qs[1].answer, 1);
        assert_eq!(qs[1].subject, "college_physics");
        assert_eq!(qs[1].origin, "m.jsonl:3");
    }

    #[test]
    fn jsonl_errors_name_line_and_field() {
        let bad = [
            (
                r#"{"question": "q", "choices": ["a","b","c"], "answer": 0, "subject": "s"}"#,
                "expected 4 choices, found 3",
            ),
            (
                r#"{"question": "q", "choices": ["a","b","c","d"], "answer": "E", "subject": "s"}"#,
                "answer \"E\" is not one of A, B, C, D",
            ),
            (
                r#"{"question": "q", "choices": ["a","b","c","d"], "answer": 4, "subject": "s"}"#,
                "answer 4 is not an index 0–3",
            ),
            (
                r#"{"question": "q", "choices": ["a","b","c","d"], "answer": 0}"#,
                "missing `subject` (or `topic`)",
            ),
            (
                r#"{"question": 3, "choices": ["a","b","c","d"], "answer": 0, "subject": "s"}"#,
                "`question` must be a string, found a number",
            ),
            (
                r#"{"question": "q", "choices": "abcd", "answer": 0, "subject": "s"}"#,
                "`choices` must be an array, found a string",
            ),
            (
                r#"{"question": "q", "answer_a": "a", "answer": 0, "subject": "s"}"#,
                "missing `choices` (or `answer_b`)",
            ),
        ];
        for (line, msg) in bad {
            let text = format!("\n{line}\n");
            let err = load_jsonl(Path::new("m.jsonl"), &text).unwrap_err();
            assert_eq!(err.to_string(), format!("m.jsonl:2: {msg}"));
        }
    }

    #[test]
    fn csv_release_layout() {
        let dir = std::env::temp_dir().join(format!("llama31-mmlu-csv-{}", std::process::id()));
        let test = dir.join("test");
        std::fs::create_dir_all(&test).unwrap();
        std::fs::write(
            test.join("high_school_us_history_test.csv"),
            "\"Which, of these?\",a,b,c,d,B\nq2,\"multi\nline\",b,c,d,a\n",
        )
        .unwrap();
        std::fs::write(test.join("anatomy_test.csv"), "q,a,b,c,d,C\n").unwrap();
        let qs = load_questions(&dir, "test").unwrap();
        assert_eq!(qs.len(), 3);
        assert_eq!(qs[0].subject, "anatomy");
        assert_eq!(qs[1].subject, "high_school_us_history");
        assert_eq!(qs[1].question, "Which, of these?");
        assert_eq!(qs[1].answer, 1);
        assert_eq!(qs[2].choices[0], "multi\nline");
        assert_eq!(qs[2].answer, 0);
        let dev = dir.join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("anatomy_dev.csv"), "d,a,b,c,d,D\n").unwrap();
        let shots = load_questions(&dir, "dev").unwrap();
        assert_eq!((shots[0].subject.as_str(), shots[0].answer), ("anatomy", 3));
        std::fs::write(test.join("bad_test.csv"), "q,a,b,c,d,B\nq,a,b,c,Z\n").unwrap();
        let err = load_questions(&dir, "test").unwrap_err().to_string();
        assert!(
            err.ends_with(
                "bad_test.csv:2: expected 6 fields (question, A, B, C, D, answer), found 5"
            ),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
