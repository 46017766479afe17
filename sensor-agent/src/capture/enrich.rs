//! Turns raw kernel events into announced connections: a connection is resolved (executable,
//! local and remote address from /proc) when its first bytes arrive, filtered, and only then
//! announced downstream. Connections that never carry bytes cost nothing beyond a map entry.
use std::{collections::HashMap, sync::Arc};

use super::{
    ConnMeta, Event,
    event::{CaptureEvent, Direction, Origin, RawChunk, RawOpen, Role},
    procinfo::{self, ProcCache},
};

/// Which connections to report. Empty lists match everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub pids: Vec<u32>,
    pub ports: Vec<u16>,
}

impl Filter {
    #[must_use]
    pub fn matches(&self, meta: &ConnMeta) -> bool {
        let pid_ok = self.pids.is_empty() || self.pids.contains(&meta.tgid);
        let port_ok = self.ports.is_empty()
            || [meta.local, meta.remote].iter().flatten().any(|a| self.ports.contains(&a.port()));
        pid_ok && port_ok
    }
}

enum Conn {
    /// Opened, no bytes yet.
    Opened(RawOpen),
    Announced {
        tgid: u32,
    },
    /// Filtered out or not a socket: its bytes are dropped (and the kernel asked to stop copying).
    Ignored {
        tgid: u32,
    },
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct EnrichStats {
    pub orphan_chunks: u64,
    pub recovered_connections: u64,
    pub filtered_connections: u64,
    /// Records that arrived for connections already filtered out or found not to be sockets:
    /// the few in flight before the kernel was asked to stop copying them. More means the
    /// muting does not hold.
    pub ignored_chunks: u64,
    pub not_socket: u64,
    pub open_table_evictions: u64,
}

pub struct Enricher {
    filter: Filter,
    conns: HashMap<u64, Conn>,
    max_conns: usize,
    procs: ProcCache,
    /// `(tgid, fd)` of connections the kernel should stop copying.
    mute: Vec<(u32, i32)>,
    pub stats: EnrichStats,
}

impl Enricher {
    #[must_use]
    pub fn new(filter: Filter, max_conns: usize) -> Self {
        Enricher {
            filter,
            conns: HashMap::new(),
            max_conns,
            procs: ProcCache::default(),
            mute: Vec::new(),
            stats: EnrichStats::default(),
        }
    }

    /// Connections that should be muted in the kernel since the last call.
    pub fn take_mutes(&mut self) -> Vec<(u32, i32)> {
        std::mem::take(&mut self.mute)
    }

    pub fn push(&mut self, event: CaptureEvent, out: &mut Vec<Event>) {
        match event {
            CaptureEvent::Open(open) => {
                if self.conns.len() >= self.max_conns {
                    // Opened-but-silent connections are the cheapest to forget.
                    self.evict_silent();
                }
                self.conns.insert(open.conn_id, Conn::Opened(open));
            }
            CaptureEvent::Data(chunk) => {
                log::trace!(
                    "chunk conn {} {:?} offset {} len {} captured {} tls {} source {}",
                    chunk.conn_id,
                    chunk.direction,
                    chunk.offset,
                    chunk.len,
                    chunk.payload.len(),
                    chunk.tls,
                    chunk.source
                );
                self.push_data(chunk, out);
            }
            CaptureEvent::Close(close) => {
                if let Some(Conn::Announced { .. }) = self.conns.remove(&close.conn_id) {
                    out.push(Event::Close { conn_id: close.conn_id, ts_ns: close.ts_ns });
                }
            }
            CaptureEvent::ProcExit { tgid, ts_ns } => {
                self.conns.retain(|&conn_id, conn| match conn {
                    Conn::Opened(o) => o.tgid != tgid,
                    Conn::Ignored { tgid: t } => *t != tgid,
                    Conn::Announced { tgid: t } => {
                        if *t == tgid {
                            out.push(Event::Close { conn_id, ts_ns });
                        }
                        *t != tgid
                    }
                });
                self.procs.forget(tgid);
                out.push(Event::Exit { tgid });
            }
            CaptureEvent::ProcExec { tgid, .. } => {
                self.procs.forget(tgid);
                out.push(Event::Exec { tgid });
            }
        }
    }

