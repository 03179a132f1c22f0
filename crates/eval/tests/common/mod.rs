//! Paths of the fixtures the tests use.

#![allow(dead_code)]

use std::path::PathBuf;

/// The fixture cache filled by `scripts/fetch-fixtures.sh`.
pub fn cache() -> PathBuf {
    match std::env::var_os("LLAMA31_CACHE") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/llama31")
        }
    }
}

/// A fixture that must exist; the message says how to get it.
pub fn fixture(rel: &str) -> PathBuf {
    let p = cache().join(rel);
    assert!(
        p.exists(),
        "missing fixture {} — run scripts/fetch-fixtures.sh",
        p.display()
    );
    p
}

/// A data file committed with the tests.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}
