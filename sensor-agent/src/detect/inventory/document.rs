//! Reading spec documents (YAML / JSON) and the small helpers that interpret their parts:
//! local `$ref` resolution, path parameter types, response keys, server URLs and hosts.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::openapi::{LoadReport, SpecError};
use super::router::ParamKind;

const MAX_SPEC_BYTES: u64 = 64 << 20;

/// (host and optional port, path prefix) of one server entry.
/// Where in which document a part is being read.
pub struct Doc<'a> {
    pub file: &'a str,
    pub doc: &'a Value,
    /// Swagger 2.0 (parameter types inline, `host` + `basePath`).
    pub v2: bool,
}

impl Doc<'_> {
    pub fn wrong_type(&self, pointer: &str, expected: &str, found: &Value) -> SpecError {
        invalid(self.file, pointer, format!("expected {expected}, found {}", kind(found)))
    }
}

/// A [`SpecError::Invalid`] for `file` at JSON pointer `pointer`.
pub fn invalid(file: &str, pointer: &str, message: String) -> SpecError {
    SpecError::Invalid { file: file.to_owned(), pointer: pointer.to_owned(), message }
}

pub type Server = (Option<(String, Option<u16>)>, String);

#[derive(Debug, Clone, Default)]
pub struct Responses {
    codes: HashSet<u16>,
    ranges: [bool; 6],
    default: bool,
}

impl Responses {
    pub fn allows(&self, code: u16) -> bool {
        let empty = self.codes.is_empty() && !self.default && !self.ranges.iter().any(|r| *r);
        empty
            || self.default
            || self.codes.contains(&code)
            || self.ranges.get(usize::from(code / 100)) == Some(&true)
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn read_document(path: &Path, file: &str) -> Result<Value, SpecError> {
    let io = |source| SpecError::Io { file: file.to_owned(), source };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_SPEC_BYTES {
        return Err(SpecError::NotOpenApi {
            file: file.to_owned(),
            message: format!("file too large ({len} bytes)"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text).map_err(|e| SpecError::Parse {
            file: file.to_owned(),
            format: "JSON",
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    } else {
        parse_yaml(&text, file)
    }
}

/// Parses YAML (a JSON superset) into a JSON value; scalar mapping keys become strings.
pub fn parse_yaml(text: &str, file: &str) -> Result<Value, SpecError> {
    let mut y: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        SpecError::Parse { file: file.to_owned(), format: "YAML", line, column, message: e.to_string() }
    })?;
    y.apply_merge().map_err(|e| SpecError::Invalid {
        file: file.to_owned(),
        pointer: String::new(),
        message: format!("bad YAML merge key: {e}"),
    })?;
    yaml_to_json(y, file, "")
}

fn yaml_to_json(y: serde_norway::Value, file: &str, ptr: &str) -> Result<Value, SpecError> {
    use serde_norway::Value as Y;
    Ok(match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(
            seq.into_iter()
                .enumerate()
                .map(|(i, v)| yaml_to_json(v, file, &format!("{ptr}/{i}")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_owned(),
                    _ => {
                        return Err(SpecError::Invalid {
                            file: file.to_owned(),
                            pointer: ptr.to_owned(),
                            message: "mapping key is not a scalar".into(),
                        });
                    }
                };
                let child = format!("{ptr}/{}", key.replace('~', "~0").replace('/', "~1"));
                out.insert(key, yaml_to_json(v, file, &child)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value, file, ptr)?,
    })
}

/// Follows local `$ref`s (`#/...`) within `doc`; other refs are reported as unresolvable.
pub fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return Ok(v);
        };
        let Some(frag) = r.strip_prefix('#') else {
            return Err(format!("unresolvable $ref '{r}' (external references are not supported)"));
        };
        let frag = super::router::percent_decode(frag);
        v = doc.pointer(&frag).ok_or_else(|| format!("unresolvable $ref '{r}'"))?;
    }
    Err("$ref chain too long (cycle?)".into())
}

/// Records the matcher of every `in: path` parameter of a `parameters` list into `kinds`.
pub fn collect_path_params(
    ctx: &Doc<'_>,
    params: Option<&Value>,
    ptr: &str,
    kinds: &mut HashMap<String, ParamKind>,
    report: &mut LoadReport,
) -> Result<(), SpecError> {
    let (doc, file, v2) = (ctx.doc, ctx.file, ctx.v2);
    let Some(params) = params else { return Ok(()) };
    let Value::Array(list) = params else {
        return Err(ctx.wrong_type(&format!("{ptr}/parameters"), "an array", params));
    };
    for (i, p) in list.iter().enumerate() {
        let p = match resolve(doc, p) {
            Ok(p) => p,
            Err(e) => {
                report.skipped.push(format!("{file}: {ptr}/parameters/{i}: {e}"));
                continue;
            }
        };
        if p.get("in").and_then(Value::as_str) != Some("path") {
            continue;
        }
        let Some(name) = p.get("name").and_then(Value::as_str) else {
            continue;
        };
        let schema = if v2 { Ok(p) } else { p.get("schema").map_or(Ok(&Value::Null), |s| resolve(doc, s)) };
        let schema = schema.unwrap_or_else(|e| {
            report.skipped.push(format!("{file}: {ptr}/parameters/{i}/schema: {e}"));
            &Value::Null
        });
        let s = |k: &str| schema.get(k).and_then(Value::as_str);
        let enumeration = schema.get("enum").and_then(Value::as_array).map(|vals| {
            vals.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect()
        });
        kinds.insert(
            name.to_owned(),
            ParamKind::from_schema(s("type"), s("format"), s("pattern"), enumeration),
        );
    }
    Ok(())
}

pub fn parse_responses<'a>(keys: impl Iterator<Item = &'a String>) -> Responses {
    let mut r = Responses::default();
    for k in keys {
        let k = k.trim();
        if k.eq_ignore_ascii_case("default") {
            r.default = true;
        } else if let Ok(code) = k.parse::<u16>() {
            r.codes.insert(code);
        } else if let [d @ b'1'..=b'5', x1, x2] = k.as_bytes()
            && x1.eq_ignore_ascii_case(&b'x')
            && x2.eq_ignore_ascii_case(&b'x')
        {
            r.ranges[usize::from(d - b'0')] = true;
        }
    }
    r
}

pub fn split_host(host: &str) -> (String, Option<u16>) {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (format!("[{addr}]"), after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match h.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(p) => (name.trim_end_matches('.').to_owned(), Some(p)),
            Err(_) => (h.clone(), None),
        },
        _ => (h, None),
    }
}

