//! Redaction of credentials and secrets before anything leaves the agent.

/// Headers whose values are credentials. Authorization-style headers keep their scheme, so a
/// reader still learns *how* a client authenticates.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-csrf-token",
    "x-amz-security-token",
];

/// Query parameter names (lowercase, `-`/`_` ignored) whose values are secrets.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "apikey",
    "key",
    "secret",
    "clientsecret",
    "password",
    "passwd",
    "pwd",
    "auth",
    "authorization",
    "code",
    "sig",
    "signature",
    "session",
    "sessionid",
];

pub const REDACTED: &str = "[REDACTED]";

/// The exportable form of a header value.
#[must_use]
pub fn header_value(name: &str, value: &[u8]) -> String {
    masked_header(&name.to_ascii_lowercase(), value)
}

/// [`header_value`] of a name already in lower case.
fn masked_header(lower: &str, value: &[u8]) -> String {
    if !CREDENTIAL_HEADERS.contains(&lower) {
        return String::from_utf8_lossy(value).into_owned();
    }
    if lower.ends_with("authorization") {
        let text = String::from_utf8_lossy(value);
        if let Some((scheme, rest)) = text.trim().split_once(' ')
            && !rest.trim().is_empty()
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return format!("{scheme} {REDACTED}");
        }
    }
    REDACTED.to_owned()
}

/// The exportable form of a header value in which a detector may have found data: `flagged`
/// holds (lower-case header name as in the finding's location, masked sample). A flagged header
/// shows its finding's sample; `*` (a name the location could not carry) redacts every header
/// with such a name; credential headers keep only their scheme as in [`header_value`].
#[must_use]
pub fn header_value_flagged(name: &str, value: &[u8], flagged: &[(&str, &str)]) -> String {
    header_value_flagged_lower(&name.to_ascii_lowercase(), value, flagged)
}

/// [`header_value_flagged`] of a name already in lower case (the exporter lowercases each
/// name once for both).
#[must_use]
pub fn header_value_flagged_lower(lower: &str, value: &[u8], flagged: &[(&str, &str)]) -> String {
    if CREDENTIAL_HEADERS.contains(&lower) {
        return masked_header(lower, value);
    }
    if let Some((_, sample)) = flagged.iter().find(|(n, _)| *n == lower) {
        return (*sample).to_owned();
    }
    // Most exchanges have no findings: the name is only looked at when one could apply.
    let unnameable =
        || lower.len() > 64 || lower.contains('@') || lower.bytes().filter(u8::is_ascii_digit).count() >= 6;
    if flagged.iter().any(|(n, _)| *n == "*") && unnameable() {
        return REDACTED.to_owned();
    }
    // Not a credential header (checked above): the value as text.
    String::from_utf8_lossy(value).into_owned()
}

