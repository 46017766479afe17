//! API inventory: which HTTP endpoints exist on the wire, and how they compare to the specs.
//!
//! # Contract
//! * Input: one [`Observation`] per request/response exchange (host, method, raw target, status,
//!   auth scheme, sensitive-data detector names, client, time, optionally parsed JSON bodies).
//! * [`Inventory::observe`] returns a [`Classification`]: the route (spec template such as
//!   `/open-banking/v4.0/aisp/accounts/{AccountId}`, server prefix included, or an inferred
//!   template such as `/users/{id}`), its [`EndpointStatus`], the spec title / operationId and
//!   whether this (host, method, route) was never seen before (`new_endpoint`, true exactly
//!   once, also across restarts when a [`Store`] is used).
//! * Matching ([`Specs::classify`]) uses one segment trie per spec, keyed by the spec's
//!   `servers`/`basePath` prefix plus path; literals beat parameters, typed parameters
//!   (integer, uuid, enum, simple pattern) constrain what they match, trailing slashes and
//!   doubled slashes are ignored, segments are percent-decoded, the query is ignored.
//! * Which specs apply to an exchange ([`binding`]): the config's rules first, then the specs
//!   whose servers name the host (with the relative ones), then, on a host no spec claims,
//!   every spec without a config rule. The server prefix is matched when present and may be
//!   absent. Each classification says which rule bound the spec ([`Binding`]); the entry keeps
//!   the host the traffic had. With no spec loaded, [`EndpointStatus::Unknown`].
//! * Routes that no spec describes (shadow / unknown) are templated from traffic
//!   ([`template`]): value shapes (`{id}`, `{uuid}`, `{hash}`, `{email}`, `{date}`, `{token}`)
//!   and per-position cardinality (`{param}` after [`Limits::param_threshold`] distinct
//!   literals); entries already recorded under the old literals are merged.
//! * Memory is bounded ([`Limits`]): entry count (excess observations are counted in
//!   [`Inventory::dropped`]), clients / status codes / auth schemes / detector names per entry,
//!   inferred schema size, inference trie nodes. Body *values* are never stored: only types,
//!   property names and string formats.
//! * [`Inventory::flush`] persists changed entries; [`Inventory::new`] with a store resumes
//!   counts. Nothing is flushed implicitly on drop.

pub mod binding;
mod document;
mod entry;
mod export;
mod html;
mod openapi;
mod router;
mod schema;
mod store;
mod template;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use entry::{bounded, merge_entries, record};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use binding::{Binding, PodView, Target};
pub use document::parse_yaml;
pub use export::{render_json, render_openapi, render_table};
pub use html::{esc as escape_html, render_html, render_html_with};
pub use openapi::{LoadReport, RouteMatch, SpecError, SpecSummary, Specs, Verdict};
pub use router::split_path;
pub use schema::Schema;
pub use store::{Store, StoreError};
pub use template::{Collapse, Templater, classify_segment};

/// How an endpoint relates to the loaded specs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    /// Path + method in a spec for that host, status code allowed by `responses`.
    Documented,
    /// No such path in any spec for the host.
    Shadow,
    /// Path documented, method not.
    UndocumentedMethod,
    /// Path + method documented, status code not listed (and no `default` / `NXX` range).
    UndocumentedStatus,
    /// Operation marked `deprecated: true`, still called.
    Deprecated,
    /// No spec applies to that host: inferred only.
    #[default]
    Unknown,
}

impl EndpointStatus {
    /// All statuses, in report order (most interesting first).
    pub const ALL: [EndpointStatus; 6] = [
        EndpointStatus::Shadow,
        EndpointStatus::UndocumentedMethod,
        EndpointStatus::UndocumentedStatus,
        EndpointStatus::Deprecated,
        EndpointStatus::Unknown,
        EndpointStatus::Documented,
    ];

    /// The `snake_case` name (as serialized).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::Documented => "documented",
            EndpointStatus::Shadow => "shadow",
            EndpointStatus::UndocumentedMethod => "undocumented_method",
            EndpointStatus::UndocumentedStatus => "undocumented_status",
            EndpointStatus::Deprecated => "deprecated",
            EndpointStatus::Unknown => "unknown",
        }
    }

    /// Position in [`EndpointStatus::ALL`] (0 = listed first).
    #[must_use]
    pub fn report_rank(self) -> usize {
        EndpointStatus::ALL.iter().position(|s| *s == self).unwrap_or(usize::MAX)
    }
}

