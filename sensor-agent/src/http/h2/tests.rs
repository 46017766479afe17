//! HTTP/2 conversations built with a real HPACK encoder (loona-hpack's), fed through the
//! protocol-detecting [`Connection`] as the stage does.

use bytes::Bytes;

use super::frame::{self, END_HEADERS, END_STREAM, PADDED, PREFACE, PRIORITY};
use super::{H2Limits, H2Stats};
use crate::http::{Anomaly, Connection, Exchange, Limits, StreamSide, Version, grpc};
use crate::reassembly::Segment;

const HEADERS: u8 = 1;
const DATA: u8 = 0;
const RST: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH: u8 = 5;
const GOAWAY: u8 = 7;
const WINDOW: u8 = 8;
const CONT: u8 = 9;

/// Both directions of a conversation, as the bytes each side wrote, in write order.
struct Wire {
    client: loona_hpack::Encoder<'static>,
    server: loona_hpack::Encoder<'static>,
    writes: Vec<(StreamSide, Vec<u8>)>,
}

impl Wire {
    fn new() -> Self {
        Wire { client: loona_hpack::Encoder::new(), server: loona_hpack::Encoder::new(), writes: Vec::new() }
    }

    /// A connection from its start: preface, both SETTINGS.
    fn started() -> Self {
        let mut w = Wire::new();
        let mut first = PREFACE.to_vec();
        first.extend(frame::encode(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        w.write(StreamSide::Request, first);
        w.write(StreamSide::Response, frame::encode(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]));
        w.write(StreamSide::Request, frame::encode(SETTINGS, 1, 0, &[]));
        w
    }

    fn write(&mut self, side: StreamSide, bytes: Vec<u8>) {
        self.writes.push((side, bytes));
    }

    fn block(&mut self, side: StreamSide, fields: &[(&str, &str)]) -> Vec<u8> {
        let enc = match side {
            StreamSide::Request => &mut self.client,
            StreamSide::Response => &mut self.server,
        };
        enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    fn headers(&mut self, side: StreamSide, stream: u32, flags: u8, fields: &[(&str, &str)]) {
        let block = self.block(side, fields);
        self.write(side, frame::encode(HEADERS, flags | END_HEADERS, stream, &block));
    }

    fn data(&mut self, side: StreamSide, stream: u32, flags: u8, body: &[u8]) {
        self.write(side, frame::encode(DATA, flags, stream, body));
    }

    fn get(&mut self, stream: u32, path: &str) {
        let fields = [(":method", "GET"), (":scheme", "https"), (":authority", "api.test"), (":path", path)];
        self.headers(StreamSide::Request, stream, END_STREAM, &fields);
    }

    fn ok(&mut self, stream: u32, body: &[u8]) {
        let len = body.len().to_string();
        self.headers(StreamSide::Response, stream, 0, &[(":status", "200"), ("content-length", &len)]);
        self.data(StreamSide::Response, stream, END_STREAM, body);
    }

    /// Every write as one segment each.
    fn run(&self) -> (Vec<Exchange>, Connection) {
        self.run_split(usize::MAX)
    }

    /// Each side's bytes concatenated and cut into pieces of `size`, sides interleaved in the
    /// order their first byte was written.
    fn run_split(&self, size: usize) -> (Vec<Exchange>, Connection) {
        let mut conn = Connection::new(Limits::default());
        let mut out = Vec::new();
        let mut ts = 0;
        for (side, bytes) in &self.writes {
            for piece in bytes.chunks(size.min(bytes.len()).max(1)) {
                ts += 1;
                let seg = Segment::Data { ts_ns: ts, bytes: Bytes::copy_from_slice(piece) };
                conn.push(*side, seg, &mut out);
            }
        }
        conn.close(ts + 1, &mut out);
        (out, conn)
    }

    /// Each side's whole byte stream cut at `at` (request side) and `at` (response side).
    fn run_cut(&self, at: usize) -> Vec<Exchange> {
        let mut conn = Connection::new(Limits::default());
        let mut out = Vec::new();
        let (mut req, mut resp) = (Vec::new(), Vec::new());
        for (side, bytes) in &self.writes {
            match side {
                StreamSide::Request => req.extend_from_slice(bytes),
                StreamSide::Response => resp.extend_from_slice(bytes),
            }
        }
        let mut ts = 0;
        let mut push = |side, bytes: &[u8]| {
            ts += 1;
            conn.push(side, Segment::Data { ts_ns: ts, bytes: Bytes::copy_from_slice(bytes) }, &mut out);
        };
        let (a, b) = req.split_at(at.min(req.len()));
        push(StreamSide::Request, a);
        push(StreamSide::Request, b);
        let (a, b) = resp.split_at(at.min(resp.len()));
        push(StreamSide::Response, a);
        push(StreamSide::Response, b);
        conn.close(ts + 1, &mut out);
        out
    }
}

fn h2(conn: &Connection) -> H2Stats {
    conn.h2_stats().copied().unwrap_or_default()
}

/// What matters of an exchange, independent of timestamps.
fn shape(e: &Exchange) -> String {
    let req = e.request.as_ref().map(|r| {
        format!(
            "{} {} {:?} host={:?} body={}/{} {:?}",
            r.method,
            r.target,
            r.version,
            r.headers.get("host").map(|h| String::from_utf8_lossy(h).into_owned()),
            r.body.size,
            r.body.captured.len(),
            r.anomalies
        )
    });
    let resp = e.response.as_ref().map(|r| {
        format!(
            "{} {:?} body={}:{} complete={} {:?} grpc={:?}",
            r.status,
            r.version,
            r.body.size,
            String::from_utf8_lossy(&r.body.captured),
            r.body.complete,
            r.anomalies,
            grpc::status(&r.headers)
        )
    });
    format!("{req:?} => {resp:?}")
}

fn shapes(out: &[Exchange]) -> Vec<String> {
    let mut v: Vec<String> = out.iter().map(shape).collect();
    v.sort();
    v
}

#[test]
fn one_exchange_from_the_preface() {
    let mut w = Wire::started();
    w.get(1, "/accounts?id=7");
    w.ok(1, b"hello");
    let (out, conn) = w.run();
    assert_eq!(out.len(), 1);
    let req = out[0].request.as_ref().unwrap();
    let resp = out[0].response.as_ref().unwrap();
    assert_eq!(
        (req.method.as_str(), req.target.as_str(), req.version),
        ("GET", "/accounts?id=7", Version::Http2)
    );
    assert_eq!(req.headers.get("host"), Some(&b"api.test"[..]));
    assert!(req.headers.get(":path").is_none(), "pseudo headers are not headers");
    assert_eq!(
        (resp.status, resp.version, resp.body.size, &resp.body.captured[..]),
        (200, Version::Http2, 5, &b"hello"[..])
    );
    assert!(resp.body.complete && resp.anomalies.is_empty() && req.anomalies.is_empty());
    assert_eq!(resp.headers.get("content-length"), Some(&b"5"[..]));
    let s = h2(&conn);
    assert_eq!((s.connections, s.streams, s.resyncs, s.bytes_skipped), (1, 1, 0, 0));
    assert_eq!(conn.http1_stats().parse_errors, 0);
}

/// Three streams interleaved, with a request body, CONTINUATION, padding, priority, window
/// updates and a shared HPACK table.
fn busy_wire() -> Wire {
    let mut w = Wire::started();
    w.get(1, "/one");
    // Stream 3: POST with a body in two DATA frames, the second padded.
    w.headers(
        StreamSide::Request,
        3,
        0,
        &[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "api.test"),
            (":path", "/two"),
            ("content-type", "application/json"),
        ],
    );
    w.get(5, "/three");
    w.data(StreamSide::Request, 3, 0, b"{\"a\":");
    let mut padded = vec![4u8];
    padded.extend_from_slice(b"1}");
    padded.extend_from_slice(&[0; 4]);
    w.data(StreamSide::Request, 3, END_STREAM | PADDED, &padded);
    w.write(StreamSide::Response, frame::encode(WINDOW, 0, 0, &[0, 0, 1, 0]));
    // Stream 5's response head split over HEADERS + CONTINUATION, padded and with priority.
    let block = w.block(
        StreamSide::Response,
        &[(":status", "404"), ("content-type", "text/plain"), ("x-trace", "abc")],
    );
    let (a, b) = block.split_at(block.len() / 2);
    let mut payload = vec![2u8, 0, 0, 0, 1, 16];
    payload.extend_from_slice(a);
    payload.extend_from_slice(&[0, 0]);
    w.write(StreamSide::Response, frame::encode(HEADERS, PADDED | PRIORITY, 5, &payload));
    w.write(StreamSide::Response, frame::encode(CONT, END_HEADERS, 5, b));
    w.headers(StreamSide::Response, 1, 0, &[(":status", "200"), ("content-type", "text/plain")]);
    w.data(StreamSide::Response, 5, 0, b"not ");
    w.data(StreamSide::Response, 1, 0, b"first ");
    w.headers(StreamSide::Response, 3, 0, &[(":status", "201"), ("content-type", "text/plain")]);
    w.data(StreamSide::Response, 3, END_STREAM, b"created");
    w.data(StreamSide::Response, 5, END_STREAM, b"found");
    w.data(StreamSide::Response, 1, END_STREAM, b"done");
    w
}

#[test]
fn multiplexed_streams_pair_by_stream() {
    let (out, conn) = busy_wire().run();
    let got = shapes(&out);
    assert_eq!(got.len(), 3, "{got:#?}");
    let find =
        |path: &str| out.iter().find(|e| e.request.as_ref().is_some_and(|r| r.target == path)).unwrap();
    let one = find("/one").response.as_ref().unwrap();
    assert_eq!((one.status, &one.body.captured[..]), (200, &b"first done"[..]));
    let two = find("/two");
    assert_eq!(two.request.as_ref().unwrap().method, "POST");
    assert_eq!(&two.request.as_ref().unwrap().body.captured[..], b"{\"a\":1}");
    assert_eq!(two.request.as_ref().unwrap().body.size, 7, "padding is not body");
    assert_eq!(two.response.as_ref().unwrap().status, 201);
    let three = find("/three").response.as_ref().unwrap();
    assert_eq!((three.status, &three.body.captured[..]), (404, &b"not found"[..]));
    assert_eq!(three.headers.get("x-trace"), Some(&b"abc"[..]), "CONTINUATION joined the block");
    // Emitted as each stream completed: 3, 5, then 1.
    let order: Vec<&str> = out.iter().map(|e| e.request.as_ref().unwrap().target.as_str()).collect();
    assert_eq!(order, ["/two", "/three", "/one"]);
    assert_eq!(h2(&conn).protocol_errors, 0);
    assert_eq!(h2(&conn).hpack_undecodable_fields, 0);
}

#[test]
fn any_split_gives_the_same_exchanges() {
    let w = busy_wire();
    let (whole, _) = w.run();
    let expected = shapes(&whole);
    for size in [1, 2, 3, 7, 9, 10, 64] {
        assert_eq!(shapes(&w.run_split(size).0), expected, "pieces of {size}");
    }
    let side_len = |side| w.writes.iter().filter(|(s, _)| *s == side).map(|(_, b)| b.len()).sum::<usize>();
    let longest = side_len(StreamSide::Request).max(side_len(StreamSide::Response));
    for at in 0..=longest + 1 {
        assert_eq!(shapes(&w.run_cut(at)), expected, "cut at {at}");
    }
}

#[test]
fn dynamic_table_carries_across_requests() {
    let mut w = Wire::started();
    for (id, path) in [(1, "/a"), (3, "/a"), (5, "/b")] {
        let fields = [
            (":method", "GET"),
            (":path", path),
            (":authority", "api.test"),
            ("x-api-key", "k-123"),
            ("user-agent", "t/1"),
        ];
        w.headers(StreamSide::Request, id, END_STREAM, &fields);
        w.ok(id, b"x");
    }
    let (out, conn) = w.run();
    assert_eq!(out.len(), 3);
    for e in &out {
        let r = e.request.as_ref().unwrap();
        assert_eq!(r.headers.get("x-api-key"), Some(&b"k-123"[..]), "{}", shape(e));
        assert!(r.anomalies.is_empty());
    }
    assert_eq!(h2(&conn).hpack_undecodable_fields, 0);
}

#[test]
fn reset_and_goaway_report_what_was_known() {
    let mut w = Wire::started();
    w.get(1, "/slow");
    w.headers(StreamSide::Response, 1, 0, &[(":status", "200")]);
    w.data(StreamSide::Response, 1, 0, b"part");
    w.write(StreamSide::Request, frame::encode(RST, 0, 1, &[0, 0, 0, 8]));
    w.get(3, "/kept");
    w.get(5, "/dropped");
    w.write(StreamSide::Response, frame::encode(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]));
    w.ok(3, b"ok");
    let (out, conn) = w.run();
    assert_eq!(out.len(), 3);
    let slow = out.iter().find(|e| e.request.as_ref().unwrap().target == "/slow").unwrap();
    let r = slow.response.as_ref().unwrap();
    assert_eq!((r.body.size, r.body.complete), (4, false));
    assert!(r.anomalies.contains(&Anomaly::StreamReset) && r.anomalies.contains(&Anomaly::Truncated));
    let dropped = out.iter().find(|e| e.request.as_ref().unwrap().target == "/dropped").unwrap();
    assert!(dropped.response.is_none());
    let kept = out.iter().find(|e| e.request.as_ref().unwrap().target == "/kept").unwrap();
    assert_eq!(kept.response.as_ref().unwrap().status, 200);
    assert_eq!((h2(&conn).resets, h2(&conn).goaways), (1, 1));
}

