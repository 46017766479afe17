//! Records shared by the kernel programs (`sensor-ebpf`) and the agent (`sensor-agent`).
//!
//! Every record written to the ring buffer starts with a `u32` kind tag (one of [`kind`]), so the
//! agent can decode a byte slice without trusting its length first. Layouts are `#[repr(C)]` and
//! their sizes are asserted: a change on one side that the other does not follow fails to build.
#![no_std]
// Padding fields are public so both sides can build records with struct literals.
#![expect(clippy::pub_underscore_fields, reason = "explicit padding in shared #[repr(C)] records")]

use core::mem::size_of;

/// Kind tags: the first `u32` of every ring-buffer record.
pub mod kind {
    /// [`super::DataHeader`] followed by `captured` payload bytes.
    pub const DATA: u32 = 1;
    /// [`super::ConnOpen`].
    pub const CONN_OPEN: u32 = 2;
    /// [`super::ConnClose`].
    pub const CONN_CLOSE: u32 = 3;
    /// [`super::ProcExit`].
    pub const PROC_EXIT: u32 = 4;
    /// [`super::ProcExec`].
    pub const PROC_EXEC: u32 = 5;
}

/// Direction of bytes as seen by the traced process.
pub mod direction {
    /// Bytes the process read from the socket.
    pub const INGRESS: u8 = 0;
    /// Bytes the process wrote to the socket.
    pub const EGRESS: u8 = 1;
}

/// Which side of the connection the traced process is.
pub mod role {
    pub const UNKNOWN: u8 = 0;
    /// The process accepted the connection (or inferred: it read a request).
    pub const SERVER: u8 = 1;
    /// The process connected (or inferred: it wrote a request).
    pub const CLIENT: u8 = 2;
}

/// How the kernel learned about a connection.
pub mod origin {
    pub const ACCEPT: u8 = 1;
    pub const CONNECT: u8 = 2;
    /// The connection predates the sensor; HTTP was recognised from its first bytes.
    pub const INFERRED: u8 = 3;
}

/// The syscall family that produced a data record.
pub mod source {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const READV: u8 = 3;
    pub const WRITEV: u8 = 4;
    pub const RECVFROM: u8 = 5;
    pub const SENDTO: u8 = 6;
    pub const RECVMSG: u8 = 7;
    pub const SENDMSG: u8 = 8;
    /// Plaintext at the TLS library (`SSL_read`, `SSL_read_ex`).
    pub const SSL_READ: u8 = 9;
    /// Plaintext at the TLS library (`SSL_write`, `SSL_write_ex`).
    pub const SSL_WRITE: u8 = 10;
}

/// Bits of [`DataHeader::flags`].
pub mod data_flags {
    /// Plaintext captured at the TLS library; offsets count plaintext bytes.
    pub const TLS: u8 = 1;
}

/// Address families carried in [`ConnOpen::family`] (Linux values).
pub mod family {
    pub const UNSPEC: u16 = 0;
    pub const UNIX: u16 = 1;
    pub const INET: u16 = 2;
    pub const INET6: u16 = 10;
}

/// Largest payload carried by one data record. A syscall moving more bytes is split into several
/// records, up to [`MAX_CHUNKS_PER_CALL`]; what is left is reported as a gap of known length.
pub const CHUNK_SIZE: usize = 16 * 1024;
/// Upper bound on payload records emitted for one syscall (bounds the kernel program's loop).
pub const MAX_CHUNKS_PER_CALL: u32 = 32;
/// Upper bound on iovec entries walked for readv/writev/recvmsg/sendmsg.
pub const MAX_IOVECS: u32 = 32;

/// Indexes into the per-CPU `COUNTERS` array.
pub mod counter {
    /// Records the ring buffer refused (full): each one is a loss the agent reports.
    pub const RINGBUF_DROPPED: u32 = 0;
    /// Payload bytes inside refused data records.
    pub const RINGBUF_DROPPED_BYTES: u32 = 1;
    /// Connections not tracked because the connection map was full.
    pub const CONN_MAP_FULL: u32 = 2;
    /// Syscalls not followed because the in-flight map was full.
    pub const PENDING_MAP_FULL: u32 = 3;
    /// Payload bytes that could not be read from user memory (reported as gaps).
    pub const READ_FAILED_BYTES: u32 = 4;
    /// Payload bytes beyond [`super::MAX_CHUNKS_PER_CALL`] chunks (reported as gaps).
    pub const TRUNCATED_BYTES: u32 = 5;
    /// TLS plaintext whose connection could not be determined (dropped).
    pub const TLS_UNKNOWN_FD: u32 = 6;
    /// TLS plaintext bytes in those dropped calls.
    pub const TLS_UNKNOWN_FD_BYTES: u32 = 7;
    pub const COUNT: u32 = 8;
}

