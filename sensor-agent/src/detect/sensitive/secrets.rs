//! Credential validators: JWT, cloud and hosted-service keys, private keys, AWS secrets.

use base64::Engine as _;

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

pub(crate) fn b64std(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn run(text: &[u8], from: usize, class: impl Fn(u8) -> bool) -> usize {
    let mut e = from;
    while e < text.len() && class(text[e]) {
        e += 1;
    }
    e
}

/// Nothing of the same token class right before `i`.
fn starts_token(text: &[u8], i: usize, class: impl Fn(u8) -> bool) -> bool {
    i == 0 || !class(text[i - 1])
}

#[derive(serde::Deserialize)]
struct JwtHeader {
    alg: String,
}

/// A JWT starting at `i` (on "eyJ"): the end offset and the header part's end.
pub(crate) fn jwt_at(text: &[u8], i: usize) -> Option<(usize, usize)> {
    if !starts_token(text, i, |b| b64url(b) || b == b'.') {
        return None;
    }
    let h_end = run(text, i, b64url);
    if h_end - i < 10 || h_end - i > 2048 || text.get(h_end) != Some(&b'.') {
        return None;
    }
    let p_end = run(text, h_end + 1, b64url);
    if p_end - h_end - 1 < 2 || text.get(p_end) != Some(&b'.') {
        return None;
    }
    let s_end = run(text, p_end + 1, b64url);
    // A fourth part would make it a JWE or something else entirely.
    if text.get(s_end) == Some(&b'.') && text.get(s_end + 1).is_some_and(|&b| b64url(b)) {
        return None;
    }
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&text[i..h_end]).ok()?;
    let parsed: JwtHeader = serde_json::from_slice(&header).ok()?;
    if parsed.alg.is_empty() {
        return None;
    }
    // The payload must be base64url too (its content is not inspected further).
    if (p_end - h_end - 1) % 4 == 1 {
        return None;
    }
    Some((s_end, h_end))
}

