//! rustls plaintext from the `Reader`/`Writer` probes, end to end: a rustls HTTPS server (hyper
//! over tokio-rustls, as axum serves) and two rustls clients (rustls's blocking stream, as ureq
//! uses; hyper over tokio-rustls, as reqwest does), against curl and nginx. The programs are
//! the crate in `tests/rustls-peer`, built here from crates.io; a whole-program LTO build of it
//! must be reported as not decrypted, with the reason.
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::{
    harness::{self, Agent, Proc, str_at},
    status::{listening_on, status},
    tls::{both_sides, no_plaintext_exchanges},
};

/// The peer, built once per test run: a normal release build and an LTO one.
struct Programs {
    release: PathBuf,
    lto: PathBuf,
}

fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("rustls-peer/Cargo.toml");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
            |dir| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir),
        );
        std::fs::create_dir_all(&target).unwrap();
        // The agent logs the path as the kernel maps it: no `..`.
        let target = target.canonicalize().unwrap().join("rustls-peer");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        for profile in ["release", "lto"] {
            let out = Command::new(&cargo)
                .args(["build", "--locked", "--profile", profile, "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target)
                .output()
                .expect("running cargo");
            assert!(
                out.status.success(),
                "building rustls-peer ({profile}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Copies under distinct names (a process's comm is its file name).
        let copy = |profile: &str, name: &str| {
            let to = target.join(name);
            std::fs::copy(target.join(profile).join("rustls-peer"), &to).unwrap();
            to
        };
        Programs { release: copy("release", "rustls-peer"), lto: copy("lto", "rustls-peer-lto") }
    })
}

fn rustls_server(bin: &Path, port: u16, cert: &harness::Cert) -> Proc {
    let p = Proc::spawn(Command::new(bin).arg("server").arg(port.to_string()).arg(&cert.cert).arg(&cert.key));
    harness::wait_listening(port);
    p
}

/// Runs a rustls client (`get-blocking` or `get-hyper`) on `urls` once `agent` has probed it.
fn rustls_get(agent: &Agent, bin: &Path, mode: &str, urls: &[&str]) {
    let args: Vec<&str> = std::iter::once(mode).chain(urls.iter().copied()).collect();
    harness::run_once_probed(agent, bin, &args);
}

#[test]
fn kernel_rustls_server_and_clients_against_curl_and_nginx() {
    if !harness::kernel_available("kernel_rustls_server_and_clients_against_curl_and_nginx") {
        return;
    }
    let peer = programs();
    let cert = harness::self_signed_cert();
    let (rustls_port, nginx_port) = (harness::free_port(), harness::free_port());
    let _nginx = harness::nginx_tls(nginx_port, &[], &cert);
    let mut agent = Agent::start(&["--port", &rustls_port.to_string(), "--port", &nginx_port.to_string()]);
    // Started after the agent: probed when its exec is seen.
    let _server = rustls_server(&peer.release, rustls_port, &cert);
    harness::wait_probed(&agent, &peer.release);
    let rustls_base = format!("https://127.0.0.1:{rustls_port}");
    let nginx_base = format!("https://127.0.0.1:{nginx_port}");
    harness::curl_ok(&["-k", "--http1.1", &format!("{rustls_base}/rustls/curl")]);
    rustls_get(
        &agent,
        &peer.release,
        "get-blocking",
        &[&format!("{rustls_base}/rustls/blocking"), &format!("{nginx_base}/api/blocking")],
    );
    rustls_get(
        &agent,
        &peer.release,
        "get-hyper",
        &[&format!("{rustls_base}/rustls/hyper"), &format!("{nginx_base}/api/hyper")],
    );
    // Bodies: `{"path":"<path>"}` from the rustls server, `{"ok":true}` from nginx.
    let body = |path: &str| 11 + path.len() as u64;
    both_sides(&agent, "/rustls/curl", "rustls-peer", "curl", body("/rustls/curl"));
    both_sides(&agent, "/rustls/blocking", "rustls-peer", "rustls-peer", body("/rustls/blocking"));
    both_sides(&agent, "/rustls/hyper", "rustls-peer", "rustls-peer", body("/rustls/hyper"));
    both_sides(&agent, "/api/blocking", "nginx", "rustls-peer", 11);
    both_sides(&agent, "/api/hyper", "nginx", "rustls-peer", 11);
    // Many connections at once on the server's two worker threads, each request arriving with
    // the client's TLS 1.3 Finished (the server writes its session tickets before the request
    // is handed out): every request still lands on its own connection.
    let urls: Vec<String> = (0..100).map(|i| format!("{rustls_base}/rustls/parallel/{i}")).collect();
    let mut args = vec!["-k", "--http1.1", "-Z", "--parallel-max", "25"];
    args.extend(urls.iter().map(String::as_str));
    harness::curl_ok(&args);
    let parallel = agent.wait_for(
        "100 parallel exchanges from the server's side",
        |e| str_at(e, "/request/path").starts_with("/rustls/parallel/") && str_at(e, "/role") == "server",
        |s| s.len() >= 100,
    );
    for e in &parallel {
        assert_eq!(e["complete"], true, "{e}");
        assert_eq!(e["response"]["body_size"], body(str_at(e, "/request/path")), "{e}");
    }
    no_plaintext_exchanges(&agent);
    let log = agent.stop();
    assert!(log.contains("rustls Writer::write_vectored"), "{log}");
    assert!(log.contains("\"tls_unknown_fd\":0"), "every plaintext call tied to its socket: {log}");
}

/// `apisense status` (no agent needed): the release build is decrypted; the LTO build, whose
/// plaintext writer was inlined, is listed as not decrypted with that reason.
#[test]
fn rustls_status_tells_a_probed_build_from_an_lto_one() {
    if Command::new("cargo").arg("--version").output().is_err() {
        eprintln!("cargo is not on PATH: skipped");
        return;
    }
    let peer = programs();
    let cert = harness::self_signed_cert();
    let (port, lto_port) = (harness::free_port(), harness::free_port());
    let _server = rustls_server(&peer.release, port, &cert);
    let _lto = rustls_server(&peer.lto, lto_port, &cert);
    let all = status();
    let server = listening_on(&all, port).unwrap_or_else(|| panic!("port {port} not listed: {all:#?}"));
    assert_eq!(server["tls"]["status"], "decrypted", "{server}");
    assert_eq!(server["tls"]["library"], "rustls", "{server}");
    // The version the lock file pins, from the crate paths in the program.
    assert!(server["tls"]["version"].as_str().is_some_and(|v| v.starts_with("0.23.")), "{server}");
    let lto = listening_on(&all, lto_port).unwrap_or_else(|| panic!("port {lto_port} not listed: {all:#?}"));
    assert_eq!(lto["tls"]["status"], "not_decrypted", "{lto}");
    assert_eq!(lto["tls"]["library"], "rustls", "{lto}");
    assert!(lto["tls"]["reason"].as_str().unwrap_or_default().contains("inlined"), "{lto}");
}
