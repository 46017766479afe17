//! Personal data validators: e-mail, phone (E.164), US SSN, UK National Insurance number.

fn local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// An e-mail address around the `@` at `at`: the byte range.
pub(crate) fn email_at(text: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s > 0 && local_char(text[s - 1]) {
        s -= 1;
        if at - s > 64 {
            return None;
        }
    }
    while s < at && matches!(text[s], b'.' | b'-' | b'+') {
        s += 1;
    }
    if s == at || text[at - 1] == b'.' {
        return None;
    }
    let mut e = at + 1;
    let mut labels = 0;
    let mut last_start;
    loop {
        last_start = e;
        while e < text.len() && (text[e].is_ascii_alphanumeric() || text[e] == b'-') {
            e += 1;
        }
        let label = &text[last_start..e];
        if label.is_empty() || label.len() > 63 || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return None;
        }
        labels += 1;
        if e + 1 < text.len() && text[e] == b'.' && text[e + 1].is_ascii_alphanumeric() {
            e += 1;
        } else {
            break;
        }
    }
    let tld = &text[last_start..e];
    if labels < 2 || !(2..=24).contains(&tld.len()) || !tld.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    if e - s > 254 || text.get(e).is_some_and(|&b| b == b'_' || b == b'@') {
        return None;
    }
    // "icon@2x.png" and friends.
    let first = &text[at + 1..];
    if labels == 2 && first.first().is_some_and(u8::is_ascii_digit) && first.get(1) == Some(&b'x') {
        return None;
    }
    Some((s, e))
}

/// National significant number lengths (min, max) for an E.164 country code; `None` if unassigned.
fn phone_lengths(cc: u32) -> Option<(usize, usize)> {
    Some(match cc {
        1 | 7 | 52 | 91 => (10, 10),
        44 | 81 => (9, 10),
        33 | 34 | 61 => (9, 9),
        49 => (6, 13),
        39 => (6, 11),
        55 | 86 => (10, 11),
        20
        | 27
        | 30..=32
        | 36
        | 40
        | 41
        | 43
        | 45..=48
        | 51
        | 53
        | 54
        | 56..=58
        | 60
        | 62..=66
        | 82
        | 84
        | 90
        | 92..=95
        | 98 => (7, 12),
        200..=299
        | 350..=389
        | 420..=429
        | 500..=509
        | 590..=599
        | 670..=699
        | 800..=809
        | 850..=889
        | 960..=979
        | 990..=999 => (5, 12),
        _ => return None,
    })
}

fn split_cc(d: &[u8]) -> Option<(u32, usize)> {
    if d.first() == Some(&b'0') {
        return None;
    }
    let num = |n: usize| d.iter().take(n).fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
    for n in 1..=3 {
        if d.len() > n {
            let cc = num(n);
            // Codes are prefix-free: the first assigned prefix is the code.
            if phone_lengths(cc).is_some() && (n == 3 || !(is_zone_prefix(cc, n))) {
                return Some((cc, n));
            }
        }
    }
    None
}

/// Two-digit prefixes that start three-digit country codes (and so are not codes themselves).
fn is_zone_prefix(cc: u32, n: usize) -> bool {
    n == 2
        && matches!(cc, 21..=26 | 29 | 35 | 37 | 38 | 42 | 50 | 59 | 67..=69 | 80 | 85 | 87 | 88 | 96 | 97 | 99)
}

/// An international phone number starting with the `+` at `plus`: (end, digits, digit count).
pub(crate) fn e164_at(text: &[u8], plus: usize) -> Option<(usize, [u8; 16], usize)> {
    let mut digits = [0u8; 16];
    let mut n = 0;
    let mut j = plus + 1;
    let mut end = j;
    let mut seps = 0;
    while j < text.len() {
        let b = text[j];
        if b.is_ascii_digit() {
            if n == digits.len() {
                return None;
            }
            digits[n] = b;
            n += 1;
            seps = 0;
            j += 1;
            end = j;
        } else if matches!(b, b' ' | b'-' | b'.' | b'(' | b')') && seps < 2 && n > 0 {
            seps += 1;
            j += 1;
        } else {
            break;
        }
    }
    if !(8..=15).contains(&n) || text.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    let (cc, cc_len) = split_cc(&digits[..n])?;
    let (lo, hi) = phone_lengths(cc)?;
    let national = n - cc_len;
    if national < lo || national > hi {
        return None;
    }
    // "+1 000 000 0000" style fillers.
    if digits[cc_len..n].iter().all(|&d| d == digits[cc_len]) {
        return None;
    }
    Some((end, digits, n))
}

/// A national-form phone number (whole field value; only used when the field name says phone).
pub(crate) fn national_phone(value: &[u8]) -> bool {
    let v = value.trim_ascii();
    if v.first() == Some(&b'+') {
        return false;
    }
    let mut n = 0;
    for &b in v {
        match b {
            b'0'..=b'9' => n += 1,
            b' ' | b'-' | b'.' | b'(' | b')' | b'/' => {}
            _ => return false,
        }
    }
    (7..=15).contains(&n)
}

