//! Zombies: API surface that should be gone, or was never used.
//! - `deprecated_operation_called` (medium): an operation its spec marks `deprecated`, still
//!   called (once per client);
//! - `old_version_called` (medium): `/v3.1/...` called while the same operation (same method,
//!   host and path, parameters ignored) is also called under a newer version `/v4.0/...`; each
//!   client still on the old version is reported, whichever version was seen first;
//! - `unobserved_operation` (info): a documented operation never called `zombie_window_hours`
//!   after analytics began.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Facts, SecurityEvent, Severity, findings::Kind, state::MAX_CLIENTS};
use crate::detect::inventory::EndpointStatus;

/// Operations tracked across versions.
const MAX_OPERATIONS: usize = 10_000;

/// One version of an operation: its endpoint, the path after the version segment (parameters
/// as `{}`), and who calls it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionUse {
    pub version: String,
    pub suffix: Vec<String>,
    pub endpoint: String,
    pub clients: BTreeSet<String>,
}

/// Versions kept per operation prefix.
const MAX_VERSIONS: usize = 64;

/// `METHOD host/prefix/{v}` -> every versioned route under it.
pub type Versions = BTreeMap<String, Vec<VersionUse>>;

pub fn check(
    versions: &mut Versions,
    facts: &Facts<'_>,
    endpoint: &str,
    client: Option<&str>,
    out: &mut Vec<SecurityEvent>,
) {
    if facts.endpoint_status == EndpointStatus::Deprecated {
        out.push(SecurityEvent::new(
            Kind::DeprecatedOperationCalled,
            Severity::Medium,
            endpoint,
            client,
            format!("operation marked deprecated in {} is still called", facts.spec.unwrap_or("its spec")),
        ));
    }
    let Some((prefix, version, suffix)) = versioned(facts.method, facts.host, facts.route) else {
        return;
    };
    if !versions.contains_key(&prefix) && versions.len() >= MAX_OPERATIONS {
        return;
    }
    let known = versions.entry(prefix).or_default();
    let index = match known.iter().position(|u| u.endpoint == endpoint) {
        Some(i) => i,
        None if known.len() >= MAX_VERSIONS => return,
        None => {
            known.push(VersionUse {
                version: version.clone(),
                suffix,
                endpoint: endpoint.to_owned(),
                ..VersionUse::default()
            });
            known.len() - 1
        }
    };
    let first_call = known[index].clients.is_empty();
    if let Some(c) = client
        && known[index].clients.len() < MAX_CLIENTS
    {
        known[index].clients.insert(c.to_owned());
    }
    let this = &known[index];
    // The same operation under other versions: same suffix, a parameter matching anything.
    let same: Vec<&VersionUse> =
        known.iter().filter(|u| u.version != version && same_suffix(&u.suffix, &this.suffix)).collect();
    let Some(newest) = same.iter().map(|u| u.version.as_str()).max_by_key(|v| order(v)) else {
        return;
    };
    if order(&version) < order(newest) {
        out.push(SecurityEvent::new(
            Kind::OldVersionCalled,
            Severity::Medium,
            endpoint,
            client,
            format!("{version} called while {newest} of the same operation is in use"),
        ));
    } else if first_call {
        // A newer version appeared: everyone still on an older one is now behind.
        for usage in same.iter().filter(|u| order(&u.version) < order(&version)) {
            for c in &usage.clients {
                out.push(SecurityEvent::new(
                    Kind::OldVersionCalled,
                    Severity::Medium,
                    &usage.endpoint,
                    Some(c),
                    format!("{} called while {version} of the same operation is in use", usage.version),
                ));
            }
        }
    }
}

fn same_suffix(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || x == "{}" || y == "{}")
}

/// The operation prefix (`METHOD host/path-before/{v}`), version and the segments after it
/// (parameters as `{}`), for a route with a `vN[.M]` segment.
#[must_use]
pub fn versioned(method: &str, host: &str, route: &str) -> Option<(String, String, Vec<String>)> {
    let segments: Vec<&str> = route.split('/').collect();
    let at = segments.iter().position(|s| is_version(s))?;
    let prefix = format!("{method} {host}{}/{{v}}", segments[..at].join("/"));
    let suffix = segments[at + 1..]
        .iter()
        .map(|s| if s.starts_with('{') { "{}".to_owned() } else { (*s).to_owned() })
        .collect();
    Some((prefix, segments[at].to_ascii_lowercase(), suffix))
}

fn is_version(seg: &str) -> bool {
    let Some(rest) = seg.strip_prefix(['v', 'V']) else { return false };
    !rest.is_empty()
        && rest.split('.').all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn order(version: &str) -> Vec<u32> {
    version.get(1..).unwrap_or_default().split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// One `unobserved_operation` per documented operation never called.
#[must_use]
pub fn unobserved(ops: &[(String, String, String)], window_hours: u64) -> Vec<SecurityEvent> {
    ops.iter()
        .map(|(spec, method, template)| {
            SecurityEvent::new(
                Kind::UnobservedOperation,
                Severity::Info,
                &format!("{method} {template}"),
                None,
                format!("documented in {spec} but not called in {window_hours} h of traffic"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_and_ordered() {
        let (op, v, suffix) =
            versioned("GET", "bank", "/open-banking/v3.1/aisp/accounts/{AccountId}").unwrap();
        assert_eq!((op.as_str(), v.as_str()), ("GET bank/open-banking/{v}", "v3.1"));
        assert_eq!(suffix, ["aisp", "accounts", "{}"]);
        let (op2, v2, suffix2) = versioned("GET", "bank", "/open-banking/v4.0/aisp/accounts/ACC1").unwrap();
        assert_eq!(op, op2);
        assert!(same_suffix(&suffix, &suffix2));
        assert!(!same_suffix(&suffix, &["aisp".to_owned(), "balances".to_owned(), "{}".to_owned()]));
        assert!(order(&v) < order(&v2));
        assert!(order("v10") > order("v9.9"));
        assert!(versioned("GET", "bank", "/videos/v/x").is_none());
        assert!(versioned("GET", "bank", "/view/1").is_none());
    }
}
