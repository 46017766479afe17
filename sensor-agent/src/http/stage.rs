//! The HTTP stage over all connections: routes each direction's segments to the request or the
//! response side of that connection's parser, according to the process's role.
use std::{collections::HashMap, sync::Arc};

use super::{Exchange, HttpConnection, Limits, StreamSide};
use crate::{capture::ConnMeta, reassembly::StreamEvent};

/// An exchange with the connection it was seen on.
#[derive(Debug)]
pub struct Observed {
    pub meta: Arc<ConnMeta>,
    pub exchange: Exchange,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct HttpStageStats {
    pub exchanges: u64,
    pub parse_errors: u64,
    pub resyncs: u64,
    pub bytes_skipped: u64,
    pub unmatched_responses: u64,
    pub pending_overflow: u64,
    pub partial_heads_dropped: u64,
    /// Connections that switched away from HTTP/1 (WebSocket, CONNECT tunnels).
    pub upgraded_connections: u64,
}

struct Tracked {
    meta: Arc<ConnMeta>,
    conn: HttpConnection,
}

pub struct HttpStage {
    limits: Limits,
    conns: HashMap<u64, Tracked>,
    /// Totals of connections already closed; open ones are added in [`HttpStage::stats`].
    closed: HttpStageStats,
}

impl HttpStage {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        HttpStage {
            limits,
            conns: HashMap::new(),
            closed: HttpStageStats::default(),
        }
    }

    pub fn push(&mut self, event: StreamEvent, out: &mut Vec<Observed>) {
        let mut exchanges = Vec::new();
        let meta = match event {
            StreamEvent::Open(meta) => {
                let conn = HttpConnection::new(self.limits);
                self.conns.insert(meta.conn_id, Tracked { meta, conn });
                return;
            }
            StreamEvent::Segment {
                conn_id,
                direction,
                segment,
            } => {
                let Some(t) = self.conns.get_mut(&conn_id) else {
                    return;
                };
                let side = if direction == t.meta.role.request_direction() {
                    StreamSide::Request
                } else {
                    StreamSide::Response
                };
                t.conn.push(side, segment, &mut exchanges);
                Arc::clone(&t.meta)
            }
            StreamEvent::Close { conn_id, ts_ns } => {
                let Some(mut t) = self.conns.remove(&conn_id) else {
                    return;
                };
                t.conn.close(ts_ns, &mut exchanges);
                add(&mut self.closed, &t.conn);
                t.meta
            }
        };
        self.closed.exchanges += exchanges.len() as u64;
        out.extend(exchanges.into_iter().map(|exchange| Observed {
            meta: Arc::clone(&meta),
            exchange,
        }));
    }

    #[must_use]
    pub fn stats(&self) -> HttpStageStats {
        let mut total = self.closed;
        for t in self.conns.values() {
            add(&mut total, &t.conn);
        }
        total
    }
}

fn add(total: &mut HttpStageStats, conn: &HttpConnection) {
    let s = conn.stats();
    total.parse_errors += s.parse_errors;
    total.resyncs += s.resyncs;
    total.bytes_skipped += s.bytes_skipped;
    total.unmatched_responses += s.unmatched_responses;
    total.pending_overflow += s.pending_overflow;
    total.partial_heads_dropped += s.partial_heads_dropped;
    total.upgraded_connections += u64::from(conn.is_upgraded());
}
