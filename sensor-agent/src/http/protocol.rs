//! Which HTTP a connection speaks, decided from its first bytes, and the parser for it.
//!
//! HTTP/2 when the request side opens with the client preface (`PRI * HTTP/2.0...`), or, for a
//! connection the capture joined late, when either side's first bytes are a consistent chain of
//! plausible HTTP/2 frame headers ([`frame::chain`]); HTTP/1.x as soon as either side shows
//! something else (a method, `HTTP/1.`, anything that cannot be a frame). Until then segments
//! wait, in arrival order, up to [`MAX_UNDECIDED`] bytes, after which HTTP/1 (which
//! resynchronises on anything) takes them. An HTTP/1.1 connection that upgrades with
//! `Upgrade: h2c` and `101 Switching Protocols` continues as HTTP/2: the HTTP/1 parser hands over
//! the upgrading request (stream 1's) and its unread bytes.
//!
//! [`frame::chain`]: super::h2::frame::chain

use super::h2::frame::{self, Chain, Preface};
use super::h2::{H2Connection, H2Limits, H2Stats, Start};
use super::{Exchange, HttpConnection, HttpStats, Limits, StreamSide};
use crate::reassembly::Segment;

/// Bytes waiting for a decision, per connection.
pub const MAX_UNDECIDED: usize = 64 * 1024;
/// First bytes of each side kept to decide from.
const MAX_FIRST: usize = 32 * 1024;

#[derive(Debug, Default)]
struct Undecided {
    queue: Vec<(StreamSide, Segment)>,
    held: usize,
    /// The first captured bytes of each side (request, response), up to the first gap.
    first: [Vec<u8>; 2],
    /// A gap ended the side's first bytes.
    first_done: [bool; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Wait,
    Http1,
    Http2(Start),
}

impl Undecided {
    fn push(&mut self, side: StreamSide, seg: Segment) {
        let i = usize::from(side == StreamSide::Response);
        match &seg {
            Segment::Data { bytes, .. } => {
                self.held += bytes.len();
                if !self.first_done[i] {
                    let room = MAX_FIRST.saturating_sub(self.first[i].len());
                    self.first[i].extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
                }
            }
            Segment::Gap { .. } => {
                // Bytes after a gap start mid-stream: they are judged on their own.
                if !self.first[i].is_empty() {
                    self.first_done[i] = true;
                }
            }
        }
        self.queue.push((side, seg));
    }

    fn verdict(&self) -> Verdict {
        let [request, response] = &self.first;
        let request = if request.is_empty() {
            Verdict::Wait
        } else {
            match frame::preface(request) {
                Preface::Complete => return Verdict::Http2(Start::Preface),
                Preface::Prefix => Verdict::Wait,
                Preface::Absent => judge(frame::chain(request)),
            }
        };
        let response = if response.is_empty() {
            Verdict::Wait
        } else if response.starts_with(b"HTTP/1.") || b"HTTP/1.".starts_with(response) {
            Verdict::Http1
        } else {
            judge(frame::chain(response))
        };
        match (request, response) {
            (Verdict::Http1, _) | (_, Verdict::Http1) => Verdict::Http1,
            (Verdict::Http2(s), _) | (_, Verdict::Http2(s)) => Verdict::Http2(s),
            _ if self.held > MAX_UNDECIDED
                || self.first.iter().zip(self.first_done).all(|(f, done)| done || f.len() >= MAX_FIRST) =>
            {
                Verdict::Http1
            }
            _ => Verdict::Wait,
        }
    }
}

fn judge(chain: Chain) -> Verdict {
    match chain {
        Chain::Yes => Verdict::Http2(Start::MidConnection),
        Chain::NeedMore => Verdict::Wait,
        Chain::No => Verdict::Http1,
    }
}

/// One connection's HTTP parser, whichever version it turns out to be.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    h2_limits: H2Limits,
    undecided: Option<Undecided>,
    http1: HttpConnection,
    h2: Option<Box<H2Connection>>,
}

impl Connection {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Connection::with_h2_limits(limits, H2Limits::from_limits(&limits))
    }

    #[must_use]
    pub fn with_h2_limits(limits: Limits, h2_limits: H2Limits) -> Self {
        Connection {
            limits,
            h2_limits,
            undecided: Some(Undecided::default()),
            http1: HttpConnection::new(limits),
            h2: None,
        }
    }

    pub fn push(&mut self, side: StreamSide, seg: Segment, out: &mut Vec<Exchange>) {
        let Some(u) = self.undecided.as_mut() else {
            self.route(side, seg, out);
            return;
        };
        u.push(side, seg);
        let verdict = u.verdict();
        if verdict != Verdict::Wait {
            self.decide(verdict, out);
        }
    }

    fn decide(&mut self, verdict: Verdict, out: &mut Vec<Exchange>) {
        let Some(u) = self.undecided.take() else { return };
        if let Verdict::Http2(start) = verdict {
            self.h2 = Some(Box::new(H2Connection::new(self.h2_limits, start)));
        }
        for (side, seg) in u.queue {
            self.route(side, seg, out);
        }
    }

    fn route(&mut self, side: StreamSide, seg: Segment, out: &mut Vec<Exchange>) {
        if let Some(h2) = self.h2.as_mut() {
            h2.push(side, seg, out);
            return;
        }
        self.http1.push(side, seg, out);
        if let Some(hand) = self.http1.take_handover() {
            let mut h2 =
                Box::new(H2Connection::upgraded(self.h2_limits, hand.request, hand.settings.as_deref()));
            for seg in hand.requests {
                h2.push(StreamSide::Request, seg, out);
            }
            for seg in hand.responses {
                h2.push(StreamSide::Response, seg, out);
            }
            self.h2 = Some(h2);
        }
    }

    pub fn close(&mut self, ts_ns: u64, out: &mut Vec<Exchange>) {
        if self.undecided.is_some() {
            self.decide(Verdict::Http1, out);
        }
        match self.h2.as_mut() {
            Some(h2) => h2.close(ts_ns, out),
            None => self.http1.close(ts_ns, out),
        }
    }

    /// A parser for the rest of this connection, after this one was given up (memory budget):
    /// an HTTP/2 connection stays HTTP/2, picked up as if joined mid-connection, since its
    /// later bytes would never look like HTTP/1.
    #[must_use]
    pub fn reset(&self) -> Connection {
        let mut fresh = Connection::with_h2_limits(self.limits, self.h2_limits);
        if self.h2.is_some() {
            fresh.undecided = None;
            fresh.h2 = Some(Box::new(H2Connection::resumed(self.h2_limits)));
        }
        fresh
    }

    #[must_use]
    pub fn held_bytes(&self) -> usize {
        self.undecided.as_ref().map_or(0, |u| u.held)
            + self.http1.held_bytes()
            + self.h2.as_ref().map_or(0, |h| h.held_bytes())
    }

    #[must_use]
    pub fn http1_stats(&self) -> &HttpStats {
        self.http1.stats()
    }

    #[must_use]
    pub fn h2_stats(&self) -> Option<&H2Stats> {
        self.h2.as_deref().map(H2Connection::stats)
    }

    /// True once HTTP/1 stopped because the connection switched protocols (including h2c).
    #[must_use]
    pub fn is_upgraded(&self) -> bool {
        self.http1.is_upgraded()
    }
}
