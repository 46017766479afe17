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
