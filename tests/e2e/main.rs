//! End-to-end tests: they start the real `apisense` binary (built with its eBPF programs), real
//! servers (python, nginx) and clients (curl, python) on loopback, and check what the agent
//! reports. Tests that need the kernel are named `kernel_*` and run under `cargo xtask test`,
//! which sets `APISENSE_E2E=1` so that a missing privilege fails instead of skipping.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness: a panic is a failure report")]

mod harness;

mod analytics;
mod cli;
mod container;
mod go_tls;
mod http2;
mod inventory;
mod kubernetes;
mod otlp;
mod plaintext;
mod privileges;
mod replay;
mod rustls;
mod sensitive;
mod status;
mod tls;
