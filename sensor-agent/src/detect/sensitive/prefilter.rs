//! The prefilter: proves from byte classes alone that a value, or a whole JSON body, holds nothing
//! a built-in detector could report, so that ordinary traffic skips the anchor automaton, the
//! tokenizer and the JSON walk.
//!
//! Every test here is a necessary condition of some detector, never a sufficient one: `quiet`
//! means "provably no finding", anything else means "run the full scan", which then decides
//! exactly as it would without the prefilter. The tests look at the raw bytes; a JSON leaf is a
//! substring of its body bounded by `"` (or, for a number, by JSON punctuation), so a candidate in
//! a leaf is a candidate in the body at the same place. Escapes break that (`\u0040` is an `@`),
//! so a JSON body with a backslash is never quiet.
//!
//! Bytes are classified 64 at a time into bit masks (SSE2 on `x86_64`, a scalar loop elsewhere);
//! patterns are shifts and ANDs of masks over a 128-bit window (this block and the next), and
//! only the rare positions left are looked at one by one.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use super::context::{Hint, Name};
use super::{payment, pii, secrets};

/// Byte classes of one 64-byte block: bit `i` is byte `i`. Bytes past the end are zero, which is
/// in no class, just as "end of text" is neither alphanumeric nor any punctuation.
#[derive(Clone, Copy, Default)]
struct Block {
    digit: u64,
    upper: u64,
    alnum: u64,
    /// Standard base64 alphabet (alphanumerics, `+`, `/`): the AWS secret key shape.
    b64: u64,
    /// Digit-group separators of card numbers and SSNs: ` ` and `-`.
    sep: u64,
    space: u64,
    plus: u64,
    at: u64,
    backslash: u64,
    colon: u64,
    quote: u64,
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8, _mm_sub_epi8,
    };

    use super::Block;

    #[target_feature(enable = "sse2")]
    fn load(c: &[u8; 16]) -> __m128i {
        let (lo, hi) = c.split_at(8);
        let lo = lo.try_into().map_or(0, i64::from_le_bytes);
        let hi = hi.try_into().map_or(0, i64::from_le_bytes);
        _mm_set_epi64x(hi, lo)
    }

    #[target_feature(enable = "sse2")]
    fn bits(v: __m128i) -> u64 {
        u64::from(_mm_movemask_epi8(v).cast_unsigned() & 0xffff)
    }

    /// Bytes `lo..=lo+span` (unsigned compare through a saturating-free subtraction).
    #[target_feature(enable = "sse2")]
    fn range(v: __m128i, lo: u8, span: u8) -> __m128i {
        let s = _mm_sub_epi8(v, _mm_set1_epi8(lo.cast_signed()));
        _mm_cmpeq_epi8(_mm_min_epu8(s, _mm_set1_epi8(span.cast_signed())), s)
    }

    #[target_feature(enable = "sse2")]
    fn eq(v: __m128i, b: u8) -> __m128i {
        _mm_cmpeq_epi8(v, _mm_set1_epi8(b.cast_signed()))
    }

    #[target_feature(enable = "sse2")]
    fn classify_sse2(block: &[u8; 64]) -> Block {
        let mut out = Block::default();
        for (k, chunk) in block.as_chunks::<16>().0.iter().enumerate() {
            let v = load(chunk);
            let shift = 16 * k;
            let digit = range(v, b'0', 9);
            let upper = range(v, b'A', 25);
            let alnum = _mm_or_si128(_mm_or_si128(digit, upper), range(v, b'a', 25));
            let plus = eq(v, b'+');
            let space = eq(v, b' ');
            out.digit |= bits(digit) << shift;
            out.upper |= bits(upper) << shift;
            out.alnum |= bits(alnum) << shift;
            out.b64 |= bits(_mm_or_si128(_mm_or_si128(alnum, plus), eq(v, b'/'))) << shift;
            out.sep |= bits(_mm_or_si128(space, eq(v, b'-'))) << shift;
            out.space |= bits(space) << shift;
            out.plus |= bits(plus) << shift;
            out.at |= bits(eq(v, b'@')) << shift;
            out.backslash |= bits(eq(v, b'\\')) << shift;
            out.colon |= bits(eq(v, b':')) << shift;
            out.quote |= bits(eq(v, b'"')) << shift;
        }
        out
    }

    pub(super) fn classify(block: &[u8; 64]) -> Block {
        // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it, and this module
        // is only compiled for x86_64.
        unsafe { classify_sse2(block) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::Block;

    pub(super) fn classify(block: &[u8; 64]) -> Block {
        let mut out = Block::default();
        for (i, &b) in block.iter().enumerate() {
            let bit = |c: bool| u64::from(c) << i;
            out.digit |= bit(b.is_ascii_digit());
            out.upper |= bit(b.is_ascii_uppercase());
            out.alnum |= bit(b.is_ascii_alphanumeric());
            out.b64 |= bit(secrets::b64std(b));
            out.sep |= bit(b == b' ' || b == b'-');
            out.space |= bit(b == b' ');
            out.plus |= bit(b == b'+');
            out.at |= bit(b == b'@');
            out.backslash |= bit(b == b'\\');
            out.colon |= bit(b == b':');
            out.quote |= bit(b == b'"');
        }
        out
    }
}

fn classify_at(text: &[u8], start: usize) -> Block {
    if let Some(full) = text.get(start..start + 64).and_then(|b| <&[u8; 64]>::try_from(b).ok()) {
        return simd::classify(full);
    }
    // The last, partial block: zero-padded.
    let mut buf = [0u8; 64];
    let Some(rest) = text.get(start..) else { return Block::default() };
    let n = rest.len().min(64);
    buf[..n].copy_from_slice(&rest[..n]);
    simd::classify(&buf)
}

/// Bits `p` of `m` where bits `p..p+n` are all set.
fn run_at_least(m: u128, n: u32) -> u128 {
    let mut r = m;
    let mut len = 1;
    while len < n {
        let step = (n - len).min(len);
        r &= r >> step;
        len += step;
    }
    r
}

fn pair(lo: u64, hi: u64) -> u128 {
    u128::from(lo) | (u128::from(hi) << 64)
}

/// Iterate the set bits of `m`, lowest first.
fn each_bit(mut m: u64, mut f: impl FnMut(usize) -> bool) -> bool {
    while m != 0 {
        let p = m.trailing_zeros() as usize;
        if f(p) {
            return true;
        }
        m &= m - 1;
    }
    false
}

/// Compiled prefilter state, shared by every scan of a detector.
pub(crate) struct Prefilter {
    /// The literal anchors of `scan` except `@` (found by its byte class): one search over a
    /// whole body instead of one per value.
    anchors: AhoCorasick,
    /// Per byte value: [`ANCHOR_BYTE`] if it is the chosen byte of some anchor, [`BLOCK_BYTE`]
    /// if the block tests of a short text can start at it.
    short_classes: [u8; 256],
}

/// Texts up to this long are looked at byte by byte first: headers, parameters and leaves are
/// mostly this short, and starting the automaton and the 64-byte block tests costs each of
/// them more than the bytes themselves.
const SHORT_TEXT: usize = 39;
const ANCHOR_BYTE: u8 = 1;
const BLOCK_BYTE: u8 = 2;

/// The byte of an anchor least likely in ordinary header values and parameters (dates, hosts,
/// media types, versions, numbers): a text without it cannot hold that anchor.
fn rarest(anchor: &str) -> Option<u8> {
    let rank = |b: u8| match b {
        b'_' => 0,
        b'J' | b'K' | b'x' | b'z' => 1,
        b'A'..=b'Z' => 2,
        b'-' => 3,
        _ => 4,
    };
    anchor.bytes().min_by_key(|&b| rank(b))
}

impl Prefilter {
    pub(crate) fn new() -> Result<Prefilter, aho_corasick::BuildError> {
        let literals = || super::scan::anchor_literals().filter(|a| *a != "@");
        let anchors = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .build(literals())?;
        let mut short_classes = [0u8; 256];
        for b in literals().filter_map(rarest) {
            short_classes[usize::from(b)] |= ANCHOR_BYTE;
        }
        // The block tests of a text shorter than 40 bytes (no AWS secret fits) only ever start
        // at an `@`, a digit (phones, digit groups) or a capital (IBAN, NINO, BIC).
        for b in (b'0'..=b'9').chain(b'A'..=b'Z').chain([b'@']) {
            short_classes[usize::from(b)] |= BLOCK_BYTE;
        }
        Ok(Prefilter { anchors, short_classes })
    }

    /// Nothing in `text` can make a hit of the anchor pass or of the tokenizer, in whatever field
    /// it is, unless the field's name asks for a whole-value check (see [`Hint::whole_value`]).
    pub(crate) fn text_quiet(&self, text: &[u8]) -> bool {
        let (anchor_maybe, block_maybe) = if text.len() <= SHORT_TEXT {
            let classes = text.iter().fold(0, |acc, &b| acc | self.short_classes[usize::from(b)]);
            (classes & ANCHOR_BYTE != 0, classes & BLOCK_BYTE != 0)
        } else {
            (true, true)
        };
        let maybe =
            (anchor_maybe && self.anchors.is_match(text)) || (block_maybe && blocks_maybe(text, None));
        !maybe
    }

    /// [`Prefilter::text_quiet`] without the byte-by-byte shortcut, for the tests.
    #[cfg(test)]
    pub(crate) fn text_quiet_unshortened(&self, text: &[u8]) -> bool {
        !self.anchors.is_match(text) && !blocks_maybe(text, None)
    }

    /// Nothing in this JSON body can make a finding: no value candidate anywhere (keys included)
    /// and no key whose name alone can make one (`password`, `iban`, `accountNumber`, ...).
    pub(crate) fn json_quiet(&self, body: &[u8]) -> bool {
        !self.anchors.is_match(body) && NAMES.with(|names| !blocks_maybe(body, Some(&mut names.borrow_mut())))
    }
}

/// Whether any position of `text` is a candidate (see the module doc). With `names`, `text` is a
/// JSON body: backslashes and key names count too.
fn blocks_maybe(text: &[u8], mut names: Option<&mut NameCache>) -> bool {
    let mut prev = Block::default();
    let mut cur = classify_at(text, 0);
    let mut start = 0;
    while start < text.len() {
        let next = if start + 64 < text.len() { classify_at(text, start + 64) } else { Block::default() };
        if block_maybe(text, start, &prev, &cur, &next, names.as_deref_mut()) {
            return true;
        }
        prev = cur;
        cur = next;
        start += 64;
    }
    false
}

fn block_maybe(
    text: &[u8],
    start: usize,
    prev: &Block,
    cur: &Block,
    next: &Block,
    names: Option<&mut NameCache>,
) -> bool {
    let digit = pair(cur.digit, next.digit);
    // E-mail (`@`), E.164 phone (`+` and a digit).
    if cur.at != 0 || (cur.plus & (digit >> 1) as u64) != 0 {
        return true;
    }
    if names.is_some() && cur.backslash != 0 {
        return true;
    }
    // Byte `p - 1` is alphanumeric: `p` starts no word.
    let after_alnum = (cur.alnum << 1) | (prev.alnum >> 63);
    let upper = pair(cur.upper, next.upper);
    let word_upper = cur.upper & !after_alnum;
    // IBAN and NINO: two capitals, an optional space, two digits. BIC: six capitals.
    let two_digits = (digit >> 2) & (digit >> 3);
    let spaced_digits = (pair(cur.space, next.space) >> 2) & (digit >> 3) & (digit >> 4);
    let iban_nino = word_upper & ((upper >> 1) & (two_digits | spaced_digits)) as u64;
    let bic = word_upper & (run_at_least(upper, 6) as u64);
    // Random base64 (cursors, ids) holds such shapes now and then: the validators decide, as they
    // would on the value (a string ends at `"`, which fails them as the end of text does).
    let upper_maybe =
        |p: usize| payment::iban_at(text, p, false).is_some() || pii::nino_at(text, p, false).is_some();
    let bic_maybe = |p: usize| {
        let end = text[p..].iter().position(|b| !b.is_ascii_alphanumeric()).map_or(text.len(), |n| p + n);
        payment::bic_ok(&text[p..end])
    };
    if each_bit(iban_nino, |p| upper_maybe(start + p)) || each_bit(bic, |p| bic_maybe(start + p)) {
        return true;
    }
    // AWS secret access key: a base64 run of exactly 40 bytes. The carry of each run's first
    // byte stops at the byte after the run; a start 40 bytes before such an end is a candidate
    // (or two runs, which the exact shape test then rejects).
    let b64 = pair(cur.b64, next.b64);
    let b64_start = cur.b64 & !((cur.b64 << 1) | (prev.b64 >> 63));
    let b64_end = u128::from(b64_start).wrapping_add(b64) & !b64;
    let forty = ((b64_end >> 40) as u64) & b64_start;
    let full = |p: usize| (b64 >> p) & ((1u128 << 40) - 1) == (1u128 << 40) - 1;
    if each_bit(forty, |p| full(p) && secrets::aws_secret_shape(text, start + p).is_some()) {
        return true;
    }
    // Digit groups: a word of 13 or more digits, or a first group followed by a separator and
    // a digit (cards, SSNs, sort codes all start so).
    let word_digit = cur.digit & !after_alnum;
    let long = word_digit & (run_at_least(digit, 13) as u64);
    // The carry of each word's first digit runs to the byte after its group (a carry lost past
    // bit 127 is a group of over 64 digits: no card, SSN or sort code).
    let after_run = u128::from(word_digit).wrapping_add(digit) & !digit;
    let grouped = after_run & pair(cur.sep, next.sep) & (digit >> 1);
    // Only a card is that long, and every card scheme starts with 2 to 6 (snowflake ids and
    // epoch milliseconds start with 1).
    if each_bit(long, |p| matches!(text[start + p], b'2'..=b'6') && digits_maybe(text, start + p)) {
        return true;
    }
    // `grouped` marks the separator after the first group; its token starts at the run before.
    let grouped_lo = grouped as u64;
    let grouped_hi = (grouped >> 64) as u64;
    let token_start = |sep: usize| {
        let mut p = sep;
        while p > 0 && text[p - 1].is_ascii_digit() {
            p -= 1;
        }
        p
    };
    if each_bit(grouped_lo, |q| digits_maybe(text, token_start(start + q)))
        || each_bit(grouped_hi, |q| digits_maybe(text, token_start(start + 64 + q)))
    {
        return true;
    }
    names.is_some_and(|names| each_bit(cur.colon, |c| key_maybe(text, start + c, cur.quote, start, names)))
}

/// The digit-group token at `i` could be a card number, an SSN or a sort code: the token rules of
/// `NumToken`, with every end and boundary check left out (they only ever reject).
fn digits_maybe(text: &[u8], i: usize) -> bool {
    let mut lens = [0u8; 8];
    let mut ng = 0;
    let mut digits = [0u8; 19];
    let mut nd = 0usize;
    let mut sep = 0u8;
    let mut j = i;
    loop {
        let group = j;
        while j < text.len() && text[j].is_ascii_digit() {
            if nd < digits.len() {
                digits[nd] = text[j];
            }
            nd += 1;
            j += 1;
        }
        lens[ng] = (j - group).min(255) as u8;
        ng += 1;
        if (13..=19).contains(&nd)
            && payment::card_groups_ok(&lens[..ng])
            // Every scheme's range starts with 2 to 6; most long ids (snowflakes, epoch
            // milliseconds) start with 1.
            && matches!(digits[0], b'2'..=b'6')
            && payment::card_scheme_ok(&digits[..nd])
            && payment::luhn(&digits[..nd])
        {
            return true;
        }
        // Stop as soon as no card (4-4-..., 4-6-...), SSN (3-2-4) or sort code (2-2-2) can
        // start with these groups: dates (4-2-2) and UUID parts end here.
        let l = &lens[..ng];
        if sep == b'-' && (l == [3, 2, 4] || l == [2, 2, 2]) {
            return true;
        }
        let card_open = l.iter().all(|&g| g == 4) || l == [4, 6];
        let id_open = matches!(l, [2 | 3] | [2 | 3, 2]) && sep != b' ';
        let alive = card_open || id_open;
        if !alive || ng == lens.len() || nd > digits.len() {
            break;
        }
        match (text.get(j), text.get(j + 1)) {
            (Some(&s), Some(next))
                if (s == b' ' || s == b'-') && (sep == 0 || sep == s) && next.is_ascii_digit() =>
            {
                sep = s;
                j += 1;
            }
            _ => break,
        }
    }
    sep == b'-' && (lens[..ng].starts_with(&[3, 2, 4]) || lens[..ng].starts_with(&[2, 2, 2]))
}

/// The `:` at `colon` ends a key (`"name":`, spaces allowed) whose name can make a finding by
/// itself. `quotes` is the quote mask of the block starting at `block`, to find the key's
/// opening quote without a search in the common case.
fn key_maybe(text: &[u8], colon: usize, quotes: u64, block: usize, names: &mut NameCache) -> bool {
    let mut e = colon;
    while e > 0 && matches!(text[e - 1], b' ' | b'\t' | b'\n' | b'\r') {
        e -= 1;
    }
    if e == 0 || text[e - 1] != b'"' {
        return false;
    }
    let close = e - 1;
    // The previous quote opens the key (a body without backslashes has no quote inside a string).
    let below = if close >= block { quotes & ((1u64 << (close - block)) - 1) } else { 0 };
    let open = if below != 0 {
        Some(block + 63 - below.leading_zeros() as usize)
    } else {
        memchr::memrchr(b'"', &text[..close])
    };
    let Some(open) = open else { return false };
    names.sensitive(&text[open + 1..close])
}

/// Slots of the per-thread cache of raw names (a power of two).
const NAME_SLOTS: usize = 256;

thread_local! {
    static NAMES: std::cell::RefCell<NameCache> =
        const { std::cell::RefCell::new(NameCache { slots: [NameSlot::EMPTY; NAME_SLOTS] }) };
}

/// Raw key names (up to 16 bytes: the first and last 8 and the length are the whole name) and
/// whether their hint is sensitive. An API repeats the same few dozen keys: the normalisation
/// and the substring tests of `classify` then run once per name and thread.
struct NameCache {
    slots: [NameSlot; NAME_SLOTS],
}

#[derive(Clone, Copy)]
struct NameSlot {
    head: u64,
    tail: u64,
    /// `u8::MAX`: empty.
    len: u8,
    sensitive: bool,
}

impl NameSlot {
    const EMPTY: NameSlot = NameSlot { head: 0, tail: 0, len: u8::MAX, sensitive: false };
}

impl NameCache {
    /// The name's hint can make a finding without any candidate in the value: whole-value
    /// checks, `password`/`secret` by name, the account number / sort code sibling rule.
    fn sensitive(&mut self, raw: &[u8]) -> bool {
        let len = raw.len();
        if len > 16 {
            return name_hint_sensitive(Name::new(raw).hint);
        }
        let (head, tail) = if len >= 8 {
            let word = |b: &[u8]| <[u8; 8]>::try_from(b).map_or(0, u64::from_le_bytes);
            (word(&raw[..8]), word(&raw[len - 8..]))
        } else {
            let mut w = [0u8; 8];
            w[..len].copy_from_slice(raw);
            (u64::from_le_bytes(w), 0)
        };
        let h = (head ^ tail.rotate_left(29) ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = &mut self.slots[(h >> 56) as usize % NAME_SLOTS];
        if usize::from(slot.len) == len && slot.head == head && slot.tail == tail {
            return slot.sensitive;
        }
        let sensitive = name_hint_sensitive(Name::new(raw).hint);
        *slot = NameSlot { head, tail, len: len as u8, sensitive };
        sensitive
    }
}

fn name_hint_sensitive(hint: Hint) -> bool {
    hint.whole_value() || matches!(hint, Hint::Password | Hint::Secret | Hint::Account | Hint::SortCode)
}
