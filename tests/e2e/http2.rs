//! HTTP/2 end to end: curl against nginx over TLS (ALPN h2) and over cleartext with prior
//! knowledge, sequential and multiplexed streams on one connection, and a real gRPC call
//! (python grpcio) whose protobuf message carries a card number.
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{self, Agent, Proc, str_at};

/// Runs curl once over all `urls` (each saved to /dev/null) with `flags`, and returns its pid.
fn curl_urls(flags: &[&str], urls: &[String]) -> u32 {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10"]).args(flags);
    for url in urls {
        cmd.arg(url).args(["-o", "/dev/null"]);
    }
    let mut p = Proc::spawn(cmd.stdout(Stdio::null()));
    let pid = p.pid();
    let status = p.child.wait().unwrap();
    assert!(status.success(), "curl {flags:?} {urls:?} failed: {status}");
    pid
}

/// Waits until each of `paths` has a server and a client view, checks both, and returns the
/// client views.
fn both_views(agent: &Agent, paths: &[(&str, u64)], tls: bool, client: &str) -> Vec<Value> {
    let wanted: Vec<&str> = paths.iter().map(|(p, _)| *p).collect();
    let seen = agent.wait_for(
        "both views of every HTTP/2 path",
        |e| wanted.contains(&str_at(e, "/request/path")),
        |s| {
            wanted.iter().all(|p| {
                let mine = || s.iter().filter(|e| str_at(e, "/request/path") == *p);
                mine().any(|e| str_at(e, "/role") == "server")
                    && mine().any(|e| str_at(e, "/role") == "client")
            })
        },
    );
    let mut clients = Vec::new();
    for (path, body) in paths {
        let mine: Vec<&Value> = seen.iter().filter(|e| str_at(e, "/request/path") == *path).collect();
        assert_eq!(mine.len(), 2, "one exchange per side for {path}: {mine:#?}");
        for view in &mine {
            let process = if str_at(view, "/role") == "server" { "nginx" } else { client };
            assert!(str_at(view, "/process").starts_with(process), "{path}: {view}");
            assert_eq!(view["tls"], tls, "{view}");
            assert_eq!(str_at(view, "/request/method"), "GET", "{view}");
            assert_eq!(str_at(view, "/request/version"), "HTTP/2", "{view}");
            assert_eq!(str_at(view, "/response/version"), "HTTP/2", "{view}");
            assert_eq!(view["response"]["status"], 200, "{view}");
            assert_eq!(view["response"]["body_size"], *body, "{view}");
            assert_eq!(view["complete"], true, "{view}");
            assert!(str_at(view, "/request/headers/host").starts_with("127.0.0.1"), "{view}");
        }
        clients.extend(mine.into_iter().filter(|e| str_at(e, "/role") == "client").cloned());
    }
    clients
}

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.txt", vec![b'a'; 100]),
        ("b.txt", vec![b'b'; 20_000]),
        ("c.txt", vec![b'c'; 3]),
        ("d.txt", vec![b'd'; 70_000]),
        ("e.txt", vec![b'e'; 1_234]),
    ]
}

/// Every client view of `paths` came over one connection.
fn one_connection(clients: &[Value], paths: &[&str]) {
    let conns: Vec<&Value> = clients
        .iter()
        .filter(|e| paths.contains(&str_at(e, "/request/path")))
        .map(|e| &e["conn_id"])
        .collect();
    assert_eq!(conns.len(), paths.len());
    assert!(conns.windows(2).all(|w| w[0] == w[1]), "{paths:?} on one connection: {conns:?}");
}

#[test]
fn kernel_http2_over_tls_nginx_curl_sequential_and_multiplexed() {
    if !harness::kernel_available("kernel_http2_over_tls_nginx_curl_sequential_and_multiplexed") {
        return;
    }
    let cert = harness::self_signed_cert();
    let port = harness::free_port();
    let files = files();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let _nginx = harness::nginx_http2(port, &refs, Some(&cert));
    let agent = Agent::start(&["--port", &port.to_string()]);
    let base = format!("https://127.0.0.1:{port}");
    let urls = |paths: &[&str]| paths.iter().map(|p| format!("{base}{p}")).collect::<Vec<_>>();
    // Several requests one after the other on one connection.
    let sequential = ["/a.txt", "/b.txt", "/api/seq"];
    curl_urls(&["--http2", "-k"], &urls(&sequential));
    // Several streams at once on one connection (curl -Z waits to multiplex).
    let parallel = ["/c.txt", "/d.txt", "/e.txt", "/api/par"];
    curl_urls(&["--http2", "-k", "-Z"], &urls(&parallel));
    let clients = both_views(
        &agent,
        &[
            ("/a.txt", 100),
            ("/b.txt", 20_000),
            ("/api/seq", 11),
            ("/c.txt", 3),
            ("/d.txt", 70_000),
            ("/e.txt", 1_234),
            ("/api/par", 11),
        ],
        true,
        "curl",
    );
    one_connection(&clients, &sequential);
    one_connection(&clients, &parallel);
    let plain: Vec<Value> = agent.exchanges().into_iter().filter(|e| e["tls"] != true).collect();
    assert!(plain.is_empty(), "exchanges built from ciphertext: {plain:#?}");
}

