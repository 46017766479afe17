//! Attaching a loaded uprobe program at one file offset, by the path the kernel allows.
//!
//! The usual path (aya's) opens a perf event of the `uprobe` PMU. Since a 2025 hardening
//! (`perf_uprobe_event_init`, backported to stable kernels: a uprobe at an arbitrary offset can
//! corrupt the traced program) that PMU demands `CAP_SYS_ADMIN`, not `CAP_PERFMON`, so an agent
//! holding only the `DaemonSet`'s capabilities is refused with `EACCES`. The kernel's
//! other path needs no capability check of its own: a uprobe *trace event* created by writing
//! `p:`/`r:` lines to tracefs's `uprobe_events` (owner root, mode 0640), opened as a tracepoint
//! perf event (allowed to `CAP_PERFMON`) and given the program with `PERF_EVENT_IOC_SET_BPF`.
//! It is the path bpftrace falls back to, and it costs a traced process exactly the same (the
//! same uprobe). The price is a writable tracefs mount instead of `CAP_SYS_ADMIN`.
//!
//! The first refusal switches the linker to tracefs for the rest of the run. Events are named
//! `apisense_<agent pid>/p<n>`, removed when their link is dropped, and a later agent removes
//! those of an agent that died without cleaning up.
use std::{
    fs,
    io::{self, Write as _},
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use aya::programs::{
    ProbeKind, ProgramError, UProbe,
    uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
};
use thiserror::Error;

/// Where tracefs may be mounted (the same places the loader looks).
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
const GROUP_PREFIX: &str = "apisense_";

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("attaching through the uprobe PMU")]
    Perf(#[source] ProgramError),
    #[error(
        "the uprobe PMU needs CAP_SYS_ADMIN on this kernel and the tracefs fallback failed: {action} \
         (mount tracefs writable for the agent, or grant CAP_SYS_ADMIN)"
    )]
    Tracefs {
        action: String,
        #[source]
        source: io::Error,
    },
    #[error("the program has no file descriptor (not loaded)")]
    NotLoaded(#[source] ProgramError),
}

/// How uprobes are being attached in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachPath {
    /// Perf events of the `uprobe` PMU (needs `CAP_SYS_ADMIN` on kernels with the 2025 fix).
    PerfPmu,
    /// Uprobe trace events created in tracefs (needs a writable tracefs, `CAP_PERFMON`).
    Tracefs,
}

/// One attached uprobe; dropping a tracefs one removes its event (a PMU one is detached through
/// its program, see [`UprobeLinker::detach`]).
pub enum UprobeLink {
    Perf(UProbeLinkId),
    Tracefs(TracefsProbe),
}

pub struct UprobeLinker {
    path: AttachPath,
    group: String,
    next: u64,
}

impl Default for UprobeLinker {
    fn default() -> Self {
        Self::new()
    }
}

impl UprobeLinker {
    #[must_use]
    pub fn new() -> Self {
        remove_stale_events();
        UprobeLinker {
            path: AttachPath::PerfPmu,
            group: format!("{GROUP_PREFIX}{}", std::process::id()),
            next: 0,
        }
    }

    #[must_use]
    pub fn path(&self) -> AttachPath {
        self.path
    }

    /// Attaches `program` at `offset` of the file behind `target` (a `/proc/self/fd/N` path).
    pub fn attach(
        &mut self,
        program: &mut UProbe,
        target: &Path,
        offset: u64,
    ) -> Result<UprobeLink, LinkError> {
        if self.path == AttachPath::PerfPmu {
            match program.attach(
                UProbeAttachLocation::AbsoluteOffset(offset),
                target,
                UProbeScope::AllProcesses,
            ) {
                Ok(link) => return Ok(UprobeLink::Perf(link)),
                Err(e) if is_pmu_refusal(&e) => {
                    log::info!(
                        "the uprobe PMU is refused without CAP_SYS_ADMIN on this kernel: TLS probes go \
                         through tracefs uprobe events instead (same cost)"
                    );
                    self.path = AttachPath::Tracefs;
                }
                Err(e) => return Err(LinkError::Perf(e)),
            }
        }
        self.next += 1;
        let event = format!("{}/p{}", self.group, self.next);
        let prog_fd = program.fd().map_err(LinkError::NotLoaded)?.as_fd().as_raw_fd();
        TracefsProbe::create(&event, program.kind(), target, offset, prog_fd).map(UprobeLink::Tracefs)
    }

    pub fn detach(program: Option<&mut UProbe>, link: UprobeLink) {
        match link {
            UprobeLink::Perf(id) => {
                if let Some(p) = program {
                    let _ = p.detach(id);
                }
            }
            UprobeLink::Tracefs(probe) => drop(probe),
        }
    }
}

/// `perf_event_open` refused for lack of privilege (not a bad offset or a missing file).
fn is_pmu_refusal(e: &ProgramError) -> bool {
    matches!(e, ProgramError::SyscallError(s)
        if s.call == "perf_event_open"
            && matches!(s.io_error.raw_os_error(), Some(libc::EACCES | libc::EPERM)))
}

fn tracefs_root() -> Option<PathBuf> {
    TRACEFS.iter().map(PathBuf::from).find(|p| p.join("uprobe_events").exists())
}

/// A uprobe trace event with the program attached through a tracepoint perf event.
pub struct TracefsProbe {
    root: PathBuf,
    event: String,
    perf: Option<OwnedFd>,
}

