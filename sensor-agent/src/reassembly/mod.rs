//! Reassembly: per-connection, per-direction ordered byte streams.
//!
//! In: capture [`Event`]s (chunks carry a stream offset and a length, possibly with fewer captured
//! bytes than the length). Out: [`StreamEvent`]s where each direction's segments are contiguous and
//! in order; anything missing is an explicit [`Segment::Gap`] of known length, never silently
//! skipped. Out-of-order chunks wait in a bounded buffer; when it overflows, or at a tick or close,
//! the hole becomes a gap. Counts: duplicates, forced gaps, gap bytes, evictions.
mod stream;

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;

use crate::capture::{ConnMeta, Direction, Event, Origin};
pub use stream::{Stream, StreamLimits};

/// One in-order piece of a directional byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Captured bytes; `ts_ns` is the capture timestamp (monotonic ns).
    Data { ts_ns: u64, bytes: Bytes },
    /// `len` bytes exist in the stream here but were not captured (loss or truncation).
    Gap { ts_ns: u64, len: u64 },
}

impl Segment {
    /// Stream bytes the segment covers, captured or not.
    #[must_use]
    pub fn len(&self) -> u64 {
        match self {
            Segment::Data { bytes, .. } => bytes.len() as u64,
            Segment::Gap { len, .. } => *len,
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug)]
pub enum StreamEvent {
    Open(Arc<ConnMeta>),
    Segment { conn_id: u64, direction: Direction, segment: Segment },
    Close { conn_id: u64, ts_ns: u64 },
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ReassemblyStats {
    pub duplicate_bytes: u64,
    pub gap_bytes: u64,
    pub forced_gaps: u64,
    pub idle_evictions: u64,
    pub table_evictions: u64,
    /// Streams that stopped waiting for a hole because the global budget was reached.
    pub budget_flushes: u64,
    /// Out-of-order bytes held now, all connections together.
    pub pending_bytes: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct ReassemblyLimits {
    pub stream: StreamLimits,
    /// Connections tracked at once; beyond it the least recently active is closed.
    pub max_connections: usize,
    /// A connection silent for this long is closed (its process may have lost the close).
    pub idle_timeout_ns: u64,
    /// Out-of-order bytes held across all connections; beyond it the stream that pushed over
    /// the limit stops waiting (its holes become gaps).
    pub max_pending_total: u64,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            stream: StreamLimits::default(),
            max_connections: 65_536,
            idle_timeout_ns: 300_000_000_000,
            max_pending_total: 64 << 20,
        }
    }
}

struct Conn {
    streams: [Stream; 2],
    last_ns: u64,
}

pub struct Reassembler {
    limits: ReassemblyLimits,
    conns: HashMap<u64, Conn>,
    pub stats: ReassemblyStats,
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];

/// Gives up waiting for every hole of both directions (they become gaps) and emits what was held.
fn flush_streams(
    conn_id: u64,
    conn: &mut Conn,
    ts_ns: u64,
    stats: &mut ReassemblyStats,
    out: &mut Vec<StreamEvent>,
) {
    for direction in DIRECTIONS {
        let mut segments = Vec::new();
        let stream = &mut conn.streams[index(direction)];
        stats.pending_bytes -= stream.pending_bytes();
        stream.flush(ts_ns, &mut segments, stats);
        out.extend(segments.into_iter().map(|segment| StreamEvent::Segment { conn_id, direction, segment }));
    }
}

impl Reassembler {
    #[must_use]
    pub fn new(limits: ReassemblyLimits) -> Self {
        Reassembler { limits, conns: HashMap::new(), stats: ReassemblyStats::default() }
    }

    pub fn push(&mut self, event: Event, out: &mut Vec<StreamEvent>) {
        match event {
            Event::Open(meta) => {
                if self.conns.len() >= self.limits.max_connections {
                    self.evict_oldest(out);
                }
                // Connections recognised from their bytes were joined mid-way: their offsets start
                // wherever the first captured chunk is.
                let midway = meta.origin == Origin::Inferred;
                let conn = Conn {
                    streams: [
                        Stream::new(self.limits.stream, midway),
                        Stream::new(self.limits.stream, midway),
                    ],
                    last_ns: meta.opened_ns,
                };
                self.conns.insert(meta.conn_id, conn);
                out.push(StreamEvent::Open(meta));
            }
            Event::Data(chunk) => {
                let Some(conn) = self.conns.get_mut(&chunk.conn_id) else {
                    return;
                };
                conn.last_ns = conn.last_ns.max(chunk.ts_ns);
                let direction = chunk.direction;
                let mut segments = Vec::new();
                let stream = &mut conn.streams[index(direction)];
                let before = stream.pending_bytes();
                stream.push(
                    chunk.offset,
                    chunk.len,
                    chunk.payload,
                    chunk.ts_ns,
                    &mut segments,
                    &mut self.stats,
                );
                if self.stats.pending_bytes - before + stream.pending_bytes() > self.limits.max_pending_total
                {
                    self.stats.budget_flushes += 1;
                    stream.flush(chunk.ts_ns, &mut segments, &mut self.stats);
                }
                self.stats.pending_bytes = self.stats.pending_bytes - before + stream.pending_bytes();
                out.extend(segments.into_iter().map(|segment| StreamEvent::Segment {
                    conn_id: chunk.conn_id,
                    direction,
                    segment,
                }));
            }
            Event::Close { conn_id, ts_ns } => self.close(conn_id, ts_ns, out),
            // Process lifecycle concerns the TLS attacher; connections close through Close.
            Event::Exec { .. } | Event::Exit { .. } => {}
        }
    }

    /// Turns holes older than a tick into gaps and closes idle connections.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<StreamEvent>) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for conn_id in ids {
            let Some(conn) = self.conns.get_mut(&conn_id) else {
                continue;
            };
            if now_ns.saturating_sub(conn.last_ns) > self.limits.idle_timeout_ns {
                self.stats.idle_evictions += 1;
                self.close(conn_id, now_ns, out);
                continue;
            }
            flush_streams(conn_id, conn, now_ns, &mut self.stats, out);
        }
    }

    /// Closes every connection at its last activity (agent shutdown, end of a replay).
    pub fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        let mut open: Vec<(u64, u64)> = self.conns.iter().map(|(id, c)| (c.last_ns, *id)).collect();
        open.sort_unstable();
        for (last_ns, conn_id) in open {
            self.close(conn_id, last_ns, out);
        }
    }

    fn close(&mut self, conn_id: u64, ts_ns: u64, out: &mut Vec<StreamEvent>) {
        let Some(mut conn) = self.conns.remove(&conn_id) else {
            return;
        };
        flush_streams(conn_id, &mut conn, ts_ns, &mut self.stats, out);
        out.push(StreamEvent::Close { conn_id, ts_ns });
    }

    fn evict_oldest(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((&conn_id, conn)) = self.conns.iter().min_by_key(|(_, c)| c.last_ns) {
            let ts = conn.last_ns;
            self.stats.table_evictions += 1;
            self.close(conn_id, ts, out);
        }
    }
}
