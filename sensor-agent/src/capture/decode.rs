//! Ring-buffer records -> typed events. Pure and total: any byte slice either decodes or yields a
//! [`DecodeError`] naming what was wrong (never the bytes themselves); nothing here panics.
use std::mem::size_of;

use bytes::Bytes;
use sensor_common::{ConnClose, ConnOpen, DataHeader, ProcExec, ProcExit, data_flags, direction, kind};
use thiserror::Error;

use super::event::{CaptureEvent, Direction, RawChunk, RawClose, RawOpen};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is too short for a kind tag")]
    NoKind(usize),
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("record kind {kind} needs {need} bytes, got {got}")]
    Short { kind: u32, need: usize, got: usize },
    #[error("data record claims {captured} captured bytes of {len}, with {present} present")]
    BadLengths { captured: u32, len: u32, present: usize },
    #[error("data record has direction {0}")]
    BadDirection(u8),
}

/// Decodes one ring-buffer record.
pub fn decode(record: &[u8]) -> Result<CaptureEvent, DecodeError> {
    let tag: [u8; 4] =
        record.get(..4).and_then(|b| b.try_into().ok()).ok_or(DecodeError::NoKind(record.len()))?;
    match u32::from_ne_bytes(tag) {
        kind::DATA => decode_data(record),
        kind::CONN_OPEN => {
            let o: ConnOpen = read(record, kind::CONN_OPEN)?;
            Ok(CaptureEvent::Open(RawOpen::from(&o)))
        }
        kind::CONN_CLOSE => {
            let c: ConnClose = read(record, kind::CONN_CLOSE)?;
            Ok(CaptureEvent::Close(RawClose {
                conn_id: c.conn_id,
                tgid: c.tgid,
                ts_ns: c.ts_ns,
                ingress_bytes: c.ingress_bytes,
                egress_bytes: c.egress_bytes,
            }))
        }
        kind::PROC_EXIT => {
            let p: ProcExit = read(record, kind::PROC_EXIT)?;
            Ok(CaptureEvent::ProcExit { tgid: p.tgid, ts_ns: p.ts_ns })
        }
        kind::PROC_EXEC => {
            let p: ProcExec = read(record, kind::PROC_EXEC)?;
            Ok(CaptureEvent::ProcExec { tgid: p.tgid, ts_ns: p.ts_ns })
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

fn decode_data(record: &[u8]) -> Result<CaptureEvent, DecodeError> {
    let h: DataHeader = read(record, kind::DATA)?;
    let payload = &record[size_of::<DataHeader>()..];
    if h.captured > h.len || payload.len() < h.captured as usize {
        return Err(DecodeError::BadLengths { captured: h.captured, len: h.len, present: payload.len() });
    }
    let direction = match h.direction {
        direction::INGRESS => Direction::Ingress,
        direction::EGRESS => Direction::Egress,
        other => return Err(DecodeError::BadDirection(other)),
    };
    Ok(CaptureEvent::Data(RawChunk {
        conn_id: h.conn_id,
        tgid: h.tgid,
        fd: h.fd,
        ts_ns: h.ts_ns,
        direction,
        tls: h.flags & data_flags::TLS != 0,
        source: h.source,
        offset: h.offset,
        len: u64::from(h.len),
        payload: Bytes::copy_from_slice(&payload[..h.captured as usize]),
    }))
}

/// Reads a `#[repr(C)]` record of plain integers from the front of `record`. `Pod` (implemented
/// by sensor-common for its records only) is what makes any bit pattern a valid `T`.
fn read<T: aya::Pod>(record: &[u8], kind: u32) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if record.len() < need {
        return Err(DecodeError::Short { kind, need, got: record.len() });
    }
    // SAFETY: length checked above; T: Pod, so every bit pattern is valid; read_unaligned copes
    // with any alignment.
    Ok(unsafe { record.as_ptr().cast::<T>().read_unaligned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: test helper over repr(C) records.
        unsafe { std::slice::from_raw_parts(std::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn data(captured: u32, len: u32, payload: &[u8]) -> Vec<u8> {
        let h = DataHeader {
            kind: kind::DATA,
            tgid: 7,
            conn_id: 9,
            offset: 100,
            len,
            captured,
            direction: direction::EGRESS,
            ..DataHeader::default()
        };
        let mut v = as_bytes(&h);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_data_with_payload_and_gap() {
        let ev = decode(&data(3, 10, b"abc")).unwrap();
        let CaptureEvent::Data(c) = ev else { panic!("not data") };
        assert_eq!((c.conn_id, c.offset, c.len), (9, 100, 10));
        assert_eq!(c.direction, Direction::Egress);
        assert_eq!(&c.payload[..], b"abc");
    }

    #[test]
    fn rejects_inconsistent_lengths() {
        assert!(matches!(decode(&data(11, 10, &[0; 11])), Err(DecodeError::BadLengths { .. })));
        assert!(matches!(decode(&data(5, 10, b"abc")), Err(DecodeError::BadLengths { .. })));
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert_eq!(decode(&[1, 0]), Err(DecodeError::NoKind(2)));
        assert_eq!(decode(&99u32.to_ne_bytes()), Err(DecodeError::UnknownKind(99)));
        let short = &data(0, 0, b"")[..20];
        assert!(matches!(decode(short), Err(DecodeError::Short { .. })));
    }

    #[test]
    fn decodes_open_with_ipv4_peer() {
        let mut o = ConnOpen {
            kind: kind::CONN_OPEN,
            tgid: 5,
            conn_id: 1,
            fd: 4,
            listen_fd: 3,
            ..ConnOpen::default()
        };
        o.role = sensor_common::role::SERVER;
        o.family = sensor_common::family::INET;
        o.remote_port = 5555;
        o.remote_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        o.comm[..6].copy_from_slice(b"python");
        let CaptureEvent::Open(open) = decode(&as_bytes(&o)).unwrap() else { panic!("not open") };
        assert_eq!(open.remote, Some("127.0.0.1:5555".parse().unwrap()));
        assert_eq!(open.comm, "python");
        assert_eq!(open.listen_fd, Some(3));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode(&bytes);
            for k in 1..=5u32 {
                let mut b = bytes.clone();
                if b.len() >= 4 {
                    b[..4].copy_from_slice(&k.to_ne_bytes());
                }
                let _ = decode(&b);
            }
        }
    }
}
