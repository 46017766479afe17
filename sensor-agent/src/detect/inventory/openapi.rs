//! Loading `OpenAPI` 3.0 / 3.1 and Swagger 2.0 documents (YAML or JSON) into per-spec routers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::EndpointStatus;
use super::binding::{Binding, BindingError, PrefixMode, SpecRule, Target};
use super::document::{
    Doc, Responses, collect_path_params, invalid, kind, parse_responses, read_document, resolve, servers_v2,
    servers_v3, split_host,
};
use super::router::{ParamKind, Router, SegPattern, Specificity, parse_segment, split_path};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// A spec file that cannot be used at all. Every variant names the file; parse errors give the
/// line/column, structural errors the JSON pointer of the offending value.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{file}: cannot read: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}:{line}:{column}: invalid {format}: {message}")]
    Parse { file: String, format: &'static str, line: usize, column: usize, message: String },
    #[error("{file}: not an OpenAPI/Swagger document: {message}")]
    NotOpenApi { file: String, message: String },
    #[error("{file}: at {pointer}: {message}")]
    Invalid { file: String, pointer: String, message: String },
}

/// What [`Specs::load`] loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub files: Vec<String>,
    pub operations: usize,
    /// Parts that could not be used (unresolvable `$ref`s, odd path keys...), human readable.
    pub skipped: Vec<String>,
}

/// The spec-side result of matching one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Spec title (`info.title`, or the file name).
    pub spec: String,
    /// Full template as seen on the wire, server/basePath prefix included.
    pub template: String,
    /// Template as written under `paths` in the spec.
    pub spec_path: String,
    pub operation_id: Option<String>,
    pub deprecated: bool,
    /// The rule that made this spec apply to the exchange.
    pub binding: Binding,
}

/// A classification with the rule that chose the specs (for a shadow exchange too: an
/// `any_host` shadow was on a host no spec claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub route: Option<RouteMatch>,
    pub status: EndpointStatus,
    /// `None` when no spec applies (`unknown`).
    pub binding: Option<Binding>,
}

/// One spec as `config check` and the start-up log describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecSummary {
    pub title: String,
    pub file: String,
    pub operations: usize,
    /// `servers` (or `host` + `basePath`) as read, `(relative)` for a relative one.
    pub servers: Vec<String>,
    /// Hosts the servers name.
    pub hosts: Vec<String>,
    /// The config rules bound to it, described.
    pub rules: Vec<String>,
}

#[derive(Debug, Clone)]
struct Operation {
    method: String,
    operation_id: Option<String>,
    deprecated: bool,
    responses: Responses,
}

#[derive(Debug, Clone)]
struct PathItem {
    template: String,
    spec_path: String,
    /// `Some(true)`: read with the server prefix; `Some(false)`: without it (an ingress that
    /// strips it); `None`: the spec has no prefix, both readings are this one.
    prefixed: Option<bool>,
    ops: Vec<Operation>,
}

struct Spec {
    title: String,
    file: String,
    /// Each slot holds the readings that share a segment pattern (a prefixed template and a
    /// stripped one can).
    router: Router<Vec<PathItem>>,
    /// (method, full template, template without the server prefix) of every operation, for
    /// "never observed" reporting.
    operations: Vec<(String, String, String)>,
    servers: Vec<String>,
    hosts: Vec<String>,
}

/// Loaded specs; immutable once built (config rules are attached by [`Specs::bind`] before
/// use).
#[derive(Default)]
pub struct Specs {
    specs: Vec<Spec>,
    /// lower-case host without port -> (spec index, required port).
    by_host: HashMap<String, Vec<(usize, Option<u16>)>>,
    /// Specs with a relative server (or none): they name no host.
    any_host: Vec<usize>,
    /// Config rules, with the index of the spec each binds.
    rules: Vec<(usize, SpecRule)>,
    /// Per spec: some config rule binds it (then it never applies to unclaimed hosts).
    ruled: Vec<bool>,
}

/// One matching reading, ordered by [`Candidate::key`].
struct Candidate<'a> {
    specificity: Specificity,
    binding: Binding,
    spec: usize,
    item: &'a PathItem,
}

