//! Connection level: two [`StreamParser`]s (requests, responses) and the
//! FIFO that pairs their messages into [`Exchange`]s.
//!
//! A response is matched when its head is parsed, against the oldest waiting
//! request: that request decides HEAD/CONNECT framing. Interim 1xx (except
//! 101) only peek at it. An exchange is emitted when its response completes;
//! a request whose response never comes leaves at `close()` or when the queue
//! overflows. A 101, or a 2xx to CONNECT, ends HTTP/1 on both directions.

use std::collections::VecDeque;

use super::exchange::{Anomaly, Body, Exchange, Request, Response};
use super::head::{Head, RequestKind, StartLine};
use super::parser::StreamParser;
use super::{HttpStats, Limits, StreamSide};
use crate::reassembly::Segment;

/// Outcome of a response to a request that asked to switch protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpgradeDecision {
    Upgraded,
    /// A 101 to `Upgrade: h2c`: the connection goes on as HTTP/2, which takes over the
    /// request (stream 1's) and every later byte.
    H2c,
    /// The request wanted to switch but the response kept HTTP/1: bytes the
    /// request side held back are HTTP after all.
    Declined,
}

/// The response currently being parsed and what it was matched with.
#[derive(Debug, Default)]
enum Inflight {
    #[default]
    None,
    Matched(Box<Request>),
    Unmatched,
}

#[derive(Debug)]
pub(crate) struct Pairing {
    pending: VecDeque<Request>,
    max_pending: usize,
    inflight: Inflight,
    /// Set when a response settles an upgrade; parsers pause until the
    /// connection has acted on it so later bytes are read in the right mode.
    pub(crate) decision: Option<UpgradeDecision>,
    /// The request of an accepted h2c upgrade, waiting for HTTP/2 to take it.
    h2c_request: Option<Request>,
}

/// Everything a stream parser may touch besides itself.
pub(crate) struct Ctx<'a> {
    pub stats: &'a mut HttpStats,
    pub pairing: &'a mut Pairing,
    pub out: &'a mut Vec<Exchange>,
}

impl Pairing {
    fn new(max_pending: usize) -> Self {
        Pairing {
            pending: VecDeque::new(),
            max_pending,
            inflight: Inflight::None,
            decision: None,
            h2c_request: None,
        }
    }
}

impl Ctx<'_> {
    /// Builds the public message from its parts and pairs it.
    pub(crate) fn emit(
        &mut self,
        head: Head,
        body: Body,
        start_ns: u64,
        end_ns: u64,
        anomalies: Vec<Anomaly>,
    ) {
        match head.start {
            StartLine::Request { method, target } => self.request(Request {
                method,
                target,
                version: head.version,
                headers: head.headers,
                body,
                start_ns,
                end_ns,
                anomalies,
            }),
            StartLine::Response { status, reason } => {
                // Heads we could not read whole never switch protocols.
                let may_upgrade = !anomalies.contains(&Anomaly::HeadTooLarge);
                self.response(
                    Response {
                        status,
                        reason,
                        version: head.version,
                        headers: head.headers,
                        body,
                        start_ns,
                        end_ns,
                        anomalies,
                    },
                    may_upgrade,
                );
            }
        }
    }

    fn request(&mut self, req: Request) {
        self.pairing.pending.push_back(req);
        while self.pairing.pending.len() > self.pairing.max_pending {
            let Some(old) = self.pairing.pending.pop_front() else {
                break;
            };
            self.stats.pending_overflow += 1;
            self.out.push(Exchange { request: Some(old), response: None });
        }
    }

    /// A response head with `status` was parsed. Final responses claim the
    /// oldest request; interim ones only look at it.
    pub(crate) fn response_head(&mut self, status: u16) -> RequestKind {
        if is_interim(status) {
            return self.pairing.pending.front().map_or(RequestKind::Unknown, kind);
        }
        // A previous response that never completed cannot be paired any more.
        if let Inflight::Matched(req) = std::mem::take(&mut self.pairing.inflight) {
            self.out.push(Exchange { request: Some(*req), response: None });
        }
        if let Some(req) = self.pairing.pending.pop_front() {
            let k = kind(&req);
            self.pairing.inflight = Inflight::Matched(Box::new(req));
            k
        } else {
            self.pairing.inflight = Inflight::Unmatched;
            RequestKind::Unknown
        }
    }

    /// The response matched by the last `response_head` is complete.
    /// `may_upgrade` is false for responses whose head could not be read in full.
    fn response(&mut self, resp: Response, may_upgrade: bool) {
        let request = match std::mem::take(&mut self.pairing.inflight) {
            Inflight::Matched(req) => Some(*req),
            Inflight::Unmatched | Inflight::None => {
                self.stats.unmatched_responses += 1;
                None
            }
        };
        let wants = request.as_ref().is_some_and(wants_upgrade);
        let is_connect = request.as_ref().is_some_and(|r| r.method == "CONNECT");
        let upgraded =
            may_upgrade && (resp.status == 101 || (is_connect && (200..300).contains(&resp.status)));
        if upgraded && resp.status == 101 && request.as_ref().is_some_and(wants_h2c) {
            // Its response comes as HTTP/2 on stream 1: no exchange leaves here.
            self.pairing.decision = Some(UpgradeDecision::H2c);
            self.pairing.h2c_request = request;
            return;
        }
        if upgraded {
            self.pairing.decision = Some(UpgradeDecision::Upgraded);
        } else if wants {
            self.pairing.decision = Some(UpgradeDecision::Declined);
        }
        self.out.push(Exchange { request, response: Some(resp) });
    }
}

