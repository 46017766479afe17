//! Go `crypto/tls` plaintext from the `(*Conn).Read`/`Write` probes, end to end: a Go HTTPS
//! server and client (standard library only, built here, stripped and not), against curl and
//! nginx, and a Go server under load while the agent comes and goes.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::{
    harness::{self, Agent, Proc, str_at},
    status::{listening_on, status},
    tls::{both_sides, no_plaintext_exchanges},
};

/// Answers every path with `{"path":"<path>"}` over HTTP/1.1 (HTTP/2 off: the checks below are
/// about TLS, not framing).
const SERVER: &str = r#"package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strconv"
)

func main() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := fmt.Sprintf(`{"path":%q}`, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write([]byte(body))
	})
	srv := &http.Server{
		Addr:         "127.0.0.1:" + os.Args[1],
		Handler:      h,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	if err := srv.ListenAndServeTLS(os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
"#;

/// `get URL..`: once a line arrives on stdin, GETs each URL (one connection each) and checks
/// for a 200.
/// `load STOPFILE MIN URL`: GETs `URL/N` until STOPFILE exists and MIN requests were made,
/// checking each reply is exactly what the server above sends for it.
const CLIENT: &str = r#"package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func get(c *http.Client, url string) (int, string) {
	r, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return r.StatusCode, string(b)
}

func main() {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	switch os.Args[1] {
	case "get":
		bufio.NewReader(os.Stdin).ReadString('\n')
		for _, url := range os.Args[2:] {
			if status, _ := get(c, url); status != 200 {
				fmt.Fprintln(os.Stderr, url, status)
				os.Exit(1)
			}
		}
	case "load":
		min, _ := strconv.Atoi(os.Args[3])
		n := 0
		for ; ; n++ {
			if _, err := os.Stat(os.Args[2]); err == nil && n >= min {
				break
			}
			path := "/load/" + strconv.Itoa(n)
			status, body := get(c, os.Args[4]+path)
			if want := fmt.Sprintf(`{"path":%q}`, path); status != 200 || body != want {
				fmt.Fprintf(os.Stderr, "request %d: %d %q, want 200 %q\n", n, status, body, want)
				os.Exit(1)
			}
			// A steady load, not a flood: the point is the program's behaviour while probes
			// come and go, on two-core CI machines where every other test's agent also
			// probes this running program and receives its plaintext.
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Println(n)
	}
}
"#;

/// The programs, built once per test run.
pub(crate) struct Programs {
    pub(crate) server: PathBuf,
    pub(crate) client: PathBuf,
    client_stripped: PathBuf,
    _dir: tempfile::TempDir,
}

pub(crate) fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let build = |name: &str, source: &str, flags: &str| -> PathBuf {
            let src = dir.path().join(format!("src-{name}"));
            std::fs::create_dir_all(&src).unwrap();
            std::fs::write(src.join("go.mod"), format!("module {name}\ngo 1.18\n")).unwrap();
            std::fs::write(src.join("main.go"), source).unwrap();
            let bin = dir.path().join(name);
            let out = Command::new("go")
                .current_dir(&src)
                .args(["build", &format!("-ldflags={flags}"), "-o"])
                .arg(&bin)
                .env("GOPATH", dir.path().join("gopath"))
                .env("GOCACHE", dir.path().join("gocache"))
                .env("GOFLAGS", "-mod=mod")
                .env("GOPROXY", "off")
                .output()
                .expect("running go (install golang-go; `cargo xtask setup` does)");
            assert!(out.status.success(), "go build {name}: {}", String::from_utf8_lossy(&out.stderr));
            bin
        };
        // Names within the 15 characters of a process's comm.
        let server = build("gotls-server", SERVER, "-s -w");
        let client = build("gotls-client", CLIENT, "");
        let client_stripped = build("gotls-client-s", CLIENT, "-s -w");
        Programs { server, client, client_stripped, _dir: dir }
    })
}

pub(crate) fn go_server(bin: &Path, port: u16, cert: &harness::Cert) -> Proc {
    let p = Proc::spawn(Command::new(bin).arg(port.to_string()).arg(&cert.cert).arg(&cert.key));
    harness::wait_listening(port);
    p
}

/// Runs the Go client on `urls` once `agent` has probed its file.
pub(crate) fn go_get(agent: &Agent, bin: &Path, urls: &[&str]) {
    let args: Vec<&str> = std::iter::once("get").chain(urls.iter().copied()).collect();
    harness::run_once_probed(agent, bin, &args);
}

