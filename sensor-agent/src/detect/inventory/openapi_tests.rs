//! Tests for spec loading and classification (unit tests of `openapi.rs`).

use super::super::parse_yaml;
use super::super::tests::{concrete_path, obie_dir, temp_dir};
use super::*;
use serde_json::json;
use std::collections::BTreeMap;

fn spec(doc: &Value) -> Specs {
    Specs::from_documents(&[("inline.json", doc.clone())]).unwrap().0
}

#[test]
fn obie_specs_load_and_every_operation_is_documented() {
    let (specs, report) = Specs::load(&[obie_dir()]).unwrap();
    println!(
        "loaded {} files, {} operations, skipped {:?}",
        report.files.len(),
        report.operations,
        report.skipped
    );
    assert_eq!(report.files.len(), 4);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    // per SOURCES.md: 29 + 41 + 4 + 9
    assert_eq!(report.operations, 83);
    let mut per_spec: BTreeMap<&str, usize> = BTreeMap::new();
    for (title, _, _) in specs.operations() {
        *per_spec.entry(title).or_default() += 1;
    }
    println!("operations per spec: {per_spec:?}");
    for (i, (title, method, template)) in specs.operations().enumerate() {
        let path = concrete_path(template, i as u64);
        let (m, status) = specs.classify("ob.bank.example:8443", method, &format!("{path}?page=2"), None);
        let m = m.unwrap_or_else(|| panic!("{method} {path} unmatched"));
        assert_eq!(status, EndpointStatus::Documented, "{method} {path}");
        assert_eq!(m.template, template, "{method} {path}");
        assert_eq!(m.spec, title);
        assert!(m.operation_id.is_some());
        // trailing slash tolerated
        assert_eq!(specs.classify("x", method, &format!("{path}/"), None).1, EndpointStatus::Documented);
    }
    let (m, st) = specs.classify("h", "GET", "/open-banking/v4.0/aisp/accounts/22289/balances", Some(200));
    assert_eq!(st, EndpointStatus::Documented);
    let m = m.unwrap();
    assert_eq!(m.spec_path, "/accounts/{AccountId}/balances");
    assert_eq!(m.operation_id.as_deref(), Some("GetAccountsAccountIdBalances"));
    assert_eq!(m.spec, "Account and Transaction API Specification");
    for (method, path, want) in [
        ("GET", "/open-banking/v4.0/aisp/accounts/22289/loans", EndpointStatus::Shadow),
        ("GET", "/open-banking/v3.1/aisp/accounts", EndpointStatus::Shadow),
        ("GET", "/admin/debug/vars", EndpointStatus::Shadow),
        ("GET", "/open-banking/v4.0/aisp", EndpointStatus::Shadow),
        ("DELETE", "/open-banking/v4.0/aisp/accounts", EndpointStatus::UndocumentedMethod),
        ("PUT", "/open-banking/v4.0/pisp/domestic-payments/P-1", EndpointStatus::UndocumentedMethod),
        ("GET", "/open-banking/v4.0/aisp/accounts/22289/balances", EndpointStatus::Documented),
    ] {
        assert_eq!(specs.classify("h", method, path, None).1, want, "{method} {path}");
    }
    // 418 is not in the responses and there is no default
    assert_eq!(
        specs.classify("h", "GET", "/open-banking/v4.0/aisp/accounts", Some(418)).1,
        EndpointStatus::UndocumentedStatus
    );
    // the OBIE v4 specs mark no operation deprecated (the inline test below covers it)
    let text = std::fs::read_to_string(obie_dir().join("account-info-openapi.yaml")).unwrap();
    assert!(!text.contains("deprecated: true"));
}

