//! Inventory-level tests, plus helpers shared by the per-file test modules.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::*;

/// A fresh empty directory under the system temp dir.
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let d = std::env::temp_dir().join(format!(
        "apisense-inv-{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `shared/testdata/openapi/obie`, found from `APISENSE_TESTDATA` or by walking up from the
/// crate directory (works for the scratch crate and for `sensor-agent` in the workspace).
pub(crate) fn obie_dir() -> PathBuf {
    if let Ok(d) = std::env::var("APISENSE_TESTDATA") {
        return PathBuf::from(d).join("openapi/obie");
    }
    let start = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in start.ancestors() {
        let cand = dir.join("shared/testdata/openapi/obie");
        if cand.is_dir() {
            return cand;
        }
    }
    panic!("shared/testdata/openapi/obie not found above {}; set APISENSE_TESTDATA", start.display());
}

/// Tiny deterministic PRNG (xorshift) for generated traffic.
pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            a & 0xffff,
            (b >> 52) & 0xfff,
            (b >> 40) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Fills `{Param}` placeholders with realistic OBIE-style ids.
pub(crate) fn concrete_path(template: &str, seed: u64) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    template
        .split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some("ConsentId") => format!("urn-alphabank-intent-{}", rng.next() % 1_000_000),
            Some("AccountId") => (10_000 + rng.next() % 90_000).to_string(),
            Some("StatementId") => format!("stmt-{}-{:02}", 2020 + rng.next() % 5, 1 + rng.next() % 12),
            Some(_) => rng.uuid(),
            None => seg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn obs<'a>(host: &'a str, method: &'a str, target: &'a str, status: u16) -> Observation<'a> {
    Observation {
        host,
        method,
        target,
        status: Some(status),
        client: "10.0.0.5",
        ts_unix_ms: 1_700_000_000_000,
        ..Observation::default()
    }
}

#[test]
fn shadow_precision_recall_on_obie_traffic() {
    let (specs, _) = Specs::load(&[obie_dir()]).unwrap();
    let ops: Vec<(String, String)> =
        specs.operations().map(|(_, m, t)| (m.to_owned(), t.to_owned())).collect();
    let mut inv = Inventory::new(Arc::new(specs), None);
    let shadow_templates = [
        "/open-banking/v4.0/aisp/accounts/{AccountId}/loans",
        "/open-banking/v4.0/pisp/domestic-payments/{X}/cancel",
        "/open-banking/v3.1/aisp/accounts/{AccountId}",
        "/open-banking/v4.0/aisp/accounts/{AccountId}/statements/{X}/pdf",
        "/internal/admin/users/{AccountId}",
        "/debug/pprof/heap",
        "/open-banking/v4.0/cbpii/funds-confirmations/{X}/audit",
        "/healthz",
        // near misses of documented paths
        "/open-banking/v4.0/aisp/accounts/{AccountId}/balances/history",
        "/open-banking/v4.0/aisp/Accounts",
        "/open-banking/v4.0/aisp/accounts/{AccountId}/statements/{X}/file/raw",
        "/open-banking/v4.0/pisp/domestic-payment-consents/{ConsentId}/funds-confirmation/retry",
    ];
    let mut rng = Rng(42);
    let (mut tp, mut fp, mut fneg) = (0u32, 0u32, 0u32);
    let mut tally = |truth: bool, predicted: bool| match (truth, predicted) {
        (true, true) => tp += 1,
        (false, true) => fp += 1,
        (true, false) => fneg += 1,
        (false, false) => {}
    };
    for i in 0..500u64 {
        let (m, t) = &ops[(rng.next() % ops.len() as u64) as usize];
        let path = concrete_path(t, i + 1);
        let c = inv.observe(&obs("ob.bank.example", m, &path, 200));
        assert_eq!(&c.route, t);
        tally(false, c.status == EndpointStatus::Shadow);
    }
    for i in 0..200u64 {
        let t = shadow_templates[(rng.next() % shadow_templates.len() as u64) as usize];
        let path = concrete_path(t, 10_000 + i);
        let c = inv.observe(&obs("ob.bank.example", "GET", &path, 200));
        tally(true, c.status == EndpointStatus::Shadow);
    }
    for _ in 0..50 {
        let c = inv.observe(&obs("ob.bank.example", "PATCH", "/open-banking/v4.0/aisp/accounts/123", 405));
        assert_eq!(c.status, EndpointStatus::UndocumentedMethod);
        tally(false, c.status == EndpointStatus::Shadow);
    }
    let precision = f64::from(tp) / f64::from(tp + fp).max(1.0);
    let recall = f64::from(tp) / f64::from(tp + fneg).max(1.0);
    println!("shadow label: tp={tp} fp={fp} fn={fneg} precision={precision:.4} recall={recall:.4}");
    assert!(precision >= 0.99 && recall >= 0.99);
    let shadow: Vec<EntryView> =
        inv.entries().into_iter().filter(|e| e.status == EndpointStatus::Shadow).collect();
    for e in &shadow {
        println!("shadow entry: {} {} x{}", e.method, e.route, e.count);
    }
    assert_eq!(shadow.len(), shadow_templates.len(), "shadow ids must be templated");
    assert_eq!(shadow.iter().map(|e| e.count).sum::<u64>(), 200);
    assert!(inv.entries()[0].status == EndpointStatus::Shadow);
    assert!(inv.unobserved().is_empty(), "500 random calls cover all 83 operations");
}

