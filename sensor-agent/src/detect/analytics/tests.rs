//! Unit tests per concern, on hand-built facts (no runtime, no pipeline).
use super::{
    identity::{ClientIdentity, IdentityKind},
    *,
};
use crate::detect::sensitive::{Confidence, Finding, Side, keyed::Keyer};

/// An exchange as the tests script it.
#[derive(Clone)]
#[expect(clippy::struct_excessive_bools, reason = "mirrors Facts")]
struct Ex {
    ts: u64,
    route: &'static str,
    status: EndpointStatus,
    new_endpoint: bool,
    http: u16,
    tls: bool,
    loopback: bool,
    auth: Option<&'static str>,
    client: ClientIdentity,
    findings: Vec<Finding>,
    size: u64,
    masked_pan: bool,
}

fn jwt(name: &str) -> ClientIdentity {
    ClientIdentity { kind: IdentityKind::Jwt, id: format!("client_id={name}") }
}

fn ex(ts: u64) -> Ex {
    Ex {
        ts,
        route: "/v4.0/accounts/{id}",
        status: EndpointStatus::Documented,
        new_endpoint: false,
        http: 200,
        tls: true,
        loopback: false,
        auth: Some("bearer"),
        client: jwt("a"),
        findings: Vec::new(),
        size: 1000,
        masked_pan: false,
    }
}

fn finding(detector: &str, location: &str, side: Side, raw: &[u8]) -> Finding {
    Finding {
        detector: detector.to_owned(),
        confidence: Confidence::High,
        location: location.to_owned(),
        side,
        count: 1,
        sample: "masked".to_owned(),
        value_hash: Some(Keyer::from_bytes(&[9; 32]).hash(raw)),
    }
}

fn config() -> AnalyticsConfig {
    AnalyticsConfig { baseline_min_samples: 5, ..AnalyticsConfig::default() }
}

fn push(a: &mut Analytics, e: &Ex) -> Vec<SecurityEvent> {
    push_with(a, e, &[])
}

fn push_with(a: &mut Analytics, e: &Ex, unobserved: &[(String, String, String)]) -> Vec<SecurityEvent> {
    let facts = Facts {
        ts_unix_ms: e.ts,
        host: "bank",
        method: "GET",
        route: e.route,
        endpoint_status: e.status,
        spec: Some("Account API"),
        new_endpoint: e.new_endpoint,
        http_status: Some(e.http),
        tls: e.tls,
        loopback: e.loopback,
        auth_scheme: e.auth,
        client: Some(&e.client),
        findings: &e.findings,
        response_size: Some(e.size),
        masked_pan: e.masked_pan,
    };
    let mut out = Vec::new();
    a.push(&facts, &mut || unobserved.to_vec(), &mut out);
    out
}

