//! llama31 chat.