/// 1xx other than 101: informational, followed by the real response.
pub(crate) fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

fn kind(req: &Request) -> RequestKind {
    match req.method.as_str() {
        "HEAD" => RequestKind::Head,
        "CONNECT" => RequestKind::Connect,
        _ => RequestKind::Other,
    }
}

/// Requests after which the client may stop speaking HTTP/1.
pub(crate) fn wants_upgrade(req: &Request) -> bool {
    req.method == "CONNECT" || req.headers.get("upgrade").is_some()
}

/// Requests that offer HTTP/2 over cleartext (RFC 7540 §3.2).
fn wants_h2c(req: &Request) -> bool {
    req.headers
        .get("upgrade")
        .is_some_and(|v| v.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"h2c")))
}

/// What HTTP/1 hands over when a connection switches to HTTP/2 (h2c): the request that asked
/// for it, its `HTTP2-Settings` payload, and the unread bytes of each direction.
#[derive(Debug)]
pub struct Handover {
    pub request: Request,
    pub settings: Option<Vec<u8>>,
    pub requests: Vec<Segment>,
    pub responses: Vec<Segment>,
}

/// Parser state for one captured TCP connection.
#[derive(Debug)]
pub struct HttpConnection {
    requests: StreamParser,
    responses: StreamParser,
    pairing: Pairing,
    stats: HttpStats,
    upgraded: bool,
    closed: bool,
    handover: Option<Handover>,
}

impl HttpConnection {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        HttpConnection {
            requests: StreamParser::new(StreamSide::Request, limits),
            responses: StreamParser::new(StreamSide::Response, limits),
            pairing: Pairing::new(limits.max_pending_requests),
            stats: HttpStats::default(),
            upgraded: false,
            closed: false,
            handover: None,
        }
    }

    /// Bytes this connection holds (partial heads, bodies kept for inspection, requests waiting
    /// for their response): what a global memory budget is charged.
    #[must_use]
    pub fn held_bytes(&self) -> usize {
        let inflight = match &self.pairing.inflight {
            Inflight::Matched(r) => r.held_bytes(),
            Inflight::None | Inflight::Unmatched => 0,
        };
        let pending: usize = self.pairing.pending.iter().map(Request::held_bytes).sum();
        self.requests.held_bytes() + self.responses.held_bytes() + inflight + pending
    }

    /// Feed the next in-order segment of one side; completed exchanges are
    /// appended to `out`.
    pub fn push(&mut self, side: StreamSide, seg: Segment, out: &mut Vec<Exchange>) {
        if self.closed {
            self.stats.skipped(seg.len());
            return;
        }
        let mut ctx = Ctx { stats: &mut self.stats, pairing: &mut self.pairing, out };
        match side {
            StreamSide::Request => self.requests.push(seg, &mut ctx),
            StreamSide::Response => self.responses.push(seg, &mut ctx),
        }
        self.settle(out);
    }

    /// Acts on upgrade decisions, resuming the response stream after each
    /// one so that every later byte is read in the right mode.
    fn settle(&mut self, out: &mut Vec<Exchange>) {
        while let Some(decision) = self.pairing.decision.take() {
            let mut ctx = Ctx { stats: &mut self.stats, pairing: &mut self.pairing, out };
            match decision {
                UpgradeDecision::Upgraded => {
                    self.upgraded = true;
                    self.requests.stop(&mut ctx);
                    self.responses.stop(&mut ctx);
                }
                UpgradeDecision::H2c => {
                    self.upgraded = true;
                    let requests = self.requests.take_rest(&mut ctx);
                    let responses = self.responses.take_rest(&mut ctx);
                    if let Some(request) = self.pairing.h2c_request.take() {
                        let settings = http2_settings(&request);
                        self.handover = Some(Handover { request, settings, requests, responses });
                    }
                }
                UpgradeDecision::Declined => {
                    self.requests.release(&mut ctx);
                    self.responses.drain(&mut ctx);
                }
            }
        }
    }

    /// The connection ended at `ts_ns`: finish close-delimited bodies, emit
    /// requests still waiting for a response, count partial heads as dropped.
    pub fn close(&mut self, ts_ns: u64, out: &mut Vec<Exchange>) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut ctx = Ctx { stats: &mut self.stats, pairing: &mut self.pairing, out };
        self.requests.finish(ts_ns, &mut ctx);
        self.responses.finish(ts_ns, &mut ctx);
        // Held-back request bytes replayed above never wait for a decision now.
        self.pairing.decision = None;
        if let Inflight::Matched(req) = std::mem::take(&mut self.pairing.inflight) {
            out.push(Exchange { request: Some(*req), response: None });
        }
        out.extend(self.pairing.pending.drain(..).map(|req| Exchange { request: Some(req), response: None }));
    }

    /// After a 101 to an h2c upgrade: what HTTP/2 takes over (once).
    pub fn take_handover(&mut self) -> Option<Handover> {
        self.handover.take()
    }

    #[must_use]
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// True once a 101 or a successful CONNECT switched the connection away
    /// from HTTP/1.
    #[must_use]
    pub fn is_upgraded(&self) -> bool {
        self.upgraded
    }
}

/// The client's SETTINGS from `HTTP2-Settings` (base64url, RFC 7540 §3.2.1).
fn http2_settings(req: &Request) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let value = req.headers.get("http2-settings")?.trim_ascii();
    let value = value.strip_suffix(b"==").or_else(|| value.strip_suffix(b"=")).unwrap_or(value);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value).ok()
}
