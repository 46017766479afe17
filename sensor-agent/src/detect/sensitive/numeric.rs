//! Digit-group tokens (cards, SSNs, sort codes) and the samples of numeric identifiers.

use super::payment;

pub(crate) fn char_pair(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

pub(crate) fn ssn_sample(d: &[u8]) -> String {
    format!("***-**-{}", char_pair(d.get(5..9).unwrap_or_default()))
}

pub(crate) fn nino_sample(raw: &[u8]) -> String {
    let letters: Vec<u8> = raw.iter().copied().filter(u8::is_ascii_alphabetic).collect();
    let prefix = char_pair(letters.get(..2).unwrap_or_default());
    let suffix = if letters.len() > 2 { char_pair(&letters[letters.len() - 1..]) } else { String::new() };
    format!("{prefix}******{suffix}")
}

/// An 8-digit account number within 48 bytes after a sort code.
pub(crate) fn account_near(text: &[u8], from: usize) -> Option<(usize, usize)> {
    let hi = (from + 48).min(text.len());
    let mut j = from;
    while j < hi {
        if text[j].is_ascii_digit() && !text[j - 1].is_ascii_alphanumeric() {
            let mut e = j;
            while e < text.len() && text[e].is_ascii_digit() {
                e += 1;
            }
            if e - j == 8 && !text.get(e).is_some_and(u8::is_ascii_alphanumeric) {
                return Some((j, e));
            }
            return None;
        }
        j += 1;
    }
    None
}

/// A run of digit groups separated by one consistent separator (space or dash).
pub(crate) struct NumToken {
    pub lens: [u8; 8],
    pub ends: [usize; 8],
    pub ng: usize,
    pub sep: u8,
    pub digits: [u8; 32],
    pub nd: usize,
    pub end: usize,
}

impl NumToken {
    pub(crate) fn parse(text: &[u8], start: usize) -> NumToken {
        let mut tok =
            NumToken { lens: [0; 8], ends: [0; 8], ng: 0, sep: 0, digits: [0; 32], nd: 0, end: start };
        let mut j = start;
        loop {
            let group_start = j;
            while j < text.len() && text[j].is_ascii_digit() {
                if tok.nd < tok.digits.len() {
                    tok.digits[tok.nd] = text[j];
                }
                tok.nd += 1;
                j += 1;
            }
            tok.lens[tok.ng] = (j - group_start).min(255) as u8;
            tok.ends[tok.ng] = j;
            tok.ng += 1;
            tok.end = j;
            if tok.ng == tok.lens.len() || tok.nd > tok.digits.len() {
                break;
            }
            match (text.get(j), text.get(j + 1)) {
                (Some(&sep), Some(next))
                    if (sep == b' ' || sep == b'-')
                        && (tok.sep == 0 || tok.sep == sep)
                        && next.is_ascii_digit() =>
                {
                    tok.sep = sep;
                    j += 1;
                }
                _ => break,
            }
        }
        tok.nd = tok.nd.min(tok.digits.len() + 1);
        tok
    }

    pub(crate) fn lens(&self) -> &[u8] {
        &self.lens[..self.ng]
    }

    /// The longest group prefix that is a valid card number: (end offset, digit count).
    pub(crate) fn card(&self, text: &[u8]) -> Option<(usize, usize)> {
        if self.nd > self.digits.len() {
            return None;
        }
        let mut total = 0usize;
        let mut best = None;
        for k in 1..=self.ng {
            total += usize::from(self.lens[k - 1]);
            if total > 19 {
                break;
            }
            if total < 13 || !payment::card_groups_ok(&self.lens[..k]) {
                continue;
            }
            let end = self.ends[k - 1];
            // Trailing groups may be dropped only when spaces separate them (text around a card).
            let boundary = if k == self.ng {
                !text.get(end).is_some_and(u8::is_ascii_alphanumeric)
            } else {
                self.sep == b' '
            };
            let d = &self.digits[..total];
            if boundary && payment::luhn(d) && payment::card_scheme_ok(d) {
                best = Some((end, total));
            }
        }
        best
    }
}
