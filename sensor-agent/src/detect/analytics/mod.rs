//! Security analytics: turns each exchange's facts (endpoint, client, credentials, TLS,
//! sensitive findings) into findings and events a security team can act on, on the node.
//!
//! # Contract
//! * In: one [`Facts`] per exchange counted by the inventory ([`Analytics::push`]), in traffic
//!   order. Time is the traffic's: time-based checks (silent endpoints, never-called
//!   operations) run as exchange timestamps advance, so a replay gives the live result.
//! * Out: [`SecurityEvent`]s, each with a kind, severity, endpoint, client, a one-line reason
//!   made of names and counts, and for a value its keyed hash. Findings (exposure, zombie,
//!   change kinds) are emitted once per (kind, endpoint, client); anomalies at most once per
//!   endpoint and window; `endpoint_silent` once per silence.
//! * Concerns, one file each: [`identity`] (who called), [`exposure`], [`zombies`],
//!   [`changes`], [`anomalies`]; [`state`] holds the per-endpoint baselines they compare with.
//! * Bounded: findings kept ([`MAX_FINDINGS`], further new ones counted in `dropped`), clients
//!   and types per endpoint, value hashes tracked for correlation ([`MAX_VALUES`]).
//! * Never holds a raw value: values arrive as keyed hashes, credentials as identities.
pub mod anomalies;
pub mod changes;
pub mod exposure;
pub mod findings;
pub mod identity;
mod render;
pub mod state;
pub mod zombies;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use self::state::{ClientUse, EndpointState, MAX_CLIENTS, insert_capped};
pub use self::{
    findings::{Kind, SecurityEvent, Severity},
    identity::{ClientIdentity, IdentityKind},
    render::{render_html, render_table, report},
};
use super::{
    inventory::EndpointStatus,
    sensitive::{Finding, Side, keyed::ValueHash},
};

/// Findings remembered (and shown by `apisense inventory`).
pub const MAX_FINDINGS: usize = 10_000;
/// Value hashes tracked for "same value, many clients".
pub const MAX_VALUES: usize = 100_000;
/// Endpoints with baselines (as many as the inventory keeps); beyond, checks run against an
/// empty baseline and nothing is kept (counted in `dropped`).
pub const MAX_ENDPOINTS: usize = 50_000;

/// The `analytics:` section of the configuration file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Request headers whose value identifies a client (hashed, never exported).
    pub api_key_headers: Vec<String>,
    /// A documented operation not called for this long after analytics began is reported.
    pub zombie_window_hours: u64,
    /// An endpoint not called for this long is reported silent.
    pub silent_after_hours: u64,
    /// Exchanges an endpoint needs before its baselines are trusted.
    pub baseline_min_samples: u64,
    /// Length of an anomaly window.
    pub anomaly_window_seconds: u64,
    /// A window with this many times the usual requests is a rate spike...
    pub rate_factor: f64,
    /// ...if it has at least this many.
    pub min_window_requests: u64,
    /// A window whose 5xx share exceeds the usual share by this much is an error burst...
    pub error_rate_increase: f64,
    /// ...if it has at least this many 5xx responses.
    pub min_window_errors: u64,
    /// A response this many standard deviations above the usual size is a size jump.
    pub size_z: f64,
    /// The same sensitive value received by this many clients is reported.
    pub shared_value_clients: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            api_key_headers: ["x-api-key", "api-key", "apikey", "x-apikey"].map(str::to_owned).to_vec(),
            zombie_window_hours: 24 * 7,
            silent_after_hours: 24,
            baseline_min_samples: 20,
            anomaly_window_seconds: 60,
            rate_factor: 5.0,
            min_window_requests: 20,
            error_rate_increase: 0.5,
            min_window_errors: 5,
            size_z: 4.0,
            shared_value_clients: 3,
        }
    }
}