/// US SSN digits (9, no separators): area not 000/666/9xx, group not 00, serial not 0000.
pub(crate) fn ssn_ok(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let area = &d[..3];
    let ok = area != b"000" && area != b"666" && area[0] != b'9' && &d[3..5] != b"00" && &d[5..] != b"0000";
    // Numbers published as examples, never issued.
    ok && d != b"078051120" && d != b"219099999"
}

/// UK National Insurance number at `i`: the end offset. `lenient` accepts lowercase and a missing
/// suffix (the field name says NINO).
pub(crate) fn nino_at(text: &[u8], i: usize, lenient: bool) -> Option<usize> {
    let up = |c: u8| if lenient { c.to_ascii_uppercase() } else { c };
    let first = up(*text.get(i)?);
    let second = up(*text.get(i + 1)?);
    if !first.is_ascii_uppercase() || !second.is_ascii_uppercase() {
        return None;
    }
    if b"DFIQUV".contains(&first) || b"DFIOQUV".contains(&second) {
        return None;
    }
    if matches!(&[first, second], b"BG" | b"GB" | b"KN" | b"NK" | b"NT" | b"TN" | b"ZZ") {
        return None;
    }
    let mut j = i + 2;
    let spaced = text.get(j) == Some(&b' ');
    for _ in 0..3 {
        if spaced {
            if text.get(j) != Some(&b' ') {
                return None;
            }
            j += 1;
        }
        if !text.get(j)?.is_ascii_digit() || !text.get(j + 1)?.is_ascii_digit() {
            return None;
        }
        j += 2;
    }
    let mut at = j;
    if spaced && text.get(at) == Some(&b' ') {
        at += 1;
    }
    let suffix = text.get(at).map(|&c| up(c));
    let end = if suffix.is_some_and(|c| (b'A'..=b'D').contains(&c)) {
        at + 1
    } else if lenient {
        j
    } else {
        return None;
    };
    if text.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> Option<String> {
        let at = s.find('@')?;
        email_at(s.as_bytes(), at).map(|(a, b)| s[a..b].to_owned())
    }

    #[test]
    fn emails() {
        assert_eq!(email("mail jane.doe+x@example.co.uk now").as_deref(), Some("jane.doe+x@example.co.uk"));
        assert_eq!(email("<a@b.io>").as_deref(), Some("a@b.io"));
        assert_eq!(email("end a@b.io.").as_deref(), Some("a@b.io"));
        assert_eq!(email("user@localhost"), None);
        assert_eq!(email("user@host.c"), None);
        assert_eq!(email("user@host.c0m"), None);
        assert_eq!(email("@example.com"), None);
        assert_eq!(email("icon@2x.png"), None);
        assert_eq!(email("a@-b.com"), None);
    }

    fn phone(s: &str) -> bool {
        s.find('+').is_some_and(|p| e164_at(s.as_bytes(), p).is_some())
    }

    #[test]
    fn phones() {
        assert!(phone("+44 20 7946 0958"));
        assert!(phone("+1 (415) 555-2671"));
        assert!(phone("+4915123456789"));
        assert!(phone("+33 6 12 34 56 78"));
        assert!(!phone("+1234567890"));
        assert!(!phone("+44 20 7946 0958 123456"));
        assert!(!phone("+1 415 555 26711"));
        assert!(!phone("+0 415 555 2671"));
        assert!(!phone("+1 000 000 0000"));
        assert!(!phone("+44 20 7946 0958abc"));
        assert!(national_phone(b"020 7946 0958"));
        assert!(national_phone(b"(415) 555-2671"));
        assert!(!national_phone(b"12345"));
        assert!(!national_phone(b"call me"));
    }

    #[test]
    fn ssns() {
        assert!(ssn_ok(b"123456789"));
        assert!(ssn_ok(b"536901234"));
        assert!(!ssn_ok(b"000123456"));
        assert!(!ssn_ok(b"666123456"));
        assert!(!ssn_ok(b"912345678"));
        assert!(!ssn_ok(b"123006789"));
        assert!(!ssn_ok(b"123450000"));
        assert!(!ssn_ok(b"078051120"));
    }

    #[test]
    fn ninos() {
        assert_eq!(nino_at(b"AB123456C", 0, false), Some(9));
        assert_eq!(nino_at(b"AB 12 34 56 C", 0, false), Some(13));
        assert_eq!(nino_at(b"AB123456", 0, false), None);
        assert_eq!(nino_at(b"AB123456", 0, true), Some(8));
        assert_eq!(nino_at(b"ab123456c", 0, true), Some(9));
        assert_eq!(nino_at(b"ab123456c", 0, false), None);
        assert_eq!(nino_at(b"GB123456A", 0, false), None);
        assert_eq!(nino_at(b"DA123456A", 0, false), None);
        assert_eq!(nino_at(b"AO123456A", 0, false), None);
        assert_eq!(nino_at(b"AB123456E", 0, false), None);
        assert_eq!(nino_at(b"AB123456AB", 0, false), None);
        assert_eq!(nino_at(b"AB12 3456A", 0, false), None);
    }
}
