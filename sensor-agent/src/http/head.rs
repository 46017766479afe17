//! Pure functions over complete byte slices: recognising where a message may
//! start, parsing a buffered head with httparse, and deciding body framing
//! from the head (RFC 9112 §6). No state lives here; the stream state
//! machine in `parser.rs` decides when a slice is worth looking at.

use super::StreamSide;
use super::exchange::{Anomaly, Headers, Version, note};

/// Headers accepted on the first attempt; most heads fit, so it lives on the stack.
const FIRST_HEADER_ATTEMPT: usize = 128;
/// Beyond this many header fields the head is reported as too large.
const MAX_HEADERS: usize = 2048;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request { method: String, target: String },
    Response { status: u16, reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub start: StartLine,
    pub version: Version,
    pub headers: Headers,
}

#[derive(Debug)]
pub(crate) enum HeadParse {
    /// Head complete; it occupied the first `len` bytes.
    Complete {
        head: Head,
        len: usize,
    },
    Partial,
    /// More header fields than we are willing to hold.
    TooManyHeaders,
    Invalid,
}

fn config() -> httparse::ParserConfig {
    let mut cfg = httparse::ParserConfig::default();
    // Servers in the wild emit these; refusing them would only lose traffic.
    cfg.allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true);
    cfg
}

pub(crate) fn parse_head(side: StreamSide, buf: &[u8]) -> HeadParse {
    let mut stack = [httparse::EMPTY_HEADER; FIRST_HEADER_ATTEMPT];
    match parse_into(side, buf, &mut stack) {
        HeadParse::TooManyHeaders => {}
        other => return other,
    }
    let mut n = FIRST_HEADER_ATTEMPT * 4;
    while n <= MAX_HEADERS {
        let mut heap = vec![httparse::EMPTY_HEADER; n];
        match parse_into(side, buf, &mut heap) {
            HeadParse::TooManyHeaders => n *= 4,
            other => return other,
        }
    }
    HeadParse::TooManyHeaders
}

fn parse_into<'b>(side: StreamSide, buf: &'b [u8], slots: &mut [httparse::Header<'b>]) -> HeadParse {
    let cfg = config();
    let (start, version, headers, len) = match side {
        StreamSide::Request => {
            let mut req = httparse::Request::new(slots);
            let len = match cfg.parse_request(&mut req, buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return HeadParse::Partial,
                Err(httparse::Error::TooManyHeaders) => return HeadParse::TooManyHeaders,
                Err(_) => return HeadParse::Invalid,
            };
            let (Some(method), Some(target), Some(v)) = (req.method, req.path, req.version) else {
                return HeadParse::Invalid;
            };
            let start = StartLine::Request { method: method.to_owned(), target: target.to_owned() };
            (start, v, own_headers(req.headers), len)
        }
        StreamSide::Response => {
            let mut resp = httparse::Response::new(slots);
            let len = match cfg.parse_response(&mut resp, buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return HeadParse::Partial,
                Err(httparse::Error::TooManyHeaders) => return HeadParse::TooManyHeaders,
                Err(_) => return HeadParse::Invalid,
            };
            let (Some(status), Some(v)) = (resp.code, resp.version) else {
                return HeadParse::Invalid;
            };
            let start = StartLine::Response { status, reason: resp.reason.unwrap_or_default().to_owned() };
            (start, v, own_headers(resp.headers), len)
        }
    };
    HeadParse::Complete { head: Head { start, version: Version::from_minor(version), headers }, len }
}

