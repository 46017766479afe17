//! Body delimitation (RFC 9112 §6): [`BodyState`] tracks how much of a
//! body its framing still expects, mostly through the incremental decoder
//! for the chunked transfer coding (RFC 9112 §7.1).
//!
//! Input: the bytes following a head that announced `Transfer-Encoding:
//! chunked`, in pieces of any size. Output: ranges of payload bytes inside
//! the piece just fed, and a final "done" once the last chunk and the trailer
//! section are consumed. Nothing is buffered: chunk sizes are accumulated
//! digit by digit, extensions and trailers are skipped byte by byte and only
//! their length is bounded, so a split anywhere (even between `\r` and `\n`)
//! yields the same result.
//!
//! Bare `\n` is accepted wherever `\r\n` is expected, and whitespace is
//! tolerated between the size and its extension: a passive sensor gains
//! nothing from being stricter than the peers it observes.

use std::ops::Range;

use bytes::Bytes;
use thiserror::Error;

use super::exchange::BodyBuilder;

/// How the rest of a body is delimited, and how much of it is left.
#[derive(Debug)]
pub(crate) enum BodyState {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
}

pub(crate) enum BodyEnd {
    More,
    Complete,
    /// Chunk framing broke; the body ends here, incomplete.
    Invalid,
}

impl BodyState {
    /// Consumes body bytes from the front of `input`, recording payload in `body`.
    pub(crate) fn read(&mut self, input: &Bytes, body: &mut BodyBuilder) -> (usize, BodyEnd) {
        match self {
            BodyState::UntilClose => {
                body.data(input, 0, input.len());
                (input.len(), BodyEnd::More)
            }
            BodyState::Length { remaining } => {
                let take = (*remaining).min(input.len() as u64);
                *remaining -= take;
                // `take <= input.len()`, so it fits a usize.
                let take = take as usize;
                body.data(input, 0, take);
                let end = if *remaining == 0 { BodyEnd::Complete } else { BodyEnd::More };
                (take, end)
            }
            BodyState::Chunked(dec) => match dec.feed(input) {
                Ok(p) => {
                    if let Some(r) = p.payload {
                        body.data(input, r.start, r.end);
                    }
                    let end = if p.done { BodyEnd::Complete } else { BodyEnd::More };
                    (p.consumed, end)
                }
                Err(e) => (e.consumed, BodyEnd::Invalid),
            },
        }
    }

    /// `len` uncaptured bytes arrived. Returns how many of them were body,
    /// and, if the body ended, whether framing was lost past its end.
    pub(crate) fn gap(&mut self, len: u64) -> (u64, Option<bool>) {
        match self {
            BodyState::UntilClose => (len, None),
            BodyState::Length { remaining } => {
                let absorbed = len.min(*remaining);
                *remaining -= absorbed;
                (absorbed, (*remaining == 0).then_some(len > absorbed))
            }
            BodyState::Chunked(dec) => match dec.gap(len) {
                GapOutcome::Absorbed => (len, None),
                GapOutcome::Broken { payload } => (payload.min(len), Some(true)),
            },
        }
    }
}

