//! The agent's image run the way the `DaemonSet` runs it, under podman (Debian's package): the
//! host's PID namespace, the manifest's capabilities and mounts (read from
//! `deploy/kubernetes/daemonset.yaml`), uid 0, a read-only root filesystem, no privilege
//! escalation, its own network namespace (the pod network); and a plaintext and a TLS server
//! outside the container, seen from both sides.
//!
//! The image is built without a registry (none but Debian's is reachable here, and the
//! Dockerfile's `rust` and distroless bases come from Docker Hub and gcr.io): a root filesystem
//! holding what the Dockerfile's runtime stage holds (the agent binary at
//! `/usr/local/bin/apisense`, the glibc and libgcc it links, CA roots; no shell) imported with
//! `podman import`, with the Dockerfile's `ENTRYPOINT` and `USER`.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{
    harness::{self, Agent, str_at},
    privileges::{manifest, manifest_capabilities},
    tls::both_sides,
};

/// Global podman options for this machine: crun (podman's default here) refuses "cgroups in
/// hybrid mode" (cgroup v1 controllers beside a v2 mount) and any `RLIMIT_NOFILE` it sets, and
/// the systemd cgroup manager needs a systemd that this sandbox does not run.
const PODMAN: &[&str] = &["--runtime", "runc", "--cgroup-manager", "cgroupfs"];
/// Podman's default limits (nofile 1048576, nproc at the caller's hard limit) are above what this
/// sandbox lets a container set, and runc refuses to start when setrlimit fails; these lower ones
/// are accepted and are ample for the agent (a few hundred descriptors at most).
const LIMITS: &[&str] = &["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"];
/// Where the default seccomp profile of podman (containers-common) lives.
const PODMAN_SECCOMP: &str = "/usr/share/containers/seccomp.json";

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(PODMAN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running podman {args:?}: {e}"))
}

/// Whether podman did `what`; if not, under `cargo xtask test` (`APISENSE_E2E=1`) the test fails
/// with podman's words, elsewhere it is skipped with them.
fn podman_did(test: &str, what: &str, out: &Output) -> bool {
    if out.status.success() {
        return true;
    }
    let why = format!("{what}: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    assert!(std::env::var_os("APISENSE_E2E").is_none(), "{test}: podman cannot run the agent here: {why}");
    eprintln!("{test}: skipped: podman cannot run the agent here: {why}");
    false
}

/// The test's image and container, removed when dropped (the test failing included): `podman
/// run --rm` alone does not remove a container whose podman client was killed.
struct Podman {
    image: String,
    container: String,
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Ten seconds after SIGTERM, so that the agent removes its tracefs uprobe events.
        let _ = podman(&["rm", "--force", "--time", "10", &self.container]);
        let _ = podman(&["rmi", "--force", &self.image]);
    }
}

/// The shared libraries `bin` loads, the dynamic loader included, as `ldd` lists them.
fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().expect("running ldd");
    assert!(out.status.success(), "ldd {}: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`;
        // the vDSO has no file.
        .filter_map(|l| l.split("=>").last()?.split_whitespace().next().map(PathBuf::from))
        .filter(|p| p.is_absolute())
        .collect()
}

/// A copy of `from` at `root/to` (a hard link when on the same filesystem: the debug binary is
/// hundreds of MiB), the file itself when `from` is a symlink.
fn place(root: &Path, from: &Path, to: &Path) {
    let dest = root.join(to.strip_prefix("/").unwrap());
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let real = fs::canonicalize(from).unwrap();
    if fs::hard_link(&real, &dest).is_err() {
        fs::copy(&real, &dest).unwrap_or_else(|e| panic!("copying {}: {e}", real.display()));
    }
}