fn kinds(events: &[SecurityEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// Five ordinary exchanges a second apart, from clients a and b.
fn baseline(a: &mut Analytics) {
    for i in 0..5 {
        let mut e = ex(1_000 * i);
        e.client = jwt(if i % 2 == 0 { "a" } else { "b" });
        assert!(push(a, &e).is_empty(), "baseline exchange {i}");
    }
}

#[test]
fn a_pan_in_the_query_is_one_finding_per_client() {
    let mut a = Analytics::new(config());
    let mut e = ex(0);
    e.findings = vec![finding("payment_card", "request.query:pan", Side::Request, b"4111111111111111")];
    let first = push(&mut a, &e);
    assert_eq!(kinds(&first), ["sensitive_in_url"]);
    assert_eq!(first[0].severity, Severity::High);
    assert_eq!(first[0].client.as_deref(), Some("jwt:client_id=a"));
    assert_eq!(first[0].reason, "payment_card in the query string (request.query:pan)");
    assert_eq!(first[0].value_hash.as_ref().map(String::len), Some(32));
    e.ts = 10;
    assert!(push(&mut a, &e).is_empty(), "same kind, endpoint and client: once");
    e.client = jwt("b");
    assert_eq!(kinds(&push(&mut a, &e)), ["sensitive_in_url"]);
    let mut email = ex(20);
    email.client = jwt("c");
    email.findings = vec![finding("email", "request.path", Side::Request, b"j@x.io")];
    let found = push(&mut a, &email);
    assert_eq!(
        (found[0].severity, found[0].reason.as_str()),
        (Severity::Medium, "email in the URL path (request.path)")
    );
}

#[test]
fn plaintext_is_high_on_the_wire_and_low_over_loopback() {
    let mut a = Analytics::new(config());
    let mut e = ex(0);
    e.tls = false;
    e.findings = vec![finding("iban", "response.body:$.iban", Side::Response, b"GB82WEST12345698765432")];
    let events = push(&mut a, &e);
    assert_eq!(kinds(&events), ["sensitive_over_plaintext", "credentials_over_plaintext"]);
    assert!(events.iter().all(|e| e.severity == Severity::High));
    assert_eq!(events[1].reason, "bearer credentials sent over plaintext HTTP, not TLS");
    e.loopback = true;
    e.client = jwt("local");
    let events = push(&mut a, &e);
    assert!(events.iter().all(|e| e.severity == Severity::Low && e.reason.ends_with("(loopback only)")));
}

#[test]
fn unauthenticated_data_and_dropped_auth() {
    let mut a = Analytics::new(config());
    baseline(&mut a);
    let mut e = ex(6_000);
    e.auth = None;
    e.client = ClientIdentity { kind: IdentityKind::Peer, id: "10.0.0.66".into() };
    e.findings = vec![finding("iban", "response.body:$.iban", Side::Response, b"GB82WEST12345698765432")];
    let events = push(&mut a, &e);
    assert_eq!(
        kinds(&events),
        ["unauthenticated_sensitive_response", "new_sensitive_type", "auth_dropped", "new_client"]
    );
    let dropped = &events[2];
    assert_eq!(dropped.severity, Severity::High);
    assert_eq!(dropped.reason, "called without credentials; the 5 earlier exchanges all used bearer");
    // An error response with data is not "returned".
    let mut denied = e.clone();
    denied.client.id = "10.0.0.67".into();
    denied.http = 401;
    assert!(!kinds(&push(&mut a, &denied)).contains(&"unauthenticated_sensitive_response"));
}

#[test]
fn auth_scheme_change_and_new_client_after_a_baseline_only() {
    let mut a = Analytics::new(config());
    let mut early = ex(0);
    early.client = jwt("early");
    assert!(push(&mut a, &early).is_empty(), "no baseline yet: a new client is not news");
    baseline(&mut a);
    let mut e = ex(7_000);
    e.auth = Some("basic");
    e.client = ClientIdentity { kind: IdentityKind::Basic, id: "ops".into() };
    let events = push(&mut a, &e);
    assert_eq!(kinds(&events), ["auth_changed", "new_client"]);
    assert_eq!(events[0].reason, "called with basic; the 6 earlier exchanges all used bearer");
    assert_eq!(events[0].severity, Severity::Medium);
}

#[test]
fn new_endpoint_severity_follows_its_classification() {
    let mut a = Analytics::new(config());
    for (route, status, severity) in [
        ("/a", EndpointStatus::Documented, Severity::Info),
        ("/b", EndpointStatus::Shadow, Severity::Medium),
        ("/c", EndpointStatus::Unknown, Severity::Low),
    ] {
        let mut e = ex(0);
        e.route = route;
        e.status = status;
        e.new_endpoint = true;
        let events = push(&mut a, &e);
        assert_eq!((events[0].kind, events[0].severity), (Kind::NewEndpoint, severity), "{route}");
    }
}

#[test]
fn excess_types_and_unmasked_cards_compare_with_the_endpoint() {
    let mut a = Analytics::new(config());
    for i in 0..5 {
        let mut e = ex(i * 1_000);
        e.findings = vec![finding("iban", "response.body:$.iban", Side::Response, b"GB82WEST12345698765432")];
        e.masked_pan = true;
        push(&mut a, &e);
    }
    let mut e = ex(6_000);
    e.findings = vec![
        finding("iban", "response.body:$.iban", Side::Response, b"GB82WEST12345698765432"),
        finding("payment_card", "response.body:$.pan", Side::Response, b"4111111111111111"),
    ];
    let events = push(&mut a, &e);
    assert_eq!(kinds(&events), ["excess_sensitive_types", "unmasked_card_number", "new_sensitive_type"]);
    assert_eq!(
        events[0].reason,
        "response carried 2 sensitive types (iban, payment_card); usually 1 (iban) over 5 responses"
    );
    assert_eq!(events[1].severity, Severity::High);
    assert_eq!(
        events[1].reason,
        "card number returned unmasked (response.body:$.pan); 5 of 5 earlier responses masked card numbers"
    );
    assert!(events[1].value_hash.is_some());
}

#[test]
fn the_same_value_to_three_clients_is_one_finding_with_its_hash() {
    let mut a = Analytics::new(config());
    let card = finding("payment_card", "response.body:$.pan", Side::Response, b"4111111111111111");
    let mut seen = Vec::new();
    for (i, name) in ["a", "b", "a", "c", "d"].iter().enumerate() {
        let mut e = ex(i as u64);
        e.route = "/cards/{id}";
        e.client = jwt(name);
        e.findings = vec![card.clone()];
        seen.extend(push(&mut a, &e).into_iter().filter(|e| e.kind == Kind::ValueToManyClients));
    }
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].client, None);
    assert_eq!(seen[0].value_hash, card.value_hash.map(|h| h.to_string()));
    assert!(
        seen[0].reason.ends_with("returned to 3 clients: jwt:client_id=a, jwt:client_id=b, jwt:client_id=c")
    );
}

#[test]
fn old_versions_are_reported_whichever_came_first() {
    let mut a = Analytics::new(config());
    let mut old = ex(0);
    old.route = "/v3.1/accounts/ACC1";
    old.client = jwt("legacy");
    assert!(push(&mut a, &old).is_empty());
    let new = ex(1);
    let events = push(&mut a, &new);
    assert_eq!(kinds(&events), ["old_version_called"]);
    assert_eq!(events[0].endpoint, "GET bank/v3.1/accounts/ACC1");
    assert_eq!(events[0].client.as_deref(), Some("jwt:client_id=legacy"));
    old.ts = 2;
    assert!(push(&mut a, &old).is_empty(), "reported once");
    old.client = jwt("other");
    assert_eq!(push(&mut a, &old)[0].reason, "v3.1 called while v4.0 of the same operation is in use");
}

