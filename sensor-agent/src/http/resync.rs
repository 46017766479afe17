//! Finding our footing in a byte stream whose framing is unknown: at the
//! start of a capture that joined mid-connection, after a gap, or after
//! bytes that did not parse. Bytes are discarded (and counted) until a line
//! begins with something that plausibly starts a message; the match is only
//! a candidate, httparse has the final word on it.
//!
//! Also home of [`Spill`], the timestamped byte buffer that lets bytes which
//! turned out not to be what they seemed be fed through the parser again.

use bytes::Bytes;

use super::{HttpStats, StreamSide};

/// Longest candidate kept while looking for a message start (method token,
/// space, first bytes of the target).
const MAX_CANDIDATE: usize = 32;
const MAX_METHOD_LEN: usize = 24;

#[rustfmt::skip]
const KNOWN_METHODS: &[&[u8]] = &[
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
    b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH",
    b"REPORT", b"MKACTIVITY", b"CHECKOUT", b"MERGE", b"M-SEARCH", b"NOTIFY", b"SUBSCRIBE",
    b"UNSUBSCRIBE", b"PURGE", b"LINK", b"UNLINK", b"QUERY", b"SOURCE", b"BIND", b"REBIND",
    b"UNBIND", b"ACL", b"MKCALENDAR",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartMatch {
    /// The candidate plausibly begins a message.
    Match,
    /// Could still become a match with more bytes.
    Prefix,
    NoMatch,
}

/// Decides whether `cand` (bytes from a line start) looks like the start of
/// a message. Deliberately stricter than httparse: this is used only where the
/// stream position is unknown, so every false positive costs a parse error.
pub(crate) fn classify_start(side: StreamSide, cand: &[u8]) -> StartMatch {
    match side {
        StreamSide::Response => {
            const START: &[u8] = b"HTTP/1.";
            if cand.len() >= START.len() {
                if cand.starts_with(START) { StartMatch::Match } else { StartMatch::NoMatch }
            } else if START.starts_with(cand) {
                StartMatch::Prefix
            } else {
                StartMatch::NoMatch
            }
        }
        StreamSide::Request => classify_request_start(cand),
    }
}

fn classify_request_start(cand: &[u8]) -> StartMatch {
    let Some(sp) = cand.iter().position(|&b| b == b' ') else {
        let plausible = cand.len() < MAX_METHOD_LEN && cand.iter().all(|&b| is_method_byte(b));
        return if plausible { StartMatch::Prefix } else { StartMatch::NoMatch };
    };
    let (method, rest) = cand.split_at(sp);
    let target = rest.get(1..).unwrap_or_default();
    if method.is_empty() || !method.iter().all(|&b| is_method_byte(b)) {
        return StartMatch::NoMatch;
    }
    let Some(&first) = target.first() else {
        return StartMatch::Prefix;
    };
    if KNOWN_METHODS.contains(&method) {
        // Known methods may carry authority-form targets (CONNECT host:port).
        return if first.is_ascii_graphic() { StartMatch::Match } else { StartMatch::NoMatch };
    }
    // A capture that starts mid-method shows a tail like "ET /" or "OST /".
    if KNOWN_METHODS.iter().any(|k| k.ends_with(method)) {
        return StartMatch::NoMatch;
    }
    match first {
        b'/' | b'*' => StartMatch::Match,
        b'h' | b'H' => {
            const HTTP: &[u8] = b"http";
            let n = target.len().min(HTTP.len());
            let (have, want) = (target.get(..n), HTTP.get(..n));
            match (have, want) {
                (Some(h), Some(w)) if h.eq_ignore_ascii_case(w) => {
                    if n == HTTP.len() {
                        StartMatch::Match
                    } else {
                        StartMatch::Prefix
                    }
                }
                _ => StartMatch::NoMatch,
            }
        }
        _ => StartMatch::NoMatch,
    }
}

fn is_method_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'-' || b == b'_'
}

/// Looking for a plausible message start after losing track of framing.
#[derive(Debug)]
pub(crate) struct Seek {
    pub(crate) line_start: bool,
    cand: [u8; MAX_CANDIDATE],
    pub(crate) cand_len: usize,
    cand_ts: u64,
    /// Whether this episode was already counted in `resyncs`.
    pub(crate) counted: bool,
}

impl Seek {
    pub(crate) fn new(line_start: bool, counted: bool) -> Self {
        Seek { line_start, cand: [0; MAX_CANDIDATE], cand_len: 0, cand_ts: 0, counted }
    }
}

