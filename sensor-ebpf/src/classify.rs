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
    let mut i = 0;
    while i < HTTP_PREFIXES.len() {
        if *HTTP_PREFIXES[i] == head {
            return proto::HTTP;
        }
        i += 1;
    }
    proto::OTHER
}

/// Whether these first bytes are a request (as opposed to a response).
#[inline(always)]
pub fn is_request(head: [u8; 4]) -> bool {
    head != *b"HTTP"
}

/// Whether these bytes start a TLS record: content type 20..=23, protocol major version 3.
#[inline(always)]
pub fn is_tls_record(head: [u8; 4]) -> bool {
    (0x14..=0x17).contains(&head[0]) && head[1] == 0x03
}
