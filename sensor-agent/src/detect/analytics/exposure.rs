//! Exposure: sensitive data where it should not be. Per exchange, against the endpoint's
//! baselines (before the exchange is folded in):
//! - `sensitive_in_url` (high for financial/national ids and credentials, else medium): a value
//!   in the path or query string ends up in access logs, proxies and browser history;
//! - `unauthenticated_sensitive_response` (high): data returned to a request without credentials;
//! - `sensitive_over_plaintext`, `credentials_over_plaintext` (high; low over loopback, where the
//!   bytes never crossed a wire, e.g. behind a TLS-terminating sidecar);
//! - `excess_sensitive_types` (medium): a response with more types than the endpoint's usual mix
//!   (types in at least 5% of its responses), some outside it;
//! - `unmasked_card_number` (high): a full PAN where other responses of the endpoint mask it;
//! - `value_to_many_clients` (medium): the same value (by keyed hash) returned to N clients.
use std::collections::{BTreeSet, HashMap};

use super::{
    AnalyticsConfig, Facts, MAX_VALUES, SecurityEvent, Severity, findings::Kind, is_credential, is_data,
    state::EndpointState,
};
use crate::detect::sensitive::{Side, keyed::ValueHash};

/// Types whose exposure is serious on its own: account and card numbers, national ids.
const HIGH_TYPES: &[&str] =
    &["payment_card", "iban", "uk_sort_code_account", "account_number", "us_ssn", "uk_nino"];

fn weight(detector: &str) -> Severity {
    if HIGH_TYPES.contains(&detector) || is_credential(detector) { Severity::High } else { Severity::Medium }
}

fn plaintext_severity(facts: &Facts<'_>) -> (Severity, &'static str) {
    if facts.loopback { (Severity::Low, " (loopback only)") } else { (Severity::High, "") }
}

pub fn check(
    config: &AnalyticsConfig,
    ep: &EndpointState,
    facts: &Facts<'_>,
    endpoint: &str,
    client: Option<&str>,
    out: &mut Vec<SecurityEvent>,
) {
    let event = |kind, severity, reason: String| SecurityEvent::new(kind, severity, endpoint, client, reason);
    in_url(facts, &event, out);
    unauthenticated(facts, &event, out);
    plaintext(facts, &event, out);
    excess_types(config, ep, facts, &event, out);
    unmasked(ep, facts, &event, out);
}

type Make<'a> = dyn Fn(Kind, Severity, String) -> SecurityEvent + 'a;

/// Data or credentials in the path or query.
fn in_url(facts: &Facts<'_>, event: &Make<'_>, out: &mut Vec<SecurityEvent>) {
    let in_url: Vec<_> = facts
        .findings
        .iter()
        .filter(|f| f.location == "request.path" || f.location.starts_with("request.query"))
        .collect();
    if let Some(first) = in_url.iter().max_by_key(|f| weight(&f.detector)) {
        let types: BTreeSet<&str> = in_url.iter().map(|f| f.detector.as_str()).collect();
        let place = if first.location == "request.path" { "the URL path" } else { "the query string" };
        out.push(
            event(
                Kind::SensitiveInUrl,
                weight(&first.detector),
                format!("{} in {place} ({})", join(&types), first.location),
            )
            .with_hash(first.value_hash),
        );
    }
}

/// Data returned without credentials.
fn unauthenticated(facts: &Facts<'_>, event: &Make<'_>, out: &mut Vec<SecurityEvent>) {
    let credentialed = facts.auth_scheme.is_some() || facts.client.is_some_and(|c| c.kind.credentialed());
    let returned: Vec<_> = facts.data_findings(Some(Side::Response)).collect();
    if !credentialed && facts.http_status.is_some_and(|s| s < 400) && !returned.is_empty() {
        let types: BTreeSet<&str> = returned.iter().map(|f| f.detector.as_str()).collect();
        out.push(
            event(
                Kind::UnauthenticatedSensitiveResponse,
                Severity::High,
                format!(
                    "{} returned to a request without credentials ({})",
                    join(&types),
                    returned[0].location
                ),
            )
            .with_hash(returned[0].value_hash),
        );
    }
}

/// Data or credentials without TLS.
fn plaintext(facts: &Facts<'_>, event: &Make<'_>, out: &mut Vec<SecurityEvent>) {
    if !facts.tls {
        let (severity, note) = plaintext_severity(facts);
        let types = facts.data_types(None);
        if let Some(first) = facts.data_findings(None).next() {
            out.push(
                event(
                    Kind::SensitiveOverPlaintext,
                    severity,
                    format!("{} over plaintext HTTP, not TLS{note}", join(&types)),
                )
                .with_hash(first.value_hash),
            );
        }
        let sent: BTreeSet<&str> = facts
            .findings
            .iter()
            .filter(|f| f.side == Side::Request && is_credential(&f.detector))
            .map(|f| f.detector.as_str())
            .collect();
        if facts.auth_scheme.is_some() || !sent.is_empty() {
            let what = match facts.auth_scheme {
                Some(s) => format!("{s} credentials"),
                None => join(&sent),
            };
            out.push(event(
                Kind::CredentialsOverPlaintext,
                severity,
                format!("{what} sent over plaintext HTTP, not TLS{note}"),
            ));
        }
    }
}

