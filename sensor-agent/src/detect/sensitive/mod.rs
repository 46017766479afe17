//! Sensitive data. `mask` is the only place raw values turn into output.
pub mod mask;