#[test]
fn inference_without_spec() {
    let mut inv = Inventory::new(Arc::new(Specs::empty()), None);
    let first = inv.observe(&obs("API.example.com", "get", "/users/123?x=1", 200));
    assert_eq!(
        (first.route.as_str(), first.status, first.new_endpoint),
        ("/users/{id}", EndpointStatus::Unknown, true)
    );
    assert!(!inv.observe(&obs("api.example.com", "GET", "/users/456/", 200)).new_endpoint);
    for i in 0..10_000 {
        let c = inv.observe(&obs("api.example.com", "GET", &format!("/users/{}", 1000 + i * 7), 200));
        assert_eq!(c.route, "/users/{id}");
    }
    assert_eq!(inv.len(), 1);
    assert_eq!(inv.entries()[0].count, 10_002);
    for (path, want) in [
        ("/users/me", "/users/me"),
        ("/v1/api", "/v1/api"),
        ("/orders/6fa459ea-ee8a-3ca4-894e-db77e160355e/items", "/orders/{uuid}/items"),
        ("/reports/2024-01-31", "/reports/{date}"),
        ("/people/jane.doe%40example.org", "/people/{email}"),
        ("/commits/da39a3ee5e6b4b0d3255bfef95601890afd80709", "/commits/{hash}"),
        ("/sessions/QmFzZTY0VG9rZW4xMjM0NTY3ODkw", "/sessions/{token}"),
    ] {
        let c = inv.observe(&obs("api.example.com", "GET", path, 200));
        assert_eq!(c.route, want, "{path}");
        assert!(c.new_endpoint);
    }
    // high cardinality: 25 user names -> the first 20 entries are merged into /users/{param}/posts
    for i in 0..25 {
        let c = inv.observe(&obs("api.example.com", "GET", &format!("/profiles/user{i}x/posts"), 200));
        if i < 20 {
            assert_eq!(c.route, format!("/profiles/user{i}x/posts"));
        } else {
            assert_eq!(c.route, "/profiles/{param}/posts");
        }
    }
    let posts: Vec<EntryView> =
        inv.entries().into_iter().filter(|e| e.route.starts_with("/profiles/")).collect();
    assert_eq!(posts.len(), 1);
    assert_eq!((posts[0].route.as_str(), posts[0].count), ("/profiles/{param}/posts", 25));
}

