//! National check digits inside the BBAN of an IBAN, from each country's published rule.
//!
//! The IBAN's own mod-97 guards the whole string against typing errors; many countries also
//! define check digits of their own inside the BBAN (bank/branch keys, account keys). A value
//! that passes mod-97 but fails its national rule was never issued by a bank: most often a
//! generator's "valid-looking" IBAN (test data) or an id that happens to fit. Such a value is
//! still reported, as a *low*-confidence IBAN (see [`super::payment::IbanMatch::confidence`]):
//! it is IBAN-shaped data in the traffic, but not the high-confidence account number a security
//! team acts on.
//!
//! Countries without a rule here (DE, GB, NL... whose schemes are per bank or unpublished) keep
//! the mod-97 verdict alone.

/// The verdict of a country's national rule on a BBAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum National {
    /// The national check digits hold.
    Valid,
    /// They do not: not an account a bank issued.
    Invalid,
    /// No national rule is implemented for the country.
    NoRule,
}

/// Checks the national rule of `country` on `bban` (uppercase electronic form, already of the
/// country's registered length and character classes).
pub(crate) fn check(country: [u8; 2], bban: &[u8]) -> National {
    let ok = match &country {
        b"AL" => albania(bban),
        b"BA" | b"ME" | b"MK" | b"RS" | b"SI" | b"PT" => mod97_10(bban) == Some(1),
        b"BE" => belgium(bban),
        b"CZ" | b"SK" => czech_slovak(bban),
        b"EE" => estonia(bban),
        b"ES" => spain(bban),
        b"FI" => luhn(bban),
        b"FR" | b"MC" | b"MR" | b"TN" => mod97_10(bban) == Some(0),
        b"HR" => croatia(bban),
        b"HU" => hungary(bban),
        b"IT" | b"SM" => italy_cin(bban),
        b"NO" => norway(bban),
        b"PL" => poland(bban),
        _ => return National::NoRule,
    };
    if ok { National::Valid } else { National::Invalid }
}

/// Digit values, `None` if any byte is not a digit.
fn digits(s: &[u8]) -> Option<impl Iterator<Item = u32> + '_> {
    s.iter().all(u8::is_ascii_digit).then(|| s.iter().map(|b| u32::from(b - b'0')))
}

/// Sum of digit × weight (weights cycled), `None` if a byte is not a digit.
fn weighted(s: &[u8], weights: &[u32]) -> Option<u32> {
    Some(digits(s)?.zip(weights.iter().cycle()).map(|(d, w)| d * w).sum())
}

/// The number the BBAN spells, mod 97 (ISO 7064 MOD 97-10). Letters count as in the French RIB
/// (A,J→1 ... I,R→9; S→2 ... Z→9), which is how FR/MC/MR account numbers carry them; the other
/// countries' BBANs here are all digits.
fn mod97_10(s: &[u8]) -> Option<u32> {
    let mut r = 0u32;
    for &b in s {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'I' => u32::from(b - b'A') + 1,
            b'J'..=b'R' => u32::from(b - b'J') + 1,
            b'S'..=b'Z' => u32::from(b - b'S') + 2,
            _ => return None,
        };
        r = (r * 10 + v) % 97;
    }
    Some(r)
}

/// The digit that makes `weighted(s) + check` a multiple of 10.
fn mod10_check(s: &[u8], weights: &[u32]) -> Option<u32> {
    Some((10 - weighted(s, weights)? % 10) % 10)
}

/// Both known and equal (two unreadable digits do not agree).
fn same(computed: Option<u32>, written: Option<u32>) -> bool {
    computed.is_some() && computed == written
}

fn last_digit(s: &[u8]) -> Option<u32> {
    s.last().filter(|b| b.is_ascii_digit()).map(|b| u32::from(b - b'0'))
}

/// Bank (3) + branch (4) + check digit: weights 9,7,3,1 repeating, sum mod 10.
fn albania(b: &[u8]) -> bool {
    b.len() >= 8 && same(mod10_check(&b[..7], &[9, 7, 3, 1]), last_digit(&b[..8]))
}

/// The first 10 digits mod 97 (0 reads 97) are the last 2.
fn belgium(b: &[u8]) -> bool {
    if b.len() != 12 {
        return false;
    }
    let (Some(r), Some(key)) = (mod97_10(&b[..10]), weighted(&b[10..], &[10, 1])) else {
        return false;
    };
    key == if r == 0 { 97 } else { r }
}