#[test]
fn close_flushes_open_streams_as_incomplete() {
    let mut w = Wire::started();
    w.get(1, "/never");
    let (out, _) = w.run();
    assert_eq!(out.len(), 1);
    assert!(out[0].response.is_none());
}

#[test]
fn joining_mid_connection_marks_what_cannot_be_decoded() {
    let mut w = Wire::new();
    let fields =
        [(":method", "GET"), (":path", "/orders/1"), (":authority", "shop.test"), ("x-token", "abc")];
    // The first exchange happened before capture: only the encoders saw it.
    let _ = w.block(StreamSide::Request, &fields);
    let _ = w.block(StreamSide::Response, &[(":status", "200"), ("server", "s")]);
    w.writes.clear();
    w.headers(
        StreamSide::Request,
        3,
        END_STREAM,
        &[(":method", "GET"), (":path", "/orders/2"), (":authority", "shop.test"), ("x-token", "abc")],
    );
    w.ok(3, b"second");
    let (out, conn) = w.run();
    assert_eq!(out.len(), 1, "{:#?}", shapes(&out));
    let req = out[0].request.as_ref().unwrap();
    assert_eq!(req.method, "GET", "static-table fields decode");
    assert_eq!(req.target, "/orders/2", "literal fields decode");
    assert_eq!(req.headers.get("host"), Some(&b"shop.test"[..]));
    assert!(req.headers.get("x-token").is_none(), "never guessed");
    assert!(req.anomalies.contains(&Anomaly::HpackUndecodable));
    let resp = out[0].response.as_ref().unwrap();
    assert_eq!((resp.status, &resp.body.captured[..]), (200, &b"second"[..]));
    assert!(h2(&conn).hpack_undecodable_fields >= 1);
    assert_eq!(conn.http1_stats().parse_errors, 0, "not mistaken for HTTP/1");
}

