//! The HTTP/2 connection: a frame reader per direction, an HPACK decoder per direction, and the
//! table of open streams they feed. See the module doc of [`super`] for the contract.

mod read;

use std::collections::BTreeMap;

use super::frame::{self, FrameHeader, HEADER_LEN, Kind};
use super::hpack;
use super::stream::{Half, Stream};
use super::{H2Limits, H2Stats};
use crate::http::StreamSide;
use crate::http::exchange::{Anomaly, Exchange, Request};
use crate::reassembly::Segment;

#[derive(Debug)]
enum Read {
    /// Expecting the client connection preface (request side of a connection seen from its start).
    Preface { matched: usize },
    /// At or inside a 9-byte frame header.
    Header { buf: [u8; HEADER_LEN], have: usize },
    /// Collecting a frame's payload; bytes past `keep` are counted but not stored.
    Payload { hdr: FrameHeader, buf: Vec<u8>, keep: usize, left: u32 },
    /// Streaming a DATA frame into its stream's body. `pad`: padding length once known.
    Data { hdr: FrameHeader, left: u32, pad: Option<u32> },
    /// Skipping the rest of a frame's payload.
    Skip { left: u32 },
    /// Framing unknown: bytes are examined for a plausible frame sequence.
    Lost { buf: Vec<u8> },
}

#[derive(Clone, Copy, Debug)]
enum BlockKind {
    Headers { end_stream: bool },
    PushPromise { promised: u32 },
}

/// A header block spread over HEADERS (or `PUSH_PROMISE`) and CONTINUATION frames.
#[derive(Debug)]
struct Pending {
    stream: u32,
    kind: BlockKind,
    buf: Vec<u8>,
    /// The block outgrew the cap: its fields are lost.
    overflow: bool,
}

#[derive(Debug)]
struct Reader {
    state: Read,
    pending: Option<Pending>,
}

impl Reader {
    fn held_bytes(&self) -> usize {
        let state = match &self.state {
            Read::Payload { buf, .. } | Read::Lost { buf } => buf.capacity(),
            _ => 0,
        };
        state + self.pending.as_ref().map_or(0, |p| p.buf.capacity())
    }
}

/// How a connection's HTTP/2 began, as far as the capture saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// From the client preface on: every byte and every HPACK table is known.
    Preface,
    /// Capture joined an established connection: framing is found from plausible frame
    /// sequences and the HPACK tables begin unknown.
    MidConnection,
    /// After an HTTP/1.1 `Upgrade: h2c` and its `101`: both directions from their first
    /// HTTP/2 byte.
    Upgrade,
}

fn ix(side: StreamSide) -> usize {
    match side {
        StreamSide::Request => 0,
        StreamSide::Response => 1,
    }
}

fn other(side: StreamSide) -> StreamSide {
    match side {
        StreamSide::Request => StreamSide::Response,
        StreamSide::Response => StreamSide::Request,
    }
}

/// Parser state for one HTTP/2 connection.
#[derive(Debug)]
pub struct H2Connection {
    limits: H2Limits,
    readers: [Reader; 2],
    decoders: [hpack::Decoder; 2],
    streams: BTreeMap<u32, Stream>,
    /// Lowest client stream whose request was seen: a response on an unknown stream below it
    /// answers a request sent before capture began; above it, a stream already closed.
    first_request_stream: Option<u32>,
    stats: H2Stats,
    closed: bool,
}

impl H2Connection {
    #[must_use]
    pub fn new(limits: H2Limits, start: Start) -> Self {
        let complete = start != Start::MidConnection;
        let reader = |state| Reader { state, pending: None };
        let (request, response) = match start {
            Start::Preface | Start::Upgrade => {
                (Read::Preface { matched: 0 }, Read::Header { buf: [0; 9], have: 0 })
            }
            // The response side may have decided (a server sends its SETTINGS before reading
            // anything): the request side can still begin with the preface.
            Start::MidConnection => (Read::Preface { matched: 0 }, Read::Lost { buf: Vec::new() }),
        };
        let stats = H2Stats {
            connections: 1,
            h2c_upgrades: u64::from(start == Start::Upgrade),
            ..H2Stats::default()
        };
        H2Connection {
            limits,
            readers: [reader(request), reader(response)],
            decoders: [
                hpack::Decoder::new(limits.max_table_bytes, complete),
                hpack::Decoder::new(limits.max_table_bytes, complete),
            ],
            streams: BTreeMap::new(),
            first_request_stream: None,
            stats,
            closed: false,
        }
    }

