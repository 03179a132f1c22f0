//! llama31 model.
