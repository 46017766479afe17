//! Reassembly and HTTP together on arbitrary chunks: out of order, overlapping, partly
//! uncaptured, on a few connections, with closes.
#![no_main]
use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sensor_agent::{
    capture::{ConnMeta, Direction, Event, Origin, RawChunk, Role},
    http::{Limits, stage::HttpStage},
    reassembly::{Reassembler, ReassemblyLimits},
};

fuzz_target!(|data: &[u8]| {
    let mut reassembly = Reassembler::new(ReassemblyLimits::default());
    let mut http = HttpStage::new(Limits::default(), 256 * 1024);
    let mut streams = Vec::new();
    let mut observed = Vec::new();
    for conn_id in 0..4u64 {
        let meta = ConnMeta {
            conn_id,
            tgid: 1,
            fd: conn_id as i32,
            role: if conn_id % 2 == 0 { Role::Server } else { Role::Client },
            origin: if conn_id == 3 { Origin::Inferred } else { Origin::Accept },
            comm: String::new(),
            exe: None,
            local: None,
            remote: None,
            opened_ns: 0,
            tls: false,
            service: String::new(),
            container_id: None,
        };
        reassembly.push(Event::Open(Arc::new(meta)), &mut streams);
    }
    let mut rest = data;
    let mut ts = 0u64;
    while rest.len() >= 4 {
        let (head, tail) = rest.split_at(4);
        ts += 1;
        let conn_id = u64::from(head[0] & 3);
        if head[0] & 0x80 != 0 {
            reassembly.push(Event::Close { conn_id, ts_ns: ts }, &mut streams);
            rest = tail;
            continue;
        }
        let direction = if head[0] & 4 == 0 { Direction::Ingress } else { Direction::Egress };
        let offset = u64::from(u16::from_le_bytes([head[1], head[2]]));
        let len = usize::from(head[3]).min(tail.len());
        let captured = if head[0] & 8 != 0 { len / 2 } else { len };
        let chunk = RawChunk {
            conn_id,
            tgid: 1,
            fd: conn_id as i32,
            ts_ns: ts,
            direction,
            tls: false,
            source: 1,
            offset,
            len: len as u64,
            payload: Bytes::copy_from_slice(&tail[..captured]),
        };
        reassembly.push(Event::Data(chunk), &mut streams);
        rest = &tail[len..];
        for s in streams.drain(..) {
            http.push(s, &mut observed);
        }
    }
    reassembly.tick(ts + 1, &mut streams);
    reassembly.close_all(&mut streams);
    for s in streams.drain(..) {
        http.push(s, &mut observed);
    }
});