    /// The same connection after its parser was given up (memory budget): framing and HPACK
    /// state are unknown, and it is not counted again.
    #[must_use]
    pub fn resumed(limits: H2Limits) -> Self {
        let mut conn = H2Connection::new(limits, Start::MidConnection);
        conn.readers[0].state = Read::Lost { buf: Vec::new() };
        conn.stats.connections = 0;
        conn
    }

    /// A connection upgraded from HTTP/1.1: `request` (which asked for h2c) is stream 1's, and
    /// `settings` the client's HTTP2-Settings payload (its SETTINGS frame without the header).
    #[must_use]
    pub fn upgraded(limits: H2Limits, request: Request, settings: Option<&[u8]>) -> Self {
        let mut conn = H2Connection::new(limits, Start::Upgrade);
        if let Some(payload) = settings {
            conn.settings(StreamSide::Request, payload);
        }
        conn.streams.insert(1, Stream::upgraded(request, limits.max_body_capture));
        conn.first_request_stream = Some(1);
        conn.stats.streams += 1;
        conn
    }

    #[must_use]
    pub fn stats(&self) -> &H2Stats {
        &self.stats
    }

    /// Bytes held: partial frames and header blocks, HPACK tables, open streams.
    #[must_use]
    pub fn held_bytes(&self) -> usize {
        self.readers.iter().map(Reader::held_bytes).sum::<usize>()
            + self.decoders.iter().map(hpack::Decoder::held_bytes).sum::<usize>()
            + self.streams.values().map(Stream::held_bytes).sum::<usize>()
    }

    /// Feeds the next in-order segment of one side; finished exchanges go to `out`.
    pub fn push(&mut self, side: StreamSide, seg: Segment, out: &mut Vec<Exchange>) {
        if self.closed {
            self.stats.skipped(seg.len());
            return;
        }
        match seg {
            Segment::Data { ts_ns, bytes } => self.read(side, ts_ns, bytes, out),
            Segment::Gap { ts_ns, len } => self.gap(side, ts_ns, len, out),
        }
        self.enforce_held(out);
        self.sync_hpack_counts();
    }

    /// The connection ended: streams still open are reported incomplete.
    pub fn close(&mut self, _ts_ns: u64, out: &mut Vec<Exchange>) {
        if self.closed {
            return;
        }
        self.closed = true;
        for r in &mut self.readers {
            if let Read::Lost { buf } = &r.state {
                self.stats.skipped(buf.len() as u64);
            }
            r.state = Read::Skip { left: 0 };
            r.pending = None;
        }
        for (_, s) in std::mem::take(&mut self.streams) {
            out.push(s.finish(Anomaly::Truncated));
        }
        self.sync_hpack_counts();
    }

    fn sync_hpack_counts(&mut self) {
        let [a, b] = &self.decoders;
        self.stats.hpack_undecodable_fields = a.counts.undecodable_fields + b.counts.undecodable_fields;
        self.stats.hpack_table_capped = a.counts.table_capped + b.counts.table_capped;
    }

    /// The last byte of a DATA frame was read.
    fn end_data(&mut self, side: StreamSide, hdr: FrameHeader, ts: u64, out: &mut Vec<Exchange>) {
        if hdr.has(frame::END_STREAM)
            && let Some(h) = self.half(hdr.stream, side)
        {
            h.end(ts);
            self.maybe_emit(hdr.stream, out);
        }
    }

