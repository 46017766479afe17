//! One direction of one connection: chunks in, contiguous segments out.
use std::collections::BTreeMap;

use bytes::Bytes;

use super::{ReassemblyStats, Segment};

#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Bytes of out-of-order data held waiting for a hole to fill.
    pub max_pending_bytes: u64,
    /// Out-of-order chunks held.
    pub max_pending_chunks: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits { max_pending_bytes: 256 * 1024, max_pending_chunks: 64 }
    }
}

struct Pending {
    ts_ns: u64,
    len: u64,
    payload: Bytes,
}

pub struct Stream {
    limits: StreamLimits,
    /// Offset of the next byte owed downstream; `None` until the first chunk of a stream joined
    /// mid-way (whose earlier bytes were never going to be seen, so they are not a gap).
    next: Option<u64>,
    pending: BTreeMap<u64, Pending>,
    pending_bytes: u64,
}

impl Stream {
    /// A stream whose first byte is at offset 0 (`joined_midway` false) or wherever its first
    /// chunk starts.
    #[must_use]
    pub fn new(limits: StreamLimits, joined_midway: bool) -> Self {
        Stream {
            limits,
            next: if joined_midway { None } else { Some(0) },
            pending: BTreeMap::new(),
            pending_bytes: 0,
        }
    }

    /// Out-of-order bytes waiting for a hole to fill.
    #[must_use]
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    fn next(&self) -> u64 {
        self.next.unwrap_or(0)
    }

    /// Accepts the chunk covering `[offset, offset + len)` whose first `payload.len()` bytes were
    /// captured, and emits whatever has become contiguous.
    pub fn push(
        &mut self,
        offset: u64,
        len: u64,
        payload: Bytes,
        ts_ns: u64,
        out: &mut Vec<Segment>,
        stats: &mut ReassemblyStats,
    ) {
        if len == 0 {
            return;
        }
        let next = *self.next.get_or_insert(offset);
        if offset > next {
            self.pending_bytes += len;
            if let Some(old) = self.pending.insert(offset, Pending { ts_ns, len, payload }) {
                self.pending_bytes -= old.len;
                stats.duplicate_bytes += old.len;
            }
            if self.pending_bytes > self.limits.max_pending_bytes
                || self.pending.len() > self.limits.max_pending_chunks
            {
                stats.forced_gaps += 1;
                self.skip_to_first_pending(ts_ns, out, stats);
                self.drain(out, stats);
            }
            return;
        }
        self.emit(offset, len, payload, ts_ns, out, stats);
        self.drain(out, stats);
    }

    /// Declares every hole a gap and delivers everything held.
    pub fn flush(&mut self, ts_ns: u64, out: &mut Vec<Segment>, stats: &mut ReassemblyStats) {
        while !self.pending.is_empty() {
            self.skip_to_first_pending(ts_ns, out, stats);
            self.drain(out, stats);
        }
    }

    fn skip_to_first_pending(&mut self, ts_ns: u64, out: &mut Vec<Segment>, stats: &mut ReassemblyStats) {
        if let Some((&first, _)) = self.pending.first_key_value()
            && first > self.next()
        {
            let len = first - self.next();
            stats.gap_bytes += len;
            out.push(Segment::Gap { ts_ns, len });
            self.next = Some(first);
        }
    }

    fn drain(&mut self, out: &mut Vec<Segment>, stats: &mut ReassemblyStats) {
        loop {
            let next = self.next();
            let Some(entry) = self.pending.first_entry() else {
                break;
            };
            if *entry.key() > next {
                break;
            }
            let offset = *entry.key();
            let p = entry.remove();
            self.pending_bytes -= p.len;
            self.emit(offset, p.len, p.payload, p.ts_ns, out, stats);
        }
    }

