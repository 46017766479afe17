//! Shared harness: the agent, servers and clients as child processes that are killed on drop,
//! and polling with deadlines instead of sleeps.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

pub fn agent_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("APISENSE_BIN") {
        return PathBuf::from(bin);
    }
    // Honour a target directory set for the build (relative ones are from the workspace root).
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir).join("debug/apisense");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/apisense")
}

/// Waits until `agent` has probed the program file `bin` for TLS (once for every process that
/// runs it): a program started after the agent is probed when its exec is seen.
pub fn wait_probed(agent: &Agent, bin: &Path) {
    let deadline = Instant::now() + Duration::from_mins(1);
    let probed = format!("TLS probes attached to {}", bin.display());
    while !agent.stderr().contains(&probed) {
        assert!(Instant::now() < deadline, "{} never probed:\n{}", bin.display(), agent.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `bin args..` to success, letting it start its work (a line on its stdin) only once
/// `agent` has probed its file. A program started after the agent is probed when its exec is
/// seen, and a client can make its first TLS call sooner (a limit the README states); that is
/// not what the tests using this are about.
pub fn run_once_probed(agent: &Agent, bin: &Path, args: &[&str]) {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_probed(agent, bin);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{} {args:?}: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
}

/// Whether the kernel tests can run here; under `cargo xtask test` (`APISENSE_E2E=1`) they must.
pub fn kernel_available(test: &str) -> bool {
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    if root && btf {
        return true;
    }
    assert!(
        std::env::var_os("APISENSE_E2E").is_none(),
        "{test}: needs root and kernel BTF (root={root}, btf={btf}) and APISENSE_E2E is set"
    );
    eprintln!("{test}: skipped: needs root and BTF (run `cargo xtask test`)");
    false
}

/// A child process killed (and reaped) when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        Proc { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `run --state-dir DIR/state --output DIR/exchanges.jsonl ARGS..`, and that output file.
fn run_command_line(dir: &Path, args: &[&str]) -> (Vec<String>, PathBuf) {
    let output = dir.join("exchanges.jsonl");
    let mut command_line = vec![
        "run".to_owned(),
        "--state-dir".to_owned(),
        dir.join("state").display().to_string(),
        "--output".to_owned(),
        output.display().to_string(),
    ];
    command_line.extend(args.iter().map(|a| (*a).to_owned()));
    (command_line, output)
}

pub struct Agent {
    proc: Proc,
    output: PathBuf,
    stderr: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

impl Agent {
    /// Starts `apisense run --output FILE ARGS..` and waits for its "capturing" line.
    pub fn start(args: &[&str]) -> Agent {
        Self::start_env(args, &[])
    }

    /// [`Agent::start`] with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Agent {
        Self::start_launched(&[], env, |dir| run_command_line(dir, args))
    }

    /// Starts the agent with the arguments `command` builds in a fresh temporary directory (it
    /// also names the JSONL file the harness reads), and waits for its "capturing" line.
    pub fn start_with(env: &[(&str, &str)], command: impl FnOnce(&Path) -> (Vec<String>, PathBuf)) -> Agent {
        Self::start_launched(&[], env, command)
    }

    /// [`Agent::start`] through a launcher (`launcher[0] launcher[1..] apisense run ...`), e.g.
    /// `setpriv` with a capability set.
    pub fn start_via(launcher: &[String], args: &[&str]) -> Agent {
        Self::start_launched(launcher, &[], |dir| run_command_line(dir, args))
    }

    fn start_launched(
        launcher: &[String],
        env: &[(&str, &str)],
        command: impl FnOnce(&Path) -> (Vec<String>, PathBuf),
    ) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let (argv, output) = command(dir.path());
        let mut cmd = match launcher.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(agent_bin());
                c
            }
            None => Command::new(agent_bin()),
        };
        cmd.args(&argv).envs(env.iter().copied()).env("RUST_LOG", "info");
        Self::start_command(dir, output, &mut cmd)
    }

    /// Starts the agent through a command line of the caller's own (e.g. `podman run IMAGE
    /// ...`, where the binary is inside an image) whose JSONL output appears at `output`, with
    /// `dir` kept until the agent is dropped, and waits for its "capturing" line on stderr.
    pub fn start_command(dir: tempfile::TempDir, output: PathBuf, cmd: &mut Command) -> Agent {
        let mut proc = Proc::spawn(cmd.stdout(Stdio::null()).stderr(Stdio::piped()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = proc.child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("[agent] {line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut agent = Agent { proc, output, stderr, dir };
        let deadline = Instant::now() + Duration::from_mins(1);
        while !agent.stderr().contains("capturing") {
            assert!(agent.proc.is_running(), "agent exited before capturing:\n{}", agent.stderr());
            assert!(Instant::now() < deadline, "agent not capturing after 60 s:\n{}", agent.stderr());
            thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    /// Resident memory of the agent process now, in bytes.
    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn output(&self) -> &Path {
        &self.output
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// The exchange lines of the output (security event lines left out: see [`Agent::events`]).
    pub fn exchanges(&self) -> Vec<Value> {
        self.lines().into_iter().filter(|l| l.get("event").is_none()).collect()
    }

    /// The security finding/event lines of the output (`"event":"security"`).
    pub fn events(&self) -> Vec<Value> {
        self.lines().into_iter().filter(|l| l["event"] == "security").collect()
    }

    fn lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        // The agent may be mid-write: only newline-terminated lines are complete records.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line {l:?}: {e}")))
            .collect()
    }

    /// Polls the output until `done` holds for the exchanges matching `filter`, or panics with
    /// what was seen.
    pub fn wait_for(
        &self,
        what: &str,
        filter: impl Fn(&Value) -> bool,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen: Vec<Value> = self.exchanges().into_iter().filter(|e| filter(e)).collect();
            if done(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; matching exchanges:\n{}\nagent log:\n{}",
                seen.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Interrupts the agent and returns its log.
    pub fn stop(&mut self) -> String {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.proc.pid() as i32, libc::SIGINT) };
        // Generous: the kernel removes each uprobe after an RCU grace period, one at a time
        // (~0.2 s each on a busy 2-core VM), and a Go program alone carries about twenty.
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.proc.is_running() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(!self.proc.is_running(), "agent ignored SIGINT");
        thread::sleep(Duration::from_millis(100));
        self.stderr()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {port}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The handler of [`ECHO_SERVER`], shared with the HTTPS variant.
const ECHO_SERVER_CLASS: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Echo-Path", self.path)
        self.end_headers()
        self.wfile.write(body)
    do_GET = reply
    do_POST = reply
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 256
"#;

/// A python HTTP/1.1 server that answers any GET/POST with a JSON body naming the path, and echoes
/// the path in `X-Echo-Path`, so a response can be matched to its request.
pub fn echo_server_script() -> String {
    format!(
        "{ECHO_SERVER_CLASS}\nThreadingHTTPServer((\"127.0.0.1\", int(sys.argv[1])), H).serve_forever()\n"
    )
}

pub fn echo_server(port: u16) -> Proc {
    let p = Proc::spawn(
        Command::new("python3").args(["-c", &echo_server_script(), &port.to_string()]).stdout(Stdio::null()),
    );
    wait_listening(port);
    p
}

pub fn python(script: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("python3").arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "python client failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn curl(args: &[&str]) -> Proc {
    Proc::spawn(Command::new("curl").args(["-s", "-o", "/dev/null", "--max-time", "10"]).args(args))
}

/// Runs curl to completion and returns its pid.
pub fn curl_ok(args: &[&str]) -> u32 {
    let mut p = curl(args);
    let pid = p.pid();
    let status = p.child.wait().unwrap();
    assert!(status.success(), "curl {args:?} failed: {status}");
    pid
}

/// nginx serving `root` on 127.0.0.1:port, with sendfile off (bodies go through write/writev).
pub struct Nginx {
    _proc: Proc,
    _dir: tempfile::TempDir,
}

pub fn nginx(port: u16, files: &[(&str, &[u8])]) -> Nginx {
    nginx_with(port, files, None, false)
}

/// nginx over TLS with the given certificate.
pub fn nginx_tls(port: u16, files: &[(&str, &[u8])], cert: &Cert) -> Nginx {
    nginx_with(port, files, Some(cert), false)
}

/// nginx speaking HTTP/2: over TLS (ALPN h2) with a certificate, else cleartext HTTP/2 with
/// prior knowledge (h2c).
pub fn nginx_http2(port: u16, files: &[(&str, &[u8])], cert: Option<&Cert>) -> Nginx {
    nginx_with(port, files, cert, true)
}

fn nginx_with(port: u16, files: &[(&str, &[u8])], cert: Option<&Cert>, http2: bool) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).unwrap();
    for (name, content) in files {
        std::fs::write(root.join(name), content).unwrap();
    }
    // Workers run as nobody: the tree must be world-readable.
    for p in [dir.path(), root.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let conf = dir.path().join("nginx.conf");
    let d = dir.path().display();
    let mut f = std::fs::File::create(&conf).unwrap();
    write!(
        f,
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile off; keepalive_requests 10000;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port}{ssl}{http2};
    {certs}
    root {root};
    location /api/ {{ default_type application/json; return 200 '{{\"ok\":true}}'; }}
  }}
}}
",
        root = root.display(),
        ssl = if cert.is_some() { " ssl" } else { "" },
        // nginx 1.22 (Debian 12) takes the listen parameter; `http2 on;` needs 1.25.
        http2 = if http2 { " http2" } else { "" },
        certs = cert.map_or(String::new(), |c| format!(
            "ssl_certificate {}; ssl_certificate_key {};",
            c.cert.display(),
            c.key.display()
        )),
    )
    .unwrap();
    let proc =
        Proc::spawn(Command::new("nginx").arg("-c").arg(&conf).arg("-e").arg(dir.path().join("error.log")));
    wait_listening(port);
    Nginx { _proc: proc, _dir: dir }
}

pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

pub fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or_default()
}

