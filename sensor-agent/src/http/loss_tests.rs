//! Scenarios with loss and damage: gaps, late joins, unparseable input,
//! oversized and huge messages, and mutated traffic. Run through the same
//! whole / byte-by-byte / random-split harness as `tests.rs`.

use super::tests::{Ev, OK5, req, resp, run, run_split, run_with, targets};
use super::*;

#[test]
fn gap_inside_body_keeps_size_exact() {
    let o = run(&[
        Ev::Req(1, b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"),
        Ev::ReqGap(2, 5),
        Ev::Req(3, b"cdeGET /b HTTP/1.1\r\n\r\n"),
        Ev::Resp(4, b"HTTP/1.1 200 OK\r\n\r\nxyz"),
        Ev::RespGap(5, 100),
        Ev::Close(6),
    ]);
    assert_eq!(targets(&o), [(Some("/a"), Some(200)), (Some("/b"), None)]);
    let r = req(&o.ex[0]);
    assert_eq!((r.body.size, &r.body.captured[..], r.body.complete), (10, &b"ab"[..], false));
    assert_eq!(r.anomalies, [Anomaly::BodyGap]);
    assert_eq!(r.end_ns, 3);
    let s = resp(&o.ex[0]);
    assert_eq!((s.body.size, s.body.complete), (103, false));
    assert_eq!(o.stats, HttpStats::default());
}

#[test]
fn gap_past_body_end_resyncs() {
    let o = run(&[
        Ev::Req(1, b"POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"),
        Ev::ReqGap(2, 9),
        Ev::Req(3, b"tail of something\r\nPUT /b HTTP/1.1\r\n\r\n"),
        Ev::Close(4),
    ]);
    assert_eq!(targets(&o), [(Some("/a"), None), (Some("/b"), None)]);
    assert_eq!(req(&o.ex[0]).body.size, 4);
    assert_eq!(req(&o.ex[0]).end_ns, 2);
    assert_eq!(o.stats.resyncs, 1);
    assert_eq!(o.stats.bytes_skipped, 7 + 19);
}

#[test]
fn gap_inside_head_resyncs_to_next_request() {
    let o = run(&[
        Ev::Req(1, b"GET /lost HTTP/1.1\r\nHo"),
        Ev::ReqGap(2, 30),
        Ev::Req(3, b"ader: x\r\n\r\nGET /found HTTP/1.1\r\n\r\n"),
        Ev::Resp(4, OK5),
    ]);
    assert_eq!(targets(&o), [(Some("/found"), Some(200))]);
    assert_eq!(o.stats.partial_heads_dropped, 1);
    assert_eq!(o.stats.resyncs, 1);
    assert_eq!(o.stats.bytes_skipped, 22 + 30 + 11);
    assert_eq!(req(&o.ex[0]).start_ns, 3);
}

#[test]
fn garbage_prefix_from_late_join() {
    let o = run(&[
        Ev::Req(1, b"ET /half HTTP/1.1\r\nX: 1\r\n\r\nGET /whole HTTP/1.1\r\n\r\n"),
        Ev::Resp(2, b"lo\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(targets(&o), [(Some("/whole"), Some(200))]);
    assert_eq!(o.stats.resyncs, 2);
    assert_eq!(o.stats.bytes_skipped, 27 + 4);
    assert_eq!(o.stats.parse_errors, 0);
}

#[test]
fn clean_start_is_not_a_resync() {
    let o = run(&[Ev::Req(1, b"GET / HTTP/1.1\r\n\r\n"), Ev::Resp(2, OK5)]);
    assert_eq!(o.stats, HttpStats::default());
}

#[test]
fn false_start_inside_head_is_replayed() {
    // The first "request" is body text that happens to look like a start; the
    // real request ends the same blank-line-terminated block.
    let o = run(&[
        Ev::ReqGap(1, 10),
        Ev::Req(2, b"POST /api is cool\r\nGET /real HTTP/1.1\r\nHost: h\r\n\r\n"),
        Ev::Resp(3, OK5),
    ]);
    assert_eq!(targets(&o), [(Some("/real"), Some(200))]);
    assert_eq!(req(&o.ex[0]).headers.get("host"), Some(&b"h"[..]));
    assert_eq!(o.stats.parse_errors, 1);
}

#[test]
fn head_too_large_is_reported_and_skipped() {
    let limits = Limits { max_head_bytes: 64, ..Limits::default() };
    let mut big = b"GET /huge HTTP/1.1\r\n".to_vec();
    for _ in 0..10 {
        big.extend_from_slice(b"X-Filler: 0123456789\r\n");
    }
    big.extend_from_slice(b"\r\nGET /small HTTP/1.1\r\n\r\n");
    let o = run_with(&[Ev::Req(1, &big), Ev::Close(2)], limits);
    assert_eq!(targets(&o), [(Some("/huge"), None), (Some("/small"), None)]);
    assert_eq!(req(&o.ex[0]).anomalies, [Anomaly::HeadTooLarge]);
    assert_eq!(o.stats.parse_errors, 1);
}

#[test]
fn invalid_chunk_resyncs() {
    let o = run(&[
        Ev::Req(
            1,
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nzz\r\nGET /n HTTP/1.1\r\n\r\n",
        ),
        Ev::Close(2),
    ]);
    assert_eq!(targets(&o), [(Some("/c"), None), (Some("/n"), None)]);
    let r = req(&o.ex[0]);
    assert_eq!(r.anomalies, [Anomaly::InvalidChunk]);
    assert_eq!((r.body.size, r.body.complete), (2, false));
    assert_eq!(o.stats.parse_errors, 1);
}

#[test]
fn gaps_in_chunked_bodies() {
    let o = run(&[
        Ev::Resp(1, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nab"),
        Ev::RespGap(2, 3),
        Ev::Resp(3, b"fghij\r\n0\r\n\r\n"),
        Ev::Resp(4, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab"),
        Ev::RespGap(5, 10),
        Ev::Resp(6, b"\r\nHTTP/1.1 204 No Content\r\n\r\n"),
    ]);
    let s: Vec<_> = o.ex.iter().map(|e| resp(e).status).collect();
    assert_eq!(s, [200, 200, 204]);
    let b = &resp(&o.ex[0]).body;
    assert_eq!((b.size, &b.captured[..], b.complete), (10, &b"ab"[..], false));
    let b = &resp(&o.ex[1]).body;
    assert_eq!((b.size, b.complete), (4, false));
    assert_eq!(resp(&o.ex[1]).end_ns, 5);
    assert_eq!(o.stats.resyncs, 1);
}

#[test]
fn sizes_near_u64_max_do_not_overflow() {
    let o = run(&[
        Ev::Req(1, b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\nab"),
        Ev::ReqGap(2, u64::MAX),
        Ev::Req(3, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nx"),
        Ev::ReqGap(4, u64::MAX),
        Ev::Resp(5, b"HTTP/1.1 200 OK\r\n\r\n"),
        Ev::RespGap(6, u64::MAX),
        Ev::RespGap(7, u64::MAX),
        Ev::Close(8),
    ]);
    assert_eq!(req(&o.ex[0]).body.size, u64::MAX);
    assert_eq!(resp(&o.ex[0]).body.size, u64::MAX);
    assert_eq!(o.ex.len(), 2);
}

#[test]
fn large_body_capture_is_capped() {
    let mut data = b"POST /big HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    data.extend((0..1_048_576u32).map(|i| (i % 251) as u8));
    data.extend_from_slice(b"GET /after HTTP/1.1\r\n\r\n");
    let evs = [Ev::Req(1, &data[..]), Ev::Close(2)];
    let o = run_split(&evs, Limits::default(), 0);
    assert_eq!(o, run_split(&evs, Limits::default(), 1000));
    let b = &req(&o.ex[0]).body;
    assert_eq!((b.size, b.captured.len(), b.complete), (1_048_576, 64 * 1024, true));
    assert_eq!(b.captured[300], (300 % 251) as u8);
    assert_eq!(req(&o.ex[1]).target, "/after");
}

#[test]
fn mutated_traffic_never_panics_and_is_split_invariant() {
    let seeds: [&[u8]; 4] = [
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 101 Switching\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ];
    let alphabet = b"\r\n :;0123456789abcdefGET/HTTP1.chunked";
    let limits = Limits { max_head_bytes: 48, max_body_capture: 4, max_pending_requests: 2 };
    let mut rng = Lcg(7);
    for round in 0..400 {
        let mut a = seeds[round % 4].to_vec();
        let mut b = seeds[(round + 1) % 4].to_vec();
        for buf in [&mut a, &mut b] {
            for _ in 0..(rng.next() % 6) {
                let at = rng.next() as usize % buf.len();
                let c = alphabet[rng.next() as usize % alphabet.len()];
                match rng.next() % 3 {
                    0 => buf[at] = c,
                    1 => buf.insert(at, c),
                    _ => {
                        buf.remove(at);
                    }
                }
            }
        }
        let cut = rng.next() as usize % a.len();
        let gap = rng.next() % 40;
        let evs = [
            Ev::Req(1, &a[..cut]),
            Ev::ReqGap(2, gap),
            Ev::Req(3, &a[cut..]),
            Ev::Resp(4, &b),
            Ev::Req(5, &b),
            Ev::Resp(6, &a),
            Ev::Close(7),
        ];
        run_with(&evs, limits);
        run_with(&evs, Limits::default());
    }
}

/// Tiny deterministic generator so the fuzz loop needs no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn skip_counter_saturates() {
    let o = run(&[Ev::ReqGap(1, u64::MAX), Ev::ReqGap(2, u64::MAX), Ev::Req(3, b"garbage\n"), Ev::Close(4)]);
    assert_eq!(o.stats.bytes_skipped, u64::MAX);
}

#[test]
fn held_bytes_overflow_is_parsed_in_order() {
    let limits = Limits { max_head_bytes: 64, ..Limits::default() };
    let mut data = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n".to_vec();
    for i in 0..6 {
        data.extend_from_slice(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
    }
    let o = run_with(&[Ev::Req(1, &data), Ev::Close(2)], limits);
    let t: Vec<_> = targets(&o).into_iter().map(|(t, _)| t.unwrap_or("")).collect();
    assert_eq!(t, ["/ws", "/0", "/1", "/2", "/3", "/4", "/5"]);
    assert_eq!(o.stats, HttpStats::default());
}

#[test]
fn gap_while_held_resyncs_after_decline() {
    let o = run(&[
        Ev::Req(1, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /x"),
        Ev::ReqGap(2, 5),
        Ev::Req(3, b"junk\r\nGET /y HTTP/1.1\r\n\r\n"),
        Ev::Resp(4, b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"),
        Ev::Resp(5, OK5),
    ]);
    assert_eq!(targets(&o), [(Some("/ws"), Some(426)), (Some("/y"), Some(200))]);
    assert_eq!(o.stats.resyncs, 1);
    assert_eq!(o.stats.bytes_skipped, 6 + 5 + 6);
}
