//! Detection: what the exchanges reveal. Two parts, one stage:
//! - `inventory`: every endpoint really called, classified against the OpenAPI specs loaded
//!   (documented, shadow, undocumented method/status, deprecated), persisted on the node;
//! - `sensitive`: sensitive data in requests and responses (`mask` is the only place raw values
//!   become output, `keyed` the only place they become hashes);
//! - `analytics`: the client of each exchange and security findings/events from both.
//!
//! In: observed exchanges. Out: an [`Assessment`] per exchange (its endpoint classification,
//! findings, client, security events), one log line per newly discovered undocumented endpoint
//! and per security event. Counts: entries dropped at the cap.
pub mod analytics;
pub mod inventory;
pub mod sensitive;
pub mod specs;

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use thiserror::Error;

use self::{
    analytics::{
        Analytics, AnalyticsConfig, ClientIdentity, Facts, IdentityKind, SecurityEvent, SecurityReport,
    },
    inventory::{Classification, EndpointStatus, EntryView, Inventory, Observation, Store},
    sensitive::{
        Detector, ExchangeView, Finding, MessageView, SensitiveConfig,
        keyed::{KeyError, Keyer},
    },
};
use crate::{
    capture::{Role, addr, pods::PodInfo},
    http::{
        Body, Headers,
        decoding::{self, DecodeLimits},
        stage::Observed,
    },
};

/// File names inside the state directory.
pub const STORE_FILE: &str = "inventory.redb";
/// JSON copy of the inventory, rewritten at each flush, readable while the agent holds the store.
pub const SNAPSHOT_FILE: &str = "inventory.json";
/// JSON copy of the security findings and clients, rewritten at each flush.
pub const ANALYTICS_SNAPSHOT_FILE: &str = "analytics.json";

#[derive(Debug, Clone, Default)]
pub struct DetectConfig {
    pub openapi: Vec<PathBuf>,
    /// The config's `spec_binding.rules`.
    pub spec_rules: Vec<inventory::binding::SpecRule>,
    /// Report specs whose server hosts no traffic had after this long (`None`: never).
    pub unseen_host_warning: Option<std::time::Duration>,
    /// Where the inventory persists; `None` keeps it in memory only.
    pub state_dir: Option<PathBuf>,
    pub sensitive: SensitiveConfig,
    pub analytics: AnalyticsConfig,
}

