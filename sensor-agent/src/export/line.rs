//! The JSON line of an exchange, written by hand into a reused buffer.
//!
//! `serde_json::to_writer` on an [`ExchangeRecord`] spent more instructions per exchange than
//! HTTP parsing: the flattened endpoint turns the record into a map of dynamic entries, and its
//! string escaping looks at one byte at a time. This writer produces the same bytes as
//! `serde_json::to_vec(record)` (the derived `Serialize` stays the reference, and the tests below
//! compare the two on varied records); the parts that are rare or nested (findings, client, pod,
//! RPC) still go through serde.
use std::collections::BTreeMap;

use serde::Serialize;

use super::record::{EndpointRecord, ExchangeRecord, RequestRecord, ResponseRecord};

/// Appends the JSON object of `record` (no newline) to `out`.
pub fn write_record(out: &mut Vec<u8>, record: &ExchangeRecord) -> serde_json::Result<()> {
    out.push(b'{');
    key(out, "ts", true);
    string(out, &record.ts);
    key(out, "duration_ms", false);
    match record.duration_ms {
        Some(ms) => serde_json::to_writer(&mut *out, &ms)?,
        None => out.extend_from_slice(b"null"),
    }
    key(out, "role", false);
    string(out, record.role);
    key(out, "tls", false);
    boolean(out, record.tls);
    key(out, "pid", false);
    integer(out, u64::from(record.pid));
    key(out, "process", false);
    string(out, &record.process);
    key(out, "exe", false);
    optional_string(out, record.exe.as_deref());
    key(out, "service", false);
    string(out, &record.service);
    if let Some(id) = &record.container_id {
        key(out, "container_id", false);
        string(out, id);
    }
    if let Some(pod) = &record.k8s {
        key(out, "k8s", false);
        serde(out, pod)?;
    }
    key(out, "local", false);
    optional_string(out, record.local.as_deref());
    key(out, "remote", false);
    optional_string(out, record.remote.as_deref());
    key(out, "conn_id", false);
    integer(out, record.conn_id);
    key(out, "request", false);
    match &record.request {
        Some(r) => request(out, r),
        None => out.extend_from_slice(b"null"),
    }
    key(out, "response", false);
    match &record.response {
        Some(r) => response(out, r),
        None => out.extend_from_slice(b"null"),
    }
    key(out, "complete", false);
    boolean(out, record.complete);
    if !record.findings.is_empty() {
        key(out, "findings", false);
        serde(out, &record.findings)?;
    }
    if let Some(e) = &record.endpoint {
        endpoint(out, e);
    }
    if let Some(client) = &record.client {
        key(out, "client", false);
        serde(out, client)?;
    }
    if let Some(rpc) = &record.rpc {
        key(out, "rpc", false);
        serde(out, rpc)?;
    }
    out.push(b'}');
    Ok(())
}

/// The endpoint's fields, at the top level of the line (serde's `flatten`).
fn endpoint(out: &mut Vec<u8>, e: &EndpointRecord) {
    key(out, "route", false);
    string(out, &e.route);
    key(out, "endpoint_status", false);
    string(out, e.status);
    if let Some(spec) = &e.spec {
        key(out, "spec", false);
        string(out, spec);
    }
    if let Some(binding) = e.spec_binding {
        key(out, "spec_binding", false);
        string(out, binding);
    }
    if let Some(id) = &e.operation_id {
        key(out, "operation_id", false);
        string(out, id);
    }
}

fn request(out: &mut Vec<u8>, r: &RequestRecord) {
    out.push(b'{');
    key(out, "method", true);
    string(out, &r.method);
    key(out, "path", false);
    string(out, &r.path);
    if let Some(q) = &r.query {
        key(out, "query", false);
        string(out, q);
    }
    key(out, "version", false);
    string(out, r.version);
    key(out, "headers", false);
    headers(out, &r.headers);
    key(out, "body_size", false);
    integer(out, r.body_size);
    anomalies(out, &r.anomalies);
    out.push(b'}');
}

fn response(out: &mut Vec<u8>, r: &ResponseRecord) {
    out.push(b'{');
    key(out, "status", true);
    integer(out, u64::from(r.status));
    key(out, "version", false);
    string(out, r.version);
    key(out, "headers", false);
    headers(out, &r.headers);
    key(out, "body_size", false);
    integer(out, r.body_size);
    anomalies(out, &r.anomalies);
    out.push(b'}');
}

fn headers(out: &mut Vec<u8>, h: &BTreeMap<String, String>) {
    out.push(b'{');
    for (i, (name, value)) in h.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        string(out, value);
    }
    out.push(b'}');
}

fn anomalies(out: &mut Vec<u8>, list: &[&'static str]) {
    if list.is_empty() {
        return;
    }
    key(out, "anomalies", false);
    out.push(b'[');
    for (i, a) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, a);
    }
    out.push(b']');
}

fn serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, value)
}

/// `"name":`, after a comma unless it is the object's first entry. Names here are literals
/// that need no escaping.
fn key(out: &mut Vec<u8>, name: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn integer(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn optional_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string as `serde_json` writes it: `"` and `\` escaped, control characters as `\b`, `\t`,
/// `\n`, `\f`, `\r` or `\u00xx` (lower-case hex), everything else (DEL, non-ASCII) as is.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut clean = 0;
    let mut i = 0;
    // Eight bytes at a time: most values hold nothing to escape, so whole words are skipped.
    while i + 8 <= bytes.len() {
        let word = bytes.get(i..i + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes);
        if !needs_escape(word) {
            i += 8;
            continue;
        }
        for _ in 0..8 {
            escape_at(out, bytes, &mut clean, i);
            i += 1;
        }
    }
    // The tail, padded with a byte that needs no escape, is one more word.
    let tail = bytes.get(i..).unwrap_or_default();
    let mut padded = [b'a'; 8];
    padded.get_mut(..tail.len()).unwrap_or_default().copy_from_slice(tail);
    if needs_escape(u64::from_le_bytes(padded)) {
        while i < bytes.len() {
            escape_at(out, bytes, &mut clean, i);
            i += 1;
        }
    }
    out.extend_from_slice(bytes.get(clean..).unwrap_or_default());
    out.push(b'"');
}

/// Whether any byte of `word` is below 0x20, `"` or `\` (exact: no false negatives, and the
/// borrow of the subtraction cannot cross into a byte that is itself a match).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (control | zero_byte(word ^ (ONES * u64::from(b'"'))) | zero_byte(word ^ (ONES * u64::from(b'\\')))) != 0
}

/// Escapes byte `i` if it must be, first copying the clean run before it.
fn escape_at(out: &mut Vec<u8>, bytes: &[u8], clean: &mut usize, i: usize) {
    let Some(&b) = bytes.get(i) else {
        return;
    };
    let escaped: &[u8] = match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\x08' => b"\\b",
        b'\t' => b"\\t",
        b'\n' => b"\\n",
        b'\x0c' => b"\\f",
        b'\r' => b"\\r",
        0..0x20 => b"",
        _ => return,
    };
    out.extend_from_slice(bytes.get(*clean..i).unwrap_or_default());
    *clean = i + 1;
    if escaped.is_empty() {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(b"\\u00");
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    } else {
        out.extend_from_slice(escaped);
    }
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
