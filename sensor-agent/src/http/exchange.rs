//! Owned output types: what one parsed HTTP/1.x message looks like once it
//! leaves the parser, and the bounded body accumulator that builds [`Body`].

use bytes::{Bytes, BytesMut};

/// A request paired with its response. Either side may be missing: a request
/// that never saw a response (close or queue overflow), or a response that
/// arrived with no request waiting (capture started mid-connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub request: Option<Request>,
    pub response: Option<Response>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Raw request-target exactly as sent (origin-, absolute-, authority- or asterisk-form).
    pub target: String,
    pub version: Version,
    pub headers: Headers,
    pub body: Body,
    /// Timestamp of the segment holding the message's first byte.
    pub start_ns: u64,
    /// Timestamp of the segment holding the message's last byte.
    pub end_ns: u64,
    pub anomalies: Vec<Anomaly>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub version: Version,
    pub headers: Headers,
    pub body: Body,
    pub start_ns: u64,
    /// For close-delimited bodies this is the close timestamp.
    pub end_ns: u64,
    pub anomalies: Vec<Anomaly>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
    Http2,
}

impl Version {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2",
        }
    }

    /// httparse reports the minor version only; anything but 0 is treated as 1.1
    /// because httparse itself rejects every other major/minor pair.
    pub(crate) fn from_minor(minor: u8) -> Self {
        if minor == 0 { Version::Http10 } else { Version::Http11 }
    }
}

/// Header fields in arrival order, names as received (case preserved),
/// values as raw bytes because HTTP allows obs-text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    #[must_use]
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub(crate) fn with_capacity(n: usize) -> Self {
        Headers(Vec::with_capacity(n))
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push((name.into(), value.into()));
    }

    /// First value of `name`, compared ASCII case-insensitively.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Every value of `name`, in arrival order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Names and values as received.
    #[must_use]
    pub fn as_slice(&self) -> &[(String, Vec<u8>)] {
        &self.0
    }

    /// Bytes held by the names and values (memory accounting).
    #[must_use]
    pub fn held_bytes(&self) -> usize {
        self.0.iter().map(|(n, v)| n.len() + v.len()).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// Exact body length on the wire (decoded payload for chunked), counting
    /// bytes that fell into capture gaps.
    pub size: u64,
    /// A contiguous prefix of the payload, at most `Limits::max_body_capture`
    /// bytes. Capture stops at the first gap so this is never a spliced body.
    pub captured: Bytes,
    /// False if any gap fell inside the body or the body was cut short.
    pub complete: bool,
    pub chunked: bool,
}

/// Irregularities worth reporting; none of them stops the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// Part of the body was not captured.
    BodyGap,
    /// The connection ended (or the stream broke) before the message did.
    Truncated,
    /// Several Content-Length values that agree.
    DuplicateContentLength,
    /// Several Content-Length values that disagree: framing unknowable.
    ConflictingContentLength,
    /// Both framings present; chunked was used (RFC 9112 §6.3).
    TransferEncodingWithContentLength,
    InvalidContentLength,
    InvalidChunk,
    /// Head exceeded `max_head_bytes` (or the header-count cap); only the
    /// start line is reported.
    HeadTooLarge,
    /// A request Transfer-Encoding whose final coding is not chunked: the
    /// body length cannot be determined (RFC 9112 §6.3 rule 4).
    InvalidTransferEncoding,
    /// HTTP/2: header fields referenced HPACK table entries the capture never saw (it joined
    /// the connection late, or lost header blocks); they are left out, not guessed.
    HpackUndecodable,
    /// HTTP/2: the stream was reset (`RST_STREAM`) or abandoned by GOAWAY before it completed.
    StreamReset,
}

impl Request {
    /// Bytes this request holds (memory accounting).
    #[must_use]
    pub fn held_bytes(&self) -> usize {
        self.method.len() + self.target.len() + self.headers.held_bytes() + self.body.captured.len()
    }
}

impl Anomaly {
    /// The exported name of the anomaly.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::BodyGap => "body_gap",
            Anomaly::Truncated => "truncated",
            Anomaly::DuplicateContentLength => "duplicate_content_length",
            Anomaly::ConflictingContentLength => "conflicting_content_length",
            Anomaly::TransferEncodingWithContentLength => "transfer_encoding_with_content_length",
            Anomaly::InvalidContentLength => "invalid_content_length",
            Anomaly::InvalidChunk => "invalid_chunk",
            Anomaly::HeadTooLarge => "head_too_large",
            Anomaly::InvalidTransferEncoding => "invalid_transfer_encoding",
            Anomaly::HpackUndecodable => "hpack_undecodable",
            Anomaly::StreamReset => "stream_reset",
        }
    }
}

