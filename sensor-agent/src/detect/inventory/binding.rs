//! Which specs apply to an exchange, and by which rule (`spec_binding`).
//!
//! Published specs name public servers (`https://api.bank.example/psd2`), but on the node the
//! traffic arrives after an ingress or a gateway: `Host: 10.0.0.5:8080`, a Kubernetes service name
//! or a pod IP, often with the server prefix stripped. Binding a spec to its `servers` host only
//! would label every documented call on the pod `shadow`, so specs are bound in this order, the
//! first rule that yields any spec deciding:
//!
//! 1. [`Binding::Config`]: the config's `spec_binding.rules` (hosts, ports, Kubernetes service,
//!    namespace, labels; all given criteria must hold, any value of a list may). Only the specs
//!    whose rule matches apply, each with its rule's [`PrefixMode`].
//! 2. [`Binding::Host`]: specs whose `servers` name the exchange's host (case-insensitive; the
//!    port compared only when the server gives one), plus the specs with relative servers (which
//!    name no host, and have always applied to every host), labelled [`Binding::AnyHost`].
//! 3. [`Binding::AnyHost`]: when no spec claims the host, every spec that has no config rule.
//!
//! A spec with a config rule applies where its rule says and where its servers name the host,
//! never to unclaimed hosts: someone said where it lives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::document::split_host;

/// How a spec came to apply to an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// A `spec_binding.rules` entry of the config matched.
    Config,
    /// The spec's `servers` name the exchange's host.
    Host,
    /// No spec claims the host (or the spec's servers are relative): it applies to any host.
    AnyHost,
}

impl Binding {
    /// The `snake_case` name (as serialized).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Config => "config",
            Binding::Host => "host",
            Binding::AnyHost => "any_host",
        }
    }
}

/// Whether the spec's `servers` path prefix is on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMode {
    /// Matched when present, may be absent (an ingress that strips it); when both readings
    /// match, the one with the prefix wins.
    #[default]
    Either,
    /// Always on the wire (`/psd2/accounts/1`).
    Present,
    /// Always stripped before the service (`/accounts/1`).
    Stripped,
}

impl PrefixMode {
    /// Whether a template reading is allowed: `prefixed` is `None` for a spec without prefix
    /// (both readings are the same).
    #[must_use]
    pub fn allows(self, prefixed: Option<bool>) -> bool {
        match (self, prefixed) {
            (PrefixMode::Either, _) | (_, None) => true,
            (PrefixMode::Present, Some(p)) => p,
            (PrefixMode::Stripped, Some(p)) => !p,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PrefixMode::Either => "either",
            PrefixMode::Present => "present",
            PrefixMode::Stripped => "stripped",
        }
    }
}

/// A host name with an optional port (`10.0.0.5`, `payments.bank:8080`, `[::1]:80`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    name: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `name[:port]`; `None` for an empty name or a port that is not a number.
    #[must_use]
    pub fn parse(text: &str) -> Option<HostPattern> {
        let (name, port) = split_host(text);
        // `split_host` keeps `host:junk` as a name; a config value with a colon after the name
        // (outside IPv6 brackets) must end in a port, or it is a typo worth an error.
        let has_port_text =
            text.trim().rsplit_once(':').is_some_and(|(n, _)| !n.contains(':') || n.ends_with(']'));
        if name.is_empty() || name.contains(['/', ' ']) || (has_port_text && port.is_none()) {
            return None;
        }
        Some(HostPattern { name, port })
    }

    fn matches(&self, name: &str, port: Option<u16>) -> bool {
        self.name == name && self.port.is_none_or(|want| port == Some(want))
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Kubernetes criteria of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeSelector {
    /// The server pod's namespace (or the namespace a service host name carries).
    pub namespace: Option<String>,
    /// A service name the Host header carries: `svc`, `svc.ns`, `svc.ns.svc`,
    /// `svc.ns.svc.<cluster domain>`.
    pub service: Option<String>,
    /// Labels the server pod has (all of them).
    pub labels: BTreeMap<String, String>,
}

impl KubeSelector {
    fn is_empty(&self) -> bool {
        self.namespace.is_none() && self.service.is_none() && self.labels.is_empty()
    }
}

/// The server pod of an exchange, as far as the agent knows it.
#[derive(Clone, Copy, Debug)]
pub struct PodView<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// What a rule is matched against: the exchange's host, server port and server pod.
#[derive(Clone, Copy, Debug, Default)]
pub struct Target<'a> {
    /// The Host header (may carry `:port`), or the server address.
    pub host: &'a str,
    /// The server's socket port (the Host header's port when unknown).
    pub port: Option<u16>,
    pub pod: Option<PodView<'a>>,
}

