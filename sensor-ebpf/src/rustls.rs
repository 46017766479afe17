//! TLS plaintext in Rust programs that use rustls: uprobes on its plaintext `Reader` and
//! `Writer` (rustls 0.21 to 0.23), found by the agent from their demangled symbol names.
//!
//! rustls never touches the socket inside these calls: the program moves ciphertext itself,
//! reading before it asks for plaintext and writing after it hands plaintext over (rustls's own
//! `Stream`, tokio-rustls under hyper, axum and reqwest). So the socket is the one this thread
//! last *read* TLS records from, for reads, and the one it *writes* TLS records to next, for
//! writes: a write's plaintext waits in `RUSTLS_UNSENT` (its buffer is still the caller's,
//! who is waiting for the flush) until that ciphertext write names the socket.
//!
//! Read paths: `Reader::read` (`Stream`, `StreamOwned`), and `Reader::into_first_chunk` then
//! `Reader::consume` (tokio-rustls): the chunk is remembered, and what `consume` takes of it is
//! the plaintext the program read.
//!
//! The functions follow the Rust ABI, which is not stable: arguments in RDI, RSI, RDX as for C;
//! `io::Result<usize>` returns its tag in RAX and the value in RDX; `into_first_chunk` returns
//! its `io::Result<&[u8]>` through a hidden pointer in RDI (echoed in RAX), or in RAX:RDX when a
//! compiler passes it in registers. Both shapes are recognised.
use aya_ebpf::{
    EbpfContext,
    helpers::bpf_probe_read_user,
    macros::{map, uprobe, uretprobe},
    maps::LruHashMap,
    programs::{ProbeContext, RetProbeContext},
};
use sensor_common::{counter, direction};

use crate::{
    filter,
    maps::{Pending, count, take_entry},
    syscalls::io,
    tls,
};

mod call {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const WRITE_VECTORED: u8 = 3;
    pub const FIRST_CHUNK: u8 = 4;
}

/// A rustls call in flight on a thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RustlsCall {
    /// Buffer (read, write), iovec array (write_vectored) or result slot (into_first_chunk).
    pub buf: u64,
    /// Iovec count of write_vectored.
    pub iovecs: u64,
    pub kind: u8,
    pub _pad: [u8; 7],
}

/// Plaintext written and not yet tied to a socket.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Unsent {
    pub ptr: u64,
    /// 0 for a flat buffer.
    pub iovecs: u64,
    pub len: u64,
}

/// The plaintext chunk `into_first_chunk` last handed out on a thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Chunk {
    pub ptr: u64,
    pub len: u64,
}

#[map]
static RUSTLS_CALLS: LruHashMap<u64, RustlsCall> = LruHashMap::with_max_entries(16_384, 0);
#[map]
static RUSTLS_UNSENT: LruHashMap<u64, Unsent> = LruHashMap::with_max_entries(16_384, 0);
#[map]
static RUSTLS_CHUNK: LruHashMap<u64, Chunk> = LruHashMap::with_max_entries(16_384, 0);

/// First byte of a TLS application-data record (TLS 1.3 sends everything after the hello so).
const APPLICATION_DATA: u8 = 0x17;

#[uprobe]
pub fn rustls_read_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, call::READ)
}

#[uprobe]
pub fn rustls_write_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, call::WRITE)
}

#[uprobe]
pub fn rustls_write_vectored_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, call::WRITE_VECTORED)
}

#[uprobe]
pub fn rustls_first_chunk_enter(ctx: ProbeContext) -> u32 {
    enter(&ctx, call::FIRST_CHUNK)
}

#[inline(always)]
fn enter(ctx: &ProbeContext, kind: u8) -> u32 {
    let Some((pid_tgid, _)) = filter::traced() else {
        return 0;
    };
    // SAFETY: a uprobe's context is the user register file.
    let (rdi, rsi, rdx) = unsafe { ((*ctx.regs).rdi, (*ctx.regs).rsi, (*ctx.regs).rdx) };
    if kind != call::FIRST_CHUNK {
        // A new read or write: plaintext written earlier on this thread that no ciphertext
        // write followed (the socket was full) cannot be tied to a socket any more.
        drop_unsent(pid_tgid);
    }
    let c = match kind {
        call::FIRST_CHUNK => RustlsCall { buf: rdi, iovecs: 0, kind, _pad: [0; 7] },
        call::WRITE_VECTORED => RustlsCall { buf: rsi, iovecs: rdx, kind, _pad: [0; 7] },
        _ => RustlsCall { buf: rsi, iovecs: 0, kind, _pad: [0; 7] },
    };
    let _ = RUSTLS_CALLS.insert(&pid_tgid, &c, 0);
    0
}

