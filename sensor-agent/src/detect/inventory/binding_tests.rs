//! Spec binding (config, host, any host), stripped server prefixes and ranking across specs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::binding::{BindingError, HostPattern, KubeSelector, PrefixMode, SpecRule};
use super::tests::obie_dir;
use super::{Binding, EndpointStatus, Inventory, Observation, Specs, Target, split_path};
use Binding::{AnyHost, Config, Host};
use EndpointStatus::{Documented, Shadow, UndocumentedMethod};

fn get(responses: bool) -> Value {
    if responses { json!({"responses": {"200": {"description": "ok"}}}) } else { json!({}) }
}

/// A published spec naming its public server, and an internal one with a relative server.
fn bank_specs() -> Specs {
    let psd2 = json!({"openapi": "3.0.3", "info": {"title": "PSD2", "version": "1"},
    "servers": [{"url": "https://api.bank.example/psd2"}],
    "paths": {
        "/accounts": {"get": get(true)},
        "/accounts/{accountId}": {"get": get(true)},
        "/accounts/{accountId}/balances": {"get": get(true)},
        "/payments": {"post": get(false)},
    }});
    let internal = json!({"openapi": "3.0.3", "info": {"title": "Internal", "version": "1"},
        "servers": [{"url": "/internal/v1"}],
        "paths": {"/users/{id}": {"get": get(true)}}});
    Specs::from_documents(&[("specs/psd2.json", psd2), ("specs/internal.json", internal)]).unwrap().0
}

fn verdict(
    s: &Specs,
    host: &str,
    port: Option<u16>,
    method: &str,
    path: &str,
) -> (EndpointStatus, String, Option<Binding>) {
    let v = s.classify_target(&Target { host, port, pod: None }, method, &split_path(path), Some(200));
    (v.status, v.route.map(|r| format!("{}:{}", r.spec, r.template)).unwrap_or_default(), v.binding)
}

#[test]
fn specs_follow_the_traffic_to_other_hosts_with_and_without_prefix() {
    let s = bank_specs();
    for (host, method, path, want, route, binding) in [
        (
            "127.0.0.1:8080",
            "GET",
            "/psd2/accounts/42",
            Documented,
            "PSD2:/psd2/accounts/{accountId}",
            AnyHost,
        ),
        ("127.0.0.1:8080", "GET", "/accounts/42", Documented, "PSD2:/accounts/{accountId}", AnyHost),
        (
            "127.0.0.1:8080",
            "GET",
            "/accounts/42/balances/",
            Documented,
            "PSD2:/accounts/{accountId}/balances",
            AnyHost,
        ),
        (
            "127.0.0.1:8080",
            "GET",
            "/internal/v1/users/7",
            Documented,
            "Internal:/internal/v1/users/{id}",
            AnyHost,
        ),
        ("127.0.0.1:8080", "GET", "/users/7", Documented, "Internal:/users/{id}", AnyHost),
        ("127.0.0.1:8080", "GET", "/psd2/acounts/42", Shadow, "", AnyHost),
        ("127.0.0.1:8080", "GET", "/admin/export", Shadow, "", AnyHost),
        (
            "127.0.0.1:8080",
            "DELETE",
            "/accounts/42",
            UndocumentedMethod,
            "PSD2:/accounts/{accountId}",
            AnyHost,
        ),
        ("127.0.0.1:8080", "PUT", "/psd2/payments", UndocumentedMethod, "PSD2:/psd2/payments", AnyHost),
        // Its own host: bound by host; the relative spec still applies there.
        ("api.bank.example", "GET", "/psd2/accounts", Documented, "PSD2:/psd2/accounts", Host),
        ("API.bank.example:443", "GET", "/accounts", Documented, "PSD2:/accounts", Host),
        (
            "api.bank.example",
            "GET",
            "/internal/v1/users/7",
            Documented,
            "Internal:/internal/v1/users/{id}",
            AnyHost,
        ),
        ("api.bank.example", "GET", "/psd2/debug", Shadow, "", Host),
    ] {
        let got = verdict(&s, host, None, method, path);
        assert_eq!(got, (want, route.to_owned(), Some(binding)), "{method} {host}{path}");
    }
    assert_eq!(Specs::empty().classify_target(&Target::default(), "GET", &["x"], None).binding, None);
}

