//! Protocol recognition from the first bytes of a connection.
use sensor_common::proto;

/// Prefixes that start an HTTP/1.x request or response, or the HTTP/2 preface.
const HTTP_PREFIXES: [&[u8; 4]; 11] =
    [b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"PATC", b"OPTI", b"CONN", b"TRAC", b"HTTP", b"PRI "];

/// What the first four bytes of a connection say it carries.
#[inline(always)]
pub fn classify(head: [u8; 4]) -> u8 {
    if is_tls_record(head) {
        return proto::TLS;
    }
    if is_h2_settings(head) {
        return proto::HTTP;
    }
    let mut i = 0;
    while i < HTTP_PREFIXES.len() {
        if *HTTP_PREFIXES[i] == head {
            return proto::HTTP;
        }
        i += 1;
    }
    proto::OTHER
}

/// Whether these first bytes are a request (as opposed to a response). A connection that opens
/// with an HTTP/2 SETTINGS frame is one whose server speaks first.
#[inline(always)]
pub fn is_request(head: [u8; 4]) -> bool {
    head != *b"HTTP" && !is_h2_settings(head)
}

/// An HTTP/2 server connection preface: a SETTINGS frame (type 4) of a few settings (length a
/// multiple of 6 under 256). Servers such as gRPC's write it before reading anything, so a new
/// connection's first bytes may be this rather than the client's `PRI ` preface.
#[inline(always)]
pub fn is_h2_settings(head: [u8; 4]) -> bool {
    head[0] == 0 && head[1] == 0 && head[2] % 6 == 0 && head[3] == 4
}

/// Whether these bytes start a TLS record: content type 20..=23, protocol major version 3.
#[inline(always)]
pub fn is_tls_record(head: [u8; 4]) -> bool {
    (0x14..=0x17).contains(&head[0]) && head[1] == 0x03
}