    /// A whole non-DATA frame was read (`whole`: its payload is all in `payload`).
    fn end_frame(
        &mut self,
        side: StreamSide,
        hdr: FrameHeader,
        payload: &[u8],
        whole: bool,
        ts: u64,
        out: &mut Vec<Exchange>,
    ) {
        match hdr.kind {
            Kind::Headers | Kind::PushPromise => {
                let kind = if hdr.kind == Kind::Headers {
                    BlockKind::Headers { end_stream: hdr.has(frame::END_STREAM) }
                } else {
                    BlockKind::PushPromise { promised: 0 }
                };
                let (fragment, kind) = match (whole, header_fragment(hdr, payload, kind)) {
                    (true, Some((f, k))) => (f, k),
                    (_, parsed) => {
                        if whole {
                            self.stats.protocol_errors += 1;
                        } else {
                            self.stats.header_lists_too_large += 1;
                        }
                        let kind = parsed
                            .map_or(BlockKind::Headers { end_stream: hdr.has(frame::END_STREAM) }, |p| p.1);
                        self.readers[ix(side)].pending =
                            Some(Pending { stream: hdr.stream, kind, buf: Vec::new(), overflow: true });
                        if hdr.has(frame::END_HEADERS) {
                            self.complete_block(side, ts, out);
                        }
                        return;
                    }
                };
                self.readers[ix(side)].pending =
                    Some(Pending { stream: hdr.stream, kind, buf: fragment.to_vec(), overflow: false });
                if hdr.has(frame::END_HEADERS) {
                    self.complete_block(side, ts, out);
                }
            }
            Kind::Continuation => {
                let cap = self.block_cap();
                let Some(p) = self.readers[ix(side)].pending.as_mut().filter(|p| p.stream == hdr.stream)
                else {
                    self.stats.protocol_errors += 1;
                    // A lost block start: whatever it inserted into the table is unknown now.
                    self.decoders[ix(side)].forget();
                    return;
                };
                if !whole || p.buf.len() + payload.len() > cap {
                    if !p.overflow {
                        self.stats.header_lists_too_large += 1;
                    }
                    p.overflow = true;
                    p.buf = Vec::new();
                } else if !p.overflow {
                    p.buf.extend_from_slice(payload);
                }
                if hdr.has(frame::END_HEADERS) {
                    self.complete_block(side, ts, out);
                }
            }
            Kind::Settings if !hdr.has(frame::ACK) => self.settings(side, payload),
            Kind::RstStream => {
                self.stats.resets += 1;
                if let Some(s) = self.streams.remove(&hdr.stream) {
                    out.push(s.finish(Anomaly::StreamReset));
                }
            }
            Kind::GoAway => {
                self.stats.goaways += 1;
                if let Some(last) = payload.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                    let last = u32::from_be_bytes(last) & 0x7fff_ffff;
                    // Streams the receiver of GOAWAY opened above `last` were never processed.
                    let client_streams = side == StreamSide::Response;
                    let abandoned: Vec<u32> = self
                        .streams
                        .range(last.saturating_add(1)..)
                        .map(|(&id, _)| id)
                        .filter(|id| (id % 2 == 1) == client_streams)
                        .collect();
                    for id in abandoned {
                        if let Some(s) = self.streams.remove(&id) {
                            out.push(s.finish(Anomaly::StreamReset));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// SETTINGS sent by `side`: its HPACK table size bounds the other direction's encoder.
    fn settings(&mut self, side: StreamSide, payload: &[u8]) {
        for setting in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([setting[0], setting[1]]);
            let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
            if id == 1 {
                self.decoders[ix(other(side))].set_allowed(value as usize);
            }
        }
    }

    /// Largest encoded header block buffered: twice the list cap, so a list slightly over the cap
    /// still shows its first fields (encoding rarely expands a field list).
    fn block_cap(&self) -> usize {
        self.limits.max_header_list_bytes.saturating_mul(2)
    }

    /// A header block is whole: decode it and apply it to its stream.
    fn complete_block(&mut self, side: StreamSide, ts: u64, out: &mut Vec<Exchange>) {
        let Some(p) = self.readers[ix(side)].pending.take() else { return };
        let block = if p.overflow {
            self.decoders[ix(side)].forget();
            None
        } else {
            let b = self.decoders[ix(side)].decode(&p.buf, self.limits.max_header_list_bytes);
            if b.too_large {
                self.stats.header_lists_too_large += 1;
            }
            Some(b)
        };
        match p.kind {
            BlockKind::Headers { end_stream } => {
                let Some(stream) = self.stream_for_headers(side, p.stream, out) else { return };
                let half = match side {
                    StreamSide::Request => &mut stream.request,
                    StreamSide::Response => &mut stream.response,
                };
                if half.ended {
                    // Frames after END_STREAM on a stream we still hold: ignore.
                    self.stats.protocol_errors += 1;
                    return;
                }
                if half.is_interim() {
                    half.reset_interim();
                }
                apply(half, block, ts);
                if end_stream && !half.is_interim() {
                    half.end(ts);
                }
                self.maybe_emit(p.stream, out);
            }
            BlockKind::PushPromise { promised } => {
                if side != StreamSide::Response || promised == 0 {
                    self.stats.protocol_errors += 1;
                    return;
                }
                let body_limit = self.limits.max_body_capture;
                self.make_room(out);
                let mut s = Stream::new(body_limit);
                apply(&mut s.request, block, ts);
                s.request.end(ts);
                self.streams.insert(promised, s);
                self.stats.streams += 1;
            }
        }
    }

    /// The stream a HEADERS frame from `side` belongs to, opened if it is new.
    fn stream_for_headers(
        &mut self,
        side: StreamSide,
        id: u32,
        out: &mut Vec<Exchange>,
    ) -> Option<&mut Stream> {
        if !self.streams.contains_key(&id) {
            let open = match side {
                // A client HEADERS on a stream we do not hold starts a request.
                StreamSide::Request => {
                    self.first_request_stream = Some(self.first_request_stream.map_or(id, |f| f.min(id)));
                    true
                }
                // A response for a request sent before capture began (or a push we missed).
                StreamSide::Response => {
                    id.is_multiple_of(2) || self.first_request_stream.is_none_or(|f| id < f)
                }
            };
            if !open {
                return None;
            }
            self.make_room(out);
            self.streams.insert(id, Stream::new(self.limits.max_body_capture));
            self.stats.streams += 1;
        }
        self.streams.get_mut(&id)
    }

    /// Keeps the stream table under its cap by giving up the oldest stream.
    fn make_room(&mut self, out: &mut Vec<Exchange>) {
        while self.streams.len() >= self.limits.max_streams.max(1) {
            let Some((_, s)) = self.streams.pop_first() else { break };
            self.stats.stream_cap_evictions += 1;
            out.push(s.finish(Anomaly::Truncated));
        }
    }

    fn maybe_emit(&mut self, id: u32, out: &mut Vec<Exchange>) {
        if self.streams.get(&id).is_some_and(Stream::is_done)
            && let Some(s) = self.streams.remove(&id)
        {
            out.push(s.finish(Anomaly::Truncated));
        }
    }

    fn half(&mut self, id: u32, side: StreamSide) -> Option<&mut Half> {
        let s = self.streams.get_mut(&id)?;
        let h = match side {
            StreamSide::Request => &mut s.request,
            StreamSide::Response => &mut s.response,
        };
        (h.started && !h.ended).then_some(h)
    }

    /// A header block in progress will never complete.
    fn drop_pending(&mut self, side: StreamSide, ts: u64) {
        let i = ix(side);
        if let Some(p) = self.readers[i].pending.take() {
            self.decoders[i].forget();
            if let Some(h) = self.streams.get_mut(&p.stream).map(|s| match side {
                StreamSide::Request => &mut s.request,
                StreamSide::Response => &mut s.response,
            }) {
                h.lost_head(ts);
            }
        }
    }

    /// Keeps what the connection holds under its cap, giving up the largest streams first.
    fn enforce_held(&mut self, out: &mut Vec<Exchange>) {
        while self.held_bytes() > self.limits.max_held_bytes {
            let Some(id) = self.streams.iter().max_by_key(|(_, s)| s.held_bytes()).map(|(&id, _)| id) else {
                break;
            };
            if let Some(s) = self.streams.remove(&id) {
                self.stats.held_evictions += 1;
                out.push(s.finish(Anomaly::Truncated));
            }
        }
    }
}

fn apply(half: &mut Half, block: Option<hpack::Block>, ts: u64) {
    match block {
        Some(b) => half.block(b, ts),
        None => half.lost_head(ts),
    }
}

/// The header block fragment of a HEADERS or `PUSH_PROMISE` payload, without padding and
/// priority; `None` if the payload contradicts its own flags.
fn header_fragment(hdr: FrameHeader, payload: &[u8], kind: BlockKind) -> Option<(&[u8], BlockKind)> {
    let mut start = 0usize;
    let mut end = payload.len();
    if hdr.has(frame::PADDED) {
        let pad = usize::from(*payload.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    let kind = match kind {
        BlockKind::Headers { end_stream } => {
            if hdr.has(frame::PRIORITY) {
                start += 5;
            }
            BlockKind::Headers { end_stream }
        }
        BlockKind::PushPromise { .. } => {
            let id: [u8; 4] = payload.get(start..start + 4)?.try_into().ok()?;
            start += 4;
            BlockKind::PushPromise { promised: u32::from_be_bytes(id) & 0x7fff_ffff }
        }
    };
    Some((payload.get(start..end)?, kind))
}