/// `AKIA`/`ASIA` + 16 uppercase letters/digits.
pub(crate) fn aws_key_id_at(text: &[u8], i: usize) -> Option<usize> {
    if !starts_token(text, i, |b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let e = run(text, i + 4, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
    (e - i == 20 && !text.get(e).is_some_and(u8::is_ascii_alphanumeric)).then_some(e)
}

/// A 40-character base64 word that could be an AWS secret access key (shape only).
pub(crate) fn aws_secret_shape(text: &[u8], i: usize) -> Option<usize> {
    if !starts_token(text, i, b64std) {
        return None;
    }
    let e = run(text, i, b64std);
    if e - i != 40 || text.get(e) == Some(&b'=') {
        return None;
    }
    // A slice of a longer base64url or dotted token (a JWT's header or signature) is not a key:
    // those are bounded by '.', '-' or '_', a key by quotes, spaces, '=' or punctuation.
    let url_safe = |b: Option<&u8>| matches!(b, Some(b'.' | b'-' | b'_'));
    if url_safe(text.get(e)) || (i > 0 && url_safe(text.get(i - 1))) {
        return None;
    }
    let w = &text[i..e];
    let upper = w.iter().any(u8::is_ascii_uppercase);
    let lower = w.iter().any(u8::is_ascii_lowercase);
    let digit = w.iter().any(u8::is_ascii_digit);
    let slashes = memchr::memchr_iter(b'/', w).count();
    // Paths ("a/b/c/...") are not keys.
    (upper && lower && digit && slashes <= 4 && w[39] != b'/').then_some(e)
}

/// GitHub tokens: `ghp_`-style + 36 alphanumerics, or `github_pat_` + 22.. word characters.
pub(crate) fn github_at(text: &[u8], i: usize, fine_grained: bool) -> Option<usize> {
    if !starts_token(text, i, |b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    if fine_grained {
        let e = run(text, i + 11, |b| b.is_ascii_alphanumeric() || b == b'_');
        return (e - i - 11 >= 22 && e - i <= 255).then_some(e);
    }
    let e = run(text, i + 4, |b| b.is_ascii_alphanumeric());
    (e - i - 4 >= 36 && e - i <= 255 && text.get(e) != Some(&b'_')).then_some(e)
}

/// Slack tokens `xox[abprs]-...`.
pub(crate) fn slack_at(text: &[u8], i: usize) -> Option<usize> {
    if !starts_token(text, i, |b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let e = run(text, i + 5, |b| b.is_ascii_alphanumeric() || b == b'-');
    let body = &text[i + 5..e];
    (body.len() >= 10 && e - i <= 255 && body.iter().filter(|b| b.is_ascii_digit()).count() >= 4).then_some(e)
}

/// Stripe keys `sk_live_...` etc.: the anchor is 8 bytes long.
pub(crate) fn stripe_at(text: &[u8], i: usize) -> Option<usize> {
    if !starts_token(text, i, |b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let e = run(text, i + 8, |b| b.is_ascii_alphanumeric());
    (e - i - 8 >= 10 && e - i <= 255 && text.get(e) != Some(&b'_')).then_some(e)
}

/// Google API keys: `AIza` + 35 URL-safe characters.
pub(crate) fn google_at(text: &[u8], i: usize) -> Option<usize> {
    if !starts_token(text, i, b64url) {
        return None;
    }
    let e = run(text, i + 4, b64url);
    (e - i == 39).then_some(e)
}

/// `-----BEGIN [type ]PRIVATE KEY[ BLOCK]-----`: the end of the BEGIN line.
pub(crate) fn private_key_at(text: &[u8], i: usize) -> Option<usize> {
    let rest = text.get(i + 11..)?;
    if !text[i..].starts_with(b"-----BEGIN ") {
        return None;
    }
    let limit = rest.len().min(48);
    let pos = memchr::memmem::find(&rest[..limit], b"PRIVATE KEY")?;
    if !rest[..pos].iter().all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ') {
        return None;
    }
    let mut e = i + 11 + pos + 11;
    if text[e..].starts_with(b" BLOCK") {
        e += 6;
    }
    text[e..].starts_with(b"-----").then_some(e + 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

    #[test]
    fn jwts() {
        let t = format!("x {JWT} y");
        assert_eq!(jwt_at(t.as_bytes(), 2).map(|r| r.0), Some(2 + JWT.len()));
        // Header without "alg", not JSON, too few parts.
        assert!(jwt_at(b"eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2ln", 0).is_none());
        assert!(jwt_at(b"eyJhbGciOiJub25lIn.eyJzdWIiOiIxIn0.c2ln", 0).is_none());
        assert!(jwt_at(b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0", 0).is_none());
        assert!(jwt_at(b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", 0).is_some());
    }

    #[test]
    fn aws() {
        assert_eq!(aws_key_id_at(b"AKIAIOSFODNN7EXAMPLE", 0), Some(20));
        assert!(aws_key_id_at(b"AKIAIOSFODNN7EXAMPL", 0).is_none());
        assert!(aws_key_id_at(b"AKIAIOSFODNN7EXAMPLEX", 0).is_none());
        assert!(aws_key_id_at(b"xAKIAIOSFODNN7EXAMPLE", 1).is_none());
        assert!(aws_secret_shape(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 0).is_some());
        assert!(aws_secret_shape(b"da39a3ee5e6b4b0d3255bfef95601890afd80709", 0).is_none());
        assert!(aws_secret_shape(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYX", 0).is_none());
    }

    #[test]
    fn saas() {
        let gh = format!("ghp_{}", "a1B2".repeat(9));
        assert!(github_at(gh.as_bytes(), 0, false).is_some());
        assert!(github_at(&gh.as_bytes()[..30], 0, false).is_none());
        assert!(github_at(b"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", 0, true).is_some());
        assert!(slack_at(b"xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", 0).is_some());
        assert!(slack_at(b"xoxb-short", 0).is_none());
        assert!(stripe_at(b"sk_live_4eC39HqLyjWDarjtT1zdp7dc", 0).is_some());
        assert!(stripe_at(b"sk_live_", 0).is_none());
        assert!(google_at(b"AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", 0).is_some());
        assert!(google_at(b"AIzaSyDaGmWKa4JsXZ", 0).is_none());
    }

    #[test]
    fn private_keys() {
        assert!(private_key_at(b"-----BEGIN RSA PRIVATE KEY-----\nMIIE", 0).is_some());
        assert!(private_key_at(b"-----BEGIN PRIVATE KEY-----", 0).is_some());
        assert!(private_key_at(b"-----BEGIN PGP PRIVATE KEY BLOCK-----", 0).is_some());
        assert!(private_key_at(b"-----BEGIN PUBLIC KEY-----", 0).is_none());
        assert!(private_key_at(b"-----BEGIN CERTIFICATE-----", 0).is_none());
        assert!(private_key_at(b"-----BEGIN ", 0).is_none());
    }
}