    fn push_data(&mut self, chunk: RawChunk, out: &mut Vec<Event>) {
        match self.conns.get(&chunk.conn_id) {
            Some(Conn::Announced { .. }) => out.push(Event::Data(chunk)),
            Some(Conn::Ignored { .. }) => self.stats.ignored_chunks += 1,
            Some(Conn::Opened(_)) => {
                if let Some(Conn::Opened(open)) = self.conns.remove(&chunk.conn_id) {
                    let tgid = open.tgid;
                    match self.resolve(open, chunk.tls) {
                        Some(meta) => {
                            self.conns.insert(chunk.conn_id, Conn::Announced { tgid });
                            out.push(Event::Open(Arc::new(meta)));
                            out.push(Event::Data(chunk));
                        }
                        None => {
                            self.conns.insert(chunk.conn_id, Conn::Ignored { tgid });
                        }
                    }
                }
            }
            None => self.recover(chunk, out),
        }
    }

    /// Forgets a connection a later stage has given up on (idle or table eviction), so that its
    /// next bytes go through [`Enricher::recover`] instead of vanishing downstream.
    pub fn forget(&mut self, conn_id: u64) {
        self.conns.remove(&conn_id);
    }

    /// Data for a connection whose open was never seen (lost in a full ring buffer) or was
    /// forgotten: if these bytes start an HTTP message, the connection is resolved afresh, as the
    /// kernel does for connections older than the sensor; otherwise they are counted and dropped.
    fn recover(&mut self, chunk: RawChunk, out: &mut Vec<Event>) {
        let role = match (message_start(&chunk.payload), chunk.direction) {
            (Some(true), Direction::Ingress) | (Some(false), Direction::Egress) => Role::Server,
            (Some(true), Direction::Egress) | (Some(false), Direction::Ingress) => Role::Client,
            (None, _) => {
                self.stats.orphan_chunks += 1;
                return;
            }
        };
        self.stats.recovered_connections += 1;
        let open = RawOpen {
            conn_id: chunk.conn_id,
            tgid: chunk.tgid,
            fd: chunk.fd,
            ts_ns: chunk.ts_ns,
            role,
            origin: Origin::Inferred,
            listen_fd: None,
            remote: None,
            unix: false,
            comm: procinfo::comm(chunk.tgid).unwrap_or_default(),
        };
        self.conns.insert(chunk.conn_id, Conn::Opened(open));
        self.push(CaptureEvent::Data(chunk), out);
    }

    /// Builds the connection's metadata, or `None` when it must not be reported.
    fn resolve(&mut self, open: RawOpen, tls: bool) -> Option<ConnMeta> {
        let sockets = if open.unix { None } else { procinfo::socket_addrs(open.tgid, open.fd) };
        if open.origin == Origin::Inferred && procinfo::is_socket(open.tgid, open.fd) == Some(false) {
            // HTTP-looking bytes on a file or pipe: not traffic.
            self.stats.not_socket += 1;
            self.mute.push((open.tgid, open.fd));
            return None;
        }
        let (local, remote) = match sockets {
            Some((local, remote)) => (Some(local), Some(remote)),
            // Gone already: the peer from accept/connect and, for accepted connections, the
            // listening socket's address are the best we have.
            None => (open.listen_fd.and_then(|fd| self.procs.listener(open.tgid, fd)), open.remote),
        };
        let (service, container_id) = self.procs.identity(open.tgid, &open.comm);
        let meta = ConnMeta {
            conn_id: open.conn_id,
            tgid: open.tgid,
            fd: open.fd,
            role: open.role,
            origin: open.origin,
            exe: self.procs.exe(open.tgid),
            comm: open.comm,
            local,
            remote,
            opened_ns: open.ts_ns,
            tls,
            service,
            container_id,
        };
        if !self.filter.matches(&meta) {
            self.stats.filtered_connections += 1;
            self.mute.push((meta.tgid, meta.fd));
            return None;
        }
        Some(meta)
    }

