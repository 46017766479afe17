//! HPACK decoding (RFC 7541) for a passive observer, one decoder per direction.
//!
//! A peer's decoder always knows its whole dynamic table; an observer may not: capture may begin
//! after the table was built, a gap may swallow header blocks that inserted entries, and the agent
//! caps how much table it keeps. The table here therefore holds the newest entries it *knows*,
//! and everything older is an unknown tail. That stays exact for the known part: insertions go
//! to the front and evictions take the oldest first, so a known entry is evicted exactly when the
//! known entries alone overflow the maximum (unknown entries, being older, went first). A field
//! that references an unknown entry is counted as undecodable and left out, never guessed; the
//! rest of the block still decodes (static-table and literal fields). A literal that inserts an
//! entry whose name is unknown, or a block that cannot be parsed to its end, makes every entry
//! unknown from there on (`forget`), which is always safe.
//!
//! String literals are Huffman-decoded with `loona-hpack`'s decoder (RFC 7541 Appendix B); the
//! representations and the table are here because no decoder crate can continue past an entry it
//! does not have.

use std::collections::VecDeque;

use loona_hpack::huffman::HuffmanDecoder;

/// Per-entry overhead in table size accounting (RFC 7541 §4.1); also used for header list size
/// (RFC 9113 §6.5.2).
pub(crate) const ENTRY_OVERHEAD: usize = 32;
/// `SETTINGS_HEADER_TABLE_SIZE` before any SETTINGS frame.
pub(crate) const DEFAULT_TABLE_SIZE: usize = 4096;

/// A dynamic table entry: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);
/// A decoded field: name and value.
type Field = (Vec<u8>, Vec<u8>);

/// One decoded header block.
#[derive(Debug, Default)]
pub(crate) struct Block {
    /// Fields in order, as long as the list stays within the size cap.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// Fields that referenced table entries the observer does not have, or that followed a
    /// representation the decoder could not parse.
    pub undecodable: u32,
    /// The header list exceeded the cap: later fields were decoded (to keep the table right)
    /// but not kept.
    pub too_large: bool,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HpackCounts {
    pub undecodable_fields: u64,
    /// Dynamic table size updates beyond the agent's cap (the oldest entries were dropped and
    /// became unknown).
    pub table_capped: u64,
}

pub(crate) struct Decoder {
    /// Newest first.
    entries: VecDeque<Entry>,
    /// Size of the known entries.
    size: usize,
    /// The table maximum last set by the encoder (a size update) or assumed.
    max_size: usize,
    /// Memory the agent allows this table, whatever the encoder says.
    cap: usize,
    /// The table has been followed since the connection began: an index beyond the known entries
    /// is an encoder error rather than a gap in our knowledge (both are undecodable).
    complete: bool,
    pub counts: HpackCounts,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("entries", &self.entries.len())
            .field("size", &self.size)
            .field("max_size", &self.max_size)
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}

/// The representation could not be parsed: the rest of the block is unusable.
#[derive(Debug)]
struct Malformed;

impl Decoder {
    /// `complete`: the connection is observed from its start, so the table starts empty and known.
    pub(crate) fn new(cap: usize, complete: bool) -> Self {
        Decoder {
            entries: VecDeque::new(),
            size: 0,
            max_size: DEFAULT_TABLE_SIZE.min(cap),
            cap,
            complete,
            counts: HpackCounts::default(),
        }
    }

    /// Bytes held by the table.
    pub(crate) fn held_bytes(&self) -> usize {
        self.size
    }

    /// Whether the table is followed from the connection's start.
    #[cfg(test)]
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// The peer that decodes this direction advertised `SETTINGS_HEADER_TABLE_SIZE` = `size`. A
    /// smaller table than the current one cannot hold what it holds now: the encoder must shrink
    /// to it, so entries beyond it are dropped here at once (a block sent before the encoder saw
    /// the setting may then reference one: it is undecodable, never wrong).
    pub(crate) fn set_allowed(&mut self, size: usize) {
        if size < self.max_size {
            self.max_size = size;
            self.evict_to(size);
        }
    }

    /// Every entry becomes unknown (after lost header blocks or an unparseable one).
    pub(crate) fn forget(&mut self) {
        self.entries.clear();
        self.size = 0;
        self.complete = false;
    }

