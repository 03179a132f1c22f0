//! llama31 formats.
