//! The HTTP/1.x stage on arbitrary bytes, cut into arbitrary segments and gaps on both sides.
//! Input: a control byte per step: side (bit 0), gap (bit 1), length (bits 2..); then that many
//! data bytes.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sensor_agent::{
    http::{HttpConnection, Limits, StreamSide},
    reassembly::Segment,
};

fuzz_target!(|data: &[u8]| {
    let mut conn = HttpConnection::new(Limits { max_head_bytes: 4096, max_body_capture: 1024, max_pending_requests: 8 });
    let mut out = Vec::new();
    let mut rest = data;
    let mut ts = 0u64;
    while let Some((&control, tail)) = rest.split_first() {
        let side = if control & 1 == 0 { StreamSide::Request } else { StreamSide::Response };
        let len = usize::from(control >> 2) + 1;
        ts += 1;
        if control & 2 != 0 {
            conn.push(side, Segment::Gap { ts_ns: ts, len: len as u64 * 37 }, &mut out);
            rest = tail;
        } else {
            let take = len.min(tail.len());
            conn.push(side, Segment::Data { ts_ns: ts, bytes: Bytes::copy_from_slice(&tail[..take]) }, &mut out);
            rest = &tail[take..];
        }
    }
    conn.close(ts + 1, &mut out);
    for exchange in &out {
        if let Some(r) = &exchange.request {
            assert!(r.body.captured.len() <= 1024);
            assert!(r.body.captured.len() as u64 <= r.body.size);
        }
        if let Some(r) = &exchange.response {
            assert!(r.body.captured.len() <= 1024);
            assert!(r.body.captured.len() as u64 <= r.body.size);
        }
    }
});