    /// Decodes one complete header block. Never fails: what cannot be decoded is counted.
    pub(crate) fn decode(&mut self, block: &[u8], max_list: usize) -> Block {
        let mut out = Block::default();
        let mut list_size = 0usize;
        let mut pos = 0usize;
        while pos < block.len() {
            match self.field(block, &mut pos) {
                Ok(Some((name, value))) => {
                    list_size = list_size.saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
                    if list_size > max_list {
                        out.too_large = true;
                    } else {
                        out.fields.push((name, value));
                    }
                }
                Ok(None) => {}
                Err(Undecodable::Field) => out.undecodable += 1,
                Err(Undecodable::Rest(Malformed)) => {
                    out.undecodable += 1;
                    // Entries the rest of the block inserted are unknown now.
                    self.forget();
                    break;
                }
            }
        }
        self.counts.undecodable_fields += u64::from(out.undecodable);
        out
    }

    /// Decodes the representation at `pos`: a field, nothing (a size update), or why not.
    fn field(&mut self, block: &[u8], pos: &mut usize) -> Result<Option<Field>, Undecodable> {
        let first = *block.get(*pos).ok_or(Undecodable::Rest(Malformed))?;
        if first & 0x80 != 0 {
            let index = integer(block, pos, 7)?;
            return match self.get(index) {
                Some((n, v)) => Ok(Some((n.to_vec(), v.to_vec()))),
                None => Err(Undecodable::Field),
            };
        }
        if first & 0xe0 == 0x20 {
            let size = integer(block, pos, 5)?;
            self.resize(size);
            return Ok(None);
        }
        let (prefix, indexing) = if first & 0x40 != 0 { (6, true) } else { (4, false) };
        let index = integer(block, pos, prefix)?;
        let name =
            if index == 0 { Some(string(block, pos)?) } else { self.get(index).map(|(n, _)| n.to_vec()) };
        let value = string(block, pos)?;
        match (name, indexing) {
            (Some(name), true) => {
                self.insert(&name, &value);
                Ok(Some((name, value)))
            }
            (Some(name), false) => Ok(Some((name, value))),
            (None, true) => {
                // An entry of unknown name (so unknown size) joins the table.
                self.forget();
                Err(Undecodable::Field)
            }
            (None, false) => Err(Undecodable::Field),
        }
    }

    fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        let i = index.checked_sub(1)?;
        if let Some(&(n, v)) = STATIC_TABLE.get(i) {
            return Some((n.as_bytes(), v.as_bytes()));
        }
        let (n, v) = self.entries.get(i - STATIC_TABLE.len())?;
        Some((n, v))
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.entries.push_front((name.into(), value.into()));
        self.size += size;
    }

    /// A dynamic table size update from the encoder.
    fn resize(&mut self, size: usize) {
        if size > self.cap {
            // Keeping less than the encoder does: the oldest entries become unknown.
            self.counts.table_capped += 1;
            self.complete = false;
        }
        self.max_size = size.min(self.cap);
        self.evict_to(self.max_size);
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            let Some((n, v)) = self.entries.pop_back() else {
                self.size = 0;
                break;
            };
            self.size -= n.len() + v.len() + ENTRY_OVERHEAD;
        }
    }
}

enum Undecodable {
    /// This field only; decoding continues with the next representation.
    Field,
    Rest(Malformed),
}

