//! Sensitive data end to end: findings on real traffic (gzip bodies included), masked samples,
//! allowlists from the configuration file, and no raw value anywhere in the output or the log.
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{self, Agent, Proc, str_at};

const BANK_SERVER: &str = r#"
import gzip, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, doc, zipped=False):
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if zipped:
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith("/cards/"):
            self.reply({"card": {"pan": "5555555555554444", "expiry": "12/30"}})
        else:
            self.reply({"account": {"iban": "GB82WEST12345698765432", "holder": "A. Person"},
                        "cards": [{"cardNumber": "4111 1111 1111 1111"}]}, zipped=True)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.reply({"ok": True})
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

const RAW_VALUES: &[&str] = &[
    "GB82WEST12345698765432",
    "4111 1111 1111 1111",
    "4111111111111111",
    "5555555555554444",
    "hunter2hunter2",
    "AKIAIOSFODNN7EXAMPLE",
];

fn findings(e: &Value) -> Vec<&Value> {
    e["findings"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

#[test]
fn kernel_sensitive_data_is_found_masked_and_allowlisted() {
    if !harness::kernel_available("kernel_sensitive_data_is_found_masked_and_allowlisted") {
        return;
    }
    let port = harness::free_port();
    let _server = Proc::spawn(
        Command::new("python3").args(["-c", BANK_SERVER, &port.to_string()]).stdout(Stdio::null()),
    );
    harness::wait_listening(port);
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "sensitive:\n  allow:\n    - method: GET\n      path: /cards/*\n      detectors: [payment_card]\n      side: response\n",
    )
    .unwrap();
    let mut agent =
        Agent::start(&["--port", &port.to_string(), "--config", &config.path().display().to_string()]);
    let base = format!("http://127.0.0.1:{port}");
    harness::curl_ok(&["--compressed", &format!("{base}/accounts/1")]);
    harness::curl_ok(&[&format!("{base}/cards/9")]);
    harness::curl_ok(&[
        "-H",
        "Content-Type: application/json",
        "-H",
        "X-Api-Key: AKIAIOSFODNN7EXAMPLE",
        "-d",
        r#"{"username": "ann", "password": "hunter2hunter2"}"#,
        &format!("{base}/login"),
    ]);
    let seen =
        agent.wait_for("three server-side exchanges", |e| str_at(e, "/role") == "server", |s| s.len() >= 3);

    let account = seen.iter().find(|e| str_at(e, "/request/path") == "/accounts/1").unwrap();
    let f = findings(account);
    let iban = f.iter().find(|f| f["detector"] == "iban").unwrap_or_else(|| panic!("no iban in {account}"));
    assert_eq!(str_at(iban, "/location"), "response.body:$.account.iban");
    assert_eq!(str_at(iban, "/side"), "response");
    let card =
        f.iter().find(|f| f["detector"] == "payment_card").unwrap_or_else(|| panic!("no card in {account}"));
    assert_eq!(str_at(card, "/location"), "response.body:$.cards[0].cardNumber");
    assert_eq!(str_at(card, "/confidence"), "high");
    assert!(
        str_at(card, "/sample").starts_with("411111") && str_at(card, "/sample").ends_with("1111"),
        "{card}"
    );

    let cards = seen.iter().find(|e| str_at(e, "/request/path") == "/cards/9").unwrap();
    assert!(findings(cards).iter().all(|f| f["detector"] != "payment_card"), "allowlisted: {cards}");

    let login = seen.iter().find(|e| str_at(e, "/request/path") == "/login").unwrap();
    let f = findings(login);
    assert!(
        f.iter().any(|f| f["detector"] == "password" && str_at(f, "/location") == "request.body:$.password"),
        "{login}"
    );
    assert!(f.iter().any(|f| f["detector"] == "aws_access_key_id"), "{login}");

    let log = agent.stop();
    let output = std::fs::read_to_string(agent.output()).unwrap();
    for raw in RAW_VALUES {
        assert!(!output.contains(raw), "raw value {raw} in the JSONL");
        assert!(!log.contains(raw), "raw value {raw} in the log");
    }
    // The inventory knows which endpoints carry which data.
    let entries = sensor_inventory(&agent);
    let accounts = entries
        .iter()
        .find(|e| str_at(e, "/route") == "/accounts/1" || str_at(e, "/route").starts_with("/accounts/"))
        .unwrap();
    let types: Vec<&str> =
        accounts["sensitive_types"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(types.contains(&"iban") && types.contains(&"payment_card"), "{accounts}");
}

fn sensor_inventory(agent: &Agent) -> Vec<Value> {
    let out = Command::new(harness::agent_bin())
        .args(["inventory", "--format", "json", "--state-dir"])
        .arg(agent.dir().join("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["endpoints"].as_array().unwrap().clone()
}

#[test]
fn config_check_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("apisense.yaml");
    std::fs::write(&bad, "sensitive:\n  disabled: [payment_card]\n  colour: blue\n").unwrap();
    let out = Command::new(harness::agent_bin()).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apisense.yaml") && err.contains("colour"), "{err}");
    std::fs::write(&bad, "sensitive:\n  disabled: [payment_card]\n").unwrap();
    let out = Command::new(harness::agent_bin()).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
