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
    let lower = name.to_ascii_lowercase();
    if !CREDENTIAL_HEADERS.contains(&lower.as_str()) {
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

/// The exportable form of a query string: values of secret-named parameters replaced.
#[must_use]
pub fn query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_param(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_param(name: &str) -> bool {
    let normal: String =
        name.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect();
    SECRET_PARAMS.contains(&normal.as_str())
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
}