impl AnalyticsConfig {
    /// Checks values that would make the statistics meaningless.
    pub fn validate(&self) -> Result<(), String> {
        if self.anomaly_window_seconds == 0 {
            return Err("anomaly_window_seconds: must be at least 1".to_owned());
        }
        if self.rate_factor.is_nan() || self.rate_factor < 1.0 {
            return Err(format!("rate_factor: {} is below 1", self.rate_factor));
        }
        if !(0.0..=1.0).contains(&self.error_rate_increase) {
            return Err(format!("error_rate_increase: {} is outside 0..=1", self.error_rate_increase));
        }
        if self.size_z.is_nan() || self.size_z <= 0.0 {
            return Err(format!("size_z: {} is not positive", self.size_z));
        }
        if self.shared_value_clients < 2 {
            return Err("shared_value_clients: must be at least 2".to_owned());
        }
        if let Some(h) = self.api_key_headers.iter().find(|h| h.is_empty() || h.contains(char::is_whitespace))
        {
            return Err(format!("api_key_headers: {h:?} is not a header name"));
        }
        Ok(())
    }
}

/// What analytics needs to know about one exchange.
#[derive(Clone, Copy, Debug)]
#[expect(clippy::struct_excessive_bools, reason = "independent facts of one exchange, not states")]
pub struct Facts<'a> {
    pub ts_unix_ms: u64,
    pub host: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub endpoint_status: EndpointStatus,
    pub spec: Option<&'a str>,
    pub new_endpoint: bool,
    pub http_status: Option<u16>,
    pub tls: bool,
    /// Both ends on this host: plaintext never crossed a wire.
    pub loopback: bool,
    pub auth_scheme: Option<&'a str>,
    pub client: Option<&'a ClientIdentity>,
    pub findings: &'a [Finding],
    pub response_size: Option<u64>,
    /// The response carried a masked card number.
    pub masked_pan: bool,
}

impl Facts<'_> {
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("{} {}{}", self.method, self.host, self.route)
    }

    /// Findings of sensitive *data* (not credentials), on `side` or both.
    pub fn data_findings(&self, side: Option<Side>) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| is_data(&f.detector) && side.is_none_or(|s| f.side == s))
    }

    /// Distinct data types on `side` (sorted).
    #[must_use]
    pub fn data_types(&self, side: Option<Side>) -> BTreeSet<&str> {
        self.data_findings(side).map(|f| f.detector.as_str()).collect()
    }
}

/// Whether `detector` finds data about people or accounts (custom detectors included), not
/// credentials.
#[must_use]
pub fn is_data(detector: &str) -> bool {
    !is_credential(detector)
}

#[must_use]
pub fn is_credential(detector: &str) -> bool {
    super::sensitive::is_credential_detector(detector)
}

/// A finding as remembered: the first event, how often it recurred, when last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFinding {
    #[serde(flatten)]
    pub event: SecurityEvent,
    pub occurrences: u64,
    pub last_seen: u64,
}

/// A client's activity across endpoints, for `apisense inventory`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSummary {
    pub client: String,
    pub exchanges: u64,
    /// `METHOD host route` -> exchanges.
    pub endpoints: BTreeMap<String, u64>,
    /// Sensitive data types received in responses.
    pub received: BTreeSet<String>,
    pub last_seen: u64,
}

/// What `apisense inventory` shows of analytics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityReport {
    /// Most severe first.
    pub findings: Vec<StoredFinding>,
    pub clients: Vec<ClientSummary>,
}

/// State that is not per endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GlobalState {
    /// An exchange was seen (`first_ts` is set).
    pub started: bool,
    pub first_ts: u64,
    pub latest_ts: u64,
    /// Next traffic time at which time-based checks run.
    pub next_sweep: u64,
    pub findings: BTreeMap<String, StoredFinding>,
    pub versions: zombies::Versions,
    pub dropped: u64,
}

