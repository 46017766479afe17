//! read/write and their vectored and socket variants: copy the bytes of tracked HTTP connections,
//! and recognise HTTP on connections that predate the sensor.
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user, generated},
    macros::tracepoint,
    programs::TracePointContext,
};
use aya_log_ebpf::debug;
use sensor_common::{
    CHUNK_SIZE, ConnState, DataEvent, DataHeader, MAX_CHUNKS_PER_CALL, MAX_IOVECS, conn_key, counter,
    direction, kind, origin, proto, role, source,
};

use super::{SysArgs, conn, remember, take, tracepoint_ret};
use crate::{
    classify, emit, filter,
    maps::{CONNS, Pending, SCRATCH, count, op},
    rustls, tls,
};

const HEADER_LEN: usize = core::mem::size_of::<DataHeader>();

macro_rules! io_tracepoints {
    ($enter:ident, $exit:ident, $dir:expr, $source:expr, $kind:ident) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            enter(&SysArgs::of_tracepoint(&ctx), $dir, $source, Args::$kind)
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            exit(&ctx, tracepoint_ret(&ctx))
        }
    };
}

io_tracepoints!(sys_enter_read, sys_exit_read, direction::INGRESS, source::READ, Buffer);
io_tracepoints!(sys_enter_write, sys_exit_write, direction::EGRESS, source::WRITE, Buffer);
io_tracepoints!(sys_enter_readv, sys_exit_readv, direction::INGRESS, source::READV, Iovec);
io_tracepoints!(sys_enter_writev, sys_exit_writev, direction::EGRESS, source::WRITEV, Iovec);
io_tracepoints!(sys_enter_recvfrom, sys_exit_recvfrom, direction::INGRESS, source::RECVFROM, Received);
io_tracepoints!(sys_enter_sendto, sys_exit_sendto, direction::EGRESS, source::SENDTO, Buffer);
io_tracepoints!(sys_enter_recvmsg, sys_exit_recvmsg, direction::INGRESS, source::RECVMSG, ReceivedMsg);
io_tracepoints!(sys_enter_sendmsg, sys_exit_sendmsg, direction::EGRESS, source::SENDMSG, Msghdr);

/// How a syscall passes its buffer: `(fd, buf, len)`, `(fd, iov, iovcnt)` or `(fd, msghdr, ..)`.
#[derive(Clone, Copy)]
pub enum Args {
    Buffer,
    Iovec,
    Msghdr,
    /// recvfrom: `(fd, buf, len, flags, ..)`.
    Received,
    /// recvmsg: `(fd, msghdr, flags)`.
    ReceivedMsg,
}

const MSG_PEEK: u64 = 2;

#[inline(always)]
pub fn enter(sys: &SysArgs, dir: u8, src: u8, args: Args) -> u32 {
    let Some((pid_tgid, _)) = filter::traced() else {
        return 0;
    };
    let fd = sys.get(0) as i32;
    if fd < 0 {
        return 0;
    }
    // A peek does not consume: the same bytes come again in the next read (nginx peeks one byte
    // to tell TLS from plaintext).
    let peek = match args {
        Args::Received => sys.get(3) & MSG_PEEK != 0,
        Args::ReceivedMsg => sys.get(2) & MSG_PEEK != 0,
        _ => false,
    };
    if peek {
        return 0;
    }
    let (ptr, count, vectored) = match args {
        Args::Buffer | Args::Received => (sys.get(1), sys.get(2), 0),
        Args::Iovec => (sys.get(1), sys.get(2), 1),
        Args::Msghdr | Args::ReceivedMsg => {
            // struct msghdr: name, namelen, iov at 16, iovlen at 24.
            let msg = sys.get(1);
            // SAFETY: user memory read through the checked helper.
            let Ok(m) = (unsafe { bpf_probe_read_user::<[u64; 4]>(msg as *const [u64; 4]) }) else {
                return 0;
            };
            (m[2], m[3], 1)
        }
    };
    let pending = Pending { fd, op: op::IO, direction: dir, source: src, vectored, ptr, count };
    remember(pid_tgid, &pending);
    0
}

