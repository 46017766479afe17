//! Each national rule against the published example of the SWIFT IBAN registry (and of the
//! national standards), then every single-digit mutation of the part the rule covers.

use super::*;

/// (IBAN, BBAN byte range the national rule covers): the registry's example IBANs.
const EXAMPLES: &[(&str, std::ops::Range<usize>)] = &[
    ("AL47212110090000000235698741", 0..8),
    ("BA391290079401028494", 0..16),
    ("BE68539007547034", 0..12),
    ("CZ6508000000192000145399", 4..20),
    ("EE382200221020145685", 2..16),
    ("ES9121000418450200051332", 0..20),
    ("FI2112345600000785", 0..14),
    ("FR1420041010050500013M02606", 0..23),
    ("HR1210010051863000160", 0..17),
    ("HU42117730161111101800000000", 0..24),
    ("IT60X0542811101000000123456", 1..23),
    ("MC5811222000010123456789030", 0..23),
    ("ME25505000012345678951", 0..18),
    ("MK07250120000058984", 0..15),
    ("MR1300020001010000123456753", 0..23),
    ("NO9386011117947", 0..11),
    ("PL61109010140000071219812874", 0..8),
    ("PT50000201231234567890154", 0..21),
    ("RS35260005601001611379", 0..18),
    ("SI56263300012039086", 0..15),
    ("SK3112000000198742637541", 4..20),
    ("SM86U0322509800000000270100", 1..23),
    ("TN5910006035183598478831", 0..20),
];

fn split(iban: &str) -> ([u8; 2], &[u8]) {
    let b = iban.as_bytes();
    ([b[0], b[1]], &b[4..])
}

#[test]
fn published_examples_pass() {
    for (iban, _) in EXAMPLES {
        let (cc, bban) = split(iban);
        assert_eq!(check(cc, bban), National::Valid, "{iban}");
    }
    // The French banking federation's RIB example (FR76 3000 6000 0112 3456 7890 189).
    assert_eq!(check(*b"FR", b"30006000011234567890189"), National::Valid);
    assert_eq!(check(*b"DE", b"370400440532013000"), National::NoRule);
    assert_eq!(check(*b"GB", b"WEST12345698765432"), National::NoRule);
}

#[test]
fn every_single_digit_mutation_fails() {
    for (iban, covered) in EXAMPLES {
        let (cc, bban) = split(iban);
        let mut missed = Vec::new();
        for i in covered.clone() {
            if !bban[i].is_ascii_digit() {
                continue;
            }
            for d in b'0'..=b'9' {
                if d == bban[i] {
                    continue;
                }
                let mut m = bban.to_vec();
                m[i] = d;
                if check(cc, &m) != National::Invalid {
                    missed.push(String::from_utf8_lossy(&m).into_owned());
                }
            }
        }
        // Spain's rule reads both remainder 1 and remainder 10 as check digit 1: the one
        // change it cannot see (published rule, not an implementation gap).
        if cc == *b"ES" {
            assert!(missed.iter().all(|m| spain_ambiguous(m.as_bytes())), "{iban}: {missed:?}");
        } else {
            assert!(missed.is_empty(), "{iban}: mutations not caught: {missed:?}");
        }
    }
}

/// A Spanish BBAN whose mutated group has weighted remainder 1 or 10 (check digit 1 either way).
fn spain_ambiguous(b: &[u8]) -> bool {
    const W: [u32; 10] = [1, 2, 4, 8, 5, 10, 9, 7, 3, 6];
    let mut first = [b'0'; 10];
    first[2..].copy_from_slice(&b[..8]);
    [&first[..], &b[10..]].iter().any(|g| matches!(weighted(g, &W).map(|s| s % 11), Some(1 | 10)))
}

#[test]
fn rules_reject_wrong_shapes_without_panicking() {
    for (iban, _) in EXAMPLES {
        let (cc, bban) = split(iban);
        for cut in 0..bban.len() {
            let _ = check(cc, &bban[..cut]);
        }
        let letters = vec![b'!'; bban.len()];
        assert_ne!(check(cc, &letters), National::Valid, "{iban}");
    }
    // Norway never issues an account whose check digit would be 10.
    assert!(!norway(b"00000000100"));
    // Belgium: remainder 0 is written 97.
    assert!(belgium(b"000000009797"));
    assert!(!belgium(b"000000009700"));
}

/// `country` + the check digits that make `bban` pass the IBAN's mod-97.
fn iban_of(country: &str, bban: &str) -> String {
    let probe = format!("{bban}{country}00");
    let r = crate::detect::sensitive::payment::mod97(probe.bytes()).unwrap();
    format!("{country}{:02}{bban}", 98 - r)
}

#[test]
fn mod97_valid_but_nationally_invalid_is_a_low_confidence_iban() {
    use crate::detect::sensitive::{
        Confidence,
        tests::{det, find, post_json},
    };
    let d = det();
    for (iban, covered) in EXAMPLES {
        let (cc, bban) = split(iban);
        let country = std::str::from_utf8(&cc).unwrap();
        // A digit changed inside the national check, the IBAN check digits recomputed: mod-97
        // passes, the national rule does not.
        let mut forged = bban.to_vec();
        let i = covered.clone().rev().find(|i| forged[*i].is_ascii_digit()).unwrap();
        forged[i] = if forged[i] == b'9' { b'0' } else { forged[i] + 1 };
        let forged = iban_of(country, std::str::from_utf8(&forged).unwrap());
        assert_eq!(iban_of(country, std::str::from_utf8(bban).unwrap()), *iban, "helper");
        for (value, want) in [(*iban, Confidence::High), (forged.as_str(), Confidence::Low)] {
            for body in
                [format!(r#"{{"iban": "{value}"}}"#), format!(r#"{{"note": "pay to {value} today"}}"#)]
            {
                let fs = post_json(&d, &body);
                let f = find(&fs, "iban").unwrap_or_else(|| panic!("{body}: {fs:?}"));
                assert_eq!(f.confidence, want, "{body}");
            }
        }
    }
}
