//! Pod identity: a process in a real Kubernetes-shaped cgroup, a Kubernetes API that lists the
//! node's pods (a stand-in server speaking the API's list/watch protocol: no cluster can run
//! here), and the agent's exchanges carrying the pod's namespace, name, uid and labels.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::{
    harness::{self, Agent, Proc, str_at},
    otlp::{Receiver, attr_str},
};

const CONTAINER_ID: &str = "7d5cc1a4b2f8e9d0c3b6a5f4e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0";
const POD_UID: &str = "0f6c2a9e-4b1d-4e8a-9c3f-2d7b5a1e6c40";

/// Answers the list with one pod of node `argv[2]` whose container has `argv[3]` as its id, and
/// holds watches open; logs every request path to `argv[4]`.
const API_SERVER: &str = r#"
import json, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
port, node, container_id, uid, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
pod = {
    "metadata": {"name": "payments-api-0", "namespace": "bank", "uid": uid,
                 "resourceVersion": "7", "labels": {"app": "payments", "tier": "api"}},
    "spec": {"nodeName": node, "containers": [{"name": "api", "image": "bank/payments:1"}]},
    "status": {"phase": "Running", "containerStatuses": [{
        "name": "api", "containerID": "containerd://" + container_id, "image": "bank/payments:1",
        "imageID": "", "ready": True, "restartCount": 0}]},
}
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + "\n")
        if "watch=true" in self.path or "watch=1" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            time.sleep(120)
            return
        body = json.dumps({"kind": "PodList", "apiVersion": "v1",
                           "metadata": {"resourceVersion": "7"}, "items": [pod]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

fn kubeconfig(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             users:\n- name: e2e\n  user:\n    token: e2e-token\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: e2e\n\
             current-context: e2e\n"
        ),
    )
    .unwrap();
    path
}

/// A cgroup shaped as the kubelet's systemd driver makes them, in the cgroup v2 hierarchy
/// (hybrid hosts mount it at /sys/fs/cgroup/unified); removed on drop.
pub(crate) struct PodCgroup(PathBuf);

impl PodCgroup {
    pub(crate) fn create() -> PodCgroup {
        Self::create_for(POD_UID, CONTAINER_ID)
    }

    /// A pod of its own for tests that run beside this file's (cgroups are host-wide).
    pub(crate) fn create_for(pod_uid: &str, container_id: &str) -> PodCgroup {
        // Pure v2 hosts have cgroup.controllers at the top; hybrid ones mount v2 at unified/.
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .iter()
            .map(Path::new)
            .find(|p| {
                p.join("cgroup.controllers").exists()
                    || p.ends_with("unified") && p.join("cgroup.procs").exists()
            })
            .expect("a cgroup v2 hierarchy");
        let pod = pod_uid.replace('-', "_");
        let dir = root.join(format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod}.slice/cri-containerd-{container_id}.scope"
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        PodCgroup(dir)
    }

    pub(crate) fn enter(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        // Only empty cgroups can go; the caller's processes are killed first.
        let mut dir = Some(self.0.as_path());
        while let Some(d) = dir.filter(|d| {
            d.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("kubepods") || n.to_string_lossy().starts_with("cri-")
            })
        }) {
            let _ = std::fs::remove_dir(d);
            dir = d.parent();
        }
    }
}

#[test]
fn kernel_exchanges_carry_the_pod_of_their_container() {
    if !harness::kernel_available("kernel_exchanges_carry_the_pod_of_their_container") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (api_port, port) = (harness::free_port(), harness::free_port());
    let api_log = dir.path().join("api.log");
    let _api = Proc::spawn(
        Command::new("python3")
            .args(["-c", API_SERVER, &api_port.to_string(), "node-e2e", CONTAINER_ID, POD_UID])
            .arg(&api_log)
            .stdout(Stdio::null()),
    );
    harness::wait_listening(api_port);
    let cgroup = PodCgroup::create();
    let server = harness::echo_server(port);
    cgroup.enter(server.pid());
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "kubernetes:\n  enabled: true\n  node_name: node-e2e\n").unwrap();
    let kubeconfig = kubeconfig(dir.path(), api_port);
    let receiver_port = harness::free_port();
    let receiver = Receiver::start(receiver_port);
    let endpoint = format!("http://127.0.0.1:{receiver_port}");
    let agent = Agent::start_env(
        &["--config", config.to_str().unwrap(), "--port", &port.to_string(), "--otlp-endpoint", &endpoint],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    agent.wait_for(
        "the pod list",
        |_| true,
        |_| agent.stderr().contains("pod identity: 1 pods on node node-e2e"),
    );
    harness::curl_ok(&[&format!("http://127.0.0.1:{port}/accounts/42")]);
    let seen =
        agent.wait_for("both views", |e| str_at(e, "/request/path") == "/accounts/42", |s| s.len() >= 2);
    let server_view = seen.iter().find(|e| e["role"] == "server").expect("server view");
    assert_eq!(server_view["container_id"], CONTAINER_ID, "{server_view:#}");
    let pod = &server_view["k8s"];
    assert_eq!(pod["namespace"], "bank", "{server_view:#}");
    assert_eq!(pod["pod"], "payments-api-0");
    assert_eq!(pod["pod_uid"], POD_UID);
    assert_eq!(pod["node"], "node-e2e");
    assert_eq!(pod["container"], "api");
    assert_eq!(pod["labels"]["app"], "payments");
    let client_view = seen.iter().find(|e| e["role"] == "client").expect("client view");
    assert!(client_view.get("k8s").is_none() && client_view.get("container_id").is_none(), "{client_view:#}");
    // The span's resource names the pod, by the Kubernetes resource conventions.
    let spans = receiver.wait_spans("the server span", |s| {
        s.iter().any(|(_, span)| attr_str(&span.attributes, "url.path") == "/accounts/42" && span.kind == 2)
    });
    let (resource, _) = spans
        .iter()
        .find(|(_, span)| attr_str(&span.attributes, "url.path") == "/accounts/42" && span.kind == 2)
        .unwrap();
    assert_eq!(attr_str(resource, "k8s.pod.name"), "payments-api-0");
    assert_eq!(attr_str(resource, "k8s.namespace.name"), "bank");
    assert_eq!(attr_str(resource, "k8s.pod.uid"), POD_UID);
    assert_eq!(attr_str(resource, "k8s.container.name"), "api");
    assert_eq!(attr_str(resource, "k8s.node.name"), "node-e2e");
    assert_eq!(attr_str(resource, "k8s.pod.label.app"), "payments");
    assert_eq!(attr_str(resource, "container.id"), CONTAINER_ID);
    // Only this node's pods were asked for.
    let requests = std::fs::read_to_string(&api_log).unwrap();
    assert!(requests.lines().all(|l| l.contains("fieldSelector=spec.nodeName%3Dnode-e2e")), "{requests}");
    drop(server);
}

/// `enabled: true` without a cluster is an error that says so, before anything is attached.
#[test]
fn kubernetes_required_without_a_cluster_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "kubernetes:\n  enabled: true\n").unwrap();
    let out = Command::new(harness::agent_bin())
        .args(["run", "--output", "-", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&config)
        .env("KUBECONFIG", dir.path().join("missing-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("kubernetes.enabled is true"), "{stderr}");
}