#[test]
fn gap_inside_data_keeps_framing_and_size() {
    let mut w = Wire::started();
    w.get(1, "/big");
    w.headers(StreamSide::Response, 1, 0, &[(":status", "200")]);
    let (mut conn, mut out) = (Connection::new(Limits::default()), Vec::new());
    for (side, b) in &w.writes {
        conn.push(*side, Segment::Data { ts_ns: 1, bytes: Bytes::copy_from_slice(b) }, &mut out);
    }
    let data = frame::encode(DATA, END_STREAM, 1, &[b'z'; 100]);
    let resp = StreamSide::Response;
    conn.push(resp, Segment::Data { ts_ns: 2, bytes: Bytes::copy_from_slice(&data[..20]) }, &mut out);
    conn.push(resp, Segment::Gap { ts_ns: 3, len: 50 }, &mut out);
    conn.push(resp, Segment::Data { ts_ns: 4, bytes: Bytes::copy_from_slice(&data[70..]) }, &mut out);
    assert_eq!(out.len(), 1, "END_STREAM still seen after the gap");
    let r = out[0].response.as_ref().unwrap();
    assert_eq!((r.body.size, r.body.captured.len(), r.body.complete), (100, 11, false));
    assert!(r.anomalies.contains(&Anomaly::BodyGap));
    assert_eq!(h2(&conn).resyncs, 0);
}