/// Header of a [`kind::DATA`] record. It covers the stream range `[offset, offset + len)` of one
/// direction of connection `conn_id`; the first `captured` bytes of that range follow the header,
/// the rest (`len - captured`) were not captured and are a gap of known size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DataHeader {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub fd: i32,
    pub conn_id: u64,
    pub ts_ns: u64,
    pub offset: u64,
    pub len: u32,
    pub captured: u32,
    pub direction: u8,
    pub source: u8,
    pub flags: u8,
    pub _pad: [u8; 5],
}
const _: () = assert!(size_of::<DataHeader>() == 56);

/// Scratch layout used by the kernel to assemble a data record (header then payload).
#[repr(C)]
pub struct DataEvent {
    pub header: DataHeader,
    pub payload: [u8; CHUNK_SIZE],
}
const _: () = assert!(size_of::<DataEvent>() == 56 + CHUNK_SIZE);

/// A connection the kernel started tracking.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnOpen {
    pub kind: u32,
    pub tgid: u32,
    pub conn_id: u64,
    pub ts_ns: u64,
    pub fd: i32,
    /// The listening socket for accepted connections, -1 otherwise.
    pub listen_fd: i32,
    pub role: u8,
    pub origin: u8,
    pub family: u16,
    /// Remote port in host byte order (0 when unknown).
    pub remote_port: u16,
    pub _pad: u16,
    /// Remote address: 4 bytes for IPv4, 16 for IPv6, network order.
    pub remote_addr: [u8; 16],
    pub comm: [u8; 16],
}
const _: () = assert!(size_of::<ConnOpen>() == 72);

/// A tracked connection closed by the process (`close(2)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnClose {
    pub kind: u32,
    pub tgid: u32,
    pub conn_id: u64,
    pub ts_ns: u64,
    pub fd: i32,
    pub _pad: u32,
    /// Bytes read and written over the connection's tracked lifetime.
    pub ingress_bytes: u64,
    pub egress_bytes: u64,
}
const _: () = assert!(size_of::<ConnClose>() == 48);

/// A process called `execve`: it may map TLS libraries the agent has not probed yet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcExec {
    pub kind: u32,
    pub tgid: u32,
    pub ts_ns: u64,
}
const _: () = assert!(size_of::<ProcExec>() == 16);

/// A process (thread-group leader) exited: its connections are gone without `close(2)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcExit {
    pub kind: u32,
    pub tgid: u32,
    pub ts_ns: u64,
}
const _: () = assert!(size_of::<ProcExit>() == 16);

/// What the kernel believes a tracked connection carries, decided from its first bytes.
pub mod proto {
    pub const UNKNOWN: u8 = 0;
    pub const HTTP: u8 = 1;
    /// Not HTTP: offsets are still counted, payload is not copied.
    pub const OTHER: u8 = 2;
    /// TLS records: ciphertext is never copied (plaintext comes from the TLS library probes).
    pub const TLS: u8 = 3;
}

/// Value of the kernel's connection map, keyed by `(tgid << 32) | fd`. The agent writes it too, to
/// mute a connection it has found not to be a socket or not to be wanted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnState {
    pub conn_id: u64,
    /// Running stream offsets indexed by [`direction`] (bytes through the socket).
    pub offsets: [u64; 2],
    /// Running plaintext offsets for TLS connections, indexed by [`direction`].
    pub tls_offsets: [u64; 2],
    pub role: u8,
    pub proto: u8,
    /// 1 when the agent does not want this connection (filtered out, or not a socket): nothing
    /// of it is copied, plaintext from the TLS probes included, while its offsets and TLS
    /// bindings are still kept (the TLS probes tie calls to sockets by what each thread moved
    /// last, muted or not). Apart from `proto`, so a muted TLS connection stays known as TLS.
    pub muted: u8,
    pub _pad: [u8; 5],
}
const _: () = assert!(size_of::<ConnState>() == 48);

/// Key of the kernel's connection map.
#[must_use]
pub const fn conn_key(tgid: u32, fd: i32) -> u64 {
    ((tgid as u64) << 32) | (fd as u32 as u64)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each is plain #[repr(C)] integers and byte arrays with explicit padding fields, so
    // every bit pattern is a valid value (the agent reads ring-buffer records as these).
    unsafe impl aya::Pod for super::ConnState {}
    unsafe impl aya::Pod for super::DataHeader {}
    unsafe impl aya::Pod for super::ConnOpen {}
    unsafe impl aya::Pod for super::ConnClose {}
    unsafe impl aya::Pod for super::ProcExec {}
    unsafe impl aya::Pod for super::ProcExit {}
}
