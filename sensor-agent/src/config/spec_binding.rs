//! The config file's `spec_binding` section: where each OpenAPI spec applies on this node.
//!
//! ```yaml
//! spec_binding:
//!   unseen_host_warning_seconds: 600     # 0: never warn
//!   rules:
//!     - spec: psd2.yaml                  # file name (or path as listed) or info.title
//!       hosts: [10.0.0.5, "payments.bank.svc:8080"]
//!       ports: [8080]
//!       kubernetes: {namespace: bank, service: payments, labels: {app: payments}}
//!       server_prefix: stripped          # present | stripped | either (default)
//! ```
//! Raw values are checked here into [`SpecRule`]s; whether a rule's `spec` names a loaded spec
//! is checked when the specs are loaded (`config check` does both).
use std::{collections::BTreeMap, time::Duration};

use crate::detect::inventory::binding::{HostPattern, KubeSelector, PrefixMode, SpecRule};

/// Warn about spec hosts not seen after this much traffic time, unless told otherwise.
const DEFAULT_UNSEEN_HOST_WARNING: u64 = 600;

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecBindingFile {
    /// Seconds of traffic after which specs whose server hosts never appeared are reported
    /// (one log line, and the `apisense_detect_inventory_specs_hosts_unseen` gauge); 0 turns it off.
    pub unseen_host_warning_seconds: Option<u64>,
    #[serde(default)]
    pub rules: Vec<RuleFile>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub spec: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub ports: Vec<u16>,
    pub kubernetes: Option<KubernetesRuleFile>,
    #[serde(default)]
    pub server_prefix: PrefixMode,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesRuleFile {
    pub namespace: Option<String>,
    pub service: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl SpecBindingFile {
    /// The rules, validated; errors name the key (`spec_binding.rules[1].hosts[0]: ...`).
    pub fn rules(&self) -> Result<Vec<SpecRule>, String> {
        self.rules.iter().enumerate().map(|(i, r)| r.validate(&format!("spec_binding.rules[{i}]"))).collect()
    }

    /// `None`: never warn.
    #[must_use]
    pub fn unseen_host_warning(&self) -> Option<Duration> {
        match self.unseen_host_warning_seconds.unwrap_or(DEFAULT_UNSEEN_HOST_WARNING) {
            0 => None,
            s => Some(Duration::from_secs(s)),
        }
    }
}

impl RuleFile {
    fn validate(&self, key: &str) -> Result<SpecRule, String> {
        let spec = self.spec.trim();
        if spec.is_empty() {
            return Err(format!("{key}.spec: empty (name a spec file or its info.title)"));
        }
        let hosts = self
            .hosts
            .iter()
            .enumerate()
            .map(|(j, h)| {
                HostPattern::parse(h)
                    .ok_or_else(|| format!("{key}.hosts[{j}]: {h:?} is not a host name or host:port"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(j) = self.ports.iter().position(|p| *p == 0) {
            return Err(format!("{key}.ports[{j}]: 0 is not a port"));
        }
        let k = self.kubernetes.clone().unwrap_or_default();
        let blank = |v: &Option<String>| v.as_deref().is_some_and(|s| s.trim().is_empty());
        if blank(&k.namespace) || blank(&k.service) {
            return Err(format!("{key}.kubernetes: namespace and service must not be empty"));
        }
        let selector = KubeSelector { namespace: k.namespace, service: k.service, labels: k.labels };
        SpecRule::new(spec.to_owned(), hosts, self.ports.clone(), selector, self.server_prefix)
            .map_err(|e| format!("{key}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<SpecRule>, String> {
        let f: SpecBindingFile = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        f.rules()
    }

    #[test]
    fn rules_validate_and_errors_name_the_key() {
        let ok = parse(
            "rules:\n  - spec: psd2.yaml\n    hosts: [10.0.0.5, 'svc:8080']\n    server_prefix: stripped\n  \
             - spec: Internal\n    kubernetes: {namespace: bank, labels: {app: x}}\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].describe(), "hosts 10.0.0.5, svc:8080, server prefix stripped");
        for (text, needle) in [
            ("rules:\n  - spec: a\n", "spec_binding.rules[0]: names no hosts"),
            (
                "rules:\n  - spec: a\n    hosts: [ok, 'bad:port']\n",
                "spec_binding.rules[0].hosts[1]: \"bad:port\"",
            ),
            ("rules:\n  - spec: a\n    ports: [0]\n", "spec_binding.rules[0].ports[0]"),
            ("rules:\n  - spec: ' '\n    ports: [1]\n", "spec_binding.rules[0].spec: empty"),
            ("rules:\n  - spec: a\n    kubernetes: {service: ''}\n", "rules[0].kubernetes"),
            ("rules:\n  - spec: a\n    ports: [1]\n    server_prefix: maybe\n", "server_prefix"),
            ("rules:\n  - spec: a\n    ports: [1]\n    host: x\n", "unknown field `host`"),
            ("rules:\n  - spec: a\n    ports: [70000]\n", "ports"),
        ] {
            let err = parse(text).err().unwrap_or_else(|| panic!("{text:?} must fail"));
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let f: SpecBindingFile = serde_norway::from_str("unseen_host_warning_seconds: 0").unwrap();
        assert_eq!(f.unseen_host_warning(), None);
        assert_eq!(SpecBindingFile::default().unseen_host_warning(), Some(Duration::from_mins(10)));
    }
}