#[derive(Debug, Error)]
pub enum DetectError {
    #[error("loading OpenAPI specs")]
    Specs(#[from] inventory::SpecError),
    #[error("{key}: {problem}")]
    Binding { key: String, problem: String },
    #[error("creating the state directory {path}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] inventory::StoreError),
    #[error("sensitive-data configuration")]
    Sensitive(#[from] sensitive::ConfigError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("analytics state in the inventory store: {0}")]
    AnalyticsState(String),
}

/// What detection concluded about one exchange.
#[derive(Debug, Default)]
pub struct Assessment {
    pub endpoint: Option<Classification>,
    /// Sensitive data found (masked samples only).
    pub findings: Vec<Finding>,
    /// Who made the request (never the credential itself).
    pub client: Option<ClientIdentity>,
    /// Security findings and events this exchange raised.
    pub events: Vec<SecurityEvent>,
}

pub struct Detect {
    inventory: Inventory,
    snapshot: Option<PathBuf>,
    sensitive: Detector,
    analytics: Analytics,
    keyer: Keyer,
    decode_limits: DecodeLimits,
    unseen_hosts: specs::UnseenHosts,
}

impl Detect {
    pub fn new(config: &DetectConfig) -> Result<Detect, DetectError> {
        let (specs, report) = specs::load(config)?;
        if !config.openapi.is_empty() {
            log::info!(
                "OpenAPI: {} operations from {} file(s){}",
                report.operations,
                report.files.len(),
                if report.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped: {}", report.skipped.join("; "))
                }
            );
            for line in specs::describe(&specs) {
                log::info!("OpenAPI: {line}");
            }
        }
        let (store, snapshot, keyer) = match &config.state_dir {
            Some(dir) => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| DetectError::StateDir { path: dir.clone(), source })?;
                (
                    Some(Store::open(dir.join(STORE_FILE))?),
                    Some(dir.join(SNAPSHOT_FILE)),
                    Keyer::load_or_create(dir)?,
                )
            }
            None => (None, None, Keyer::ephemeral()),
        };
        let inventory = Inventory::open(Arc::new(specs), store, inventory::Limits::default())?;
        let sensitive = Detector::with_keyer(&config.sensitive, keyer.clone())?;
        let mut analytics = Analytics::new(config.analytics.clone());
        if let Some(store) = inventory_store(&inventory) {
            let (endpoints, global) = decode_analytics(store)?;
            analytics.restore(endpoints, global);
        }
        Ok(Detect {
            inventory,
            snapshot,
            sensitive,
            analytics,
            keyer,
            decode_limits: DecodeLimits::default(),
            unseen_hosts: specs::UnseenHosts::new(config.unseen_host_warning),
        })
    }

    /// `pod`: the server's pod when the agent knows it (config rules may name a namespace or
    /// labels).
    pub fn inspect(&mut self, observed: &Observed, pod: Option<&PodInfo>, ts_unix_ms: u64) -> Assessment {
        let Some(request) = &observed.exchange.request else {
            return Assessment::default();
        };
        let meta = &observed.meta;
        let host = host_of(&request.headers, meta);
        let (server_port, pod) = server_of(meta, pod);
        let client = match meta.role {
            Role::Server => meta.remote.map(|a| addr::ip_text(a.ip())).unwrap_or_default(),
            Role::Client => meta.comm.clone(),
        };
        let peer_kind = if meta.role == Role::Server { IdentityKind::Peer } else { IdentityKind::Process };
        let identity = analytics::identity::identify(
            request.headers.as_slice(),
            &self.analytics.config().api_key_headers,
            &self.keyer,
            Some((peer_kind, client.clone())),
        );
        let response = observed.exchange.response.as_ref();
        // Detectors and schema inference read bodies as the application does: decoded.
        let request_body = decoding::decode(&request.headers, &request.body.captured, self.decode_limits);
        let response_body =
            response.map(|r| decoding::decode(&r.headers, &r.body.captured, self.decode_limits));
        let view = ExchangeView {
            method: &request.method,
            target: &request.target,
            request: Some(message_view(&request.headers, &request_body.bytes)),
            response: response
                .zip(response_body.as_ref())
                .map(|(r, body)| message_view(&r.headers, &body.bytes)),
        };
        let findings = self.sensitive.inspect(&view);
        let mut types: Vec<&str> = findings.iter().map(|f| f.detector.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let request_json = json_body(&request.headers, &request.body, &request_body.bytes);
        let response_json = response
            .zip(response_body.as_ref())
            .and_then(|(r, body)| json_body(&r.headers, &r.body, &body.bytes));
        let auth = auth_scheme(&request.headers);
        let observation = Observation {
            host: &host,
            method: &request.method,
            target: &request.target,
            status: response.map(|r| r.status),
            auth_scheme: auth.as_deref(),
            sensitive: &types,
            client: &client,
            ts_unix_ms,
            request_json,
            response_json,
            server_port,
            pod,
        };
        // The client side of a call to a server on this same node is the same exchange the
        // server side reports: classify it, count it once.
        let server_is_local = meta.role == Role::Client && meta.remote.is_some_and(|a| a.ip().is_loopback());
        let endpoint = if server_is_local {
            self.inventory.classify(&observation)
        } else {
            self.inventory.observe(&observation)
        };
        self.unseen_hosts.check(&self.inventory, ts_unix_ms);
        let events = if server_is_local {
            Vec::new()
        } else {
            self.analyse(&Facts {
                ts_unix_ms,
                host: &host,
                method: &request.method,
                route: &endpoint.route,
                endpoint_status: endpoint.status,
                spec: endpoint.spec.as_deref(),
                new_endpoint: endpoint.new_endpoint,
                http_status: response.map(|r| r.status),
                tls: meta.tls,
                loopback: meta.remote.is_some_and(|a| a.ip().is_loopback()),
                auth_scheme: auth.as_deref(),
                client: identity.as_ref(),
                findings: &findings,
                response_size: response.map(|r| r.body.size),
                masked_pan: response_body
                    .as_ref()
                    .is_some_and(|b| analytics::exposure::has_masked_pan(&b.bytes)),
            })
        };
        if endpoint.new_endpoint && endpoint.status != EndpointStatus::Documented {
            log::info!(
                "new {} endpoint: {} {}{} (first called by {client}{})",
                endpoint.status.as_str(),
                request.method,
                host,
                endpoint.route,
                response.map(|r| format!(", status {}", r.status)).unwrap_or_default()
            );
        }
        Assessment { endpoint: Some(endpoint), findings, client: identity, events }
    }

    /// Security findings and events of one exchange, each logged once.
    fn analyse(&mut self, facts: &Facts<'_>) -> Vec<SecurityEvent> {
        let mut events = Vec::new();
        let inventory = &self.inventory;
        self.analytics.push(facts, &mut || inventory.unobserved(), &mut events);
        for e in &events {
            let level =
                if e.severity >= analytics::Severity::High { log::Level::Warn } else { log::Level::Info };
            log::log!(
                level,
                "security {} {}: {} (client {}): {}",
                e.severity.as_str(),
                e.kind.as_str(),
                e.endpoint,
                e.client.as_deref().unwrap_or("-"),
                e.reason
            );
        }
        events
    }

    /// Persists the inventory and rewrites its JSON snapshot. Errors are logged: losing a flush
    /// must not stop capture.
    pub fn flush(&mut self) {
        if let Err(e) = self.inventory.flush() {
            log::warn!("inventory not saved: {e}");
        }
        if let Some(path) = &self.snapshot
            && let Err(e) = write_snapshot(path, &self.inventory.entries())
        {
            log::warn!("inventory snapshot {} not written: {e}", path.display());
        }
        self.flush_analytics();
    }

    fn flush_analytics(&mut self) {
        let Some(store) = self.inventory.store_mut() else {
            return;
        };
        let (endpoints, global) = self.analytics.take_dirty();
        if endpoints.is_empty() && global.is_none() {
            return;
        }
        let encoded: Vec<(String, Vec<u8>)> = endpoints
            .iter()
            .filter_map(|(k, e)| serde_json::to_vec(e).ok().map(|v| (k.clone(), v)))
            .collect();
        let global_bytes = global.as_ref().and_then(|g| serde_json::to_vec(g).ok());
        let saved = store
            .save_analytics(encoded.iter().map(|(k, v)| (k.as_str(), v.as_slice())), global_bytes.as_deref());
        if let Err(e) = saved {
            log::warn!("analytics state not saved: {e}");
            self.analytics.mark_dirty(endpoints.into_iter().map(|(k, _)| k), global.is_some());
            return;
        }
        if let Some(path) = &self.snapshot {
            let path = path.with_file_name(ANALYTICS_SNAPSHOT_FILE);
            let text = serde_json::to_string_pretty(&self.analytics.report()).unwrap_or_default();
            if let Err(e) = write_file(&path, text.as_bytes()) {
                log::warn!("analytics snapshot {} not written: {e}", path.display());
            }
        }
    }

    /// Security findings and clients so far.
    #[must_use]
    pub fn security_report(&self) -> SecurityReport {
        self.analytics.report()
    }

    /// Specs whose server hosts no exchange has had yet.
    #[must_use]
    pub fn specs_hosts_unseen(&self) -> u64 {
        self.inventory.specs_hosts_unseen().len() as u64
    }

    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.inventory.dropped()
    }

    /// New security findings not kept because their cap was reached.
    #[must_use]
    pub fn analytics_dropped(&self) -> u64 {
        self.analytics.dropped()
    }
}

