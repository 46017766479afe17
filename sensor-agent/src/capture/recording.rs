//! Recordings of the capture stage's output: `apisense record` (or `run --record`) writes the
//! event stream, already resolved (process, addresses), so that `apisense replay` can run every
//! later stage on it without privileges and produce the same exchanges as the live run.
//!
//! Format: a 16-byte magic, the clock offset (i128 LE, so replayed timestamps match), then
//! records `[tag u8][len u32 LE][body]`. Integers are little-endian. A file cut short (agent
//! killed mid-write) reads up to the last whole record and then reports where it stopped.
use std::{
    io::{self, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use bytes::Bytes;
use thiserror::Error;

use super::{ConnMeta, Direction, Event, Origin, RawChunk, Role};

pub const MAGIC: &[u8; 16] = b"APISENSE-REC\0\0\0\x02";
/// Largest record body accepted when reading (a data record holds at most a 16 KiB chunk).
const MAX_RECORD: u32 = 1 << 20;

const OPEN: u8 = 1;
const DATA: u8 = 2;
const CLOSE: u8 = 3;
const EXEC: u8 = 4;
const EXIT: u8 = 5;

#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("not an apisense recording (bad magic)")]
    Magic,
    #[error("recording cut short at byte {0} (the rest of the file is ignored)")]
    Truncated(u64),
    #[error("corrupt record at byte {offset}: {what}")]
    Corrupt { offset: u64, what: &'static str },
    #[error("reading the recording")]
    Io(#[from] io::Error),
}

pub struct Writer<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, boot_wall_ns: i128) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&boot_wall_ns.to_le_bytes())?;
        Ok(Writer { out, buf: Vec::with_capacity(64 * 1024) })
    }

    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        self.buf.clear();
        let tag = encode(event, &mut self.buf);
        self.out.write_all(&[tag])?;
        self.out.write_all(&(self.buf.len() as u32).to_le_bytes())?;
        self.out.write_all(&self.buf)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn encode(event: &Event, b: &mut Vec<u8>) -> u8 {
    match event {
        Event::Open(m) => {
            b.extend_from_slice(&m.conn_id.to_le_bytes());
            b.extend_from_slice(&m.tgid.to_le_bytes());
            b.extend_from_slice(&m.fd.to_le_bytes());
            b.push(match m.role {
                Role::Server => 0,
                Role::Client => 1,
            });
            b.push(match m.origin {
                Origin::Accept => 0,
                Origin::Connect => 1,
                Origin::Inferred => 2,
            });
            b.push(u8::from(m.tls));
            b.extend_from_slice(&m.opened_ns.to_le_bytes());
            put_addr(b, m.local);
            put_addr(b, m.remote);
            put_str(b, Some(&m.comm));
            put_str(b, m.exe.as_deref());
            put_str(b, Some(&m.service));
            put_str(b, m.container_id.as_deref());
            OPEN
        }
        Event::Data(c) => {
            b.extend_from_slice(&c.conn_id.to_le_bytes());
            b.extend_from_slice(&c.tgid.to_le_bytes());
            b.extend_from_slice(&c.fd.to_le_bytes());
            b.extend_from_slice(&c.ts_ns.to_le_bytes());
            b.push(match c.direction {
                Direction::Ingress => 0,
                Direction::Egress => 1,
            });
            b.push(u8::from(c.tls));
            b.push(c.source);
            b.extend_from_slice(&c.offset.to_le_bytes());
            b.extend_from_slice(&c.len.to_le_bytes());
            b.extend_from_slice(&c.payload);
            DATA
        }
        Event::Close { conn_id, ts_ns } => {
            b.extend_from_slice(&conn_id.to_le_bytes());
            b.extend_from_slice(&ts_ns.to_le_bytes());
            CLOSE
        }
        Event::Exec { tgid } => {
            b.extend_from_slice(&tgid.to_le_bytes());
            EXEC
        }
        Event::Exit { tgid } => {
            b.extend_from_slice(&tgid.to_le_bytes());
            EXIT
        }
    }
}

fn put_addr(b: &mut Vec<u8>, addr: Option<SocketAddr>) {
    match addr {
        None => b.push(0),
        Some(SocketAddr::V4(a)) => {
            b.push(4);
            b.extend_from_slice(&a.ip().octets());
            b.extend_from_slice(&a.port().to_le_bytes());
        }
        Some(SocketAddr::V6(a)) => {
            b.push(6);
            b.extend_from_slice(&a.ip().octets());
            b.extend_from_slice(&a.port().to_le_bytes());
        }
    }
}

