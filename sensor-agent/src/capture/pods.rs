//! Pod identity for the containers of this node, from the Kubernetes API.
//!
//! **In:** a watch (list, then watch, resumed with backoff) of the pods whose `spec.nodeName` is
//! this node, so the agent never holds the whole cluster. **Out:** a directory from container id
//! (as `/proc/PID/cgroup` names it) to the pod's namespace, name, uid, node, container name and
//! labels, read by the exporters for each exchange. Outside Kubernetes (`auto` and no
//! `KUBERNETES_SERVICE_HOST`) none of this runs and nothing errors. **Counted:** pods known, watch
//! errors.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt as _, watcher};
use thiserror::Error;

use crate::config::{KubernetesConfig, Toggle};

/// What an exchange is tagged with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PodInfo {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub node: String,
    /// The container's name in the pod spec.
    pub container: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Error)]
pub enum PodsError {
    #[error("kubernetes.enabled is true but no cluster configuration was found (in-cluster or KUBECONFIG)")]
    NoCluster(#[source] kube::Error),
}

/// Container id -> pod, shared between the watch task and the exporters.
#[derive(Debug, Clone, Default)]
pub struct PodDirectory {
    inner: Arc<RwLock<Directory>>,
    pub watch_errors: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Directory {
    by_container: HashMap<String, Arc<PodInfo>>,
    /// pod uid -> its container ids, to forget a pod's containers when it changes or goes.
    containers_of: HashMap<String, Vec<String>>,
}

impl Directory {
    fn apply(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.clone() else { return };
        self.remove(&uid);
        let entries = pod_entries(pod);
        self.containers_of.insert(uid, entries.iter().map(|(id, _)| id.clone()).collect());
        for (id, info) in entries {
            self.by_container.insert(id, Arc::new(info));
        }
    }

    fn remove(&mut self, uid: &str) {
        for id in self.containers_of.remove(uid).unwrap_or_default() {
            self.by_container.remove(&id);
        }
    }
}

impl PodDirectory {
    #[must_use]
    pub fn lookup(&self, container_id: &str) -> Option<Arc<PodInfo>> {
        self.inner.read().ok()?.by_container.get(container_id).cloned()
    }

    /// Pods currently known.
    #[must_use]
    pub fn pods(&self) -> u64 {
        self.inner.read().map_or(0, |d| d.containers_of.len() as u64)
    }

    fn update(&self, f: impl FnOnce(&mut Directory)) {
        if let Ok(mut d) = self.inner.write() {
            f(&mut d);
        }
    }
}

/// Which node's pods to watch: the setting, else `NODE_NAME` (downward API), else the host name.
#[must_use]
pub fn node_name(config: &KubernetesConfig) -> String {
    config
        .node_name
        .clone()
        .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned()
        })
}

/// Starts the pod watch if configured (or, with `auto`, if running in a pod). Must be called
/// inside the tokio runtime.
pub async fn start(config: &KubernetesConfig) -> Result<Option<PodDirectory>, PodsError> {
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    match (config.enabled, in_pod) {
        (Toggle::False, _) | (Toggle::Auto, false) => return Ok(None),
        _ => {}
    }
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) if config.enabled == Toggle::True => return Err(PodsError::NoCluster(e)),
        Err(e) => {
            log::warn!("Kubernetes API not usable, exchanges carry no pod identity: {e}");
            return Ok(None);
        }
    };
    let node = node_name(config);
    let directory = PodDirectory::default();
    log::info!("watching the pods of node {node} for pod identity");
    tokio::spawn(watch(client, node, directory.clone()));
    Ok(Some(directory))
}

async fn watch(client: kube::Client, node: String, directory: PodDirectory) {
    let pods: kube::Api<Pod> = kube::Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = watcher(pods, config).default_backoff().boxed();
    // Filled during a (re)list, swapped in when it is complete, so lookups never see half a list.
    let mut relist: Option<Directory> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => relist = Some(Directory::default()),
            Ok(watcher::Event::InitApply(pod)) => match relist.as_mut() {
                Some(d) => d.apply(&pod),
                None => directory.update(|d| d.apply(&pod)),
            },
            Ok(watcher::Event::InitDone) => {
                if let Some(fresh) = relist.take() {
                    log::info!("pod identity: {} pods on node {node}", fresh.containers_of.len());
                    directory.update(|d| *d = fresh);
                }
            }
            Ok(watcher::Event::Apply(pod)) => directory.update(|d| d.apply(&pod)),
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    directory.update(|d| d.remove(uid));
                }
            }
            Err(e) => {
                // The backoff retries; log the first error and then every power of two.
                let n = directory.watch_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    log::warn!("pod watch: {e} ({n} errors so far; retrying)");
                }
            }
        }
    }
}

