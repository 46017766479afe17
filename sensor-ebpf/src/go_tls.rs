//! TLS plaintext in Go programs: uprobes on `crypto/tls.(*Conn).Write` and `(*Conn).Read`.
//!
//! Go links its TLS into every program and exports nothing, and its calling convention is its
//! own (the register ABI of Go 1.17+ on amd64): arguments and results travel in RAX, RBX, RCX..
//! and the running goroutine (`g`) is in R14. The agent finds the two functions (symbol table
//! or `.gopclntab`) and attaches the entry program at their first instruction and the return
//! program at *each RET* of them. A uretprobe is not an option: it replaces the return address
//! on the goroutine stack, and Go copies stacks when they grow, which leaves a stale trampoline
//! address behind and crashes the program.
//!
//! Calls are keyed by `(tgid, g)`, not by thread: a goroutine that blocks in the network poller
//! resumes on whichever thread the scheduler picks.
//!
//! The socket comes from the `*tls.Conn` itself: its first field is the `net.Conn` interface
//! (itab, data); data is a `*net.TCPConn`, whose first word is the `*netFD`; the `poll.FD` at the
//! start of `netFD` holds `Sysfd` after its 16-byte `fdMutex`. The offsets are globals the agent
//! sets, so a Go release that moves them needs no new kernel object.
use aya_ebpf::{
    Global,
    helpers::bpf_probe_read_user,
    macros::{map, uprobe},
    maps::LruHashMap,
    programs::ProbeContext,
};
use sensor_common::{conn_key, counter, direction, proto};

use crate::{
    filter,
    maps::{CONNS, count, take_entry},
    tls,
};

/// Offset of the `net.Conn` interface's data word in `tls.Conn` (the interface is the first
/// field; its itab word comes first).
#[unsafe(no_mangle)]
static GO_TLS_CONN_DATA: Global<u64> = Global::new(8);
/// Offset of `Sysfd` in `netFD` (through `poll.FD`, after `fdMutex{u64, u32, u32}`).
#[unsafe(no_mangle)]
static GO_NETFD_SYSFD: Global<u64> = Global::new(16);

/// Highest descriptor believed: anything above is a pointer chain that did not lead to a
/// `netFD` (a `net.Conn` of another concrete type).
const MAX_FD: u64 = 1 << 24;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoCallKey {
    pub tgid: u32,
    pub _pad: u32,
    /// The goroutine's `g` pointer (R14).
    pub g: u64,
}

/// A `(*Conn).Read`/`Write` in flight on a goroutine.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoCall {
    pub buf: u64,
    /// The socket under the `tls.Conn`, or -1 when the pointer chain did not lead to one.
    pub fd: i32,
    pub direction: u8,
    pub _pad: [u8; 3],
}

#[map]
static GO_TLS_CALLS: LruHashMap<GoCallKey, GoCall> = LruHashMap::with_max_entries(16_384, 0);

#[uprobe]
pub fn go_tls_read_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::INGRESS)
}

#[uprobe]
pub fn go_tls_write_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::EGRESS)
}

/// Attached at every RET of both functions: the enter probe recorded which one it was.
#[uprobe]
pub fn go_tls_return(ctx: ProbeContext) -> u32 {
    ret(&ctx)
}

#[inline(always)]
fn enter(ctx: &ProbeContext, dir: u8) -> u32 {
    let Some((_, tgid)) = filter::traced() else {
        return 0;
    };
    // SAFETY: a uprobe's context is the user register file; the verifier allows these reads.
    let (conn, buf, g) = unsafe { ((*ctx.regs).rax, (*ctx.regs).rbx, (*ctx.regs).r14) };
    let fd = socket_of(conn);
    if fd >= 0
        && let Some(state) = CONNS.get_ptr_mut(&conn_key(tgid, fd))
    {
        // Its ciphertext is never parsed from here on, whatever its first bytes looked like.
        // SAFETY: map value pointer valid for this program run.
        unsafe { (*state).proto = proto::TLS };
    }
    let key = GoCallKey { tgid, _pad: 0, g };
    // A call that grows its stack re-enters at the first instruction with the same arguments:
    // the second insert overwrites the first with the same values.
    let _ = GO_TLS_CALLS.insert(&key, &GoCall { buf, fd, direction: dir, _pad: [0; 3] }, 0);
    0
}

#[inline(always)]
fn ret(ctx: &ProbeContext) -> u32 {
    let Some((pid_tgid, tgid)) = filter::traced() else {
        return 0;
    };
    // SAFETY: as in `enter`.
    let (n, g) = unsafe { ((*ctx.regs).rax as i64, (*ctx.regs).r14) };
    let key = GoCallKey { tgid, _pad: 0, g };
    let Some(call) = take_entry(&GO_TLS_CALLS, &key) else {
        return 0;
    };
    if n <= 0 {
        return 0;
    }
    let len = n as u64;
    if call.fd < 0 {
        count(counter::TLS_UNKNOWN_FD, 1);
        count(counter::TLS_UNKNOWN_FD_BYTES, len);
        return 0;
    }
    tls::emit_plaintext(ctx, pid_tgid, tgid, call.fd, call.direction, call.buf, 0, len);
    0
}

/// The descriptor under a `*tls.Conn` (see the module doc), or -1.
///
/// Returns a sentinel rather than an `Option<i32>` for the reason `tls::resolve_fd` gives.
#[inline(always)]
fn socket_of(conn: u64) -> i32 {
    // SAFETY (all three): user memory read through the checked helper.
    let Ok(tcp) = (unsafe { bpf_probe_read_user::<u64>((conn + GO_TLS_CONN_DATA.load()) as *const u64) })
    else {
        return -1;
    };
    let Ok(netfd) = (unsafe { bpf_probe_read_user::<u64>(tcp as *const u64) }) else {
        return -1;
    };
    let Ok(fd) = (unsafe { bpf_probe_read_user::<u64>((netfd + GO_NETFD_SYSFD.load()) as *const u64) })
    else {
        return -1;
    };
    if fd >= MAX_FD {
        return -1;
    }
    fd as i32
}
