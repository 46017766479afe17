//! TEMPORARY stub until the real parser lands.
#![allow(dead_code, clippy::pedantic, unused)]
pub mod stage;
use crate::reassembly::Segment;
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_body_capture: usize,
    pub max_pending_requests: usize,
}
impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 65536,
            max_body_capture: 65536,
            max_pending_requests: 64,
        }
    }
}
pub enum StreamSide {
    Request,
    Response,
}
#[derive(Default, Debug)]
pub struct HttpStats {
    pub parse_errors: u64,
    pub resyncs: u64,
    pub bytes_skipped: u64,
    pub unmatched_responses: u64,
    pub pending_overflow: u64,
    pub partial_heads_dropped: u64,
}
#[derive(Debug)]
pub struct HttpConnection {
    stats: HttpStats,
}
impl HttpConnection {
    pub fn new(_l: Limits) -> Self {
        HttpConnection {
            stats: HttpStats::default(),
        }
    }
    pub fn push(&mut self, _side: StreamSide, seg: Segment, out: &mut Vec<Exchange>) {
        log::info!("seg {seg:?}");
    }
    pub fn close(&mut self, _ts: u64, _out: &mut Vec<Exchange>) {}
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }
}
#[derive(Debug)]
pub struct Exchange {
    pub request: Option<Request>,
    pub response: Option<Response>,
}
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: Version,
    pub headers: Headers,
    pub body: Body,
    pub start_ns: u64,
    pub end_ns: u64,
    pub anomalies: Vec<Anomaly>,
}
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub version: Version,
    pub headers: Headers,
    pub body: Body,
    pub start_ns: u64,
    pub end_ns: u64,
    pub anomalies: Vec<Anomaly>,
}
#[derive(Debug)]
pub enum Version {
    Http10,
    Http11,
}
impl Version {
    pub fn as_str(&self) -> &'static str {
        "HTTP/1.1"
    }
}
#[derive(Debug)]
pub struct Headers(Vec<(String, Vec<u8>)>);
impl Headers {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(a, b)| (a.as_str(), b.as_slice()))
    }
}
#[derive(Debug)]
pub struct Body {
    pub size: u64,
    pub captured: bytes::Bytes,
    pub complete: bool,
    pub chunked: bool,
}
#[derive(Debug)]
pub enum Anomaly {
    BodyGap,
}
