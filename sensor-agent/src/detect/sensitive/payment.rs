//! Payment and banking validators: card numbers (Luhn + IIN), IBAN (registry + mod-97), BIC.

/// Luhn over ASCII digits.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        if !d.is_ascii_digit() {
            return false;
        }
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn prefix_num(d: &[u8], n: usize) -> u32 {
    d.iter().take(n).fold(0u32, |acc, &b| acc * 10 + u32::from(b.wrapping_sub(b'0') % 10))
}

/// The number's issuer range belongs to a major scheme with this length.
pub(crate) fn card_scheme_ok(d: &[u8]) -> bool {
    let len = d.len();
    if !(12..=19).contains(&len) || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let p1 = prefix_num(d, 1);
    let p2 = prefix_num(d, 2);
    let p3 = prefix_num(d, 3);
    let p4 = prefix_num(d, 4);
    let visa = p1 == 4 && matches!(len, 13 | 16 | 19);
    let mastercard = ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16;
    let amex = (p2 == 34 || p2 == 37) && len == 15;
    let discover = (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65) && (16..=19).contains(&len);
    let jcb = (3528..=3589).contains(&p4) && (16..=19).contains(&len);
    let diners = ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && (14..=19).contains(&len);
    let unionpay = p2 == 62 && (16..=19).contains(&len);
    let maestro = (p2 == 50 || (56..=69).contains(&p2)) && (12..=19).contains(&len);
    visa || mastercard || amex || discover || jcb || diners || unionpay || maestro
}

