//! One HTTP/2 stream as an exchange in the making: the request half (client to server) and the
//! response half, each built from its header blocks and DATA frames.
//!
//! Pseudo-header fields become the request line (`:method`, `:path`, or `:authority` for
//! CONNECT) and the status (`:status`); the rest are the message's headers. `:authority` is also
//! given as a `host` header when the request has none (RFC 9113 §8.3.1 makes them equivalent), so
//! everything downstream that names the API by its host works unchanged. Trailers (a header block
//! after the body) are appended after the headers, the way HTTP/1 chunked trailers would be read:
//! gRPC's `grpc-status` lives there. Informational (1xx) responses are read for their effect on
//! the HPACK table and otherwise dropped.

use super::hpack::Block;
use crate::http::exchange::{Anomaly, BodyBuilder, Exchange, Headers, Request, Response, Version, note};

#[derive(Debug, Default)]
struct Pseudo {
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
    status: Option<u16>,
}

/// One direction's message on a stream.
#[derive(Debug)]
pub(crate) struct Half {
    /// A header block opened this message (DATA alone never starts one).
    pub started: bool,
    /// `END_STREAM` seen (or the message was given up on).
    pub ended: bool,
    pseudo: Pseudo,
    headers: Headers,
    body: BodyBuilder,
    anomalies: Vec<Anomaly>,
    start_ns: u64,
    end_ns: u64,
}

impl Half {
    fn new(body_limit: usize) -> Self {
        Half {
            started: false,
            ended: false,
            pseudo: Pseudo::default(),
            headers: Headers::new(),
            body: BodyBuilder::new(body_limit, false),
            anomalies: Vec::new(),
            start_ns: 0,
            end_ns: 0,
        }
    }

    pub(crate) fn held_bytes(&self) -> usize {
        self.headers.held_bytes() + self.body.held_bytes()
    }

    /// A decoded header block for this message: its head, or (once the head is in) trailers.
    pub(crate) fn block(&mut self, block: Block, ts: u64) {
        if !self.started {
            self.started = true;
            self.start_ns = ts;
        }
        self.end_ns = ts;
        if block.undecodable > 0 {
            note(&mut self.anomalies, Anomaly::HpackUndecodable);
        }
        if block.too_large {
            note(&mut self.anomalies, Anomaly::HeadTooLarge);
        }
        for (name, value) in block.fields {
            if let Some(pseudo) = name.strip_prefix(b":") {
                let text = || String::from_utf8_lossy(&value).into_owned();
                match pseudo {
                    b"method" => self.pseudo.method = Some(text()),
                    b"path" => self.pseudo.path = Some(text()),
                    b"authority" => self.pseudo.authority = Some(text()),
                    b"status" => {
                        self.pseudo.status = std::str::from_utf8(&value).ok().and_then(|s| s.parse().ok());
                    }
                    // :scheme and :protocol say nothing the record does not already have.
                    _ => {}
                }
            } else {
                self.headers.push(String::from_utf8_lossy(&name).into_owned(), value);
            }
        }
    }

    /// Header block fragments of this message were lost (a gap, an oversized block).
    pub(crate) fn lost_head(&mut self, ts: u64) {
        if !self.started {
            self.started = true;
            self.start_ns = ts;
        }
        self.end_ns = ts;
        note(&mut self.anomalies, Anomaly::HpackUndecodable);
    }

    /// A 1xx response head was read: the final one is still to come.
    pub(crate) fn is_interim(&self) -> bool {
        self.pseudo.status.is_some_and(|s| (100..200).contains(&s))
    }

    /// Forgets an interim head so the next block is read as the final one.
    pub(crate) fn reset_interim(&mut self) {
        self.started = false;
        self.pseudo = Pseudo::default();
        self.headers = Headers::new();
        self.anomalies.clear();
    }

    pub(crate) fn data(&mut self, src: &bytes::Bytes, start: usize, end: usize, ts: u64) {
        self.end_ns = ts;
        self.body.data(src, start, end);
    }

