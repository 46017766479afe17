//! Text table, JSON and draft `OpenAPI` 3.1 renderings of inventory entries.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::{EndpointStatus, EntryView};

const OPENAPI_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Sorts entries for reports: shadow first (see [`EndpointStatus::ALL`]), then host, route,
/// method.
pub fn sort_entries(v: &mut [EntryView]) {
    v.sort_by(|a, b| report_order(a).cmp(&report_order(b)));
}

fn sorted(entries: &[EntryView]) -> Vec<&EntryView> {
    let mut v: Vec<&EntryView> = entries.iter().collect();
    v.sort_by(|a, b| report_order(a).cmp(&report_order(b)));
    v
}

/// The key reports sort by: shadow first, then host, route, method.
fn report_order(e: &EntryView) -> (usize, &str, &str, &str) {
    (e.status.report_rank(), &e.host, &e.route, &e.method)
}

/// RFC 3339 (seconds) rendering of a unix-ms timestamp.
#[must_use]
pub fn fmt_ts(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn join<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let v: Vec<&str> = items.into_iter().map(String::as_str).collect();
    if v.is_empty() { "-".to_owned() } else { v.join(",") }
}

/// Aligned plain-text table, shadow endpoints first.
#[must_use]
pub fn render_table(entries: &[EntryView]) -> String {
    let header =
        ["STATUS", "METHOD", "HOST", "ROUTE", "COUNT", "CODES", "AUTH", "SENSITIVE", "CLIENTS", "LAST SEEN"];
    let rows: Vec<[String; 10]> = sorted(entries)
        .into_iter()
        .map(|e| {
            let codes: Vec<String> = e.status_codes.iter().map(|(c, n)| format!("{c}:{n}")).collect();
            let mut auth = join(&e.auth_schemes);
            if e.unauthenticated > 0 {
                auth = if e.auth_schemes.is_empty() { "none".into() } else { format!("{auth},none") };
            }
            let clients = if e.clients_other > 0 {
                format!("{}+{}", e.clients.len(), e.clients_other)
            } else {
                e.clients.len().to_string()
            };
            [
                e.status.as_str().to_owned(),
                e.method.clone(),
                if e.host.is_empty() { "-".into() } else { e.host.clone() },
                e.route.clone(),
                e.count.to_string(),
                if codes.is_empty() { "-".into() } else { codes.join(",") },
                auth,
                join(&e.sensitive_types),
                clients,
                fmt_ts(e.last_seen),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i + 1 < widths.len() {
                let _ = write!(l, "{c}{}  ", " ".repeat(pad));
            } else {
                l.push_str(c);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

/// Pretty JSON array of entries, shadow first.
#[must_use]
pub fn render_json(entries: &[EntryView]) -> String {
    serde_json::to_string_pretty(&sorted(entries)).unwrap_or_else(|_| "[]".to_owned())
}

fn param_schema(name: &str) -> Value {
    match name {
        "id" => json!({"type": "integer"}),
        "uuid" => json!({"type": "string", "format": "uuid"}),
        "date" => json!({"type": "string", "format": "date"}),
        "email" => json!({"type": "string", "format": "email"}),
        "hash" => json!({"type": "string", "pattern": "^[0-9a-fA-F]{16,}$"}),
        _ => json!({"type": "string"}),
    }
}

/// Renames repeated parameter names (`/a/{id}/b/{id}` -> `/a/{id}/b/{id2}`); returns the path
/// and its parameter names.
fn unique_params(route: &str) -> (String, Vec<(String, String)>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut params = Vec::new();
    let mut segs = Vec::new();
    for seg in route.split('/').filter(|s| !s.is_empty()) {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let n = seen.entry(name.to_owned()).or_default();
            *n += 1;
            let unique = if *n == 1 { name.to_owned() } else { format!("{name}{n}") };
            segs.push(format!("{{{unique}}}"));
            params.push((unique, name.to_owned()));
        } else {
            segs.push(seg.to_owned());
        }
    }
    (format!("/{}", segs.join("/")), params)
}

fn security_scheme(name: &str) -> Value {
    match name {
        "bearer" => json!({"type": "http", "scheme": "bearer"}),
        "basic" => json!({"type": "http", "scheme": "basic"}),
        "digest" => json!({"type": "http", "scheme": "digest"}),
        "apikey" => json!({"type": "apiKey", "in": "header", "name": "X-API-Key",
            "description": "observed API key; header name not recorded"}),
        other => json!({"type": "http", "scheme": other}),
    }
}

/// One operation object of the draft for entry `e` (path parameters `params`).
fn operation(e: &EntryView, params: &[(String, String)]) -> Map<String, Value> {
    let mut op = Map::new();
    op.insert("summary".into(), Value::from(format!("{} {}", e.method, e.route)));
    if let Some(id) = &e.operation_id {
        op.insert("operationId".into(), Value::from(id.clone()));
    }
    if e.status == EndpointStatus::Deprecated {
        op.insert("deprecated".into(), Value::Bool(true));
    }
    if !params.is_empty() {
        let p: Vec<Value> = params
            .iter()
            .map(|(n, base)| json!({"name": n, "in": "path", "required": true, "schema": param_schema(base)}))
            .collect();
        op.insert("parameters".into(), Value::Array(p));
    }
    if let Some(s) = &e.request_schema {
        op.insert("requestBody".into(), json!({"content": {"application/json": {"schema": s.to_openapi()}}}));
    }
    let mut responses = Map::new();
    for code in e.status_codes.keys() {
        let mut r = json!({"description": "observed"});
        if let (Some(s), true) = (&e.response_schema, (200..300).contains(code)) {
            r["content"] = json!({"application/json": {"schema": s.to_openapi()}});
        }
        responses.insert(code.to_string(), r);
    }
    if responses.is_empty() {
        responses.insert("default".into(), json!({"description": "no response observed"}));
    }
    op.insert("responses".into(), Value::Object(responses));
    if !e.auth_schemes.is_empty() {
        let mut sec: Vec<Value> = e.auth_schemes.iter().map(|s| json!({ s.clone(): [] })).collect();
        if e.unauthenticated > 0 {
            sec.push(json!({}));
        }
        op.insert("security".into(), Value::Array(sec));
    }
    op.insert("x-apisense-status".into(), Value::from(e.status.as_str()));
    op.insert("x-apisense-hosts".into(), json!([e.host]));
    op.insert("x-apisense-count".into(), Value::from(e.count));
    op.insert("x-apisense-first-seen".into(), Value::from(fmt_ts(e.first_seen)));
    op.insert("x-apisense-last-seen".into(), Value::from(fmt_ts(e.last_seen)));
    if !e.sensitive_types.is_empty() {
        op.insert("x-apisense-sensitive".into(), json!(e.sensitive_types));
    }
    if let Some(spec) = &e.spec {
        op.insert("x-apisense-spec".into(), Value::from(spec.clone()));
    }
    op
}

/// Draft `OpenAPI` 3.1 document describing the observed traffic. Shadow endpoints come first
/// (in `paths` when `serde_json`'s `preserve_order` feature is on, which keeps insertion order;
/// always in the top-level `x-apisense-shadow-paths` list);
/// each operation carries `x-apisense-*` extensions (status, hosts, count, sensitive types);
/// request/response schemas are inferred types only, never example values.
#[must_use]
pub fn render_openapi(entries: &[EntryView]) -> Value {
    let mut paths = Map::new();
    let mut shadow_paths: Vec<Value> = Vec::new();
    let mut schemes: BTreeSet<String> = BTreeSet::new();
    let hosts: BTreeSet<&str> = entries.iter().map(|e| e.host.as_str()).filter(|h| !h.is_empty()).collect();
    for e in sorted(entries) {
        let method = e.method.to_ascii_lowercase();
        let (path, params) = unique_params(&e.route);
        if e.status == EndpointStatus::Shadow && !shadow_paths.iter().any(|p| p == &path) {
            shadow_paths.push(Value::from(path.clone()));
        }
        let item = paths.entry(path.clone()).or_insert_with(|| json!({}));
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        if !OPENAPI_METHODS.contains(&method.as_str()) {
            let other = item.entry("x-apisense-other-methods").or_insert_with(|| json!([]));
            if let Some(list) = other.as_array_mut() {
                list.push(Value::from(e.method.clone()));
            }
            continue;
        }
        if let Some(existing) = item.get_mut(&method) {
            // same route + method on another host: just note the host and add the count
            if let Some(h) = existing.get_mut("x-apisense-hosts").and_then(Value::as_array_mut) {
                h.push(Value::from(e.host.clone()));
            }
            continue;
        }
        schemes.extend(e.auth_schemes.iter().cloned());
        let op = operation(e, &params);
        item.insert(method, Value::Object(op));
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "apisense observed API (draft)",
            "version": "0.0.0-observed",
            "description": "Generated from observed traffic: shadow endpoints first; schemas are inferred types only.",
        },
        "servers": hosts.iter().map(|h| json!({"url": format!("//{h}")})).collect::<Vec<_>>(),
        "x-apisense-shadow-paths": shadow_paths,
        "paths": paths,
    });
    if !schemes.is_empty() {
        let s: Map<String, Value> = schemes.iter().map(|n| (n.clone(), security_scheme(n))).collect();
        doc["components"] = json!({ "securitySchemes": s });
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_param_names_and_table() {
        let (p, params) = unique_params("/a/{id}/b/{id}/{uuid}");
        assert_eq!(p, "/a/{id}/b/{id2}/{uuid}");
        assert_eq!(params.len(), 3);
        let e = EntryView {
            host: "h".into(),
            method: "GET".into(),
            route: "/x".into(),
            count: 3,
            unauthenticated: 3,
            ..EntryView::default()
        };
        let t = render_table(&[e]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].find("ROUTE"), lines[1].find("/x"));
        assert!(fmt_ts(0).starts_with("1970-01-01T00:00:00"));
    }
}
