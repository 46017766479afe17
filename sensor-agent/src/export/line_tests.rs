//! The hand-written line must be byte-for-byte what serde writes for the same record.
use std::{collections::BTreeMap, sync::Arc};

use super::*;
use crate::{
    capture::{ConnMeta, Origin, Role, pods::PodInfo},
    detect::{
        analytics::{ClientIdentity, IdentityKind},
        sensitive::{Confidence, Finding, Side},
    },
    export::record::RpcRecord,
};

fn meta() -> Arc<ConnMeta> {
    Arc::new(ConnMeta {
        conn_id: 7,
        tgid: 42,
        fd: 3,
        role: Role::Server,
        origin: Origin::Accept,
        comm: "nginx".into(),
        exe: None,
        local: None,
        remote: None,
        opened_ns: 0,
        tls: false,
        service: String::new(),
        container_id: None,
    })
}

/// Strings that exercise every escaping rule: each control character, quotes, backslashes,
/// DEL, multi-byte UTF-8, and escapes at both ends and at every offset of an 8-byte word.
fn tricky_strings() -> Vec<String> {
    let mut v: Vec<String> = vec![
        String::new(),
        "plain".into(),
        "exactly8".into(),
        "\"quoted\"".into(),
        "back\\slash\\".into(),
        "tab\tnew\nline\rcr\x08bs\x0cff".into(),
        "\x7fDEL and \u{e9}t\u{e9} \u{1f600} \u{2028}".into(),
        "ünïcödé ключ 鍵".into(),
    ];
    v.push((0u8..0x20).map(char::from).collect());
    for at in 0..17 {
        let mut s: String = "abcdefghijklmnop".into();
        s.insert(at, '"');
        v.push(s.clone());
        s.insert(at, '\u{1}');
        v.push(s);
    }
    v
}

fn request(method: &str, path: &str, query: Option<&str>, headers: &[(&str, &str)]) -> RequestRecord {
    RequestRecord {
        method: method.into(),
        path: path.into(),
        query: query.map(Into::into),
        version: "HTTP/1.1",
        headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        body_size: 0,
        anomalies: Vec::new(),
    }
}

fn response(status: u16, headers: BTreeMap<String, String>, anomalies: Vec<&'static str>) -> ResponseRecord {
    ResponseRecord { status, version: "HTTP/2", headers, body_size: u64::MAX, anomalies }
}

fn bare() -> ExchangeRecord {
    ExchangeRecord {
        ts: "2026-12-03T05:46:29.141150Z".into(),
        duration_ms: None,
        role: "server",
        tls: false,
        pid: 0,
        process: String::new(),
        exe: None,
        service: String::new(),
        container_id: None,
        k8s: None,
        local: None,
        remote: None,
        conn_id: 0,
        request: None,
        response: None,
        complete: false,
        findings: Vec::new(),
        endpoint: None,
        client: None,
        events: Vec::new(),
        rpc: None,
        meta: meta(),
        start_unix_ns: 0,
        end_unix_ns: 0,
    }
}

fn full(s: &str) -> ExchangeRecord {
    let mut headers = BTreeMap::new();
    headers.insert(s.to_owned(), s.to_owned());
    headers.insert("content-type".into(), "application/json".into());
    ExchangeRecord {
        duration_ms: Some(0.078_839),
        role: "client",
        tls: true,
        pid: u32::MAX,
        process: s.into(),
        exe: Some(s.into()),
        service: s.into(),
        container_id: Some(s.into()),
        k8s: Some(Arc::new(PodInfo {
            namespace: s.into(),
            pod: "p".into(),
            pod_uid: "u".into(),
            node: "n".into(),
            container: "c".into(),
            labels: [("app".to_owned(), s.to_owned())].into_iter().collect(),
        })),
        local: Some("127.0.0.1:18080".into()),
        remote: Some("[::1]:5".into()),
        conn_id: u64::MAX,
        request: Some(request(s, s, Some(s), &[("host", s), ("a", "")])),
        response: Some(response(599, headers, vec!["truncated", "gap"])),
        complete: true,
        findings: vec![Finding {
            detector: "card".into(),
            confidence: Confidence::High,
            location: format!("request.header:{s}"),
            side: Side::Request,
            count: 2,
            sample: s.into(),
            value_hash: None,
        }],
        endpoint: Some(EndpointRecord {
            route: s.into(),
            status: "shadow",
            spec: Some(s.into()),
            spec_binding: Some("host"),
            operation_id: Some(s.into()),
            new: true,
        }),
        client: Some(ClientIdentity { kind: IdentityKind::Peer, id: s.into() }),
        rpc: Some(RpcRecord {
            system: "grpc",
            service: s.into(),
            method: s.into(),
            grpc_status_code: Some(3),
        }),
        ..bare()
    }
}

fn assert_same(record: &ExchangeRecord) {
    let mut ours = Vec::new();
    write_record(&mut ours, record).unwrap();
    let theirs = serde_json::to_vec(record).unwrap();
    assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
}

#[test]
fn equals_serde_on_a_bare_record() {
    assert_same(&bare());
}

#[test]
fn equals_serde_with_every_field_and_every_escape() {
    for s in tricky_strings() {
        assert_same(&full(&s));
    }
}

#[test]
fn equals_serde_with_optional_parts_absent() {
    let mut r = full("x");
    r.findings.clear();
    r.client = None;
    r.rpc = None;
    r.k8s = None;
    r.exe = None;
    r.container_id = None;
    r.local = None;
    r.response = None;
    r.duration_ms = Some(f64::NAN);
    if let Some(e) = r.endpoint.as_mut() {
        e.spec = None;
        e.spec_binding = None;
        e.operation_id = None;
    }
    if let Some(q) = r.request.as_mut() {
        q.query = None;
        q.headers.clear();
        q.anomalies = vec!["head_too_large"];
    }
    assert_same(&r);
    r.endpoint = None;
    r.request = None;
    r.duration_ms = Some(1e-9);
    assert_same(&r);
    r.duration_ms = Some(123_456_789.5);
    assert_same(&r);
}

#[test]
fn integers_at_their_limits() {
    for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
        let mut out = Vec::new();
        integer(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
}

#[test]
fn every_byte_value_escapes_as_serde_does() {
    for b in 0u8..0x80 {
        for len in [1, 7, 8, 9, 16] {
            let s: String = std::iter::repeat_n(char::from(b), len).collect();
            let mut ours = Vec::new();
            string(&mut ours, &s);
            assert_eq!(ours, serde_json::to_vec(&s).unwrap(), "byte {b:#x} x{len}");
        }
    }
}
