//! What the agent may do on this host, and what each missing privilege costs.
//!
//! **In:** the effective capability set (`CapEff:` of `/proc/self/status`; asking the kernel
//! beats guessing from the uid: root in a container often has fewer) and whether tracefs's
//! `uprobe_events` can be written. **Out:** [`Privileges`], told in one line at start and in
//! `apisense status`; the loader refuses to start when a required capability is missing.
use std::{fmt::Write as _, fs, path::Path};

use serde::Serialize;

/// Capability numbers (`linux/capability.h`).
const DAC_READ_SEARCH: u32 = 2;
const SYS_PTRACE: u32 = 19;
const SYS_ADMIN: u32 = 21;
const PERFMON: u32 = 38;
const BPF: u32 = 39;

/// The capabilities the agent uses, with what it loses without each.
const CAPABILITIES: [(&str, u32, Need); 5] = [
    ("BPF", BPF, Need::Required("no eBPF map or program can be created: nothing is captured")),
    ("PERFMON", PERFMON, Need::Required("no tracepoint can be attached: nothing is captured")),
    (
        "SYS_PTRACE",
        SYS_PTRACE,
        Need::Required("/proc of other processes is unreadable: no process identity, no TLS libraries"),
    ),
    (
        "DAC_READ_SEARCH",
        DAC_READ_SEARCH,
        Need::Optional(
            "TLS libraries and programs in container files without world access are not probed \
             (their TLS is not visible)",
        ),
    ),
    (
        "SYS_ADMIN",
        SYS_ADMIN,
        Need::Optional(
            "the uprobe PMU needs it on kernels with the 2025 uprobe hardening: uprobes go through tracefs instead",
        ),
    ),
];

#[derive(Clone, Copy)]
enum Need {
    /// Without it (and without `SYS_ADMIN`, which covers it) the agent cannot run.
    Required(&'static str),
    Optional(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lack {
    pub capability: &'static str,
    pub required: bool,
    pub cost: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Privileges {
    /// Capabilities held, of those the agent uses.
    pub held: Vec<&'static str>,
    pub lacking: Vec<Lack>,
    /// Whether tracefs's `uprobe_events` is writable (the uprobe path without `SYS_ADMIN`).
    pub tracefs_writable: bool,
}

impl Privileges {
    /// This process's privileges.
    #[must_use]
    pub fn current() -> Self {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        Self::assess(&status, uprobe_events_writable())
    }

    /// From the text of `/proc/self/status`; an unreadable set counts as holding nothing.
    #[must_use]
    pub fn assess(status: &str, tracefs_writable: bool) -> Self {
        let effective = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        let has = |cap: u32| effective & (1 << cap) != 0;
        let mut held = Vec::new();
        let mut lacking = Vec::new();
        for (name, cap, need) in CAPABILITIES {
            if has(cap) {
                held.push(name);
                continue;
            }
            let admin_covers = matches!(cap, BPF | PERFMON) && has(SYS_ADMIN);
            if admin_covers {
                continue;
            }
            let (required, cost) = match need {
                Need::Required(cost) => (true, cost.to_owned()),
                Need::Optional(cost) if cap == SYS_ADMIN => (
                    false,
                    if tracefs_writable {
                        format!("{cost}, writable here: TLS stays visible")
                    } else {
                        format!(
                            "{cost}, read-only here: TLS is NOT visible (mount it writable or grant SYS_ADMIN)"
                        )
                    },
                ),
                Need::Optional(cost) => (false, cost.to_owned()),
            };
            lacking.push(Lack { capability: name, required, cost });
        }
        Privileges { held, lacking, tracefs_writable }
    }

    /// Required capabilities that are missing, as `CAP_X` names.
    #[must_use]
    pub fn missing_required(&self) -> Vec<String> {
        self.lacking.iter().filter(|l| l.required).map(|l| format!("CAP_{}", l.capability)).collect()
    }

    /// Whether TLS libraries can be probed at all.
    #[must_use]
    pub fn tls_visible(&self) -> bool {
        self.held.contains(&"SYS_ADMIN") || self.tracefs_writable
    }

    /// One line for the log and `apisense status`.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut line = format!(
            "privileges: holding {}",
            if self.held.is_empty() { "none".into() } else { self.held.join(", ") }
        );
        if self.lacking.is_empty() {
            line.push_str("; lacking nothing");
        }
        for lack in &self.lacking {
            let _ = write!(line, "; lacking {} ({})", lack.capability, lack.cost);
        }
        line
    }
}

/// Opening for append writes nothing: it only asks the kernel (permissions, a read-only mount)
/// whether a write would be allowed.
fn uprobe_events_writable() -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(|root| Path::new(root).join("uprobe_events"))
        .any(|p| fs::OpenOptions::new().append(true).open(p).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(caps: &[u32]) -> String {
        format!("Name:\tapisense\nCapEff:\t{:016x}\n", caps.iter().fold(0u64, |a, c| a | 1 << c))
    }

    #[test]
    fn the_daemonset_set_lacks_only_sys_admin() {
        let p = Privileges::assess(&status(&[BPF, PERFMON, SYS_PTRACE, DAC_READ_SEARCH]), true);
        assert_eq!(p.held, ["BPF", "PERFMON", "SYS_PTRACE", "DAC_READ_SEARCH"]);
        assert_eq!(p.lacking.len(), 1);
        assert_eq!(p.lacking[0].capability, "SYS_ADMIN");
        assert!(p.missing_required().is_empty());
        assert!(p.tls_visible());
        assert!(p.summary().contains("TLS stays visible"), "{}", p.summary());
        let read_only = Privileges::assess(&status(&[BPF, PERFMON, SYS_PTRACE, DAC_READ_SEARCH]), false);
        assert!(!read_only.tls_visible());
        assert!(read_only.summary().contains("TLS is NOT visible"), "{}", read_only.summary());
    }

    #[test]
    fn sys_admin_stands_in_for_bpf_and_perfmon_only() {
        let p = Privileges::assess(&status(&[SYS_ADMIN]), false);
        assert_eq!(p.missing_required(), ["CAP_SYS_PTRACE"]);
        assert!(p.tls_visible());
        let lacking: Vec<_> = p.lacking.iter().map(|l| l.capability).collect();
        assert_eq!(lacking, ["SYS_PTRACE", "DAC_READ_SEARCH"]);
    }

    #[test]
    fn missing_required_capabilities_are_named_in_order() {
        let p = Privileges::assess(&status(&[SYS_PTRACE]), true);
        assert_eq!(p.missing_required(), ["CAP_BPF", "CAP_PERFMON"]);
        let full = Privileges::assess(&status(&(0..41).collect::<Vec<_>>()), false);
        assert!(full.lacking.is_empty() && full.summary().ends_with("lacking nothing"));
        let unreadable = Privileges::assess("garbage", true);
        assert_eq!(unreadable.missing_required(), ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"]);
    }
}
