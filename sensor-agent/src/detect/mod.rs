//! Detection: what the exchanges reveal. For now, the masking every exporter goes through.
pub mod sensitive;