/// Splits a server URL into (host, path prefix); relative URLs have no host.
pub fn split_url(url: &str) -> Server {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let authority_and_path = url.split_once("://").map(|(_, r)| r).or_else(|| url.strip_prefix("//"));
    let (host, path) = match authority_and_path {
        Some(rest) => {
            let (auth, path) = rest.find('/').map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
            let auth = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
            let host = (!auth.is_empty() && !auth.contains('{')).then(|| split_host(auth));
            (host, path)
        }
        None => (None, url.trim_start_matches("./")),
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != "." && *s != "..").collect();
    let prefix = if segs.is_empty() { String::new() } else { format!("/{}", segs.join("/")) };
    (host, prefix)
}

/// Servers of a 3.x document (`[(None, "")]` when there are none).
pub fn servers_v3(root: &serde_json::Map<String, Value>, file: &str) -> Result<Vec<Server>, SpecError> {
    let list = match root.get("servers") {
        None => return Ok(vec![(None, String::new())]),
        Some(Value::Array(l)) => l,
        Some(other) => {
            return Err(invalid(file, "/servers", format!("expected an array, found {}", kind(other))));
        }
    };
    let mut out = Vec::new();
    for s in list {
        let Some(url) = s.get("url").and_then(Value::as_str) else {
            continue;
        };
        let mut url = url.to_owned();
        if let Some(Value::Object(vars)) = s.get("variables") {
            for (name, var) in vars {
                if let Some(default) = var.get("default").and_then(Value::as_str) {
                    url = url.replace(&format!("{{{name}}}"), default);
                }
            }
        }
        out.push(split_url(&url));
    }
    if out.is_empty() {
        out.push((None, String::new()));
    }
    Ok(out)
}

pub fn servers_v2(root: &serde_json::Map<String, Value>) -> Vec<Server> {
    let host = root.get("host").and_then(Value::as_str).filter(|h| !h.is_empty()).map(split_host);
    let base = root.get("basePath").and_then(Value::as_str).unwrap_or("");
    vec![(host, split_url(base).1)]
}