#[test]
fn gap_across_frames_resynchronises() {
    let mut w = Wire::started();
    w.get(1, "/lost");
    w.headers(StreamSide::Response, 1, 0, &[(":status", "200")]);
    let (mut conn, mut out) = (Connection::new(Limits::default()), Vec::new());
    for (side, b) in &w.writes {
        conn.push(*side, Segment::Data { ts_ns: 1, bytes: Bytes::copy_from_slice(b) }, &mut out);
    }
    let resp = StreamSide::Response;
    // Lost: the rest of stream 1 and more; then mid-frame garbage, then whole frames again.
    conn.push(resp, Segment::Gap { ts_ns: 2, len: 5000 }, &mut out);
    conn.push(resp, Segment::Data { ts_ns: 3, bytes: Bytes::from_static(&[0x55; 7]) }, &mut out);
    let mut next = frame::encode(WINDOW, 0, 0, &[0, 0, 1, 0]);
    next.extend(frame::encode(DATA, END_STREAM, 1, b"tail"));
    conn.push(resp, Segment::Data { ts_ns: 4, bytes: Bytes::from(next) }, &mut out);
    conn.close(5, &mut out);
    assert_eq!(out.len(), 1);
    let r = out[0].response.as_ref().unwrap();
    assert!(!r.body.complete && r.anomalies.contains(&Anomaly::BodyGap), "{}", shape(&out[0]));
    assert_eq!(&r.body.captured[..], b"", "nothing after the gap is spliced onto the body");
    let s = h2(&conn);
    assert_eq!(s.resyncs, 1);
    assert!(s.bytes_skipped >= 5007, "{s:?}");
}