#[inline(always)]
pub fn exit<C: EbpfContext>(ctx: &C, rc: i64) -> u32 {
    let Some((pid_tgid, tgid)) = filter::traced() else {
        return 0;
    };
    let Some(p) = take(pid_tgid, op::IO) else {
        return 0;
    };
    if rc <= 0 {
        if p.direction == direction::EGRESS {
            rustls::on_failed_write(pid_tgid);
        }
        return 0;
    }
    let len = rc as u64;
    let key = conn_key(tgid, p.fd);
    if tls::in_ssl_call(pid_tgid) && carries_tls(&key, &p, len) {
        // Ciphertext moved by the TLS library on behalf of an SSL_* call: the plaintext is
        // reported by the uretprobe; only the socket offsets move.
        tls::bind_nested(pid_tgid, tgid, p.fd);
        if let Some(state) = CONNS.get_ptr_mut(&key) {
            // SAFETY: map value pointer valid for this program run.
            let state = unsafe { &mut *state };
            state.proto = proto::TLS;
            state.offsets[(p.direction & 1) as usize] += len;
        }
        return 0;
    }
    let state = match CONNS.get_ptr_mut(&key) {
        Some(state) => state,
        None => match infer(ctx, &p, len, tgid) {
            Some(state) => state,
            None => {
                // TLS on a socket older than the sensor: libraries that move their own
                // ciphertext (rustls, node) are tied to it the same way; their plaintext then
                // says what the connection carries.
                if first_bytes(&p, len).is_some_and(classify::is_tls_record) {
                    ciphertext(ctx, pid_tgid, tgid, &p, len);
                }
                return 0;
            }
        },
    };
    // SAFETY: map value pointer valid for this program run; races with another thread of the same
    // process on the same fd only blur offsets, which the agent tolerates.
    let state = unsafe { &mut *state };
    if state.proto == proto::UNKNOWN
        && let Some(head) = first_bytes(&p, len)
    {
        state.proto = classify::classify(head);
    }
    let dir = (p.direction & 1) as usize;
    let base = state.offsets[dir];
    state.offsets[dir] = base + len;
    if state.proto == proto::TLS {
        ciphertext(ctx, pid_tgid, tgid, &p, len);
        return 0;
    }
    if state.proto == proto::OTHER || state.muted != 0 {
        return 0;
    }
    copy_out(&p, len, base, state.conn_id, pid_tgid, tgid, 0);
    0
}

/// TLS records moved outside any TLS library call, by libraries that do their own socket I/O
/// (node's memory BIOs, rustls): remember which TLS socket this thread just used, to tie the
/// next library call to it, and flush what rustls was handed to write.
#[inline(always)]
fn ciphertext<C: EbpfContext>(ctx: &C, pid_tgid: u64, tgid: u32, p: &Pending, len: u64) {
    tls::note_ciphertext_fd(pid_tgid, p.fd, p.direction);
    if p.direction == direction::EGRESS {
        rustls::on_ciphertext_write(ctx, pid_tgid, tgid, p, len);
    }
}

/// Whether a syscall inside an SSL call moved TLS records on this fd. Libraries make other
/// syscalls inside SSL calls too (node wakes its event loop through an eventfd): only a socket
/// already known as TLS, or bytes that start a TLS record, tie the `SSL*` to the fd.
#[inline(always)]
fn carries_tls(key: &u64, p: &Pending, len: u64) -> bool {
    if let Some(state) = CONNS.get_ptr(key) {
        // SAFETY: map value pointer valid for this program run.
        let proto = unsafe { (*state).proto };
        if proto == proto::TLS {
            return true;
        }
        if proto != proto::UNKNOWN {
            return false;
        }
    }
    first_bytes(p, len).is_some_and(classify::is_tls_record)
}

/// A connection the sensor did not see open (it predates the sensor): track it if its bytes start
/// an HTTP message. The role follows from direction and message kind.
#[inline(always)]
pub fn infer<C: aya_ebpf::EbpfContext>(ctx: &C, p: &Pending, len: u64, tgid: u32) -> Option<*mut ConnState> {
    let head = first_bytes(p, len)?;
    if classify::classify(head) != proto::HTTP {
        return None;
    }
    let request = classify::is_request(head);
    let is_server = (p.direction == direction::INGRESS) == request;
    let r = if is_server { role::SERVER } else { role::CLIENT };
    let mut open = conn::new_open(tgid, p.fd, r, origin::INFERRED, -1);
    let state = conn::track(&mut open);
    if state.is_some() {
        debug!(ctx, "pre-existing HTTP connection recognised: tgid {} fd {}", tgid, p.fd);
    }
    state
}

/// The first four bytes the syscall moved, if it moved at least four in its first buffer.
#[inline(always)]
pub fn first_bytes(p: &Pending, len: u64) -> Option<[u8; 4]> {
    if len < 4 {
        return None;
    }
    let ptr = if p.vectored != 0 {
        // SAFETY: user memory read through the checked helper.
        let iov = unsafe { bpf_probe_read_user::<[u64; 2]>(p.ptr as *const [u64; 2]) }.ok()?;
        if iov[1] < 4 {
            return None;
        }
        iov[0]
    } else {
        p.ptr
    };
    // SAFETY: as above.
    unsafe { bpf_probe_read_user::<[u8; 4]>(ptr as *const [u8; 4]) }.ok()
}

