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

/// Root without `CAP_BPF` (a container that dropped it): the error names what is missing.
#[test]
fn kernel_missing_capabilities_are_named() {
    if !crate::harness::kernel_available("kernel_missing_capabilities_are_named") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-bpf,-perfmon,-sys_admin"])
        .arg(agent_bin())
        .args(["run", "--output", "-", "--state-dir"])
        .arg(dir.path())
        .output()
        .expect("running setpriv (util-linux)");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("missing capabilities: CAP_BPF, CAP_PERFMON"), "{text}");
    assert!(!text.contains("CAP_SYS_PTRACE"), "it still has SYS_PTRACE: {text}");
}