    /// `len` body bytes were not captured (`len` 0: an unknown amount may be missing).
    pub(crate) fn gap(&mut self, len: u64, ts: u64) {
        self.end_ns = self.end_ns.max(ts);
        self.body.gap(len);
        note(&mut self.anomalies, Anomaly::BodyGap);
    }

    pub(crate) fn end(&mut self, ts: u64) {
        self.end_ns = ts;
        self.ended = true;
    }

    /// The message will not complete (reset, connection end, cap).
    fn give_up(&mut self, why: Anomaly) {
        if self.started && !self.ended {
            self.body.truncate();
            note(&mut self.anomalies, Anomaly::Truncated);
            note(&mut self.anomalies, why);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub request: Half,
    pub response: Half,
    /// The request was sent as HTTP/1.1 (the one that asked for an h2c upgrade).
    upgraded_version: bool,
}

impl Stream {
    pub(crate) fn new(body_limit: usize) -> Self {
        Stream { request: Half::new(body_limit), response: Half::new(body_limit), upgraded_version: false }
    }

    /// A stream whose request was read as HTTP/1.1 before an h2c upgrade (RFC 9113 §3.2 gives
    /// it stream 1); the response arrives as HTTP/2.
    pub(crate) fn upgraded(request: Request, body_limit: usize) -> Self {
        let mut s = Stream::new(body_limit);
        s.request.started = true;
        s.request.ended = true;
        s.request.start_ns = request.start_ns;
        s.request.end_ns = request.end_ns;
        s.request.pseudo.method = Some(request.method);
        s.request.pseudo.path = Some(request.target);
        s.request.headers = request.headers;
        s.request.anomalies = request.anomalies;
        let mut body = BodyBuilder::new(body_limit, request.body.chunked);
        let len = request.body.captured.len();
        body.data(&request.body.captured, 0, len);
        if request.body.size > len as u64 || !request.body.complete {
            body.gap(request.body.size.saturating_sub(len as u64));
        }
        s.request.body = body;
        s.upgraded_version = true;
        s
    }

    pub(crate) fn held_bytes(&self) -> usize {
        self.request.held_bytes() + self.response.held_bytes()
    }

    /// Both halves are over: the exchange can leave.
    pub(crate) fn is_done(&self) -> bool {
        (self.request.ended || !self.request.started) && self.response.ended
    }

    /// Builds the exchange; halves that did not finish are marked with `why`.
    pub(crate) fn finish(mut self, why: Anomaly) -> Exchange {
        self.request.give_up(why);
        self.response.give_up(why);
        let request_version = if self.upgraded_version { Version::Http11 } else { Version::Http2 };
        Exchange { request: request(self.request, request_version), response: response(self.response) }
    }
}

fn request(h: Half, version: Version) -> Option<Request> {
    if !h.started {
        return None;
    }
    let Half { pseudo, mut headers, body, mut anomalies, start_ns, end_ns, .. } = h;
    if pseudo.method.is_none() || (pseudo.path.is_none() && pseudo.authority.is_none()) {
        note(&mut anomalies, Anomaly::HpackUndecodable);
    }
    let method = pseudo.method.unwrap_or_default();
    // CONNECT names its target by authority alone (RFC 9113 §8.5).
    let target = pseudo.path.or_else(|| pseudo.authority.clone()).unwrap_or_default();
    if let Some(authority) = pseudo.authority
        && headers.get("host").is_none()
    {
        headers.push("host", authority.into_bytes());
    }
    Some(Request { method, target, version, headers, body: body.finish(), start_ns, end_ns, anomalies })
}

fn response(h: Half) -> Option<Response> {
    if !h.started {
        return None;
    }
    let Half { pseudo, headers, body, mut anomalies, start_ns, end_ns, .. } = h;
    // Status 0 stands for "not decodable": the field was in table entries never seen.
    let status = pseudo.status.unwrap_or_else(|| {
        note(&mut anomalies, Anomaly::HpackUndecodable);
        0
    });
    Some(Response {
        status,
        reason: String::new(),
        version: Version::Http2,
        headers,
        body: body.finish(),
        start_ns,
        end_ns,
        anomalies,
    })
}
