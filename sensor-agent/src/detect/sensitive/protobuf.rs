//! Strings inside protobuf messages without their schema (gRPC bodies), for the detectors.
//!
//! The wire format says how to skip every field but not what a length-delimited field holds: a
//! string, raw bytes, or a nested message. The walk decides per field:
//! - it is a **nested message** if its bytes parse as one: every key has a field number ≥ 1 and
//!   wire type 0 (varint), 1 (64-bit), 2 (length-delimited) or 5 (32-bit), and the lengths land
//!   exactly on the end; it is walked in turn (at most [`MAX_DEPTH`] levels);
//! - it is a **string** if it is valid UTF-8 with no control characters but tab, CR and LF;
//! - text that also parses as a message (short text can, by accident) is treated as both, so a
//!   value is never missed for looking like structure;
//! - anything else is bytes and ignored.
//!
//! Each string is scanned like a plain-text body value, at location
//! `{side}.body:grpc[{message}].{field}.{field}...` (field numbers from the outermost message).
//! Varint, fixed-width and packed numeric fields are not scanned: card numbers and account
//! identifiers sent as integers are not found. At most [`MAX_STRINGS`] strings per message.

use std::fmt::Write as _;

use super::Collector;
use crate::http::grpc;

pub(crate) const MAX_DEPTH: usize = 16;
pub(crate) const MAX_STRINGS: usize = 1024;

/// Scans the uncompressed messages of a gRPC body. Compressed messages (`grpc-encoding`) are
/// not decoded.
pub(crate) fn scan_grpc_body(col: &mut Collector<'_>, body: &[u8]) {
    let side = col.side.as_str();
    for (i, msg) in grpc::messages(body).enumerate() {
        if msg.compressed {
            continue;
        }
        let mut base = String::new();
        let _ = write!(base, "{side}.body:grpc[{i}]");
        strings(msg.payload, &mut |path, text| {
            let mut loc = base.clone();
            loc.push_str(path);
            col.scan_plain(text, &loc);
        });
    }
}

/// Calls `f(path, text)` for every string field found in `message`, path as `.1.3`.
pub(crate) fn strings(message: &[u8], f: &mut dyn FnMut(&str, &[u8])) {
    let mut path = String::new();
    let mut budget = MAX_STRINGS;
    walk(message, 0, &mut path, &mut budget, f);
}

fn walk(message: &[u8], depth: usize, path: &mut String, budget: &mut usize, f: &mut dyn FnMut(&str, &[u8])) {
    let mut pos = 0;
    while pos < message.len() && *budget > 0 {
        let Some(key) = varint(message, &mut pos) else { return };
        let field = key >> 3;
        let value = match key & 7 {
            0 => {
                if varint(message, &mut pos).is_none() {
                    return;
                }
                continue;
            }
            1 => {
                pos += 8;
                continue;
            }
            5 => {
                pos += 4;
                continue;
            }
            2 => {
                let Some(len) = varint(message, &mut pos).and_then(|l| usize::try_from(l).ok()) else {
                    return;
                };
                let Some(end) = pos.checked_add(len) else { return };
                let Some(value) = message.get(pos..end) else { return };
                pos = end;
                value
            }
            _ => return,
        };
        let base = path.len();
        let _ = write!(path, ".{field}");
        let nested = depth + 1 < MAX_DEPTH && is_message(value);
        if is_text(value) {
            *budget -= 1;
            f(path, value);
        }
        if nested {
            walk(value, depth + 1, path, budget, f);
        }
        path.truncate(base);
    }
}

/// Whether `bytes` parse as a (non-empty) message at the top level.
fn is_message(bytes: &[u8]) -> bool {
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(key) = varint(bytes, &mut pos) else { return false };
        if key >> 3 == 0 || key >> 3 > (1 << 29) - 1 {
            return false;
        }
        let skip = match key & 7 {
            0 => {
                if varint(bytes, &mut pos).is_none() {
                    return false;
                }
                0
            }
            1 => 8,
            5 => 4,
            2 => match varint(bytes, &mut pos).and_then(|l| usize::try_from(l).ok()) {
                Some(len) => len,
                None => return false,
            },
            _ => return false,
        };
        pos = match pos.checked_add(skip) {
            Some(p) if p <= bytes.len() => p,
            _ => return false,
        };
    }
    !bytes.is_empty()
}

