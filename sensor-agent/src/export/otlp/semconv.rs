//! The one place exchanges become OpenTelemetry spans, per the HTTP semantic conventions
//! (stable `http.*`, `url.*`, `server.*`, `client.*`, `network.*`, `user_agent.*`); apisense's own
//! attributes live under `apisense.*`. Values come from the exchange record, which is already
//! masked (credentials, secret query values): nothing raw reaches a span.
use std::net::SocketAddr;

use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value},
    resource::v1::Resource,
    trace::v1::{Span, Status, span, status},
};

use crate::{
    capture::Role,
    export::record::{ExchangeRecord, RpcRecord},
};

/// Resource attributes shared by every span of one process.
#[must_use]
pub fn resource(record: &ExchangeRecord, service_override: Option<&str>, host_name: &str) -> Resource {
    let meta = &record.meta;
    let mut attributes = vec![
        kv_str("service.name", service_override.unwrap_or(&meta.service)),
        kv_str("host.name", host_name),
        kv_int("process.pid", i64::from(meta.tgid)),
        kv_str("process.executable.name", &meta.comm),
        kv_str("telemetry.sdk.name", "apisense"),
        kv_str("telemetry.sdk.language", "rust"),
    ];
    if let Some(exe) = &meta.exe {
        attributes.push(kv_str("process.executable.path", exe));
    }
    if let Some(id) = &meta.container_id {
        attributes.push(kv_str("container.id", id));
    }
    if let Some(pod) = &record.k8s {
        attributes.extend([
            kv_str("k8s.namespace.name", &pod.namespace),
            kv_str("k8s.pod.name", &pod.pod),
            kv_str("k8s.pod.uid", &pod.pod_uid),
            kv_str("k8s.node.name", &pod.node),
            kv_str("k8s.container.name", &pod.container),
        ]);
        attributes.extend(pod.labels.iter().map(|(k, v)| kv_str(&format!("k8s.pod.label.{k}"), v)));
    }
    Resource { attributes, ..Resource::default() }
}

/// Which resource a span belongs to (spans are batched per resource).
#[must_use]
pub fn resource_key(record: &ExchangeRecord) -> u32 {
    record.meta.tgid
}

