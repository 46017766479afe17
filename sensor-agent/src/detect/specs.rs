//! Loading the OpenAPI specs with their config rules, describing them (`config check` and the
//! start-up log), and noticing specs whose server hosts never appear in the traffic.
//!
//! In: the `openapi` paths and `spec_binding` rules. Out: [`Specs`] ready to classify, one line
//! per spec (operations, servers, the binding that will apply), and after
//! `unseen_host_warning_seconds` of traffic one log line naming the specs whose hosts no
//! exchange had (counted by the `apisense_detect_inventory_specs_hosts_unseen` gauge).
use std::time::Duration;

use super::{
    DetectConfig, DetectError,
    inventory::{Inventory, LoadReport, SpecSummary, Specs},
};

/// Loads the specs and attaches the config's rules (a rule naming no loaded spec is an error
/// naming its key).
pub fn load(config: &DetectConfig) -> Result<(Specs, LoadReport), DetectError> {
    if config.openapi.is_empty() {
        if !config.spec_rules.is_empty() {
            return Err(DetectError::Binding {
                key: "spec_binding.rules[0].spec".to_owned(),
                problem: "no OpenAPI spec is loaded (`openapi` is empty)".to_owned(),
            });
        }
        return Ok((Specs::empty(), LoadReport::default()));
    }
    let (mut specs, report) = Specs::load(&config.openapi)?;
    specs.bind(config.spec_rules.clone()).map_err(|(i, e)| DetectError::Binding {
        key: format!("spec_binding.rules[{i}].spec"),
        problem: e.to_string(),
    })?;
    Ok((specs, report))
}

/// One line per spec: title, file, operations, servers, and where it will apply.
#[must_use]
pub fn describe(specs: &Specs) -> Vec<String> {
    specs.summaries().iter().map(describe_one).collect()
}

fn describe_one(s: &SpecSummary) -> String {
    let mut binding: Vec<String> = s.rules.iter().map(|r| format!("config ({r})")).collect();
    if !s.hosts.is_empty() {
        binding.push(format!("host {}", s.hosts.join(", ")));
    }
    let relative = s.servers.iter().any(|v| v.starts_with("(relative)"));
    if s.rules.is_empty() {
        binding.push(if relative {
            "any host (relative server)".to_owned()
        } else {
            "any host no spec claims".to_owned()
        });
    }
    let prefix = if s.rules.is_empty() { "; server prefix present or stripped" } else { "" };
    format!(
        "spec {:?} ({}): {} operations; servers {}; binding: {}{prefix}",
        s.title,
        s.file,
        s.operations,
        s.servers.join(", "),
        binding.join(", then ")
    )
}

/// Notices, once, specs whose server hosts no exchange had after a while of traffic.
#[derive(Debug)]
pub struct UnseenHosts {
    after_ms: Option<u64>,
    first_ms: Option<u64>,
    reported: bool,
}

impl UnseenHosts {
    #[must_use]
    pub fn new(after: Option<Duration>) -> UnseenHosts {
        let after_ms = after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        UnseenHosts { after_ms, first_ms: None, reported: false }
    }

    /// Called per exchange with its time; logs one line the first time the delay has passed
    /// with specs still unseen. Returns whether it logged.
    pub fn check(&mut self, inventory: &Inventory, ts_unix_ms: u64) -> bool {
        let Some(after) = self.after_ms.filter(|_| !self.reported) else {
            return false;
        };
        let first = *self.first_ms.get_or_insert(ts_unix_ms);
        if ts_unix_ms.saturating_sub(first) < after {
            return false;
        }
        self.reported = true;
        let unseen = inventory.specs_hosts_unseen();
        if unseen.is_empty() {
            return false;
        }
        let list: Vec<String> = unseen.iter().map(|(t, h)| format!("{t:?} ({})", h.join(", "))).collect();
        log::warn!(
            "OpenAPI: after {}s of traffic, no exchange had the server hosts of {} spec(s): {}; they apply by \
             config rule or to hosts no spec claims (spec_binding any_host)",
            after / 1000,
            unseen.len(),
            list.join("; ")
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::detect::inventory::Observation;

    #[test]
    fn descriptions_and_one_warning() {
        let psd2 = json!({"openapi": "3.0.3", "info": {"title": "PSD2", "version": "1"},
            "servers": [{"url": "https://api.bank.example/psd2"}], "paths": {"/a": {"get": {}, "post": {}}}});
        let rel = json!({"openapi": "3.0.3", "info": {"title": "Rel", "version": "1"},
            "servers": [{"url": "/r"}], "paths": {"/b": {"get": {}}}});
        let (specs, _) = Specs::from_documents(&[("psd2.json", psd2), ("rel.json", rel)]).unwrap();
        let lines = describe(&specs);
        assert_eq!(
            lines[0],
            "spec \"PSD2\" (psd2.json): 2 operations; servers api.bank.example/psd2; binding: host \
             api.bank.example, then any host no spec claims; server prefix present or stripped"
        );
        assert!(
            lines[1].contains("servers (relative)/r; binding: any host (relative server)"),
            "{}",
            lines[1]
        );
        let inv = Inventory::new(Arc::new(specs), None);
        let mut unseen = UnseenHosts::new(Some(Duration::from_mins(1)));
        assert!(!unseen.check(&inv, 1_000));
        assert!(!unseen.check(&inv, 30_000));
        assert!(unseen.check(&inv, 61_000));
        assert!(!unseen.check(&inv, 62_000), "one line only");
        let mut off = UnseenHosts::new(None);
        assert!(!off.check(&inv, 0) && !off.check(&inv, u64::MAX));
        let mut inv = inv;
        let _ = inv.observe(&Observation {
            host: "api.bank.example",
            method: "GET",
            target: "/a",
            ..Default::default()
        });
        let mut seen = UnseenHosts::new(Some(Duration::from_secs(1)));
        assert!(!seen.check(&inv, 0) && !seen.check(&inv, 5_000));
    }
}