fn is_text(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && std::str::from_utf8(bytes)
            .is_ok_and(|s| s.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n')))
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(field: u64, wire: u64, out: &mut Vec<u8>) {
        put_varint(field << 3 | wire, out);
    }

    fn put_varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn string(field: u64, s: &[u8], out: &mut Vec<u8>) {
        key(field, 2, out);
        put_varint(s.len() as u64, out);
        out.extend_from_slice(s);
    }

    fn collect(msg: &[u8]) -> Vec<(String, String)> {
        let mut found = Vec::new();
        strings(msg, &mut |p, t| found.push((p.to_owned(), String::from_utf8_lossy(t).into_owned())));
        found
    }

    #[test]
    fn strings_in_nested_messages() {
        // message Charge { int64 amount = 1; Card card = 2 { string number = 1; string name = 2; }
        //                  bytes blob = 3; fixed32 f = 4; string note = 5; }
        let mut card = Vec::new();
        string(1, b"4111111111111111", &mut card);
        string(2, b"Ada Lovelace", &mut card);
        let mut msg = Vec::new();
        key(1, 0, &mut msg);
        put_varint(1999, &mut msg);
        string(2, &card, &mut msg);
        string(3, &[0xff, 0x00, 0x80], &mut msg);
        key(4, 5, &mut msg);
        msg.extend_from_slice(&[1, 2, 3, 4]);
        string(5, "naïve\nnote".as_bytes(), &mut msg);
        let found = collect(&msg);
        assert!(found.contains(&(".2.1".into(), "4111111111111111".into())), "{found:?}");
        assert!(found.contains(&(".2.2".into(), "Ada Lovelace".into())));
        assert!(found.contains(&(".5".into(), "naïve\nnote".into())));
        assert!(!found.iter().any(|(p, _)| p == ".3"), "bytes are not text");
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        for bytes in [&[0x0a, 0xff][..], &[0x0a, 0x05, b'a'], &[0x08], &[0x0b, 0x00], &[0xff; 12], &[]] {
            let _ = collect(bytes);
        }
        // Deep nesting stops at the depth cap.
        let mut msg = Vec::new();
        string(1, b"deep 4111111111111111", &mut msg);
        for _ in 0..40 {
            let mut outer = Vec::new();
            string(1, &msg, &mut outer);
            msg = outer;
        }
        assert!(collect(&msg).iter().all(|(p, _)| p.matches('.').count() <= MAX_DEPTH));
    }
}

#[cfg(test)]
mod detect_tests {
    use super::super::tests::det;
    use super::super::{ExchangeView, MessageView, Side};
    use crate::http::grpc;

    #[test]
    fn card_in_a_grpc_request_message_is_found_and_masked() {
        // message { string card = 1; Nested n = 2 { string email = 3; } }
        let mut msg = vec![0x0a, 16];
        msg.extend_from_slice(b"4111111111111111");
        msg.extend_from_slice(&[0x12, 18, 0x1a, 16]);
        msg.extend_from_slice(b"ada@example.test");
        let mut body = grpc::frame(b"");
        body.extend(grpc::frame(&msg));
        let headers = vec![("content-type".to_owned(), b"application/grpc".to_vec())];
        let view = ExchangeView {
            method: "POST",
            target: "/bank.v1.Payments/Charge",
            request: Some(MessageView {
                headers: &headers,
                body: &body,
                content_type: Some("application/grpc"),
            }),
            response: None,
        };
        let findings = det().inspect(&view);
        let card = findings.iter().find(|f| f.location == "request.body:grpc[1].1").expect("card found");
        assert_eq!(card.side, Side::Request);
        assert!(!card.sample.contains("4111111111111111"), "masked: {}", card.sample);
        assert!(findings.iter().any(|f| f.location == "request.body:grpc[1].2.3"), "{findings:?}");
    }
}