#[test]
fn deprecated_status_codes_and_literal_precedence() {
    let s = spec(&json!({
        "openapi": "3.1.0", "info": {"title": "Inline", "version": "1"},
        "paths": {
            "/users/{uid}": {"parameters": [{"name": "uid", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "get": {"operationId": "getUser", "responses": {"200": {"description": "ok"}, "4XX": {"description": "e"}}},
                "delete": {"deprecated": true, "responses": {"204": {"description": "gone"}}}},
            "/users/me": {"get": {"operationId": "me", "responses": {"default": {"description": "d"}}}},
            "/items/{item}": {"get": {"parameters": [{"name": "item", "in": "path", "schema": {"type": "string", "format": "uuid"}}]}},
        }
    }));
    let c = |m: &str, p: &str, st: Option<u16>| s.classify("any.host", m, p, st);
    assert_eq!(c("GET", "/users/me", Some(200)).0.unwrap().operation_id.as_deref(), Some("me"));
    assert_eq!(c("GET", "/users/me", Some(599)).1, EndpointStatus::Documented); // default
    assert_eq!(c("GET", "/users/42", Some(200)).0.unwrap().template, "/users/{uid}");
    assert_eq!(c("GET", "/users/42", Some(404)).1, EndpointStatus::Documented); // 4XX
    assert_eq!(c("GET", "/users/42", Some(500)).1, EndpointStatus::UndocumentedStatus);
    assert_eq!(c("GET", "/users/abc", None).1, EndpointStatus::Shadow); // integer param
    assert_eq!(c("DELETE", "/users/42", Some(204)).1, EndpointStatus::Deprecated);
    assert_eq!(c("POST", "/users/42", None).1, EndpointStatus::UndocumentedMethod);
    assert_eq!(
        c("GET", "/items/123e4567-e89b-12d3-a456-426614174000", Some(200)).1,
        EndpointStatus::Documented
    );
    assert_eq!(c("GET", "/items/not-a-uuid", None).1, EndpointStatus::Shadow);
    assert_eq!(c("get", "/users/%34%32/", None).1, EndpointStatus::Documented); // decoded "42"
}

#[test]
fn servers_base_path_and_hosts() {
    let v3 = json!({"openapi": "3.0.3", "info": {"title": "V3", "version": "1"},
        "servers": [{"url": "https://API.Example.com/{base}/v2", "variables": {"base": {"default": "svc"}}}],
        "paths": {"/ping": {"get": {}}}});
    let v2 = json!({"swagger": "2.0", "info": {"title": "V2", "version": "1"}, "host": "legacy.example.com:8080",
        "basePath": "/api/", "paths": {"/things/{n}": {"get": {"parameters": [{"name": "n", "in": "path", "type": "integer"}]}}}});
    let relative = json!({"openapi": "3.0.0", "info": {"title": "Rel", "version": "1"},
        "servers": [{"url": "/r"}], "paths": {"/x": {"post": {}}}});
    let (s, _) = Specs::from_documents(&[("a.json", v3), ("b.json", v2), ("c.json", relative)]).unwrap();
    assert_eq!(s.classify("api.example.com", "GET", "/svc/v2/ping", None).1, EndpointStatus::Documented);
    assert_eq!(s.classify("API.EXAMPLE.COM:443", "GET", "/svc/v2/ping", None).1, EndpointStatus::Documented);
    // Issue 19: the server prefix may be stripped by an ingress, and a host no spec claims gets
    // every spec (these two were `shadow` when specs applied to their server hosts only).
    assert_eq!(s.classify("api.example.com", "GET", "/ping", None).1, EndpointStatus::Documented);
    assert_eq!(s.classify("api.example.com", "GET", "/svc/v2/pong", None).1, EndpointStatus::Shadow);
    assert_eq!(s.classify("other.example.com", "GET", "/svc/v2/ping", None).1, EndpointStatus::Documented);
    assert_eq!(
        s.classify("legacy.example.com:8080", "GET", "/api/things/7", None).1,
        EndpointStatus::Documented
    );
    // The port is compared: legacy.example.com:9090 is a host no spec claims (any host).
    assert_eq!(
        s.classify_target(
            &Target { host: "legacy.example.com:9090", ..Target::default() },
            "GET",
            &["api", "things", "7"],
            None
        )
        .binding,
        Some(Binding::AnyHost)
    );
    assert_eq!(s.classify("legacy.example.com:8080", "GET", "/svc/v2/ping", None).1, EndpointStatus::Shadow);
    assert_eq!(s.classify("legacy.example.com:8080", "GET", "/api/things/x", None).1, EndpointStatus::Shadow);
    assert_eq!(s.classify("whatever", "POST", "/r/x", None).1, EndpointStatus::Documented);
    let host_only = spec(&json!({"openapi": "3.0.0", "info": {"title": "H", "version": "1"},
        "servers": [{"url": "https://only.example.com"}], "paths": {"/x": {"get": {}}}}));
    assert_eq!(host_only.classify("only.example.com", "GET", "/x", None).1, EndpointStatus::Documented);
    // Issue 19: a host no spec claims gets every spec (was `unknown`).
    assert_eq!(host_only.classify("elsewhere.example.com", "GET", "/x", None).1, EndpointStatus::Documented);
    assert_eq!(Specs::empty().classify("h", "GET", "/x", None), (None, EndpointStatus::Unknown));
    assert!(Specs::empty().is_empty());
}

#[test]
fn malformed_specs_are_errors_naming_file_and_place() {
    let dir = temp_dir("malformed-specs");
    let cases: [(&str, &str, &[&str]); 7] = [
        ("bad.yaml", "openapi: 3.0.0\npaths:\n  /a: [unclosed\n", &["bad.yaml:", "invalid YAML", "line 3"]),
        ("array.json", "[1, 2, 3]", &["array.json", "an array"]),
        (
            "nopaths.yaml",
            "openapi: 3.0.0\ninfo: {title: t, version: '1'}\n",
            &["nopaths.yaml", "/paths", "missing"],
        ),
        ("wrongpaths.yaml", "openapi: 3.0.0\npaths: 42\n", &["wrongpaths.yaml", "/paths", "a number"]),
        ("notopenapi.yaml", "name: hello\nversion: 2\n", &["notopenapi.yaml", "not an OpenAPI"]),
        ("badop.yaml", "openapi: 3.0.0\npaths:\n  /a:\n    get: 7\n", &["badop.yaml", "/paths/~1a/get"]),
        ("badjson.json", "{\"openapi\": \"3.0.0\",\n \"paths\": {,}}", &["badjson.json", ":2:"]),
    ];
    for (name, text, needles) in cases {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let err = Specs::load(std::slice::from_ref(&p)).err().unwrap_or_else(|| panic!("{name} must fail"));
        let msg = err.to_string();
        println!("{msg}");
        for n in needles {
            assert!(msg.contains(n), "{name}: {msg:?} lacks {n:?}");
        }
    }
    let missing = Specs::load(&[dir.join("does-not-exist.yaml")]).err().unwrap().to_string();
    assert!(missing.contains("does-not-exist.yaml"), "{missing}");

    let refs = dir.join("refs.yaml");
    std::fs::write(
        &refs,
        "openapi: 3.0.0\ninfo: {title: Refs, version: '1'}\npaths:\n  /a/{id}:\n    parameters:\n\
         \x20     - $ref: '#/components/parameters/Nope'\n    get: {}\n  /b:\n    $ref: 'other.yaml#/paths/~1b'\n\
         \x20 /c/{cid}:\n    get:\n      parameters:\n        - $ref: '#/components/parameters/Cid'\n\
         components:\n  parameters:\n    Cid: {name: cid, in: path, required: true, schema: {type: integer}}\n",
    )
    .unwrap();
    let (s, report) = Specs::load(&[refs]).unwrap();
    println!("skipped: {:?}", report.skipped);
    assert_eq!(report.operations, 2);
    assert_eq!(report.skipped.len(), 2);
    assert!(
        report.skipped.iter().any(|m| m.contains("refs.yaml") && m.contains("#/components/parameters/Nope"))
    );
    assert!(report.skipped.iter().any(|m| m.contains("other.yaml")));
    assert_eq!(s.classify("h", "GET", "/a/anything", None).1, EndpointStatus::Documented);
    assert_eq!(s.classify("h", "GET", "/c/12", None).1, EndpointStatus::Documented);
    assert_eq!(s.classify("h", "GET", "/c/xx", None).1, EndpointStatus::Shadow);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn yaml_oddities_do_not_panic() {
    for text in [
        "",
        "~",
        "- a\n- b",
        "openapi: 3.0.0\npaths: {? [a, b] : 1}",
        "a: &x [*x]",
        "openapi: [3]\npaths: {}",
    ] {
        let r = parse_yaml(text, "t.yaml").and_then(|v| Specs::from_documents(&[("t.yaml", v)]));
        assert!(r.is_err(), "{text:?}");
    }
    let ok = parse_yaml(
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses: {200: {description: x}}\n",
        "t",
    )
    .unwrap();
    let (s, _) = Specs::from_documents(&[("t", ok)]).unwrap();
    assert_eq!(s.classify("h", "GET", "/a", Some(200)).1, EndpointStatus::Documented);
    assert_eq!(s.classify("h", "GET", "/a", Some(201)).1, EndpointStatus::UndocumentedStatus);
}
