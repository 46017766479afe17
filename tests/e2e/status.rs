//! `apisense status`, the blind-spot inventory, against real processes: an OpenSSL-linked python
//! server, node (OpenSSL built in) and a Java server (JSSE, which no native probe can read).
use std::{
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::harness::{self, Proc, agent_bin};

const JAVA_SERVER: &str = r#"
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
public class Server {
    public static void main(String[] args) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 0);
        s.createContext("/", x -> { x.sendResponseHeaders(204, -1); x.close(); });
        s.start();
    }
}
"#;

pub(crate) fn status() -> Vec<Value> {
    let out = Command::new(agent_bin()).args(["status", "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["processes"].as_array().unwrap().clone()
}

pub(crate) fn listening_on(all: &[Value], port: u16) -> Option<&Value> {
    all.iter().find(|p| p["listening"].as_array().is_some_and(|l| l.iter().any(|x| x == port)))
}

#[test]
fn status_says_which_processes_tls_is_decrypted_and_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let (py, node, java) = (harness::free_port(), harness::free_port(), harness::free_port());
    let _py = harness::echo_server(py);
    let _node = Proc::spawn(
        Command::new("node")
            .args([
                "-e",
                &format!("require('http').createServer((q,s)=>s.end('x')).listen({node},'127.0.0.1')"),
            ])
            .stdout(Stdio::null()),
    );
    let source = dir.path().join("Server.java");
    std::fs::write(&source, JAVA_SERVER).unwrap();
    let _java = Proc::spawn(Command::new("java").arg(&source).arg(java.to_string()).stdout(Stdio::null()));
    // Java compiles the source first: give it time.
    let deadline = Instant::now() + Duration::from_mins(1);
    let all = loop {
        let all = status();
        if [py, node, java].iter().all(|p| listening_on(&all, *p).is_some()) || Instant::now() > deadline {
            break all;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let of =
        |port: u16| listening_on(&all, port).unwrap_or_else(|| panic!("port {port} not listed: {all:#?}"));
    let python = of(py);
    assert_eq!(python["tls"]["status"], "decrypted", "{python}");
    assert_eq!(python["tls"]["library"], "OpenSSL", "{python}");
    let node = of(node);
    assert_eq!(node["tls"]["status"], "decrypted", "{node}");
    assert_eq!(node["tls"]["library"], "OpenSSL (built in)", "{node}");
    let java = of(java);
    assert_eq!(java["tls"]["status"], "not_decrypted", "{java}");
    assert_eq!(java["tls"]["library"], "Java JSSE", "{java}");
    assert!(java["process"].as_str().unwrap().starts_with("java"), "{java}");

    let table = Command::new(agent_bin()).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    let first_row = text.lines().nth(1).unwrap_or_default();
    assert!(first_row.contains("NOT DECRYPTED"), "blind processes come first:\n{text}");
}

/// The running agent says, once, when a program whose TLS it cannot read starts.
#[test]
fn kernel_agent_reports_a_jvm_it_cannot_decrypt() {
    if !harness::kernel_available("kernel_agent_reports_a_jvm_it_cannot_decrypt") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = harness::free_port();
    let agent = harness::Agent::start(&["--port", &port.to_string()]);
    let source = dir.path().join("Server.java");
    std::fs::write(&source, JAVA_SERVER).unwrap();
    let _java = Proc::spawn(Command::new("java").arg(&source).arg(port.to_string()).stdout(Stdio::null()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !agent.stderr().contains("Java's TLS (JSSE) has no native function to probe") {
        assert!(Instant::now() < deadline, "no blind-spot warning:\n{}", agent.stderr());
        thread::sleep(Duration::from_millis(100));
    }
}