fn own_headers(raw: &[httparse::Header<'_>]) -> Headers {
    let mut headers = Headers::with_capacity(raw.len());
    for h in raw {
        headers.push(h.name, h.value);
    }
    headers
}

/// False once the bytes so far cannot be the start of a valid head; lets a
/// false resync candidate be abandoned at its first line instead of after
/// buffering up to `max_head_bytes`.
pub(crate) fn start_line_valid(side: StreamSide, buf: &[u8]) -> bool {
    !matches!(parse_into(side, buf, &mut []), HeadParse::Invalid)
}

/// The start line of a head that is too large to parse whole, with no
/// headers, so an oversized message is still reported.
pub(crate) fn start_line_only(side: StreamSide, buf: &[u8]) -> Option<Head> {
    let cfg = config();
    let (start, version) = match side {
        StreamSide::Request => {
            let mut req = httparse::Request::new(&mut []);
            // The result is irrelevant: httparse fills fields as it goes.
            let _ = cfg.parse_request(&mut req, buf);
            let (method, target, v) = (req.method?, req.path?, req.version?);
            let start = StartLine::Request { method: method.to_owned(), target: target.to_owned() };
            (start, v)
        }
        StreamSide::Response => {
            let mut resp = httparse::Response::new(&mut []);
            let _ = cfg.parse_response(&mut resp, buf);
            let (status, v) = (resp.code?, resp.version?);
            let start = StartLine::Response { status, reason: resp.reason.unwrap_or_default().to_owned() };
            (start, v)
        }
    };
    Some(Head { start, version: Version::from_minor(version), headers: Headers::new() })
}

/// How the body of a message is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    NoBody,
    Length(u64),
    Chunked,
    /// Response body runs until the connection closes.
    UntilClose,
}

/// What the response's request implies for framing and upgrades.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Head,
    Connect,
    Other,
    /// No request was waiting.
    Unknown,
}

/// Framing for a message, plus anomalies noted on the way. `Err` carries
/// the anomaly that makes the body length unknowable.
pub(crate) struct FramingDecision {
    pub framing: Result<Framing, Anomaly>,
    pub anomalies: Vec<Anomaly>,
}

pub(crate) fn request_framing(headers: &Headers) -> FramingDecision {
    framing(headers, false)
}

pub(crate) fn response_framing(headers: &Headers, status: u16, req: RequestKind) -> FramingDecision {
    let no_body = (100..200).contains(&status)
        || status == 204
        || status == 304
        || req == RequestKind::Head
        || (req == RequestKind::Connect && (200..300).contains(&status));
    if no_body {
        return FramingDecision { framing: Ok(Framing::NoBody), anomalies: Vec::new() };
    }
    framing(headers, true)
}

fn framing(headers: &Headers, is_response: bool) -> FramingDecision {
    let mut anomalies = Vec::new();
    let te = chunked_is_final(headers);
    let cl = content_length(headers);
    if te.is_some() && cl.is_some() {
        note(&mut anomalies, Anomaly::TransferEncodingWithContentLength);
    }
    let framing = match (te, cl) {
        (Some(true), _) => Ok(Framing::Chunked),
        // RFC 9112 §6.3: a response is then read until close; a request is unframeable.
        (Some(false), _) | (None, None) if is_response => Ok(Framing::UntilClose),
        (Some(false), _) => Err(Anomaly::InvalidTransferEncoding),
        (None, Some(Ok(ContentLength { value, duplicate }))) => {
            if duplicate {
                note(&mut anomalies, Anomaly::DuplicateContentLength);
            }
            Ok(if value == 0 { Framing::NoBody } else { Framing::Length(value) })
        }
        (None, Some(Err(a))) => Err(a),
        (None, None) => Ok(Framing::NoBody),
    };
    if let Err(a) = framing {
        note(&mut anomalies, a);
    }
    FramingDecision { framing, anomalies }
}

/// `None` without Transfer-Encoding; otherwise whether the final coding is chunked.
fn chunked_is_final(headers: &Headers) -> Option<bool> {
    let mut present = false;
    let mut last: Option<&[u8]> = None;
    for value in headers.get_all("transfer-encoding") {
        present = true;
        for coding in value.split(|&b| b == b',') {
            let name = coding.split(|&b| b == b';').next().unwrap_or_default();
            let name = name.trim_ascii();
            if !name.is_empty() {
                last = Some(name);
            }
        }
    }
    present.then(|| last.is_some_and(|n| n.eq_ignore_ascii_case(b"chunked")))
}

struct ContentLength {
    value: u64,
    duplicate: bool,
}

