//! Container identity from a process's `/proc/PID/cgroup`.
//!
//! In: the file's text, as read (any bytes decoded lossily are fine). Out: the container's id,
//! the runtime that named its cgroup, and the Kubernetes pod UID when the path carries one, or
//! `None` for host processes. Pure and total: no allocation beyond the result, never panics.
//!
//! The cgroup path is the only identity a process carries that every runtime writes and that
//! survives without asking the runtime: docker, containerd and CRI-O all name the container's
//! cgroup after its 64-hex id, under the kubelet's pod cgroup when Kubernetes started it. The
//! layouts differ by cgroup version (v1: one line per hierarchy; v2: one `0::` line) and by
//! cgroup driver (systemd: `<prefix>-<id>.scope` under `kubepods-<qos>-pod<uid>.slice`, with the
//! UID's dashes turned into underscores; cgroupfs: `pod<uid>/<id>`).
//!
//! An agent in a pod has its own cgroup namespace, so the kernel shows other processes' paths
//! relative to the agent's cgroup (`0::/../../kubepods-...`): parsing works on path segments
//! and ignores where the path is rooted.

/// Who created the container's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
    /// A bare id under a pod (cgroupfs driver): containerd and cri-dockerd both name the cgroup
    /// after the id alone, so the path cannot tell them apart.
    Unknown,
}

impl Runtime {
    /// The value for the `container.runtime` resource attribute.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerIdentity {
    /// 64 lowercase hex digits, as the runtime and `kubectl get pod -o yaml` (`containerID`)
    /// print it.
    pub id: String,
    pub runtime: Runtime,
    /// The pod's `metadata.uid` (dashed form; a static pod's UID is 32 hex digits).
    pub pod_uid: Option<String>,
}

/// The container a process runs in, from the text of its `/proc/PID/cgroup`.
#[must_use]
pub fn identify(cgroup: &str) -> Option<ContainerIdentity> {
    // v1 lists every hierarchy (they agree for containers; the ones a runtime does not manage
    // say `/`), v2 has one line: the first line naming a container is the answer.
    cgroup.lines().find_map(|line| identify_path(line.splitn(3, ':').nth(2)?))
}

fn identify_path(path: &str) -> Option<ContainerIdentity> {
    // A cgroup removed while the process still runs is shown with this suffix.
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != "..").collect();
    // The container is the deepest segment naming one: podman (and systemd-in-container) nest a
    // `container` cgroup below the scope, docker-in-docker nests a second id below the first.
    let (index, id, named_by) = segments
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, segment)| container_segment(segment).map(|(id, runtime)| (i, id, runtime)))?;
    let runtime = named_by.unwrap_or_else(|| {
        // A bare id: `/docker/<id>` is docker's cgroupfs layout; under a pod it is ambiguous.
        match index.checked_sub(1).and_then(|p| segments.get(p)) {
            Some(&"docker") => Runtime::Docker,
            _ => Runtime::Unknown,
        }
    });
    let pod_uid = segments.get(..index).and_then(|parents| parents.iter().rev().find_map(|s| pod_uid(s)));
    Some(ContainerIdentity { id: id.to_owned(), runtime, pod_uid })
}