/// Bank (4), prefix (6, weights 10,5,8,4,2,1), account (10, weights 6,3,7,9,10,5,8,4,2,1):
/// each weighted sum a multiple of 11.
fn czech_slovak(b: &[u8]) -> bool {
    b.len() == 20
        && weighted(&b[4..10], &[10, 5, 8, 4, 2, 1]).is_some_and(|s| s.is_multiple_of(11))
        && weighted(&b[10..], &[6, 3, 7, 9, 10, 5, 8, 4, 2, 1]).is_some_and(|s| s.is_multiple_of(11))
}

/// Bank (2) + account (14) whose last digit is a 7-3-1 check over the others, from the right.
fn estonia(b: &[u8]) -> bool {
    if b.len() != 16 {
        return false;
    }
    let body = &b[2..15];
    let Some(d) = digits(body) else { return false };
    let sum: u32 = d.collect::<Vec<_>>().iter().rev().zip([7, 3, 1].iter().cycle()).map(|(d, w)| d * w).sum();
    same(Some((10 - sum % 10) % 10), last_digit(b))
}

/// Bank (4) + branch (4) + 2 check digits + account (10); each check digit is 11 − (Σ digit ×
/// 1,2,4,8,5,10,9,7,3,6 mod 11), 11 reading 0 and 10 reading 1; the first over "00" + bank +
/// branch, the second over the account.
fn spain(b: &[u8]) -> bool {
    const W: [u32; 10] = [1, 2, 4, 8, 5, 10, 9, 7, 3, 6];
    let dc = |s: &[u8]| {
        weighted(s, &W).map(|sum| match 11 - sum % 11 {
            11 => 0,
            10 => 1,
            d => d,
        })
    };
    if b.len() != 20 {
        return false;
    }
    let mut first = [b'0'; 10];
    first[2..].copy_from_slice(&b[..8]);
    same(dc(&first), last_digit(&b[8..9])) && same(dc(&b[10..]), last_digit(&b[9..10]))
}

/// Luhn over all the digits (the machine form of a Finnish account number).
fn luhn(b: &[u8]) -> bool {
    let Some(d) = digits(b) else { return false };
    let d: Vec<u32> = d.collect();
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &v)| if i % 2 == 1 { if v * 2 > 9 { v * 2 - 9 } else { v * 2 } } else { v })
        .sum();
    !d.is_empty() && sum.is_multiple_of(10)
}

/// ISO 7064 MOD 11,10 on bank (7) and account (10), each ending in its check digit.
fn croatia(b: &[u8]) -> bool {
    let part = |s: &[u8]| {
        let mut p = 10;
        for d in digits(&s[..s.len() - 1])? {
            let t = (p + d) % 10;
            p = (if t == 0 { 10 } else { t } * 2) % 11;
        }
        Some((11 - p) % 10)
    };
    b.len() == 17 && same(part(&b[..7]), last_digit(&b[..7])) && same(part(&b[7..]), last_digit(b))
}

/// Bank+branch (7) + check, then account (15 or 7 + zeros) + check: weights 9,7,3,1, each
/// group's sum (check included, weight 1) a multiple of 10.
fn hungary(b: &[u8]) -> bool {
    b.len() == 24
        && weighted(&b[..8], &[9, 7, 3, 1]).is_some_and(|s| s.is_multiple_of(10))
        && weighted(&b[8..], &[9, 7, 3, 1]).is_some_and(|s| s.is_multiple_of(10))
}

/// CIN letter (1) over ABI (5) + CAB (5) + account (12): odd positions through the published
/// table, even positions by value, sum mod 26 as a letter.
fn italy_cin(b: &[u8]) -> bool {
    const ODD: [u32; 26] =
        [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];
    if b.len() != 23 || !b[0].is_ascii_uppercase() {
        return false;
    }
    let mut sum = 0;
    for (i, &c) in b[1..].iter().enumerate() {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A'),
            _ => return false,
        };
        // Positions count from 1: index 0 is odd.
        sum += if i % 2 == 0 { ODD[v as usize] } else { v };
    }
    u32::from(b[0] - b'A') == sum % 26
}

/// Mod 11 with weights 5,4,3,2,7,6,5,4,3,2 over the first 10 digits; a remainder needing
/// check digit 10 is never issued.
fn norway(b: &[u8]) -> bool {
    let Some(sum) = weighted(&b[..10.min(b.len())], &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]) else {
        return false;
    };
    let check = match sum % 11 {
        0 => 0,
        r => 11 - r,
    };
    b.len() == 11 && check != 10 && same(Some(check), last_digit(b))
}

/// Bank+branch (7) + check: weights 3,9,7,1 repeating, sum mod 10.
fn poland(b: &[u8]) -> bool {
    b.len() == 24 && same(mod10_check(&b[..7], &[3, 9, 7, 1]), last_digit(&b[..8]))
}

#[cfg(test)]
#[path = "iban_national_tests.rs"]
mod tests;
