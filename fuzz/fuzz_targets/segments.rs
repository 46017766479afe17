//! Shared by the stream targets: cuts fuzz input into segments and gaps on both sides of a
//! connection. Per step, a control byte: side (bit 0), gap (bit 1), length (bits 2..) + 1;
//! then that many data bytes (a gap covers 37 stream bytes per unit of length).
use bytes::Bytes;
use sensor_agent::{http::StreamSide, reassembly::Segment};

/// The steps of `data`, each with its side; timestamps count steps from 1.
pub fn split(mut rest: &[u8]) -> impl Iterator<Item = (StreamSide, Segment)> + '_ {
    let mut ts = 0u64;
    std::iter::from_fn(move || {
        let (&control, tail) = rest.split_first()?;
        let side = if control & 1 == 0 { StreamSide::Request } else { StreamSide::Response };
        let len = usize::from(control >> 2) + 1;
        ts += 1;
        if control & 2 != 0 {
            rest = tail;
            return Some((side, Segment::Gap { ts_ns: ts, len: len as u64 * 37 }));
        }
        let take = len.min(tail.len());
        rest = &tail[take..];
        Some((side, Segment::Data { ts_ns: ts, bytes: Bytes::copy_from_slice(&tail[..take]) }))
    })
}
