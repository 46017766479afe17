//! The command line as a new user meets it: help, bad flags, clear errors. No kernel needed.
use std::process::Command;

use crate::harness::agent_bin;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(agent_bin()).args(args).output().expect("running apisense");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn help_explains_run_and_its_flags() {
    let (ok, text) = run(&["run", "--help"]);
    assert!(ok, "{text}");
    for flag in ["--output", "--port", "--pid", "--ring-buffer-mib", "--max-body-bytes"] {
        assert!(text.contains(flag), "run --help lacks {flag}:\n{text}");
    }
}

#[test]
fn invalid_flag_values_are_named() {
    let (ok, text) = run(&["run", "--ring-buffer-mib", "3"]);
    assert!(!ok);
    assert!(text.contains("--ring-buffer-mib") && text.contains("power of two"), "{text}");
    let (ok, text) = run(&["run", "--port", "http"]);
    assert!(!ok);
    assert!(text.contains("--port"), "{text}");
}

#[test]
fn unwritable_output_fails_before_attaching() {
    let (ok, text) = run(&["run", "--output", "/nonexistent-dir/x.jsonl"]);
    assert!(!ok);
    assert!(text.contains("opening output"), "{text}");
}
