//! Test helpers.

pub mod emulator;