/// Adds `a` once; anomalies form a set so the Vec stays bounded by the
/// number of variants.
pub(crate) fn note(anomalies: &mut Vec<Anomaly>, a: Anomaly) {
    if !anomalies.contains(&a) {
        anomalies.push(a);
    }
}

/// Builds a [`Body`] without ever holding more than the capture limit.
#[derive(Debug)]
pub(crate) struct BodyBuilder {
    size: u64,
    capture: Capture,
    limit: usize,
    /// Set by the first gap: later bytes are counted but not captured.
    gapped: bool,
    truncated: bool,
    chunked: bool,
}

#[derive(Debug)]
enum Capture {
    Empty,
    /// Zero-copy view into a single segment while the body fits in one.
    Shared(Bytes),
    Owned(BytesMut),
}

impl BodyBuilder {
    pub(crate) fn new(limit: usize, chunked: bool) -> Self {
        BodyBuilder { size: 0, capture: Capture::Empty, limit, gapped: false, truncated: false, chunked }
    }

    /// Payload bytes `src[start..end]` were seen.
    pub(crate) fn data(&mut self, src: &Bytes, start: usize, end: usize) {
        let len = end.saturating_sub(start);
        self.size = self.size.saturating_add(len as u64);
        if self.gapped {
            return;
        }
        let have = self.captured_len();
        let take = len.min(self.limit.saturating_sub(have));
        if take == 0 {
            return;
        }
        let Some(piece) = src.get(start..start + take) else {
            return;
        };
        self.capture = match std::mem::replace(&mut self.capture, Capture::Empty) {
            // Sharing pins the whole segment; only worth it when the segment
            // is not much larger than what we keep.
            Capture::Empty if src.len() <= self.limit.saturating_mul(2) => {
                Capture::Shared(src.slice(start..start + take))
            }
            Capture::Empty => Capture::Owned(BytesMut::from(piece)),
            Capture::Shared(prev) => {
                let mut buf = BytesMut::with_capacity((prev.len() + take).min(self.limit));
                buf.extend_from_slice(&prev);
                buf.extend_from_slice(piece);
                Capture::Owned(buf)
            }
            Capture::Owned(mut buf) => {
                buf.extend_from_slice(piece);
                Capture::Owned(buf)
            }
        };
    }

    /// `len` body bytes exist but were not captured.
    pub(crate) fn gap(&mut self, len: u64) {
        self.size = self.size.saturating_add(len);
        self.gapped = true;
    }

    /// The message ended before its framing said it would.
    pub(crate) fn truncate(&mut self) {
        self.truncated = true;
    }

    pub(crate) fn held_bytes(&self) -> usize {
        self.captured_len()
    }

    fn captured_len(&self) -> usize {
        match &self.capture {
            Capture::Empty => 0,
            Capture::Shared(b) => b.len(),
            Capture::Owned(b) => b.len(),
        }
    }

    pub(crate) fn finish(self) -> Body {
        let captured = match self.capture {
            Capture::Empty => Bytes::new(),
            Capture::Shared(b) => b,
            Capture::Owned(b) => b.freeze(),
        };
        Body { size: self.size, captured, complete: !self.gapped && !self.truncated, chunked: self.chunked }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_case_insensitive_and_ordered() {
        let mut h = Headers::new();
        h.push("Content-Type", b"a".to_vec());
        h.push("X-Dup", b"1".to_vec());
        h.push("x-dup", b"2".to_vec());
        assert_eq!(h.get("content-type"), Some(&b"a"[..]));
        assert_eq!(h.get("X-DUP"), Some(&b"1"[..]));
        assert_eq!(h.get_all("x-dup").count(), 2);
        assert_eq!(h.len(), 3);
        assert!(h.get("missing").is_none());
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Content-Type", "X-Dup", "x-dup"]);
    }

    #[test]
    fn body_builder_caps_capture_and_stops_at_gap() {
        let src = Bytes::from_static(b"abcdefgh");
        let mut b = BodyBuilder::new(5, false);
        b.data(&src, 0, 3);
        b.data(&src, 3, 8);
        let body = b.finish();
        assert_eq!(body.size, 8);
        assert_eq!(&body.captured[..], b"abcde");
        assert!(body.complete);

        let mut b = BodyBuilder::new(100, false);
        b.data(&src, 0, 2);
        b.gap(10);
        b.data(&src, 2, 4);
        let body = b.finish();
        assert_eq!(body.size, 14);
        assert_eq!(&body.captured[..], b"ab");
        assert!(!body.complete);
    }

    #[test]
    fn version_strings() {
        assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
        assert_eq!(Version::Http11.as_str(), "HTTP/1.1");
        assert_eq!(Version::Http2.as_str(), "HTTP/2");
    }
}
