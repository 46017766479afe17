//! Security analytics on real traffic: a python mock bank on loopback, curl clients with
//! distinct JWTs, an unauthenticated call answered with an IBAN, a card number in a query
//! string, v3.1 beside v4.0 and a burst of 5xx; each finding once, with its client, and no raw
//! value in the output, the log or the inventory.
use std::{path::PathBuf, process::Command, thread, time::Duration};

use serde_json::Value;

use crate::harness::{self, Agent, Proc, agent_bin};

const PAN: &str = "4111111111111111";
const IBAN: &str = "GB82WEST12345698765432";

const MOCK_BANK: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
IBAN = sys.argv[2]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        p = self.path
        if self.headers.get("X-Fail"): code, body = 503, {"Code": "503"}
        elif "/v3.1/" in p: code, body = 200, {"Data": {}}
        elif p.startswith("/open-banking/v4.0/aisp/accounts/"):
            code, body = 200, {"Data": {"Account": [{"AccountId": "ACC1", "Account": [
                {"SchemeName": "UK.OBIE.IBAN", "Identification": IBAN}]}]}}
        else: code, body = 200, {"Data": {"Account": []}}
        b = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn jwt(client_id: &str) -> String {
    format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"PS256","typ":"JWT"}"#),
        b64url(format!(r#"{{"client_id":"{client_id}","scope":"accounts"}}"#).as_bytes()),
        b64url(format!("sig-{client_id}-9f8e7d6c5b4a").as_bytes())
    )
}

fn specs() -> PathBuf {
    let mut dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let candidate = dir.join("shared/testdata/openapi/obie");
        if candidate.exists() {
            return candidate;
        }
        assert!(dir.pop(), "shared/testdata/openapi/obie not found above the crate");
    }
}

#[test]
fn kernel_mock_bank_security_findings() {
    if !harness::kernel_available("kernel_mock_bank_security_findings") {
        return;
    }
    let port = harness::free_port();
    let _bank = Proc::spawn(
        Command::new("python3")
            .args(["-c", MOCK_BANK, &port.to_string(), IBAN])
            .stdout(std::process::Stdio::null()),
    );
    harness::wait_listening(port);
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("apisense.yaml");
    std::fs::write(&config, "analytics:\n  baseline_min_samples: 5\n  anomaly_window_seconds: 3\n").unwrap();
    let mut agent = Agent::start(&[
        "--port",
        &port.to_string(),
        "--openapi",
        &specs().display().to_string(),
        "--config",
        &config.display().to_string(),
    ]);
    let base = format!("http://127.0.0.1:{port}/open-banking");
    let account = format!("{base}/v4.0/aisp/accounts/ACC1");
    let tokens = [jwt("tpp-alpha"), jwt("tpp-beta"), jwt("tpp-gamma")];
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    for token in &tokens {
        for _ in 0..2 {
            harness::curl_ok(&["-H", &bearer(token), &account]);
        }
    }
    // A new anomaly window, so the six calls above are the baseline.
    thread::sleep(Duration::from_millis(3200));
    harness::curl_ok(&[&account]);
    harness::curl_ok(&["-H", &bearer(&tokens[1]), &format!("{base}/v4.0/aisp/accounts?pan={PAN}")]);
    harness::curl_ok(&["-H", &bearer(&tokens[2]), &format!("{base}/v3.1/aisp/accounts/ACC1")]);
    thread::sleep(Duration::from_millis(3200));
    // Ten 503s in quick succession on one keep-alive connection (curl processes can be too slow
    // on a loaded machine to put five in one window).
    harness::python(
        "import http.client, sys\nc = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))\n\
         for i in range(10):\n    c.request('GET', '/open-banking/v4.0/aisp/accounts/ACC1', \
         headers={'Authorization': 'Bearer ' + sys.argv[2], 'X-Fail': '1'}); c.getresponse().read()\n",
        &[&port.to_string(), &tokens[0]],
    );
    agent.wait_for("server-side exchanges", |e| e["role"] == "server", |s| s.len() >= 19);
    let expected = [
        ("value_to_many_clients", "medium", None),
        ("unauthenticated_sensitive_response", "high", Some("peer:127.0.0.1")),
        ("auth_dropped", "high", Some("peer:127.0.0.1")),
        ("sensitive_in_url", "high", Some("jwt:client_id=tpp-beta")),
        ("old_version_called", "medium", Some("jwt:client_id=tpp-gamma")),
        ("error_burst", "high", None),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let events = loop {
        let events = agent.events();
        if expected.iter().all(|(k, _, _)| events.iter().any(|e| e["kind"] == *k)) {
            break events;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing findings; got:\n{}",
            events.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")
        );
        thread::sleep(Duration::from_millis(100));
    };
    let all = events.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    for (kind, severity, client) in expected {
        let matching: Vec<&Value> = events.iter().filter(|e| e["kind"] == kind).collect();
        assert_eq!(matching.len(), 1, "{kind}:\n{all}");
        assert_eq!(matching[0]["severity"], severity, "{kind}:\n{all}");
        assert_eq!(matching[0]["client"].as_str(), client, "{kind}:\n{all}");
    }
    // Over loopback, plaintext is worth knowing but not alarming.
    let plaintext: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "credentials_over_plaintext")
        .filter(|e| e["endpoint"].as_str().is_some_and(|p| p.ends_with("/accounts/{AccountId}")))
        .collect();
    assert_eq!(plaintext.len(), 3, "one per JWT client:\n{all}");
    assert!(plaintext.iter().all(|e| e["severity"] == "low"), "{all}");
    let server: Vec<Value> = agent.exchanges().into_iter().filter(|e| e["role"] == "server").collect();
    assert!(server.iter().any(|e| e["client"]["id"] == "client_id=tpp-alpha"));
    let log = agent.stop();
    assert!(log.contains("security high unauthenticated_sensitive_response"), "{log}");
    let output = std::fs::read_to_string(agent.output()).unwrap();
    let inventory = Command::new(agent_bin())
        .args(["inventory", "--format", "json", "--state-dir"])
        .arg(agent.dir().join("state"))
        .output()
        .unwrap();
    assert!(inventory.status.success(), "{}", String::from_utf8_lossy(&inventory.stderr));
    let doc: Value = serde_json::from_slice(&inventory.stdout).unwrap();
    assert!(doc["findings"].as_array().unwrap().len() >= expected.len(), "{doc}");
    let inventory = String::from_utf8_lossy(&inventory.stdout).into_owned();
    for (name, text) in [("output", &output), ("log", &log), ("inventory", &inventory)] {
        for needle in [PAN, IBAN, &tokens[0], &tokens[1], &tokens[2]] {
            assert!(!text.contains(needle), "{name} holds a raw value ({} bytes long)", needle.len());
        }
    }
}
