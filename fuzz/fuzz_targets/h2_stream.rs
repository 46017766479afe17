//! The protocol-detecting connection parser (HTTP/2, HTTP/1, h2c) on arbitrary bytes cut into
//! arbitrary segments and gaps on both sides. The first input byte picks how the connection
//! starts: with the client preface (bit 0), so the HTTP/2 parser sees framing from the start,
//! or as arbitrary bytes (mid-connection detection, HTTP/1, upgrades). Then segments and gaps
//! (see `segments.rs`).
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sensor_agent::{
    http::{Connection, Limits, StreamSide, h2::H2Limits},
    reassembly::Segment,
};

#[path = "segments.rs"]
mod segments;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let limits = Limits { max_head_bytes: 4096, max_body_capture: 1024, max_pending_requests: 8 };
    let h2 = H2Limits { max_streams: 8, max_table_bytes: 1024, max_held_bytes: 64 * 1024, ..H2Limits::from_limits(&limits) };
    let mut conn = Connection::with_h2_limits(limits, h2);
    let mut out = Vec::new();
    let mut ts = 0u64;
    if mode & 1 != 0 {
        conn.push(StreamSide::Request, Segment::Data { ts_ns: 0, bytes: Bytes::from_static(PREFACE) }, &mut out);
    }
    for (side, segment) in segments::split(rest) {
        ts += 1;
        conn.push(side, segment, &mut out);
        // Bounded: frame buffers, header blocks, tables and streams all have caps.
        assert!(conn.held_bytes() <= 64 * 1024 + 2 * 4096 + 64 * 1024 + 256 * 1024, "{}", conn.held_bytes());
    }
    conn.close(ts + 1, &mut out);
    for exchange in &out {
        for body in [exchange.request.as_ref().map(|r| &r.body), exchange.response.as_ref().map(|r| &r.body)]
            .into_iter()
            .flatten()
        {
            assert!(body.captured.len() <= 1024);
            assert!(body.captured.len() as u64 <= body.size);
        }
    }
});
