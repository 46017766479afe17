//! TLS plaintext at the library: uprobes on `SSL_read`, `SSL_read_ex`, `SSL_write`,
//! `SSL_write_ex` (OpenSSL 1.1/3.x and BoringSSL share these names and signatures).
//!
//! Tying an `SSL*` to its socket:
//! 1. exact: a read/write syscall made *inside* an SSL call (socket BIOs: curl, python, nginx)
//!    names the fd; the pair is remembered in `SSL_FDS` for later calls served from buffers;
//! 2. heuristic, for libraries that move ciphertext themselves (node's memory BIOs): the TLS
//!    socket this thread last read from (just before `SSL_read`) or writes to next (just after
//!    `SSL_write`). Exact bindings always replace heuristic ones.
use aya_ebpf::{
    EbpfContext,
    helpers::bpf_probe_read_user,
    macros::{map, uprobe, uretprobe},
    maps::LruHashMap,
    programs::{ProbeContext, RetProbeContext},
};
use sensor_common::{conn_key, counter, data_flags, direction, proto, source};

use crate::{
    filter,
    maps::{CONNS, Pending, count, op, take_entry},
    syscalls::io,
};

/// An SSL call in flight on a thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsCall {
    pub ssl: u64,
    pub buf: u64,
    /// `size_t *` out-parameter of the `_ex` variants, 0 for the plain ones.
    pub processed: u64,
    /// Socket named by a nested syscall, or -1.
    pub fd: i32,
    pub direction: u8,
    pub _pad: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SslKey {
    pub tgid: u32,
    pub _pad: u32,
    pub ssl: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SslFd {
    pub fd: i32,
    /// 1 when learned from a nested syscall (authoritative).
    pub exact: u32,
}

#[map]
static TLS_CALLS: LruHashMap<u64, TlsCall> = LruHashMap::with_max_entries(16_384, 0);

#[map]
static SSL_FDS: LruHashMap<SslKey, SslFd> = LruHashMap::with_max_entries(65_536, 0);

/// Last TLS socket each thread moved ciphertext through outside an SSL call, and which way.
#[map]
static LAST_TLS_FD: LruHashMap<u64, LastTls> = LruHashMap::with_max_entries(16_384, 0);

/// Last TLS socket each thread read ciphertext from outside an SSL call.
#[map]
static LAST_TLS_READ: LruHashMap<u64, i32> = LruHashMap::with_max_entries(16_384, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct LastTls {
    pub fd: i32,
    pub direction: u32,
}

/// SSL objects whose write happened before their socket was known, per thread: the next
/// ciphertext write on that thread names it.
#[map]
static UNBOUND_WRITE: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16_384, 0);

#[uprobe]
pub fn ssl_read_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::INGRESS, false)
}

#[uprobe]
pub fn ssl_read_ex_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::INGRESS, true)
}

#[uprobe]
pub fn ssl_write_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::EGRESS, false)
}

#[uprobe]
pub fn ssl_write_ex_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, direction::EGRESS, true)
}

#[inline(always)]
fn enter(ctx: &ProbeContext, dir: u8, ex: bool) -> u32 {
    let Some((pid_tgid, _)) = filter::traced() else {
        return 0;
    };
    let ssl = ctx.arg::<u64>(0).unwrap_or(0);
    // Libraries with memory BIOs (node) feed the ciphertext they just read into the SSL object
    // and then call SSL_read or SSL_write (which may complete the handshake and send buffered
    // data): bind now, before any nested call.
    bind_from_last_read(pid_tgid, ssl);
    let call = TlsCall {
        ssl,
        buf: ctx.arg::<u64>(1).unwrap_or(0),
        processed: if ex { ctx.arg::<u64>(3).unwrap_or(0) } else { 0 },
        fd: -1,
        direction: dir,
        _pad: [0; 3],
    };
    let _ = TLS_CALLS.insert(&pid_tgid, &call, 0);
    0
}

/// One return probe serves all four functions: the enter probe recorded which it was.
#[uretprobe]
pub fn ssl_return(ctx: RetProbeContext) -> u32 {
    let Some((pid_tgid, tgid)) = filter::traced() else {
        return 0;
    };
    let Some(call) = take_entry(&TLS_CALLS, &pid_tgid) else {
        return 0;
    };
    // All four return C `int`: the upper half of the register is not part of the value.
    let rc = i64::from(ctx.ret::<i64>() as i32);
    let key = SslKey { tgid, _pad: 0, ssl: call.ssl };
    let fd = resolve_fd(&call, &key);
    let len = if call.processed != 0 {
        if rc != 1 {
            return 0;
        }
        // SAFETY: user memory read through the checked helper.
        match unsafe { bpf_probe_read_user::<u64>(call.processed as *const u64) } {
            Ok(n) => n,
            Err(_) => return 0,
        }
    } else if rc > 0 {
        rc as u64
    } else {
        return 0;
    };
    if len == 0 {
        return 0;
    }
    if fd < 0 {
        if call.direction == direction::EGRESS {
            let _ = UNBOUND_WRITE.insert(&pid_tgid, &call.ssl, 0);
        }
        count(counter::TLS_UNKNOWN_FD, 1);
        count(counter::TLS_UNKNOWN_FD_BYTES, len);
        return 0;
    }
    emit_plaintext(&ctx, pid_tgid, tgid, fd, call.direction, call.buf, 0, len);
    0
}