/// All Content-Length fields (and comma-separated list members) must agree.
fn content_length(headers: &Headers) -> Option<Result<ContentLength, Anomaly>> {
    let mut seen: Option<u64> = None;
    let mut count = 0usize;
    let mut conflict = false;
    for value in headers.get_all("content-length") {
        for member in value.split(|&b| b == b',') {
            let Some(n) = parse_decimal(member.trim_ascii()) else {
                return Some(Err(Anomaly::InvalidContentLength));
            };
            count += 1;
            match seen {
                Some(prev) if prev != n => conflict = true,
                _ => seen = Some(n),
            }
        }
    }
    let value = seen?;
    Some(if conflict {
        Err(Anomaly::ConflictingContentLength)
    } else {
        Ok(ContentLength { value, duplicate: count > 1 })
    })
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() { acc.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.push(*n, v.as_bytes());
        }
        h
    }

    #[test]
    fn many_headers_need_retry() {
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..300 {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        match parse_head(StreamSide::Request, &raw) {
            HeadParse::Complete { head, len } => {
                assert_eq!(head.headers.len(), 300);
                assert_eq!(len, raw.len());
            }
            other => panic!("{other:?}"),
        }
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            raw.extend_from_slice(b"X: v\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        assert!(matches!(parse_head(StreamSide::Request, &raw), HeadParse::TooManyHeaders));
        let head = start_line_only(StreamSide::Request, &raw).expect("start line");
        assert_eq!(head.start, StartLine::Request { method: "GET".into(), target: "/".into() });
    }

    #[test]
    fn content_length_rules() {
        let d = request_framing(&headers(&[("Content-Length", "5"), ("content-length", "5")]));
        assert_eq!(d.framing, Ok(Framing::Length(5)));
        assert_eq!(d.anomalies, [Anomaly::DuplicateContentLength]);
        let d = request_framing(&headers(&[("Content-Length", "5, 5")]));
        assert_eq!(d.anomalies, [Anomaly::DuplicateContentLength]);
        let d = request_framing(&headers(&[("Content-Length", "5"), ("Content-Length", "6")]));
        assert_eq!(d.framing, Err(Anomaly::ConflictingContentLength));
        for bad in ["", "-1", "1x", "+5", "99999999999999999999999"] {
            let d = request_framing(&headers(&[("Content-Length", bad)]));
            assert_eq!(d.framing, Err(Anomaly::InvalidContentLength), "{bad:?}");
        }
        let d = request_framing(&headers(&[("Content-Length", "18446744073709551615")]));
        assert_eq!(d.framing, Ok(Framing::Length(u64::MAX)));
    }

    #[test]
    fn transfer_encoding_rules() {
        let d = request_framing(&headers(&[("Transfer-Encoding", "gzip, Chunked"), ("Content-Length", "3")]));
        assert_eq!(d.framing, Ok(Framing::Chunked));
        assert_eq!(d.anomalies, [Anomaly::TransferEncodingWithContentLength]);
        let h = headers(&[("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "identity")]);
        assert_eq!(request_framing(&h).framing, Err(Anomaly::InvalidTransferEncoding));
        assert_eq!(response_framing(&h, 200, RequestKind::Other).framing, Ok(Framing::UntilClose));
        let h = headers(&[("Transfer-Encoding", "chunkedchunked")]);
        assert_eq!(response_framing(&h, 200, RequestKind::Other).framing, Ok(Framing::UntilClose));
    }

    #[test]
    fn response_without_body() {
        let h = headers(&[("Content-Length", "10")]);
        for (status, kind) in [
            (204, RequestKind::Other),
            (304, RequestKind::Other),
            (100, RequestKind::Other),
            (200, RequestKind::Head),
            (200, RequestKind::Connect),
        ] {
            assert_eq!(response_framing(&h, status, kind).framing, Ok(Framing::NoBody));
        }
        assert_eq!(response_framing(&h, 407, RequestKind::Connect).framing, Ok(Framing::Length(10)));
        assert_eq!(
            response_framing(&Headers::new(), 200, RequestKind::Unknown).framing,
            Ok(Framing::UntilClose)
        );
    }
}