/// The analytics stage (single-threaded, owned by `Detect`).
pub struct Analytics {
    config: AnalyticsConfig,
    endpoints: HashMap<String, EndpointState>,
    global: GlobalState,
    /// Value hash -> (detector, clients that received it): in memory only.
    values: HashMap<ValueHash, (String, BTreeSet<String>)>,
    dirty: BTreeSet<String>,
    global_dirty: bool,
}

/// Time-based checks run at most this often (traffic time).
const SWEEP_EVERY_MS: u64 = 60_000;

impl Analytics {
    #[must_use]
    pub fn new(config: AnalyticsConfig) -> Analytics {
        Analytics {
            config,
            endpoints: HashMap::new(),
            global: GlobalState::default(),
            values: HashMap::new(),
            dirty: BTreeSet::new(),
            global_dirty: false,
        }
    }

    /// Resumes from persisted state.
    pub fn restore(&mut self, endpoints: Vec<(String, EndpointState)>, global: Option<GlobalState>) {
        self.endpoints.extend(endpoints);
        if let Some(g) = global {
            self.global = g;
        }
    }

    #[must_use]
    pub fn config(&self) -> &AnalyticsConfig {
        &self.config
    }

    /// New findings or endpoint baselines not kept because [`MAX_FINDINGS`] or
    /// [`MAX_ENDPOINTS`] was reached.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.global.dropped
    }

    /// Runs every check on one exchange, then folds it into the baselines. `unobserved` lists
    /// documented operations never called (`METHOD host-less template`), asked only when the
    /// zombie window has passed.
    pub fn push(
        &mut self,
        facts: &Facts<'_>,
        unobserved: &mut dyn FnMut() -> Vec<(String, String, String)>,
        out: &mut Vec<SecurityEvent>,
    ) {
        let start = out.len();
        let endpoint = facts.endpoint();
        let client = facts.client.map(ClientIdentity::display);
        let client = client.as_deref();
        if !self.global.started {
            self.global.started = true;
            self.global.first_ts = facts.ts_unix_ms;
            self.global.next_sweep = facts.ts_unix_ms.saturating_add(SWEEP_EVERY_MS);
        }
        self.global.latest_ts = self.global.latest_ts.max(facts.ts_unix_ms);
        let mut scratch = EndpointState::default();
        let full = !self.endpoints.contains_key(&endpoint) && self.endpoints.len() >= MAX_ENDPOINTS;
        let ep = if full {
            self.global.dropped += 1;
            &mut scratch
        } else {
            self.endpoints.entry(endpoint.clone()).or_default()
        };
        let mut fresh = Vec::new();
        exposure::check(&self.config, ep, facts, &endpoint, client, &mut fresh);
        exposure::shared_values(&self.config, &mut self.values, facts, &endpoint, client, &mut fresh);
        changes::check(&self.config, ep, facts, &endpoint, client, &mut fresh);
        zombies::check(&mut self.global.versions, facts, &endpoint, client, &mut fresh);
        anomalies::check(&self.config, ep, facts, &endpoint, &mut fresh);
        record(ep, facts, client);
        if !full {
            self.dirty.insert(endpoint);
        }
        if facts.ts_unix_ms >= self.global.next_sweep {
            self.global.next_sweep = facts.ts_unix_ms.saturating_add(SWEEP_EVERY_MS);
            self.sweep(unobserved, &mut fresh);
        }
        for mut event in fresh {
            event.ts_unix_ms = facts.ts_unix_ms;
            if self.remember(&event) {
                out.push(event);
            }
        }
        if out.len() > start {
            self.global_dirty = true;
        }
    }

    /// Silent endpoints and never-called operations, as of the latest traffic time.
    fn sweep(
        &mut self,
        unobserved: &mut dyn FnMut() -> Vec<(String, String, String)>,
        out: &mut Vec<SecurityEvent>,
    ) {
        let now = self.global.latest_ts;
        let silent_ms = self.config.silent_after_hours.saturating_mul(3_600_000);
        for (endpoint, ep) in &mut self.endpoints {
            if let Some(e) = changes::silent(ep, endpoint, now, silent_ms) {
                out.push(e);
                self.dirty.insert(endpoint.clone());
            }
        }
        let window_ms = self.config.zombie_window_hours.saturating_mul(3_600_000);
        if now.saturating_sub(self.global.first_ts) >= window_ms {
            out.extend(zombies::unobserved(&unobserved(), self.config.zombie_window_hours));
        }
    }

    /// Keeps a new finding; false when it was already known (its count is raised instead).
    /// Anomalies and silences are rate-limited by their own rules and always pass.
    fn remember(&mut self, event: &SecurityEvent) -> bool {
        let key = event.dedup_key();
        let repeatable = matches!(
            event.kind,
            Kind::EndpointSilent | Kind::RateSpike | Kind::ErrorBurst | Kind::ResponseSizeJump
        );
        let key = if repeatable { format!("{key}|{}", event.ts_unix_ms) } else { key };
        if let Some(known) = self.global.findings.get_mut(&key) {
            known.occurrences += 1;
            known.last_seen = known.last_seen.max(event.ts_unix_ms);
            return false;
        }
        if self.global.findings.len() >= MAX_FINDINGS {
            self.global.dropped += 1;
            return false;
        }
        self.global
            .findings
            .insert(key, StoredFinding { event: event.clone(), occurrences: 1, last_seen: event.ts_unix_ms });
        true
    }

    /// Endpoints changed since the last call, with their state (for the store).
    pub fn take_dirty(&mut self) -> (Vec<(String, EndpointState)>, Option<GlobalState>) {
        let changed = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|k| self.endpoints.get(&k).map(|e| (k, e.clone())))
            .collect();
        let global = std::mem::take(&mut self.global_dirty).then(|| self.global.clone());
        (changed, global)
    }

    /// Puts back what [`Analytics::take_dirty`] gave when it could not be saved.
    pub fn mark_dirty(&mut self, keys: impl IntoIterator<Item = String>, global: bool) {
        self.dirty.extend(keys);
        self.global_dirty |= global;
    }

    #[must_use]
    pub fn report(&self) -> SecurityReport {
        report(self.endpoints.iter(), &self.global)
    }
}