fn message_view<'a>(headers: &'a Headers, body: &'a [u8]) -> MessageView<'a> {
    let content_type = headers.get("content-type").and_then(|v| std::str::from_utf8(v).ok());
    MessageView { headers: headers.as_slice(), body, content_type }
}

/// A JSON body worth inferring a schema from: declared JSON, whole, not empty (parsed only
/// when the inventory samples it).
fn json_body<'a>(headers: &Headers, body: &Body, decoded: &'a [u8]) -> Option<&'a [u8]> {
    let content_type = headers.get("content-type")?;
    let declared = memchr::memmem::find(&content_type.to_ascii_lowercase(), b"json").is_some();
    (declared && body.complete && !decoded.is_empty() && body.captured.len() as u64 == body.size)
        .then_some(decoded)
}

/// How the request authenticates (scheme only, never the credential).
/// The Host header; without one, the server's address names the API.
fn host_of(headers: &Headers, meta: &crate::capture::ConnMeta) -> String {
    if let Some(h) = headers.get("host") {
        return String::from_utf8_lossy(h).trim().to_ascii_lowercase();
    }
    let server = match meta.role {
        Role::Server => meta.local,
        Role::Client => meta.remote,
    };
    server.map(|a| addr::socket_text(&a)).unwrap_or_default()
}

