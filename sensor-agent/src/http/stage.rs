//! The HTTP stage over all connections: routes each direction's segments to the request or the
//! response side of that connection's parser, according to the process's role. Each connection's
//! parser is HTTP/1.x or HTTP/2, decided from its first bytes ([`super::protocol`]).
use std::{collections::HashMap, sync::Arc};

use super::{Connection, Exchange, HttpStats, Limits, StreamSide, h2::H2Stats};
use crate::{
    capture::ConnMeta,
    reassembly::{Segment, StreamEvent},
};

/// An exchange with the connection it was seen on.
#[derive(Debug)]
pub struct Observed {
    pub meta: Arc<ConnMeta>,
    pub exchange: Exchange,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct HttpStageStats {
    pub exchanges: u64,
    /// The parsers' own counts, summed over connections.
    #[serde(flatten)]
    pub parsers: HttpStats,
    /// Connections that switched away from HTTP/1 (WebSocket, CONNECT tunnels, h2c).
    pub upgraded_connections: u64,
    /// HTTP/2 connections' counts, summed.
    pub h2: H2Stats,
    /// Parsers reset because the agent-wide memory budget was exceeded (their partial messages
    /// are reported incomplete; parsing resumes at the next message).
    pub memory_resets: u64,
    /// Bytes held by all parsers now.
    pub held_bytes: u64,
}

struct Tracked {
    meta: Arc<ConnMeta>,
    conn: Connection,
    /// What `conn` held after its last push (charged to the budget).
    held: usize,
    last_ns: u64,
}

pub struct HttpStage {
    limits: Limits,
    conns: HashMap<u64, Tracked>,
    /// Totals of connections already closed; open ones are added in [`HttpStage::stats`].
    closed: HttpStageStats,
    budget: usize,
    held: usize,
}

impl HttpStage {
    /// `budget`: bytes all parsers together may hold before the largest are reset.
    #[must_use]
    pub fn new(limits: Limits, budget: usize) -> Self {
        HttpStage { limits, conns: HashMap::new(), closed: HttpStageStats::default(), budget, held: 0 }
    }

    pub fn push(&mut self, event: StreamEvent, out: &mut Vec<Observed>) {
        let mut exchanges = Vec::new();
        match event {
            StreamEvent::Open(meta) => {
                let conn = Connection::new(self.limits);
                let last_ns = meta.opened_ns;
                if let Some(old) = self.conns.insert(meta.conn_id, Tracked { meta, conn, held: 0, last_ns }) {
                    self.held -= old.held;
                }
            }
            StreamEvent::Segment { conn_id, direction, segment } => {
                let Some(t) = self.conns.get_mut(&conn_id) else {
                    return;
                };
                let side = if direction == t.meta.role.request_direction() {
                    StreamSide::Request
                } else {
                    StreamSide::Response
                };
                t.last_ns = match &segment {
                    Segment::Data { ts_ns, .. } | Segment::Gap { ts_ns, .. } => *ts_ns,
                };
                t.conn.push(side, segment, &mut exchanges);
                let held = t.conn.held_bytes();
                self.held = self.held - t.held + held;
                t.held = held;
                let meta = Arc::clone(&t.meta);
                self.emit(&meta, exchanges, out);
                if self.held > self.budget {
                    self.enforce_budget(out);
                }
            }
            StreamEvent::Close { conn_id, ts_ns } => {
                let Some(mut t) = self.conns.remove(&conn_id) else {
                    return;
                };
                self.held -= t.held;
                t.conn.close(ts_ns, &mut exchanges);
                add(&mut self.closed, &t.conn);
                self.emit(&t.meta, exchanges, out);
            }
        }
    }

    fn emit(&mut self, meta: &Arc<ConnMeta>, exchanges: Vec<Exchange>, out: &mut Vec<Observed>) {
        self.closed.exchanges += exchanges.len() as u64;
        out.extend(exchanges.into_iter().map(|exchange| Observed { meta: Arc::clone(meta), exchange }));
    }

    /// Resets the parsers holding the most until the total is well under budget. A reset
    /// connection reports what it had as incomplete and resynchronises on its next message, so
    /// one slow or huge sender cannot take the memory every other connection needs.
    fn enforce_budget(&mut self, out: &mut Vec<Observed>) {
        let mut by_size: Vec<(usize, u64)> = self.conns.iter().map(|(id, t)| (t.held, *id)).collect();
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        for (_, conn_id) in by_size {
            if self.held <= self.budget / 2 {
                break;
            }
            let Some(t) = self.conns.get_mut(&conn_id) else { continue };
            let mut exchanges = Vec::new();
            let fresh = t.conn.reset();
            let mut old = std::mem::replace(&mut t.conn, fresh);
            old.close(t.last_ns, &mut exchanges);
            self.held -= t.held;
            t.held = 0;
            let meta = Arc::clone(&t.meta);
            add(&mut self.closed, &old);
            self.closed.memory_resets += 1;
            self.emit(&meta, exchanges, out);
        }
    }

    #[must_use]
    pub fn stats(&self) -> HttpStageStats {
        let mut total = self.closed;
        for t in self.conns.values() {
            add(&mut total, &t.conn);
        }
        total.held_bytes = self.held as u64;
        total
    }
}

fn add(total: &mut HttpStageStats, conn: &Connection) {
    total.parsers.accumulate(conn.http1_stats());
    if let Some(h2) = conn.h2_stats() {
        total.h2.accumulate(h2);
    }
    total.upgraded_connections += u64::from(conn.is_upgraded());
}
