//! Reading one direction's bytes into frames: the preface, frame headers, payloads (DATA
//! streamed into bodies, the rest buffered or skipped), gaps, and the search for a frame boundary
//! when framing is lost.

use bytes::Bytes;

use super::{BlockKind, H2Connection, Pending, Read, ix};
use crate::http::StreamSide;
use crate::http::exchange::Exchange;
use crate::http::h2::frame::{self, Chain, FrameHeader, HEADER_LEN, Kind};

/// Bytes examined at most while looking for a frame boundary; beyond, the oldest are dropped.
const LOST_WINDOW: usize = 64 * 1024;
/// Payload kept of a control frame (SETTINGS, GOAWAY, `RST_STREAM`); the rest is skipped.
const MAX_CONTROL_PAYLOAD: usize = 16 * 1024;

enum Step {
    Used(usize),
    /// `used` bytes consumed; `replay` must be read next (framing found again).
    Replay {
        used: usize,
        replay: Bytes,
    },
}

impl H2Connection {
    pub(super) fn read(&mut self, side: StreamSide, ts: u64, bytes: Bytes, out: &mut Vec<Exchange>) {
        // Chunks to read, last first: a found frame boundary is read before the rest.
        let mut work = vec![bytes];
        while let Some(chunk) = work.pop() {
            let mut pos = 0;
            while pos < chunk.len() {
                match self.step(side, ts, &chunk, pos, out) {
                    Step::Used(n) => pos += n,
                    Step::Replay { used, replay } => {
                        pos += used;
                        work.push(chunk.slice(pos..));
                        work.push(replay);
                        break;
                    }
                }
            }
        }
    }

    /// Consumes bytes of `chunk` from `pos` according to the side's state.
    fn step(
        &mut self,
        side: StreamSide,
        ts: u64,
        chunk: &Bytes,
        pos: usize,
        out: &mut Vec<Exchange>,
    ) -> Step {
        let input = chunk.get(pos..).unwrap_or_default();
        let i = ix(side);
        match &mut self.readers[i].state {
            Read::Preface { matched } => {
                let want = frame::PREFACE.get(*matched..).unwrap_or_default();
                let n = want.len().min(input.len());
                if input.get(..n) != want.get(..n) {
                    // Not the preface after all: find frames the hard way.
                    let matched = *matched as u64;
                    self.stats.skipped(matched);
                    self.lose_framing(side, ts, out);
                    return Step::Used(0);
                }
                *matched += n;
                if *matched == frame::PREFACE.len() {
                    self.readers[i].state = Read::Header { buf: [0; 9], have: 0 };
                }
                Step::Used(n)
            }
            Read::Header { buf, have } => {
                let n = (HEADER_LEN - *have).min(input.len());
                buf[*have..*have + n].copy_from_slice(&input[..n]);
                *have += n;
                if *have == HEADER_LEN {
                    let hdr = FrameHeader::parse(buf);
                    self.stats.frames += 1;
                    self.begin_frame(side, hdr, ts, out);
                }
                Step::Used(n)
            }
            Read::Payload { left, buf, keep, .. } => {
                let n = (*left as usize).min(input.len());
                let room = keep.saturating_sub(buf.len()).min(n);
                buf.extend_from_slice(&input[..room]);
                *left -= n as u32;
                if *left == 0 {
                    let Read::Payload { hdr, buf, keep, .. } =
                        std::mem::replace(&mut self.readers[i].state, header_state())
                    else {
                        return Step::Used(n);
                    };
                    let whole = buf.len() == hdr.len as usize && buf.len() <= keep;
                    self.end_frame(side, hdr, &buf, whole, ts, out);
                }
                Step::Used(n)
            }
            Read::Data { .. } => self.step_data(side, ts, chunk, pos, out),
            Read::Skip { left } => {
                let n = (*left as usize).min(input.len());
                *left -= n as u32;
                if *left == 0 {
                    self.readers[i].state = header_state();
                }
                Step::Used(n)
            }
            Read::Lost { .. } => self.step_lost(side, input),
        }
    }