#[test]
fn kernel_go_tls_server_and_clients_stripped_or_not() {
    if !harness::kernel_available("kernel_go_tls_server_and_clients_stripped_or_not") {
        return;
    }
    let go = programs();
    let cert = harness::self_signed_cert();
    let (go_port, nginx_port) = (harness::free_port(), harness::free_port());
    let _server = go_server(&go.server, go_port, &cert);
    let _nginx = harness::nginx_tls(nginx_port, &[], &cert);
    let mut agent = Agent::start(&["--port", &go_port.to_string(), "--port", &nginx_port.to_string()]);
    let go_base = format!("https://127.0.0.1:{go_port}");
    let nginx_base = format!("https://127.0.0.1:{nginx_port}");
    harness::curl_ok(&["-k", "--http1.1", &format!("{go_base}/go/curl")]);
    go_get(&agent, &go.client, &[&format!("{nginx_base}/api/go-plain"), &format!("{go_base}/go/client")]);
    go_get(&agent, &go.client_stripped, &[&format!("{nginx_base}/api/go-stripped")]);
    // Bodies: `{"path":"<path>"}` from the Go server, `{"ok":true}` from nginx.
    let go_body = |path: &str| 11 + path.len() as u64;
    both_sides(&agent, "/go/curl", "gotls-server", "curl", go_body("/go/curl"));
    both_sides(&agent, "/go/client", "gotls-server", "gotls-client", go_body("/go/client"));
    both_sides(&agent, "/api/go-plain", "nginx", "gotls-client", 11);
    both_sides(&agent, "/api/go-stripped", "nginx", "gotls-client-s", 11);
    no_plaintext_exchanges(&agent);
    let log = agent.stop();
    assert!(log.contains("crypto/tls.(*Conn).Read"), "{log}");
}

/// `apisense status` (no agent needed) counts a stripped Go server's TLS as decrypted.
#[test]
fn go_tls_status_reports_a_stripped_go_server_as_decrypted() {
    if Command::new("go").arg("version").output().is_err() {
        assert!(std::env::var_os("APISENSE_E2E").is_none(), "go is not installed (cargo xtask setup)");
        eprintln!("go is not installed: skipped");
        return;
    }
    let go = programs();
    let cert = harness::self_signed_cert();
    let port = harness::free_port();
    let _server = go_server(&go.server, port, &cert);
    let all = status();
    let server = listening_on(&all, port).unwrap_or_else(|| panic!("port {port} not listed: {all:#?}"));
    assert_eq!(server["tls"]["status"], "decrypted", "{server}");
    assert_eq!(server["tls"]["library"], "Go crypto/tls", "{server}");
    // The toolchain that built it, from the program's build info.
    let go = Command::new("go").arg("version").output().unwrap();
    let version = server["tls"]["version"].as_str().unwrap_or_default().to_owned();
    assert!(
        !version.is_empty() && String::from_utf8_lossy(&go.stdout).contains(&format!("go{version}")),
        "{server}"
    );
}

#[test]
fn kernel_go_tls_server_under_load_while_the_agent_comes_and_goes() {
    if !harness::kernel_available("kernel_go_tls_server_under_load_while_the_agent_comes_and_goes") {
        return;
    }
    let go = programs();
    let cert = harness::self_signed_cert();
    let port = harness::free_port();
    let _server = go_server(&go.server, port, &cert);
    let stop = tempfile::tempdir().unwrap();
    let stop_file = stop.path().join("stop");
    let mut load = Proc::spawn(
        Command::new(&go.client)
            .arg("load")
            .arg(&stop_file)
            .arg("200")
            .arg(format!("https://127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    for round in 0..3 {
        let mut agent = Agent::start(&["--port", &port.to_string()]);
        // Probed mid-run: the load's exchanges show up decrypted, from both programs. A call
        // already in flight while its probes go in is seen in part (incomplete), never wrong.
        let complete =
            |e: &serde_json::Value, role: &str| str_at(e, "/role") == role && e["complete"] == true;
        let seen = agent.wait_for(
            &format!("load exchanges in round {round}"),
            |e| str_at(e, "/request/path").starts_with("/load/"),
            |s| s.iter().any(|e| complete(e, "server")) && s.iter().any(|e| complete(e, "client")),
        );
        assert!(seen.iter().all(|e| e["tls"] == true), "{seen:#?}");
        assert!(
            seen.iter().filter(|e| e["complete"] == true).all(|e| e["response"]["status"] == 200
                && e["response"]["body_size"] == 11 + str_at(e, "/request/path").len() as u64),
            "{seen:#?}"
        );
        no_plaintext_exchanges(&agent);
        agent.stop();
        assert!(load.is_running(), "the load client stopped in round {round}");
    }
    std::fs::write(&stop_file, b"").unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    while load.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = finish(&mut load.child);
    assert!(out.0, "load client failed: {}", out.2);
    let requests: u64 = out.1.trim().parse().unwrap_or(0);
    assert!(requests >= 200, "only {requests} requests");
}

/// Waits for a child the [`Proc`] still owns: (success, stdout, stderr).
fn finish(child: &mut std::process::Child) -> (bool, String, String) {
    let stdout = child.stdout.take().map(harness::read_all).unwrap_or_default();
    let stderr = child.stderr.take().map(harness::read_all).unwrap_or_default();
    let ok = child.wait().is_ok_and(|s| s.success());
    (ok, String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}
