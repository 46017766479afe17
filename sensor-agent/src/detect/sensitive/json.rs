//! JSON bodies: a streaming `serde_json` walk (no `Value` tree) that scans every string and integer
//! leaf with its path (`$.a.b[0].c`) as location and its key as context.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Collector;
use super::context::Name;
use super::message::{Leaf, Siblings, push_name, scan_leaf};

/// Containers nested deeper than this are skipped.
const MAX_DEPTH: usize = 64;
/// Values visited per document, at most; the walk stops there.
const MAX_NODES: usize = 200_000;

struct Walk<'c, 'd> {
    col: &'c mut Collector<'d>,
    depth: usize,
    nodes: usize,
    /// Stopped on purpose (node limit): not a parse error.
    limited: bool,
    aws: bool,
}

/// Scan a JSON body. Unparseable or truncated documents keep what the walk found and are then
/// scanned as text, without reporting a value twice.
pub(crate) fn scan_json(col: &mut Collector<'_>, body: &[u8]) {
    // A custom detector's regex may match anything: only the built-ins are prefiltered.
    if col.det.use_prefilter && col.det.customs.is_empty() && col.det.prefilter.json_quiet(body) {
        return;
    }
    let side = col.side.as_str();
    col.loc.clear();
    col.loc.push_str(side);
    col.loc.push_str(".body:$");
    col.seen.clear();
    col.track_seen = true;
    let mut walk = Walk { col, depth: 0, nodes: 0, limited: false, aws: false };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = ValueSeed { w: &mut walk, name: Name::EMPTY }.deserialize(&mut de).and_then(|_| de.end());
    let limited = walk.limited;
    col.track_seen = false;
    if result.is_err() && !limited {
        let loc = format!("{side}.body");
        col.scan_plain(body, &loc);
    }
    col.seen.clear();
}

struct ValueSeed<'w, 'c, 'd> {
    w: &'w mut Walk<'c, 'd>,
    name: Name,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, '_> {
    type Value = Leaf;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Leaf, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_, '_, '_> {
    fn count<E: de::Error>(&mut self) -> Result<(), E> {
        self.w.nodes += 1;
        if self.w.nodes > MAX_NODES {
            self.w.limited = true;
            return Err(E::custom("node limit"));
        }
        Ok(())
    }

    fn leaf<E: de::Error>(mut self, v: &[u8], is_string: bool) -> Result<Leaf, E> {
        self.count()?;
        Ok(scan_leaf(self.w.col, v, &self.name, is_string, true, &mut self.w.aws))
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_, '_> {
    type Value = Leaf;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Leaf, E> {
        self.leaf(v.as_bytes(), true)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Leaf, E> {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        let mut n = v;
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.leaf(&buf[i..], false)
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Leaf, E> {
        if v >= 0 {
            return self.visit_u64(v.unsigned_abs());
        }
        self.count()?;
        Ok(Leaf::Other)
    }

    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<Leaf, E> {
        self.count()?;
        Ok(Leaf::Other)
    }

    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<Leaf, E> {
        self.count()?;
        Ok(Leaf::Other)
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Leaf, E> {
        self.count()?;
        Ok(Leaf::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Leaf, A::Error> {
        self.count()?;
        if self.w.depth >= MAX_DEPTH {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Leaf::Other);
        }
        self.w.depth += 1;
        let base = self.w.col.loc.len();
        let mut index = 0usize;
        loop {
            self.w.col.loc.truncate(base);
            push_index(&mut self.w.col.loc, index);
            // Array elements keep the array's name as context ("cards": ["4111..."]).
            if seq.next_element_seed(ValueSeed { w: &mut *self.w, name: self.name })?.is_none() {
                break;
            }
            index += 1;
        }
        self.w.col.loc.truncate(base);
        self.w.depth -= 1;
        Ok(Leaf::Other)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Leaf, A::Error> {
        self.count()?;
        if self.w.depth >= MAX_DEPTH {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Leaf::Other);
        }
        self.w.depth += 1;
        let base = self.w.col.loc.len();
        let mut sib = Siblings::default();
        while let Some(name) = map.next_key_seed(KeySeed { loc: &mut self.w.col.loc })? {
            let leaf = map.next_value_seed(ValueSeed { w: &mut *self.w, name })?;
            sib.note(&name, leaf, &self.w.col.loc);
            self.w.col.loc.truncate(base);
        }
        sib.finish(self.w.col);
        self.w.depth -= 1;
        Ok(Leaf::Other)
    }
}

fn push_index(loc: &mut String, index: usize) {
    use fmt::Write as _;
    let _ = write!(loc, "[{index}]");
}

/// Reads a key: appends its path segment to the location and yields its normalised name.
struct KeySeed<'l> {
    loc: &'l mut String,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Name;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Name, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Name;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, k: &str) -> Result<Name, E> {
        let k = k.as_bytes();
        let simple =
            !k.is_empty() && k.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$'));
        if simple {
            self.loc.push('.');
            push_name(self.loc, k);
        } else {
            self.loc.push_str("['");
            let start = self.loc.len();
            push_name(self.loc, k);
            // Quote characters would make the path ambiguous.
            let escaped = self.loc[start..].replace('\\', "\\\\").replace('\'', "\\'");
            self.loc.truncate(start);
            self.loc.push_str(&escaped);
            self.loc.push_str("']");
        }
        Ok(Name::new(k))
    }
}