/// One span per exchange: SERVER from the server's view, CLIENT from the client's.
#[must_use]
#[expect(clippy::too_many_lines, reason = "one attribute per line, in the order of the conventions")]
pub fn span(record: &ExchangeRecord, ids: &mut IdSource) -> Span {
    let meta = &record.meta;
    let request = record.request.as_ref();
    let response = record.response.as_ref();
    let method = request.map_or("_OTHER", |r| known_method(&r.method));
    let route = record.endpoint.as_ref().map(|e| e.route.as_str());
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let parent = request.and_then(|r| r.headers.get("traceparent")).and_then(|t| parse_traceparent(t));
    let (trace_id, parent_span_id) = match parent {
        Some((trace, span)) => (trace.to_vec(), span.to_vec()),
        None => (ids.trace_id().to_vec(), Vec::new()),
    };
    let (server, client) = match meta.role {
        Role::Server => (meta.local, meta.remote),
        Role::Client => (meta.remote, meta.local),
    };
    let mut attributes = Vec::with_capacity(24);
    if let Some(r) = request {
        attributes.push(kv_str("http.request.method", method));
        if method == "_OTHER" {
            attributes.push(kv_str("http.request.method_original", &r.method));
        }
        attributes.push(kv_str("url.path", &r.path));
        if let Some(q) = &r.query {
            attributes.push(kv_str("url.query", q));
        }
        attributes.push(kv_str("url.scheme", if record.tls { "https" } else { "http" }));
        attributes.push(kv_str("network.protocol.version", r.version.trim_start_matches("HTTP/")));
        attributes.push(kv_int("http.request.body.size", as_i64(r.body_size)));
        if let Some(ua) = r.headers.get("user-agent") {
            attributes.push(kv_str("user_agent.original", ua));
        }
    }
    if let Some(route) = route {
        attributes.push(kv_str("http.route", route));
    }
    if let Some(r) = response {
        attributes.push(kv_int("http.response.status_code", i64::from(r.status)));
        attributes.push(kv_int("http.response.body.size", as_i64(r.body_size)));
    }
    let host_header = request.and_then(|r| r.headers.get("host")).map(String::as_str);
    push_server(&mut attributes, host_header, server);
    if let Some(c) = client {
        attributes.push(kv_str("client.address", &c.ip().to_string()));
        attributes.push(kv_int("client.port", i64::from(c.port())));
    }
    if let Some(peer) = meta.remote {
        attributes.push(kv_str("network.peer.address", &peer.ip().to_string()));
        attributes.push(kv_int("network.peer.port", i64::from(peer.port())));
    }
    push_rpc(&mut attributes, record.rpc.as_ref());
    attributes.push(kv_bool("apisense.tls", record.tls));
    attributes.push(kv_bool("apisense.complete", record.complete));
    attributes.push(kv_int("apisense.connection.id", as_i64(record.conn_id)));
    if let Some(e) = &record.endpoint {
        attributes.push(kv_str("apisense.endpoint.status", e.status));
        if let Some(op) = &e.operation_id {
            attributes.push(kv_str("apisense.endpoint.operation_id", op));
        }
        // Which rule bound the spec: a trace reader can tell a documented call on its
        // published host from one matched on a host no spec claims.
        if let Some(binding) = e.spec_binding {
            attributes.push(kv_str("apisense.endpoint.spec_binding", binding));
        }
    }
    if !record.findings.is_empty() {
        let mut types: Vec<&str> = record.findings.iter().map(|f| f.detector.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        attributes.push(kv_strs("apisense.sensitive.types", &types));
    }
    let events = record
        .findings
        .iter()
        .map(|f| span::Event {
            time_unix_nano: record.start_unix_ns,
            name: "apisense.sensitive_data".to_owned(),
            attributes: vec![
                kv_str("apisense.sensitive.detector", &f.detector),
                kv_str("apisense.sensitive.confidence", confidence(f)),
                kv_str("apisense.sensitive.location", &f.location),
                kv_int("apisense.sensitive.count", i64::from(f.count)),
                kv_str("apisense.sensitive.sample", &f.sample),
            ],
            ..span::Event::default()
        })
        .collect();
    let status = status_for(meta.role, response.map(|r| r.status));
    Span {
        trace_id,
        span_id: ids.span_id().to_vec(),
        parent_span_id,
        name,
        kind: match meta.role {
            Role::Server => span::SpanKind::Server,
            Role::Client => span::SpanKind::Client,
        } as i32,
        start_time_unix_nano: record.start_unix_ns,
        end_time_unix_nano: record.end_unix_ns.max(record.start_unix_ns),
        attributes,
        events,
        status: Some(status),
        ..Span::default()
    }
}

/// `rpc.*` attributes of a gRPC call (OpenTelemetry RPC and gRPC conventions).
fn push_rpc(attributes: &mut Vec<KeyValue>, rpc: Option<&RpcRecord>) {
    let Some(rpc) = rpc else { return };
    attributes.push(kv_str("rpc.system", rpc.system));
    attributes.push(kv_str("rpc.service", &rpc.service));
    attributes.push(kv_str("rpc.method", &rpc.method));
    if let Some(code) = rpc.grpc_status_code {
        attributes.push(kv_int("rpc.grpc.status_code", i64::from(code)));
    }
}

fn confidence(f: &crate::detect::sensitive::Finding) -> &'static str {
    use crate::detect::sensitive::Confidence;
    match f.confidence {
        Confidence::Low => "low",
        Confidence::Medium => "medium",
        Confidence::High => "high",
    }
}

