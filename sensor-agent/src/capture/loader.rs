//! Loading the embedded kernel programs and attaching them. Every way this can fail on a real
//! host (not root, no BTF, tracefs absent, verifier refusal) ends in a [`LoadError`] that says
//! what to do about it.
use std::path::Path;

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
};
use sensor_common::ConnState;
use thiserror::Error;

/// The kernel object built by `build.rs`; empty when the build skipped eBPF.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// `(program, tracepoint)` pairs in the `syscalls` category, then the `sched` ones.
const SYSCALL_TRACEPOINTS: &[&str] = &[
    "sys_enter_accept",
    "sys_exit_accept",
    "sys_enter_accept4",
    "sys_exit_accept4",
    "sys_enter_connect",
    "sys_exit_connect",
    "sys_enter_close",
    "sys_enter_read",
    "sys_exit_read",
    "sys_enter_write",
    "sys_exit_write",
    "sys_enter_readv",
    "sys_exit_readv",
    "sys_enter_writev",
    "sys_exit_writev",
    "sys_enter_recvfrom",
    "sys_exit_recvfrom",
    "sys_enter_sendto",
    "sys_exit_sendto",
    "sys_enter_recvmsg",
    "sys_exit_recvmsg",
    "sys_enter_sendmsg",
    "sys_exit_sendmsg",
];
const SCHED_TRACEPOINTS: &[&str] = &["sched_process_exit", "sched_process_exec"];
/// The raw tracepoints that replace every `SYSCALL_TRACEPOINTS` entry where their register layout
/// is known (see `sensor-ebpf/src/syscalls/raw.rs`): `(tracepoint, BTF-typed program, raw
/// program)`.
const RAW_SYSCALL_TRACEPOINTS: &[(&str, &str, &str)] =
    &[("sys_enter", "sys_enter_btf", "sys_enter"), ("sys_exit", "sys_exit_btf", "sys_exit")];
/// `tracepoints` to use the per-call syscall tracepoints, `raw` the untyped raw ones, even where
/// the cheaper BTF-typed ones work.
pub const SYSCALL_HOOKS_ENV: &str = "APISENSE_SYSCALL_HOOKS";

/// How the syscalls are hooked: both families run the same handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallHooks {
    /// `tp_btf/sys_enter` and `tp_btf/sys_exit`: the raw tracepoints with BTF-typed arguments, so
    /// the saved registers are read in place rather than through a helper call.
    Btf,
    /// `raw_tp/sys_enter` and `raw_tp/sys_exit`, dispatching on the syscall number: a call the
    /// sensor does not follow costs one compare, and a followed one skips the perf record the
    /// per-call tracepoints build. x86-64 only (syscall numbers and saved registers).
    Raw,
    /// One `syscalls:sys_*` tracepoint per followed call: architecture-neutral.
    PerCall,
}