/// Imports the image `tag`: the Dockerfile's runtime stage rebuilt from this machine's files
/// (see the module comment).
fn import_image(tag: &str) -> Output {
    let root = tempfile::tempdir().unwrap();
    let bin = harness::agent_bin();
    place(root.path(), &bin, Path::new("/usr/local/bin/apisense"));
    for lib in shared_libraries(&bin) {
        place(root.path(), &lib, &lib);
    }
    // For OTLP over TLS, as distroless carries them; nothing in this test needs them.
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if ca.exists() {
        place(root.path(), ca, ca);
    }
    // Mount points, so that nothing has to be created in the read-only root at start.
    for dir in ["etc/apisense", "var/lib/apisense", "out", "proc", "sys", "dev"] {
        fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("running tar");
    let out = Command::new("podman")
        .args(PODMAN)
        .args([
            "import",
            "--change",
            r#"ENTRYPOINT ["/usr/local/bin/apisense"]"#,
            "--change",
            "USER 0:0",
            "-",
            tag,
        ])
        .stdin(Stdio::from(tar.stdout.take().unwrap()))
        .output()
        .expect("running podman import");
    assert!(tar.wait().unwrap().success(), "tar of the image's root failed");
    out
}

/// The runtime's default seccomp profile as containerd and Docker ship it: podman's own (Debian
/// 12's containers-common) allows `bpf(2)` and `perf_event_open(2)` only to `CAP_SYS_ADMIN`, so
/// the agent, holding `CAP_BPF` and `CAP_PERFMON` instead, is refused with EPERM. This is that
/// profile with the two calls also allowed to those capabilities, as containerd's
/// `RuntimeDefault` (>= 1.6) and Docker's default (>= 20.10) allow them; every other rule is
/// podman's.
fn runtime_default_seccomp(dir: &Path) -> PathBuf {
    let text = fs::read_to_string(PODMAN_SECCOMP).unwrap_or_else(|e| panic!("{PODMAN_SECCOMP}: {e}"));
    let mut profile: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rules = profile["syscalls"].as_array_mut().expect("syscalls in the seccomp profile");
    let gated = |rule: &serde_json::Value, name: &str| {
        rule["names"].as_array().is_some_and(|n| n.iter().any(|n| n == name))
    };
    let refusals = rules
        .iter_mut()
        .filter(|r| r["action"] == "SCMP_ACT_ERRNO" && gated(r, "bpf"))
        .map(|r| r["names"].as_array_mut().unwrap().retain(|n| n != "bpf" && n != "perf_event_open"))
        .count();
    assert_eq!(
        refusals, 1,
        "{PODMAN_SECCOMP} no longer refuses bpf(2) to non-SYS_ADMIN: revisit this profile"
    );
    for (call, cap) in [("bpf", "CAP_BPF"), ("perf_event_open", "CAP_PERFMON")] {
        rules.push(serde_json::json!({
            "names": [call], "action": "SCMP_ACT_ALLOW", "args": [],
            "includes": {"caps": [cap]}, "excludes": {}
        }));
    }
    let path = dir.join("seccomp.json");
    fs::write(&path, serde_json::to_vec(&profile).unwrap()).unwrap();
    path
}

/// One `volumeMounts` entry of the agent container and the volume behind it.
#[derive(Debug)]
struct ManifestMount {
    mount_path: String,
    read_only: bool,
    /// `hostPath.path`, or `None` for the `ConfigMap`.
    host_path: Option<String>,
}

/// The agent container's mounts in the shipped manifest: each `volumeMounts` entry with its
/// volume (`hostPath` or `configMap`).
fn manifest_mounts() -> Vec<ManifestMount> {
    let (path, text) = manifest();
    let lines: Vec<&str> =
        text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).collect();
    // The list under the line `start` (up to the line `end`), each entry as `key` -> value with
    // nested keys as `parent.key` (`hostPath.path`), told apart by their indentation.
    let section = |start: &str, end: Option<&str>| -> Vec<BTreeMap<String, String>> {
        let mut entries: Vec<BTreeMap<String, String>> = Vec::new();
        let (mut base, mut parent) = (0, String::new());
        for raw in
            lines.iter().skip_while(|l| l.trim() != start).skip(1).take_while(|l| Some(l.trim()) != end)
        {
            let mut indent = raw.len() - raw.trim_start().len();
            let mut line = raw.trim();
            if let Some(rest) = line.strip_prefix("- ") {
                entries.push(BTreeMap::new());
                (line, indent, base) = (rest, indent + 2, indent + 2);
            }
            let (Some((key, value)), Some(entry)) = (line.split_once(':'), entries.last_mut()) else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim().trim_matches('"'));
            if indent > base {
                entry.insert(format!("{parent}.{key}"), value.to_owned());
            } else if value.is_empty() {
                key.clone_into(&mut parent);
            } else {
                entry.insert(key.to_owned(), value.to_owned());
            }
        }
        entries
    };
    let volumes = section("volumes:", None);
    let mounts: Vec<ManifestMount> = section("volumeMounts:", Some("volumes:"))
        .into_iter()
        .map(|m| {
            let name = m["name"].clone();
            let volume =
                volumes.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("volume {name}"));
            ManifestMount {
                mount_path: m["mountPath"].clone(),
                read_only: m.get("readOnly").is_some_and(|r| r == "true"),
                host_path: volume.get("hostPath.path").cloned(),
            }
        })
        .collect();
    assert!(
        mounts.iter().any(|m| m.host_path.is_some()),
        "no hostPath mounts parsed from {}",
        path.display()
    );
    mounts
}