/// State of one `copy_out` walk, shared with the `bpf_loop` callback that does each step.
#[repr(C)]
struct CopyWalk {
    /// Data buffer, or the iovec array when `vectored`.
    ptr: u64,
    iov_count: u64,
    vectored: u64,
    len: u64,
    base: u64,
    done: u64,
    chunks: u64,
    iov_index: u64,
    cursor: u64,
    left: u64,
}

/// Emits the `len` bytes the syscall moved as data records of at most `CHUNK_SIZE` bytes, walking
/// iovecs when the call was vectored. Whatever exceeds the per-call bounds is one gap record.
///
/// The walk runs under `bpf_loop` so the verifier checks one step instead of every unrolled
/// iteration (an open-coded loop exceeds its one-million-instruction budget).
#[inline(always)]
pub fn copy_out(p: &Pending, len: u64, base: u64, conn_id: u64, pid_tgid: u64, tgid: u32, flags: u8) {
    let Some(event) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot, exclusively ours for this program run.
    let event = unsafe { &mut *event };
    event.header = DataHeader {
        kind: kind::DATA,
        tgid,
        tid: pid_tgid as u32,
        fd: p.fd,
        conn_id,
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        offset: base,
        len: 0,
        captured: 0,
        direction: p.direction,
        source: p.source,
        flags,
        _pad: [0; 5],
    };
    let vectored = p.vectored != 0;
    let mut walk = CopyWalk {
        ptr: p.ptr,
        iov_count: p.count,
        vectored: u64::from(vectored),
        len,
        base,
        done: 0,
        chunks: 0,
        iov_index: 0,
        cursor: if vectored { 0 } else { p.ptr },
        left: if vectored { 0 } else { len },
    };
    // SAFETY: the callback only touches `walk` through the pointer it is given and the scratch map.
    unsafe {
        generated::bpf_loop(
            MAX_CHUNKS_PER_CALL + MAX_IOVECS,
            copy_step as *mut core::ffi::c_void,
            (&raw mut walk).cast(),
            0,
        );
    }
    if walk.done < len {
        let missing = len - walk.done;
        count(counter::TRUNCATED_BYTES, missing);
        event.header.offset = base + walk.done;
        event.header.len = missing as u32;
        event.header.captured = 0;
        // SAFETY: the header is the first HEADER_LEN bytes of the scratch record.
        let record =
            unsafe { core::slice::from_raw_parts(event as *const DataEvent as *const u8, HEADER_LEN) };
        emit::bytes(record, 0);
    }
}

/// One step of [`copy_out`]: either move to the next iovec or emit one chunk. Returns 1 to stop.
extern "C" fn copy_step(_index: u64, walk: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer given in `copy_out`.
    let w = unsafe { &mut *walk.cast::<CopyWalk>() };
    if w.done >= w.len || w.chunks >= u64::from(MAX_CHUNKS_PER_CALL) {
        return 1;
    }
    if w.left == 0 {
        if w.vectored == 0 || w.iov_index >= w.iov_count || w.iov_index >= u64::from(MAX_IOVECS) {
            return 1;
        }
        let at = (w.ptr + w.iov_index * 16) as *const [u64; 2];
        // SAFETY: user memory read through the checked helper.
        let Ok(iov) = (unsafe { bpf_probe_read_user::<[u64; 2]>(at) }) else {
            return 1;
        };
        w.iov_index += 1;
        w.cursor = iov[0];
        w.left = iov[1];
        return 0;
    }
    let Some(event) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: as in `copy_out`; the callback runs on the same CPU within the same program run.
    let event = unsafe { &mut *event };
    let mut n = if w.left < w.len - w.done { w.left } else { w.len - w.done };
    if n > CHUNK_SIZE as u64 {
        n = CHUNK_SIZE as u64;
    }
    chunk(event, w.cursor, n as u32, w.base + w.done);
    w.chunks += 1;
    w.done += n;
    w.cursor += n;
    w.left -= n;
    0
}

#[inline(always)]
fn chunk(event: &mut DataEvent, src: u64, n: u32, offset: u64) {
    if n as usize > CHUNK_SIZE {
        return;
    }
    event.header.offset = offset;
    event.header.len = n;
    // SAFETY: n <= CHUNK_SIZE bytes into the payload array; the helper checks the user source.
    let rc = unsafe { generated::bpf_probe_read_user(event.payload.as_mut_ptr().cast(), n, src as *const _) };
    let captured = if rc == 0 {
        n
    } else {
        count(counter::READ_FAILED_BYTES, u64::from(n));
        0
    };
    event.header.captured = captured;
    let total = HEADER_LEN + captured as usize;
    if total > core::mem::size_of::<DataEvent>() {
        return;
    }
    // SAFETY: `total` bytes lie within the scratch record.
    let record = unsafe { core::slice::from_raw_parts(event as *const DataEvent as *const u8, total) };
    emit::bytes(record, u64::from(captured));
}
