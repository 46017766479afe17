//! Who made a request, from its credentials, without exporting them:
//! - a JWT bearer token: its `client_id`, else `azp` claim, else the keyed hash of its `sub`
//!   (which often names a person, not an application); payload base64url-decoded, the signature
//!   not verified: this names a caller, it does not authenticate one;
//! - an opaque bearer token: its keyed hash;
//! - Basic credentials: the user name (its keyed hash when it looks like an e-mail address or a
//!   number); the password is never decoded into output;
//! - a named API-key header (`analytics.api_key_headers`): header name and the value's keyed hash;
//! - otherwise the peer: its address (server side) or the calling process (client side).
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::detect::sensitive::keyed::Keyer;

/// Longest claim value kept; longer ones are cut (claims are names, not documents).
const MAX_CLAIM: usize = 96;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    Jwt,
    Bearer,
    Basic,
    ApiKey,
    Peer,
    Process,
}

impl IdentityKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Jwt => "jwt",
            IdentityKind::Bearer => "bearer",
            IdentityKind::Basic => "basic",
            IdentityKind::ApiKey => "api_key",
            IdentityKind::Peer => "peer",
            IdentityKind::Process => "process",
        }
    }

    /// Whether the identity comes from credentials the request presented.
    #[must_use]
    pub fn credentialed(self) -> bool {
        !matches!(self, IdentityKind::Peer | IdentityKind::Process)
    }
}

/// The client of one exchange, safe to export.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientIdentity {
    pub kind: IdentityKind,
    /// `client_id=tpp-alpha`, a keyed hash, an address or a process name.
    pub id: String,
}

impl ClientIdentity {
    /// `kind:id`, the form used in findings and the inventory.
    #[must_use]
    pub fn display(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

/// Identifies the client of a request. `peer` is the remote address (server side) or the
/// process name (client side).
#[must_use]
pub fn identify(
    headers: &[(String, Vec<u8>)],
    api_key_headers: &[String],
    keyer: &Keyer,
    peer: Option<(IdentityKind, String)>,
) -> Option<ClientIdentity> {
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    if let Some(value) = header("authorization") {
        let value = value.trim_ascii();
        let (scheme, cred) = match value.iter().position(|b| *b == b' ') {
            Some(sp) => (&value[..sp], value[sp + 1..].trim_ascii()),
            None => (&b""[..], value),
        };
        if scheme.eq_ignore_ascii_case(b"bearer") && !cred.is_empty() {
            if let Some(id) = jwt_client(cred, keyer) {
                return Some(ClientIdentity { kind: IdentityKind::Jwt, id });
            }
            return Some(ClientIdentity { kind: IdentityKind::Bearer, id: short_hash(keyer, cred) });
        }
        if scheme.eq_ignore_ascii_case(b"basic")
            && let Some(user) = basic_user(cred)
        {
            // An e-mail address or a number-like user name names a person: hashed.
            let personal = user.contains('@') || user.bytes().filter(u8::is_ascii_digit).count() >= 6;
            let id = if personal { format!("user#{}", short_hash(keyer, user.as_bytes())) } else { user };
            return Some(ClientIdentity { kind: IdentityKind::Basic, id });
        }
    }
    for name in api_key_headers {
        if let Some(value) = header(name).filter(|v| !v.trim_ascii().is_empty()) {
            let id = format!("{}={}", name.to_ascii_lowercase(), short_hash(keyer, value.trim_ascii()));
            return Some(ClientIdentity { kind: IdentityKind::ApiKey, id });
        }
    }
    peer.filter(|(_, id)| !id.is_empty()).map(|(kind, id)| ClientIdentity { kind, id })
}

/// 64 bits of the keyed hash: enough to tell clients apart on one node.
fn short_hash(keyer: &Keyer, raw: &[u8]) -> String {
    let mut s = keyer.hash(raw).to_string();
    s.truncate(16);
    s
}

/// `client_id=...`, `azp=...` or `sub#<keyed hash>` from a JWT's payload (not verified).
fn jwt_client(token: &[u8], keyer: &Keyer) -> Option<String> {
    let mut parts = token.split(|b| *b == b'.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 8192 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.strip_suffix(b"=").unwrap_or(payload))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let named = ["client_id", "azp"].iter().find_map(|claim| {
        let value = claims.get(claim)?.as_str()?;
        let clean = printable(value.as_bytes())?;
        Some(format!("{claim}={clean}"))
    });
    named.or_else(|| {
        let sub = claims.get("sub")?.as_str().filter(|s| !s.is_empty())?;
        Some(format!("sub#{}", short_hash(keyer, sub.as_bytes())))
    })
}

/// The user name of Basic credentials (the part before `:`), printable and bounded.
fn basic_user(cred: &[u8]) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(cred).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    printable(&decoded[..colon])
}

