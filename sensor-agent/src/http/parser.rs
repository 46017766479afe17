//! One direction of a connection: a state machine that turns in-order
//! segments into complete messages and hands them to the pairing context.
//!
//! Input bytes are consumed in place; the only buffers are the head being
//! assembled (≤ `max_head_bytes`), the resync candidate (≤ 32 bytes), the
//! capture of the body (≤ `max_body_capture`) and, on the request side after
//! a CONNECT/Upgrade request, the bytes held back until the response says
//! whether they are still HTTP (≤ `max_head_bytes`). Every transition
//! consumes input or moves to a state that will, so no input can stall it.

use std::collections::VecDeque;

use bytes::Bytes;

use super::chunked::{BodyEnd, BodyState, ChunkedDecoder};
use super::exchange::{Anomaly, Body, BodyBuilder, note};
use super::head::{self, Framing, Head, HeadParse, StartLine};
use super::pairing::{Ctx, is_interim};
use super::resync::{Input, Seek, Spill};
use super::{Limits, StreamSide};
use crate::reassembly::Segment;

/// Bytes reserved for a head when its start line arrives (most heads are shorter).
const HEAD_RESERVE: usize = 512;

#[derive(Debug)]
struct HeadBuf {
    spill: Spill,
    start_ns: u64,
    /// Progress towards an empty line: 0 none, 1 after LF, 2 after LF CR.
    blank: u8,
    first_line_checked: bool,
}

impl HeadBuf {
    fn new(start_ns: u64) -> Self {
        HeadBuf { spill: Spill::default(), start_ns, blank: 0, first_line_checked: false }
    }
}

/// A message whose head is parsed and whose body is still arriving.
#[derive(Debug)]
struct Message {
    head: Head,
    start_ns: u64,
    last_ns: u64,
    anomalies: Vec<Anomaly>,
    body: BodyBuilder,
    state: BodyState,
}

#[derive(Debug)]
enum State {
    /// At a known message boundary.
    Idle,
    Seek(Seek),
    Head(HeadBuf),
    Body(Box<Message>),
    /// After a request that may switch protocols: later bytes are kept until
    /// the response decides. `lost` is set if a gap broke the held stream.
    Held {
        spill: Spill,
        lost: bool,
    },
    /// Upgraded or closed: everything is skipped.
    Stopped,
}

impl StreamParser {
    /// Bytes buffered by this side: queued input, a partial head, held bytes, the current
    /// message's head and body capture.
    pub(crate) fn held_bytes(&self) -> usize {
        let queued: usize = self
            .queue
            .iter()
            .map(|i| match i {
                Input::Data(_, b) => b.len(),
                Input::Gap(..) => 0,
            })
            .sum();
        let state = match &self.state {
            State::Idle | State::Seek(_) | State::Stopped => 0,
            State::Head(h) => h.spill.buf.len(),
            State::Held { spill, .. } => spill.buf.len(),
            State::Body(m) => m.head.headers.held_bytes() + m.body.held_bytes(),
        };
        queued + state
    }
}

#[derive(Debug)]
pub(crate) struct StreamParser {
    side: StreamSide,
    limits: Limits,
    state: State,
    /// Input not yet consumed: normally empty between calls, except while a
    /// pending upgrade decision pauses the response side.
    queue: VecDeque<Input>,
}

