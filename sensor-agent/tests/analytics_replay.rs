//! Security analytics end to end, without the kernel: a scripted mock bank built on the OBIE
//! specs is written as a recording, `apisense replay` runs the whole pipeline on it with a state
//! directory, and `apisense inventory` reads the result. Each expected finding appears exactly
//! once with its severity, client and reason, and no raw PAN, IBAN or token appears in any
//! output (JSON lines, logs, inventory, state files).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness: a panic is a failure report")]
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

use base64::Engine as _;
use bytes::Bytes;
use sensor_agent::capture::{ConnMeta, Direction, Event, Origin, RawChunk, Role, recording::Writer};
use serde_json::Value;

const PAN: &str = "4111111111111111";
const IBAN: &str = "GB82WEST12345698765432";
const HOST: &str = "bank.example";
const BOOT_WALL_NS: i128 = 1_764_000_000_000_000_000;
const MINUTE_NS: u64 = 60_000_000_000;

fn jwt(client_id: &str) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        e.encode(br#"{"alg":"PS256","typ":"JWT"}"#),
        e.encode(format!(
            r#"{{"iss":"https://as.bank.example","client_id":"{client_id}","scope":"accounts"}}"#
        )),
        e.encode(format!("signature-of-{client_id}-0123456789"))
    )
}

struct Bank {
    events: Vec<Event>,
    next_conn: u64,
}

impl Bank {
    /// One exchange on its own connection: `peer` calls `target` with `token` (if any) and gets
    /// `status` with `body`.
    #[expect(clippy::too_many_arguments, reason = "a test script line")]
    fn call(
        &mut self,
        ts_ns: u64,
        peer: &str,
        tls: bool,
        token: Option<&str>,
        target: &str,
        status: u16,
        body: &str,
    ) {
        self.next_conn += 1;
        let conn_id = self.next_conn;
        let remote: SocketAddr = format!("{peer}:{}", 40_000 + conn_id).parse().unwrap();
        self.events.push(Event::Open(Arc::new(ConnMeta {
            conn_id,
            tgid: 4242,
            fd: 10,
            role: Role::Server,
            origin: Origin::Accept,
            comm: "bank".into(),
            exe: None,
            local: Some("10.0.0.1:8443".parse().unwrap()),
            remote: Some(remote),
            opened_ns: ts_ns,
            tls,
            service: "bank".into(),
            container_id: None,
        })));
        let mut auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        // The card number in the query also travels in a custom header.
        if let Some(pan) = target.split("pan=").nth(1) {
            auth = format!("{auth}X-Card: {pan}\r\n");
        }
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\n{auth}\r\n");
        let reason = if status >= 500 { "Service Unavailable" } else { "OK" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for (direction, bytes, at) in
            [(Direction::Ingress, request, ts_ns), (Direction::Egress, response, ts_ns + 1_000_000)]
        {
            self.events.push(Event::Data(RawChunk {
                conn_id,
                tgid: 4242,
                fd: 10,
                ts_ns: at,
                direction,
                tls,
                source: 1,
                offset: 0,
                len: bytes.len() as u64,
                payload: Bytes::from(bytes),
            }));
        }
        self.events.push(Event::Close { conn_id, ts_ns: ts_ns + 2_000_000 });
    }

    fn write(&self, path: &Path) {
        let file = std::fs::File::create(path).unwrap();
        let mut w = Writer::new(std::io::BufWriter::new(file), BOOT_WALL_NS).unwrap();
        for e in &self.events {
            w.write(e).unwrap();
        }
        w.flush().unwrap();
    }
}

fn account_body() -> String {
    format!(
        r#"{{"Data":{{"Account":[{{"AccountId":"ACC1","Currency":"GBP","Account":[{{"SchemeName":"UK.OBIE.IBAN","Identification":"{IBAN}","Name":"Main"}}]}}]}}}}"#
    )
}

fn specs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/openapi/obie")
}