    fn evict_silent(&mut self) {
        let before = self.conns.len();
        self.conns.retain(|_, c| !matches!(c, Conn::Opened(_)));
        self.stats.open_table_evictions += (before - self.conns.len()) as u64;
    }
}

/// `Some(true)` if `bytes` start an HTTP/1 request, `Some(false)` a response, `None` otherwise.
fn message_start(bytes: &[u8]) -> Option<bool> {
    const METHODS: &[&[u8]] =
        &[b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ", b"OPTIONS ", b"CONNECT ", b"TRACE "];
    if bytes.starts_with(b"HTTP/1.") {
        Some(false)
    } else if METHODS.iter().any(|m| bytes.starts_with(m)) {
        Some(true)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::capture::event::RawClose;

    fn open(conn_id: u64, tgid: u32) -> CaptureEvent {
        CaptureEvent::Open(RawOpen {
            conn_id,
            tgid,
            fd: 1_000_000, // no such fd: /proc lookups fail, the kernel's peer address is used
            ts_ns: 1,
            role: Role::Server,
            origin: Origin::Accept,
            listen_fd: None,
            remote: Some("10.0.0.1:4000".parse().unwrap()),
            unix: false,
            comm: "srv".into(),
        })
    }

    fn data(conn_id: u64) -> CaptureEvent {
        CaptureEvent::Data(RawChunk {
            conn_id,
            tgid: 1,
            fd: 1_000_000,
            ts_ns: 2,
            direction: Direction::Ingress,
            offset: 0,
            len: 3,
            payload: Bytes::from_static(b"GET"),
            tls: false,
            source: 1,
        })
    }

    #[test]
    fn announces_on_first_bytes_then_passes_data_and_close() {
        let mut e = Enricher::new(Filter::default(), 16);
        let mut out = Vec::new();
        e.push(open(1, std::process::id()), &mut out);
        assert!(out.is_empty(), "silent connections are not announced");
        e.push(data(1), &mut out);
        e.push(data(1), &mut out);
        e.push(
            CaptureEvent::Close(RawClose {
                conn_id: 1,
                tgid: 1,
                ts_ns: 3,
                ingress_bytes: 6,
                egress_bytes: 0,
            }),
            &mut out,
        );
        assert!(matches!(out[0], Event::Open(ref m) if m.remote == Some("10.0.0.1:4000".parse().unwrap())));
        assert!(matches!(out[1], Event::Data(_)));
        assert!(matches!(out[2], Event::Data(_)));
        assert!(matches!(out[3], Event::Close { conn_id: 1, ts_ns: 3 }));
    }

    #[test]
    fn filter_drops_and_mutes() {
        let mut e = Enricher::new(Filter { pids: vec![], ports: vec![80] }, 16);
        let mut out = Vec::new();
        e.push(open(1, 1), &mut out);
        e.push(data(1), &mut out);
        e.push(data(1), &mut out);
        assert!(out.is_empty());
        assert_eq!(e.stats.filtered_connections, 1);
        assert_eq!(e.take_mutes(), vec![(1, 1_000_000)]);
    }

    #[test]
    fn process_exit_closes_its_connections() {
        let mut e = Enricher::new(Filter::default(), 16);
        let mut out = Vec::new();
        e.push(open(1, 7), &mut out);
        e.push(data(1), &mut out);
        e.push(open(2, 8), &mut out);
        e.push(data(2), &mut out);
        out.clear();
        e.push(CaptureEvent::ProcExit { tgid: 7, ts_ns: 9 }, &mut out);
        assert_eq!(out.len(), 2);
        assert!(matches!(out[1], Event::Exit { tgid: 7 }));
        assert!(matches!(out[0], Event::Close { conn_id: 1, ts_ns: 9 }));
    }

    #[test]
    fn orphan_data_mid_message_is_counted() {
        let mut e = Enricher::new(Filter::default(), 16);
        let mut out = Vec::new();
        let CaptureEvent::Data(mut chunk) = data(5) else { unreachable!() };
        chunk.payload = Bytes::from_static(b"tail of a body");
        e.push(CaptureEvent::Data(chunk), &mut out);
        assert!(out.is_empty());
        assert_eq!(e.stats.orphan_chunks, 1);
    }

    #[test]
    fn orphan_data_starting_a_message_recovers_the_connection() {
        let mut e = Enricher::new(Filter::default(), 16);
        let mut out = Vec::new();
        let CaptureEvent::Data(mut chunk) = data(5) else { unreachable!() };
        chunk.payload = Bytes::from_static(b"HTTP/1.1 200 OK\r\n");
        chunk.direction = Direction::Egress;
        e.push(CaptureEvent::Data(chunk), &mut out);
        assert_eq!(e.stats.recovered_connections, 1);
        assert!(matches!(&out[0], Event::Open(m) if m.role == Role::Server && m.origin == Origin::Inferred));
        assert!(matches!(out[1], Event::Data(_)));
    }

    #[test]
    fn forgotten_connections_recover_on_their_next_message() {
        let mut e = Enricher::new(Filter::default(), 16);
        let mut out = Vec::new();
        e.push(open(1, 1), &mut out);
        e.push(data(1), &mut out);
        e.forget(1);
        out.clear();
        let CaptureEvent::Data(mut chunk) = data(1) else { unreachable!() };
        chunk.payload = Bytes::from_static(b"GET /again HTTP/1.1\r\n");
        e.push(CaptureEvent::Data(chunk), &mut out);
        assert!(matches!(&out[0], Event::Open(m) if m.role == Role::Server));
    }
}
