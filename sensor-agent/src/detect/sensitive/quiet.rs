//! Header fields known to hold nothing: an API's responses and requests repeat the same
//! `server`, `content-type`, `connection`, `host`, `user-agent` and `accept` values, and scanning
//! one (name normalisation, prefilter, location text) cost more than parsing the whole head.
//!
//! Only a field whose scan made no hit at all (before any merging or allowlisting) is
//! remembered, and only when no AWS key id came earlier in the message (the one input of the
//! scan besides the name and the value). The scan is a pure function of those, so a remembered
//! field would scan to nothing again. The table is per detector: another configuration (custom
//! detectors, disabled ones) never reads it.

/// Slots of the table (a power of two); a collision only costs a scan.
const SLOTS: usize = 256;
/// Longer names or values are not remembered (rare, and they would make every slot large).
const MAX_NAME: usize = 32;
const MAX_VALUE: usize = 128;

#[derive(Clone, Copy)]
struct Slot {
    name: [u8; MAX_NAME],
    name_len: u8,
    value: [u8; MAX_VALUE],
    value_len: u8,
}

impl Slot {
    fn holds(&self, name: &[u8], value: &[u8]) -> bool {
        self.name.get(..usize::from(self.name_len)) == Some(name)
            && self.value.get(..usize::from(self.value_len)) == Some(value)
    }
}

#[derive(Default)]
pub(crate) struct QuietHeaders {
    /// Empty until the first field is remembered.
    slots: Vec<Option<Slot>>,
}

impl QuietHeaders {
    /// `name` (lower case) with `value` scanned to nothing before.
    pub(crate) fn contains(&self, name: &str, value: &[u8]) -> bool {
        let (name, slot) = (name.as_bytes(), slot_of(name.as_bytes(), value));
        self.slots.get(slot).copied().flatten().is_some_and(|s| s.holds(name, value))
    }

    /// Remembers that `name` with `value` scanned to nothing.
    pub(crate) fn insert(&mut self, name: &str, value: &[u8]) {
        let name = name.as_bytes();
        if name.len() > MAX_NAME || value.len() > MAX_VALUE {
            return;
        }
        if self.slots.is_empty() {
            self.slots = vec![None; SLOTS];
        }
        let mut s = Slot { name: [0; MAX_NAME], name_len: 0, value: [0; MAX_VALUE], value_len: 0 };
        s.name[..name.len()].copy_from_slice(name);
        s.value[..value.len()].copy_from_slice(value);
        s.name_len = name.len() as u8;
        s.value_len = value.len() as u8;
        if let Some(slot) = self.slots.get_mut(slot_of(name, value)) {
            *slot = Some(s);
        }
    }
}

/// FNV-1a over the name, a separator no name holds, and the value.
fn slot_of(name: &[u8], value: &[u8]) -> usize {
    let step = |h: u64, b: &u8| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    let h = name.iter().fold(0xcbf2_9ce4_8422_2325_u64, step);
    let h = value.iter().fold(step(h, &b':'), step);
    (h as usize) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::super::{Detector, ExchangeView, Finding, MessageView, SensitiveConfig, keyed::Keyer};
    use super::*;

    fn detector() -> Detector {
        Detector::with_keyer(&SensitiveConfig::default(), Keyer::from_bytes(&[9u8; 32])).unwrap()
    }

    fn inspect(d: &Detector, headers: &[(String, Vec<u8>)]) -> Vec<Finding> {
        let view = ExchangeView {
            method: "GET",
            target: "/x",
            request: Some(MessageView { headers, body: b"", content_type: None }),
            response: Some(MessageView { headers, body: b"", content_type: None }),
        };
        d.inspect(&view)
    }

    /// A detector that has seen (and remembered) many fields reports what a fresh one does, on
    /// fields with and without findings, repeated, and after an AWS key id in the same message.
    #[test]
    fn remembered_fields_change_no_finding() {
        let pool: &[(&str, &str)] = &[
            ("Server", "nginx/1.22.1"),
            ("Date", "Thu, 03 Dec 2026 05:46:29 GMT"),
            ("Content-Type", "application/json"),
            ("X-Card", "4111111111111111"),
            ("X-Iban", "GB82WEST12345698765432"),
            ("X-Mail", "jane@example.com"),
            ("X-Key", "AKIAIOSFODNN7EXAMPLE"),
            ("X-Secret", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            ("X-Api-Key", "sk_live_abcdefghijklmnop1234"),
            ("Password", "hunter2"),
            ("Authorization", "Bearer abc.def.ghi"),
            ("Cookie", "session=abc; iban=GB82WEST12345698765432"),
            ("Host", "127.0.0.1:18080"),
        ];
        let warm = detector();
        let mut seed: u64 = 11;
        for _ in 0..400 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let n = (seed >> 60) as usize % 5 + 1;
            let headers: Vec<(String, Vec<u8>)> = (0..n)
                .map(|i| pool[(seed >> (5 * i + 7)) as usize % pool.len()])
                .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
                .collect();
            assert_eq!(inspect(&warm, &headers), inspect(&detector(), &headers), "{headers:?}");
        }
        assert!(!warm.inner.quiet.lock().unwrap().slots.is_empty(), "quiet fields were remembered");
    }

    #[test]
    fn remembers_exact_fields_only() {
        let mut q = QuietHeaders::default();
        assert!(!q.contains("server", b"nginx"));
        q.insert("server", b"nginx");
        assert!(q.contains("server", b"nginx"));
        assert!(!q.contains("server", b"nginx/1.2"));
        assert!(!q.contains("serve", b"rnginx"));
        assert!(!q.contains("via", b"nginx"));
        let long = vec![b'a'; MAX_VALUE + 1];
        q.insert("x", &long);
        assert!(!q.contains("x", &long));
        q.insert("e", b"");
        assert!(q.contains("e", b""));
    }
}
