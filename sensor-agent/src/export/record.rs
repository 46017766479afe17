//! The exported form of an exchange (one JSON object per line in JSONL). Secrets are masked here,
//! on the way out: header credentials, secret-named query parameters.
use std::{collections::BTreeMap, sync::Arc};

use serde::Serialize;

use super::{clock::Clock, timestamp};
use crate::{
    capture::{ConnMeta, addr, pods::PodInfo},
    detect::{
        Assessment,
        analytics::{ClientIdentity, SecurityEvent},
        sensitive::{Finding, mask},
    },
    http::{Anomaly, Body, Exchange, Headers, Request, Response, Version, grpc, stage::Observed},
};

#[derive(Debug, Serialize)]
pub struct ExchangeRecord {
    /// Wall-clock time of the request's first byte (or the response's, without a request).
    pub ts: String,
    /// From the request's first byte to the response's last byte.
    pub duration_ms: Option<f64>,
    pub role: &'static str,
    pub tls: bool,
    pub pid: u32,
    pub process: String,
    pub exe: Option<String>,
    /// Service name derived from the process (its program, or the script an interpreter runs).
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The pod the container belongs to, from the Kubernetes API (namespace, pod, uid, node,
    /// container name, labels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<Arc<PodInfo>>,
    pub local: Option<String>,
    pub remote: Option<String>,
    pub conn_id: u64,
    pub request: Option<RequestRecord>,
    pub response: Option<ResponseRecord>,
    /// Both messages seen whole, without gaps.
    pub complete: bool,
    /// Sensitive data seen in this exchange: detector, confidence, location, side, count and a
    /// masked sample (never the value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// The endpoint this exchange belongs to in the inventory (`route`, `endpoint_status`,
    /// `spec`, `operation_id` at the top level of the line).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointRecord>,
    /// Who made the request: `{"kind":"jwt","id":"client_id=tpp-alpha"}` (JWT claim, keyed hash
    /// of an opaque token or API key, Basic user name, peer address or process), never the
    /// credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientIdentity>,
    /// Security findings and events this exchange raised: written as their own JSON lines
    /// (`"event":"security"`) after the exchange's, and as OTLP log records.
    #[serde(skip)]
    pub events: Vec<SecurityEvent>,
    /// The RPC a gRPC exchange made (absent for other traffic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc: Option<RpcRecord>,
    /// Typed facts for other exporters (spans), not part of the JSON line.
    #[serde(skip)]
    pub meta: Arc<ConnMeta>,
    #[serde(skip)]
    pub start_unix_ns: u64,
    #[serde(skip)]
    pub end_unix_ns: u64,
}

#[derive(Debug, Serialize)]
pub struct EndpointRecord {
    /// The spec's path template, or the one inferred from traffic (`http.route`).
    pub route: String,
    /// `documented`, `shadow`, `undocumented_method`, `undocumented_status`, `deprecated`, `unknown` (no spec).
    #[serde(rename = "endpoint_status")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Which rule bound the spec(s) this exchange was classified against: `config` (a
    /// `spec_binding.rules` entry), `host` (the spec's servers name the host), `any_host` (no
    /// spec claims the host, or the spec's servers are relative). Absent without specs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_binding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// First exchange of this endpoint since the inventory began.
    #[serde(skip)]
    pub new: bool,
}

/// A gRPC call, named as the OpenTelemetry RPC conventions do (`rpc.*`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RpcRecord {
    /// Always `grpc`.
    pub system: &'static str,
    /// `package.Service` from the path `/package.Service/Method`.
    pub service: String,
    pub method: String,
    /// From the `grpc-status` trailer (or header of a trailers-only response).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status_code: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub version: &'static str,
    pub headers: BTreeMap<String, String>,
    pub body_size: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ResponseRecord {
    pub status: u16,
    pub version: &'static str,
    pub headers: BTreeMap<String, String>,
    pub body_size: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<&'static str>,
}

impl ExchangeRecord {
    #[must_use]
    pub fn new(observed: &Observed, clock: &Clock, assessment: &Assessment) -> Self {
        let meta = &observed.meta;
        let ex = &observed.exchange;
        let start = ex.request.as_ref().map(|r| r.start_ns).or(ex.response.as_ref().map(|r| r.start_ns));
        let end = ex.response.as_ref().map(|r| r.end_ns);
        let duration_ms = match (ex.request.as_ref(), end) {
            (Some(req), Some(end)) => Some(end.saturating_sub(req.start_ns) as f64 / 1e6),
            _ => None,
        };
        let complete = ex.request.as_ref().is_some_and(|r| r.body.complete && r.anomalies.is_empty())
            && ex.response.as_ref().is_some_and(|r| r.body.complete && r.anomalies.is_empty());
        ExchangeRecord {
            ts: timestamp::rfc3339_micros(clock.wall(start.unwrap_or(meta.opened_ns))),
            duration_ms,
            role: meta.role.as_str(),
            tls: meta.tls,
            pid: meta.tgid,
            process: meta.comm.clone(),
            exe: meta.exe.clone(),
            service: meta.service.clone(),
            container_id: meta.container_id.clone(),
            k8s: None,
            local: meta.local.as_ref().map(addr::socket_text),
            remote: meta.remote.as_ref().map(addr::socket_text),
            conn_id: meta.conn_id,
            request: ex.request.as_ref().map(|r| request(r, assessment)),
            response: ex.response.as_ref().map(|r| response(r, assessment)),
            complete,
            meta: Arc::clone(meta),
            start_unix_ns: unix_ns(clock, start.unwrap_or(meta.opened_ns)),
            end_unix_ns: unix_ns(
                clock,
                end.or(ex.request.as_ref().map(|r| r.end_ns)).unwrap_or(meta.opened_ns),
            ),
            findings: assessment.findings.clone(),
            client: assessment.client.clone(),
            events: assessment.events.clone(),
            rpc: rpc(ex),
            endpoint: assessment.endpoint.as_ref().map(|c| EndpointRecord {
                route: c.route.clone(),
                status: c.status.as_str(),
                spec: c.spec.clone(),
                spec_binding: c.binding.map(crate::detect::inventory::Binding::as_str),
                operation_id: c.operation_id.clone(),
                new: c.new_endpoint,
            }),
        }
    }
}

/// The gRPC call of an exchange whose request declares a gRPC body.
#[must_use]
pub fn rpc(ex: &Exchange) -> Option<RpcRecord> {
    let request = ex.request.as_ref().filter(|r| grpc::is_grpc(&r.headers))?;
    let call = grpc::call(&request.target)?;
    Some(RpcRecord {
        system: "grpc",
        service: call.service.to_owned(),
        method: call.method.to_owned(),
        grpc_status_code: ex.response.as_ref().and_then(|r| grpc::status(&r.headers)),
    })
}

/// The request as exported: secret-named and flagged query values masked; a path in which a
/// detector found sensitive data is replaced by its endpoint's route.
fn request(r: &Request, assessment: &Assessment) -> RequestRecord {
    let flagged: Vec<(&str, &str)> = assessment
        .findings
        .iter()
        .filter_map(|f| {
            let name = f.location.strip_prefix("request.query")?;
            Some((name.strip_prefix(':').unwrap_or(name), f.sample.as_str()))
        })
        .collect();
    let (path, query) = match r.target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(mask::query_flagged(query, &flagged))),
        None => (r.target.clone(), None),
    };
    let path = match assessment.endpoint.as_ref() {
        Some(e) if assessment.findings.iter().any(|f| f.location == "request.path") => e.route.clone(),
        _ if assessment.findings.iter().any(|f| f.location == "request.path") => mask::REDACTED.to_owned(),
        _ => path,
    };
    RequestRecord {
        method: r.method.clone(),
        path,
        query,
        version: version(r.version),
        headers: headers(&r.headers, &flagged_headers(assessment, "request.header:")),
        body_size: body_size(&r.body),
        anomalies: anomalies(&r.anomalies),
    }
}

