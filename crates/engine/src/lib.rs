//! llama31 engine.
