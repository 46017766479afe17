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

/// One version of an operation: its endpoint and who calls it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionUse {
    pub endpoint: String,
    pub clients: BTreeSet<String>,
}

/// `METHOD host /path/{v}/...` -> version -> use.
pub type Versions = BTreeMap<String, BTreeMap<String, VersionUse>>;

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
    let Some((operation, version)) = versioned(facts.method, facts.host, facts.route) else {
        return;
    };
    if !versions.contains_key(&operation) && versions.len() >= MAX_OPERATIONS {
        return;
    }
    let known = versions.entry(operation).or_default();
    let first_of_version = !known.contains_key(&version);
    let this = known
        .entry(version.clone())
        .or_insert_with(|| VersionUse { endpoint: endpoint.to_owned(), ..VersionUse::default() });
    if let Some(c) = client
        && this.clients.len() < MAX_CLIENTS
    {
        this.clients.insert(c.to_owned());
    }
    let newest = known.keys().max_by(|a, b| order(a).cmp(&order(b))).cloned().unwrap_or_default();
    let old = |v: &str| order(v) < order(&newest);
    if old(&version) {
        out.push(SecurityEvent::new(
            Kind::OldVersionCalled,
            Severity::Medium,
            endpoint,
            client,
            format!("{version} called while {newest} of the same operation is in use"),
        ));
    } else if first_of_version {
        // A newer version appeared: everyone still on an older one is now behind.
        for (v, usage) in known.iter().filter(|(v, _)| old(v)) {
            for c in &usage.clients {
                out.push(SecurityEvent::new(
                    Kind::OldVersionCalled,
                    Severity::Medium,
                    &usage.endpoint,
                    Some(c),
                    format!("{v} called while {newest} of the same operation is in use"),
                ));
            }
        }
    }
}

/// The operation key and version of a route with a `vN[.M]` segment.
#[must_use]
pub fn versioned(method: &str, host: &str, route: &str) -> Option<(String, String)> {
    let mut version = None;
    let normal: Vec<&str> = route
        .split('/')
        .map(|seg| {
            if version.is_none() && is_version(seg) {
                version = Some(seg.to_ascii_lowercase());
                "{v}"
            } else if seg.starts_with('{') {
                "{}"
            } else {
                seg
            }
        })
        .collect();
    Some((format!("{method} {host}{}", normal.join("/")), version?))
}

fn is_version(seg: &str) -> bool {
    let Some(rest) = seg.strip_prefix(['v', 'V']) else { return false };
    !rest.is_empty()
        && rest.split('.').all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn order(version: &str) -> Vec<u32> {
    version[1..].split('.').map(|p| p.parse().unwrap_or(0)).collect()
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
        let (op, v) = versioned("GET", "bank", "/open-banking/v3.1/aisp/accounts/{AccountId}").unwrap();
        assert_eq!((op.as_str(), v.as_str()), ("GET bank/open-banking/{v}/aisp/accounts/{}", "v3.1"));
        let (op2, v2) = versioned("GET", "bank", "/open-banking/v4.0/aisp/accounts/{id}").unwrap();
        assert_eq!(op, op2);
        assert!(order(&v) < order(&v2));
        assert!(order("v10") > order("v9.9"));
        assert!(versioned("GET", "bank", "/videos/v/x").is_none());
        assert!(versioned("GET", "bank", "/view/1").is_none());
    }
}