#[test]
fn config_rules_bind_exactly_where_they_say() {
    let mut s = bank_specs();
    let hosts = vec![HostPattern::parse("10.0.0.5").unwrap()];
    let rule =
        SpecRule::new("psd2.json".into(), hosts, vec![8080], KubeSelector::default(), PrefixMode::Stripped);
    s.bind(vec![rule.unwrap()]).unwrap();
    for (host, port, method, path, want, route, binding) in [
        ("10.0.0.5:8080", None, "GET", "/accounts/42", Documented, "PSD2:/accounts/{accountId}", Config),
        ("10.0.0.5", Some(8080), "GET", "/accounts", Documented, "PSD2:/accounts", Config),
        ("10.0.0.5:8080", None, "POST", "/accounts", UndocumentedMethod, "PSD2:/accounts", Config),
        // Stripped only: the prefixed reading is not how this deployment is called.
        ("10.0.0.5:8080", None, "GET", "/psd2/accounts/42", Shadow, "", Config),
        // The config rule decides alone: the internal spec does not apply on that host.
        ("10.0.0.5:8080", None, "GET", "/internal/v1/users/7", Shadow, "", Config),
        // Another port of the same host is not bound; the ruled spec never floats to it.
        ("10.0.0.5:9090", None, "GET", "/accounts/42", Shadow, "", AnyHost),
        (
            "10.0.0.5:9090",
            None,
            "GET",
            "/internal/v1/users/7",
            Documented,
            "Internal:/internal/v1/users/{id}",
            AnyHost,
        ),
    ] {
        assert_eq!(
            verdict(&s, host, port, method, path),
            (want, route.to_owned(), Some(binding)),
            "{method} {host}{path}"
        );
    }
    // Still bound by its server host.
    assert_eq!(verdict(&s, "api.bank.example", None, "GET", "/psd2/accounts").2, Some(Binding::Host));

    let by_title =
        SpecRule::new("Internal".into(), vec![], vec![9000], KubeSelector::default(), PrefixMode::Present);
    let mut s = bank_specs();
    s.bind(vec![by_title.unwrap()]).unwrap();
    assert_eq!(verdict(&s, "x:9000", None, "GET", "/internal/v1/users/1").0, Documented);
    assert_eq!(verdict(&s, "x:9000", None, "GET", "/users/1").0, Shadow);
    let unknown =
        SpecRule::new("nope.yaml".into(), vec![], vec![1], KubeSelector::default(), PrefixMode::Either);
    assert_eq!(
        bank_specs().bind(vec![unknown.unwrap()]),
        Err((0, BindingError::UnknownSpec("nope.yaml".into())))
    );
    let summaries = s.summaries();
    assert_eq!(summaries[0].hosts, ["api.bank.example"]);
    assert_eq!(summaries[0].servers, ["api.bank.example/psd2"]);
    assert_eq!(summaries[0].operations, 4);
    assert_eq!(summaries[1].rules, ["ports 9000, server prefix present"]);
}

#[test]
fn kubernetes_rules_use_the_pod_of_the_server() {
    let mut s = bank_specs();
    let labels = BTreeMap::from([("app".to_owned(), "psd2".to_owned())]);
    let k = KubeSelector { namespace: Some("bank".into()), labels: labels.clone(), service: None };
    s.bind(vec![SpecRule::new("PSD2".into(), vec![], vec![], k, PrefixMode::Either).unwrap()]).unwrap();
    let pod = super::PodView { namespace: "bank", labels: &labels };
    let v = s.classify_target(
        &Target { host: "10.1.0.9:8080", port: Some(8080), pod: Some(pod) },
        "GET",
        &["accounts"],
        None,
    );
    assert_eq!((v.status, v.binding), (EndpointStatus::Documented, Some(Binding::Config)));
    let v = s.classify_target(
        &Target { host: "10.1.0.9:8080", port: Some(8080), pod: None },
        "GET",
        &["accounts"],
        None,
    );
    assert_eq!((v.status, v.binding), (EndpointStatus::Shadow, Some(Binding::AnyHost)));
}

