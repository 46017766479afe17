//! Changes over time, against what the endpoint did before:
//! - `new_endpoint` (medium if shadow, undocumented or deprecated; low if unknown; info if
//!   documented): first exchange of a (host, method, route), also across restarts;
//! - `new_sensitive_type` (medium): a data type the endpoint never carried before;
//! - `auth_dropped` (high) / `auth_changed` (medium): a request without credentials, or with
//!   another scheme, where every earlier one (at least `baseline_min_samples`) used one scheme;
//! - `new_client` (low): a caller never seen on an endpoint with an established set of callers;
//! - `endpoint_silent` (low): no call for `silent_after_hours` (checked as traffic time passes).
use super::{
    AnalyticsConfig, Facts, SecurityEvent, Severity,
    exposure::join,
    findings::Kind,
    state::{EndpointState, MAX_CLIENTS},
};
use crate::detect::inventory::EndpointStatus;

pub fn check(
    config: &AnalyticsConfig,
    ep: &EndpointState,
    facts: &Facts<'_>,
    endpoint: &str,
    client: Option<&str>,
    out: &mut Vec<SecurityEvent>,
) {
    let event = |kind, severity, reason: String| SecurityEvent::new(kind, severity, endpoint, client, reason);
    if facts.new_endpoint {
        let severity = match facts.endpoint_status {
            EndpointStatus::Shadow | EndpointStatus::UndocumentedMethod | EndpointStatus::Deprecated => {
                Severity::Medium
            }
            EndpointStatus::UndocumentedStatus | EndpointStatus::Unknown => Severity::Low,
            EndpointStatus::Documented => Severity::Info,
        };
        out.push(event(
            Kind::NewEndpoint,
            severity,
            format!(
                "first call of this {} endpoint{}",
                facts.endpoint_status.as_str(),
                facts.http_status.map(|s| format!(", status {s}")).unwrap_or_default()
            ),
        ));
    }
    if ep.count == 0 {
        return;
    }
    let new_types: std::collections::BTreeSet<&str> =
        facts.data_types(None).into_iter().filter(|t| !ep.types.contains(*t)).collect();
    if !new_types.is_empty() {
        out.push(event(
            Kind::NewSensitiveType,
            Severity::Medium,
            format!(
                "{} seen on this endpoint for the first time, after {} exchanges",
                join(&new_types),
                ep.count
            ),
        ));
    }
    if ep.count >= config.baseline_min_samples
        && let Some(usual) = ep.sole_scheme()
    {
        match facts.auth_scheme {
            None => out.push(event(
                Kind::AuthDropped,
                Severity::High,
                format!("called without credentials; the {} earlier exchanges all used {usual}", ep.count),
            )),
            Some(s) if s != usual => out.push(event(
                Kind::AuthChanged,
                Severity::Medium,
                format!("called with {s}; the {} earlier exchanges all used {usual}", ep.count),
            )),
            Some(_) => {}
        }
    }
    if let Some(c) = client
        && ep.count >= config.baseline_min_samples
        && ep.clients.len() < MAX_CLIENTS
        && !ep.clients.contains_key(c)
    {
        out.push(event(
            Kind::NewClient,
            Severity::Low,
            format!(
                "first call from this client, after {} exchanges from {} clients",
                ep.count,
                ep.clients.len()
            ),
        ));
    }
}

/// `endpoint_silent`, once per silence.
pub fn silent(ep: &mut EndpointState, endpoint: &str, now: u64, after_ms: u64) -> Option<SecurityEvent> {
    if ep.silent_reported || ep.count == 0 || now.saturating_sub(ep.last_seen) < after_ms {
        return None;
    }
    ep.silent_reported = true;
    let hours = now.saturating_sub(ep.last_seen) / 3_600_000;
    Some(SecurityEvent::new(
        Kind::EndpointSilent,
        Severity::Low,
        endpoint,
        None,
        format!("no calls for {hours} h, after {} exchanges", ep.count),
    ))
}