/// Grouping of a separated card number: 4-4-4-4(-1..4), 4-6-5 (Amex), 4-6-4 (Diners).
pub(crate) fn card_groups_ok(lens: &[u8]) -> bool {
    match lens {
        [_] | [4, 6, 4 | 5] => true,
        [.., last] => lens[..lens.len() - 1].iter().all(|&l| l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

/// IBAN structure per country (SWIFT IBAN registry): BBAN positions, `n` digit, `a` letter, `c` either.
const IBAN_FORMATS: &[(&str, &str)] = &[
    ("AD", "nnnnnnnncccccccccccc"),
    ("AE", "nnnnnnnnnnnnnnnnnnn"),
    ("AL", "nnnnnnnncccccccccccccccc"),
    ("AT", "nnnnnnnnnnnnnnnn"),
    ("AZ", "aaaacccccccccccccccccccc"),
    ("BA", "nnnnnnnnnnnnnnnn"),
    ("BE", "nnnnnnnnnnnn"),
    ("BG", "aaaannnnnncccccccc"),
    ("BH", "aaaacccccccccccccc"),
    ("BI", "nnnnnnnnnnnnnnnnnnnnnnn"),
    ("BR", "nnnnnnnnnnnnnnnnnnnnnnnac"),
    ("BY", "ccccnnnncccccccccccccccc"),
    ("CH", "nnnnncccccccccccc"),
    ("CR", "nnnnnnnnnnnnnnnnnn"),
    ("CY", "nnnnnnnncccccccccccccccc"),
    ("CZ", "nnnnnnnnnnnnnnnnnnnn"),
    ("DE", "nnnnnnnnnnnnnnnnnn"),
    ("DJ", "nnnnnnnnnnnnnnnnnnnnnnn"),
    ("DK", "nnnnnnnnnnnnnn"),
    ("DO", "ccccnnnnnnnnnnnnnnnnnnnn"),
    ("EE", "nnnnnnnnnnnnnnnn"),
    ("EG", "nnnnnnnnnnnnnnnnnnnnnnnnn"),
    ("ES", "nnnnnnnnnnnnnnnnnnnn"),
    ("FI", "nnnnnnnnnnnnnn"),
    ("FK", "aannnnnnnnnnnn"),
    ("FO", "nnnnnnnnnnnnnn"),
    ("FR", "nnnnnnnnnncccccccccccnn"),
    ("GB", "aaaannnnnnnnnnnnnn"),
    ("GE", "aannnnnnnnnnnnnnnn"),
    ("GI", "aaaaccccccccccccccc"),
    ("GL", "nnnnnnnnnnnnnn"),
    ("GR", "nnnnnnncccccccccccccccc"),
    ("GT", "cccccccccccccccccccccccc"),
    ("HN", "aaaannnnnnnnnnnnnnnnnnnn"),
    ("HR", "nnnnnnnnnnnnnnnnn"),
    ("HU", "nnnnnnnnnnnnnnnnnnnnnnnn"),
    ("IE", "aaaannnnnnnnnnnnnn"),
    ("IL", "nnnnnnnnnnnnnnnnnnn"),
    ("IQ", "aaaannnnnnnnnnnnnnn"),
    ("IS", "nnnnnnnnnnnnnnnnnnnnnn"),
    ("IT", "annnnnnnnnncccccccccccc"),
    ("JO", "aaaannnncccccccccccccccccc"),
    ("KW", "aaaacccccccccccccccccccccc"),
    ("KZ", "nnnccccccccccccc"),
    ("LB", "nnnncccccccccccccccccccc"),
    ("LC", "aaaacccccccccccccccccccccccc"),
    ("LI", "nnnnncccccccccccc"),
    ("LT", "nnnnnnnnnnnnnnnn"),
    ("LU", "nnnccccccccccccc"),
    ("LV", "aaaaccccccccccccc"),
    ("LY", "nnnnnnnnnnnnnnnnnnnnn"),
    ("MC", "nnnnnnnnnncccccccccccnn"),
    ("MD", "cccccccccccccccccccc"),
    ("ME", "nnnnnnnnnnnnnnnnnn"),
    ("MK", "nnnccccccccccnn"),
    ("MN", "nnnnnnnnnnnnnnnn"),
    ("MR", "nnnnnnnnnnnnnnnnnnnnnnn"),
    ("MT", "aaaannnnncccccccccccccccccc"),
    ("MU", "aaaannnnnnnnnnnnnnnnnnnaaa"),
    ("NI", "aaaannnnnnnnnnnnnnnnnnnn"),
    ("NL", "aaaannnnnnnnnn"),
    ("NO", "nnnnnnnnnnn"),
    ("OM", "nnncccccccccccccccc"),
    ("PK", "aaaacccccccccccccccc"),
    ("PL", "nnnnnnnnnnnnnnnnnnnnnnnn"),
    ("PS", "aaaaccccccccccccccccccccc"),
    ("PT", "nnnnnnnnnnnnnnnnnnnnn"),
    ("QA", "aaaaccccccccccccccccccccc"),
    ("RO", "aaaacccccccccccccccc"),
    ("RS", "nnnnnnnnnnnnnnnnnn"),
    ("RU", "nnnnnnnnnnnnnnccccccccccccccc"),
    ("SA", "nncccccccccccccccccc"),
    ("SC", "aaaannnnnnnnnnnnnnnnnnnnaaa"),
    ("SD", "nnnnnnnnnnnnnn"),
    ("SE", "nnnnnnnnnnnnnnnnnnnn"),
    ("SI", "nnnnnnnnnnnnnnn"),
    ("SK", "nnnnnnnnnnnnnnnnnnnn"),
    ("SM", "annnnnnnnnncccccccccccc"),
    ("SO", "nnnnnnnnnnnnnnnnnnn"),
    ("ST", "nnnnnnnnnnnnnnnnnnnnn"),
    ("SV", "aaaannnnnnnnnnnnnnnnnnnn"),
    ("TL", "nnnnnnnnnnnnnnnnnnn"),
    ("TN", "nnnnnnnnnnnnnnnnnnnn"),
    ("TR", "nnnnnncccccccccccccccc"),
    ("UA", "nnnnnnccccccccccccccccccc"),
    ("VA", "nnnnnnnnnnnnnnnnnn"),
    ("VG", "aaaannnnnnnnnnnnnnnn"),
    ("XK", "nnnnnnnnnnnnnnnn"),
    ("YE", "aaaannnncccccccccccccccccc"),
];

fn iban_format(cc: [u8; 2]) -> Option<&'static [u8]> {
    IBAN_FORMATS
        .binary_search_by(|(c, _)| c.as_bytes().cmp(&cc[..]))
        .ok()
        .map(|i| IBAN_FORMATS[i].1.as_bytes())
}

/// ISO 7064 mod 97-10 remainder over digits and letters (A=10 .. Z=35, either case); `None` on
/// any other character.
pub(crate) fn mod97(chars: impl Iterator<Item = u8>) -> Option<u32> {
    let mut r = 0u32;
    for c in chars {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            b'a'..=b'z' => u32::from(c - b'a') + 10,
            _ => return None,
        };
        r = if v >= 10 { (r * 100 + v) % 97 } else { (r * 10 + v) % 97 };
    }
    Some(r)
}

/// An IBAN found in text: the byte end and the electronic form (uppercase).
pub(crate) struct IbanMatch {
    pub end: usize,
    pub buf: [u8; 34],
    pub len: usize,
}

impl IbanMatch {
    pub(crate) fn electronic(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// High, unless the country's national check digits inside the BBAN fail: then Low (IBAN-
    /// shaped, mod-97 valid, but no bank issued it; see [`super::iban_national`]).
    pub(crate) fn confidence(&self) -> super::Confidence {
        let e = self.electronic();
        match super::iban_national::check([e[0], e[1]], &e[4..]) {
            super::iban_national::National::Invalid => super::Confidence::Low,
            super::iban_national::National::Valid | super::iban_national::National::NoRule => {
                super::Confidence::High
            }
        }
    }
}

fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.')
}

/// Parse and validate an IBAN starting at `i` (printed, electronic or loosely grouped form).
/// `lenient`: lowercase letters anywhere (the field's name says IBAN).
pub(crate) fn iban_at(text: &[u8], i: usize, lenient: bool) -> Option<IbanMatch> {
    let up = |b: u8| if lenient { b.to_ascii_uppercase() } else { b };
    let c0 = up(*text.get(i)?);
    let c1 = up(*text.get(i + 1)?);
    if !c0.is_ascii_uppercase() || !c1.is_ascii_uppercase() {
        return None;
    }
    let fmt = iban_format([c0, c1])?;
    let mut j = i + 2;
    if text.get(j) == Some(&b' ') {
        j += 1;
    }
    let k0 = *text.get(j)?;
    let k1 = *text.get(j + 1)?;
    if !k0.is_ascii_digit() || !k1.is_ascii_digit() {
        return None;
    }
    j += 2;
    let mut m = IbanMatch { end: 0, buf: [0; 34], len: 4 };
    m.buf[..4].copy_from_slice(&[c0, c1, k0, k1]);
    for &class in fmt {
        let mut b = *text.get(j)?;
        if is_sep(b) {
            // One separator between characters, never two in a row.
            b = *text.get(j + 1)?;
            if !b.is_ascii_alphanumeric() {
                return None;
            }
            j += 1;
        }
        let ok = match class {
            b'n' => b.is_ascii_digit(),
            b'a' => b.is_ascii_uppercase() || (lenient && b.is_ascii_lowercase()),
            _ => b.is_ascii_alphanumeric(),
        };
        if !ok {
            return None;
        }
        m.buf[m.len] = b.to_ascii_uppercase();
        m.len += 1;
        j += 1;
    }
    // Not a prefix of something longer: no letter/digit right after, nor a separated digit group.
    match text.get(j) {
        Some(b) if b.is_ascii_alphanumeric() => return None,
        Some(&b) if is_sep(b) && text.get(j + 1).is_some_and(u8::is_ascii_digit) => return None,
        _ => {}
    }
    let e = m.electronic();
    let rearranged = e[4..].iter().chain(e[..4].iter()).copied();
    (mod97(rearranged)? == 1).then_some(IbanMatch { end: j, ..m })
}

/// ISO 3166-1 alpha-2 codes (plus XK, used in BICs).
const COUNTRIES: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSXKYEYTZAZMZW";

pub(crate) fn is_country(cc: &[u8]) -> bool {
    cc.len() == 2 && COUNTRIES.as_bytes().chunks_exact(2).any(|c| c == cc)
}

/// BIC shape: 4 letters bank, valid country, 2 alnum location, optional 3 alnum branch (uppercase).
pub(crate) fn bic_ok(tok: &[u8]) -> bool {
    if tok.len() != 8 && tok.len() != 11 {
        return false;
    }
    let upper_alnum = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    tok[..6].iter().all(u8::is_ascii_uppercase)
        && is_country(&tok[4..6])
        && tok[6..].iter().all(upper_alnum)
        // A word of one repeated letter is not a bank.
        && !tok[..4].iter().all(|&b| b == tok[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(luhn(b"378282246310005"));
        assert!(!luhn(b""));
        assert!(!luhn(b"41x1"));
    }

    #[test]
    fn schemes() {
        assert!(card_scheme_ok(b"4111111111111111"));
        assert!(card_scheme_ok(b"4222222222222"));
        assert!(card_scheme_ok(b"2223003122003222"));
        assert!(card_scheme_ok(b"378282246310005"));
        assert!(card_scheme_ok(b"6011111111111117"));
        assert!(card_scheme_ok(b"3530111333300000"));
        assert!(card_scheme_ok(b"30569309025904"));
        // Amex needs 15 digits, Mastercard 16; 1 and 9 start no scheme.
        assert!(!card_scheme_ok(b"3782822463100050"));
        assert!(!card_scheme_ok(b"555555555555444"));
        assert!(!card_scheme_ok(b"1234567812345670"));
        assert!(!card_scheme_ok(b"9111111111111111"));
    }

    #[test]
    fn groups() {
        assert!(card_groups_ok(&[4, 4, 4, 4]));
        assert!(card_groups_ok(&[4, 6, 5]));
        assert!(card_groups_ok(&[4, 4, 4, 1]));
        assert!(!card_groups_ok(&[3, 4, 4, 5]));
        assert!(!card_groups_ok(&[]));
    }

    #[test]
    fn table_sorted_and_lengths() {
        assert!(IBAN_FORMATS.windows(2).all(|w| w[0].0 < w[1].0));
        let len = |cc: &str| iban_format([cc.as_bytes()[0], cc.as_bytes()[1]]).map(|f| f.len() + 4);
        assert_eq!(len("GB"), Some(22));
        assert_eq!(len("DE"), Some(22));
        assert_eq!(len("NO"), Some(15));
        assert_eq!(len("MT"), Some(31));
        assert_eq!(len("RU"), Some(33));
        assert_eq!(len("US"), None);
    }

    #[test]
    fn iban_forms() {
        for ok in ["GB82WEST12345698765432", "GB82 WEST 1234 5698 7654 32", "NO 44 1850.05.14562"] {
            let m = iban_at(ok.as_bytes(), 0, false).unwrap();
            assert_eq!(m.end, ok.len(), "{ok}");
        }
        assert!(iban_at(b"GB82WEST12345698765433", 0, false).is_none());
        assert!(iban_at(b"GB82WEST123456987654321", 0, false).is_none());
        assert!(iban_at(b"GB82 WEST 1234 5698 7654 32 11", 0, false).is_none());
        assert!(iban_at(b"gb82west12345698765432", 0, false).is_none());
        assert!(iban_at(b"gb82west12345698765432", 0, true).is_some());
        assert!(iban_at(b"GB82  WEST12345698765432", 0, false).is_none());
        assert!(iban_at(b"GB", 0, false).is_none());
    }

    #[test]
    fn bic_shapes() {
        assert!(bic_ok(b"DEUTDEFF"));
        assert!(bic_ok(b"NWBKGB2L"));
        assert!(bic_ok(b"DEUTDEFF500"));
        assert!(!bic_ok(b"ABCDEFGH"));
        assert!(!bic_ok(b"DEUTXXFF"));
        assert!(!bic_ok(b"DEUTDEF"));
        assert!(!bic_ok(b"deutdeff"));
        assert!(!bic_ok(b"AAAADEFF"));
    }

    #[test]
    fn mod97_chars() {
        assert_eq!(mod97(b"97".iter().copied()), Some(0));
        assert_eq!(mod97(b"a".iter().copied()), Some(10));
        assert_eq!(mod97(b"-".iter().copied()), None);
    }
}