/// `server.address`/`server.port`: the Host header names the server as the client meant it;
/// the socket says where it really was.
fn push_server(attributes: &mut Vec<KeyValue>, host_header: Option<&str>, socket: Option<SocketAddr>) {
    let from_header = host_header.and_then(|h| {
        let h = h.trim();
        if h.is_empty() {
            return None;
        }
        match h.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || h.starts_with('[') => port
                .parse::<u16>()
                .ok()
                .map(|p| (host.trim_matches(['[', ']']).to_owned(), Some(p)))
                .or(Some((h.to_owned(), None))),
            _ => Some((h.trim_matches(['[', ']']).to_owned(), None)),
        }
    });
    match (from_header, socket) {
        (Some((host, port)), socket) => {
            attributes.push(kv_str("server.address", &host));
            if let Some(p) = port.or(socket.map(|s| s.port())) {
                attributes.push(kv_int("server.port", i64::from(p)));
            }
        }
        (None, Some(s)) => {
            attributes.push(kv_str("server.address", &s.ip().to_string()));
            attributes.push(kv_int("server.port", i64::from(s.port())));
        }
        (None, None) => {}
    }
}

/// Error status: 5xx on a server span, 4xx and 5xx on a client span (semantic conventions);
/// a missing response on a client span is an error too (the call did not complete).
fn status_for(role: Role, code: Option<u16>) -> Status {
    let error = match (role, code) {
        (Role::Server, Some(c)) => c >= 500,
        (Role::Client, Some(c)) => c >= 400,
        (Role::Client, None) => true,
        (Role::Server, None) => false,
    };
    if error {
        Status {
            code: status::StatusCode::Error as i32,
            message: code.map_or_else(|| "no response".to_owned(), |c| format!("HTTP {c}")),
        }
    } else {
        Status::default()
    }
}

/// Known methods are reported as is, anything else as `_OTHER` (bounded cardinality).
fn known_method(method: &str) -> &str {
    const KNOWN: &[&str] =
        &["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"];
    KNOWN.iter().find(|m| **m == method).copied().unwrap_or("_OTHER")
}

/// W3C `traceparent`: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; all-zero ids
/// are invalid.
#[must_use]
pub fn parse_traceparent(value: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace_id: [u8; 16] = hex(trace)?.try_into().ok()?;
    let span_id: [u8; 8] = hex(span)?.try_into().ok()?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((trace_id, span_id))
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Random-enough trace and span ids without a dependency: splitmix64 seeded from the clock and
/// the process id (ids need uniqueness, not secrecy).
pub struct IdSource {
    state: u64,
}

impl IdSource {
    #[must_use]
    pub fn new() -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        IdSource { state: (nanos as u64) ^ (u64::from(std::process::id()) << 32) }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn trace_id(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        id
    }

    fn span_id(&mut self) -> [u8; 8] {
        let mut id = self.next().to_be_bytes();
        if id == [0; 8] {
            id[7] = 1;
        }
        id
    }
}

impl Default for IdSource {
    fn default() -> Self {
        Self::new()
    }
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn kv_str(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(Value::StringValue(value.to_owned())) }),
        ..KeyValue::default()
    }
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(Value::IntValue(value)) }),
        ..KeyValue::default()
    }
}

fn kv_bool(key: &str, value: bool) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(Value::BoolValue(value)) }),
        ..KeyValue::default()
    }
}

fn kv_strs(key: &str, values: &[&str]) -> KeyValue {
    let values =
        values.iter().map(|v| AnyValue { value: Some(Value::StringValue((*v).to_owned())) }).collect();
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(Value::ArrayValue(ArrayValue { values })) }),
        ..KeyValue::default()
    }
}