/// Why a rule cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindingError {
    #[error("names no hosts, ports or kubernetes criteria: it would bind the spec to nothing")]
    NoCriteria,
    #[error("no loaded spec has the file name or info.title {0:?}")]
    UnknownSpec(String),
}

/// One validated `spec_binding.rules` entry: never empty (see [`SpecRule::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecRule {
    spec: String,
    hosts: Vec<HostPattern>,
    ports: Vec<u16>,
    kubernetes: KubeSelector,
    server_prefix: PrefixMode,
}

impl SpecRule {
    /// `spec` names a spec by file (as listed, or its file name) or `info.title`.
    pub fn new(
        spec: String,
        hosts: Vec<HostPattern>,
        ports: Vec<u16>,
        kubernetes: KubeSelector,
        server_prefix: PrefixMode,
    ) -> Result<SpecRule, BindingError> {
        if hosts.is_empty() && ports.is_empty() && kubernetes.is_empty() {
            return Err(BindingError::NoCriteria);
        }
        Ok(SpecRule { spec, hosts, ports, kubernetes, server_prefix })
    }

    #[must_use]
    pub fn spec(&self) -> &str {
        &self.spec
    }

    #[must_use]
    pub fn server_prefix(&self) -> PrefixMode {
        self.server_prefix
    }

    /// Every criterion given holds.
    #[must_use]
    pub fn matches(&self, target: &Target<'_>) -> bool {
        let (name, header_port) = split_host(target.host);
        let port = target.port.or(header_port);
        let k = &self.kubernetes;
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(&name, header_port.or(port))))
            && (self.ports.is_empty() || port.is_some_and(|p| self.ports.contains(&p)))
            && k.service.as_deref().is_none_or(|svc| service_host(&name, svc, k.namespace.as_deref()))
            && k.namespace.as_deref().is_none_or(|ns| {
                target.pod.is_some_and(|p| p.namespace == ns)
                    || k.service.as_deref().is_some_and(|svc| service_host(&name, svc, Some(ns)))
            })
            && (k.labels.is_empty()
                || target.pod.is_some_and(|p| k.labels.iter().all(|(key, v)| p.labels.get(key) == Some(v))))
    }

    /// One line for `config check` and the start-up log.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.hosts.is_empty() {
            let hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
            parts.push(format!("hosts {}", hosts.join(", ")));
        }
        if !self.ports.is_empty() {
            let numbers: Vec<String> = self.ports.iter().map(ToString::to_string).collect();
            parts.push(format!("ports {}", numbers.join(", ")));
        }
        let k = &self.kubernetes;
        if let Some(s) = &k.service {
            parts.push(format!("service {s}"));
        }
        if let Some(ns) = &k.namespace {
            parts.push(format!("namespace {ns}"));
        }
        if !k.labels.is_empty() {
            let labels: Vec<String> = k.labels.iter().map(|(key, v)| format!("{key}={v}")).collect();
            parts.push(format!("labels {}", labels.join(",")));
        }
        format!("{}, server prefix {}", parts.join(", "), self.server_prefix.as_str())
    }
}