#[test]
fn garbage_never_stalls_and_stays_bounded() {
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    conn.push(StreamSide::Request, Segment::Data { ts_ns: 1, bytes: Bytes::from_static(PREFACE) }, &mut out);
    let mut x: u32 = 7;
    for i in 0..200 {
        let junk: Vec<u8> = (0..997)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let side = if i % 2 == 0 { StreamSide::Request } else { StreamSide::Response };
        conn.push(side, Segment::Data { ts_ns: i, bytes: Bytes::from(junk) }, &mut out);
        assert!(conn.held_bytes() <= 4 << 20);
    }
    conn.close(1000, &mut out);
}

#[test]
fn caps_are_counted() {
    let limits = H2Limits { max_streams: 2, max_header_list_bytes: 200, ..H2Limits::default() };
    let mut conn = Connection::with_h2_limits(Limits::default(), limits);
    let mut w = Wire::started();
    w.get(1, "/1");
    w.get(3, "/3");
    w.get(5, "/5");
    let long = "v".repeat(300);
    w.headers(StreamSide::Request, 7, END_STREAM, &[(":method", "GET"), (":path", "/7"), ("x-long", &long)]);
    let mut out = Vec::new();
    for (side, b) in &w.writes {
        conn.push(*side, Segment::Data { ts_ns: 1, bytes: Bytes::copy_from_slice(b) }, &mut out);
    }
    let s = h2(&conn);
    assert_eq!(s.stream_cap_evictions, 2, "{s:?}");
    assert_eq!(s.header_lists_too_large, 1);
    assert_eq!(out.len(), 2, "the oldest streams left, incomplete");
    conn.close(2, &mut out);
    let seven = out.iter().find(|e| e.request.as_ref().unwrap().target == "/7").unwrap();
    assert!(seven.request.as_ref().unwrap().anomalies.contains(&Anomaly::HeadTooLarge));
}

#[test]
fn grpc_call_with_trailers_and_trailers_only() {
    let mut w = Wire::started();
    let req = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/bank.v1.Payments/Charge"),
        (":authority", "pay"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    w.headers(StreamSide::Request, 1, 0, &req);
    w.data(StreamSide::Request, 1, END_STREAM, &grpc::frame(b"\x0a\x104111111111111111"));
    w.headers(StreamSide::Response, 1, 0, &[(":status", "200"), ("content-type", "application/grpc")]);
    w.data(StreamSide::Response, 1, 0, &grpc::frame(b"\x08\x01"));
    w.headers(StreamSide::Response, 1, END_STREAM, &[("grpc-status", "0"), ("grpc-message", "")]);
    w.headers(StreamSide::Request, 3, 0, &req);
    w.data(StreamSide::Request, 3, END_STREAM, &grpc::frame(b""));
    w.headers(
        StreamSide::Response,
        3,
        END_STREAM,
        &[(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "7")],
    );
    let (out, _) = w.run();
    assert_eq!(out.len(), 2);
    let first = out[0].response.as_ref().unwrap();
    assert_eq!(grpc::status(&first.headers), Some(0), "the trailer");
    assert!(first.body.complete && first.anomalies.is_empty());
    assert_eq!(grpc::status(&out[1].response.as_ref().unwrap().headers), Some(7), "trailers-only");
    let body = &out[0].request.as_ref().unwrap().body.captured;
    let m: Vec<_> = grpc::messages(body).collect();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].payload, b"\x0a\x104111111111111111");
}