/// One return probe for the four functions: the enter probe recorded which it was.
#[uretprobe]
pub fn rustls_return(ctx: RetProbeContext) -> u32 {
    let Some((pid_tgid, tgid)) = filter::traced() else {
        return 0;
    };
    let Some(c) = take_entry(&RUSTLS_CALLS, &pid_tgid) else {
        return 0;
    };
    // SAFETY: as in `enter`.
    let (rax, rdx) = unsafe { ((*ctx.regs).rax, (*ctx.regs).rdx) };
    if c.kind == call::FIRST_CHUNK {
        let (ptr, len) = if rax == c.buf && c.buf != 0 {
            // SAFETY: user memory read through the checked helper.
            match unsafe { bpf_probe_read_user::<[u64; 2]>(c.buf as *const [u64; 2]) } {
                Ok(slot) => (slot[0], slot[1]),
                Err(_) => return 0,
            }
        } else {
            (rax, rdx)
        };
        // `Err` is a null pointer; `Ok(&[])` a dangling one with no length.
        if ptr != 0 && len != 0 {
            let _ = RUSTLS_CHUNK.insert(&pid_tgid, &Chunk { ptr, len }, 0);
        }
        return 0;
    }
    // `io::Result<usize>`: tag 0 is `Ok`.
    if rax != 0 || rdx == 0 {
        return 0;
    }
    let len = rdx;
    match c.kind {
        call::READ => read(&ctx, pid_tgid, tgid, c.buf, len),
        call::WRITE => {
            let _ = RUSTLS_UNSENT.insert(&pid_tgid, &Unsent { ptr: c.buf, iovecs: 0, len }, 0);
        }
        _ => {
            let _ = RUSTLS_UNSENT.insert(&pid_tgid, &Unsent { ptr: c.buf, iovecs: c.iovecs, len }, 0);
        }
    }
    0
}

/// `Reader::consume(amt)`: the program took `amt` bytes of the chunk it was handed.
#[uprobe]
pub fn rustls_consume_enter(ctx: ProbeContext) -> u32 {
    let Some((pid_tgid, tgid)) = filter::traced() else {
        return 0;
    };
    // SAFETY: as in `enter`.
    let amount = unsafe { (*ctx.regs).rsi };
    let Some(chunk) = take_entry(&RUSTLS_CHUNK, &pid_tgid) else {
        return 0;
    };
    let len = if amount < chunk.len { amount } else { chunk.len };
    if len != 0 {
        read(&ctx, pid_tgid, tgid, chunk.ptr, len);
    }
    0
}

#[inline(always)]
fn read<C: EbpfContext>(ctx: &C, pid_tgid: u64, tgid: u32, ptr: u64, len: u64) {
    let fd = tls::last_read_fd(pid_tgid);
    if fd < 0 {
        count(counter::TLS_UNKNOWN_FD, 1);
        count(counter::TLS_UNKNOWN_FD_BYTES, len);
        return;
    }
    tls::emit_plaintext(ctx, pid_tgid, tgid, fd, direction::INGRESS, ptr, 0, len);
}

#[inline(always)]
fn drop_unsent(pid_tgid: u64) {
    if let Some(u) = take_entry(&RUSTLS_UNSENT, &pid_tgid) {
        count(counter::TLS_UNKNOWN_FD, 1);
        count(counter::TLS_UNKNOWN_FD_BYTES, u.len);
    }
}

/// A thread wrote `len` bytes of TLS records to `fd` (`p` is the syscall): the plaintext it
/// handed rustls just before, if any, went out on this socket (in part when the socket took
/// only part: the rest follows on the same socket). A write that does not start with
/// application data is not its flush (a handshake of another connection): the plaintext waits.
#[inline(always)]
pub fn on_ciphertext_write<C: EbpfContext>(ctx: &C, pid_tgid: u64, tgid: u32, p: &Pending, len: u64) {
    // SAFETY: plain copy of a map value.
    let Some(u) = (unsafe { RUSTLS_UNSENT.get(&pid_tgid) }).copied() else {
        return;
    };
    if !io::first_bytes(p, len).is_some_and(|head| head[0] == APPLICATION_DATA) {
        return;
    }
    let _ = RUSTLS_UNSENT.remove(&pid_tgid);
    tls::emit_plaintext(ctx, pid_tgid, tgid, p.fd, direction::EGRESS, u.ptr, u.iovecs, u.len);
}

/// A write on this thread failed (a full socket): the plaintext waiting for it will be flushed
/// later, from wherever the program resumes, and cannot be tied to a socket here.
#[inline(always)]
pub fn on_failed_write(pid_tgid: u64) {
    drop_unsent(pid_tgid);
}
