//! The agent as the `DaemonSet` runs it: uid 0 with exactly the capabilities the manifest grants
//! (read from `deploy/kubernetes/daemonset.yaml`, which `deploy/check.sh` keeps equal to the
//! chart's renders and the README's table), and with one privilege taken away.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::{
    go_tls,
    harness::{self, Agent, str_at},
    kubernetes::PodCgroup,
    tls::both_sides,
};

/// The shipped `DaemonSet` manifest: its path and text.
pub(crate) fn manifest() -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/daemonset.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// The `capabilities.add` list of the agent container in the shipped manifest, in either YAML
/// form (`add: [A, B]` or one `- A` per line, comments allowed).
pub(crate) fn manifest_capabilities() -> Vec<String> {
    let (path, text) = manifest();
    let mut lines = text.lines().skip_while(|l| l.trim() != "capabilities:");
    let add = lines.find(|l| l.trim_start().starts_with("add:")).expect("capabilities.add in the manifest");
    let inline = add.trim_start().trim_start_matches("add:").trim();
    let unquote = |s: &str| s.trim().trim_matches('"').trim_matches('\'').to_owned();
    let caps: Vec<String> = if inline.starts_with('[') {
        inline.trim_matches(['[', ']']).split(',').map(unquote).filter(|c| !c.is_empty()).collect()
    } else {
        lines
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .map_while(|l| l.strip_prefix("- "))
            .map(unquote)
            .collect()
    };
    assert!(!caps.is_empty(), "no capabilities parsed from {}", path.display());
    caps
}

/// `setpriv` keeping uid 0 with only `caps` in the bounding set (so in the effective set).
fn with_only(caps: &[String]) -> Vec<String> {
    let set: Vec<String> = caps.iter().map(|c| format!("+{}", c.to_lowercase())).collect();
    vec!["setpriv".into(), "--bounding-set".into(), format!("-all,{}", set.join(",")), "--".into()]
}

#[test]
fn kernel_daemonset_capabilities_capture_plaintext_tls_go_and_identity() {
    if !harness::kernel_available("kernel_daemonset_capabilities_capture_plaintext_tls_go_and_identity") {
        return;
    }
    let caps = manifest_capabilities();
    assert!(!caps.iter().any(|c| c == "SYS_ADMIN"), "the manifest grants SYS_ADMIN: {caps:?}");
    let cert = harness::self_signed_cert();
    let (plain, tls, go) = (harness::free_port(), harness::free_port(), harness::free_port());
    let cgroup = PodCgroup::create_for(
        "5b1f0c7e-0d2a-4c55-9e3b-2a9d8c7b6a50",
        "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
    );
    let server = harness::echo_server(plain);
    cgroup.enter(server.pid());
    let _nginx = harness::nginx_tls(tls, &[("page.txt", b"hello over tls")], &cert);
    let programs = go_tls::programs();
    let _go = go_tls::go_server(&programs.server, go, &cert);
    let ports = [plain, tls, go].map(|p| p.to_string());
    let agent =
        Agent::start_via(&with_only(&caps), &["--port", &ports[0], "--port", &ports[1], "--port", &ports[2]]);
    let log = agent.stderr();
    let expected = format!("privileges: holding {}", caps.join(", "));
    assert!(log.contains(&expected), "the start line names the capabilities held: {log}");
    assert!(log.contains("lacking SYS_ADMIN") && log.contains("TLS stays visible"), "{log}");
    assert!(!log.contains("could not be attached"), "a TLS probe failed: {log}");

    // Plaintext, with the process and container identity of the server.
    harness::curl_ok(&[&format!("http://127.0.0.1:{plain}/accounts/7")]);
    let seen = agent.wait_for("plaintext", |e| str_at(e, "/request/path") == "/accounts/7", |s| s.len() >= 2);
    let server_view = seen.iter().find(|e| e["role"] == "server").expect("server view");
    assert_eq!(server_view["pid"], server.pid(), "{server_view:#}");
    assert!(str_at(server_view, "/process").starts_with("python"), "{server_view:#}");
    assert_eq!(
        server_view["container_id"], "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
        "{server_view:#}"
    );
    let client_view = seen.iter().find(|e| e["role"] == "client").expect("client view");
    assert!(str_at(client_view, "/process").starts_with("curl"), "{client_view:#}");

    // OpenSSL (nginx and curl) and GnuTLS (wget), both sides.
    harness::curl_ok(&["-k", &format!("https://127.0.0.1:{tls}/page.txt")]);
    both_sides(&agent, "/page.txt", "nginx", "curl", 14);
    let wget = Command::new("wget")
        .args([
            "--no-check-certificate",
            "-q",
            "-O",
            "/dev/null",
            &format!("https://127.0.0.1:{tls}/page.txt?by=wget"),
        ])
        .stdout(Stdio::null())
        .status()
        .expect("wget");
    assert!(wget.success());
    agent.wait_for(
        "wget's GnuTLS view",
        |e| str_at(e, "/request/path") == "/page.txt" && str_at(e, "/process").starts_with("wget"),
        |s| s.iter().any(|e| e["tls"] == true && e["response"]["body_size"] == 14),
    );

    // Go crypto/tls, server side (stripped binary) and a Go client.
    go_tls::go_get(&agent, &programs.client, &[&format!("https://127.0.0.1:{go}/go/manifest")]);
    let go_views = agent.wait_for(
        "Go TLS, both sides",
        |e| str_at(e, "/request/path") == "/go/manifest",
        |s| s.iter().any(|e| e["role"] == "server") && s.iter().any(|e| e["role"] == "client"),
    );
    assert!(go_views.iter().all(|e| e["tls"] == true), "{go_views:#?}");
    drop(server);
}