impl SyscallHooks {
    fn preferred() -> Self {
        if !cfg!(target_arch = "x86_64") {
            return Self::PerCall;
        }
        match std::env::var(SYSCALL_HOOKS_ENV).as_deref() {
            Ok("tracepoints") => Self::PerCall,
            Ok("raw") => Self::Raw,
            _ => Self::Btf,
        }
    }

    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Btf => "BTF raw tracepoints sys_enter/sys_exit",
            Self::Raw => "raw tracepoints sys_enter/sys_exit",
            Self::PerCall => "per-call syscall tracepoints",
        }
    }
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(
        "this apisense binary was built without its eBPF programs (bpf-linker missing or \
         AYA_BUILD_SKIP set); run `cargo xtask setup` and rebuild"
    )]
    NoObject,
    // Reached only after the preflight found the capabilities held (it fails first otherwise),
    // so the refusal comes from a filter above them: the usual one is a container runtime's
    // seccomp profile, which the user can change, so name it.
    #[error(
        "the kernel refused bpf(2) with EPERM although the needed capabilities are held: a seccomp \
         profile or a security module blocks it (podman's default profile, from containers-common, \
         allows bpf(2) and perf_event_open(2) only with CAP_SYS_ADMIN: use a profile that allows \
         them to CAP_BPF and CAP_PERFMON, as containerd's and Docker's defaults do, or Unconfined)"
    )]
    RefusedDespiteCapabilities,
    #[error(
        "missing capabilities: {0} (BPF loads the programs, PERFMON attaches tracepoints and \
         uprobes, SYS_PTRACE reads other processes' /proc entries; SYS_ADMIN stands in for the \
         first two on kernels before 5.8)"
    )]
    MissingCapabilities(String),
    #[error(
        "kernel BTF not found at /sys/kernel/btf/vmlinux (needs a kernel built with CONFIG_DEBUG_INFO_BTF)"
    )]
    NoBtf,
    #[error("reading the kernel's BTF")]
    Btf(#[source] aya::BtfError),
    #[error(
        "tracefs is not mounted and could not be mounted ({0}); mount it with \
         `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    NoTracefs(#[source] std::io::Error),
    #[error("loading the eBPF object")]
    Load(#[source] aya::EbpfError),
    #[error("eBPF program {0} missing from the object")]
    MissingProgram(&'static str),
    #[error("eBPF map {0} missing from the object")]
    MissingMap(&'static str),
    #[error("map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("loading program {name} (kernel verifier)")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("attaching {category}:{name}")]
    Attach {
        category: &'static str,
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
}

/// Loaded and attached programs, with the maps the agent reads. Dropping it detaches everything.
pub struct Probes {
    pub ebpf: Ebpf,
    pub ring: RingBuf<MapData>,
    pub counters: PerCpuArray<MapData, u64>,
    pub conns: HashMap<MapData, u64, ConnState>,
    pub attached: usize,
    pub syscall_hooks: SyscallHooks,
}

pub struct LoadOptions {
    pub ring_buffer_bytes: u32,
    pub max_connections: u32,
}

pub fn load(options: &LoadOptions) -> Result<Probes, LoadError> {
    if OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    preflight()?;
    let agent_tgid = std::process::id();
    let mut ebpf = EbpfLoader::new()
        .override_global("AGENT_TGID", &agent_tgid, true)
        .override_global("GO_TLS_CONN_DATA", &super::go_tls::GO_TLS_CONN_DATA, true)
        .override_global("GO_NETFD_SYSFD", &super::go_tls::GO_NETFD_SYSFD, true)
        .map_max_entries("EVENTS", options.ring_buffer_bytes)
        .map_max_entries("CONNS", options.max_connections)
        .load(OBJECT)
        .map_err(|e| match &e {
            aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EPERM) =>
            {
                LoadError::RefusedDespiteCapabilities
            }
            _ => LoadError::Load(e),
        })?;
    forward_kernel_logs(&mut ebpf);
    let syscall_hooks = attach_syscalls(&mut ebpf)?;
    let mut attached = match syscall_hooks {
        SyscallHooks::Btf | SyscallHooks::Raw => RAW_SYSCALL_TRACEPOINTS.len(),
        SyscallHooks::PerCall => SYSCALL_TRACEPOINTS.len(),
    };
    for &name in SCHED_TRACEPOINTS {
        attach(&mut ebpf, "sched", name)?;
        attached += 1;
    }
    super::tls_libs::load_programs(&mut ebpf)?;
    let ring = take_map(&mut ebpf, "EVENTS", RingBuf::try_from)?;
    let counters = take_map(&mut ebpf, "COUNTERS", PerCpuArray::try_from)?;
    let conns = take_map(&mut ebpf, "CONNS", HashMap::try_from)?;
    Ok(Probes { ebpf, ring, counters, conns, attached, syscall_hooks })
}

/// Attaches the preferred syscall hooks, falling back to the next when one is refused (a kernel
/// without BTF-typed or raw tracepoints, a verifier that rejects the program): BTF-typed raw
/// tracepoints, then untyped raw ones, then one tracepoint per call.
fn attach_syscalls(ebpf: &mut Ebpf) -> Result<SyscallHooks, LoadError> {
    let preferred = SyscallHooks::preferred();
    if preferred == SyscallHooks::Btf {
        match attach_btf(ebpf) {
            Ok(()) => return Ok(SyscallHooks::Btf),
            Err(LoadError::RefusedDespiteCapabilities) => return Err(LoadError::RefusedDespiteCapabilities),
            Err(e) => log::warn!(
                "BTF-typed syscall tracepoints unavailable, trying raw ones: {:#}",
                anyhow::Error::new(e)
            ),
        }
    }
    if preferred != SyscallHooks::PerCall {
        match attach_raw(ebpf) {
            Ok(()) => return Ok(SyscallHooks::Raw),
            Err(LoadError::RefusedDespiteCapabilities) => return Err(LoadError::RefusedDespiteCapabilities),
            Err(e) => log::warn!(
                "raw syscall tracepoints unavailable, using the per-call ones (costlier per syscall): {:#}",
                anyhow::Error::new(e)
            ),
        }
    }
    for &name in SYSCALL_TRACEPOINTS {
        attach(ebpf, "syscalls", name)?;
    }
    Ok(SyscallHooks::PerCall)
}

fn attach_btf(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let btf = Btf::from_sys_fs().map_err(LoadError::Btf)?;
    for &(tracepoint, name, _) in RAW_SYSCALL_TRACEPOINTS {
        let program: &mut BtfTracePoint = ebpf
            .program_mut(name)
            .ok_or(LoadError::MissingProgram(name))?
            .try_into()
            .map_err(|source| LoadError::Program { name, source })?;
        program.load(tracepoint, &btf).map_err(|source| refused_or(name, source))?;
        program.attach().map_err(|source| LoadError::Attach { category: "tp_btf", name, source })?;
    }
    Ok(())
}

fn attach_raw(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    for &(tracepoint, _, name) in RAW_SYSCALL_TRACEPOINTS {
        let program: &mut RawTracePoint = ebpf
            .program_mut(name)
            .ok_or(LoadError::MissingProgram(name))?
            .try_into()
            .map_err(|source| LoadError::Program { name, source })?;
        program.load().map_err(|source| refused_or(name, source))?;
        program.attach(tracepoint).map_err(|source| LoadError::Attach {
            category: "raw_tp",
            name,
            source,
        })?;
    }
    Ok(())
}

fn refused_or(name: &'static str, source: aya::programs::ProgramError) -> LoadError {
    match &source {
        aya::programs::ProgramError::SyscallError(e) if e.io_error.raw_os_error() == Some(libc::EPERM) => {
            LoadError::RefusedDespiteCapabilities
        }
        _ => LoadError::Program { name, source },
    }
}

fn take_map<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<T, aya::maps::MapError>,
) -> Result<T, LoadError> {
    let map = ebpf.take_map(name).ok_or(LoadError::MissingMap(name))?;
    convert(map).map_err(|source| LoadError::Map { name, source })
}

fn attach(ebpf: &mut Ebpf, category: &'static str, name: &'static str) -> Result<(), LoadError> {
    let program: &mut TracePoint = ebpf
        .program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoadError::Program { name, source })?;
    program.load().map_err(|source| refused_or(name, source))?;
    program.attach(category, name).map_err(|source| LoadError::Attach { category, name, source })?;
    Ok(())
}

/// Checks what the kernel must offer before trying to load, so that the common failures get a
/// message a user can act on instead of a verifier or ioctl error.
fn preflight() -> Result<(), LoadError> {
    let privileges = super::privileges::Privileges::current();
    if privileges.tls_visible() {
        log::info!("{}", privileges.summary());
    } else {
        log::warn!("{}", privileges.summary());
    }
    let missing = privileges.missing_required();
    if !missing.is_empty() {
        return Err(LoadError::MissingCapabilities(missing.join(", ")));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(LoadError::NoBtf);
    }
    ensure_tracefs()
}

fn ensure_tracefs() -> Result<(), LoadError> {
    const TRACEFS: &str = "/sys/kernel/tracing";
    if Path::new(TRACEFS).join("events").exists() || Path::new("/sys/kernel/debug/tracing/events").exists() {
        return Ok(());
    }
    // A DaemonSet pod or a fresh VM may not have it mounted; mounting it is harmless and is what
    // an operator would do by hand.
    let rc = {
        let fs = c"tracefs";
        let target = c"/sys/kernel/tracing";
        // SAFETY: valid NUL-terminated strings, no data argument.
        unsafe { libc::mount(fs.as_ptr(), target.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) }
    };
    if rc == 0 {
        log::info!("mounted tracefs at {TRACEFS}");
        Ok(())
    } else {
        Err(LoadError::NoTracefs(std::io::Error::last_os_error()))
    }
}

/// Sends aya-log records from the kernel programs to the agent's log (target `apisense::kernel`,
/// debug level by default). Absent when the programs carry no log statements: not an error.
fn forward_kernel_logs(ebpf: &mut Ebpf) {
    match aya_log::EbpfLogger::init(ebpf) {
        // SAFETY: the logger owns its ring-buffer fd for as long as the AsyncFd lives.
        Ok(logger) => match unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
        }
        .map_err(|e| e.to_string())
        {
            Ok(mut fd) => {
                tokio::spawn(async move {
                    loop {
                        let Ok(mut guard) = fd.readable_mut().await else {
                            break;
                        };
                        guard.get_inner_mut().flush();
                        guard.clear_ready();
                    }
                });
            }
            Err(e) => log::warn!("kernel log forwarding unavailable: {e}"),
        },
        Err(e) => log::debug!("kernel log forwarding not started: {e}"),
    }
}
