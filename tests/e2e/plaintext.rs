//! Plaintext HTTP/1.1 captured from syscalls, end to end on the real kernel.
use std::{
    io::Write,
    net::TcpStream,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use serde_json::Value;

use crate::harness::{self, Agent, Proc, str_at};

fn is_server(e: &Value) -> bool {
    str_at(e, "/role") == "server"
}

fn is_client(e: &Value) -> bool {
    str_at(e, "/role") == "client"
}

fn path_is(e: &Value, path: &str) -> bool {
    str_at(e, "/request/path") == path
}

#[test]
fn kernel_curl_to_python_server_seen_from_both_sides() {
    if !harness::kernel_available("kernel_curl_to_python_server_seen_from_both_sides") {
        return;
    }
    let port = harness::free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), b"hello, apisense\n").unwrap();
    let server = Proc::spawn(
        Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--protocol", "HTTP/1.1"])
            .arg("--directory")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    harness::wait_listening(port);
    let mut agent = Agent::start(&["--port", &port.to_string()]);
    let url = format!("http://127.0.0.1:{port}/hello.txt?x=1&token=s3cr3t");
    let curl_pid = harness::curl_ok(&["-H", "Authorization: Bearer abc.def", &url]);

    let seen = agent.wait_for(
        "both views of GET /hello.txt",
        |e| path_is(e, "/hello.txt"),
        |s| s.iter().any(is_server) && s.iter().any(is_client),
    );
    assert_eq!(seen.len(), 2, "exactly one exchange per side: {seen:#?}");
    let server_view = seen.iter().find(|e| is_server(e)).unwrap();
    let client_view = seen.iter().find(|e| is_client(e)).unwrap();

    assert_eq!(server_view["pid"], server.pid());
    assert_eq!(client_view["pid"], curl_pid);
    assert_eq!(str_at(client_view, "/process"), "curl");
    assert!(str_at(server_view, "/exe").contains("python"), "{server_view}");
    for view in [server_view, client_view] {
        assert_eq!(str_at(view, "/request/method"), "GET");
        assert_eq!(view["response"]["status"], 200);
        assert_eq!(view["response"]["body_size"], 16);
        assert_eq!(view["request"]["body_size"], 0);
        assert_eq!(view["tls"], false);
        assert_eq!(view["complete"], true);
        assert!(view["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(str_at(view, "/ts").starts_with("20"), "{view}");
        // Credentials and secret query values never leave the agent.
        assert_eq!(str_at(view, "/request/headers/authorization"), "Bearer [REDACTED]");
        assert_eq!(str_at(view, "/request/query"), "x=1&token=[REDACTED]");
        assert!(!view.to_string().contains("abc.def") && !view.to_string().contains("s3cr3t"));
    }
    // The two sides describe the same TCP connection, mirrored.
    let server_local = str_at(server_view, "/local");
    assert_eq!(server_local, format!("127.0.0.1:{port}"));
    assert_eq!(str_at(client_view, "/remote"), server_local);
    assert_eq!(str_at(client_view, "/local"), str_at(server_view, "/remote"));
    assert_ne!(server_view["conn_id"], client_view["conn_id"]);
    let log = agent.stop();
    assert!(log.contains("stopped:"), "{log}");
}

const KEEPALIVE_CLIENT: &str = r#"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for i in range(50):
    body = ("x" * i).encode()
    c.request("POST", "/ka/%d" % i, body=body, headers={"Content-Type": "text/plain"})
    r = c.getresponse()
    r.read()
    assert r.status == 200
c.close()
"#;

#[test]
fn kernel_fifty_requests_on_one_keepalive_connection_in_order() {
    if !harness::kernel_available("kernel_fifty_requests_on_one_keepalive_connection_in_order") {
        return;
    }
    fifty_in_order(&[], "BTF raw tracepoints sys_enter/sys_exit");
}

/// The fallbacks (untyped raw tracepoints, then one syscall tracepoint per call, where the
/// cheaper hooks cannot be used) deliver the same calls to the same handlers.
#[test]
fn kernel_fallback_syscall_hooks_capture_the_same() {
    if !harness::kernel_available("kernel_fallback_syscall_hooks_capture_the_same") {
        return;
    }
    fifty_in_order(&[("APISENSE_SYSCALL_HOOKS", "raw")], "raw tracepoints sys_enter/sys_exit");
    fifty_in_order(&[("APISENSE_SYSCALL_HOOKS", "tracepoints")], "per-call syscall tracepoints");
}

fn fifty_in_order(env: &[(&str, &str)], hooks: &str) {
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let agent = Agent::start_env(&["--port", &port.to_string()], env);
    let capturing = agent.stderr();
    assert!(capturing.contains(&format!("(syscalls: {hooks})")), "{capturing}");
    harness::python(KEEPALIVE_CLIENT, &[&port.to_string()]);
    for (role, keep) in [("server", is_server as fn(&Value) -> bool), ("client", is_client)] {
        let seen = agent.wait_for(
            &format!("50 {role}-side exchanges"),
            |e| keep(e) && str_at(e, "/request/path").starts_with("/ka/"),
            |s| s.len() >= 50,
        );
        assert_eq!(seen.len(), 50, "{role}: {seen:#?}");
        let conn = &seen[0]["conn_id"];
        for (i, e) in seen.iter().enumerate() {
            assert_eq!(str_at(e, "/request/path"), format!("/ka/{i}"), "{role}: out of order at {i}");
            assert_eq!(&e["conn_id"], conn, "{role}: all on one connection");
            assert_eq!(e["request"]["body_size"], i, "{role}");
            assert_eq!(str_at(e, "/response/headers/x-echo-path"), format!("/ka/{i}"), "{role}");
            assert_eq!(e["complete"], true);
        }
    }
}

#[test]
fn kernel_nginx_one_mebibyte_body_has_exact_size() {
    if !harness::kernel_available("kernel_nginx_one_mebibyte_body_has_exact_size") {
        return;
    }
    let port = harness::free_port();
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let _nginx = harness::nginx(port, &[("big.bin", &big)]);
    let agent = Agent::start(&["--port", &port.to_string()]);
    harness::curl_ok(&[&format!("http://127.0.0.1:{port}/big.bin")]);
    harness::curl_ok(&[&format!("http://127.0.0.1:{port}/api/ping")]);
    let seen = agent.wait_for(
        "the 1 MiB response from both sides",
        |e| path_is(e, "/big.bin"),
        |s| s.iter().any(is_server) && s.iter().any(is_client),
    );
    for e in &seen {
        assert_eq!(e["response"]["status"], 200, "{e}");
        assert_eq!(e["response"]["body_size"], 1_048_576, "{e}");
        assert_eq!(str_at(e, "/response/headers/content-length"), "1048576");
    }
    let server = seen.iter().find(|e| is_server(e)).unwrap();
    assert!(str_at(server, "/process").starts_with("nginx"), "{server}");
    let api = agent.wait_for("GET /api/ping", |e| path_is(e, "/api/ping") && is_server(e), |s| !s.is_empty());
    assert_eq!(str_at(&api[0], "/response/headers/content-type"), "application/json");
    assert_eq!(api[0]["response"]["body_size"], 11);
}

const CONCURRENT_CLIENT: &str = r#"
import socket, sys, threading
port = int(sys.argv[1]); n = int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port)); socks.append(s)
barrier = threading.Barrier(n)
errors = []
def one(i, s):
    barrier.wait()
    s.sendall(("GET /c/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    if ("/c/%d\"" % i).encode() not in data: errors.append(i)
    s.close()
ts = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate(socks)]
for t in ts: t.start()
for t in ts: t.join()
assert not errors, errors
"#;