/// Reports `len` bytes of plaintext a TLS library call moved for socket `fd`: from the buffer
/// at `ptr`, or from the `iovecs` iovecs at `ptr` when not 0. The bytes are numbered on the
/// connection's plaintext stream (`tls_offsets`), apart from the ciphertext the syscalls move.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn emit_plaintext<C: EbpfContext>(
    ctx: &C,
    pid_tgid: u64,
    tgid: u32,
    fd: i32,
    dir: u8,
    ptr: u64,
    iovecs: u64,
    len: u64,
) {
    let p = Pending {
        fd,
        op: op::IO,
        direction: dir,
        source: if dir == direction::INGRESS { source::SSL_READ } else { source::SSL_WRITE },
        vectored: u8::from(iovecs != 0),
        ptr,
        count: if iovecs != 0 { iovecs } else { len },
    };
    let state = match CONNS.get_ptr_mut(&conn_key(tgid, fd)) {
        Some(state) => state,
        // A TLS connection older than the sensor: recognised from its plaintext.
        None => match io::infer(ctx, &p, len, tgid) {
            Some(state) => state,
            None => return,
        },
    };
    // SAFETY: map value pointer valid for this program run.
    let state = unsafe { &mut *state };
    state.proto = proto::TLS;
    let d = (dir & 1) as usize;
    let base = state.tls_offsets[d];
    state.tls_offsets[d] = base + len;
    if state.muted != 0 {
        return;
    }
    io::copy_out(&p, len, base, state.conn_id, pid_tgid, tgid, data_flags::TLS);
}

/// The socket behind this call (or -1), binding the `SSL*` to it when learned now.
///
/// Returns a sentinel rather than an `Option<i32>`: LLVM leaves the payload of `None`
/// uninitialised, and the verifier rejects the read of that register on the merged path.
#[inline(always)]
fn resolve_fd(call: &TlsCall, key: &SslKey) -> i32 {
    if call.fd >= 0 {
        return call.fd;
    }
    // SAFETY: plain copy of a map value.
    if let Some(known) = unsafe { SSL_FDS.get(key) } {
        return known.fd;
    }
    -1
}

/// Heuristic binding of a not yet bound `ssl` to the TLS socket this thread last *read*
/// ciphertext from (a TLS peer always speaks before a session is usable).
#[inline(always)]
fn bind_from_last_read(pid_tgid: u64, ssl: u64) {
    let key = SslKey { tgid: (pid_tgid >> 32) as u32, _pad: 0, ssl };
    // SAFETY: plain copy of a map value.
    if unsafe { SSL_FDS.get(&key) }.is_some() {
        return;
    }
    // SAFETY: plain copy of a map value.
    if let Some(last) = unsafe { LAST_TLS_FD.get(&pid_tgid) }
        && last.direction == u32::from(direction::INGRESS)
    {
        let _ = SSL_FDS.insert(&key, &SslFd { fd: last.fd, exact: 0 }, 0);
    }
}

/// Whether this thread is inside an SSL call.
#[inline(always)]
pub fn in_ssl_call(pid_tgid: u64) -> bool {
    TLS_CALLS.get_ptr(&pid_tgid).is_some()
}

/// A syscall inside this thread's SSL call moved TLS records on `fd`: that is the call's socket.
#[inline(always)]
pub fn bind_nested(pid_tgid: u64, tgid: u32, fd: i32) {
    let Some(call) = TLS_CALLS.get_ptr_mut(&pid_tgid) else {
        return;
    };
    // SAFETY: map value pointer valid for this program run.
    let call = unsafe { &mut *call };
    call.fd = fd;
    let key = SslKey { tgid, _pad: 0, ssl: call.ssl };
    let _ = SSL_FDS.insert(&key, &SslFd { fd, exact: 1 }, 0);
}

/// The TLS socket this thread last read ciphertext from, or -1: libraries that read the socket
/// themselves before handing out plaintext (rustls). Writes since do not matter: a TLS 1.3
/// server sends its session tickets between reading the request (with the client's Finished)
/// and handing it out.
#[inline(always)]
pub fn last_read_fd(pid_tgid: u64) -> i32 {
    // SAFETY: plain copy of a map value.
    unsafe { LAST_TLS_READ.get(&pid_tgid) }.copied().unwrap_or(-1)
}

/// Called for ciphertext moved outside SSL calls on a known TLS socket.
#[inline(always)]
pub fn note_ciphertext_fd(pid_tgid: u64, fd: i32, dir: u8) {
    let _ = LAST_TLS_FD.insert(&pid_tgid, &LastTls { fd, direction: u32::from(dir) }, 0);
    if dir == direction::INGRESS {
        let _ = LAST_TLS_READ.insert(&pid_tgid, &fd, 0);
    }
    if let Some(ssl) = take_entry(&UNBOUND_WRITE, &pid_tgid) {
        let key = SslKey { tgid: (pid_tgid >> 32) as u32, _pad: 0, ssl };
        // BPF_NOEXIST: never override a binding, least of all an exact one.
        let _ = SSL_FDS.insert(&key, &SslFd { fd, exact: 0 }, 1);
    }
}