impl TracefsProbe {
    fn create(
        event: &str,
        kind: ProbeKind,
        target: &Path,
        offset: u64,
        prog_fd: i32,
    ) -> Result<Self, LinkError> {
        let fail = |action: String| move |source| LinkError::Tracefs { action, source };
        let root = tracefs_root().ok_or_else(|| LinkError::Tracefs {
            action: "finding uprobe_events".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
        let letter = match kind {
            ProbeKind::Entry => 'p',
            ProbeKind::Return => 'r',
        };
        append(&root, &format!("{letter}:{event} {}:{offset:#x}\n", target.display()))
            .map_err(fail(format!("writing {}/uprobe_events", root.display())))?;
        // From here on the event exists: dropping `probe` removes it on every error path.
        let mut probe = TracefsProbe { root, event: event.to_owned(), perf: None };
        let id_path = probe.root.join("events").join(event).join("id");
        let id: u64 = fs::read_to_string(&id_path)
            .map_err(fail(format!("reading {}", id_path.display())))?
            .trim()
            .parse()
            .map_err(|_| LinkError::Tracefs {
                action: format!("parsing {}", id_path.display()),
                source: io::Error::from(io::ErrorKind::InvalidData),
            })?;
        let perf = open_tracepoint(id).map_err(fail("perf_event_open of the uprobe trace event".into()))?;
        set_bpf(&perf, prog_fd).map_err(fail("PERF_EVENT_IOC_SET_BPF".into()))?;
        probe.perf = Some(perf);
        Ok(probe)
    }
}

impl Drop for TracefsProbe {
    fn drop(&mut self) {
        // The event cannot be removed while a perf event holds it.
        drop(self.perf.take());
        if let Err(e) = append(&self.root, &format!("-:{}\n", self.event)) {
            log::debug!("removing uprobe event {}: {e}", self.event);
        }
    }
}

/// Appends one command to `uprobe_events`. Opening it without `O_APPEND` would truncate it,
/// which removes every uprobe event on the host (other tools' too).
fn append(root: &Path, line: &str) -> io::Result<()> {
    fs::OpenOptions::new().append(true).open(root.join("uprobe_events"))?.write_all(line.as_bytes())
}

/// Removes the events of agents that are no longer running (killed before their links dropped).
fn remove_stale_events() {
    let Some(root) = tracefs_root() else { return };
    let Ok(events) = fs::read_to_string(root.join("uprobe_events")) else { return };
    for event in stale_events(&events, |pid| Path::new(&format!("/proc/{pid}")).exists()) {
        if append(&root, &format!("-:{event}\n")).is_ok() {
            log::info!("removed the uprobe event {event} left by an agent that is gone");
        }
    }
}

/// `GROUP/EVENT` names of apisense events in `uprobe_events` whose agent pid is not alive.
fn stale_events(events: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    events
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.split_once(':').map(|(_, name)| name))
        .filter(|name| {
            name.strip_prefix(GROUP_PREFIX)
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
                .is_some_and(|pid| pid != std::process::id() && !alive(pid))
        })
        .map(str::to_owned)
        .collect()
}

/// The first fields of `struct perf_event_attr` (`PERF_ATTR_SIZE_VER0`, which every kernel
/// accepts); the rest is zero.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}
const _: () = assert!(size_of::<PerfEventAttr>() == 64);

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// `_IOW('$', 8, __u32)`.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// `_IO('$', 0)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;

/// A tracepoint perf event on every process, read on CPU 0: a program attached to a trace event
/// runs on whichever CPU the event fires, the perf event only carries it.
fn open_tracepoint(id: u64) -> io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        size: size_of::<PerfEventAttr>() as u32,
        config: id,
        sample_period: 1,
        wakeup_events: 1,
        ..PerfEventAttr::default()
    };
    // SAFETY: `attr` is a valid, fully initialised perf_event_attr of the size it declares.
    let fd =
        unsafe { libc::syscall(libc::SYS_perf_event_open, &raw const attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_bpf(perf: &OwnedFd, prog_fd: i32) -> io::Result<()> {
    for (request, arg) in [(PERF_EVENT_IOC_SET_BPF, prog_fd), (PERF_EVENT_IOC_ENABLE, 0)] {
        // SAFETY: both requests take an integer argument; the descriptor is a perf event.
        if unsafe { libc::ioctl(perf.as_raw_fd(), request, arg) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_of_dead_agents_are_stale() {
        let me = std::process::id();
        let events = format!(
            "p:apisense_{me}/p1 /proc/self/fd/9:0x10\n\
             r:apisense_4000000/p2 /proc/self/fd/9:0x10\n\
             p:apisense_123/p3 /proc/self/fd/9:0x20\n\
             p:uprobes/SSL_write /usr/lib/libssl.so.3:0x30\n\
             p:apisense_notapid/p4 /x:0x1\n\
             garbage line\n"
        );
        let stale = stale_events(&events, |pid| pid == 123);
        assert_eq!(stale, ["apisense_4000000/p2"]);
    }

    #[test]
    fn refusals_are_told_from_other_failures() {
        let refusal = |errno| {
            ProgramError::SyscallError(aya::sys::SyscallError {
                call: "perf_event_open",
                io_error: io::Error::from_raw_os_error(errno),
            })
        };
        assert!(is_pmu_refusal(&refusal(libc::EACCES)));
        assert!(is_pmu_refusal(&refusal(libc::EPERM)));
        assert!(!is_pmu_refusal(&refusal(libc::ENOENT)));
        assert!(!is_pmu_refusal(&ProgramError::NotLoaded));
    }
}
