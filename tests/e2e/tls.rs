//! TLS plaintext from the OpenSSL probes (system libssl and node's static copy), end to end.
use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::harness::{self, Agent, str_at};

fn views<'a>(all: &'a [Value], path: &str) -> (Vec<&'a Value>, Vec<&'a Value>) {
    let mine: Vec<&Value> = all.iter().filter(|e| str_at(e, "/request/path") == path).collect();
    let server = mine.iter().copied().filter(|e| str_at(e, "/role") == "server").collect();
    let client = mine.iter().copied().filter(|e| str_at(e, "/role") == "client").collect();
    (server, client)
}

/// Waits for exactly one server-side and one client-side exchange of `path`, checks them, and
/// returns them.
pub(crate) fn both_sides(agent: &Agent, path: &str, server_process: &str, client_process: &str, body: u64) {
    let seen = agent.wait_for(
        &format!("both TLS views of {path}"),
        |e| str_at(e, "/request/path") == path,
        |s| {
            s.iter().any(|e| str_at(e, "/role") == "server")
                && s.iter().any(|e| str_at(e, "/role") == "client")
        },
    );
    let (server, client) = views(&seen, path);
    assert_eq!((server.len(), client.len()), (1, 1), "one exchange per side for {path}: {seen:#?}");
    for (view, process) in [(server[0], server_process), (client[0], client_process)] {
        assert!(str_at(view, "/process").starts_with(process), "{path}: expected {process}: {view}");
        assert_eq!(view["tls"], true, "{view}");
        assert_eq!(str_at(view, "/request/method"), "GET");
        assert_eq!(view["response"]["status"], 200, "{view}");
        assert_eq!(view["response"]["body_size"], body, "{view}");
        assert_eq!(view["complete"], true, "{view}");
    }
}

/// Nothing on this port may have been parsed from ciphertext.
pub(crate) fn no_plaintext_exchanges(agent: &Agent) {
    let bad: Vec<Value> = agent.exchanges().into_iter().filter(|e| e["tls"] != true).collect();
    assert!(bad.is_empty(), "exchanges built from ciphertext: {bad:#?}");
}

#[test]
fn kernel_tls_nginx_with_curl_python_and_node_clients() {
    if !harness::kernel_available("kernel_tls_nginx_with_curl_python_and_node_clients") {
        return;
    }
    let cert = harness::self_signed_cert();
    let port = harness::free_port();
    let page = vec![b'x'; 5000];
    let _nginx = harness::nginx_tls(port, &[("page.txt", &page)], &cert);
    // Every client starts after the agent: libraries are probed for processes not yet running.
    let agent = Agent::start(&["--port", &port.to_string()]);
    let base = format!("https://127.0.0.1:{port}");
    harness::curl_ok(&["-k", &format!("{base}/page.txt?by=curl")]);
    harness::python_get(&format!("{base}/api/python"));
    harness::node_get(&format!("{base}/api/node"));
    let seen = agent.wait_for("curl view", |e| str_at(e, "/request/path") == "/page.txt", |s| s.len() >= 2);
    assert!(seen.iter().all(|e| e["response"]["body_size"] == 5000), "{seen:#?}");
    both_sides(&agent, "/page.txt", "nginx", "curl", 5000);
    both_sides(&agent, "/api/python", "nginx", "python", 11);
    both_sides(&agent, "/api/node", "nginx", "node", 11);
    no_plaintext_exchanges(&agent);
}

#[test]
fn kernel_tls_python_and_node_servers() {
    if !harness::kernel_available("kernel_tls_python_and_node_servers") {
        return;
    }
    let cert = harness::self_signed_cert();
    let (py_port, node_port) = (harness::free_port(), harness::free_port());
    let _py = harness::python_https_server(py_port, &cert);
    let _node = harness::node_https_server(node_port, &cert);
    let mut agent = Agent::start(&["--port", &py_port.to_string(), "--port", &node_port.to_string()]);
    harness::curl_ok(&["-k", &format!("https://127.0.0.1:{py_port}/py/curl")]);
    harness::node_get(&format!("https://127.0.0.1:{py_port}/py/node"));
    harness::python_get(&format!("https://127.0.0.1:{node_port}/node/python"));
    harness::curl_ok(&["-k", &format!("https://127.0.0.1:{node_port}/node/curl")]);
    // Bodies are `{"path": "<path>"}` (python's json) or `{"path":"<path>"}` (node's JSON).
    let py = |path: &str| 12 + path.len() as u64;
    let js = |path: &str| 11 + path.len() as u64;
    both_sides(&agent, "/py/curl", "python", "curl", py("/py/curl"));
    both_sides(&agent, "/py/node", "python", "node", py("/py/node"));
    both_sides(&agent, "/node/python", "node", "python", js("/node/python"));
    both_sides(&agent, "/node/curl", "node", "curl", js("/node/curl"));
    no_plaintext_exchanges(&agent);
    let log = agent.stop();
    assert!(log.contains("TLS probes attached to") && log.contains("libssl"), "{log}");
}