fn script(tokens: &[String; 3]) -> Bank {
    let mut bank = Bank { events: Vec::new(), next_conn: 0 };
    let account = "/open-banking/v4.0/aisp/accounts/ACC1";
    let peers = ["10.0.0.11", "10.0.0.12", "10.0.0.13"];
    // Ten minutes of ordinary traffic: three TPPs, each twice a minute, over TLS.
    for minute in 0..10u64 {
        for (i, (token, peer)) in tokens.iter().zip(peers).enumerate() {
            for k in 0..2u64 {
                let ts = minute * MINUTE_NS + (i as u64 * 2 + k) * 5_000_000_000;
                bank.call(ts, peer, true, Some(token), account, 200, &account_body());
            }
        }
    }
    let at = |minute: u64, second: u64| minute * MINUTE_NS + second * 1_000_000_000;
    // An unauthenticated call that is answered with the account's IBAN.
    bank.call(at(10, 5), "10.0.0.66", true, None, account, 200, &account_body());
    // A card number in a query string, twice (one finding).
    for s in [10, 20] {
        let target = format!("/open-banking/v4.0/aisp/accounts?pan={PAN}");
        bank.call(at(10, s), peers[1], true, Some(&tokens[1]), &target, 200, r#"{"Data":{"Account":[]}}"#);
    }
    // The old API version beside the new one.
    bank.call(
        at(11, 0),
        peers[2],
        true,
        Some(&tokens[2]),
        "/open-banking/v3.1/aisp/accounts/ACC1",
        200,
        r#"{"Data":{}}"#,
    );
    // A burst of 5xx.
    for s in 0..10 {
        bank.call(at(12, s * 2), peers[0], true, Some(&tokens[0]), account, 503, r#"{"Code":"503"}"#);
    }
    // One call over plaintext HTTP.
    bank.call(at(13, 0), peers[0], false, Some(&tokens[0]), account, 200, &account_body());
    bank
}

fn apisense() -> Command {
    Command::new(env!("CARGO_BIN_EXE_apisense"))
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, checked output by output")]
fn mock_bank_findings_appear_once_with_severity_client_and_reason_and_nothing_raw() {
    let dir = std::env::temp_dir().join(format!("apisense-analytics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = [jwt("tpp-alpha"), jwt("tpp-beta"), jwt("tpp-gamma")];
    let rec = dir.join("bank.rec");
    script(&tokens).write(&rec);
    let config = dir.join("apisense.yaml");
    std::fs::write(&config, "analytics:\n  baseline_min_samples: 20\n  api_key_headers: [x-api-key]\n")
        .unwrap();
    let state = dir.join("state");
    let out = dir.join("out.jsonl");
    let run = apisense()
        .arg("replay")
        .arg(&rec)
        .arg("--output")
        .arg(&out)
        .arg("--state-dir")
        .arg(&state)
        .arg("--openapi")
        .arg(specs())
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "replay failed: {log}");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let exchanges: Vec<&Value> = lines.iter().filter(|l| l.get("event").is_none()).collect();
    let events: Vec<&Value> = lines.iter().filter(|l| l["event"] == "security").collect();
    assert_eq!(exchanges.len(), 60 + 1 + 2 + 1 + 10 + 1, "{text}");

    // Exchanges name their client, never the token.
    let first = exchanges[0];
    assert_eq!(first["client"]["kind"], "jwt");
    assert_eq!(first["client"]["id"], "client_id=tpp-alpha");
    let anonymous =
        exchanges.iter().find(|e| e["remote"].as_str().is_some_and(|r| r.starts_with("10.0.0.66"))).unwrap();
    assert_eq!(anonymous["client"]["id"], "10.0.0.66");
    assert!(
        exchanges
            .iter()
            .any(|e| e["findings"].as_array().is_some_and(|f| f.iter().any(|f| f["value_hash"].is_string())))
    );

    // A card number in the query or a header is exported as its masked sample.
    let with_pan = exchanges
        .iter()
        .find(|e| e["request"]["query"].as_str().is_some_and(|q| q.starts_with("pan=")))
        .unwrap();
    assert_eq!(with_pan["request"]["query"], "pan=411111******1111");
    assert_eq!(with_pan["request"]["headers"]["x-card"], "411111******1111");

    let account = format!("GET {HOST}/open-banking/v4.0/aisp/accounts/{{AccountId}}");
    let accounts = format!("GET {HOST}/open-banking/v4.0/aisp/accounts");
    let old = format!("GET {HOST}/open-banking/v3.1/aisp/accounts/ACC1");
    let alpha = Some("jwt:client_id=tpp-alpha");
    let beta = Some("jwt:client_id=tpp-beta");
    let gamma = Some("jwt:client_id=tpp-gamma");
    let anon = Some("peer:10.0.0.66");
    let expected: Vec<(&str, &str, &str, Option<&str>, &str)> = vec![
        ("new_endpoint", "info", account.as_str(), alpha, "first call of this documented endpoint"),
        (
            "value_to_many_clients",
            "medium",
            account.as_str(),
            None,
            "the same iban value was returned to 3 clients",
        ),
        (
            "unauthenticated_sensitive_response",
            "high",
            account.as_str(),
            anon,
            "iban returned to a request without credentials",
        ),
        (
            "auth_dropped",
            "high",
            account.as_str(),
            anon,
            "called without credentials; the 60 earlier exchanges all used bearer",
        ),
        (
            "new_client",
            "low",
            account.as_str(),
            anon,
            "first call from this client, after 60 exchanges from 3 clients",
        ),
        ("new_endpoint", "info", accounts.as_str(), beta, "first call of this documented endpoint"),
        ("sensitive_in_url", "high", accounts.as_str(), beta, "payment_card in the query string"),
        ("new_endpoint", "medium", old.as_str(), gamma, "first call of this shadow endpoint"),
        (
            "old_version_called",
            "medium",
            old.as_str(),
            gamma,
            "v3.1 called while v4.0 of the same operation is in use",
        ),
        (
            "error_burst",
            "high",
            account.as_str(),
            None,
            "5xx in 5 of 5 responses (100%) in 60 s, usually 0.0% over 61 exchanges",
        ),
        ("sensitive_over_plaintext", "high", account.as_str(), alpha, "iban over plaintext HTTP, not TLS"),
        (
            "credentials_over_plaintext",
            "high",
            account.as_str(),
            alpha,
            "bearer credentials sent over plaintext HTTP, not TLS",
        ),
    ];
    let summary: Vec<String> = events
        .iter()
        .map(|e| {
            format!("{} {} {} {} | {}", e["kind"], e["severity"], e["endpoint"], e["client"], e["reason"])
        })
        .collect();
    assert_eq!(events.len(), expected.len(), "events:\n{}", summary.join("\n"));
    for (kind, severity, endpoint, client, reason) in &expected {
        let matching: Vec<&&Value> = events
            .iter()
            .filter(|e| e["kind"] == *kind && e["endpoint"] == *endpoint && e["client"].as_str() == *client)
            .collect();
        assert_eq!(matching.len(), 1, "{kind} {endpoint} {client:?}:\n{}", summary.join("\n"));
        let e = matching[0];
        assert_eq!(e["severity"], *severity, "{kind}: {e}");
        assert!(e["reason"].as_str().unwrap().starts_with(reason), "{kind}: {e}");
        assert!(
            ["exposure", "zombie", "change", "anomaly"].contains(&e["category"].as_str().unwrap()),
            "{e}"
        );
    }
    let shared = events.iter().find(|e| e["kind"] == "value_to_many_clients").unwrap();
    let hash = shared["value_hash"].as_str().unwrap();
    assert_eq!(hash.len(), 32);
    // The same IBAN has the same hash in every exchange's finding: repeats correlate.
    let hashes: std::collections::BTreeSet<&str> = exchanges
        .iter()
        .flat_map(|e| e["findings"].as_array().into_iter().flatten())
        .filter(|f| f["detector"] == "iban")
        .filter_map(|f| f["value_hash"].as_str())
        .collect();
    assert_eq!(hashes.into_iter().collect::<Vec<_>>(), [hash]);

    // The inventory shows the findings and who received what.
    let json =
        apisense().args(["inventory", "--format", "json", "--state-dir"]).arg(&state).output().unwrap();
    assert!(json.status.success(), "{}", String::from_utf8_lossy(&json.stderr));
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["findings"].as_array().unwrap().len(), expected.len(), "{doc:#}");
    assert_eq!(doc["findings"][0]["severity"], "high");
    let clients = doc["clients"].as_array().unwrap();
    let anon_client = clients.iter().find(|c| c["client"] == "peer:10.0.0.66").unwrap();
    assert_eq!(anon_client["received"], serde_json::json!(["iban"]));
    let beta_client = clients.iter().find(|c| c["client"] == "jwt:client_id=tpp-beta").unwrap();
    assert_eq!(beta_client["endpoints"].as_object().unwrap().len(), 2);
    assert!(doc["endpoints"].as_array().unwrap().len() >= 3);
    let table = apisense().args(["inventory", "--state-dir"]).arg(&state).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains("SECURITY FINDINGS (12)") && table.contains("auth_dropped"), "{table}");
    assert!(table.contains("jwt:client_id=tpp-gamma"), "{table}");

    let page = dir.join("report.html");
    let report =
        apisense().args(["report", "--state-dir"]).arg(&state).arg("--html").arg(&page).output().unwrap();
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<tr class=\"finding sev-high\">").count(), 6, "{html}");
    assert!(html.contains("peer:10.0.0.66") && html.contains("<tr class=\"client\">"));

    // A second replay into the same state finds nothing new: findings persist.
    let again = apisense()
        .arg("replay")
        .arg(&rec)
        .arg("--output")
        .arg(dir.join("again.jsonl"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--openapi")
        .arg(specs())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(again.status.success());
    let again = std::fs::read_to_string(dir.join("again.jsonl")).unwrap();
    let repeated: Vec<&str> = again.lines().filter(|l| l.contains(r#""event":"security""#)).collect();
    assert!(repeated.is_empty(), "findings recur after a restart:\n{}", repeated.join("\n"));

    // Nothing raw anywhere: outputs, logs, inventory, state files.
    let key = std::fs::metadata(state.join("analytics.key")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
    let mut haystacks = vec![
        ("output", text.into_bytes()),
        ("log", log.into_bytes()),
        ("inventory json", json.stdout),
        ("inventory table", table.into_bytes()),
        ("html report", html.into_bytes()),
        ("second output", again.into_bytes()),
    ];
    for name in ["inventory.redb", "inventory.json", "analytics.json"] {
        haystacks.push((name, std::fs::read(state.join(name)).unwrap_or_default()));
    }
    let signatures: Vec<String> = tokens.iter().map(|t| t.rsplit('.').next().unwrap().to_owned()).collect();
    let mut needles = vec![PAN.to_owned(), IBAN.to_owned(), "WEST1234569876".to_owned()];
    needles.extend(tokens.iter().cloned());
    needles.extend(signatures);
    for (name, hay) in &haystacks {
        for needle in &needles {
            assert!(
                memchr_find(hay, needle.as_bytes()).is_none(),
                "{name} holds a raw value ({} bytes long)",
                needle.len()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
