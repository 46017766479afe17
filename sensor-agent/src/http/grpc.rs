//! gRPC over HTTP/2 (the PROTOCOL-HTTP2 document of grpc/grpc): which exchanges are calls, what
//! they call, how they ended, and the length-prefixed messages in their bodies.
//!
//! A call is an exchange whose request has `content-type: application/grpc` (or a `+proto`,
//! `+json`, `-web`... variant). Its path is `/{package.Service}/{Method}`; its status is the
//! `grpc-status` trailer, or the header of a trailers-only response (both end up in the
//! response's headers). Each message in a body is a 5-byte prefix (compressed flag, big-endian
//! u32 length) and the message bytes.

use super::Headers;

/// What a gRPC call names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call<'a> {
    pub service: &'a str,
    pub method: &'a str,
}

/// True if these (request) headers declare a gRPC body.
#[must_use]
pub fn is_grpc(headers: &Headers) -> bool {
    headers.get("content-type").is_some_and(is_grpc_content_type)
}

/// `application/grpc` and its variants, compared case-insensitively.
#[must_use]
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    value.trim_ascii_start().get(..GRPC.len()).is_some_and(|p| p.eq_ignore_ascii_case(GRPC))
}

/// Service and method from a request path `/package.Service/Method`.
#[must_use]
pub fn call(path: &str) -> Option<Call<'_>> {
    let path = path.split('?').next().unwrap_or_default();
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some(Call { service, method })
}

/// The call's status code from `grpc-status` (trailer, or header of a trailers-only response).
#[must_use]
pub fn status(headers: &Headers) -> Option<u32> {
    let v = headers.get("grpc-status")?;
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// One length-prefixed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub compressed: bool,
    /// The message bytes, possibly cut short where the captured body ends.
    pub payload: &'a [u8],
    /// False if the body ended before the message did.
    pub whole: bool,
}

/// The messages of a (captured prefix of a) gRPC body, in order.
pub fn messages(body: &[u8]) -> impl Iterator<Item = Message<'_>> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let (prefix, after) = rest.split_first_chunk::<5>()?;
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        let compressed = prefix[0] & 1 != 0;
        let whole = after.len() >= len;
        let (payload, tail) = after.split_at(len.min(after.len()));
        rest = tail;
        Some(Message { compressed, payload, whole })
    })
}

/// Frames `payload` as one uncompressed message (tests and fixtures).
#[must_use]
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(0);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_status() {
        assert_eq!(
            call("/pay.v1.Payments/Charge"),
            Some(Call { service: "pay.v1.Payments", method: "Charge" })
        );
        assert_eq!(
            call("/grpc.health.v1.Health/Check"),
            Some(Call { service: "grpc.health.v1.Health", method: "Check" })
        );
        assert_eq!(call("/"), None);
        assert_eq!(call("/a/b/c"), None);
        assert_eq!(call("nope"), None);
        let mut h = Headers::new();
        h.push("content-type", b"application/grpc+proto".to_vec());
        assert!(is_grpc(&h));
        h.push("grpc-status", b"5".to_vec());
        assert_eq!(status(&h), Some(5));
        let mut json = Headers::new();
        json.push("Content-Type", b"application/json".to_vec());
        assert!(!is_grpc(&json));
    }

    #[test]
    fn messages_are_framed_and_cut_bodies_say_so() {
        let mut body = frame(b"one");
        body.extend(frame(b""));
        body.extend([1, 0, 0, 0, 9, b'x']);
        let m: Vec<Message<'_>> = messages(&body).collect();
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].payload, m[0].whole, m[0].compressed), (&b"one"[..], true, false));
        assert_eq!((m[1].payload, m[1].whole), (&b""[..], true));
        assert_eq!((m[2].payload, m[2].whole, m[2].compressed), (&b"x"[..], false, true));
        assert_eq!(messages(&[0, 0]).count(), 0);
    }
}