/// One observed exchange.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observation<'a> {
    /// Host header (may include `:port`), or "" if unknown.
    pub host: &'a str,
    pub method: &'a str,
    /// Raw request-target: path plus optional `?query` (ignored for matching).
    pub target: &'a str,
    pub status: Option<u16>,
    /// Scheme only: "bearer", "basic", "apikey"...
    pub auth_scheme: Option<&'a str>,
    /// Sensitive-data detector names that fired on this exchange.
    pub sensitive: &'a [&'a str],
    /// Client address or process name.
    pub client: &'a str,
    pub ts_unix_ms: u64,
    /// Whole bodies declared as JSON, for schema inference only (values are never stored).
    /// Raw: an endpoint's schema is sampled, and parsing every body would cost more than
    /// everything else the inventory does.
    pub request_json: Option<&'a [u8]>,
    pub response_json: Option<&'a [u8]>,
    /// The server's socket port, for config rules that name ports.
    pub server_port: Option<u16>,
    /// The server's pod, for config rules that name a namespace or labels.
    pub pod: Option<PodView<'a>>,
}

/// Result of [`Inventory::observe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    pub route: String,
    pub status: EndpointStatus,
    /// Spec title.
    pub spec: Option<String>,
    pub operation_id: Option<String>,
    /// The rule that bound the spec(s) the exchange was classified against (`None`: no spec
    /// applies).
    pub binding: Option<Binding>,
    /// First time this (host, method, route) was seen.
    pub new_endpoint: bool,
}

/// One inventory entry per (host, method, route).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EntryView {
    /// Lower-cased Host header (port kept).
    pub host: String,
    pub method: String,
    pub route: String,
    pub status: EndpointStatus,
    pub spec: Option<String>,
    pub operation_id: Option<String>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub count: u64,
    pub status_codes: BTreeMap<u16, u64>,
    /// Exchanges whose status code did not fit in `status_codes`.
    pub status_codes_other: u64,
    pub auth_schemes: BTreeSet<String>,
    /// Exchanges without any auth scheme.
    pub unauthenticated: u64,
    pub sensitive_types: BTreeSet<String>,
    /// Exchanges in which at least one sensitive-data detector fired.
    pub sensitive_hits: u64,
    pub clients: BTreeSet<String>,
    /// Exchanges from clients not kept in `clients` (set full).
    pub clients_other: u64,
    pub request_schema: Option<Schema>,
    pub response_schema: Option<Schema>,
    /// Bodies merged into the schemas.
    pub schema_samples: u64,
}

/// Memory bounds and inference knobs.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_entries: usize,
    pub max_clients: usize,
    pub max_status_codes: usize,
    pub max_auth_schemes: usize,
    pub max_sensitive_types: usize,
    /// Distinct literal children after which a path position becomes `{param}`.
    pub param_threshold: usize,
    pub max_trie_nodes: usize,
    /// Bodies merged per entry before sampling 1 in 64.
    pub schema_full_samples: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 50_000,
            max_clients: 32,
            max_status_codes: 32,
            max_auth_schemes: 8,
            max_sensitive_types: 32,
            param_threshold: 20,
            max_trie_nodes: 200_000,
            schema_full_samples: 256,
        }
    }
}

type Key = (String, String, String);

/// What [`Inventory::route`] concluded about one exchange.
struct Routed {
    host: String,
    method: String,
    route: String,
    status: EndpointStatus,
    spec: Option<String>,
    operation_id: Option<String>,
    binding: Option<Binding>,
}

impl Routed {
    fn classification(self, new_endpoint: bool) -> Classification {
        let Routed { route, status, spec, operation_id, binding, .. } = self;
        Classification { route, status, spec, operation_id, binding, new_endpoint }
    }
}