impl Seek {
    /// Scans `input` for a message start; returns bytes used and, once found,
    /// the start's bytes with the timestamp of its first byte.
    pub(crate) fn step(
        &mut self,
        side: StreamSide,
        ts: u64,
        input: &[u8],
        stats: &mut HttpStats,
    ) -> (usize, Option<(u64, Spill)>) {
        let seek = self;
        let mut skip = |seek: &mut Seek, n: usize| {
            stats.skipped(n as u64);
            if n > 0 && !seek.counted {
                seek.counted = true;
                stats.resyncs += 1;
            }
        };
        for (i, &b) in input.iter().enumerate() {
            if seek.cand_len == 0 && !seek.line_start {
                // Fast path: nothing can start before the next line.
                let rest = input.get(i..).unwrap_or_default();
                let Some(nl) = rest.iter().position(|&c| c == b'\n') else {
                    skip(seek, rest.len());
                    return (input.len(), None);
                };
                skip(seek, nl + 1);
                seek.line_start = true;
                return (i + nl + 1, None);
            }
            if seek.cand_len == 0 {
                seek.cand_ts = ts;
            }
            let Some(slot) = seek.cand.get_mut(seek.cand_len) else {
                skip(seek, seek.cand_len);
                seek.cand_len = 0;
                seek.line_start = false;
                return (i, None);
            };
            *slot = b;
            seek.cand_len += 1;
            let cand = seek.cand.get(..seek.cand_len).unwrap_or_default();
            match classify_start(side, cand) {
                StartMatch::Prefix => {}
                StartMatch::Match => {
                    let mut spill = Spill::default();
                    let before = seek.cand_len - 1;
                    spill.push(seek.cand_ts, cand.get(..before).unwrap_or_default());
                    spill.push(ts, &[b]);
                    return (i + 1, Some((seek.cand_ts, spill)));
                }
                StartMatch::NoMatch => {
                    skip(seek, seek.cand_len);
                    seek.cand_len = 0;
                    seek.line_start = b == b'\n';
                }
            }
        }
        (input.len(), None)
    }
}

/// Timestamp changes remembered per buffer; past this, later bytes inherit
/// the last recorded timestamp (only replayed bytes can be affected).
const MAX_MARKS: usize = 64;

/// Bytes kept aside together with the timestamps of the segments they came from.
#[derive(Debug, Default)]
pub(crate) struct Spill {
    pub(crate) buf: Vec<u8>,
    marks: Vec<(usize, u64)>,
}

impl Spill {
    pub(crate) fn push(&mut self, ts: u64, bytes: &[u8]) {
        if self.marks.last().is_none_or(|&(_, t)| t != ts) && self.marks.len() < MAX_MARKS {
            self.marks.push((self.buf.len(), ts));
        }
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Keeps the first `len` bytes (and the timestamps of those).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
        self.marks.retain(|&(start, _)| start < len);
    }

    pub(crate) fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    /// The bytes from `skip` on, cut back into timestamped pieces for replay.
    pub(crate) fn into_pieces(self, skip: usize) -> Vec<Input> {
        let all = Bytes::from(self.buf);
        let mut pieces = Vec::with_capacity(self.marks.len());
        for (i, &(start, ts)) in self.marks.iter().enumerate() {
            let end = self.marks.get(i + 1).map_or(all.len(), |&(e, _)| e);
            let start = start.max(skip).min(end);
            if start < end {
                pieces.push(Input::Data(ts, all.slice(start..end)));
            }
        }
        pieces
    }
}

#[derive(Debug)]
pub(crate) enum Input {
    Data(u64, Bytes),
    Gap(u64, u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_start_classification() {
        use StartMatch::{Match, NoMatch, Prefix};
        let r = |s: &str| classify_start(StreamSide::Request, s.as_bytes());
        assert_eq!(r("GET /"), Match);
        assert_eq!(r("GE"), Prefix);
        assert_eq!(r("GET "), Prefix);
        assert_eq!(r("CONNECT example.com:443"), Match);
        assert_eq!(r("FOO /x"), Match);
        assert_eq!(r("FOO ht"), Prefix);
        assert_eq!(r("FOO http"), Match);
        assert_eq!(r("FOO x"), NoMatch);
        assert_eq!(r("get /"), NoMatch);
        assert_eq!(r("ET /"), NoMatch);
        assert_eq!(r("OST /x"), NoMatch);
        assert_eq!(r(" GET"), NoMatch);
        assert_eq!(r("GET  /"), NoMatch);
        assert_eq!(r("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), NoMatch);
        let s = |s: &str| classify_start(StreamSide::Response, s.as_bytes());
        assert_eq!(s("HTTP/1.1 200"), Match);
        assert_eq!(s("HTT"), Prefix);
        assert_eq!(s("HTTP/2"), NoMatch);
    }

    #[test]
    fn spill_replays_with_timestamps() {
        let mut s = Spill::default();
        s.push(1, b"ab");
        s.push(1, b"c");
        s.push(2, b"de");
        let pieces: Vec<(u64, Vec<u8>)> = s
            .into_pieces(1)
            .into_iter()
            .filter_map(|p| match p {
                Input::Data(ts, b) => Some((ts, b.to_vec())),
                Input::Gap(..) => None,
            })
            .collect();
        assert_eq!(pieces, [(1, b"bc".to_vec()), (2, b"de".to_vec())]);
    }
}
