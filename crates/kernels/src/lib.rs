//! llama31 kernels.