/// A security finding or event as an OTLP log record: `event.name` =
/// `apisense.security.<kind>`, severity from the finding's, the reason as body.
#[must_use]
pub fn security_log(
    event: &crate::detect::analytics::SecurityEvent,
    start_unix_ns: u64,
    end_unix_ns: u64,
) -> opentelemetry_proto::tonic::logs::v1::LogRecord {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};

    use crate::detect::analytics::Severity;
    let (number, text) = match event.severity {
        Severity::Info => (SeverityNumber::Info, "INFO"),
        Severity::Low => (SeverityNumber::Info2, "INFO2"),
        Severity::Medium => (SeverityNumber::Warn, "WARN"),
        Severity::High => (SeverityNumber::Error, "ERROR"),
        Severity::Critical => (SeverityNumber::Fatal, "FATAL"),
    };
    let mut attributes = vec![
        kv_str("event.name", &format!("apisense.security.{}", event.kind.as_str())),
        kv_str("apisense.security.kind", event.kind.as_str()),
        kv_str("apisense.security.category", &event.category),
        kv_str("apisense.security.severity", event.severity.as_str()),
        kv_str("apisense.endpoint", &event.endpoint),
    ];
    if let Some(c) = &event.client {
        attributes.push(kv_str("apisense.client", c));
    }
    if let Some(h) = &event.value_hash {
        attributes.push(kv_str("apisense.value_hash", h));
    }
    LogRecord {
        time_unix_nano: start_unix_ns,
        observed_time_unix_nano: end_unix_ns,
        severity_number: number as i32,
        severity_text: text.to_owned(),
        body: Some(AnyValue { value: Some(Value::StringValue(event.reason.clone())) }),
        attributes,
        ..LogRecord::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_events_become_log_records() {
        use crate::detect::analytics::{Kind, SecurityEvent, Severity};
        let mut e = SecurityEvent::new(
            Kind::UnauthenticatedSensitiveResponse,
            Severity::High,
            "GET bank/accounts/{id}",
            Some("peer:10.0.0.66"),
            "iban returned to a request without credentials".to_owned(),
        );
        e.value_hash = Some("00112233445566778899aabbccddeeff".to_owned());
        let log = security_log(&e, 5, 6);
        assert_eq!(log.severity_text, "ERROR");
        assert_eq!(log.time_unix_nano, 5);
        let attr = |k: &str| {
            log.attributes.iter().find(|a| a.key == k).and_then(|a| match &a.value.as_ref()?.value {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
        };
        assert_eq!(
            attr("event.name").as_deref(),
            Some("apisense.security.unauthenticated_sensitive_response")
        );
        assert_eq!(attr("apisense.client").as_deref(), Some("peer:10.0.0.66"));
        assert_eq!(attr("apisense.security.category").as_deref(), Some("exposure"));
        assert_eq!(attr("apisense.value_hash").as_deref(), Some("00112233445566778899aabbccddeeff"));
    }

    #[test]
    fn traceparent_parsing() {
        let (t, s) = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t[0], 0x4b);
        assert_eq!(s[7], 0xb7);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
            "",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn error_status_follows_the_conventions() {
        let err = status::StatusCode::Error as i32;
        assert_eq!(status_for(Role::Server, Some(404)).code, 0);
        assert_eq!(status_for(Role::Server, Some(503)).code, err);
        assert_eq!(status_for(Role::Client, Some(404)).code, err);
        assert_eq!(status_for(Role::Client, None).code, err);
    }

    #[test]
    fn ids_are_distinct_and_non_zero() {
        let mut ids = IdSource::new();
        let a = ids.trace_id();
        let b = ids.trace_id();
        assert_ne!(a, b);
        assert_ne!(ids.span_id(), [0; 8]);
    }

    #[test]
    fn grpc_calls_get_rpc_attributes() {
        let rpc = RpcRecord {
            system: "grpc",
            service: "bank.v1.Payments".into(),
            method: "Charge".into(),
            grpc_status_code: Some(0),
        };
        let mut attributes = Vec::new();
        push_rpc(&mut attributes, Some(&rpc));
        let keys: Vec<&str> = attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code"]);
        assert_eq!(attributes[3].value, Some(AnyValue { value: Some(Value::IntValue(0)) }));
    }

    #[test]
    fn unknown_methods_are_other() {
        assert_eq!(known_method("GET"), "GET");
        assert_eq!(known_method("PROPFIND"), "_OTHER");
    }
}
