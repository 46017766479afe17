//! Export: exchanges leave the agent here, always through [`record`] (which masks secrets).
pub mod batch;
pub mod clock;
pub mod jsonl;
pub mod line;
pub mod metrics;
pub mod otlp;
pub mod record;
pub mod timestamp;
