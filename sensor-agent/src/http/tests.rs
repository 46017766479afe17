//! Connection-level scenarios. Every scenario is run whole, byte by byte and
//! with pseudo-random splits, and all three runs must agree exactly.

use bytes::Bytes;

use super::*;
use crate::reassembly::Segment;

#[derive(Clone, Copy)]
pub(super) enum Ev<'a> {
    Req(u64, &'a [u8]),
    Resp(u64, &'a [u8]),
    ReqGap(u64, u64),
    RespGap(u64, u64),
    Close(u64),
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Outcome {
    pub ex: Vec<Exchange>,
    pub stats: HttpStats,
    pub upgraded: bool,
}

/// Feeds `evs`, cutting data segments into pieces of at most `piece` bytes
/// (`0` = whole, `usize::MAX - n` = pseudo-random sizes seeded by `n`).
pub(super) fn run_split(evs: &[Ev<'_>], limits: Limits, piece: usize) -> Outcome {
    let mut conn = HttpConnection::new(limits);
    let mut ex = Vec::new();
    let mut rng = 0x9e37_79b9_u64 ^ piece as u64;
    for ev in evs {
        match *ev {
            Ev::Req(ts, d) | Ev::Resp(ts, d) => {
                let side = if matches!(ev, Ev::Req(..)) { StreamSide::Request } else { StreamSide::Response };
                let mut rest = d;
                while !rest.is_empty() {
                    let n = match piece {
                        0 => rest.len(),
                        p if p > usize::MAX - 1000 => {
                            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                            1 + (rng >> 33) as usize % 7
                        }
                        p => p,
                    }
                    .min(rest.len());
                    let (a, b) = rest.split_at(n);
                    let seg = Segment::Data { ts_ns: ts, bytes: Bytes::copy_from_slice(a) };
                    conn.push(side, seg, &mut ex);
                    rest = b;
                }
            }
            Ev::ReqGap(ts, len) => {
                conn.push(StreamSide::Request, Segment::Gap { ts_ns: ts, len }, &mut ex);
            }
            Ev::RespGap(ts, len) => {
                conn.push(StreamSide::Response, Segment::Gap { ts_ns: ts, len }, &mut ex);
            }
            Ev::Close(ts) => conn.close(ts, &mut ex),
        }
    }
    Outcome { ex, stats: *conn.stats(), upgraded: conn.is_upgraded() }
}

/// Runs whole, byte by byte and randomly split; asserts they agree.
pub(super) fn run_with(evs: &[Ev<'_>], limits: Limits) -> Outcome {
    let whole = run_split(evs, limits, 0);
    assert_eq!(whole, run_split(evs, limits, 1), "byte-by-byte differs");
    for seed in 0..3 {
        assert_eq!(whole, run_split(evs, limits, usize::MAX - seed), "random split differs");
    }
    whole
}

pub(super) fn run(evs: &[Ev<'_>]) -> Outcome {
    run_with(evs, Limits::default())
}

pub(super) fn req(e: &Exchange) -> &Request {
    e.request.as_ref().expect("request")
}

pub(super) fn resp(e: &Exchange) -> &Response {
    e.response.as_ref().expect("response")
}

pub(super) fn targets(o: &Outcome) -> Vec<(Option<&str>, Option<u16>)> {
    o.ex.iter()
        .map(|e| (e.request.as_ref().map(|r| r.target.as_str()), e.response.as_ref().map(|r| r.status)))
        .collect()
}

pub(super) const OK5: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn keep_alive_three_exchanges() {
    let o = run(&[
        Ev::Req(1, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
        Ev::Resp(2, OK5),
        Ev::Req(3, b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
        Ev::Resp(4, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        Ev::Req(5, b"DELETE /c HTTP/1.1\r\n\r\n"),
        Ev::Resp(6, b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno"),
    ]);
    assert_eq!(targets(&o), [(Some("/a"), Some(200)), (Some("/b"), Some(201)), (Some("/c"), Some(404))]);
    let e = &o.ex[1];
    assert_eq!(req(e).method, "POST");
    assert_eq!(&req(e).body.captured[..], b"abc");
    assert_eq!(req(e).version, Version::Http11);
    assert_eq!(resp(&o.ex[0]).reason, "OK");
    assert_eq!(&resp(&o.ex[0]).body.captured[..], b"hello");
    assert!(resp(&o.ex[0]).body.complete);
    assert_eq!((req(e).start_ns, req(e).end_ns), (3, 3));
    assert_eq!(o.stats, HttpStats::default());
}

#[test]
fn pipelined_requests_then_responses() {
    let o = run(&[
        Ev::Req(1, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"),
        Ev::Resp(2, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n"),
        Ev::Resp(3, b"Content-Length: 1\r\n\r\nbHTTP/1.1 500 Err\r\nContent-Length: 1\r\n\r\nc"),
    ]);
    assert_eq!(targets(&o), [(Some("/1"), Some(200)), (Some("/2"), Some(200)), (Some("/3"), Some(500))]);
    assert_eq!(&resp(&o.ex[2]).body.captured[..], b"c");
    assert_eq!((resp(&o.ex[1]).start_ns, resp(&o.ex[1]).end_ns), (2, 3));
}

#[test]
fn head_response_has_no_body() {
    let o = run(&[
        Ev::Req(1, b"HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n"),
        Ev::Resp(2, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        Ev::Resp(3, OK5),
    ]);
    assert_eq!(targets(&o), [(Some("/h"), Some(200)), (Some("/g"), Some(200))]);
    assert_eq!(resp(&o.ex[0]).body.size, 0);
    assert_eq!(resp(&o.ex[0]).headers.get("content-length"), Some(&b"1000"[..]));
    assert_eq!(resp(&o.ex[1]).body.size, 5);
}

#[test]
fn no_content_and_not_modified() {
    let o = run(&[
        Ev::Req(1, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n"),
        Ev::Resp(2, b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
        Ev::Resp(3, b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Ev::Resp(4, OK5),
    ]);
    assert_eq!(targets(&o), [(Some("/a"), Some(204)), (Some("/b"), Some(304)), (Some("/c"), Some(200))]);
    assert!(o.ex.iter().take(2).all(|e| resp(e).body.size == 0));
    assert_eq!(o.stats, HttpStats::default());
}

#[test]
fn continue_then_final_response() {
    let o = run(&[
        Ev::Req(1, b"PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
        Ev::Resp(2, b"HTTP/1.1 100 Continue\r\n\r\n"),
        Ev::Req(3, b"data"),
        Ev::Resp(4, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"),
        Ev::Resp(5, OK5),
    ]);
    assert_eq!(targets(&o), [(Some("/up"), Some(200))]);
    assert_eq!((req(&o.ex[0]).start_ns, req(&o.ex[0]).end_ns), (1, 3));
    assert_eq!(resp(&o.ex[0]).start_ns, 5);
    assert_eq!(o.stats, HttpStats::default());
}

#[test]
fn chunked_with_extensions_and_trailers() {
    let o = run(&[
        Ev::Req(
            1,
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\n",
        ),
        Ev::Resp(
            2,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n7 ; a=\"b\"\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
        ),
        Ev::Req(3, b"GET /next HTTP/1.1\r\n\r\n"),
        Ev::Resp(4, OK5),
    ]);
    assert_eq!(targets(&o), [(Some("/c"), Some(200)), (Some("/next"), Some(200))]);
    let b = &req(&o.ex[0]).body;
    assert_eq!((b.size, &b.captured[..], b.chunked, b.complete), (3, &b"abc"[..], true, true));
    let b = &resp(&o.ex[0]).body;
    assert_eq!((b.size, &b.captured[..], b.chunked), (12, &b"hello, world"[..], true));
}

#[test]
fn transfer_encoding_overrides_content_length() {
    let o = run(&[
        Ev::Req(
            1,
            b"POST / HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
        ),
        Ev::Close(9),
    ]);
    assert_eq!(targets(&o), [(Some("/"), None), (Some("/x"), None)]);
    assert_eq!(req(&o.ex[0]).anomalies, [Anomaly::TransferEncodingWithContentLength]);
    assert_eq!(req(&o.ex[0]).body.size, 2);
}

#[test]
fn close_delimited_response() {
    let o = run(&[
        Ev::Req(1, b"GET / HTTP/1.1\r\n\r\n"),
        Ev::Resp(2, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one "),
        Ev::Resp(3, b"part two"),
        Ev::Close(7),
    ]);
    let r = resp(&o.ex[0]);
    assert_eq!(&r.body.captured[..], b"part one part two");
    assert!(r.body.complete);
    assert_eq!((r.start_ns, r.end_ns), (2, 7));
}

#[test]
fn http10_messages() {
    let o = run(&[
        Ev::Req(1, b"GET /old HTTP/1.0\r\nUser-Agent: x\r\n\r\n"),
        Ev::Resp(2, b"HTTP/1.0 200 OK\r\n\r\nbody until close"),
        Ev::Close(3),
    ]);
    assert_eq!(req(&o.ex[0]).version, Version::Http10);
    let r = resp(&o.ex[0]);
    assert_eq!((r.version, r.body.size), (Version::Http10, 16));
    assert_eq!(r.version.as_str(), "HTTP/1.0");
}

#[test]
fn conflicting_content_length_resyncs() {
    let o = run(&[
        Ev::Req(
            1,
            b"POST /bad HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd\r\nGET /ok HTTP/1.1\r\n\r\n",
        ),
        Ev::Close(2),
    ]);
    assert_eq!(targets(&o), [(Some("/bad"), None), (Some("/ok"), None)]);
    let r = req(&o.ex[0]);
    assert_eq!(r.anomalies, [Anomaly::ConflictingContentLength]);
    assert!(!r.body.complete);
    assert_eq!(o.stats.parse_errors, 1);
    assert_eq!(o.stats.resyncs, 1);
}

#[test]
fn duplicate_and_invalid_content_length() {
    let o = run(&[
        Ev::Req(1, b"POST /d HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"),
        Ev::Req(2, b"POST /i HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n"),
        Ev::Close(3),
    ]);
    assert_eq!(req(&o.ex[0]).anomalies, [Anomaly::DuplicateContentLength]);
    assert_eq!(req(&o.ex[0]).body.size, 2);
    assert_eq!(req(&o.ex[1]).anomalies, [Anomaly::InvalidContentLength]);
}

#[test]
fn websocket_upgrade_stops_parsing() {
    let o = run(&[
        Ev::Req(1, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello"),
        Ev::Resp(2, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"),
        Ev::Req(3, b"GET /not-http HTTP/1.1\r\n\r\n"),
        Ev::RespGap(4, 10),
        Ev::Close(5),
    ]);
    assert!(o.upgraded);
    assert_eq!(targets(&o), [(Some("/ws"), Some(101))]);
    assert_eq!(o.stats.bytes_skipped, 7 + 4 + 26 + 10);
    assert_eq!(o.stats.parse_errors, 0);
}

#[test]
fn declined_upgrade_keeps_parsing() {
    let o = run(&[
        Ev::Req(1, b"GET /a HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
        Ev::Resp(
            2,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny",
        ),
    ]);
    assert!(!o.upgraded);
    assert_eq!(targets(&o), [(Some("/a"), Some(200)), (Some("/b"), Some(200))]);
    assert_eq!(o.stats, HttpStats::default());
}

#[test]
fn connect_tunnel() {
    let o = run(&[
        Ev::Req(1, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01"),
        Ev::Resp(2, b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x03"),
    ]);
    assert!(o.upgraded);
    assert_eq!(targets(&o), [(Some("example.com:443"), Some(200))]);
    assert_eq!(o.stats.bytes_skipped, 6);

    let o = run(&[
        Ev::Req(1, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
        Ev::Resp(2, b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\nno"),
        Ev::Req(3, b"CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n"),
        Ev::Resp(4, b"HTTP/1.1 200 OK\r\n\r\n"),
    ]);
    assert!(o.upgraded);
    assert_eq!(targets(&o).len(), 2);
    assert_eq!(resp(&o.ex[0]).body.size, 2);
}

#[test]
fn unmatched_response_and_overflow() {
    let limits = Limits { max_pending_requests: 2, ..Limits::default() };
    let o = run_with(
        &[
            Ev::Resp(1, OK5),
            Ev::Req(2, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"),
            Ev::Resp(3, OK5),
            Ev::Close(4),
        ],
        limits,
    );
    assert_eq!(
        targets(&o),
        [(None, Some(200)), (Some("/1"), None), (Some("/2"), Some(200)), (Some("/3"), None)]
    );
    assert_eq!(o.stats.unmatched_responses, 1);
    assert_eq!(o.stats.pending_overflow, 1);
}

#[test]
fn close_truncates_and_drops_partial_heads() {
    let o = run(&[
        Ev::Req(1, b"POST /t HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc"),
        Ev::Resp(2, b"HTTP/1.1 200 OK\r\nContent-Le"),
        Ev::Close(3),
    ]);
    assert_eq!(targets(&o), [(Some("/t"), None)]);
    let r = req(&o.ex[0]);
    assert_eq!(r.anomalies, [Anomaly::Truncated]);
    assert_eq!((r.body.size, r.body.complete, r.end_ns), (3, false, 1));
    assert_eq!(o.stats.partial_heads_dropped, 1);
    assert_eq!(o.stats.bytes_skipped, 27);
}

#[test]
fn segments_after_close_are_skipped() {
    let o = run(&[Ev::Close(1), Ev::Req(2, b"GET / HTTP/1.1\r\n\r\n")]);
    assert!(o.ex.is_empty());
    assert_eq!(o.stats.bytes_skipped, 18);
}

#[test]
fn interim_response_without_request_is_dropped_quietly() {
    let o = run(&[
        Ev::Resp(1, b"HTTP/1.1 100 Continue\r\n\r\n"),
        Ev::Req(2, b"GET / HTTP/1.1\r\n\r\n"),
        Ev::Resp(3, OK5),
    ]);
    assert_eq!(targets(&o), [(Some("/"), Some(200))]);
    assert_eq!(o.stats, HttpStats::default());
}