#[test]
fn kernel_hundred_concurrent_connections_without_cross_talk() {
    if !harness::kernel_available("kernel_hundred_concurrent_connections_without_cross_talk") {
        return;
    }
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let agent = Agent::start(&["--port", &port.to_string()]);
    harness::python(CONCURRENT_CLIENT, &[&port.to_string(), "100"]);
    for (role, keep) in [("server", is_server as fn(&Value) -> bool), ("client", is_client)] {
        let seen = agent.wait_for(
            &format!("100 {role}-side exchanges"),
            |e| keep(e) && str_at(e, "/request/path").starts_with("/c/"),
            |s| s.len() >= 100,
        );
        assert_eq!(seen.len(), 100, "{role}");
        let mut paths: Vec<&str> = seen.iter().map(|e| str_at(e, "/request/path")).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), 100, "{role}: every request exactly once");
        let mut conns: Vec<String> = seen.iter().map(|e| e["conn_id"].to_string()).collect();
        conns.sort_unstable();
        conns.dedup();
        assert_eq!(conns.len(), 100, "{role}: one connection each");
        for e in &seen {
            assert_eq!(
                str_at(e, "/response/headers/x-echo-path"),
                str_at(e, "/request/path"),
                "{role}: cross-talk in {e}"
            );
        }
    }
}