/// More types than the endpoint's usual mix (a type is usual in at least 5% of responses).
fn excess_types(
    config: &AnalyticsConfig,
    ep: &EndpointState,
    facts: &Facts<'_>,
    event: &Make<'_>,
    out: &mut Vec<SecurityEvent>,
) {
    if facts.http_status.is_some() && ep.responses >= config.baseline_min_samples {
        let now = facts.data_types(Some(Side::Response));
        let usual: BTreeSet<&str> = ep
            .type_responses
            .iter()
            .filter(|(_, n)| **n * 20 >= ep.responses)
            .map(|(t, _)| t.as_str())
            .collect();
        let unusual: BTreeSet<&str> = now.difference(&usual).copied().collect();
        // An endpoint that never carried data is `new_sensitive_type`'s business.
        if !usual.is_empty() && !unusual.is_empty() && now.len() > usual.len() {
            out.push(event(
                Kind::ExcessSensitiveTypes,
                Severity::Medium,
                format!(
                    "response carried {} sensitive types ({}); usually {} ({}) over {} responses",
                    now.len(),
                    join(&now),
                    usual.len(),
                    if usual.is_empty() { "none".to_owned() } else { join(&usual) },
                    ep.responses
                ),
            ));
        }
    }
}

/// A full card number where the endpoint's responses have masked them.
fn unmasked(ep: &EndpointState, facts: &Facts<'_>, event: &Make<'_>, out: &mut Vec<SecurityEvent>) {
    if ep.masked_pan_responses > 0
        && let Some(card) =
            facts.findings.iter().find(|f| f.side == Side::Response && f.detector == "payment_card")
    {
        out.push(
            event(
                Kind::UnmaskedCardNumber,
                Severity::High,
                format!(
                    "card number returned unmasked ({}); {} of {} earlier responses masked card numbers",
                    card.location, ep.masked_pan_responses, ep.responses
                ),
            )
            .with_hash(card.value_hash),
        );
    }
}

/// `value_to_many_clients`: one event per value, when its N-th distinct client receives it.
#[expect(clippy::implicit_hasher, reason = "one map, owned by Analytics")]
pub fn shared_values(
    config: &AnalyticsConfig,
    values: &mut HashMap<ValueHash, (String, BTreeSet<String>)>,
    facts: &Facts<'_>,
    endpoint: &str,
    client: Option<&str>,
    out: &mut Vec<SecurityEvent>,
) {
    let Some(client) = client else { return };
    for f in facts.findings.iter().filter(|f| f.side == Side::Response && is_data(&f.detector)) {
        let Some(hash) = f.value_hash else { continue };
        if !values.contains_key(&hash) && values.len() >= MAX_VALUES {
            continue;
        }
        let (detector, clients) = values.entry(hash).or_insert_with(|| (f.detector.clone(), BTreeSet::new()));
        if clients.len() >= config.shared_value_clients || !clients.insert(client.to_owned()) {
            continue;
        }
        if clients.len() == config.shared_value_clients {
            let mut e = SecurityEvent::new(
                Kind::ValueToManyClients,
                Severity::Medium,
                endpoint,
                None,
                format!(
                    "the same {detector} value was returned to {} clients: {}",
                    clients.len(),
                    clients.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                ),
            );
            e.value_hash = Some(hash.to_string());
            out.push(e);
        }
    }
}

#[must_use]
pub fn join(set: &BTreeSet<&str>) -> String {
    set.iter().copied().collect::<Vec<_>>().join(", ")
}

/// Whether a body holds a masked card number: up to 6 digits, 4 to 12 mask characters (`*`,
/// `X`, `x`), then exactly 4 digits, 12 to 19 characters in all (`411111******1111`,
/// `************1111`). Masked values are not sensitive; this only tells masking endpoints apart.
#[must_use]
pub fn has_masked_pan(body: &[u8]) -> bool {
    let is_mask = |b: u8| matches!(b, b'*' | b'X' | b'x');
    let mut i = 0;
    while i < body.len() {
        if !is_mask(body[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < body.len() && is_mask(body[i]) {
            i += 1;
        }
        let masks = i - start;
        let mut lead = 0;
        while lead < start && lead <= 6 && body[start - 1 - lead].is_ascii_digit() {
            lead += 1;
        }
        let mut tail = 0;
        while i + tail < body.len() && body[i + tail].is_ascii_digit() {
            tail += 1;
        }
        let before_ok = start == lead || !body[start - 1 - lead].is_ascii_alphanumeric();
        let after_ok = body.get(i + tail).is_none_or(|b| !b.is_ascii_alphanumeric());
        let total = lead + masks + tail;
        if (4..=12).contains(&masks)
            && lead <= 6
            && tail == 4
            && (12..=19).contains(&total)
            && before_ok
            && after_ok
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_card_numbers_are_recognised() {
        assert!(has_masked_pan(br#"{"pan":"411111******1111"}"#));
        assert!(has_masked_pan(br#"{"Identification":"************1234"}"#));
        assert!(has_masked_pan(b"card XXXXXXXXXXXX4242 ok"));
        assert!(!has_masked_pan(br#"{"password":"********"}"#));
        assert!(!has_masked_pan(b"4111111111111111"));
        assert!(!has_masked_pan(b"abc******1111"));
        assert!(!has_masked_pan(b"******12345"));
    }
}