/// The endpoint inventory (single-threaded; wrap in a mutex to share).
pub struct Inventory {
    specs: Arc<Specs>,
    store: Option<Store>,
    limits: Limits,
    entries: HashMap<Key, EntryView>,
    dirty: HashSet<Key>,
    removed: HashSet<String>,
    templater: Templater,
    dropped: u64,
    load_error: Option<StoreError>,
    /// Specs whose servers name hosts none of the traffic has had yet.
    hosts_unseen: Vec<usize>,
}

impl Inventory {
    /// Creates an inventory; with a store, previously saved entries are loaded (a load error is
    /// kept in [`Inventory::load_error`]; use [`Inventory::open`] to fail instead).
    #[must_use]
    pub fn new(specs: Arc<Specs>, store: Option<Store>) -> Inventory {
        Self::with_limits(specs, store, Limits::default())
    }

    /// Like [`Inventory::new`] but returns the store's load error.
    pub fn open(specs: Arc<Specs>, store: Option<Store>, limits: Limits) -> Result<Inventory, StoreError> {
        let mut inv = Self::with_limits(specs, store, limits);
        match inv.load_error.take() {
            Some(e) => Err(e),
            None => Ok(inv),
        }
    }

    #[must_use]
    pub fn with_limits(specs: Arc<Specs>, store: Option<Store>, limits: Limits) -> Inventory {
        let mut inv = Inventory {
            specs,
            templater: Templater::new(limits.param_threshold, limits.max_trie_nodes),
            limits,
            store,
            entries: HashMap::new(),
            dirty: HashSet::new(),
            removed: HashSet::new(),
            dropped: 0,
            load_error: None,
            hosts_unseen: Vec::new(),
        };
        inv.hosts_unseen = inv.specs.with_hosts();
        let loaded = inv.store.as_ref().map(Store::load);
        match loaded {
            Some(Ok(list)) => {
                for e in list {
                    if inv.entries.len() >= inv.limits.max_entries {
                        inv.dropped += 1;
                        continue;
                    }
                    if e.spec.is_none() {
                        inv.templater.seed(&e.host, &e.route);
                    }
                    inv.entries.insert((e.host.clone(), e.method.clone(), e.route.clone()), e);
                }
            }
            Some(Err(e)) => inv.load_error = Some(e),
            None => {}
        }
        inv
    }

    /// The store error met while loading in [`Inventory::new`], if any.
    #[must_use]
    pub fn load_error(&self) -> Option<&StoreError> {
        self.load_error.as_ref()
    }

    /// Observations not recorded because the entry cap was reached.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Classifies one exchange without counting it: for a second view of an exchange already
    /// counted (the client side of a call whose server is on this node too).
    pub fn classify(&mut self, obs: &Observation<'_>) -> Classification {
        self.route(obs).classification(false)
    }

    /// Title and hosts of each spec whose servers name hosts that no exchange has had.
    #[must_use]
    pub fn specs_hosts_unseen(&self) -> Vec<(&str, &[String])> {
        self.hosts_unseen.iter().filter_map(|i| self.specs.hosts_of(*i)).collect()
    }

    /// The exchange's (host, method, route) and its classification.
    fn route(&mut self, obs: &Observation<'_>) -> Routed {
        let host = bounded(obs.host.trim(), 255).to_ascii_lowercase();
        let method = bounded(obs.method.trim(), 24).to_ascii_uppercase();
        let segments = split_path(obs.target);
        if !self.hosts_unseen.is_empty() {
            let claimed = self.specs.claimed_by(&host);
            self.hosts_unseen.retain(|i| !claimed.contains(i));
        }
        let target = Target { host: &host, port: obs.server_port, pod: obs.pod };
        let Verdict { route: rm, status, binding } =
            self.specs.classify_target(&target, &method, &segments, obs.status);
        let route = if let Some(m) = &rm {
            m.template.clone()
        } else {
            let (route, collapse) = self.templater.template(&host, &segments);
            if let Some(c) = collapse {
                self.apply_collapse(&c);
            }
            route
        };
        let (spec, operation_id) = rm.map_or((None, None), |m| (Some(m.spec), m.operation_id));
        Routed { host, method, route, status, spec, operation_id, binding }
    }