/// The exportable form of a query string: values of secret-named parameters replaced.
#[must_use]
pub fn query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_param(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// The exportable form of a query string in which detectors flagged parameters: their values
/// become the findings' masked samples (`pan=411111******1111`), secret-named ones
/// `[REDACTED]`. `flagged` holds (parameter name as in the finding's location, masked sample);
/// a name without a parameter of that exact spelling (percent-encoded names) redacts every value.
#[must_use]
pub fn query_flagged(query: &str, flagged: &[(&str, &str)]) -> String {
    if flagged.is_empty() {
        return self::query(query);
    }
    let names: Vec<&str> = query.split('&').map(|p| p.split_once('=').map_or("", |(n, _)| n)).collect();
    let all = flagged.iter().any(|(name, _)| !names.contains(name));
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if all => format!("{name}={REDACTED}"),
            None if all => REDACTED.to_owned(),
            Some((name, value)) if !value.is_empty() && is_secret_param(name) => format!("{name}={REDACTED}"),
            Some((name, _)) => match flagged.iter().find(|(n, _)| *n == name) {
                Some((_, sample)) => format!("{name}={sample}"),
                None => pair.to_owned(),
            },
            // A bare value: flagged under the query's own location (no parameter name).
            None if flagged.iter().any(|(n, _)| n.is_empty()) => REDACTED.to_owned(),
            None => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_param(name: &str) -> bool {
    // ASCII names (nearly all) are normalised on the stack; others may lowercase into ASCII
    // (the Kelvin sign is a `k`), so they take the Unicode path.
    if name.is_ascii() {
        let mut buf = [0u8; 16];
        let mut n = 0;
        for b in name.bytes().filter(|b| *b != b'_' && *b != b'-') {
            let Some(slot) = buf.get_mut(n) else {
                return false;
            };
            *slot = b.to_ascii_lowercase();
            n += 1;
        }
        let normal = buf.get(..n).unwrap_or_default();
        return SECRET_PARAMS.iter().any(|p| p.as_bytes() == normal);
    }
    let normal: String =
        name.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect();
    SECRET_PARAMS.contains(&normal.as_str())
}

/// `[REDACTED:a-b]`: only a length bucket of the value survives.
#[must_use]
pub fn redacted_len(len: usize) -> String {
    let bucket = match len {
        0..=7 => "1-7",
        8..=16 => "8-16",
        17..=32 => "17-32",
        33..=64 => "33-64",
        65..=256 => "65-256",
        _ => "257+",
    };
    format!("[REDACTED:{bucket}]")
}

/// A card number (digits only): first 6 and last 4 kept, the middle starred ("411111******1111").
#[must_use]
pub fn pan(digits: &[u8]) -> String {
    if digits.len() < 12 { keep_ends(digits, 6, 4) } else { star_middle(digits, 6, 4) }
}

/// An IBAN (electronic form): country, check digits and the last 4 kept ("GB82************5432").
#[must_use]
pub fn iban(electronic: &[u8]) -> String {
    if electronic.len() < 14 { keep_ends(electronic, 4, 4) } else { star_middle(electronic, 4, 4) }
}

/// `head` leading and `tail` trailing bytes kept, the rest starred; at least half is always starred.
#[must_use]
pub fn keep_ends(raw: &[u8], head: usize, tail: usize) -> String {
    let len = raw.len();
    let (head, tail) =
        if head + tail > len / 2 { (head.min(len / 4), tail.min(len / 4)) } else { (head, tail) };
    star_middle(raw, head, tail)
}

fn star_middle(raw: &[u8], head: usize, tail: usize) -> String {
    let len = raw.len();
    let tail = tail.min(len);
    let mut out = String::with_capacity(len);
    for (i, &b) in raw.iter().enumerate() {
        if i < head || i >= len - tail {
            out.push(printable(b));
        } else {
            out.push('*');
        }
    }
    out
}

fn printable(b: u8) -> char {
    if b.is_ascii_graphic() { char::from(b) } else { '?' }
}

/// A token with a well-known, non-secret prefix: the prefix kept, the rest as a length bucket.
#[must_use]
pub fn prefixed(prefix: &[u8], rest_len: usize) -> String {
    let p: String = prefix.iter().map(|&b| printable(b)).collect();
    format!("{p}{}", redacted_len(rest_len))
}

/// An e-mail address: first character of the local part and the domain ("j***@example.com").
#[must_use]
pub fn email(raw: &[u8]) -> String {
    let at = raw.iter().position(|&b| b == b'@').unwrap_or(0);
    let first = raw.first().map_or('*', |&b| printable(b));
    let domain: String = raw.get(at..).unwrap_or_default().iter().map(|&b| printable(b)).collect();
    format!("{first}***{domain}")
}

/// A phone number (digits only, country code first): `+`, two leading and two trailing digits.
#[must_use]
pub fn phone(digits: &[u8], international: bool) -> String {
    let body = keep_ends(digits, 2, 2);
    if international { format!("+{body}") } else { body }
}

/// A JWT: the start of its header (which only says how it is signed) and nothing else.
#[must_use]
pub fn jwt(header: &[u8]) -> String {
    let keep = &header[..header.len().min(10)];
    let p: String = keep.iter().map(|&b| printable(b)).collect();
    format!("{p}\u{2026}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_keeps_scheme_only() {
        assert_eq!(header_value("Authorization", b"Bearer abc.def.ghi"), "Bearer [REDACTED]");
        assert_eq!(header_value("authorization", b"Basic dXNlcjpwYXNz"), "Basic [REDACTED]");
        assert_eq!(header_value("Authorization", b"rawtoken"), REDACTED);
        assert_eq!(header_value("Cookie", b"sid=1"), REDACTED);
        assert_eq!(header_value("Set-Cookie", b"sid=1; HttpOnly"), REDACTED);
        assert_eq!(header_value("X-API-Key", b"k"), REDACTED);
    }

    #[test]
    fn other_headers_pass() {
        assert_eq!(header_value("Host", b"example.com"), "example.com");
        assert_eq!(header_value("X-Bin", &[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn secret_query_values_are_masked() {
        assert_eq!(
            query("a=1&access_token=xyz&Api-Key=k&b="),
            "a=1&access_token=[REDACTED]&Api-Key=[REDACTED]&b="
        );
        assert_eq!(query("password=&x"), "password=&x");
    }

    #[test]
    fn flagged_header_values_become_their_samples() {
        let flagged = [("x-card", "411111******1111"), ("*", "x")];
        assert_eq!(header_value_flagged("X-Card", b"4111111111111111", &flagged), "411111******1111");
        assert_eq!(header_value_flagged("X-Other", b"plain", &flagged), "plain");
        assert_eq!(header_value_flagged("x-123456", b"4111111111111111", &flagged), REDACTED);
        assert_eq!(header_value_flagged("Authorization", b"Bearer abc", &flagged), "Bearer [REDACTED]");
    }

    #[test]
    fn flagged_query_values_become_their_samples() {
        assert_eq!(
            query_flagged("pan=4111111111111111&a=1&token=t", &[("pan", "411111******1111")]),
            "pan=411111******1111&a=1&token=[REDACTED]"
        );
        assert_eq!(
            query_flagged("p%61n=4111111111111111&a=1", &[("pan", "x")]),
            "p%61n=[REDACTED]&a=[REDACTED]"
        );
        assert_eq!(query_flagged("4111111111111111", &[("", "x")]), "[REDACTED]");
        assert_eq!(query_flagged("a=1", &[]), "a=1");
        // Secret-named parameters stay plainly redacted even when a detector flagged them.
        assert_eq!(
            query_flagged("token=abcdefghij&x=1", &[("token", "[REDACTED:8-16]")]),
            "token=[REDACTED]&x=1"
        );
    }

    #[test]
    fn value_masks() {
        assert_eq!(pan(b"4111111111111111"), "411111******1111");
        assert_eq!(pan(b"378282246310005"), "378282*****0005");
        assert_eq!(iban(b"GB82WEST12345698765432"), "GB82**************5432");
        assert_eq!(redacted_len(12), "[REDACTED:8-16]");
        assert_eq!(redacted_len(0), "[REDACTED:1-7]");
        assert_eq!(email(b"jane@example.com"), "j***@example.com");
        assert_eq!(phone(b"442079460958", true), "+44********58");
        assert_eq!(jwt(b"eyJhbGciOiJIUzI1NiJ9"), "eyJhbGciOi\u{2026}");
        assert_eq!(prefixed(b"ghp_", 36), "ghp_[REDACTED:33-64]");
        // Short values are mostly starred whatever is asked.
        assert_eq!(keep_ends(b"abcd", 6, 4), "a**d");
        assert_eq!(keep_ends(b"abcdefgh", 6, 4), "ab****gh");
        assert_eq!(keep_ends(b"", 6, 4), "");
    }
}
