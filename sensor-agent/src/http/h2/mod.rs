//! HTTP/2 (RFC 9113) for one captured TCP connection, with the same shape as the HTTP/1 parser:
//! in-order [`Segment`]s per direction in, [`Exchange`]s out, one per stream.
//!
//! **In:** both directions as segments (captured bytes or gaps), split anywhere, then `close()`.
//! How the connection began ([`Start`]) says what is known: from the client preface (framing and
//! both HPACK tables known), after an h2c upgrade (likewise, with stream 1's request read as
//! HTTP/1.1), or mid-connection (framing found from plausible frame sequences, HPACK tables
//! unknown).
//!
//! **Out:** an [`Exchange`] per stream: the request from `:method`, `:path` (`:authority` for
//! CONNECT), the other fields and the DATA body; the response from `:status`, its fields, body
//! and trailers (appended after the fields). A stream leaves as soon as `END_STREAM` was seen in
//! both directions; `RST_STREAM`, a GOAWAY that abandons it, the stream cap, the memory cap and
//! `close()` send what is known with `truncated` (plus `stream_reset` for resets). Frames:
//! DATA, HEADERS, CONTINUATION, `PUSH_PROMISE` (a pushed stream's request is its promise),
//! SETTINGS (`SETTINGS_HEADER_TABLE_SIZE`), `RST_STREAM`, GOAWAY; PING, `WINDOW_UPDATE`, PRIORITY and
//! extension frames are skipped; padding and priority fields are removed.
//!
//! **Never guessed:** header fields that reference HPACK entries the observer never saw are left
//! out and the message carries `hpack_undecodable` (see [`hpack`]); a status that cannot be
//! decoded is reported as 0. A gap inside a DATA frame keeps framing (the body is marked as in
//! HTTP/1); a gap anywhere else loses it: the side's HPACK table becomes unknown, its messages in
//! flight are marked `body_gap`, and bytes are skipped until a plausible frame sequence
//! ([`frame::chain`]) begins.
//!
//! **Counted** in [`H2Stats`]. **Bounded** by [`H2Limits`]: open streams, header list size (also
//! the largest header block buffered), HPACK table bytes per direction, bytes held overall; body
//! capture by `Limits::max_body_capture`, with exact sizes.
//!
//! [`Segment`]: crate::reassembly::Segment
//! [`Exchange`]: crate::http::Exchange

mod conn;
pub(crate) mod frame;
pub(crate) mod hpack;
mod stream;

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod tests;

pub use conn::{H2Connection, Start};

use super::Limits;

/// Per-connection bounds for HTTP/2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H2Limits {
    /// Streams tracked at once; a new one beyond gives up the oldest.
    pub max_streams: usize,
    /// Largest header list kept (RFC 9113 §6.5.2 accounting); encoded header blocks are buffered
    /// up to twice this.
    pub max_header_list_bytes: usize,
    /// HPACK dynamic table bytes kept per direction, whatever the peers agree on.
    pub max_table_bytes: usize,
    /// Everything the connection holds; beyond, the streams holding most are given up.
    pub max_held_bytes: usize,
    pub max_body_capture: usize,
}

impl H2Limits {
    /// HTTP/2 bounds consistent with the HTTP/1 ones.
    #[must_use]
    pub fn from_limits(limits: &Limits) -> Self {
        H2Limits {
            max_streams: 128,
            max_header_list_bytes: limits.max_head_bytes,
            max_table_bytes: 64 * 1024,
            max_held_bytes: 4 << 20,
            max_body_capture: limits.max_body_capture,
        }
    }
}

impl Default for H2Limits {
    fn default() -> Self {
        H2Limits::from_limits(&Limits::default())
    }
}

/// HTTP/2 counts (cumulative; summed over connections by the stage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct H2Stats {
    /// Connections parsed as HTTP/2.
    pub connections: u64,
    /// Of which reached through `Upgrade: h2c`.
    pub h2c_upgrades: u64,
    pub frames: u64,
    pub streams: u64,
    /// `RST_STREAM` frames.
    pub resets: u64,
    pub goaways: u64,
    /// Times framing was lost and searched for again.
    pub resyncs: u64,
    /// Bytes that belong to no reported message (searched past, gaps outside bodies, DATA of
    /// streams never opened, anything after close).
    pub bytes_skipped: u64,
    pub hpack_undecodable_fields: u64,
    /// HPACK table size updates beyond `max_table_bytes`.
    pub hpack_table_capped: u64,
    /// Header blocks beyond `max_header_list_bytes` (fields dropped).
    pub header_lists_too_large: u64,
    /// Streams given up because `max_streams` were open.
    pub stream_cap_evictions: u64,
    /// Streams given up because the connection held more than `max_held_bytes`.
    pub held_evictions: u64,
    /// Frames that break the protocol's rules (interleaved header blocks, bad padding, ...).
    pub protocol_errors: u64,
}

impl H2Stats {
    pub fn accumulate(&mut self, o: &H2Stats) {
        self.connections += o.connections;
        self.h2c_upgrades += o.h2c_upgrades;
        self.frames += o.frames;
        self.streams += o.streams;
        self.resets += o.resets;
        self.goaways += o.goaways;
        self.resyncs += o.resyncs;
        self.bytes_skipped = self.bytes_skipped.saturating_add(o.bytes_skipped);
        self.hpack_undecodable_fields += o.hpack_undecodable_fields;
        self.hpack_table_capped += o.hpack_table_capped;
        self.header_lists_too_large += o.header_lists_too_large;
        self.stream_cap_evictions += o.stream_cap_evictions;
        self.held_evictions += o.held_evictions;
        self.protocol_errors += o.protocol_errors;
    }

    /// Gap lengths are attacker-influenced: saturate.
    fn skipped(&mut self, n: u64) {
        self.bytes_skipped = self.bytes_skipped.saturating_add(n);
    }
}
