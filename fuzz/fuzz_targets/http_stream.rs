//! The HTTP/1.x stage on arbitrary bytes, cut into arbitrary segments and gaps on both sides
//! (see `segments.rs` for the input's shape).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sensor_agent::http::{HttpConnection, Limits};

#[path = "segments.rs"]
mod segments;

fuzz_target!(|data: &[u8]| {
    let mut conn = HttpConnection::new(Limits { max_head_bytes: 4096, max_body_capture: 1024, max_pending_requests: 8 });
    let mut out = Vec::new();
    let mut ts = 0u64;
    for (side, segment) in segments::split(data) {
        ts += 1;
        conn.push(side, segment, &mut out);
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