#[test]
fn push_promise_opens_a_stream() {
    let mut w = Wire::started();
    w.get(1, "/page");
    let block = w.block(
        StreamSide::Response,
        &[(":method", "GET"), (":path", "/style.css"), (":authority", "api.test"), (":scheme", "https")],
    );
    let mut payload = vec![0, 0, 0, 2];
    payload.extend(block);
    w.write(StreamSide::Response, frame::encode(PUSH, END_HEADERS, 1, &payload));
    w.ok(1, b"page");
    w.ok(2, b"css");
    let (out, _) = w.run();
    assert_eq!(out.len(), 2);
    let pushed = out.iter().find(|e| e.request.as_ref().unwrap().target == "/style.css").unwrap();
    assert_eq!(&pushed.response.as_ref().unwrap().body.captured[..], b"css");
}

#[test]
fn h2c_upgrade_continues_as_http2() {
    let mut w = Wire::new();
    w.write(
        StreamSide::Request,
        b"GET /up HTTP/1.1\r\nHost: h2c.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAA\r\n\r\n".to_vec(),
    );
    let mut resp =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    resp.extend(frame::encode(SETTINGS, 0, 0, &[]));
    w.write(StreamSide::Response, resp);
    let mut preface = PREFACE.to_vec();
    preface.extend(frame::encode(SETTINGS, 0, 0, &[]));
    w.write(StreamSide::Request, preface);
    w.ok(1, b"upgraded");
    w.get(3, "/after");
    w.ok(3, b"again");
    let (out, conn) = w.run();
    assert_eq!(out.len(), 2, "{:#?}", shapes(&out));
    let up = &out[0];
    let req = up.request.as_ref().unwrap();
    assert_eq!((req.method.as_str(), req.target.as_str(), req.version), ("GET", "/up", Version::Http11));
    let r = up.response.as_ref().unwrap();
    assert_eq!((r.status, r.version, &r.body.captured[..]), (200, Version::Http2, &b"upgraded"[..]));
    assert_eq!(out[1].request.as_ref().unwrap().version, Version::Http2);
    assert_eq!(h2(&conn).h2c_upgrades, 1);
    assert!(conn.is_upgraded());
    assert_eq!(conn.http1_stats().bytes_skipped, 0, "nothing after the 101 was thrown away");
}

#[test]
fn server_settings_before_the_client_preface() {
    // nginx sends its SETTINGS as soon as TLS is up, before it reads the client's preface.
    let mut w = Wire::new();
    w.write(StreamSide::Response, frame::encode(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 128, 0, 4, 0, 1, 0, 0]));
    w.write(StreamSide::Response, frame::encode(WINDOW, 0, 0, &[0, 0x7f, 0, 0]));
    let mut first = PREFACE.to_vec();
    first.extend(frame::encode(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 0]));
    w.write(StreamSide::Request, first);
    w.get(1, "/first");
    w.ok(1, b"body");
    let (out, conn) = w.run();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].request.as_ref().unwrap().target, "/first");
    assert!(out[0].response.as_ref().unwrap().body.complete);
    let s = h2(&conn);
    assert_eq!((s.bytes_skipped, s.resyncs), (0, 0), "{s:?}");
}

#[test]
fn a_reset_http2_connection_stays_http2() {
    let mut w = Wire::started();
    w.get(1, "/before");
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    for (side, b) in &w.writes {
        conn.push(*side, Segment::Data { ts_ns: 1, bytes: Bytes::copy_from_slice(b) }, &mut out);
    }
    let mut fresh = conn.reset();
    conn.close(2, &mut out);
    assert_eq!(out.len(), 1, "the old parser reports what it had");
    let mut w2 = Wire::new();
    w2.client = std::mem::take(&mut w.client);
    w2.get(3, "/after");
    w2.ok(3, b"ok");
    for (side, b) in &w2.writes {
        fresh.push(*side, Segment::Data { ts_ns: 3, bytes: Bytes::copy_from_slice(b) }, &mut out);
    }
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].request.as_ref().unwrap().target, "/after");
    assert_eq!(h2(&fresh).connections, 0, "not counted twice");
}

#[test]
fn http1_is_still_http1() {
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    let req = Bytes::from_static(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    let resp = Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    conn.push(StreamSide::Request, Segment::Data { ts_ns: 1, bytes: req }, &mut out);
    conn.push(StreamSide::Response, Segment::Data { ts_ns: 2, bytes: resp }, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].request.as_ref().unwrap().version, Version::Http11);
    assert!(conn.h2_stats().is_none());
}