/// `name` is how a client inside the cluster names service `svc` (in namespace `ns` if given).
fn service_host(name: &str, svc: &str, ns: Option<&str>) -> bool {
    let Some(rest) = name.strip_prefix(svc) else {
        return false;
    };
    if rest.is_empty() {
        // A bare service name resolves in the client's own namespace: unknown here.
        return true;
    }
    let Some(rest) = rest.strip_prefix('.') else {
        return false;
    };
    let (namespace, tail) = rest.split_once('.').unwrap_or((rest, ""));
    ns.is_none_or(|ns| ns == namespace) && (tail.is_empty() || tail == "svc" || tail.starts_with("svc."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(hosts: &[&str], ports: &[u16], k: KubeSelector) -> SpecRule {
        let hosts = hosts.iter().map(|h| HostPattern::parse(h).unwrap()).collect();
        SpecRule::new("s".into(), hosts, ports.to_vec(), k, PrefixMode::Either).unwrap()
    }

    #[test]
    fn host_patterns_parse_and_reject_garbage() {
        assert_eq!(HostPattern::parse("10.0.0.5:8080").unwrap().to_string(), "10.0.0.5:8080");
        assert_eq!(HostPattern::parse("Payments.Bank.").unwrap().to_string(), "payments.bank");
        assert_eq!(HostPattern::parse("[::1]:80").unwrap().to_string(), "[::1]:80");
        for bad in ["", "  ", "host:port", "a/b", "h:99999"] {
            assert!(HostPattern::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn rules_need_a_criterion_and_match_all_given() {
        let none = SpecRule::new("s".into(), vec![], vec![], KubeSelector::default(), PrefixMode::Stripped);
        assert_eq!(none.err(), Some(BindingError::NoCriteria));
        let r = rule(&["10.0.0.5"], &[8080], KubeSelector::default());
        let t = |host, port| Target { host, port, pod: None };
        assert!(r.matches(&t("10.0.0.5:8080", None)));
        assert!(r.matches(&t("10.0.0.5", Some(8080))));
        assert!(!r.matches(&t("10.0.0.5", Some(9090))));
        assert!(!r.matches(&t("10.0.0.6:8080", None)));
        let with_port = rule(&["api:8443"], &[], KubeSelector::default());
        assert!(with_port.matches(&t("API:8443", None)));
        assert!(!with_port.matches(&t("api", Some(443))));
        assert!(with_port.matches(&t("api", Some(8443))));
    }

    #[test]
    fn kubernetes_service_namespace_and_labels() {
        let svc = KubeSelector {
            service: Some("payments".into()),
            namespace: Some("bank".into()),
            ..KubeSelector::default()
        };
        let r = rule(&[], &[], svc);
        let t = |host| Target { host, port: Some(80), pod: None };
        for ok in ["payments.bank", "payments.bank.svc", "payments.bank.svc.cluster.local:8080"] {
            assert!(r.matches(&t(ok)), "{ok}");
        }
        for no in ["payments.other.svc", "paymentsx.bank", "payments.bank.example.com", "accounts"] {
            assert!(!r.matches(&t(no)), "{no}");
        }
        let labels = BTreeMap::from([("app".to_owned(), "payments".to_owned())]);
        let sel = KubeSelector {
            namespace: Some("bank".into()),
            labels: labels.clone(),
            ..KubeSelector::default()
        };
        let r = rule(&[], &[], sel);
        let pod = PodView { namespace: "bank", labels: &labels };
        assert!(r.matches(&Target { host: "10.1.2.3:8080", port: Some(8080), pod: Some(pod) }));
        let other = BTreeMap::from([("app".to_owned(), "ledger".to_owned())]);
        let pod = PodView { namespace: "bank", labels: &other };
        assert!(!r.matches(&Target { host: "10.1.2.3:8080", port: Some(8080), pod: Some(pod) }));
        assert!(!r.matches(&Target { host: "10.1.2.3:8080", port: Some(8080), pod: None }));
    }

    #[test]
    fn prefix_modes() {
        assert!(PrefixMode::Either.allows(Some(true)) && PrefixMode::Either.allows(Some(false)));
        assert!(PrefixMode::Present.allows(Some(true)) && !PrefixMode::Present.allows(Some(false)));
        assert!(!PrefixMode::Stripped.allows(Some(true)) && PrefixMode::Stripped.allows(Some(false)));
        assert!(PrefixMode::Stripped.allows(None) && PrefixMode::Present.allows(None));
    }
}