#[test]
fn deprecated_operations_and_unobserved_ones() {
    let mut a = Analytics::new(AnalyticsConfig { zombie_window_hours: 1, ..config() });
    let mut e = ex(0);
    e.status = EndpointStatus::Deprecated;
    let events = push(&mut a, &e);
    assert_eq!(kinds(&events), ["deprecated_operation_called"]);
    assert_eq!(events[0].reason, "operation marked deprecated in Account API is still called");
    let ops = vec![("Account API".to_owned(), "GET".to_owned(), "/v4.0/parties".to_owned())];
    assert!(push_with(&mut a, &ex(30 * 60_000), &ops).is_empty(), "within the window");
    let events = push_with(&mut a, &ex(61 * 60_000), &ops);
    assert_eq!(kinds(&events), ["unobserved_operation"]);
    assert_eq!(events[0].endpoint, "GET /v4.0/parties");
    assert!(push_with(&mut a, &ex(63 * 60_000), &ops).is_empty(), "once");
}

#[test]
fn silent_endpoints_are_reported_once_per_silence() {
    let mut a = Analytics::new(AnalyticsConfig { silent_after_hours: 1, ..config() });
    push(&mut a, &ex(0));
    let mut other = ex(2 * 3_600_000);
    other.route = "/other";
    let events = push(&mut a, &other);
    assert_eq!(kinds(&events), ["endpoint_silent"]);
    assert_eq!(events[0].reason, "no calls for 2 h, after 1 exchanges");
    other.ts += 120_000;
    assert!(push(&mut a, &other).is_empty());
}

#[test]
fn error_bursts_rate_spikes_and_size_jumps_once_per_window() {
    let cfg = AnalyticsConfig { min_window_requests: 10, ..config() };
    let mut a = Analytics::new(cfg);
    // Ten minutes at two requests a minute.
    for i in 0..20 {
        assert!(push(&mut a, &ex(i * 30_000)).is_empty());
    }
    let mut burst = Vec::new();
    for i in 0..12 {
        let mut e = ex(600_000 + i * 1_000);
        e.http = 503;
        burst.extend(push(&mut a, &e));
    }
    assert_eq!(kinds(&burst), ["error_burst", "rate_spike"]);
    assert_eq!(burst[0].reason, "5xx in 5 of 5 responses (100%) in 60 s, usually 0.0% over 20 exchanges");
    assert_eq!(burst[1].reason, "11 requests in 60 s, 5.5x the usual 2.0 per 60 s (over 10 windows)");
    let mut big = ex(700_000);
    big.size = 100_000;
    let events = push(&mut a, &big);
    assert_eq!(kinds(&events), ["response_size_jump"]);
    assert!(events[0].reason.starts_with("response of 100000 B, usually 1000 B"), "{}", events[0].reason);
}

#[test]
fn state_survives_a_restart_without_repeating_findings() {
    let mut a = Analytics::new(config());
    let mut e = ex(0);
    e.findings = vec![finding("payment_card", "request.query:pan", Side::Request, b"4111111111111111")];
    assert_eq!(push(&mut a, &e).len(), 1);
    let (endpoints, global) = a.take_dirty();
    let json = serde_json::to_string(&(endpoints, global)).unwrap();
    let (endpoints, global): (Vec<(String, state::EndpointState)>, Option<GlobalState>) =
        serde_json::from_str(&json).unwrap();
    let mut b = Analytics::new(config());
    b.restore(endpoints, global);
    e.ts = 5;
    assert!(push(&mut b, &e).is_empty());
    let report = b.report();
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].occurrences, 2);
    assert_eq!(report.clients[0].client, "jwt:client_id=a");
    assert_eq!(report.clients[0].exchanges, 2);
    let table = render_table(&report);
    assert!(table.contains("sensitive_in_url") && table.contains("jwt:client_id=a"), "{table}");
}

#[test]
fn config_values_are_checked() {
    assert!(AnalyticsConfig::default().validate().is_ok());
    let bad = AnalyticsConfig { rate_factor: 0.5, ..AnalyticsConfig::default() };
    assert!(bad.validate().unwrap_err().starts_with("rate_factor"));
    let bad = AnalyticsConfig { api_key_headers: vec!["x api".into()], ..AnalyticsConfig::default() };
    assert!(bad.validate().unwrap_err().starts_with("api_key_headers"));
    let parsed: AnalyticsConfig = serde_norway::from_str("zombie_window_hours: 48\n").unwrap();
    assert_eq!(parsed.zombie_window_hours, 48);
    assert_eq!(parsed.baseline_min_samples, 20);
    assert!(serde_norway::from_str::<AnalyticsConfig>("zombie_window: 48\n").is_err());
}