impl Candidate<'_> {
    /// Most specific first; ties: the reading with the server prefix (the longer documented
    /// one), then config over host over any-host, then the spec loaded first, then the template.
    fn key(&self) -> (Specificity, bool, Binding, usize, &str) {
        (self.specificity, self.item.prefixed == Some(false), self.binding, self.spec, &self.item.template)
    }
}

impl Specs {
    #[must_use]
    pub fn empty() -> Specs {
        Specs::default()
    }

    /// Loads files or directories (non-recursive; `*.yaml`, `*.yml`, `*.json`, sorted).
    pub fn load(paths: &[PathBuf]) -> Result<(Specs, LoadReport), SpecError> {
        let mut files = Vec::new();
        for p in paths {
            let name = p.display().to_string();
            let io = |source| SpecError::Io { file: name.clone(), source };
            if p.is_dir() {
                let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(io)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.is_file()
                            && matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
                    })
                    .collect();
                found.sort();
                files.extend(found);
            } else {
                files.push(p.clone());
            }
        }
        let mut specs = Specs::default();
        let mut report = LoadReport::default();
        for f in &files {
            let file = f.display().to_string();
            let doc = read_document(f, &file)?;
            specs.add(&file, &doc, &mut report)?;
            report.files.push(file);
        }
        Ok((specs, report))
    }

    /// Builds specs from already-parsed documents (used by tests and embedders).
    pub fn from_documents(docs: &[(&str, Value)]) -> Result<(Specs, LoadReport), SpecError> {
        let mut specs = Specs::default();
        let mut report = LoadReport::default();
        for (file, doc) in docs {
            specs.add(file, doc, &mut report)?;
            report.files.push((*file).to_owned());
        }
        Ok((specs, report))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Every documented operation as (spec title, METHOD, full template).
    pub fn operations(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.specs.iter().flat_map(|s| {
            s.operations.iter().map(move |(m, t, _)| (s.title.as_str(), m.as_str(), t.as_str()))
        })
    }

    /// Every documented operation as (spec title, METHOD, full template, template without the
    /// server prefix): an operation called either way was observed.
    pub fn operation_readings(&self) -> impl Iterator<Item = (&str, &str, &str, &str)> {
        self.specs.iter().flat_map(|s| {
            s.operations.iter().map(move |(m, t, st)| (s.title.as_str(), m.as_str(), t.as_str(), st.as_str()))
        })
    }

    /// Attaches the config's rules; each names a spec by file (as listed, or its file name) or
    /// `info.title`, and binds every spec so named. Errors name the rule by its position.
    pub fn bind(&mut self, rules: Vec<SpecRule>) -> Result<(), (usize, BindingError)> {
        self.ruled = vec![false; self.specs.len()];
        self.rules.clear();
        for (n, rule) in rules.into_iter().enumerate() {
            let name = rule.spec();
            let named: Vec<usize> = self
                .specs
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    s.title == name
                        || s.file == name
                        || Path::new(&s.file).file_name().is_some_and(|f| f.to_string_lossy() == name)
                })
                .map(|(i, _)| i)
                .collect();
            if named.is_empty() {
                return Err((n, BindingError::UnknownSpec(name.to_owned())));
            }
            for i in named {
                self.ruled[i] = true;
                self.rules.push((i, rule.clone()));
            }
        }
        Ok(())
    }

    /// Per spec: operations, servers, hosts and the rules that bind it.
    #[must_use]
    pub fn summaries(&self) -> Vec<SpecSummary> {
        self.specs
            .iter()
            .enumerate()
            .map(|(i, s)| SpecSummary {
                title: s.title.clone(),
                file: s.file.clone(),
                operations: s
                    .operations
                    .iter()
                    .map(|(m, _, st)| (m, st))
                    .collect::<std::collections::HashSet<_>>()
                    .len(),
                servers: s.servers.clone(),
                hosts: s.hosts.clone(),
                rules: self.rules.iter().filter(|(r, _)| *r == i).map(|(_, r)| r.describe()).collect(),
            })
            .collect()
    }

    /// Indices of the specs whose servers name `host` (port compared when they give one).
    #[must_use]
    pub fn claimed_by(&self, host: &str) -> Vec<usize> {
        let (name, port) = split_host(host);
        self.by_host.get(&name).map_or_else(Vec::new, |v| {
            v.iter().filter(|(_, want)| port_fits(*want, port)).map(|(i, _)| *i).collect()
        })
    }

    /// Indices of the specs whose servers name a host.
    #[must_use]
    pub fn with_hosts(&self) -> Vec<usize> {
        (0..self.specs.len()).filter(|i| !self.specs[*i].hosts.is_empty()).collect()
    }

    /// Title and hosts of spec `idx`.
    #[must_use]
    pub fn hosts_of(&self, idx: usize) -> Option<(&str, &[String])> {
        self.specs.get(idx).map(|s| (s.title.as_str(), s.hosts.as_slice()))
    }

    /// Classifies a request; `path` is the raw request-target (a query is ignored).
    #[must_use]
    pub fn classify(
        &self,
        host: &str,
        method: &str,
        path: &str,
        status: Option<u16>,
    ) -> (Option<RouteMatch>, EndpointStatus) {
        self.classify_segments(host, method, &split_path(path), status)
    }

    /// Same as [`Specs::classify`] on already split and decoded segments (a host only: no
    /// socket port, no pod; see [`Specs::classify_target`]).
    #[must_use]
    pub fn classify_segments<S: AsRef<str>>(
        &self,
        host: &str,
        method: &str,
        segments: &[S],
        status: Option<u16>,
    ) -> (Option<RouteMatch>, EndpointStatus) {
        let v = self.classify_target(&Target { host, port: None, pod: None }, method, segments, status);
        (v.route, v.status)
    }

    /// Classifies a request against the specs bound to `target` (see [`super::binding`]): every
    /// reading of every applicable spec that matches the path is ranked (literal segments beat
    /// parameters at every depth, across specs and prefixes; ties per [`Candidate::key`]); the
    /// first with the method decides, else the first is an undocumented method.
    #[must_use]
    pub fn classify_target<S: AsRef<str>>(
        &self,
        target: &Target<'_>,
        method: &str,
        segments: &[S],
        status: Option<u16>,
    ) -> Verdict {
        let applicable = self.applicable(target);
        let Some(best) = applicable.iter().map(|(_, b, _)| *b).min() else {
            return Verdict { route: None, status: EndpointStatus::Unknown, binding: None };
        };
        let method = method.to_ascii_uppercase();
        let mut found: Vec<Candidate<'_>> = Vec::new();
        for &(spec, binding, mode) in &applicable {
            for (specificity, items) in self.specs[spec].router.lookup_ranked(segments, 8) {
                found.extend(items.iter().filter(|item| mode.allows(item.prefixed)).map(|item| Candidate {
                    specificity,
                    binding,
                    spec,
                    item,
                }));
            }
        }
        found.sort_by(|a, b| a.key().cmp(&b.key()));
        let route = |c: &Candidate<'_>, op: Option<&Operation>| RouteMatch {
            spec: self.specs[c.spec].title.clone(),
            template: c.item.template.clone(),
            spec_path: c.item.spec_path.clone(),
            operation_id: op.and_then(|o| o.operation_id.clone()),
            deprecated: op.is_some_and(|o| o.deprecated),
            binding: c.binding,
        };
        for c in &found {
            if let Some(op) = c.item.ops.iter().find(|o| o.method == method) {
                let st = if op.deprecated {
                    EndpointStatus::Deprecated
                } else if status.is_some_and(|code| !op.responses.allows(code)) {
                    EndpointStatus::UndocumentedStatus
                } else {
                    EndpointStatus::Documented
                };
                return Verdict { route: Some(route(c, Some(op))), status: st, binding: Some(c.binding) };
            }
        }
        match found.first() {
            Some(c) => Verdict {
                route: Some(route(c, None)),
                status: EndpointStatus::UndocumentedMethod,
                binding: Some(c.binding),
            },
            None => Verdict { route: None, status: EndpointStatus::Shadow, binding: Some(best) },
        }
    }

    /// The specs that apply to `target`, each with its rule and prefix mode (module doc of
    /// [`super::binding`]).
    fn applicable(&self, target: &Target<'_>) -> Vec<(usize, Binding, PrefixMode)> {
        let mut out: Vec<(usize, Binding, PrefixMode)> = Vec::new();
        for (i, rule) in &self.rules {
            if !out.iter().any(|(j, _, _)| j == i) && rule.matches(target) {
                out.push((*i, Binding::Config, rule.server_prefix()));
            }
        }
        if !out.is_empty() {
            return out;
        }
        let ruled = |i: usize| self.ruled.get(i).copied().unwrap_or(false);
        let claimed = self.claimed_by(target.host);
        if claimed.is_empty() {
            out.extend(
                (0..self.specs.len())
                    .filter(|i| !ruled(*i))
                    .map(|i| (i, Binding::AnyHost, PrefixMode::Either)),
            );
        } else {
            out.extend(claimed.iter().map(|i| (*i, Binding::Host, PrefixMode::Either)));
            out.extend(
                self.any_host
                    .iter()
                    .filter(|i| !ruled(**i))
                    .map(|i| (*i, Binding::AnyHost, PrefixMode::Either)),
            );
        }
        out.sort_unstable_by_key(|(i, b, _)| (*i, *b));
        out.dedup_by_key(|(i, _, _)| *i);
        out
    }

    fn add(&mut self, file: &str, doc: &Value, report: &mut LoadReport) -> Result<(), SpecError> {
        let root = doc.as_object().ok_or_else(|| SpecError::NotOpenApi {
            file: file.to_owned(),
            message: format!("document root is {}, expected an object", kind(doc)),
        })?;
        let v2 = match (root.get("openapi"), root.get("swagger")) {
            (Some(Value::String(v)), _) if v.starts_with("3.") => false,
            (_, Some(Value::String(v))) if v == "2.0" => true,
            (Some(v), _) => return Err(invalid(file, "/openapi", format!("unsupported version {v}"))),
            (None, Some(v)) => return Err(invalid(file, "/swagger", format!("unsupported version {v}"))),
            (None, None) => {
                return Err(SpecError::NotOpenApi {
                    file: file.to_owned(),
                    message: "neither `openapi` nor `swagger` field".into(),
                });
            }
        };
        let ctx = Doc { file, doc, v2 };
        let title = match root.get("info") {
            None => None,
            Some(Value::Object(info)) => info.get("title").and_then(Value::as_str).map(str::to_owned),
            Some(other) => return Err(ctx.wrong_type("/info", "an object", other)),
        }
        .unwrap_or_else(|| {
            Path::new(file).file_stem().map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned())
        });
        let empty = serde_json::Map::new();
        let paths = match root.get("paths") {
            Some(Value::Object(p)) => p,
            Some(other) => return Err(ctx.wrong_type("/paths", "an object", other)),
            None if !v2 && root.contains_key("webhooks") => &empty,
            None => return Err(invalid(file, "/paths", "missing required field `paths`".into())),
        };
        let servers = if v2 { servers_v2(root) } else { servers_v3(root, file)? };
        let mut prefixes: Vec<&str> = servers.iter().map(|(_, p)| p.as_str()).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        let (described, hosts) = describe_servers(&servers);
        let mut spec = Spec {
            title,
            file: file.to_owned(),
            router: Router::default(),
            operations: Vec::new(),
            servers: described,
            hosts,
        };
        for (raw_path, item) in paths {
            let Some((segs, ops)) = path_item(&ctx, raw_path, item, report)? else {
                continue;
            };
            let stripped = raw_path.trim_end_matches('/');
            let stripped = if stripped.is_empty() { "/" } else { stripped };
            let mut any_prefix = false;
            for prefix in &prefixes {
                let template = format!("{prefix}{}", raw_path.trim_end_matches('/'));
                let template = if template.is_empty() { "/".to_owned() } else { template };
                let mut full: Vec<SegPattern> = prefix
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| parse_segment(s, &|_| ParamKind::Any))
                    .collect();
                let reading = (!full.is_empty()).then_some(true);
                any_prefix |= reading.is_some();
                full.extend(segs.iter().cloned());
                for op in &ops {
                    spec.operations.push((op.method.clone(), template.clone(), stripped.to_owned()));
                }
                insert(
                    &mut spec.router,
                    &full,
                    PathItem { template, spec_path: raw_path.clone(), prefixed: reading, ops: ops.clone() },
                );
            }
            if any_prefix {
                // The reading an ingress that strips the prefix produces (once for all prefixes).
                let item = PathItem {
                    template: stripped.to_owned(),
                    spec_path: raw_path.clone(),
                    prefixed: Some(false),
                    ops: ops.clone(),
                };
                insert(&mut spec.router, &segs, item);
            }
            report.operations += ops.len();
        }
        let idx = self.specs.len();
        self.specs.push(spec);
        self.ruled.push(false);
        if servers.iter().any(|(h, _)| h.is_none()) {
            self.any_host.push(idx);
        }
        for (host, _) in &servers {
            if let Some((name, port)) = host {
                self.by_host.entry(name.clone()).or_default().push((idx, *port));
            }
        }
        Ok(())
    }
}

