//! HTTP/2 framing (RFC 9113 §4, §6): the 9-byte frame header, the flags we act on, and the
//! plausibility rules used wherever the position in the byte stream is unknown (deciding that a
//! connection is HTTP/2 at all, and finding a frame boundary again after a gap).

/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(crate) const HEADER_LEN: usize = 9;
/// Largest frame length a plausibility check accepts where framing is unknown: the protocol's
/// default `SETTINGS_MAX_FRAME_SIZE`. Peers may raise it, but most never do and every peer sends
/// frames this small too (SETTINGS, HEADERS, `WINDOW_UPDATE`), so framing is still found; a larger
/// bound would let text such as the preface's `\n\r\n` pass as a length and stall the search
/// waiting for a frame that never comes.
pub(crate) const PLAUSIBLE_MAX_LEN: u32 = 16_384;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY: u8 = 0x20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Data,
    Headers,
    Priority,
    RstStream,
    Settings,
    PushPromise,
    Ping,
    GoAway,
    WindowUpdate,
    Continuation,
    /// Extension frames are ignored (RFC 9113 §4.1).
    Unknown(u8),
}

impl Kind {
    fn from_u8(t: u8) -> Kind {
        match t {
            0 => Kind::Data,
            1 => Kind::Headers,
            2 => Kind::Priority,
            3 => Kind::RstStream,
            4 => Kind::Settings,
            5 => Kind::PushPromise,
            6 => Kind::Ping,
            7 => Kind::GoAway,
            8 => Kind::WindowUpdate,
            9 => Kind::Continuation,
            other => Kind::Unknown(other),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: u32,
    pub kind: Kind,
    pub flags: u8,
    pub stream: u32,
    /// The reserved bit before the stream id (must be zero; only checked for plausibility).
    reserved: bool,
}

impl FrameHeader {
    pub(crate) fn parse(b: &[u8; HEADER_LEN]) -> FrameHeader {
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let raw = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        FrameHeader {
            len,
            kind: Kind::from_u8(b[3]),
            flags: b[4],
            stream: raw & 0x7fff_ffff,
            reserved: raw >> 31 != 0,
        }
    }

    /// Parses the first nine bytes of `bytes`, if there are that many.
    pub(crate) fn parse_prefix(bytes: &[u8]) -> Option<FrameHeader> {
        let head: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader::parse(head))
    }

    pub(crate) fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether this header obeys every rule a well-formed frame of a known type obeys: stream
    /// zero exactly for connection frames, fixed lengths, only the defined flags. Unknown types
    /// are legal on the wire but never plausible here, so arbitrary bytes rarely pass.
    pub(crate) fn plausible(self) -> bool {
        if self.reserved || self.len > PLAUSIBLE_MAX_LEN {
            return false;
        }
        let on_stream = self.stream != 0;
        let flags_within = |allowed: u8| self.flags & !allowed == 0;
        match self.kind {
            Kind::Data => on_stream && flags_within(END_STREAM | PADDED),
            Kind::Headers => on_stream && flags_within(END_STREAM | END_HEADERS | PADDED | PRIORITY),
            Kind::Priority => on_stream && self.len == 5 && self.flags == 0,
            Kind::RstStream => on_stream && self.len == 4 && self.flags == 0,
            Kind::Settings => {
                !on_stream
                    && self.len.is_multiple_of(6)
                    && flags_within(ACK)
                    && !(self.has(ACK) && self.len != 0)
            }
            Kind::PushPromise => on_stream && self.len >= 4 && flags_within(END_HEADERS | PADDED),
            Kind::Ping => !on_stream && self.len == 8 && flags_within(ACK),
            Kind::GoAway => !on_stream && self.len >= 8 && self.flags == 0,
            Kind::WindowUpdate => self.len == 4 && self.flags == 0,
            Kind::Continuation => on_stream && flags_within(END_HEADERS),
            Kind::Unknown(_) => false,
        }
    }
}

/// What the bytes at a position say about HTTP/2 framing there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chain {
    /// Plausible frames follow each other: at least two headers, or one frame that ends exactly
    /// where the bytes end (a write boundary).
    Yes,
    /// Consistent so far; more bytes are needed to tell.
    NeedMore,
    No,
}

