//! What analytics remembers per endpoint: the baselines its checks compare against. Bounded
//! (clients and types per endpoint are capped) and serializable, so it persists with the
//! inventory.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::findings::Kind;

/// Clients remembered per endpoint; further ones are only counted.
pub const MAX_CLIENTS: usize = 64;
/// Sensitive types remembered per endpoint or client.
pub const MAX_TYPES: usize = 32;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointState {
    pub count: u64,
    pub first_seen: u64,
    pub last_seen: u64,
    /// An `endpoint_silent` event was sent and the endpoint has not been called since.
    pub silent_reported: bool,
    /// Exchanges per auth scheme; `unauthenticated` for none.
    pub auth: BTreeMap<String, u64>,
    pub unauthenticated: u64,
    /// Exchanges with a response.
    pub responses: u64,
    /// Responses carrying each sensitive data type.
    pub type_responses: BTreeMap<String, u64>,
    /// Every sensitive data type seen on the endpoint (either side).
    pub types: BTreeSet<String>,
    /// Responses that carried a masked card number (`411111******1111`).
    pub masked_pan_responses: u64,
    pub clients: BTreeMap<String, ClientUse>,
    pub clients_other: u64,
    pub window: Window,
    /// Response body sizes: count, mean and sum of squared deviations (Welford).
    pub size_n: u64,
    pub size_mean: f64,
    pub size_m2: f64,
}

/// What one client did on one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientUse {
    pub count: u64,
    /// Sensitive data types this client received in responses.
    pub received: BTreeSet<String>,
    pub last_seen: u64,
}

/// The current anomaly window and the totals before it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Window {
    /// Start of the current window (unix ms, aligned to the window length).
    pub start: u64,
    pub count: u64,
    pub errors: u64,
    /// Exchanges and 5xx responses before the current window, and how many windows they span.
    pub before_count: u64,
    pub before_errors: u64,
    pub before_windows: u64,
    /// Anomalies already reported in this window.
    pub reported: BTreeSet<Kind>,
}

impl EndpointState {
    /// The size standard deviation.
    #[must_use]
    pub fn size_sd(&self) -> f64 {
        if self.size_n < 2 { 0.0 } else { (self.size_m2 / (self.size_n - 1) as f64).sqrt() }
    }

    /// The auth scheme every earlier exchange used, if there was exactly one.
    #[must_use]
    pub fn sole_scheme(&self) -> Option<&str> {
        if self.unauthenticated > 0 || self.auth.len() != 1 {
            return None;
        }
        self.auth.keys().next().map(String::as_str)
    }
}

/// Auth schemes kept apart per endpoint; the scheme is whatever first token a client sends in
/// `Authorization`, so the rest (and any absurdly long one) share one key, and the map (which is
/// persisted) stays bounded.
pub const MAX_AUTH_SCHEMES: usize = 8;
const MAX_SCHEME_LEN: usize = 32;
pub const OTHER_SCHEMES: &str = "(other)";

/// Counts one exchange under its auth scheme, within [`MAX_AUTH_SCHEMES`].
pub fn count_scheme(auth: &mut BTreeMap<String, u64>, scheme: &str) {
    // One slot stays free for the other bucket.
    let kept =
        scheme.len() <= MAX_SCHEME_LEN && (auth.contains_key(scheme) || auth.len() < MAX_AUTH_SCHEMES - 1);
    let key = if kept { scheme } else { OTHER_SCHEMES };
    match auth.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            auth.insert(key.to_owned(), 1);
        }
    }
}

pub fn insert_capped(set: &mut BTreeSet<String>, value: &str) {
    if set.len() < MAX_TYPES && !set.contains(value) {
        set.insert(value.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_schemes_are_capped_with_an_other_bucket() {
        let mut auth = BTreeMap::new();
        for i in 0..100 {
            count_scheme(&mut auth, &format!("scheme{i}"));
        }
        count_scheme(&mut auth, "scheme0");
        count_scheme(&mut auth, &"x".repeat(500));
        // MAX_AUTH_SCHEMES - 1 named ones, then everything else under OTHER_SCHEMES.
        assert_eq!(auth.len(), MAX_AUTH_SCHEMES);
        assert_eq!(auth["scheme0"], 2);
        assert_eq!(auth.values().sum::<u64>(), 102, "every exchange is still counted");
        assert!(auth[OTHER_SCHEMES] >= 93);
    }
}