impl StreamParser {
    pub(crate) fn new(side: StreamSide, limits: Limits) -> Self {
        StreamParser {
            side,
            limits,
            // Capture may begin mid-message: the first bytes must look like a start.
            state: State::Seek(Seek::new(true, false)),
            queue: VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, seg: Segment, ctx: &mut Ctx<'_>) {
        self.queue.push_back(match seg {
            Segment::Data { ts_ns, bytes } => Input::Data(ts_ns, bytes),
            Segment::Gap { ts_ns, len } => Input::Gap(ts_ns, len),
        });
        self.drain(ctx);
    }

    /// Processes queued input, pausing when a response settles an upgrade.
    pub(crate) fn drain(&mut self, ctx: &mut Ctx<'_>) {
        self.run(ctx, true);
    }

    fn run(&mut self, ctx: &mut Ctx<'_>, pause_on_decision: bool) {
        while !(pause_on_decision && ctx.pairing.decision.is_some()) {
            let Some(input) = self.queue.pop_front() else {
                break;
            };
            match input {
                Input::Gap(ts, len) => self.gap(ts, len, ctx),
                Input::Data(ts, bytes) => {
                    let (used, replay) = self.step(ts, &bytes, ctx);
                    if used < bytes.len() {
                        self.queue.push_front(Input::Data(ts, bytes.slice(used..)));
                    }
                    // Replayed bytes preceded the rest of this segment.
                    self.replay_first(replay);
                }
            }
        }
    }

    /// The response refused to switch protocols: held bytes are HTTP.
    pub(crate) fn release(&mut self, ctx: &mut Ctx<'_>) {
        match std::mem::replace(&mut self.state, State::Stopped) {
            State::Held { spill, lost } => {
                let held = self.resume_after_hold(spill, lost, ctx);
                self.replay_first(held);
                self.drain(ctx);
            }
            other => self.state = other,
        }
    }

    /// Leaves the held state; returns the held bytes, which must be read next.
    fn resume_after_hold(&mut self, spill: Spill, lost: bool, ctx: &mut Ctx<'_>) -> Vec<Input> {
        self.state = if lost {
            ctx.stats.resyncs += 1;
            State::Seek(Seek::new(true, true))
        } else {
            State::Idle
        };
        spill.into_pieces(0)
    }

    fn replay_first(&mut self, pieces: Vec<Input>) {
        for piece in pieces.into_iter().rev() {
            self.queue.push_front(piece);
        }
    }

    /// The connection switched protocols: nothing more here is HTTP/1.
    pub(crate) fn stop(&mut self, ctx: &mut Ctx<'_>) {
        let last = self.last_ts();
        self.finalize(last, ctx);
    }

    /// The connection switched to HTTP/2: returns the unread bytes (held ones first), which
    /// belong to the new protocol. A gap that broke held bytes is passed on as a gap.
    pub(crate) fn take_rest(&mut self, ctx: &mut Ctx<'_>) -> Vec<Segment> {
        let queued: Vec<Input> = self.queue.drain(..).collect();
        let mut rest = Vec::new();
        match std::mem::replace(&mut self.state, State::Stopped) {
            State::Held { spill, lost } => {
                if lost {
                    rest.push(Input::Gap(0, 0));
                }
                rest.extend(spill.into_pieces(0));
            }
            State::Idle | State::Stopped => {}
            other => {
                self.state = other;
                let last = self.last_ts();
                self.finalize(last, ctx);
            }
        }
        self.state = State::Stopped;
        rest.extend(queued);
        rest.into_iter()
            .map(|i| match i {
                Input::Data(ts_ns, bytes) => Segment::Data { ts_ns, bytes },
                Input::Gap(ts_ns, len) => Segment::Gap { ts_ns, len },
            })
            .collect()
    }

    /// The connection ended at `ts`.
    pub(crate) fn finish(&mut self, ts: u64, ctx: &mut Ctx<'_>) {
        match std::mem::replace(&mut self.state, State::Stopped) {
            State::Held { spill, lost } => {
                let held = self.resume_after_hold(spill, lost, ctx);
                self.replay_first(held);
            }
            other => self.state = other,
        }
        self.run(ctx, false);
        self.finalize(ts, ctx);
    }

    fn last_ts(&self) -> u64 {
        match &self.state {
            State::Body(msg) => msg.last_ns,
            State::Head(h) => h.start_ns,
            _ => 0,
        }
    }

    /// Accounts for whatever is left and stops for good.
    fn finalize(&mut self, ts: u64, ctx: &mut Ctx<'_>) {
        for input in self.queue.drain(..) {
            let n = match input {
                Input::Data(_, b) => b.len() as u64,
                Input::Gap(_, len) => len,
            };
            ctx.stats.skipped(n);
        }
        match std::mem::replace(&mut self.state, State::Stopped) {
            State::Idle | State::Stopped => {}
            State::Seek(seek) => ctx.stats.skipped(seek.cand_len as u64),
            State::Head(h) => {
                ctx.stats.partial_heads_dropped += 1;
                ctx.stats.skipped(h.spill.len() as u64);
            }
            State::Held { spill, .. } => ctx.stats.skipped(spill.len() as u64),
            State::Body(mut msg) => {
                let end = if let BodyState::UntilClose = msg.state {
                    ts
                } else {
                    msg.body.truncate();
                    note(&mut msg.anomalies, Anomaly::Truncated);
                    msg.last_ns
                };
                let Message { head, start_ns, anomalies, body, .. } = *msg;
                ctx.emit(head, body.finish(), start_ns, end, anomalies);
            }
        }
    }

    /// Consumes a prefix of `input`; returns its length and any earlier
    /// bytes that must be re-read before the rest of `input`.
    fn step(&mut self, ts: u64, input: &Bytes, ctx: &mut Ctx<'_>) -> (usize, Vec<Input>) {
        match &mut self.state {
            State::Stopped => {
                ctx.stats.skipped(input.len() as u64);
                (input.len(), Vec::new())
            }
            State::Idle => {
                // RFC 9112 §2.2: empty lines before a message are tolerated.
                let blank = input.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
                if blank < input.len() {
                    self.state = State::Head(HeadBuf::new(ts));
                }
                (blank, Vec::new())
            }
            State::Seek(seek) => {
                let (used, found) = seek.step(self.side, ts, input, ctx.stats);
                if let Some((start_ns, spill)) = found {
                    self.state = State::Head(HeadBuf { spill, ..HeadBuf::new(start_ns) });
                }
                (used, Vec::new())
            }
            State::Head(_) => self.head_step(ts, input, ctx),
            State::Body(msg) => {
                msg.last_ns = ts;
                let (used, end) = msg.state.read(input, &mut msg.body);
                match end {
                    BodyEnd::More => {}
                    BodyEnd::Complete => self.complete_body(ctx, false),
                    BodyEnd::Invalid => {
                        note(&mut msg.anomalies, Anomaly::InvalidChunk);
                        msg.body.truncate();
                        ctx.stats.parse_errors += 1;
                        self.complete_body(ctx, true);
                    }
                }
                (used, Vec::new())
            }
            State::Held { spill, lost } => {
                let room = self.limits.max_head_bytes.saturating_sub(spill.len());
                let take = room.min(input.len());
                spill.push(ts, input.get(..take).unwrap_or_default());
                if take == input.len() {
                    return (take, Vec::new());
                }
                // Too much to wait on for a handshake: assume it is still HTTP.
                let (spill, lost) = (std::mem::take(spill), *lost);
                (take, self.resume_after_hold(spill, lost, ctx))
            }
        }
    }

    fn head_step(&mut self, ts: u64, input: &Bytes, ctx: &mut Ctx<'_>) -> (usize, Vec<Input>) {
        let State::Head(h) = &mut self.state else {
            return (0, Vec::new());
        };
        let room = self.limits.max_head_bytes.saturating_sub(h.spill.len());
        let event =
            find_head_event(input.get(..room).unwrap_or(input.as_ref()), &mut h.blank, h.first_line_checked);
        let Some((i, end_of_head)) = event else {
            if input.len() <= room {
                h.spill.push(ts, input);
                return (input.len(), Vec::new());
            }
            let last = input.get(..room).and_then(<[u8]>::last).copied();
            self.head_too_large(ts, room, last, ctx);
            return (room, Vec::new());
        };
        if h.spill.len() == 0 {
            // The start line is the first piece of the head; the rest usually follows in the
            // same segment. Room for both at once, instead of growing the buffer piece by
            // piece, within a small bound: the capacity is not counted as held.
            h.spill.reserve(input.len().min(room).min(HEAD_RESERVE));
        }
        h.spill.push(ts, input.get(..=i).unwrap_or_default());
        let used = i + 1;
        if !end_of_head {
            h.first_line_checked = true;
            // Most heads arrive whole. When the rest of this one is in `input` and the head
            // parses, its start line is valid too (httparse reads it the same way), so it is
            // not parsed on its own first; the outcome is the one the next step would reach.
            let first_len = h.spill.len();
            let rest = input.get(used..).unwrap_or_default();
            let room_rest = self.limits.max_head_bytes.saturating_sub(first_len);
            let mut blank = h.blank;
            if let Some((k, true)) = find_head_event(rest.get(..room_rest).unwrap_or(rest), &mut blank, true)
            {
                h.spill.push(ts, rest.get(..=k).unwrap_or_default());
                if let HeadParse::Complete { head, len } = head::parse_head(self.side, &h.spill.buf) {
                    let start_ns = h.start_ns;
                    let spill = std::mem::take(&mut h.spill);
                    self.state = State::Idle;
                    self.on_head(head, start_ns, ts, ctx);
                    return (used + k + 1, spill.into_pieces(len));
                }
                // Not a whole valid head: the start line is decided alone, as before.
                h.spill.truncate(first_len);
            }
            if head::start_line_valid(self.side, &h.spill.buf) {
                return (used, Vec::new());
            }
            return (used, self.head_invalid(ctx));
        }
        match head::parse_head(self.side, &h.spill.buf) {
            HeadParse::Complete { head, len } => {
                let start_ns = h.start_ns;
                let spill = std::mem::take(&mut h.spill);
                self.state = State::Idle;
                self.on_head(head, start_ns, ts, ctx);
                // httparse stops at the blank line we found, so this is empty
                // in practice; replaying keeps it correct regardless.
                (used, spill.into_pieces(len))
            }
            HeadParse::Partial => (used, Vec::new()),
            HeadParse::TooManyHeaders => {
                self.head_too_large(ts, 0, None, ctx);
                (used, Vec::new())
            }
            HeadParse::Invalid => (used, self.head_invalid(ctx)),
        }
    }

    /// Reports what can be read of an oversized head, then skips ahead.
    /// `extra` bytes past the buffer (ending in `extra_last`) belong to it too.
    fn head_too_large(&mut self, ts: u64, extra: usize, extra_last: Option<u8>, ctx: &mut Ctx<'_>) {
        let State::Head(h) = std::mem::replace(&mut self.state, State::Stopped) else {
            return;
        };
        ctx.stats.parse_errors += 1;
        ctx.stats.resyncs += 1;
        ctx.stats.skipped((h.spill.len() + extra) as u64);
        let last = extra_last.or(h.spill.buf.last().copied());
        if let Some(head) = head::start_line_only(self.side, &h.spill.buf) {
            let interim = match head.start {
                StartLine::Response { status, .. } => {
                    ctx.response_head(status);
                    is_interim(status)
                }
                StartLine::Request { .. } => false,
            };
            if !interim {
                let anomalies = vec![Anomaly::HeadTooLarge];
                ctx.emit(head, incomplete_body(), h.start_ns, ts, anomalies);
            }
        }
        self.state = State::Seek(Seek::new(last == Some(b'\n'), true));
    }

    /// The head is not HTTP: drop its first byte and look for a start in the rest.
    fn head_invalid(&mut self, ctx: &mut Ctx<'_>) -> Vec<Input> {
        let State::Head(h) = std::mem::replace(&mut self.state, State::Stopped) else {
            return Vec::new();
        };
        ctx.stats.parse_errors += 1;
        ctx.stats.resyncs += 1;
        ctx.stats.skipped(1);
        let line_start = h.spill.buf.first() == Some(&b'\n');
        self.state = State::Seek(Seek::new(line_start, true));
        h.spill.into_pieces(1)
    }

    fn on_head(&mut self, head: Head, start_ns: u64, ts: u64, ctx: &mut Ctx<'_>) {
        let decision = match &head.start {
            StartLine::Request { .. } => head::request_framing(&head.headers),
            StartLine::Response { status, .. } => {
                let status = *status;
                let kind = ctx.response_head(status);
                if is_interim(status) {
                    // 100 Continue / 103 Early Hints precede the real response.
                    self.state = State::Idle;
                    return;
                }
                head::response_framing(&head.headers, status, kind)
            }
        };
        let chunked = decision.framing == Ok(Framing::Chunked);
        let mut msg = Box::new(Message {
            head,
            start_ns,
            last_ns: ts,
            anomalies: decision.anomalies,
            body: BodyBuilder::new(self.limits.max_body_capture, chunked),
            state: BodyState::UntilClose,
        });
        match decision.framing {
            Ok(Framing::NoBody) => {
                self.state = State::Body(msg);
                self.complete_body(ctx, false);
            }
            Ok(Framing::Length(n)) => {
                msg.state = BodyState::Length { remaining: n };
                self.state = State::Body(msg);
            }
            Ok(Framing::Chunked) => {
                msg.state = BodyState::Chunked(ChunkedDecoder::new(self.limits.max_head_bytes));
                self.state = State::Body(msg);
            }
            Ok(Framing::UntilClose) => self.state = State::Body(msg),
            Err(_) => {
                // Body length unknowable: report the head, then look for the next start.
                ctx.stats.parse_errors += 1;
                msg.body.truncate();
                self.state = State::Body(msg);
                self.complete_body(ctx, true);
            }
        }
    }

    /// Emits the message in `State::Body` and picks the next state.
    fn complete_body(&mut self, ctx: &mut Ctx<'_>, resync: bool) {
        let State::Body(msg) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        let Message { head, start_ns, last_ns, anomalies, body, .. } = *msg;
        let hold = match &head.start {
            StartLine::Request { method, .. } => method == "CONNECT" || head.headers.get("upgrade").is_some(),
            StartLine::Response { .. } => false,
        };
        ctx.emit(head, body.finish(), start_ns, last_ns, anomalies);
        self.state = match (hold, resync) {
            (true, lost) => State::Held { spill: Spill::default(), lost },
            (false, true) => {
                ctx.stats.resyncs += 1;
                State::Seek(Seek::new(true, true))
            }
            (false, false) => State::Idle,
        };
    }

    fn gap(&mut self, ts: u64, len: u64, ctx: &mut Ctx<'_>) {
        let stats = &mut *ctx.stats;
        let mut skipped = len;
        let mut resync = true;
        match &mut self.state {
            State::Stopped => resync = false,
            State::Idle => {}
            State::Seek(seek) => {
                skipped = skipped.saturating_add(seek.cand_len as u64);
                resync = !seek.counted;
            }
            State::Head(h) => {
                stats.partial_heads_dropped += 1;
                skipped = skipped.saturating_add(h.spill.len() as u64);
            }
            State::Held { spill, lost } => {
                skipped = skipped.saturating_add(spill.len() as u64);
                *spill = Spill::default();
                *lost = true;
                stats.skipped(skipped);
                return;
            }
            State::Body(msg) => {
                msg.last_ns = ts;
                let (absorbed, ends) = msg.state.gap(len);
                msg.body.gap(absorbed);
                note(&mut msg.anomalies, Anomaly::BodyGap);
                stats.skipped(len - absorbed);
                if let Some(resync) = ends {
                    self.complete_body(ctx, resync);
                }
                return;
            }
        }
        stats.skipped(skipped);
        if resync {
            stats.resyncs += 1;
        }
        if !matches!(self.state, State::Stopped) {
            self.state = State::Seek(Seek::new(true, true));
        }
    }
}

fn incomplete_body() -> Body {
    Body { complete: false, ..Body::default() }
}

/// The first line end of interest in `buf`: `(i, true)` for the LF ending the head (one after an
/// empty line), `(i, false)` for the LF ending the start line while it is unchecked. `blank`
/// carries the progress towards an empty line across calls (0 none, 1 after LF, 2 after LF CR)
/// and is left as it is after the last byte looked at. Only LFs can end anything, so the bytes
/// between them are skipped with `memchr`.
fn find_head_event(buf: &[u8], blank: &mut u8, first_line_checked: bool) -> Option<(usize, bool)> {
    // The state after bytes holding no LF: only a lone CR right after an LF keeps progress.
    let after = |segment: &[u8], blank: u8| match segment {
        [] => blank,
        [b'\r'] if blank == 1 => 2,
        _ => 0,
    };
    let mut pos = 0;
    while let Some(off) = buf.get(pos..).and_then(|rest| memchr::memchr(b'\n', rest)) {
        let i = pos + off;
        let blank_line = after(buf.get(pos..i).unwrap_or_default(), *blank) > 0;
        *blank = 1;
        if blank_line {
            return Some((i, true));
        }
        if !first_line_checked {
            return Some((i, false));
        }
        pos = i + 1;
    }
    *blank = after(buf.get(pos..).unwrap_or_default(), *blank);
    None
}

#[cfg(test)]
mod tests {
    use super::find_head_event;