fn printable(raw: &[u8]) -> Option<String> {
    let raw = &raw[..raw.len().min(MAX_CLAIM)];
    (!raw.is_empty() && raw.iter().all(u8::is_ascii_graphic))
        .then(|| String::from_utf8_lossy(raw).into_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An unsigned-looking JWT with the given claims (the signature is never checked).
    pub(crate) fn jwt(claims: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.c2lnbmF0dXJl", e.encode(br#"{"alg":"RS256","typ":"JWT"}"#), e.encode(claims))
    }

    fn headers(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn jwt_claims_name_the_client_in_order() {
        let k = Keyer::from_bytes(&[7; 32]);
        let peer = Some((IdentityKind::Peer, "10.0.0.9".to_owned()));
        let t = jwt(r#"{"sub":"user-1","azp":"app-9","client_id":"tpp-alpha"}"#);
        let id =
            identify(&headers(&[("Authorization", &format!("Bearer {t}"))]), &[], &k, peer.clone()).unwrap();
        assert_eq!(id.display(), "jwt:client_id=tpp-alpha");
        let t = jwt(r#"{"sub":"user-1","azp":"app-9"}"#);
        let id = identify(&headers(&[("authorization", &format!("bearer {t}"))]), &[], &k, None).unwrap();
        assert_eq!(id.display(), "jwt:azp=app-9");
        // A subject often names a person: only its keyed hash is shown.
        let t = jwt(r#"{"sub":"jane.doe@example.com"}"#);
        let id = identify(&headers(&[("authorization", &format!("Bearer {t}"))]), &[], &k, None).unwrap().id;
        assert!(id.starts_with("sub#") && id.len() == 20 && !id.contains("jane"), "{id}");
    }

    #[test]
    fn opaque_tokens_and_api_keys_become_keyed_hashes() {
        let k = Keyer::from_bytes(&[7; 32]);
        let id = identify(&headers(&[("Authorization", "Bearer opaque-secret-123")]), &[], &k, None).unwrap();
        assert_eq!(id.kind, IdentityKind::Bearer);
        assert!(!id.id.contains("opaque") && id.id.len() == 16, "{}", id.id);
        let names = vec!["X-Api-Key".to_owned()];
        let id = identify(&headers(&[("x-api-key", "k-live-42")]), &names, &k, None).unwrap();
        assert_eq!(id.kind, IdentityKind::ApiKey);
        assert!(id.id.starts_with("x-api-key=") && !id.id.contains("k-live"), "{}", id.id);
        let other = identify(&headers(&[("x-api-key", "k-live-43")]), &names, &k, None).unwrap();
        assert_ne!(id, other);
        // A header not configured is not an identity.
        let peer = Some((IdentityKind::Peer, "10.0.0.9".to_owned()));
        let id = identify(&headers(&[("x-other-key", "v")]), &names, &k, peer).unwrap();
        assert_eq!(id.display(), "peer:10.0.0.9");
    }

    #[test]
    fn basic_keeps_the_user_only_and_garbage_falls_back() {
        let k = Keyer::from_bytes(&[7; 32]);
        let id = identify(&headers(&[("Authorization", "Basic YWxpY2U6czNjcjN0")]), &[], &k, None).unwrap();
        assert_eq!(id.display(), "basic:alice");
        // jane@example.com:pw
        let id =
            identify(&headers(&[("Authorization", "Basic amFuZUBleGFtcGxlLmNvbTpwdw==")]), &[], &k, None)
                .unwrap();
        assert!(id.id.starts_with("user#") && !id.id.contains("jane"), "{}", id.id);
        let peer = Some((IdentityKind::Process, "curl".to_owned()));
        let id = identify(&headers(&[("Authorization", "Basic !!!")]), &[], &k, peer).unwrap();
        assert_eq!(id.display(), "process:curl");
        // A bearer JWT whose payload is not JSON is an opaque token.
        let id = identify(&headers(&[("Authorization", "Bearer a.bm90IGpzb24.c")]), &[], &k, None).unwrap();
        assert_eq!(id.kind, IdentityKind::Bearer);
    }
}