/// A self-signed certificate for 127.0.0.1 made with the openssl CLI.
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn self_signed_cert() -> Cert {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            // A leaf certificate valid for 127.0.0.1, so strict TLS stacks (rustls) accept it.
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    Cert { cert, key, _dir: dir }
}

/// A python HTTPS server (the `ssl` module over OpenSSL) answering like [`echo_server`].
pub fn python_https_server(port: u16, cert: &Cert) -> Proc {
    let script = format!(
        "{ECHO_SERVER_CLASS}\nimport ssl\nctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\nctx.load_cert_chain({:?}, {:?})\n\
         s = ThreadingHTTPServer((\"127.0.0.1\", {port}), H)\ns.socket = ctx.wrap_socket(s.socket, server_side=True)\ns.serve_forever()\n",
        cert.cert.display().to_string(),
        cert.key.display().to_string(),
    );
    let p = Proc::spawn(Command::new("python3").args(["-c", &script]).stdout(Stdio::null()));
    wait_listening(port);
    p
}

/// A node HTTPS server (OpenSSL statically linked into node) answering like [`echo_server`].
pub fn node_https_server(port: u16, cert: &Cert) -> Proc {
    let script = format!(
        "const fs = require('fs');
         require('https').createServer({{key: fs.readFileSync({key:?}), cert: fs.readFileSync({cert:?})}}, (req, res) => {{
           req.resume();
           req.on('end', () => {{
             const body = JSON.stringify({{path: req.url}});
             res.writeHead(200, {{'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Echo-Path': req.url}});
             res.end(body);
           }});
         }}).listen({port}, '127.0.0.1');",
        key = cert.key.display().to_string(),
        cert = cert.cert.display().to_string(),
    );
    let p = Proc::spawn(Command::new("node").args(["-e", &script]).stdout(Stdio::null()));
    wait_listening(port);
    p
}

/// GETs `url` with node's https client (certificate checks off: the test CA is self-signed).
pub fn node_get(url: &str) -> u32 {
    let script = "const u = new URL(process.argv[1]);
        require('https').get({host: u.hostname, port: u.port, path: u.pathname + u.search, rejectUnauthorized: false, agent: false}, res => {
          res.resume(); res.on('end', () => process.exit(res.statusCode === 200 ? 0 : 1));
        }).on('error', e => { console.error(e); process.exit(2); });";
    let mut p = Proc::spawn(Command::new("node").args(["-e", script, url]));
    let pid = p.pid();
    assert!(p.child.wait().unwrap().success(), "node client failed for {url}");
    pid
}

/// GETs `url` with python's urllib over `ssl` (certificate checks off).
pub fn python_get(url: &str) -> u32 {
    let script = "import ssl, sys, urllib.request
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with urllib.request.urlopen(sys.argv[1], context=ctx) as r:
    r.read(); assert r.status == 200";
    let mut p = Proc::spawn(Command::new("python3").args(["-c", script, url]));
    let pid = p.pid();
    assert!(p.child.wait().unwrap().success(), "python client failed for {url}");
    pid
}