#[test]
fn kernel_http2_cleartext_prior_knowledge() {
    if !harness::kernel_available("kernel_http2_cleartext_prior_knowledge") {
        return;
    }
    let port = harness::free_port();
    let files = files();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let _nginx = harness::nginx_http2(port, &refs, None);
    let mut agent = Agent::start(&["--port", &port.to_string()]);
    let base = format!("http://127.0.0.1:{port}");
    // curl 7.88 fails to reuse a prior-knowledge connection: one request per curl.
    for path in ["/a.txt", "/d.txt", "/api/h2c"] {
        curl_urls(&["--http2-prior-knowledge"], &[format!("{base}{path}")]);
    }
    // Several streams at once on one cleartext connection: node's http2 client.
    let parallel = ["/b.txt", "/c.txt", "/e.txt", "/api/node"];
    let mut args = vec!["-e".to_owned(), NODE_H2C_CLIENT.to_owned(), port.to_string()];
    args.extend(parallel.iter().map(|p| (*p).to_owned()));
    let mut node = Proc::spawn(Command::new("node").args(&args));
    assert!(node.child.wait().unwrap().success(), "node http2 client failed");
    both_views(&agent, &[("/a.txt", 100), ("/d.txt", 70_000), ("/api/h2c", 11)], false, "curl");
    let clients = both_views(
        &agent,
        &[("/b.txt", 20_000), ("/c.txt", 3), ("/e.txt", 1_234), ("/api/node", 11)],
        false,
        "node",
    );
    one_connection(&clients, &parallel);
    let log = agent.stop();
    assert!(log.contains("\"h2\""), "the stop summary has HTTP/2 counts: {log}");
}

/// GETs every path given after the port at once, as streams of one HTTP/2 session with prior
/// knowledge (h2c).
const NODE_H2C_CLIENT: &str = "
const http2 = require('http2');
const [port, ...paths] = process.argv.slice(1);
const session = http2.connect('http://127.0.0.1:' + port);
session.on('error', e => { console.error(e); process.exit(2); });
let left = paths.length;
for (const path of paths) {
  const req = session.request({':path': path});
  req.on('response', h => { if (h[':status'] !== 200) process.exit(1); });
  req.resume();
  req.on('end', () => { if (--left === 0) session.close(); });
  req.end();
}";

/// A gRPC server (grpcio, no generated code: raw bytes in and out) with one method that succeeds
/// and one that fails with `NOT_FOUND`.
const GRPC_SERVER: &str = r#"
import sys
from concurrent import futures
import grpc
def charge(request, context):
    return b"\x08\x01\x12\x08accepted"
def lookup(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such account")
handlers = {"Charge": grpc.unary_unary_rpc_method_handler(charge),
            "Lookup": grpc.unary_unary_rpc_method_handler(lookup)}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bank.v1.Payments", handlers),))
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
server.wait_for_termination()
"#;

/// Calls Charge with `Charge { string reference = 1; Card card = 2 { string number = 1; } }`
/// and Lookup, which fails.
const GRPC_CLIENT: &str = r#"
import sys
import grpc
def field(n, data):
    return bytes([n << 3 | 2, len(data)]) + data
card = field(1, b"4111111111111111")
message = field(1, b"order-77") + field(2, card)
with grpc.insecure_channel("127.0.0.1:" + sys.argv[1]) as channel:
    reply = channel.unary_unary("/bank.v1.Payments/Charge")(message, timeout=10)
    assert reply.endswith(b"accepted"), reply
    try:
        channel.unary_unary("/bank.v1.Payments/Lookup")(field(1, b"acct-1"), timeout=10)
        sys.exit("Lookup should have failed")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
"#;

#[test]
fn kernel_grpc_call_names_status_and_card_in_protobuf() {
    if !harness::kernel_available("kernel_grpc_call_names_status_and_card_in_protobuf") {
        return;
    }
    let grpc_ok = Command::new("python3").args(["-c", "import grpc"]).status().is_ok_and(|s| s.success());
    assert!(grpc_ok, "python grpcio is missing: `cargo xtask setup` installs it");
    let port = harness::free_port();
    let _server = Proc::spawn(
        Command::new("python3").args(["-c", GRPC_SERVER, &port.to_string()]).stdout(Stdio::null()),
    );
    harness::wait_listening(port);
    let mut agent = Agent::start(&["--port", &port.to_string()]);
    harness::python(GRPC_CLIENT, &[&port.to_string()]);
    let seen = agent.wait_for(
        "both views of both calls",
        |e| e["rpc"]["system"] == "grpc",
        |s| {
            ["Charge", "Lookup"].iter().all(|m| {
                let mine = || s.iter().filter(|e| e["rpc"]["method"] == *m);
                mine().any(|e| str_at(e, "/role") == "server")
                    && mine().any(|e| str_at(e, "/role") == "client")
            })
        },
    );
    for e in &seen {
        assert_eq!(str_at(e, "/rpc/service"), "bank.v1.Payments", "{e}");
        assert_eq!(str_at(e, "/request/version"), "HTTP/2", "{e}");
        assert_eq!(e["response"]["status"], 200, "{e}");
        let (method, code) = (str_at(e, "/rpc/method"), &e["rpc"]["grpc_status_code"]);
        match method {
            "Charge" => {
                assert_eq!(*code, 0, "{e}");
                let card = e["findings"]
                    .as_array()
                    .and_then(|f| f.iter().find(|f| str_at(f, "/location") == "request.body:grpc[0].2.1"))
                    .unwrap_or_else(|| panic!("card in the nested protobuf string found: {e}"));
                assert!(
                    str_at(card, "/sample").contains('*')
                        || !str_at(card, "/sample").contains("4111111111111111")
                );
            }
            "Lookup" => assert_eq!(*code, 5, "NOT_FOUND from the trailers: {e}"),
            other => panic!("unexpected method {other}: {e}"),
        }
    }
    let log = agent.stop();
    let output = std::fs::read_to_string(agent.output()).unwrap();
    for (what, text) in [("output", &output), ("log", &log)] {
        assert!(!text.contains("4111111111111111"), "raw card number in the {what}");
    }
}
