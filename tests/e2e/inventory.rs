//! The endpoint inventory end to end: real traffic classified against the Open Banking specs,
//! persisted, printed and rendered.
use std::{path::PathBuf, process::Command};

use serde_json::Value;

use crate::harness::{self, Agent, agent_bin, str_at};

fn obie(name: &str) -> PathBuf {
    let mut dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let candidate = dir.join("shared/testdata/openapi/obie").join(name);
        if candidate.exists() {
            return candidate;
        }
        assert!(dir.pop(), "shared/testdata/openapi/obie/{name} not found above the crate");
    }
}

fn endpoint_status(e: &Value) -> &str {
    str_at(e, "/endpoint_status")
}

#[test]
fn kernel_open_banking_traffic_is_classified_and_inventoried() {
    if !harness::kernel_available("kernel_open_banking_traffic_is_classified_and_inventoried") {
        return;
    }
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let spec = obie("account-info-openapi.yaml");
    let mut agent = Agent::start(&["--port", &port.to_string(), "--openapi", &spec.display().to_string()]);
    let base = format!("http://127.0.0.1:{port}/open-banking/v4.0/aisp");
    for id in ["acc-001", "acc-002", "acc-003"] {
        harness::curl_ok(&["-H", "Authorization: Bearer t0k3n", &format!("{base}/accounts/{id}/balances")]);
    }
    harness::curl_ok(&["-X", "DELETE", &format!("{base}/accounts/acc-001")]);
    for user in 1..=3 {
        harness::curl_ok(&[&format!("http://127.0.0.1:{port}/internal/debug/users/{user}")]);
    }
    let seen =
        agent.wait_for("7 server-side exchanges", |e| str_at(e, "/role") == "server", |s| s.len() >= 7);
    let balances: Vec<&Value> =
        seen.iter().filter(|e| str_at(e, "/request/path").ends_with("/balances")).collect();
    assert_eq!(balances.len(), 3);
    for e in &balances {
        assert_eq!(endpoint_status(e), "documented", "{e}");
        assert_eq!(str_at(e, "/route"), "/open-banking/v4.0/aisp/accounts/{AccountId}/balances");
        assert_eq!(str_at(e, "/operation_id"), "GetAccountsAccountIdBalances");
    }
    let delete = seen.iter().find(|e| str_at(e, "/request/method") == "DELETE").unwrap();
    assert_eq!(endpoint_status(delete), "undocumented_method", "{delete}");
    let shadow: Vec<&Value> =
        seen.iter().filter(|e| str_at(e, "/request/path").starts_with("/internal/")).collect();
    assert_eq!(shadow.len(), 3);
    for e in &shadow {
        assert_eq!(endpoint_status(e), "shadow", "{e}");
    }
    let log = agent.stop();
    // One discovery line for the shadow endpoint, not one per call.
    assert_eq!(log.matches("new shadow endpoint").count(), 1, "{log}");
    assert!(log.contains("new undocumented_method endpoint"), "{log}");

    let state = agent.dir().join("state");
    let out = Command::new(agent_bin())
        .args(["inventory", "--format", "json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries: Vec<Value> = doc["endpoints"].as_array().unwrap().clone();
    assert!(doc["findings"].is_array() && doc["clients"].is_array(), "{doc}");
    let server_entries: Vec<&Value> = entries
        .iter()
        .filter(|e| e["clients"].as_array().is_some_and(|c| c.iter().any(|c| c == "127.0.0.1")))
        .collect();
    let balance = server_entries.iter().find(|e| str_at(e, "/route").ends_with("/balances")).unwrap();
    assert_eq!(balance["count"], 3);
    assert_eq!(balance["status"], "documented");
    assert!(balance["auth_schemes"].as_array().unwrap().iter().any(|s| s == "bearer"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("t0k3n"));
    let users: Vec<&&Value> =
        server_entries.iter().filter(|e| str_at(e, "/route").starts_with("/internal/")).collect();
    assert_eq!(users.len(), 1, "three user ids are one endpoint: {users:#?}");
    assert_eq!(users[0]["status"], "shadow");

    let table = Command::new(agent_bin()).args(["inventory", "--state-dir"]).arg(&state).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("shadow") && table.contains("/balances"), "{table}");

    let openapi = Command::new(agent_bin())
        .args(["inventory", "--format", "openapi", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&openapi.stdout).unwrap();
    assert!(str_at(&doc, "/openapi").starts_with("3.1"));
    assert!(doc["paths"].as_object().unwrap().keys().any(|p| p.starts_with("/internal/debug/users/")));

    let page = agent.dir().join("report.html");
    let out = Command::new(agent_bin())
        .args(["report", "--html"])
        .arg(&page)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("row shadow") && html.contains("id=\"summary\""));
    check_in_chromium(&page);
}

/// Renders the report in headless Chromium (scripts run): the DOM has the shadow row and the
/// counts, and a screenshot is kept under target/e2e-artifacts for a person to look at.
fn check_in_chromium(page: &std::path::Path) {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        assert!(std::env::var_os("APISENSE_E2E").is_none(), "chromium is required under cargo xtask test");
        eprintln!("chromium not installed: report not rendered");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let common = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let url = format!("file://{}", page.display());
    let mut dump = Command::new(chromium);
    common(&mut dump);
    let out = dump.args(["--dump-dom", &url]).output().unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("class=\"row shadow"), "no shadow row in the rendered page");
    assert!(dom.contains("/internal/debug/users/"), "the shadow route is shown");
    assert!(dom.contains(">shadow: 1<"), "summary counts one shadow endpoint");
    assert!(dom.contains(">undocumented_method: 1<"), "summary counts the undocumented method");
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("inventory-report.png");
    let _ = std::fs::remove_file(&shot);
    let mut screenshot = Command::new(chromium);
    common(&mut screenshot);
    let out = screenshot
        .args(["--window-size=1280,900", "--hide-scrollbars"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium screenshot: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000), "screenshot written");
}

#[test]
fn a_malformed_spec_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.yaml");
    std::fs::write(&bad, "openapi: 3.0.0\npaths: [unclosed\n").unwrap();
    // Specs are read before anything is attached: the error comes first, with or without root.
    let out = Command::new(agent_bin())
        .args(["run", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--openapi")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml"), "{err}");
}