/// `(id, runtime)` when `segment` is a container's own cgroup; the runtime is `None` for a bare
/// id (named by its parent, if at all). Runtime monitors (`crio-conmon-<id>`,
/// `libpod-conmon-<id>`) sit beside the container in a cgroup named after it but are not it.
fn container_segment(segment: &str) -> Option<(&str, Option<Runtime>)> {
    const PREFIXES: &[(&str, Runtime)] = &[
        ("cri-containerd-", Runtime::Containerd),
        ("nerdctl-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
        ("docker-", Runtime::Docker),
        ("libpod-", Runtime::Podman),
    ];
    let name = segment.strip_suffix(".scope").unwrap_or(segment);
    if is_container_id(name) {
        return Some((name, None));
    }
    PREFIXES.iter().find_map(|(prefix, runtime)| {
        let id = name.strip_prefix(prefix)?;
        is_container_id(id).then_some((id, Some(*runtime)))
    })
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The pod UID named by a kubelet pod cgroup: `pod<uid>` (cgroupfs) or
/// `kubepods[-<qos>]-pod<uid_with_underscores>.slice` (systemd, possibly under a kubelet-chosen
/// prefix such as kind's `kubelet-kubepods-...`).
fn pod_uid(segment: &str) -> Option<String> {
    let raw = if let Some(slice) = segment.strip_suffix(".slice") {
        if !slice.contains("kubepods") {
            return None;
        }
        slice.rsplit_once("-pod")?.1
    } else {
        segment.strip_prefix("pod")?
    };
    let uid = raw.replace('_', "-");
    is_pod_uid(&uid).then_some(uid)
}

/// A UUID (8-4-4-4-12 lowercase hex) or a static pod's 32-hex config hash.
fn is_pod_uid(s: &str) -> bool {
    let hex = |b: u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
    match s.len() {
        32 => s.bytes().all(hex),
        36 => {
            s.bytes().enumerate().all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { hex(b) })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Ids and UIDs below are taken from public issue threads and runtime documentation, in the
    // exact layout each runtime and cgroup driver writes.
    const CRI_ID: &str = "66be9b2efdf4d85288c319b8c1a2f50d2439b5617e36f45d9d0d0be1381113be";
    const CRIO_ID: &str = "32da98c8522068be05a7510a3eddb09cad6ed2f03286180d0e931d0d0b6224a6";
    const PODMAN_ID: &str = "cf21d19260ace8544fe8b769fc2638bf2c0873dfbfff0b6253f0569b26a1d5eb";
    const DOCKER_ID: &str = "0df3ec69da862320d2b8947aa2481f92de3274f1fb3cffd8594a26d1e6627b35";
    const UID: &str = "207aaad1-659f-4db8-88e0-46e0cdcc3004";

    fn id(text: &str) -> (String, Runtime, Option<String>) {
        let found = identify(text).unwrap_or_else(|| panic!("no container in {text:?}"));
        (found.id, found.runtime, found.pod_uid)
    }

    fn expect(text: &str, container: &str, runtime: Runtime, pod: Option<&str>) {
        assert_eq!(id(text), (container.to_owned(), runtime, pod.map(str::to_owned)), "{text}");
    }

    #[test]
    fn cgroup_v2_systemd_driver() {
        let uid_ = UID.replace('-', "_");
        expect(
            &format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/cri-containerd-{CRI_ID}.scope\n"
            ),
            CRI_ID,
            Runtime::Containerd,
            Some(UID),
        );
        expect(
            &format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/crio-{CRIO_ID}.scope\n"
            ),
            CRIO_ID,
            Runtime::CriO,
            Some(UID),
        );
        // Guaranteed QoS pods sit directly under kubepods.slice.
        expect(
            &format!("0::/kubepods.slice/kubepods-pod{uid_}.slice/docker-{DOCKER_ID}.scope\n"),
            DOCKER_ID,
            Runtime::Docker,
            Some(UID),
        );
        // Static pods (kubelet manifests) have a 32-hex config hash as their UID.
        expect(
            &format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod03671a0313f5acf27bef3683009923f8.slice/cri-containerd-{CRI_ID}.scope"
            ),
            CRI_ID,
            Runtime::Containerd,
            Some("03671a0313f5acf27bef3683009923f8"),
        );
        // kind nests the kubelet's cgroups under its own prefix.
        expect(
            &format!(
                "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{uid_}.slice/cri-containerd-{CRI_ID}.scope"
            ),
            CRI_ID,
            Runtime::Containerd,
            Some(UID),
        );
    }

    #[test]
    fn cgroup_v2_seen_from_inside_the_agents_cgroup_namespace() {
        // What a DaemonSet pod reads for another pod's process: rooted at the agent's cgroup.
        let uid_ = UID.replace('-', "_");
        expect(
            &format!("0::/../../kubepods-besteffort-pod{uid_}.slice/cri-containerd-{CRI_ID}.scope\n"),
            CRI_ID,
            Runtime::Containerd,
            Some(UID),
        );
        assert_eq!(identify("0::/../../../system.slice/containerd.service\n"), None);
        assert_eq!(identify("0::/\n"), None);
    }

    #[test]
    fn cgroup_v2_cgroupfs_driver_and_plain_docker() {
        expect(&format!("0::/kubepods/besteffort/pod{UID}/{CRI_ID}\n"), CRI_ID, Runtime::Unknown, Some(UID));
        expect(
            &format!("0::/kubepods/burstable/pod{UID}/crio-{CRIO_ID}\n"),
            CRIO_ID,
            Runtime::CriO,
            Some(UID),
        );
        expect(&format!("0::/system.slice/docker-{DOCKER_ID}.scope\n"), DOCKER_ID, Runtime::Docker, None);
        expect(&format!("0::/docker/{DOCKER_ID}\n"), DOCKER_ID, Runtime::Docker, None);
        expect(&format!("0::/system.slice/nerdctl-{CRI_ID}.scope\n"), CRI_ID, Runtime::Containerd, None);
    }

    #[test]
    fn podman_rootful_rootless_and_nested() {
        expect(&format!("0::/machine.slice/libpod-{PODMAN_ID}.scope\n"), PODMAN_ID, Runtime::Podman, None);
        expect(
            &format!(
                "0::/user.slice/user-0.slice/user@0.service/machine.slice/libpod-{PODMAN_ID}.scope/container\n"
            ),
            PODMAN_ID,
            Runtime::Podman,
            None,
        );
        expect(&format!("0::/libpod_parent/libpod-{PODMAN_ID}\n"), PODMAN_ID, Runtime::Podman, None);
        assert_eq!(identify(&format!("0::/machine.slice/libpod-conmon-{PODMAN_ID}.scope\n")), None);
    }

    #[test]
    fn cgroup_v1_many_lines() {
        let kube = format!(
            "12:pids:/kubepods/burstable/pod{UID}/{CRI_ID}\n\
             11:memory:/kubepods/burstable/pod{UID}/{CRI_ID}\n\
             10:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CRI_ID}\n\
             1:name=systemd:/kubepods/burstable/pod{UID}/{CRI_ID}\n\
             0::/\n"
        );
        expect(&kube, CRI_ID, Runtime::Unknown, Some(UID));
        let uid_ = UID.replace('-', "_");
        let systemd = format!(
            "12:devices:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/crio-{CRIO_ID}.scope\n\
             1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/crio-{CRIO_ID}.scope\n"
        );
        expect(&systemd, CRIO_ID, Runtime::CriO, Some(UID));
        // Hierarchies a runtime does not manage show `/` before the ones it does.
        let docker = format!("13:rdma:/\n12:pids:/docker/{DOCKER_ID}\n11:memory:/docker/{DOCKER_ID}\n");
        expect(&docker, DOCKER_ID, Runtime::Docker, None);
        expect(
            &format!("4:memory:/system.slice/docker-{DOCKER_ID}.scope\n"),
            DOCKER_ID,
            Runtime::Docker,
            None,
        );
    }

    #[test]
    fn docker_in_docker_reports_the_innermost() {
        expect(&format!("0::/docker/{DOCKER_ID}/docker/{CRI_ID}\n"), CRI_ID, Runtime::Docker, None);
    }

    #[test]
    fn deleted_cgroups_still_name_their_container() {
        expect(
            &format!("0::/system.slice/docker-{DOCKER_ID}.scope (deleted)\n"),
            DOCKER_ID,
            Runtime::Docker,
            None,
        );
    }

    #[test]
    fn host_processes_and_runtime_monitors_are_not_containers() {
        for text in [
            "0::/init.scope\n",
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            "0::/system.slice/kubelet.service\n",
            "0::/kubepods.slice/kubepods-burstable.slice\n",
            "1:name=systemd:/user.slice/user-0.slice/session-1.scope\n0::/user.slice\n",
            &format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/crio-conmon-{CRIO_ID}.scope\n",
                UID.replace('-', "_")
            ),
            "",
            "garbage",
            "0::",
            "::::",
        ] {
            assert_eq!(identify(text), None, "{text:?}");
        }
    }

    #[test]
    fn near_misses_are_rejected() {
        // 63 and 65 digits, upper case, a non-hex letter: not ids.
        for bad in [&CRI_ID[1..], &format!("{CRI_ID}0"), &CRI_ID.to_uppercase(), &CRI_ID.replace('a', "g")] {
            assert_eq!(identify(&format!("0::/docker/{bad}\n")), None, "{bad}");
        }
        // A malformed pod segment leaves the UID out but keeps the container.
        expect(&format!("0::/kubepods/podnot-a-uid/{CRI_ID}\n"), CRI_ID, Runtime::Unknown, None);
        expect(&format!("0::/kubepods/pod{UID}x/{CRI_ID}\n"), CRI_ID, Runtime::Unknown, None);
    }

    #[test]
    fn arbitrary_text_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let alphabet = b"0123456789abcdef:/-_.podkubeslicescopecri-containerd\n ()";
        for _ in 0..2_000 {
            let text: String = (0..state % 300)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(alphabet[(state % alphabet.len() as u64) as usize])
                })
                .collect();
            let _ = identify(&text);
        }
        let _ = identify("0::/\u{1F600}/pod\u{e9}/cri-containerd-\u{0}.scope");
    }
}