/// Checks whether `bytes` begins with consistently chained plausible frame headers.
pub(crate) fn chain(bytes: &[u8]) -> Chain {
    let mut off = 0usize;
    let mut headers = 0u32;
    loop {
        let rest = bytes.get(off..).unwrap_or_default();
        if rest.is_empty() {
            return if headers > 0 { Chain::Yes } else { Chain::NeedMore };
        }
        let Some(h) = FrameHeader::parse_prefix(rest) else {
            // A partial header can still be refuted by its length and type bytes.
            if headers >= 2 {
                return Chain::Yes;
            }
            return if partial_plausible(rest) { Chain::NeedMore } else { Chain::No };
        };
        if !h.plausible() {
            return Chain::No;
        }
        headers += 1;
        off = off.saturating_add(HEADER_LEN + h.len as usize);
        if off > bytes.len() {
            return if headers >= 2 { Chain::Yes } else { Chain::NeedMore };
        }
        if headers >= 3 {
            return Chain::Yes;
        }
    }
}

/// The first bytes of a header (fewer than nine) could still begin a plausible one.
fn partial_plausible(rest: &[u8]) -> bool {
    let mut padded = [0u8; HEADER_LEN];
    let n = rest.len().min(HEADER_LEN);
    padded[..n].copy_from_slice(&rest[..n]);
    let len = u32::from_be_bytes([0, padded[0], padded[1], padded[2]]);
    let kind_ok = n < 4 || !matches!(Kind::from_u8(padded[3]), Kind::Unknown(_));
    let reserved_ok = n < 6 || padded[5] & 0x80 == 0;
    let len_ok = match n {
        0 => true,
        1 => u32::from(padded[0]) << 16 <= PLAUSIBLE_MAX_LEN,
        2 => (u32::from(padded[0]) << 16 | u32::from(padded[1]) << 8) <= PLAUSIBLE_MAX_LEN,
        _ => len <= PLAUSIBLE_MAX_LEN,
    };
    kind_ok && reserved_ok && len_ok
}

/// Where a request-side stream stands against the client preface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Preface {
    Complete,
    /// A proper prefix of the preface: wait for more.
    Prefix,
    Absent,
}

pub(crate) fn preface(bytes: &[u8]) -> Preface {
    let n = bytes.len().min(PREFACE.len());
    if bytes.get(..n) != PREFACE.get(..n) {
        Preface::Absent
    } else if n == PREFACE.len() {
        Preface::Complete
    } else {
        Preface::Prefix
    }
}

/// Builds frames for tests.
#[cfg(test)]
pub(crate) fn encode(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_rules() {
        let f = encode(1, END_HEADERS | END_STREAM, 3, b"abc");
        let h = FrameHeader::parse_prefix(&f).unwrap();
        assert_eq!((h.len, h.kind, h.stream), (3, Kind::Headers, 3));
        assert!(h.has(END_STREAM) && h.has(END_HEADERS) && !h.has(PADDED));
        assert!(h.plausible());
        // SETTINGS on a stream, PING of the wrong size, unknown type: implausible.
        assert!(!FrameHeader::parse_prefix(&encode(4, 0, 1, &[0; 6])).unwrap().plausible());
        assert!(!FrameHeader::parse_prefix(&encode(6, 0, 0, &[0; 4])).unwrap().plausible());
        assert!(!FrameHeader::parse_prefix(&encode(0x20, 0, 1, b"")).unwrap().plausible());
    }

    #[test]
    fn chains() {
        let settings = encode(4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        assert_eq!(chain(&settings), Chain::Yes, "one frame ending at the write boundary");
        assert_eq!(chain(&settings[..5]), Chain::NeedMore);
        assert_eq!(chain(&settings[..12]), Chain::NeedMore);
        let mut two = settings.clone();
        two.extend(encode(8, 0, 0, &[0, 0, 1, 0]));
        assert_eq!(chain(&two[..settings.len() + 3]), Chain::NeedMore);
        assert_eq!(chain(&two), Chain::Yes);
        assert_eq!(chain(b"HTTP/1.1 200 OK\r\n"), Chain::No);
        assert_eq!(chain(b"GET / HTTP/1.1\r\n"), Chain::No);
        assert_eq!(chain(b"H"), Chain::No);
        assert_eq!(chain(b"\x16\x03\x01\x02\x00"), Chain::No, "a TLS record is not HTTP/2");
    }

    #[test]
    fn preface_states() {
        assert_eq!(preface(PREFACE), Preface::Complete);
        assert_eq!(preface(b"PRI * HT"), Preface::Prefix);
        assert_eq!(preface(b"POST / HTTP/1.1"), Preface::Absent);
    }
}