    /// Streams DATA frame bytes into the stream's body.
    fn step_data(
        &mut self,
        side: StreamSide,
        ts: u64,
        chunk: &Bytes,
        pos: usize,
        out: &mut Vec<Exchange>,
    ) -> Step {
        let input = chunk.get(pos..).unwrap_or_default();
        let i = ix(side);
        let Read::Data { hdr, left, pad } = &mut self.readers[i].state else { return Step::Used(0) };
        let hdr = *hdr;
        let Some(padding) = *pad else {
            // The pad length byte of a PADDED frame.
            let p = u32::from(input.first().copied().unwrap_or(0));
            *left -= 1;
            if p > *left {
                self.stats.protocol_errors += 1;
                self.readers[i].state = Read::Skip { left: *left };
                return Step::Used(1);
            }
            *pad = Some(p);
            if *left == 0 {
                self.readers[i].state = header_state();
                self.end_data(side, hdr, ts, out);
            }
            return Step::Used(1);
        };
        let n = (*left as usize).min(input.len());
        let data = (left.saturating_sub(padding) as usize).min(n);
        *left -= n as u32;
        let done = *left == 0;
        if data > 0 {
            match self.half(hdr.stream, side) {
                Some(h) => h.data(chunk, pos, pos + data, ts),
                None => self.stats.skipped(data as u64),
            }
        }
        if done {
            self.readers[i].state = header_state();
            self.end_data(side, hdr, ts, out);
        }
        Step::Used(n)
    }

    /// Examines bytes for a plausible frame boundary; once found, reading resumes there.
    fn step_lost(&mut self, side: StreamSide, input: &[u8]) -> Step {
        let i = ix(side);
        let Read::Lost { buf } = &mut self.readers[i].state else { return Step::Used(0) };
        let n = (LOST_WINDOW - buf.len()).min(input.len());
        buf.extend_from_slice(&input[..n]);
        let full = buf.len() >= LOST_WINDOW;
        match search(buf, full) {
            Search::Found(at) => {
                self.stats.skipped(at as u64);
                let replay = Bytes::from(buf.split_off(at));
                self.readers[i].state = header_state();
                Step::Replay { used: n, replay }
            }
            Search::Wait(at) => {
                self.stats.skipped(at as u64);
                buf.drain(..at);
                Step::Used(n)
            }
        }
    }

    /// A frame header was read: choose how its payload is consumed.
    fn begin_frame(&mut self, side: StreamSide, hdr: FrameHeader, ts: u64, out: &mut Vec<Exchange>) {
        let i = ix(side);
        if self.readers[i].pending.is_some() && hdr.kind != Kind::Continuation {
            // RFC 9113 §6.10: nothing may interleave a header block.
            self.stats.protocol_errors += 1;
            self.drop_pending(side, ts);
        }
        let block_cap = self.block_cap();
        let state = match hdr.kind {
            Kind::Data => {
                Read::Data { hdr, left: hdr.len, pad: if hdr.has(frame::PADDED) { None } else { Some(0) } }
            }
            Kind::Headers | Kind::PushPromise | Kind::Continuation => {
                let keep = if hdr.len as usize > block_cap { 0 } else { hdr.len as usize };
                Read::Payload { hdr, buf: Vec::with_capacity(keep), keep, left: hdr.len }
            }
            Kind::Settings | Kind::RstStream | Kind::GoAway => {
                let keep = (hdr.len as usize).min(MAX_CONTROL_PAYLOAD);
                Read::Payload { hdr, buf: Vec::with_capacity(keep), keep, left: hdr.len }
            }
            Kind::Ping | Kind::WindowUpdate | Kind::Priority | Kind::Unknown(_) => {
                Read::Skip { left: hdr.len }
            }
        };
        let empty = hdr.len == 0;
        self.readers[i].state = if empty { header_state() } else { state };
        if empty {
            match hdr.kind {
                Kind::Data => self.end_data(side, hdr, ts, out),
                Kind::Headers
                | Kind::PushPromise
                | Kind::Continuation
                | Kind::Settings
                | Kind::RstStream
                | Kind::GoAway => {
                    self.end_frame(side, hdr, &[], true, ts, out);
                }
                _ => {}
            }
        }
    }