/// Servers as `config check` prints them, and the hosts they name.
fn describe_servers(servers: &[super::document::Server]) -> (Vec<String>, Vec<String>) {
    let mut hosts: Vec<String> = servers
        .iter()
        .filter_map(|(h, _)| h.as_ref().map(|(n, p)| p.map_or_else(|| n.clone(), |p| format!("{n}:{p}"))))
        .collect();
    hosts.sort();
    hosts.dedup();
    let described = servers
        .iter()
        .map(|(h, p)| match h {
            Some((n, Some(port))) => format!("{n}:{port}{p}"),
            Some((n, None)) => format!("{n}{p}"),
            None => format!("(relative){p}"),
        })
        .collect();
    (described, hosts)
}

/// Adds a reading to its slot: templates that share a segment pattern and a reading (`/a/{x}`
/// and `/a/{y}`) are one path item, the first template naming it.
fn insert(router: &mut Router<Vec<PathItem>>, segs: &[SegPattern], item: PathItem) {
    let slot = router.insert(segs).get_or_insert_with(Vec::new);
    match slot.iter_mut().find(|i| i.prefixed == item.prefixed) {
        Some(existing) => existing.ops.extend(item.ops),
        None => slot.push(item),
    }
}

/// Whether a request's port fits a server's: a server without a port fits every port; a
/// request without a port is on 80 or 443.
fn port_fits(want: Option<u16>, port: Option<u16>) -> bool {
    match (want, port) {
        (None, _) => true,
        (Some(w), Some(p)) => w == p,
        (Some(w), None) => w == 80 || w == 443,
    }
}

