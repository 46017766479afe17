//! Loading `OpenAPI` 3.0 / 3.1 and Swagger 2.0 documents (YAML or JSON) into per-spec routers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::EndpointStatus;
use super::document::{
    Doc, Responses, collect_path_params, invalid, kind, parse_responses, read_document, resolve, servers_v2,
    servers_v3, split_host,
};
use super::router::{ParamKind, Router, SegPattern, parse_segment, split_path};

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
    ops: Vec<Operation>,
}

struct Spec {
    title: String,
    router: Router<PathItem>,
    /// (method, full template) of every operation, for "never observed" reporting.
    operations: Vec<(String, String)>,
}

/// Loaded specs; immutable once built.
#[derive(Default)]
pub struct Specs {
    specs: Vec<Spec>,
    /// lower-case host without port -> (spec index, required port).
    by_host: HashMap<String, Vec<(usize, Option<u16>)>>,
    any_host: Vec<usize>,
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
        self.specs
            .iter()
            .flat_map(|s| s.operations.iter().map(move |(m, t)| (s.title.as_str(), m.as_str(), t.as_str())))
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

    /// Same as [`Specs::classify`] on already split and decoded segments.
    #[must_use]
    pub fn classify_segments<S: AsRef<str>>(
        &self,
        host: &str,
        method: &str,
        segments: &[S],
        status: Option<u16>,
    ) -> (Option<RouteMatch>, EndpointStatus) {
        let applicable = self.applicable(host);
        if applicable.is_empty() {
            return (None, EndpointStatus::Unknown);
        }
        let method = method.to_ascii_uppercase();
        let mut path_only: Option<(&Spec, &PathItem)> = None;
        for idx in applicable {
            let spec = &self.specs[idx];
            for item in spec.router.lookup(segments, 8) {
                if let Some(op) = item.ops.iter().find(|o| o.method == method) {
                    let rm = RouteMatch {
                        spec: spec.title.clone(),
                        template: item.template.clone(),
                        spec_path: item.spec_path.clone(),
                        operation_id: op.operation_id.clone(),
                        deprecated: op.deprecated,
                    };
                    let st = if op.deprecated {
                        EndpointStatus::Deprecated
                    } else if status.is_some_and(|c| !op.responses.allows(c)) {
                        EndpointStatus::UndocumentedStatus
                    } else {
                        EndpointStatus::Documented
                    };
                    return (Some(rm), st);
                }
                path_only.get_or_insert((spec, item));
            }
        }
        match path_only {
            Some((spec, item)) => (
                Some(RouteMatch {
                    spec: spec.title.clone(),
                    template: item.template.clone(),
                    spec_path: item.spec_path.clone(),
                    operation_id: None,
                    deprecated: false,
                }),
                EndpointStatus::UndocumentedMethod,
            ),
            None => (None, EndpointStatus::Shadow),
        }
    }

    fn applicable(&self, host: &str) -> Vec<usize> {
        let (name, port) = split_host(host);
        let mut out: Vec<usize> = self
            .by_host
            .get(&name)
            .map(|v| {
                v.iter()
                    .filter(|(_, want)| match (want, port) {
                        (None, _) => true,
                        (Some(w), Some(p)) => *w == p,
                        (Some(w), None) => *w == 80 || *w == 443,
                    })
                    .map(|(i, _)| *i)
                    .collect()
            })
            .unwrap_or_default();
        out.extend(self.any_host.iter().copied());
        out.sort_unstable();
        out.dedup();
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
        let mut spec = Spec { title, router: Router::default(), operations: Vec::new() };
        for (raw_path, item) in paths {
            let Some((segs, ops)) = path_item(&ctx, raw_path, item, report)? else {
                continue;
            };
            for prefix in &prefixes {
                let template = format!("{prefix}{}", raw_path.trim_end_matches('/'));
                let template = if template.is_empty() { "/".to_owned() } else { template };
                let mut full: Vec<SegPattern> = prefix
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| parse_segment(s, &|_| ParamKind::Any))
                    .collect();
                full.extend(segs.iter().cloned());
                for op in &ops {
                    spec.operations.push((op.method.clone(), template.clone()));
                }
                let slot = spec.router.insert(&full);
                match slot {
                    Some(existing) => existing.ops.extend(ops.iter().cloned()),
                    None => {
                        *slot = Some(PathItem { template, spec_path: raw_path.clone(), ops: ops.clone() });
                    }
                }
            }
            report.operations += ops.len();
        }
        let idx = self.specs.len();
        self.specs.push(spec);
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