/// Chunk framing could not be decoded; the rest of the stream is unframed.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("invalid chunked framing at input byte {consumed}")]
pub(crate) struct InvalidChunk {
    /// Bytes of the input consumed, including the offending one.
    pub consumed: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` distinguishes "no size yet" from size 0.
    Size {
        value: u64,
        digits: u32,
    },
    /// Whitespace after the digits: only more whitespace, `;` or EOL may follow.
    SizeWs {
        value: u64,
    },
    /// Inside `;ext...`, skipped up to the end of the line.
    Ext {
        value: u64,
    },
    /// Saw `\r` ending the size line.
    SizeCr {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    /// Payload of a chunk done; its CRLF is next.
    DataEnd,
    DataCr,
    /// At the start of a trailer field line or of the final empty line.
    TrailerStart,
    TrailerLine,
    TrailerCr {
        empty: bool,
    },
    Done,
}

/// Result of one [`ChunkedDecoder::feed`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Bytes of the input consumed (framing and payload).
    pub consumed: usize,
    /// Payload bytes inside the consumed input, if any.
    pub payload: Option<Range<usize>>,
    pub done: bool,
}

/// How a capture gap affected the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GapOutcome {
    /// The gap lay entirely inside chunk payload; decoding continues.
    Absorbed,
    /// The gap covered framing; `payload` of its bytes were (at most) payload.
    Broken { payload: u64 },
}

#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Bytes of size-line extensions and trailers seen, bounded so that a
    /// stream of non-newline garbage cannot keep the decoder busy forever.
    overhead: usize,
    max_overhead: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new(max_overhead: usize) -> Self {
        ChunkedDecoder { state: State::Size { value: 0, digits: 0 }, overhead: 0, max_overhead }
    }

    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing from `input` until it reaches payload, completes, or
    /// runs out. At most one payload range is returned so callers loop.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<Progress, InvalidChunk> {
        let mut pos = 0;
        while let Some(&b) = input.get(pos) {
            if let State::Data { remaining } = self.state {
                let avail = (input.len() - pos) as u64;
                let take = remaining.min(avail);
                // `take <= avail`, which came from a usize.
                let end = pos + take as usize;
                self.state = if take == remaining {
                    State::DataEnd
                } else {
                    State::Data { remaining: remaining - take }
                };
                return Ok(Progress { consumed: end, payload: Some(pos..end), done: false });
            }
            pos += 1;
            self.state = self.step(b).ok_or(InvalidChunk { consumed: pos })?;
            if self.state == State::Done {
                return Ok(Progress { consumed: pos, payload: None, done: true });
            }
        }
        Ok(Progress { consumed: pos, payload: None, done: false })
    }

    fn step(&mut self, b: u8) -> Option<State> {
        let next = match (self.state, b) {
            (State::Size { value, digits }, _) if hex(b).is_some() => {
                let d = u64::from(hex(b).unwrap_or(0));
                let value = value.checked_mul(16).and_then(|v| v.checked_add(d))?;
                State::Size { value, digits: digits.saturating_add(1) }
            }
            (State::Size { digits: 0, .. }, _) => return None,
            (State::Size { value, .. } | State::SizeWs { value }, b' ' | b'\t') => State::SizeWs { value },
            (State::Size { value, .. } | State::SizeWs { value }, b';') => State::Ext { value },
            (State::Size { value, .. } | State::SizeWs { value } | State::Ext { value }, b'\r') => {
                State::SizeCr { value }
            }
            (
                State::Size { value, .. }
                | State::SizeWs { value }
                | State::Ext { value }
                | State::SizeCr { value },
                b'\n',
            ) => after_size_line(value),
            (State::Ext { value }, _) => {
                self.charge()?;
                State::Ext { value }
            }
            (State::DataEnd, b'\r') => State::DataCr,
            (State::DataEnd | State::DataCr, b'\n') => State::Size { value: 0, digits: 0 },
            (State::TrailerStart, b'\r') => State::TrailerCr { empty: true },
            (State::TrailerStart | State::TrailerCr { empty: true }, b'\n') => State::Done,
            (State::TrailerStart | State::TrailerLine, _) if b != b'\r' && b != b'\n' => {
                self.charge()?;
                State::TrailerLine
            }
            (State::TrailerLine, b'\r') => State::TrailerCr { empty: false },
            (State::TrailerLine | State::TrailerCr { empty: false }, b'\n') => State::TrailerStart,
            _ => return None,
        };
        Some(next)
    }

    fn charge(&mut self) -> Option<()> {
        self.overhead = self.overhead.saturating_add(1);
        (self.overhead <= self.max_overhead).then_some(())
    }

    /// `len` bytes of the stream here were not captured.
    pub(crate) fn gap(&mut self, len: u64) -> GapOutcome {
        match self.state {
            State::Data { remaining } if len < remaining => {
                self.state = State::Data { remaining: remaining - len };
                GapOutcome::Absorbed
            }
            State::Data { remaining } if len == remaining => {
                self.state = State::DataEnd;
                GapOutcome::Absorbed
            }
            State::Data { remaining } => GapOutcome::Broken { payload: remaining },
            _ => GapOutcome::Broken { payload: 0 },
        }
    }
}

fn after_size_line(value: u64) -> State {
    if value == 0 { State::TrailerStart } else { State::Data { remaining: value } }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns payload and whether done.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, bool, usize), ()> {
        let mut d = ChunkedDecoder::new(1024);
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let mut off = 0;
            while off < piece.len() {
                let p = d.feed(&piece[off..]).map_err(|_| ())?;
                if let Some(r) = p.payload {
                    out.extend_from_slice(&piece[off + r.start..off + r.end]);
                }
                off += p.consumed;
                used += p.consumed;
                if p.done {
                    return Ok((out, true, used));
                }
            }
        }
        Ok((out, d.is_done(), used))
    }

    #[test]
    fn simple_extensions_trailers_any_split() {
        let input = b"4;name=val\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nTrailer: a\r\nX: y\r\n\r\nNEXT";
        for step in 1..=input.len() {
            let (payload, done, used) = decode(input, step).expect("valid");
            assert_eq!(payload, b"Wikipedia in\r\n\r\nchunks.", "step {step}");
            assert!(done);
            assert_eq!(used, input.len() - 4, "stops before next message");
        }
    }

    #[test]
    fn bare_lf_and_uppercase_hex() {
        let (p, done, _) = decode(b"A\nabcdefghij\n0\n\n", 1).expect("valid");
        assert_eq!(p, b"abcdefghij");
        assert!(done);
    }

    #[test]
    fn rejects_bad_framing() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"4\r\nabcdX\r\n",
            b"4\r\nabcd\rX",
            b"4\rX",
            b"0\r\nTrailer\rX",
            b"4 5\r\n",
        ] {
            assert_eq!(decode(bad, 1), Err(()), "{bad:?}");
            assert_eq!(decode(bad, bad.len()), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn huge_size_does_not_overflow() {
        assert_eq!(decode(b"fffffffffffffffff\r\n", 1), Err(()), "17 hex digits overflow u64");
        let mut d = ChunkedDecoder::new(16);
        let p = d.feed(b"ffffffffffffffff\r\nab").expect("fits u64");
        assert_eq!((p.consumed, p.payload), (20, Some(18..20)));
        assert_eq!(d.gap(u64::MAX), GapOutcome::Broken { payload: u64::MAX - 2 });
    }

    #[test]
    fn leading_zeros_are_fine() {
        let (p, done, _) = decode(b"000000000000000000002\r\nab\r\n0\r\n\r\n", 3).expect("ok");
        assert_eq!(p, b"ab");
        assert!(done);
    }

    #[test]
    fn overhead_is_bounded() {
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', 2000));
        assert_eq!(decode(&long, 7), Err(()));
    }

    #[test]
    fn gap_inside_payload_is_absorbed() {
        let mut d = ChunkedDecoder::new(16);
        d.feed(b"a\r\n").expect("size");
        assert_eq!(d.gap(4), GapOutcome::Absorbed);
        assert_eq!(d.gap(6), GapOutcome::Absorbed);
        let p = d.feed(b"\r\n0\r\n\r\n").expect("rest");
        assert!(p.done);
        let mut d = ChunkedDecoder::new(16);
        assert_eq!(d.gap(1), GapOutcome::Broken { payload: 0 });
    }
}