#[test]
fn kernel_a_missing_privilege_is_named_with_its_cost() {
    if !harness::kernel_available("kernel_a_missing_privilege_is_named_with_its_cost") {
        return;
    }
    let caps = manifest_capabilities();
    let fewer: Vec<String> = caps.iter().filter(|c| *c != "DAC_READ_SEARCH").cloned().collect();
    assert!(fewer.len() < caps.len(), "the manifest grants DAC_READ_SEARCH: {caps:?}");
    let port = harness::free_port();
    let server = harness::echo_server(port);
    let mut agent = Agent::start_via(&with_only(&fewer), &["--port", &port.to_string()]);
    let log = agent.stderr();
    assert!(log.contains("lacking DAC_READ_SEARCH (TLS libraries and programs in container files"), "{log}");
    harness::curl_ok(&[&format!("http://127.0.0.1:{port}/still/seen")]);
    agent.wait_for(
        "plaintext without DAC_READ_SEARCH",
        |e| str_at(e, "/request/path") == "/still/seen",
        |s| s.len() >= 2,
    );
    agent.stop();

    // A read-only tracefs (the manifests before this was measured) leaves TLS invisible: the
    // agent says so at start, as a warning, and still captures plaintext.
    let mut launcher = vec![
        "unshare".to_owned(),
        "--mount".to_owned(),
        "--propagation".to_owned(),
        "private".to_owned(),
        "sh".to_owned(),
        "-c".to_owned(),
        "mount -o bind,ro /sys/kernel/tracing /sys/kernel/tracing && exec \"$@\"".to_owned(),
        "sh".to_owned(),
    ];
    launcher.extend(with_only(&caps));
    let agent = Agent::start_via(&launcher, &["--port", &port.to_string()]);
    let log = agent.stderr();
    assert!(log.contains("WARN") && log.contains("read-only here: TLS is NOT visible"), "{log}");
    harness::curl_ok(&[&format!("http://127.0.0.1:{port}/read-only/tracefs")]);
    agent.wait_for(
        "plaintext with tracefs read-only",
        |e| str_at(e, "/request/path") == "/read-only/tracefs",
        |s| s.len() >= 2,
    );
    drop(server);
}