/// `(container id, identity)` for every container of the pod that has started (the runtime's
/// `containerd://<id>`, `cri-o://<id>`, `docker://<id>` without its scheme).
#[must_use]
pub fn pod_entries(pod: &Pod) -> Vec<(String, PodInfo)> {
    let meta = &pod.metadata;
    let (Some(name), Some(uid)) = (meta.name.clone(), meta.uid.clone()) else {
        return Vec::new();
    };
    let namespace = meta.namespace.clone().unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let labels = meta.labels.clone().unwrap_or_default();
    let Some(status) = pod.status.as_ref() else { return Vec::new() };
    let statuses =
        [&status.container_statuses, &status.init_container_statuses, &status.ephemeral_container_statuses];
    statuses
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|c| {
            let id = c.container_id.as_deref()?;
            let id = id.split_once("://").map_or(id, |(_, id)| id);
            (!id.is_empty()).then(|| {
                let info = PodInfo {
                    namespace: namespace.clone(),
                    pod: name.clone(),
                    pod_uid: uid.clone(),
                    node: node.clone(),
                    container: c.name.clone(),
                    labels: labels.clone(),
                };
                (id.to_owned(), info)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, containers: &[(&str, &str)]) -> Pod {
        let statuses: Vec<serde_json::Value> =
            containers.iter().map(|(name, id)| serde_json::json!({"name": name, "containerID": id, "image": "x", "imageID": "", "ready": true, "restartCount": 0})).collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "payments-7d9f", "namespace": "bank", "uid": uid, "labels": {"app": "payments"}},
            "spec": {"nodeName": "node-a", "containers": []},
            "status": {"containerStatuses": statuses},
        }))
        .unwrap()
    }

    #[test]
    fn container_ids_without_the_runtime_scheme() {
        let id = "a".repeat(64);
        let p =
            pod("u1", &[("api", &format!("containerd://{id}")), ("sidecar", "cri-o://bb"), ("waiting", "")]);
        let entries = pod_entries(&p);
        assert_eq!(entries.len(), 2, "a container not started yet has no id");
        assert_eq!(entries[0].0, id);
        assert_eq!(entries[0].1.container, "api");
        assert_eq!(entries[0].1.namespace, "bank");
        assert_eq!(entries[0].1.node, "node-a");
        assert_eq!(entries[0].1.labels["app"], "payments");
        assert_eq!(entries[1].0, "bb");
    }

    #[test]
    fn directory_follows_updates_and_deletes() {
        let mut d = Directory::default();
        d.apply(&pod("u1", &[("api", "containerd://c1")]));
        assert!(d.by_container.contains_key("c1"));
        // A restarted container has a new id: the old one is forgotten.
        d.apply(&pod("u1", &[("api", "containerd://c2")]));
        assert!(!d.by_container.contains_key("c1") && d.by_container.contains_key("c2"));
        d.remove("u1");
        assert!(d.by_container.is_empty() && d.containers_of.is_empty());
        let nameless: Pod = serde_json::from_value(serde_json::json!({"metadata": {}})).unwrap();
        d.apply(&nameless);
        assert!(pod_entries(&nameless).is_empty());
    }

    #[tokio::test]
    async fn off_outside_kubernetes_unless_required() {
        let auto = KubernetesConfig { enabled: Toggle::Auto, node_name: None };
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
            assert!(start(&auto).await.unwrap().is_none());
        }
        let off = KubernetesConfig { enabled: Toggle::False, node_name: None };
        assert!(start(&off).await.unwrap().is_none());
        assert_eq!(
            node_name(&KubernetesConfig { enabled: Toggle::True, node_name: Some("n1".into()) }),
            "n1"
        );
    }
}