    /// Classifies one exchange and updates its entry.
    pub fn observe(&mut self, obs: &Observation<'_>) -> Classification {
        let routed = self.route(obs);
        let key: Key = (routed.host.clone(), routed.method.clone(), routed.route.clone());
        let status = routed.status;
        let mut new_endpoint = false;
        let full = self.entries.len() >= self.limits.max_entries;
        let entry = match self.entries.get_mut(&key) {
            Some(e) => e,
            None if full => {
                self.dropped += 1;
                return routed.classification(new_endpoint);
            }
            None => {
                new_endpoint = true;
                self.entries.entry(key.clone()).or_insert_with(|| EntryView {
                    host: key.0.clone(),
                    method: key.1.clone(),
                    route: key.2.clone(),
                    first_seen: obs.ts_unix_ms,
                    last_seen: obs.ts_unix_ms,
                    ..EntryView::default()
                })
            }
        };
        entry.status = match (entry.status, status) {
            (EndpointStatus::UndocumentedStatus, EndpointStatus::Documented) if !new_endpoint => {
                EndpointStatus::UndocumentedStatus
            }
            _ => status,
        };
        entry.spec.clone_from(&routed.spec);
        entry.operation_id.clone_from(&routed.operation_id);
        record(entry, obs, &self.limits);
        // Removals wait only between a collapse and the next flush: most calls have none to
        // cancel, and formatting the store key to find that out cost an allocation each.
        if !self.removed.is_empty() {
            self.removed.remove(&store::entry_key(&key.0, &key.1, &key.2));
        }
        self.dirty.insert(key);
        routed.classification(new_endpoint)
    }

    fn apply_collapse(&mut self, c: &Collapse) {
        let affected: Vec<(Key, String)> = self
            .entries
            .iter()
            .filter(|(k, e)| k.0 == c.host && e.spec.is_none())
            .filter_map(|(k, _)| template::apply_collapse(&k.2, &c.prefix).map(|r| (k.clone(), r)))
            .collect();
        for (old, new_route) in affected {
            let Some(mut e) = self.entries.remove(&old) else {
                continue;
            };
            self.dirty.remove(&old);
            self.removed.insert(store::entry_key(&old.0, &old.1, &old.2));
            let nk: Key = (old.0, old.1, new_route.clone());
            if let Some(target) = self.entries.get_mut(&nk) {
                merge_entries(target, &e, &self.limits);
            } else {
                e.route = new_route;
                self.entries.insert(nk.clone(), e);
            }
            self.removed.remove(&store::entry_key(&nk.0, &nk.1, &nk.2));
            self.dirty.insert(nk);
        }
    }

    /// Snapshot of all entries, most interesting first (shadow, ..., documented), then by
    /// host, route and method.
    #[must_use]
    pub fn entries(&self) -> Vec<EntryView> {
        let mut v: Vec<EntryView> = self.entries.values().cloned().collect();
        export::sort_entries(&mut v);
        v
    }

    /// Documented operations never observed, as (spec title, METHOD, full template).
    #[must_use]
    pub fn unobserved(&self) -> Vec<(String, String, String)> {
        let seen: HashSet<(&str, &str, &str)> = self
            .entries
            .values()
            .filter_map(|e| e.spec.as_deref().map(|s| (s, e.method.as_str(), e.route.as_str())))
            .collect();
        // Called with or without the server prefix, an operation was observed.
        let mut out: Vec<(String, String, String)> = self
            .specs
            .operation_readings()
            .filter(|(s, m, t, stripped)| !seen.contains(&(s, m, t)) && !seen.contains(&(s, m, stripped)))
            .map(|(s, m, t, _)| (s.to_owned(), m.to_owned(), t.to_owned()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The store, for other state kept beside the inventory (analytics).
    #[must_use]
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The store, for other state kept beside the inventory (analytics).
    pub fn store_mut(&mut self) -> Option<&mut Store> {
        self.store.as_mut()
    }

    /// Writes changed entries (and removals from merges) to the store, if any.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        let changed = self.dirty.iter().filter_map(|k| self.entries.get(k));
        store.save(changed, self.removed.iter().map(String::as_str))?;
        self.dirty.clear();
        self.removed.clear();
        Ok(())
    }
}

#[cfg(test)]
mod binding_tests;
#[cfg(test)]
pub(crate) mod tests;