/// Folds one exchange into its endpoint's baselines (after the checks compared with them).
fn record(ep: &mut EndpointState, facts: &Facts<'_>, client: Option<&str>) {
    let ts = facts.ts_unix_ms;
    if ep.count == 0 {
        ep.first_seen = ts;
    }
    ep.count += 1;
    ep.last_seen = ep.last_seen.max(ts);
    ep.silent_reported = false;
    match facts.auth_scheme {
        Some(s) => state::count_scheme(&mut ep.auth, s),
        None => ep.unauthenticated += 1,
    }
    let received = facts.data_types(Some(Side::Response));
    for t in facts.data_types(None) {
        insert_capped(&mut ep.types, t);
    }
    if facts.http_status.is_some() {
        ep.responses += 1;
        for t in &received {
            if ep.type_responses.len() < state::MAX_TYPES || ep.type_responses.contains_key(*t) {
                *ep.type_responses.entry((*t).to_owned()).or_default() += 1;
            }
        }
        if facts.masked_pan {
            ep.masked_pan_responses += 1;
        }
    }
    if let Some(size) = facts.response_size {
        ep.size_n += 1;
        let x = size as f64;
        let delta = x - ep.size_mean;
        ep.size_mean += delta / ep.size_n as f64;
        ep.size_m2 += delta * (x - ep.size_mean);
    }
    if let Some(c) = client {
        if ep.clients.len() < MAX_CLIENTS || ep.clients.contains_key(c) {
            let usage: &mut ClientUse = ep.clients.entry(c.to_owned()).or_default();
            usage.count += 1;
            usage.last_seen = usage.last_seen.max(ts);
            for t in &received {
                insert_capped(&mut usage.received, t);
            }
        } else {
            ep.clients_other += 1;
        }
    }
}

#[cfg(test)]
mod tests;