    /// Emits a chunk that starts at or before `next`, trimming what was already delivered.
    fn emit(
        &mut self,
        offset: u64,
        len: u64,
        mut payload: Bytes,
        ts_ns: u64,
        out: &mut Vec<Segment>,
        stats: &mut ReassemblyStats,
    ) {
        let end = offset.saturating_add(len);
        let next = self.next();
        if end <= next {
            stats.duplicate_bytes += len;
            return;
        }
        let skip = next.saturating_sub(offset);
        stats.duplicate_bytes += skip;
        let captured = payload.len() as u64;
        payload = if skip < captured { payload.slice(skip as usize..) } else { Bytes::new() };
        let remaining = end - next.max(offset);
        if !payload.is_empty() {
            out.push(Segment::Data { ts_ns, bytes: payload.clone() });
        }
        let missing = remaining - payload.len() as u64;
        if missing > 0 {
            stats.gap_bytes += missing;
            out.push(Segment::Gap { ts_ns, len: missing });
        }
        self.next = Some(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[(u64, u64, &'static [u8])]) -> (Vec<Segment>, ReassemblyStats) {
        let mut s = Stream::new(StreamLimits { max_pending_bytes: 100, max_pending_chunks: 4 }, false);
        let mut out = Vec::new();
        let mut stats = ReassemblyStats::default();
        for &(offset, len, payload) in chunks {
            s.push(offset, len, Bytes::from_static(payload), 1, &mut out, &mut stats);
        }
        (out, stats)
    }

    fn data(b: &'static [u8]) -> Segment {
        Segment::Data { ts_ns: 1, bytes: Bytes::from_static(b) }
    }

    #[test]
    fn in_order_chunks_pass_through() {
        let (out, _) = run(&[(0, 3, b"abc"), (3, 2, b"de")]);
        assert_eq!(out, vec![data(b"abc"), data(b"de")]);
    }

    #[test]
    fn out_of_order_chunks_are_reordered() {
        let (out, _) = run(&[(3, 2, b"de"), (0, 3, b"abc")]);
        assert_eq!(out, vec![data(b"abc"), data(b"de")]);
    }

    #[test]
    fn uncaptured_tail_is_a_gap_of_exact_size() {
        let (out, stats) = run(&[(0, 10, b"abc"), (10, 1, b"z")]);
        assert_eq!(out, vec![data(b"abc"), Segment::Gap { ts_ns: 1, len: 7 }, data(b"z")]);
        assert_eq!(stats.gap_bytes, 7);
    }

    #[test]
    fn overlaps_and_duplicates_are_trimmed() {
        let (out, stats) = run(&[(0, 4, b"abcd"), (2, 4, b"cdef"), (0, 2, b"ab")]);
        assert_eq!(out, vec![data(b"abcd"), data(b"ef")]);
        assert_eq!(stats.duplicate_bytes, 4);
    }

    #[test]
    fn overflowing_pending_forces_a_gap() {
        let (out, stats) = run(&[(10, 1, b"a"), (11, 1, b"b"), (12, 1, b"c"), (13, 1, b"d"), (14, 1, b"e")]);
        assert_eq!(out[0], Segment::Gap { ts_ns: 1, len: 10 });
        assert_eq!(out.len(), 6);
        assert_eq!(stats.forced_gaps, 1);
    }

    #[test]
    fn a_stream_joined_midway_starts_at_its_first_chunk() {
        let mut s = Stream::new(StreamLimits::default(), true);
        let mut out = Vec::new();
        let mut stats = ReassemblyStats::default();
        s.push(500, 3, Bytes::from_static(b"GET"), 1, &mut out, &mut stats);
        s.push(503, 1, Bytes::from_static(b" "), 1, &mut out, &mut stats);
        assert_eq!(out, vec![data(b"GET"), data(b" ")]);
        assert_eq!(stats.gap_bytes, 0);
    }

    #[test]
    fn flush_turns_holes_into_gaps() {
        let mut s = Stream::new(StreamLimits::default(), false);
        let mut out = Vec::new();
        let mut stats = ReassemblyStats::default();
        s.push(5, 1, Bytes::from_static(b"x"), 1, &mut out, &mut stats);
        s.push(9, 1, Bytes::from_static(b"y"), 1, &mut out, &mut stats);
        assert!(out.is_empty());
        s.flush(2, &mut out, &mut stats);
        assert_eq!(
            out,
            vec![
                Segment::Gap { ts_ns: 2, len: 5 },
                data(b"x"),
                Segment::Gap { ts_ns: 2, len: 3 },
                data(b"y")
            ]
        );
    }
}