#[test]
fn bounded_memory() {
    let limits = Limits { max_entries: 10, max_clients: 3, param_threshold: 1000, ..Limits::default() };
    let mut inv = Inventory::with_limits(Arc::new(Specs::empty()), None, limits);
    for i in 0..50 {
        let _ = inv.observe(&obs("h", "GET", &format!("/r{i}x"), 200));
    }
    assert_eq!((inv.len(), inv.dropped()), (10, 40));
    for i in 0..10 {
        let client = format!("10.0.0.{i}");
        let status = 200 + i;
        let _ = inv.observe(&Observation { client: &client, ..obs("h", "GET", "/r0x", status) });
    }
    let e = inv.entries().into_iter().find(|e| e.route == "/r0x").unwrap();
    assert_eq!((e.clients.len(), e.clients_other, e.count), (3, 7, 11)); // 10.0.0.5 was already in
}

#[test]
fn store_round_trip_and_restart() {
    let dir = temp_dir("store-roundtrip");
    let path = dir.join("inventory.redb");
    let specs = Arc::new(Specs::empty());
    let body = json!({"email": "alice@example.com", "amount": 12.5, "items": [{"sku": "A-1"}]}).to_string();
    {
        let mut inv = Inventory::new(specs.clone(), Some(Store::open(&path).unwrap()));
        assert!(inv.load_error().is_none());
        for i in 0..5 {
            let target = format!("/orders/{i}");
            let o = Observation {
                auth_scheme: Some("Bearer"),
                sensitive: &["email"],
                request_json: Some(body.as_bytes()),
                ..obs("shop:8080", "POST", &target, 201)
            };
            assert_eq!(inv.observe(&o).new_endpoint, i == 0);
        }
        for i in 0..21 {
            let _ = inv.observe(&obs("shop:8080", "GET", &format!("/u/name{i}z"), 200));
        }
        inv.flush().unwrap();
        inv.flush().unwrap(); // nothing dirty: no-op
    }
    let mut inv =
        Inventory::open(specs.clone(), Some(Store::open(&path).unwrap()), Limits::default()).unwrap();
    assert_eq!(inv.len(), 2, "{:#?}", inv.entries());
    let c = inv.observe(&obs("shop:8080", "POST", "/orders/99", 201));
    assert!(!c.new_endpoint);
    let c = inv.observe(&obs("shop:8080", "GET", "/u/another", 200));
    assert_eq!((c.route.as_str(), c.new_endpoint), ("/u/{param}", false));
    let e = inv.entries().into_iter().find(|e| e.route == "/orders/{id}").unwrap();
    assert_eq!(e.count, 6);
    assert_eq!(e.auth_schemes.iter().collect::<Vec<_>>(), ["bearer"]);
    assert_eq!(e.status_codes.get(&201), Some(&6));
    assert!(e.request_schema.as_ref().unwrap().properties.contains_key("amount"));
    inv.flush().unwrap();
    drop(inv);
    let reloaded = Store::open(&path).unwrap().load().unwrap();
    assert_eq!(reloaded.iter().map(|e| e.count).sum::<u64>(), 6 + 22);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exports_have_no_body_values() {
    let (specs, _) = Specs::load(&[obie_dir()]).unwrap();
    let mut inv = Inventory::new(Arc::new(specs), None);
    let req = json!({"Data": {"Initiation": {"InstructedAmount": {"Amount": "165.88", "Currency": "GBP"},
        "CreditorAccount": {"Identification": "08080021325698", "Name": "ACME Inc"}}}, "Risk": {}})
    .to_string();
    let resp = json!({"Data": {"ConsentId": "58923", "Status": "AwaitingAuthorisation", "CreationDateTime": "2024-01-31T10:00:00Z"}}).to_string();
    for target in
        ["/open-banking/v4.0/pisp/domestic-payment-consents", "/open-banking/v4.0/pisp/secret-export/77"]
    {
        let o = Observation {
            request_json: Some(req.as_bytes()),
            response_json: Some(resp.as_bytes()),
            sensitive: &["iban", "name"],
            auth_scheme: Some("bearer"),
            ..obs("ob.bank.example", "POST", target, 201)
        };
        let _ = inv.observe(&o);
    }
    let entries = inv.entries();
    let doc = render_openapi(&entries);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    let preserve_order =
        serde_json::from_str::<Value>(r#"{"b":1,"a":2}"#).unwrap().as_object().unwrap().keys().next()
            == Some(&"b".to_owned());
    if preserve_order {
        // shadow first in `paths` itself
        assert_eq!(
            paths.keys().next().map(String::as_str),
            Some("/open-banking/v4.0/pisp/secret-export/{id}")
        );
    }
    assert_eq!(doc["x-apisense-shadow-paths"], json!(["/open-banking/v4.0/pisp/secret-export/{id}"]));
    let op = &paths["/open-banking/v4.0/pisp/secret-export/{id}"]["post"];
    assert_eq!(op["x-apisense-status"], "shadow");
    assert_eq!(op["parameters"][0]["name"], "id");
    assert!(
        op["responses"]["201"]["content"]["application/json"]["schema"]["properties"]["Data"].is_object()
    );
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let text = serde_json::to_string_pretty(&doc).unwrap();
    for value in
        ["165.88", "GBP", "08080021325698", "ACME", "58923", "AwaitingAuthorisation", "2024-01-31T10"]
    {
        assert!(!text.contains(value), "body value {value} leaked into the OpenAPI draft");
    }
    println!("{}", render_table(&entries));
    let json_out = render_json(&entries);
    assert!(!json_out.contains("08080021325698"));
    assert!(serde_json::from_str::<Vec<EntryView>>(&json_out).unwrap().len() == 2);
    let html = render_html(&entries, "OB inventory");
    assert!(html.contains("class=\"row shadow") && html.contains("class=\"row documented"));
    assert!(html.contains("id=\"summary\"") && html.contains("shadow: 1") && html.contains("documented: 1"));
    assert!(!html.contains("ACME"));
}

#[test]
fn unobserved_documented_operations() {
    let (specs, _) = Specs::load(&[obie_dir()]).unwrap();
    let total = specs.operations().count();
    let mut inv = Inventory::new(Arc::new(specs), None);
    assert_eq!(inv.unobserved().len(), total);
    let c = inv.observe(&obs("bank", "GET", "/open-banking/v4.0/aisp/accounts/22289/balances", 200));
    assert_eq!(c.operation_id.as_deref(), Some("GetAccountsAccountIdBalances"));
    let _ = inv.observe(&obs("bank", "GET", "/open-banking/v4.0/aisp/nope", 404));
    let unobserved = inv.unobserved();
    assert_eq!(unobserved.len(), total - 1);
    assert!(!unobserved.iter().any(|(_, m, t)| m == "GET" && t.ends_with("/accounts/{AccountId}/balances")));
    println!("first never-observed operations: {:?}", &unobserved[..3]);
}

#[test]
fn inventory_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Inventory>();
    assert_send::<Specs>();
}

#[test]
fn undocumented_status_is_sticky_per_entry() {
    let doc = json!({"openapi": "3.0.0", "info": {"title": "S", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}}});
    let (specs, _) = Specs::from_documents(&[("s.json", doc)]).unwrap();
    let mut inv = Inventory::new(Arc::new(specs), None);
    assert_eq!(inv.observe(&obs("h", "GET", "/a", 200)).status, EndpointStatus::Documented);
    assert_eq!(inv.observe(&obs("h", "GET", "/a", 503)).status, EndpointStatus::UndocumentedStatus);
    assert_eq!(inv.observe(&obs("h", "GET", "/a", 200)).status, EndpointStatus::Documented);
    let e = &inv.entries()[0];
    assert_eq!((e.status, e.count, e.status_codes.len()), (EndpointStatus::UndocumentedStatus, 3, 2));
}
