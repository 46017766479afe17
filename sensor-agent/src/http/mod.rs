//! HTTP/1.x parsing for one captured TCP connection. HTTP/2 (and gRPC over it) is in [`h2`];
//! [`protocol`] decides per connection which one applies.
//!
//! **In:** the two directions of the connection as in-order [`Segment`]s,
//! split anywhere, each either captured bytes or a gap of known length that
//! was not captured; then one `close()`. Capture may start mid-connection.
//!
//! **Out:** [`Exchange`]s — a request paired FIFO with its response, in the
//! order responses complete. A request that never gets a response is emitted
//! with `response: None` at `close()` or when more than
//! `max_pending_requests` are waiting; a response with no waiting request is
//! emitted with `request: None`. Interim 1xx responses (except 101) are
//! consumed silently. After a 101 or a 2xx to CONNECT the connection is no
//! longer HTTP/1 and nothing more is parsed.
//!
//! Results do not depend on how the bytes are split into segments.
//! Irregular but parseable messages are emitted with [`Anomaly`] flags; bytes
//! that cannot be framed are skipped until something that looks like a
//! message start ("resync").
//!
//! **Counted** in [`HttpStats`] (cumulative):
//! - `parse_errors`: heads httparse rejects, oversized heads, bodies whose
//!   length cannot be determined (invalid/conflicting Content-Length,
//!   unusable request Transfer-Encoding, broken chunk framing);
//! - `resyncs`: times the parser lost framing and had to search for a start
//!   (after a parse error, a gap outside a body, or data seen mid-message
//!   when capture began);
//! - `bytes_skipped`: captured or gap bytes that belong to no emitted
//!   message (searched past, dropped partial and oversized heads, gap bytes
//!   beyond a body or outside any message, everything after an upgrade or
//!   close). Blank lines between messages and interim 1xx responses are
//!   legitimate traffic and not counted;
//! - `unmatched_responses`, `pending_overflow`: see above;
//! - `partial_heads_dropped`: heads cut off by a gap or by close.
//!
//! Memory per connection is bounded by [`Limits`]: per direction one head
//! buffer (or, after a CONNECT/Upgrade request, one buffer of request bytes
//! held until the response says whether they are still HTTP), one body
//! capture, and the pending-request queue, each capped.
//!
//! `Body::captured` is always a contiguous prefix of the body: capture stops
//! at the first gap inside it, while `Body::size` keeps counting.
//!
//! [`Segment`]: crate::reassembly::Segment

mod chunked;
pub mod decoding;
mod exchange;
pub mod grpc;
pub mod h2;
mod head;
mod pairing;
mod parser;
pub mod protocol;
mod resync;
pub mod stage;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod loss_tests;
#[cfg(test)]
mod tests;

pub use exchange::{Anomaly, Body, Exchange, Headers, Request, Response, Version};
pub use pairing::{Handover, HttpConnection};
pub use protocol::Connection;

/// Per-connection bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (start line + fields) buffered; larger heads are reported
    /// with [`Anomaly::HeadTooLarge`] and skipped.
    pub max_head_bytes: usize,
    /// Body bytes kept in [`Body::captured`]; `Body::size` is exact regardless.
    pub max_body_capture: usize,
    /// Requests waiting for a response before the oldest is given up on.
    pub max_pending_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head_bytes: 64 * 1024, max_body_capture: 64 * 1024, max_pending_requests: 64 }
    }
}

/// Which direction of the connection a segment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamSide {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HttpStats {
    pub parse_errors: u64,
    pub resyncs: u64,
    pub bytes_skipped: u64,
    pub unmatched_responses: u64,
    pub pending_overflow: u64,
    pub partial_heads_dropped: u64,
}

impl HttpStats {
    /// Adds another connection's counts (totals across connections).
    pub fn accumulate(&mut self, other: &HttpStats) {
        self.parse_errors += other.parse_errors;
        self.resyncs += other.resyncs;
        self.bytes_skipped += other.bytes_skipped;
        self.unmatched_responses += other.unmatched_responses;
        self.pending_overflow += other.pending_overflow;
        self.partial_heads_dropped += other.partial_heads_dropped;
    }
}

impl HttpStats {
    /// Gap lengths are attacker-influenced u64s: saturate rather than wrap.
    pub(crate) fn skipped(&mut self, n: u64) {
        self.bytes_skipped = self.bytes_skipped.saturating_add(n);
    }
}