    /// The byte-at-a-time scan `find_head_event` replaced.
    fn bytewise(buf: &[u8], blank: &mut u8, first_line_checked: bool) -> Option<(usize, bool)> {
        for (i, &b) in buf.iter().enumerate() {
            let blank_line = b == b'\n' && *blank > 0;
            *blank = match b {
                b'\n' => 1,
                b'\r' if *blank == 1 => 2,
                _ => 0,
            };
            if blank_line {
                return Some((i, true));
            }
            if b == b'\n' && !first_line_checked {
                return Some((i, false));
            }
        }
        None
    }

    #[test]
    fn same_events_and_state_as_the_bytewise_scan() {
        let alphabet = b"\r\n\r\nab: ";
        let mut seed: u64 = 1;
        for _ in 0..200_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let len = (seed >> 59) as usize;
            let buf: Vec<u8> = (0..len).map(|k| alphabet[((seed >> (3 * k % 48)) & 7) as usize]).collect();
            let start = (seed >> 20) as u8 % 3;
            let checked = seed & 1 == 1;
            let (mut a, mut b) = (start, start);
            assert_eq!(
                find_head_event(&buf, &mut a, checked),
                bytewise(&buf, &mut b, checked),
                "{buf:?} from {start}"
            );
            assert_eq!(a, b, "{buf:?} from {start}");
        }
    }
}