/// The server's socket port and, when the agent knows it, its pod (a client's pod is not its
/// server's).
fn server_of<'a>(
    meta: &crate::capture::ConnMeta,
    pod: Option<&'a PodInfo>,
) -> (Option<u16>, Option<inventory::PodView<'a>>) {
    let server = match meta.role {
        Role::Server => meta.local,
        Role::Client => meta.remote,
    };
    let pod = pod
        .filter(|_| meta.role == Role::Server)
        .map(|p| inventory::PodView { namespace: &p.namespace, labels: &p.labels });
    (server.map(|a| a.port()), pod)
}

fn auth_scheme(headers: &Headers) -> Option<String> {
    if let Some(value) = headers.get("authorization") {
        let scheme =
            String::from_utf8_lossy(value).split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
        return Some(if scheme.is_empty() { "unknown".to_owned() } else { scheme });
    }
    if headers.get("x-api-key").is_some() || headers.get("api-key").is_some() {
        return Some("apikey".to_owned());
    }
    headers.get("cookie").map(|_| "cookie".to_owned())
}

fn write_snapshot(path: &Path, entries: &[EntryView]) -> std::io::Result<()> {
    write_file(path, inventory::render_json(entries).as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut file = fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

fn inventory_store(inventory: &Inventory) -> Option<&Store> {
    inventory.store()
}

type DecodedAnalytics = (Vec<(String, analytics::state::EndpointState)>, Option<analytics::GlobalState>);

fn decode_analytics(store: &Store) -> Result<DecodedAnalytics, DetectError> {
    let (rows, global) = store.load_analytics()?;
    let bad = |what: &str, e: serde_json::Error| DetectError::AnalyticsState(format!("{what}: {e}"));
    let endpoints = rows
        .into_iter()
        .map(|(k, v)| serde_json::from_slice(&v).map(|e| (k, e)).map_err(|e| bad("endpoint row", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let global = global.map(|g| serde_json::from_slice(&g)).transpose().map_err(|e| bad("global row", e))?;
    Ok((endpoints, global))
}

/// The security findings and clients kept in `state_dir`: from the store, or from the snapshot
/// while a running agent holds the store. Empty when analytics has not run there.
pub fn load_security(state_dir: &Path) -> anyhow::Result<SecurityReport> {
    use anyhow::Context as _;
    let store_path = state_dir.join(STORE_FILE);
    match Store::open(&store_path) {
        Ok(store) => {
            let (endpoints, global) = decode_analytics(&store)?;
            let map: std::collections::HashMap<String, analytics::state::EndpointState> =
                endpoints.into_iter().collect();
            Ok(analytics::report(map.iter(), &global.unwrap_or_default()))
        }
        Err(e) => {
            let snapshot = state_dir.join(ANALYTICS_SNAPSHOT_FILE);
            if !snapshot.exists() {
                return Ok(SecurityReport::default());
            }
            let text = fs::read_to_string(&snapshot)
                .with_context(|| format!("{e}; and no readable snapshot at {}", snapshot.display()))?;
            serde_json::from_str(&text).with_context(|| format!("reading {}", snapshot.display()))
        }
    }
}

/// The inventory kept in `state_dir`: from the store, or, while a running agent holds the
/// store, from the snapshot it rewrites at each flush.
pub fn load_entries(state_dir: &Path) -> anyhow::Result<Vec<EntryView>> {
    use anyhow::Context as _;
    let store_path = state_dir.join(STORE_FILE);
    if !store_path.exists() {
        anyhow::bail!("no inventory in {} (has the agent run with --state-dir there?)", state_dir.display());
    }
    match Store::open(&store_path) {
        Ok(store) => Ok(store.load()?),
        Err(e) => {
            let snapshot = state_dir.join(SNAPSHOT_FILE);
            let text = fs::read_to_string(&snapshot)
                .with_context(|| format!("{e}; and no snapshot at {}", snapshot.display()))?;
            log::debug!("store busy ({e}): reading the snapshot");
            serde_json::from_str(&text).with_context(|| format!("reading {}", snapshot.display()))
        }
    }
}