#[test]
fn templated_leading_segments_lose_to_literals_at_every_depth() {
    // Berlin Group NextGenPSD2 shape: the first segments are parameters.
    let pis = json!({"openapi": "3.0.1", "info": {"title": "PIS", "version": "1"}, "servers": [{"url": "/v1"}],
    "paths": {
        "/{payment-service}/{payment-product}": {"post": get(false)},
        "/{payment-service}/{payment-product}/{paymentId}": {"get": get(false), "delete": get(false)},
        "/{payment-service}/{payment-product}/{paymentId}/status": {"get": get(false)},
    }});
    let ais = json!({"openapi": "3.0.1", "info": {"title": "AIS", "version": "1"}, "servers": [{"url": "/v1"}],
    "paths": {
        "/accounts": {"get": get(false)},
        "/accounts/{account-id}": {"get": get(false)},
        "/accounts/{account-id}/transactions": {"get": get(false)},
    }});
    for order in [
        [("pis.json", pis.clone()), ("ais.json", ais.clone())],
        [("ais.json", ais.clone()), ("pis.json", pis.clone())],
    ] {
        let (s, _) = Specs::from_documents(&order).unwrap();
        let c = |m: &str, p: &str| {
            let v =
                s.classify_target(&Target { host: "10.0.0.5", ..Target::default() }, m, &split_path(p), None);
            (v.status, v.route.map(|r| format!("{}:{}", r.spec, r.template)).unwrap_or_default())
        };
        let d = |r: &str| (Documented, r.to_owned());
        assert_eq!(
            c("GET", "/v1/accounts/DE89/transactions"),
            d("AIS:/v1/accounts/{account-id}/transactions")
        );
        assert_eq!(c("GET", "/v1/accounts/DE89"), d("AIS:/v1/accounts/{account-id}"));
        assert_eq!(c("GET", "/accounts/DE89"), d("AIS:/accounts/{account-id}"));
        assert_eq!(
            c("GET", "/v1/payments/sepa-credit-transfers/P1"),
            d("PIS:/v1/{payment-service}/{payment-product}/{paymentId}")
        );
        assert_eq!(
            c("GET", "/v1/payments/sepa-credit-transfers/P1/status"),
            d("PIS:/v1/{payment-service}/{payment-product}/{paymentId}/status")
        );
        // Only the template fits where AIS has the literal `accounts`: still documented, by it.
        assert_eq!(c("POST", "/v1/accounts/DE89"), d("PIS:/v1/{payment-service}/{payment-product}"));
        assert_eq!(c("GET", "/v1/accounts/DE89/status/x"), (Shadow, String::new()));
        assert_eq!(
            c("PATCH", "/v1/accounts/DE89"),
            (UndocumentedMethod, "AIS:/v1/accounts/{account-id}".to_owned())
        );
        // Only the stripped reading documents these (the prefixed one has too few segments, or
        // not the method).
        assert_eq!(
            c("GET", "/v1/periodic-payments/x"),
            d("PIS:/{payment-service}/{payment-product}/{paymentId}")
        );
        assert_eq!(c("POST", "/v1/periodic-payments"), d("PIS:/{payment-service}/{payment-product}"));
    }
    // When both readings document the call, the longer one (prefix present) wins.
    let both = json!({"openapi": "3.0.1", "info": {"title": "B", "version": "1"}, "servers": [{"url": "/api"}],
        "paths": {"/{a}": {"get": get(false)}, "/{a}/{b}": {"get": get(false)}}});
    let (s, _) = Specs::from_documents(&[("b.json", both)]).unwrap();
    assert_eq!(s.classify("h", "GET", "/api/x", None).0.unwrap().template, "/api/{a}");
    assert_eq!(s.classify("h", "GET", "/x", None).0.unwrap().template, "/{a}");
}

#[test]
fn ties_are_resolved_the_same_way_every_time() {
    let spec = |title: &str, path: &str| json!({"openapi": "3.0.0", "info": {"title": title, "version": "1"}, "paths": {path: {"get": {}}}});
    // Same specificity, same binding: the spec loaded first (file order) wins.
    let (s, _) =
        Specs::from_documents(&[("a.json", spec("A", "/{x}/items")), ("b.json", spec("B", "/{y}/items"))])
            .unwrap();
    for _ in 0..10 {
        assert_eq!(s.classify("h", "GET", "/shop/items", None).0.unwrap().spec, "A");
    }
    // A literal at the first differing depth wins, whichever spec has it.
    let (s, _) =
        Specs::from_documents(&[("a.json", spec("A", "/{a}/b")), ("b.json", spec("B", "/a/{b}"))]).unwrap();
    assert_eq!(s.classify("h", "GET", "/a/b", None).0.unwrap().spec, "B");
    let (s, _) = Specs::from_documents(&[
        ("a.json", spec("A", "/{s}/accounts")),
        ("b.json", spec("B", "/{s}/{thing}")),
    ])
    .unwrap();
    assert_eq!(s.classify("h", "GET", "/x/accounts", None).0.unwrap().spec, "A");
    assert_eq!(s.classify("h", "GET", "/x/cards", None).0.unwrap().spec, "B");
}

#[test]
fn stripped_calls_count_as_observed_and_keep_their_host() {
    let (specs, _) = Specs::load(&[obie_dir()]).unwrap();
    let mut inv = Inventory::new(Arc::new(specs), None);
    let before = inv.unobserved().len();
    let obs = Observation {
        host: "10.0.0.5:8080",
        method: "GET",
        target: "/accounts/22289/balances",
        status: Some(200),
        ..Observation::default()
    };
    let c = inv.observe(&obs);
    assert_eq!(
        (c.status, c.route.as_str(), c.binding),
        (EndpointStatus::Documented, "/accounts/{AccountId}/balances", Some(Binding::AnyHost))
    );
    assert_eq!(inv.unobserved().len(), before - 1);
    assert!(
        !inv.unobserved()
            .iter()
            .any(|(_, m, t)| m == "GET" && t == "/open-banking/v4.0/aisp/accounts/{AccountId}/balances")
    );
    assert_eq!(inv.entries()[0].host, "10.0.0.5:8080");
}

#[test]
fn spec_hosts_never_seen_are_listed_until_seen() {
    let mut inv = Inventory::new(Arc::new(bank_specs()), None);
    assert_eq!(inv.specs_hosts_unseen(), vec![("PSD2", &["api.bank.example".to_owned()][..])]);
    let _ = inv.observe(&Observation {
        host: "10.0.0.5",
        method: "GET",
        target: "/accounts",
        ..Observation::default()
    });
    assert_eq!(inv.specs_hosts_unseen().len(), 1);
    let _ = inv.observe(&Observation {
        host: "api.bank.example:443",
        method: "GET",
        target: "/psd2/accounts",
        ..Observation::default()
    });
    assert!(inv.specs_hosts_unseen().is_empty());
}