#[test]
fn kernel_client_exiting_mid_request_is_reported_and_harmless() {
    if !harness::kernel_available("kernel_client_exiting_mid_request_is_reported_and_harmless") {
        return;
    }
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let mut agent = Agent::start(&["--port", &port.to_string()]);
    // Send a request head announcing 100 body bytes, send 7, and die without closing.
    let script = r#"
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /dying HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
os._exit(0)
"#;
    harness::python(script, &[&port.to_string()]);
    let seen = agent.wait_for(
        "the cut-off request from the client side",
        |e| path_is(e, "/dying") && is_client(e),
        |s| !s.is_empty(),
    );
    assert!(seen[0]["response"].is_null(), "{}", seen[0]);
    assert_eq!(seen[0]["complete"], false);
    assert!(agent.is_running(), "agent died:\n{}", agent.stderr());
    // And it keeps capturing.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let _ = harness::read_all(&mut stream);
    thread::sleep(Duration::from_millis(10));
    agent.wait_for("a request after the exit", |e| path_is(e, "/after") && is_server(e), |s| !s.is_empty());
}

const PRE_EXISTING_CLIENT: &str = r#"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
def get(path):
    c.request("GET", path); r = c.getresponse(); r.read(); assert r.status == 200
get("/pre/1")
print("connected", flush=True)
sys.stdin.readline()
for i in (2, 3, 4):
    get("/pre/%d" % i)
c.close()
"#;

#[test]
fn kernel_connection_older_than_the_sensor_is_recognised() {
    if !harness::kernel_available("kernel_connection_older_than_the_sensor_is_recognised") {
        return;
    }
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let mut client = Proc::spawn(
        Command::new("python3")
            .args(["-c", PRE_EXISTING_CLIENT, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(client.child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "connected");
    // The connection (and the server thread blocked reading it) now predate the agent.
    let agent = Agent::start(&["--port", &port.to_string()]);
    client.child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    assert!(client.child.wait().unwrap().success());

    let client_side = agent.wait_for(
        "client-side /pre/2../pre/4",
        |e| is_client(e) && str_at(e, "/request/path").starts_with("/pre/"),
        |s| s.len() >= 3,
    );
    let paths: Vec<&str> = client_side.iter().map(|e| str_at(e, "/request/path")).collect();
    assert_eq!(paths, ["/pre/2", "/pre/3", "/pre/4"]);
    assert!(client_side.iter().all(|e| e["response"]["status"] == 200 && e["complete"] == true));
    // The server thread was already inside recv() for /pre/2 when the probes attached, so that
    // request's bytes are unrecoverable; the following ones are complete.
    let server_side = agent.wait_for(
        "server-side /pre/3 and /pre/4",
        |e| is_server(e) && str_at(e, "/request/path").starts_with("/pre/"),
        |s| s.len() >= 2,
    );
    let paths: Vec<&str> = server_side.iter().map(|e| str_at(e, "/request/path")).collect();
    assert_eq!(paths[paths.len() - 2..], ["/pre/3", "/pre/4"]);
    assert!(!paths.contains(&"/pre/1"), "nothing from before the agent started");
}