/// A published spec naming its public server (`https://api.bank.example/psd2/v1`), its first
/// segments templated as the Berlin Group's `NextGenPSD2` does (`payment-service` an enum).
const PSD2_SPEC: &str = r"openapi: 3.0.3
info: {title: PSD2 Gateway, version: '1'}
servers:
  - url: https://api.bank.example/psd2/v1
components:
  parameters:
    service:
      {name: payment-service, in: path, required: true, schema: {type: string, enum: [payments, bulk-payments, periodic-payments]}}
    product: {name: payment-product, in: path, required: true, schema: {type: string}}
    id: {name: paymentId, in: path, required: true, schema: {type: string}}
paths:
  /{payment-service}/{payment-product}:
    parameters: [{$ref: '#/components/parameters/service'}, {$ref: '#/components/parameters/product'}]
    post: {operationId: initiatePayment, responses: {'200': {description: ok}}}
  /{payment-service}/{payment-product}/{paymentId}/status:
    parameters:
      [{$ref: '#/components/parameters/service'}, {$ref: '#/components/parameters/product'}, {$ref: '#/components/parameters/id'}]
    get: {operationId: getPaymentStatus, responses: {'200': {description: ok}}}
  /consents/{consentId}:
    get: {operationId: getConsent, responses: {'200': {description: ok}}}
";