/// GETs `url` (the kubelet's startup probe, from outside the pod) until it answers 200 with the
/// agent's metrics: the body stays empty until the pipeline's first tick (250 ms) fills it.
fn wait_metrics(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("curl").args(["-s", "--fail", "--max-time", "2", url]).output().unwrap();
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && body.contains("apisense_") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered with metrics: {} {body:?}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `podman run` of the image as the `DaemonSet` runs it, with `dir`'s `config`, `state` and `out`
/// directories in place of the `ConfigMap`, the node's state directory and the test's output.
/// `seccomp`: a profile file, or `None` for podman's own default.
fn daemonset_run(
    guard: &Podman,
    caps: &[String],
    mounts: &[ManifestMount],
    dir: &Path,
    seccomp: Option<&Path>,
) -> Command {
    let (config, state, out) = (dir.join("config"), dir.join("state"), dir.join("out"));

    // The manifest's mounts: kernel interfaces from the host itself, the node's state directory
    // as a fresh directory (not this machine's /var/lib/apisense), the ConfigMap as the config
    // directory; plus the test's output directory.
    let mut volumes = Vec::new();
    for m in mounts {
        let source = match (&m.host_path, m.mount_path.as_str()) {
            (Some(host), _) if host.starts_with("/sys/") => PathBuf::from(host),
            (Some(_), "/var/lib/apisense") => state.clone(),
            (None, "/etc/apisense") => config.clone(),
            _ => panic!("a mount this test does not reproduce: {m:?}"),
        };
        let mode = if m.read_only { "ro" } else { "rw" };
        volumes.push(format!("{}:{}:{mode}", source.display(), m.mount_path));
    }
    volumes.push(format!("{}:/out:rw", out.display()));

    let mut cmd = Command::new("podman");
    cmd.args(PODMAN).args(["run", "--rm", "--pull=never", "--name", &guard.container]).args(LIMITS);
    // hostPID, and the securityContext: uid 0, the manifest's capabilities only, no privilege
    // escalation, a read-only root (without podman's extra tmpfs on /tmp and /run, which a
    // Kubernetes container does not get), RuntimeDefault seccomp (see runtime_default_seccomp),
    // AppArmor unconfined. The network is podman's default bridge: a namespace of its own, as
    // the pod network is.
    cmd.args(["--pid=host", "--user", "0:0", "--cap-drop=ALL"])
        .arg(format!("--cap-add={}", caps.join(",")))
        .args(["--security-opt", "no-new-privileges", "--read-only", "--read-only-tmpfs=false"])
        .args(["--security-opt", "apparmor=unconfined"]);
    if let Some(profile) = seccomp {
        cmd.arg("--security-opt").arg(format!("seccomp={}", profile.display()));
    }
    for v in &volumes {
        cmd.arg("--volume").arg(v);
    }
    // The DaemonSet's args; RUST_LOG as the harness sets it for every agent.
    cmd.args(["--env", "RUST_LOG=info", &guard.image, "run", "--config", "/etc/apisense/config.yaml"]);
    cmd
}

#[test]
fn kernel_daemonset_image_under_podman_captures_host_plaintext_and_tls() {
    const TEST: &str = "kernel_daemonset_image_under_podman_captures_host_plaintext_and_tls";
    if !harness::kernel_available(TEST) {
        return;
    }
    let version = Command::new("podman").arg("--version").output();
    let Ok(version) = version else {
        assert!(std::env::var_os("APISENSE_E2E").is_none(), "{TEST}: podman is not installed");
        eprintln!("{TEST}: skipped: podman is not installed (`cargo xtask test` installs it)");
        return;
    };
    if !podman_did(TEST, "podman --version", &version) {
        return;
    }
    let caps = manifest_capabilities();
    let mounts = manifest_mounts();
    // Unique per run: other runs of the suite may share this machine's podman storage.
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let guard = Podman {
        image: format!("localhost/apisense-e2e:{unique}"),
        container: format!("apisense-e2e-{unique}"),
    };
    if !podman_did(TEST, "podman import", &import_image(&guard.image)) {
        return;
    }
    // Podman can run a container here at all (before anything depends on it).
    let mut smoke = vec!["run", "--rm", "--pull=never"];
    smoke.extend(LIMITS);
    smoke.extend([guard.image.as_str(), "--version"]);
    let smoke = podman(&smoke);
    if !podman_did(TEST, "podman run IMAGE --version", &smoke) {
        return;
    }

    let (plain, tls) = (harness::free_port(), harness::free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    fs::create_dir_all(&config).unwrap();
    // The ConfigMap's keys that matter here (metrics_addr, state_dir as shipped), the output on a
    // host directory the test reads, and the test's ports. No Kubernetes API runs here: the pod
    // lookup is covered by tests/e2e/kubernetes.rs.
    fs::write(
        config.join("config.yaml"),
        format!(
            "log: info\noutput: /out/exchanges.jsonl\nmetrics_addr: \"0.0.0.0:9464\"\n\
             state_dir: /var/lib/apisense\nports: [{plain}, {tls}]\nkubernetes:\n  enabled: false\n"
        ),
    )
    .unwrap();
    let (state, out) = (dir.path().join("state"), dir.path().join("out"));
    fs::create_dir_all(&state).unwrap();
    fs::create_dir_all(&out).unwrap();

    // With podman's own default seccomp profile the agent cannot load anything: it must say
    // why (a profile, not missing capabilities) and exit non-zero, as a pod would crash-loop.
    let refused = daemonset_run(&guard, &caps, &mounts, dir.path(), None).output().unwrap();
    let log = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the agent ran under podman's default seccomp profile: {log}");
    assert!(log.contains("EPERM although the needed capabilities are held: a seccomp"), "{log}");
    assert!(log.contains(&format!("privileges: holding {}", caps.join(", "))), "{log}");

    let server = harness::echo_server(plain);
    let cert = harness::self_signed_cert();
    let _nginx = harness::nginx_tls(tls, &[("page.txt", b"hello over tls")], &cert);

    let seccomp = runtime_default_seccomp(dir.path());
    let mut cmd = daemonset_run(&guard, &caps, &mounts, dir.path(), Some(&seccomp));
    eprintln!("{TEST}: {cmd:?}");
    let mut agent = Agent::start_command(dir, out.join("exchanges.jsonl"), &mut cmd);

    let log = agent.stderr();
    let expected = format!("privileges: holding {}", caps.join(", "));
    assert!(log.contains(&expected), "the start line names the capabilities held: {log}");
    assert!(log.contains("TLS stays visible"), "{log}");
    assert!(!log.contains("could not be attached"), "a TLS probe failed: {log}");

    // A network namespace of its own (the pod network), where the kubelet's probes reach
    // /metrics on the pod's address.
    let inspect =
        podman(&["inspect", "--format", "{{.State.Pid}} {{.NetworkSettings.IPAddress}}", &guard.container]);
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
    let (pid, ip) = inspect.trim().split_once(' ').expect("pid and address");
    let netns = |pid: &str| fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(netns(pid), netns("self"), "the agent must not share the host's network namespace");
    wait_metrics(&format!("http://{ip}:9464/metrics"));

    // Plaintext between two host processes, both sides, with the host PID of the server (the
    // agent resolves it in the host's /proc, shared through hostPID).
    harness::curl_ok(&[&format!("http://127.0.0.1:{plain}/accounts/42")]);
    let seen = agent.wait_for(
        "plaintext, both sides",
        |e| str_at(e, "/request/path") == "/accounts/42",
        |s| s.iter().any(|e| e["role"] == "server") && s.iter().any(|e| e["role"] == "client"),
    );
    let server_view = seen.iter().find(|e| e["role"] == "server").unwrap();
    assert_eq!(server_view["pid"], server.pid(), "{server_view:#}");
    assert_eq!(server_view["tls"], false, "{server_view:#}");
    assert!(str_at(server_view, "/process").starts_with("python"), "{server_view:#}");
    let client_view = seen.iter().find(|e| e["role"] == "client").unwrap();
    assert!(str_at(client_view, "/process").starts_with("curl"), "{client_view:#}");

    // OpenSSL on the host (nginx and curl), both sides, decrypted through the uprobes the agent
    // created in the host's tracefs from inside the container.
    harness::curl_ok(&["-k", &format!("https://127.0.0.1:{tls}/page.txt")]);
    both_sides(&agent, "/page.txt", "nginx", "curl", 14);

    let log = agent.stop();
    assert!(!log.contains("ERROR"), "{log}");
    drop(server);
    drop(guard);
}