/// Template segments and operations of one `paths` entry.
type ParsedPath = (Vec<SegPattern>, Vec<Operation>);

/// Parses one `paths` entry into its template segments and operations (None: skipped).
fn path_item(
    ctx: &Doc<'_>,
    raw_path: &str,
    item: &Value,
    report: &mut LoadReport,
) -> Result<Option<ParsedPath>, SpecError> {
    let file = ctx.file;
    let ptr = format!("/paths/{}", raw_path.replace('~', "~0").replace('/', "~1"));
    if raw_path.starts_with("x-") {
        return Ok(None);
    }
    if !raw_path.starts_with('/') {
        report.skipped.push(format!("{file}: {ptr}: path does not start with '/'"));
        return Ok(None);
    }
    let item = match resolve(ctx.doc, item) {
        Ok(Value::Object(o)) => o,
        Ok(other) => return Err(ctx.wrong_type(&ptr, "a path item object", other)),
        Err(e) => {
            report.skipped.push(format!("{file}: {ptr}: {e}"));
            return Ok(None);
        }
    };
    let mut kinds: HashMap<String, ParamKind> = HashMap::new();
    collect_path_params(ctx, item.get("parameters"), &ptr, &mut kinds, report)?;
    let mut ops = Vec::new();
    for m in METHODS {
        let Some(op) = item.get(m) else { continue };
        let op_ptr = format!("{ptr}/{m}");
        let Value::Object(op) = op else {
            return Err(ctx.wrong_type(&op_ptr, "an operation object", op));
        };
        collect_path_params(ctx, op.get("parameters"), &op_ptr, &mut kinds, report)?;
        let responses = match op.get("responses") {
            None => Responses::default(),
            Some(Value::Object(r)) => parse_responses(r.keys()),
            Some(other) => return Err(ctx.wrong_type(&format!("{op_ptr}/responses"), "an object", other)),
        };
        ops.push(Operation {
            method: m.to_ascii_uppercase(),
            operation_id: op.get("operationId").and_then(Value::as_str).map(str::to_owned),
            deprecated: op.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
            responses,
        });
    }
    let segs = raw_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| parse_segment(s, &|name| kinds.get(name).cloned().unwrap_or(ParamKind::Any)))
        .collect();
    Ok(Some((segs, ops)))
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