    pub(super) fn gap(&mut self, side: StreamSide, ts: u64, len: u64, out: &mut Vec<Exchange>) {
        let i = ix(side);
        match &mut self.readers[i].state {
            Read::Data { hdr, left, pad } if len <= u64::from(*left) => {
                let (hdr, padding) = (*hdr, pad.unwrap_or(0));
                let data_left = u64::from(left.saturating_sub(padding));
                // A lost pad length byte leaves the padding unknown: counted as body, which is
                // marked incomplete anyway.
                *pad = Some(padding);
                *left -= len as u32;
                let done = *left == 0;
                let in_data = len.min(data_left);
                match self.half(hdr.stream, side) {
                    Some(h) => h.gap(in_data, ts),
                    None => self.stats.skipped(in_data),
                }
                self.stats.skipped(len - in_data);
                if done {
                    self.readers[i].state = header_state();
                    self.end_data(side, hdr, ts, out);
                }
            }
            Read::Skip { left } if len <= u64::from(*left) => {
                *left -= len as u32;
                self.stats.skipped(len);
                if *left == 0 {
                    self.readers[i].state = header_state();
                }
            }
            Read::Payload { hdr, left, .. } if len <= u64::from(*left) => {
                // This frame's content is lost; the next frame starts where it said.
                let (hdr, rest) = (*hdr, *left - len as u32);
                self.stats.skipped(len + u64::from(hdr.len - (rest + len as u32)));
                self.readers[i].state = if rest == 0 { header_state() } else { Read::Skip { left: rest } };
                if matches!(hdr.kind, Kind::Headers | Kind::PushPromise | Kind::Continuation) {
                    if self.readers[i].pending.is_none() {
                        self.readers[i].pending = Some(Pending {
                            stream: hdr.stream,
                            kind: BlockKind::Headers { end_stream: hdr.has(frame::END_STREAM) },
                            buf: Vec::new(),
                            overflow: true,
                        });
                    }
                    self.drop_pending(side, ts);
                }
            }
            Read::Lost { buf } => {
                // What was examined before the gap can no longer begin a frame.
                self.stats.skipped(buf.len() as u64 + len);
                buf.clear();
            }
            Read::Data { hdr, left, pad } => {
                let (hdr, data_left) = (*hdr, u64::from(left.saturating_sub(pad.unwrap_or(0))));
                if let Some(h) = self.half(hdr.stream, side) {
                    h.gap(data_left, ts);
                }
                self.stats.skipped(len - data_left);
                self.lose_framing(side, ts, out);
            }
            _ => {
                self.stats.skipped(len);
                self.lose_framing(side, ts, out);
            }
        }
    }

    /// Framing of `side` is lost (a gap, or bytes that are not what they had to be): the HPACK
    /// table becomes unknown, every message in flight on that side may have lost frames, and
    /// the reader looks for a plausible frame boundary.
    fn lose_framing(&mut self, side: StreamSide, ts: u64, _out: &mut Vec<Exchange>) {
        let i = ix(side);
        self.stats.resyncs += 1;
        self.drop_pending(side, ts);
        self.decoders[i].forget();
        for s in self.streams.values_mut() {
            let h = match side {
                StreamSide::Request => &mut s.request,
                StreamSide::Response => &mut s.response,
            };
            if h.started && !h.ended {
                h.gap(0, ts);
            }
        }
        self.readers[i].state = Read::Lost { buf: Vec::new() };
    }
}

enum Search {
    /// A plausible frame sequence starts here.
    Found(usize),
    /// Nothing yet; the bytes before this offset can be dropped.
    Wait(usize),
}

/// Looks for the first offset where plausible frames chain. When the window is full, a
/// candidate that still needs more bytes is given up so the search always moves on.
fn search(buf: &[u8], full: bool) -> Search {
    for at in 0..buf.len() {
        match frame::chain(&buf[at..]) {
            Chain::Yes => return Search::Found(at),
            Chain::NeedMore if !full => return Search::Wait(at),
            Chain::NeedMore | Chain::No => {}
        }
    }
    Search::Wait(buf.len())
}

fn header_state() -> Read {
    Read::Header { buf: [0; HEADER_LEN], have: 0 }
}