impl From<Malformed> for Undecodable {
    fn from(m: Malformed) -> Self {
        Undecodable::Rest(m)
    }
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), bounded well below overflow.
fn integer(block: &[u8], pos: &mut usize, n: u8) -> Result<usize, Malformed> {
    let mask = (1u16 << n) as u8 - 1;
    let first = *block.get(*pos).ok_or(Malformed)?;
    *pos += 1;
    let mut value = usize::from(first & mask);
    if value < usize::from(mask) {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let b = *block.get(*pos).ok_or(Malformed)?;
        *pos += 1;
        // Four continuation bytes reach 2^28: more than any length or index here can be.
        if shift > 21 {
            return Err(Malformed);
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// A string literal (RFC 7541 §5.2), Huffman-decoded when flagged.
fn string(block: &[u8], pos: &mut usize) -> Result<Vec<u8>, Malformed> {
    let huffman = block.get(*pos).ok_or(Malformed)? & 0x80 != 0;
    let len = integer(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(Malformed)?;
    let raw = block.get(*pos..end).ok_or(Malformed)?;
    *pos = end;
    if huffman { huffman_decode(raw) } else { Ok(raw.to_vec()) }
}

fn huffman_decode(raw: &[u8]) -> Result<Vec<u8>, Malformed> {
    thread_local! {
        // Building the decoder's code tables costs more than most strings it decodes.
        static HUFFMAN: std::cell::RefCell<HuffmanDecoder> = std::cell::RefCell::new(HuffmanDecoder::new());
    }
    HUFFMAN.with(|h| h.try_borrow_mut().map_err(|_| Malformed)?.decode(raw).map_err(|_| Malformed))
}

/// RFC 7541 Appendix A.
#[rustfmt::skip]
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""), ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""), ("accept-ranges", ""), ("accept", ""), ("access-control-allow-origin", ""),
    ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
    ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""),
    ("from", ""), ("host", ""), ("if-match", ""), ("if-modified-since", ""),
    ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""), ("last-modified", ""),
    ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
    ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""),
    ("retry-after", ""), ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""),
    ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""),
    ("www-authenticate", ""),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn enc() -> loona_hpack::Encoder<'static> {
        loona_hpack::Encoder::new()
    }

    fn names(b: &Block) -> Vec<(String, String)> {
        b.fields
            .iter()
            .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    #[test]
    fn rfc7541_c4_huffman_requests_share_the_table() {
        // RFC 7541 Appendix C.4: three requests with Huffman-coded literals.
        let blocks: [&[u8]; 3] = [
            &[
                0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
                0xf4, 0xff,
            ],
            &[0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf],
            &[
                0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f, 0x89,
                0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
            ],
        ];
        let mut d = Decoder::new(4096, true);
        let first = d.decode(blocks[0], 1 << 16);
        assert_eq!(names(&first)[3], (":authority".into(), "www.example.com".into()));
        let second = d.decode(blocks[1], 1 << 16);
        assert_eq!(names(&second)[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(names(&second)[4], ("cache-control".into(), "no-cache".into()));
        let third = d.decode(blocks[2], 1 << 16);
        assert_eq!(names(&third)[4], ("custom-key".into(), "custom-value".into()));
        assert_eq!(d.held_bytes(), 164, "RFC 7541 C.4.3 table size");
        assert_eq!(d.counts.undecodable_fields, 0);
    }

    #[test]
    fn joining_late_decodes_what_it_can() {
        let mut e = enc();
        let fields: Vec<(&[u8], &[u8])> =
            vec![(b":method", b"GET"), (b":path", b"/a"), (b"x-token", b"secret"), (b"accept", b"*/*")];
        let _first = e.encode(fields.clone());
        let second =
            e.encode(vec![(&b":method"[..], &b"GET"[..]), (b"x-token", b"secret"), (b"x-new", b"1")]);
        // A decoder that missed the first block.
        let mut d = Decoder::new(4096, false);
        let b = d.decode(&second, 1 << 16);
        assert_eq!(b.undecodable, 1, "x-token came from the table we never saw");
        assert_eq!(names(&b), vec![(":method".into(), "GET".into()), ("x-new".into(), "1".into())]);
        // The entry it inserted is known from now on.
        let third = e.encode(vec![(&b"x-new"[..], &b"1"[..])]);
        assert_eq!(names(&d.decode(&third, 1 << 16)), vec![("x-new".into(), "1".into())]);
    }

    #[test]
    fn malformed_blocks_never_panic_and_forget_the_table() {
        let mut d = Decoder::new(4096, true);
        let mut e = enc();
        let ok = e.encode(vec![(&b"x-a"[..], &b"1"[..])]);
        d.decode(&ok, 1 << 16);
        assert_eq!(d.held_bytes(), 3 + 1 + 32);
        for bad in
            [&[0x40, 0x05, b'a'][..], &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], &[0x41], &[0x00, 0x81, 0xff]]
        {
            let b = d.decode(bad, 1 << 16);
            assert!(b.undecodable >= 1);
        }
        assert_eq!(d.held_bytes(), 0);
        assert!(!d.is_complete());
    }

    #[test]
    fn size_updates_evict_and_are_capped() {
        let mut d = Decoder::new(100, true);
        let mut e = enc();
        d.decode(&e.encode(vec![(&b"aaaa"[..], &b"1"[..])]), 1 << 16);
        d.decode(&e.encode(vec![(&b"bbbb"[..], &b"2"[..])]), 1 << 16);
        assert_eq!(d.held_bytes(), 74, "the cap of 100 keeps two entries of 37");
        // Size update to 0 empties the table, then to 4096: beyond the cap of 100.
        d.decode(&[0x20], 1 << 16);
        assert_eq!(d.held_bytes(), 0);
        d.decode(&[0x3f, 0xe1, 0x1f], 1 << 16);
        assert_eq!(d.counts.table_capped, 1);
        assert!(d.max_size <= 100);
    }

    #[test]
    fn header_list_cap() {
        let mut d = Decoder::new(4096, true);
        let mut e = enc();
        let big = [b'v'; 100];
        let block = e.encode(vec![(&b"a"[..], &big[..]), (b"b", &big[..])]);
        let b = d.decode(&block, 150);
        assert!(b.too_large);
        assert_eq!(b.fields.len(), 1);
        assert_eq!(d.held_bytes(), 2 * (1 + 100 + 32), "both still entered the table");
    }
}