/// GnuTLS (wget, gnutls-cli) and NSS (tstclnt) clients against nginx: their plaintext comes from
/// the `gnutls_record_*` and NSPR `PR_*` probes.
#[test]
fn kernel_tls_gnutls_and_nss_clients() {
    if !harness::kernel_available("kernel_tls_gnutls_and_nss_clients") {
        return;
    }
    let cert = harness::self_signed_cert();
    let port = harness::free_port();
    let _nginx = harness::nginx_tls(port, &[], &cert);
    let agent = Agent::start(&["--port", &port.to_string()]);
    let base = format!("https://127.0.0.1:{port}");
    let status = Command::new("wget")
        .args(["--no-check-certificate", "-q", "-O", "/dev/null", &format!("{base}/api/wget")])
        .status()
        .expect("wget");
    assert!(status.success());
    let request = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    pipe_into(
        Command::new("gnutls-cli").args(["--insecure", "--port", &port.to_string(), "127.0.0.1"]),
        &request("/api/gnutls"),
    );
    // NSS wants a certificate database, even an empty one (-o -o: accept the self-signed cert).
    let nss_db = tempfile::tempdir().unwrap();
    let db = format!("sql:{}", nss_db.path().display());
    let created =
        Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]).status().expect("certutil");
    assert!(created.success());
    // The request from a file (-A): reading it from stdin, tstclnt spins after the server closes.
    let request_file = nss_db.path().join("request");
    std::fs::write(&request_file, request("/api/nss")).unwrap();
    pipe_into(
        Command::new("tstclnt")
            .args(["-d", &db, "-h", "127.0.0.1", "-p", &port.to_string(), "-o", "-o", "-A"])
            .arg(&request_file),
        "",
    );
    both_sides(&agent, "/api/wget", "nginx", "wget", 11);
    both_sides(&agent, "/api/gnutls", "nginx", "gnutls-cli", 11);
    both_sides(&agent, "/api/nss", "nginx", "tstclnt", 11);
    no_plaintext_exchanges(&agent);
}

/// Runs a TLS client that sends its stdin and prints the reply, and checks the reply is a 200.
/// A client that does not exit gets 15 s, then is stopped (and must have printed the reply).
fn pipe_into(command: &mut Command, input: &str) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || harness::read_all(&mut stdout));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("TIMING {command:?} {:?}", deadline.elapsed());
    let stdout = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(stdout.contains("200 OK"), "{command:?}: {stdout}");
}

/// A TLS connection the agent filters out stays muted: the plaintext its TLS probes see is not
/// copied to the agent (only what was in flight before the mute arrives, counted as
/// `ignored_chunks`), while a followed port beside it is still captured.
#[test]
fn kernel_filtered_tls_connection_is_not_copied() {
    if !harness::kernel_available("kernel_filtered_tls_connection_is_not_copied") {
        return;
    }
    let cert = harness::self_signed_cert();
    let (followed, other) = (harness::free_port(), harness::free_port());
    let big = vec![b'z'; 256 * 1024];
    let _followed = harness::nginx_tls(followed, &[], &cert);
    let _other = harness::nginx_tls(other, &[("big.bin", &big)], &cert);
    let mut agent = Agent::start(&["--port", &followed.to_string()]);
    // Twenty 256 KiB responses on one keep-alive connection (curl reuses it for its URLs):
    // over 640 records of plaintext (16 KiB each, both sides) if the mute did not hold; what is
    // in flight while the agent resolves the connection (about the first response) gets through.
    let urls: Vec<String> = (0..20).map(|i| format!("https://127.0.0.1:{other}/big.bin?{i}")).collect();
    let mut args = vec!["-k"];
    for u in &urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    harness::curl_ok(&args);
    harness::curl_ok(&["-k", &format!("https://127.0.0.1:{followed}/api/followed")]);
    both_sides(&agent, "/api/followed", "nginx", "curl", 11);
    let log = agent.stop();
    let summary: Value = log
        .lines()
        .find_map(|l| l.split_once("stopped: ").and_then(|(_, json)| serde_json::from_str(json).ok()))
        .unwrap_or_else(|| panic!("no stopped: summary in {log}"));
    let ignored = summary["capture"]["ignored_chunks"].as_u64().unwrap_or_else(|| panic!("{summary}"));
    assert!(ignored < 160, "{ignored} chunks of a filtered TLS connection reached the agent: {summary}");
    assert!(summary["capture"]["filtered_connections"].as_u64() >= Some(2), "{summary}");
}