/// (method, path, `endpoint_status`, route, `spec_binding`) of each call, sent in this order.
type Call = (&'static str, &'static str, &'static str, &'static str, &'static str);

/// Sends `calls` to 127.0.0.1:`port`, then checks each exchange's classification.
fn send_and_check(agent: &Agent, port: u16, calls: &[Call]) {
    for (method, path, ..) in calls {
        harness::curl_ok(&["-X", method, &format!("http://127.0.0.1:{port}{path}")]);
    }
    let seen = agent.wait_for("every call", |e| str_at(e, "/role") == "server", |s| s.len() >= calls.len());
    for (method, path, status, route, binding) in calls {
        let e = seen
            .iter()
            .find(|e| str_at(e, "/request/method") == *method && str_at(e, "/request/path") == *path)
            .unwrap_or_else(|| panic!("no exchange for {method} {path}"));
        assert_eq!(endpoint_status(e), *status, "{method} {path}: {e}");
        assert_eq!(str_at(e, "/spec_binding"), *binding, "{method} {path}: {e}");
        if !route.is_empty() {
            assert_eq!(str_at(e, "/route"), *route, "{method} {path}: {e}");
        }
    }
}

#[test]
fn kernel_specs_follow_the_deployment_host_and_stripped_prefix() {
    if !harness::kernel_available("kernel_specs_follow_the_deployment_host_and_stripped_prefix") {
        return;
    }
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let dir = tempfile::tempdir().unwrap();
    let psd2 = dir.path().join("psd2.yaml");
    std::fs::write(&psd2, PSD2_SPEC).unwrap();
    let obie_spec = obie("account-info-openapi.yaml");
    let mut agent = Agent::start(&[
        "--port",
        &port.to_string(),
        "--openapi",
        &obie_spec.display().to_string(),
        "--openapi",
        &psd2.display().to_string(),
    ]);
    // 127.0.0.1 is a host neither spec names: both apply (any_host), prefix present or not.
    let aisp = "Account and Transaction API Specification";
    send_and_check(
        &agent,
        port,
        &[
            (
                "GET",
                "/open-banking/v4.0/aisp/accounts/acc-1/balances",
                "documented",
                "/open-banking/v4.0/aisp/accounts/{AccountId}/balances",
                "any_host",
            ),
            ("GET", "/accounts/acc-1/balances", "documented", "/accounts/{AccountId}/balances", "any_host"),
            (
                "POST",
                "/psd2/v1/payments/sepa-credit-transfers",
                "documented",
                "/psd2/v1/{payment-service}/{payment-product}",
                "any_host",
            ),
            (
                "GET",
                "/payments/sepa-credit-transfers/P-1/status",
                "documented",
                "/{payment-service}/{payment-product}/{paymentId}/status",
                "any_host",
            ),
            ("GET", "/psd2/v1/consents/C-1", "documented", "/psd2/v1/consents/{consentId}", "any_host"),
            ("GET", "/consents/C-2", "documented", "/consents/{consentId}", "any_host"),
            ("GET", "/open-banking/v4.0/aisp/acounts/acc-1/balances", "shadow", "", "any_host"),
            ("GET", "/psd2/v1/paymentz/sepa-credit-transfers/P-1/status", "shadow", "", "any_host"),
            ("GET", "/internal/debug/users/7", "shadow", "", "any_host"),
            (
                "DELETE",
                "/open-banking/v4.0/aisp/accounts/acc-1",
                "undocumented_method",
                "/open-banking/v4.0/aisp/accounts/{AccountId}",
                "any_host",
            ),
            (
                "PUT",
                "/psd2/v1/consents/C-1",
                "undocumented_method",
                "/psd2/v1/consents/{consentId}",
                "any_host",
            ),
        ],
    );
    let balance = agent
        .exchanges()
        .into_iter()
        .find(|e| str_at(e, "/request/path") == "/accounts/acc-1/balances")
        .unwrap();
    assert_eq!(str_at(&balance, "/spec"), aisp);
    let log = agent.stop();
    assert!(log.contains("spec \"PSD2 Gateway\"") && log.contains("binding: host api.bank.example"), "{log}");
    // The inventory keeps the host the traffic had.
    let out = Command::new(agent_bin())
        .args(["inventory", "--format", "json", "--state-dir"])
        .arg(agent.dir().join("state"))
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = doc["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| str_at(e, "/route") == "/accounts/{AccountId}/balances")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(str_at(entry, "/host"), format!("127.0.0.1:{port}"));
    assert_eq!(entry["status"], "documented");
}

#[test]
fn kernel_config_binding_decides_where_specs_apply() {
    if !harness::kernel_available("kernel_config_binding_decides_where_specs_apply") {
        return;
    }
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("psd2.yaml"), PSD2_SPEC).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "openapi: [{obie}, psd2.yaml]\nspec_binding:\n  rules:\n    - spec: psd2.yaml\n      hosts: [127.0.0.1]\n      \
             ports: [{port}]\n      server_prefix: stripped\n    - spec: Account and Transaction API Specification\n      \
             hosts: ['127.0.0.1:{port}']\n      server_prefix: present\n",
            obie = obie("account-info-openapi.yaml").display()
        ),
    )
    .unwrap();
    let check = Command::new(agent_bin()).args(["config", "check"]).arg(&config).output().unwrap();
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{printed}{}", String::from_utf8_lossy(&check.stderr));
    assert!(
        printed.contains(&format!("binding: config (hosts 127.0.0.1, ports {port}, server prefix stripped)")),
        "{printed}"
    );
    let mut agent = Agent::start(&["--port", &port.to_string(), "--config", &config.display().to_string()]);
    send_and_check(
        &agent,
        port,
        &[
            (
                "POST",
                "/payments/sepa-credit-transfers",
                "documented",
                "/{payment-service}/{payment-product}",
                "config",
            ),
            ("GET", "/consents/C-1", "documented", "/consents/{consentId}", "config"),
            (
                "GET",
                "/open-banking/v4.0/aisp/accounts/acc-1/balances",
                "documented",
                "/open-banking/v4.0/aisp/accounts/{AccountId}/balances",
                "config",
            ),
            // Stripped only for the PSD2 spec, present only for the accounts one.
            ("GET", "/psd2/v1/consents/C-1", "shadow", "", "config"),
            ("GET", "/accounts/acc-1/balances", "shadow", "", "config"),
            ("GET", "/paymentz/sepa-credit-transfers/P-1/status", "shadow", "", "config"),
            ("PUT", "/consents/C-1", "undocumented_method", "/consents/{consentId}", "config"),
            (
                "DELETE",
                "/open-banking/v4.0/aisp/accounts/acc-1",
                "undocumented_method",
                "/open-banking/v4.0/aisp/accounts/{AccountId}",
                "config",
            ),
        ],
    );
    agent.stop();
}