/// Strings are u16-length-prefixed; `u16::MAX` means absent. Longer strings are cut (at a char
/// boundary) rather than refused.
fn put_str(b: &mut Vec<u8>, s: Option<&str>) {
    let Some(s) = s else {
        b.extend_from_slice(&u16::MAX.to_le_bytes());
        return;
    };
    let mut end = s.len().min(usize::from(u16::MAX) - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.extend_from_slice(&(end as u16).to_le_bytes());
    b.extend_from_slice(&s.as_bytes()[..end]);
}

pub struct Reader<R: Read> {
    input: R,
    offset: u64,
    pub boot_wall_ns: i128,
    buf: Vec<u8>,
}

impl<R: Read> Reader<R> {
    pub fn new(mut input: R) -> Result<Self, RecordingError> {
        let mut head = [0u8; 32];
        input.read_exact(&mut head).map_err(|_| RecordingError::Magic)?;
        if &head[..16] != MAGIC {
            return Err(RecordingError::Magic);
        }
        let mut clock = [0u8; 16];
        clock.copy_from_slice(&head[16..]);
        Ok(Reader { input, offset: 32, boot_wall_ns: i128::from_le_bytes(clock), buf: Vec::new() })
    }

    /// The next event, `Ok(None)` at a clean end of file.
    pub fn next_event(&mut self) -> Result<Option<Event>, RecordingError> {
        let mut head = [0u8; 5];
        match read_full(&mut self.input, &mut head)? {
            0 => return Ok(None),
            5 => {}
            _ => return Err(RecordingError::Truncated(self.offset)),
        }
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_RECORD {
            return Err(RecordingError::Corrupt { offset: self.offset, what: "record length" });
        }
        self.buf.resize(len as usize, 0);
        if read_full(&mut self.input, &mut self.buf)? != len as usize {
            return Err(RecordingError::Truncated(self.offset));
        }
        let at = self.offset;
        self.offset += 5 + u64::from(len);
        decode(head[0], &self.buf).map(Some).map_err(|what| RecordingError::Corrupt { offset: at, what })
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decodes one record body. Total: any bytes give an event or a reason.
pub fn decode(tag: u8, body: &[u8]) -> Result<Event, &'static str> {
    let mut c = Cursor { b: body };
    let event = match tag {
        OPEN => {
            let conn_id = c.u64()?;
            let tgid = c.u32()?;
            let fd = c.u32()? as i32;
            let role = match c.u8()? {
                0 => Role::Server,
                1 => Role::Client,
                _ => return Err("role"),
            };
            let origin = match c.u8()? {
                0 => Origin::Accept,
                1 => Origin::Connect,
                2 => Origin::Inferred,
                _ => return Err("origin"),
            };
            let tls = c.u8()? != 0;
            let opened_ns = c.u64()?;
            let local = c.addr()?;
            let remote = c.addr()?;
            let comm = c.string()?.unwrap_or_default();
            let exe = c.string()?;
            let service = c.string()?.unwrap_or_default();
            let container_id = c.string()?;
            Event::Open(Arc::new(ConnMeta {
                conn_id,
                tgid,
                fd,
                role,
                origin,
                comm,
                exe,
                local,
                remote,
                opened_ns,
                tls,
                service,
                container_id,
            }))
        }
        DATA => {
            let conn_id = c.u64()?;
            let tgid = c.u32()?;
            let fd = c.u32()? as i32;
            let ts_ns = c.u64()?;
            let direction = match c.u8()? {
                0 => Direction::Ingress,
                1 => Direction::Egress,
                _ => return Err("direction"),
            };
            let tls = c.u8()? != 0;
            let source = c.u8()?;
            let offset = c.u64()?;
            let len = c.u64()?;
            let payload = Bytes::copy_from_slice(c.b);
            if payload.len() as u64 > len {
                return Err("payload longer than its range");
            }
            c.b = &[];
            Event::Data(RawChunk { conn_id, tgid, fd, ts_ns, direction, tls, source, offset, len, payload })
        }
        CLOSE => Event::Close { conn_id: c.u64()?, ts_ns: c.u64()? },
        EXEC => Event::Exec { tgid: c.u32()? },
        EXIT => Event::Exit { tgid: c.u32()? },
        _ => return Err("unknown record tag"),
    };
    if !c.b.is_empty() {
        return Err("trailing bytes");
    }
    Ok(event)
}

struct Cursor<'a> {
    b: &'a [u8],
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self.b.split_at_checked(N).ok_or("record too short")?;
        self.b = rest;
        head.try_into().map_err(|_| "record too short")
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn addr(&mut self) -> Result<Option<SocketAddr>, &'static str> {
        Ok(match self.u8()? {
            0 => None,
            4 => {
                let ip = Ipv4Addr::from(self.take::<4>()?);
                Some(SocketAddr::new(IpAddr::V4(ip), u16::from_le_bytes(self.take()?)))
            }
            6 => {
                let ip = Ipv6Addr::from(self.take::<16>()?);
                Some(SocketAddr::new(IpAddr::V6(ip), u16::from_le_bytes(self.take()?)))
            }
            _ => return Err("address kind"),
        })
    }

    fn string(&mut self) -> Result<Option<String>, &'static str> {
        let len = u16::from_le_bytes(self.take()?);
        if len == u16::MAX {
            return Ok(None);
        }
        let (s, rest) = self.b.split_at_checked(usize::from(len)).ok_or("string too short")?;
        self.b = rest;
        Ok(Some(String::from_utf8_lossy(s).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Event> {
        let meta = ConnMeta {
            conn_id: 7,
            tgid: 42,
            fd: 5,
            role: Role::Client,
            origin: Origin::Connect,
            comm: "curl".into(),
            exe: Some("/usr/bin/curl".into()),
            local: Some("127.0.0.1:5000".parse().unwrap()),
            remote: Some("[::1]:443".parse().unwrap()),
            opened_ns: 11,
            tls: true,
            service: "curl".into(),
            container_id: Some("ab".repeat(32)),
        };
        vec![
            Event::Exec { tgid: 42 },
            Event::Open(Arc::new(meta)),
            Event::Data(RawChunk {
                conn_id: 7,
                tgid: 42,
                fd: 5,
                ts_ns: 12,
                direction: Direction::Egress,
                offset: 0,
                len: 20,
                payload: Bytes::from_static(b"GET / HTTP/1.1\r\n"),
                tls: true,
                source: 10,
            }),
            Event::Close { conn_id: 7, ts_ns: 13 },
            Event::Exit { tgid: 42 },
        ]
    }

    fn record(events: &[Event]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), -5).unwrap();
        for e in events {
            w.write(e).unwrap();
        }
        w.out
    }

    fn read_all(bytes: &[u8]) -> (Vec<Event>, Option<RecordingError>) {
        let mut r = match Reader::new(bytes) {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut out = Vec::new();
        loop {
            match r.next_event() {
                Ok(Some(e)) => out.push(e),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn round_trip_preserves_every_field() {
        let events = sample();
        let bytes = record(&events);
        let r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(r.boot_wall_ns, -5);
        let (back, err) = read_all(&bytes);
        assert!(err.is_none());
        assert_eq!(format!("{back:?}"), format!("{events:?}"));
    }

    #[test]
    fn a_file_cut_short_yields_whole_records_then_says_where() {
        let bytes = record(&sample());
        let (back, err) = read_all(&bytes[..bytes.len() - 3]);
        assert_eq!(back.len(), 4);
        assert!(matches!(err, Some(RecordingError::Truncated(_))));
    }

    #[test]
    fn not_a_recording() {
        assert!(matches!(
            Reader::new(&b"hello world, this is not it at all"[..]),
            Err(RecordingError::Magic)
        ));
        assert!(matches!(Reader::new(&b""[..]), Err(RecordingError::Magic)));
    }

    #[test]
    fn corrupt_bodies_are_named_never_panic() {
        for tag in 0..=6u8 {
            for len in 0..80 {
                let body: Vec<u8> = (0..len).map(|i| (i * 37 + usize::from(tag)) as u8).collect();
                let _ = decode(tag, &body);
            }
        }
        assert_eq!(decode(9, &[]).unwrap_err(), "unknown record tag");
        assert_eq!(decode(CLOSE, &[1, 2]).unwrap_err(), "record too short");
        let mut huge = record(&[]);
        huge.extend_from_slice(&[DATA, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(read_all(&huge).1, Some(RecordingError::Corrupt { .. })));
    }
}