fn response(r: &Response, assessment: &Assessment) -> ResponseRecord {
    ResponseRecord {
        status: r.status,
        version: version(r.version),
        headers: headers(&r.headers, &flagged_headers(assessment, "response.header:")),
        body_size: body_size(&r.body),
        anomalies: anomalies(&r.anomalies),
    }
}

fn unix_ns(clock: &Clock, mono_ns: u64) -> u64 {
    clock
        .wall(mono_ns)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn version(v: Version) -> &'static str {
    v.as_str()
}

fn anomalies(list: &[Anomaly]) -> Vec<&'static str> {
    list.iter().map(|a| a.as_str()).collect()
}

fn body_size(body: &Body) -> u64 {
    body.size
}

/// (header name, masked sample) of the findings in one message's headers.
fn flagged_headers<'a>(assessment: &'a Assessment, prefix: &str) -> Vec<(&'a str, &'a str)> {
    assessment
        .findings
        .iter()
        .filter_map(|f| Some((f.location.strip_prefix(prefix)?, f.sample.as_str())))
        .collect()
}

/// Header names lowercased (HTTP names are case-insensitive); repeated headers joined with ", "
/// as RFC 9110 allows. Credentials and values a detector flagged are masked.
fn headers(h: &Headers, flagged: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in h.iter() {
        let lower = name.to_ascii_lowercase();
        let value = mask::header_value_flagged_lower(&lower, value, flagged);
        map.entry(lower)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_exchanges_name_their_call() {
        let mut req_headers = Headers::new();
        req_headers.push("content-type", b"application/grpc".to_vec());
        let request = Request {
            method: "POST".into(),
            target: "/bank.v1.Payments/Charge".into(),
            version: Version::Http2,
            headers: req_headers,
            body: Body::default(),
            start_ns: 0,
            end_ns: 0,
            anomalies: Vec::new(),
        };
        let mut resp_headers = Headers::new();
        resp_headers.push("grpc-status", b"3".to_vec());
        let response = Response {
            status: 200,
            reason: String::new(),
            version: Version::Http2,
            headers: resp_headers,
            body: Body::default(),
            start_ns: 0,
            end_ns: 0,
            anomalies: Vec::new(),
        };
        let ex = Exchange { request: Some(request.clone()), response: Some(response) };
        let rpc = rpc(&ex).unwrap();
        assert_eq!(
            (rpc.system, rpc.service.as_str(), rpc.method.as_str()),
            ("grpc", "bank.v1.Payments", "Charge")
        );
        assert_eq!(rpc.grpc_status_code, Some(3));
        let json = serde_json::to_string(&rpc).unwrap();
        assert_eq!(
            json,
            r#"{"system":"grpc","service":"bank.v1.Payments","method":"Charge","grpc_status_code":3}"#
        );
        let mut plain = request;
        plain.headers = Headers::new();
        assert!(rpc_of(plain).is_none(), "not gRPC without the content type");
    }

    fn rpc_of(request: Request) -> Option<RpcRecord> {
        rpc(&Exchange { request: Some(request), response: None })
    }
}
