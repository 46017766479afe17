//! Segment trie used to match observed request paths against spec path templates.
//!
//! Each node has a hash map of literal children and a short, specificity-ordered list of
//! parameter children. Lookup walks one level per path segment: literal children are tried
//! before parameter children, and typed parameters (integer, uuid, enum, pattern) before
//! untyped ones, with backtracking bounded by [`MAX_STEPS`]. The cost of a lookup depends on
//! the depth of the path and on the number of parameter alternatives per level, not on the
//! number of paths in the spec.

use std::collections::HashMap;

use regex::{Regex, RegexBuilder};

use super::template::{is_integer, is_uuid};

/// Upper bound on trie nodes visited per lookup (guards against pathological specs).
const MAX_STEPS: usize = 4096;
/// Paths deeper than this are truncated before matching / inference.
pub const MAX_SEGMENTS: usize = 32;
/// Longest segment kept verbatim (longer ones are truncated on a char boundary).
pub const MAX_SEGMENT_LEN: usize = 256;

/// What a templated path parameter accepts.
#[derive(Debug, Clone)]
pub enum ParamKind {
    /// Any single non-empty segment.
    Any,
    /// Optionally signed decimal integer.
    Integer,
    /// Decimal number.
    Number,
    /// Canonical 8-4-4-4-12 UUID.
    Uuid,
    /// `true` / `false`.
    Boolean,
    /// One of a fixed set of values.
    Enum(Vec<String>),
    /// A (simple) `pattern` from the parameter schema, or a segment mixing literals and
    /// parameters such as `{id}.json`, compiled to an anchored regex.
    Pattern(Regex),
}

impl ParamKind {
    /// Builds a matcher from an OpenAPI/JSON-schema-ish description of a path parameter.
    #[must_use]
    pub fn from_schema(
        ty: Option<&str>,
        format: Option<&str>,
        pattern: Option<&str>,
        enumeration: Option<Vec<String>>,
    ) -> ParamKind {
        if let Some(values) = enumeration.filter(|v| !v.is_empty() && v.len() <= 256) {
            return ParamKind::Enum(values);
        }
        match ty {
            Some("integer") => return ParamKind::Integer,
            Some("number") => return ParamKind::Number,
            Some("boolean") => return ParamKind::Boolean,
            _ => {}
        }
        if format == Some("uuid") {
            return ParamKind::Uuid;
        }
        if let Some(p) = pattern.filter(|p| p.len() <= 200)
            && let Ok(re) = RegexBuilder::new(p).size_limit(1 << 16).build()
        {
            return ParamKind::Pattern(re);
        }
        ParamKind::Any
    }

    fn key(&self) -> String {
        match self {
            ParamKind::Any => "any".into(),
            ParamKind::Integer => "int".into(),
            ParamKind::Number => "num".into(),
            ParamKind::Uuid => "uuid".into(),
            ParamKind::Boolean => "bool".into(),
            ParamKind::Enum(v) => format!("enum:{}", v.join("\u{1f}")),
            ParamKind::Pattern(re) => format!("re:{}", re.as_str()),
        }
    }

    /// Lower ranks are tried first.
    fn rank(&self) -> u8 {
        match self {
            ParamKind::Enum(_) | ParamKind::Boolean => 0,
            ParamKind::Integer | ParamKind::Uuid => 1,
            ParamKind::Number | ParamKind::Pattern(_) => 2,
            ParamKind::Any => 3,
        }
    }

    fn matches(&self, seg: &str) -> bool {
        if seg.is_empty() {
            return false;
        }
        match self {
            ParamKind::Any => true,
            ParamKind::Integer => is_integer(seg.strip_prefix('-').unwrap_or(seg)),
            ParamKind::Number => {
                seg.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) && seg.parse::<f64>().is_ok()
            }
            ParamKind::Uuid => is_uuid(seg),
            ParamKind::Boolean => seg == "true" || seg == "false",
            ParamKind::Enum(values) => values.iter().any(|v| v == seg),
            ParamKind::Pattern(re) => re.is_match(seg),
        }
    }
}

/// One segment of a path template.
#[derive(Debug, Clone)]
pub enum SegPattern {
    Literal(String),
    Param(ParamKind),
}

/// Parses one template segment (`accounts`, `{AccountId}`, `{id}.json`); `kind_of` gives the
/// matcher for a parameter name.
pub fn parse_segment(seg: &str, kind_of: &dyn Fn(&str) -> ParamKind) -> SegPattern {
    if !seg.contains('{') {
        return SegPattern::Literal(percent_decode(seg));
    }
    if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
        && !name.contains(['{', '}'])
    {
        return SegPattern::Param(kind_of(name));
    }
    // Mixed literal/parameter segment: build an anchored regex.
    let mut re = String::from("^");
    let mut rest = seg;
    while let Some(open) = rest.find('{') {
        re.push_str(&regex::escape(&percent_decode(&rest[..open])));
        if let Some(close) = rest[open..].find('}') {
            re.push_str("(.+?)");
            rest = &rest[open + close + 1..];
        } else {
            re.push_str(&regex::escape(&rest[open..]));
            rest = "";
        }
    }
    re.push_str(&regex::escape(&percent_decode(rest)));
    re.push('$');
    match Regex::new(&re) {
        Ok(r) => SegPattern::Param(ParamKind::Pattern(r)),
        Err(_) => SegPattern::Param(ParamKind::Any),
    }
}

struct Node<T> {
    literals: HashMap<String, usize>,
    params: Vec<(String, ParamKind, usize)>,
    value: Option<T>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Node { literals: HashMap::new(), params: Vec::new(), value: None }
    }
}

/// How specifically a template matched a path: lower is more specific. Per segment from the
/// first, a literal beats a typed parameter, which beats an untyped one; paths of the same length
/// only are compared (a lookup's matches all have the path's length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity(u128);

/// A path-segment trie mapping templates to values of type `T`.
pub struct Router<T> {
    nodes: Vec<Node<T>>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router { nodes: vec![Node::new()] }
    }
}

impl<T> Router<T> {
    /// Returns the value slot for `template` (creating the nodes on the way).
    pub fn insert(&mut self, template: &[SegPattern]) -> &mut Option<T> {
        let mut cur = 0;
        for seg in template {
            cur = match seg {
                SegPattern::Literal(lit) => {
                    if let Some(&next) = self.nodes[cur].literals.get(lit) {
                        next
                    } else {
                        let next = self.nodes.len();
                        self.nodes.push(Node::new());
                        self.nodes[cur].literals.insert(lit.clone(), next);
                        next
                    }
                }
                SegPattern::Param(kind) => {
                    let key = kind.key();
                    if let Some((_, _, next)) = self.nodes[cur].params.iter().find(|(k, _, _)| *k == key) {
                        *next
                    } else {
                        let next = self.nodes.len();
                        self.nodes.push(Node::new());
                        let params = &mut self.nodes[cur].params;
                        params.push((key, kind.clone(), next));
                        params.sort_by_key(|(_, k, _)| k.rank());
                        next
                    }
                }
            };
        }
        &mut self.nodes[cur].value
    }

    /// All values whose template matches `segments`, most specific first (literal segments
    /// beat parameters, earlier segments weigh more), at most `limit`.
    #[cfg(test)]
    pub fn lookup<S: AsRef<str>>(&self, segments: &[S], limit: usize) -> Vec<&T> {
        self.lookup_ranked(segments, limit).into_iter().map(|(_, v)| v).collect()
    }

    /// Like [`Router::lookup`], with each value's [`Specificity`], so that matches from several
    /// routers (specs, prefix readings) can be ordered the same way.
    pub fn lookup_ranked<S: AsRef<str>>(&self, segments: &[S], limit: usize) -> Vec<(Specificity, &T)> {
        let mut out = Vec::new();
        let mut steps = 0;
        self.walk(0, segments, 0, limit, &mut steps, &mut out);
        out
    }

    fn walk<'a, S: AsRef<str>>(
        &'a self,
        node: usize,
        segments: &[S],
        rank: u128,
        limit: usize,
        steps: &mut usize,
        out: &mut Vec<(Specificity, &'a T)>,
    ) {
        *steps += 1;
        if out.len() >= limit || *steps > MAX_STEPS {
            return;
        }
        let n = &self.nodes[node];
        let Some((first, rest)) = segments.split_first() else {
            if let Some(v) = &n.value {
                out.push((Specificity(rank), v));
            }
            return;
        };
        let seg = first.as_ref();
        // Three bits per depth, the first segment in the highest bits: comparing two ranks
        // compares their first differing segment (split paths have at most MAX_SEGMENTS, 96
        // bits; deeper levels of longer slices all weigh nothing rather than overflow).
        let shift = u32::try_from(3 * rest.len()).unwrap_or(u32::MAX);
        if let Some(&next) = n.literals.get(seg) {
            self.walk(next, rest, rank, limit, steps, out);
        }
        for (_, kind, next) in &n.params {
            if kind.matches(seg) {
                let r = rank | u128::from(kind.rank() + 1).checked_shl(shift).unwrap_or(0);
                self.walk(*next, rest, r, limit, steps, out);
            }
        }
    }
}

/// Decodes `%XX` escapes (invalid escapes are kept verbatim; invalid UTF-8 is replaced).
#[must_use]
pub fn percent_decode(seg: &str) -> String {
    if !seg.contains('%') {
        return seg.to_owned();
    }
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a raw request-target into decoded, non-empty path segments: the query and fragment
/// are dropped, an absolute-form target (`http://host/p`) keeps only its path, and empty
/// segments (trailing or doubled slashes) are ignored. Bounded by [`MAX_SEGMENTS`] and
/// [`MAX_SEGMENT_LEN`].
#[must_use]
pub fn split_path(target: &str) -> Vec<String> {
    let mut path = target.split(['?', '#']).next().unwrap_or("");
    if let Some(idx) = path.find("://") {
        let after = &path[idx + 3..];
        path = after.find('/').map_or("", |p| &after[p..]);
    }
    path.split('/')
        .filter(|s| !s.is_empty())
        .take(MAX_SEGMENTS)
        .map(|s| {
            let mut d = percent_decode(s);
            if d.len() > MAX_SEGMENT_LEN {
                let mut cut = MAX_SEGMENT_LEN;
                while !d.is_char_boundary(cut) {
                    cut -= 1;
                }
                d.truncate(cut);
            }
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(path: &str, int_params: &[&str]) -> Vec<SegPattern> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                parse_segment(s, &|name| {
                    if int_params.contains(&name) { ParamKind::Integer } else { ParamKind::Any }
                })
            })
            .collect()
    }

    #[test]
    fn literal_beats_template_and_backtracks() {
        let mut r: Router<&str> = Router::default();
        *r.insert(&tpl("/accounts/{id}", &[])) = Some("by-id");
        *r.insert(&tpl("/accounts/me", &[])) = Some("me");
        *r.insert(&tpl("/accounts/{id}/balances", &[])) = Some("balances");
        assert_eq!(r.lookup(&split_path("/accounts/me"), 4), vec![&"me", &"by-id"]);
        assert_eq!(r.lookup(&split_path("/accounts/42"), 4), vec![&"by-id"]);
        // literal "me" dead-ends, backtrack to {id}
        assert_eq!(r.lookup(&split_path("/accounts/me/balances/"), 4), vec![&"balances"]);
        assert!(r.lookup(&split_path("/accounts"), 4).is_empty());
    }

    #[test]
    fn integer_param_rejects_non_integers() {
        let mut r: Router<&str> = Router::default();
        *r.insert(&tpl("/users/{uid}", &["uid"])) = Some("user");
        assert_eq!(r.lookup(&split_path("/users/123"), 4), vec![&"user"]);
        assert_eq!(r.lookup(&split_path("/users/-7"), 4), vec![&"user"]);
        assert!(r.lookup(&split_path("/users/abc"), 4).is_empty());
    }

    #[test]
    fn mixed_segments_and_decoding() {
        let mut r: Router<&str> = Router::default();
        *r.insert(&tpl("/files/{name}.json", &[])) = Some("json");
        *r.insert(&tpl("/tags/a b", &[])) = Some("space");
        assert_eq!(r.lookup(&split_path("/files/report.json?x=1"), 4), vec![&"json"]);
        assert!(r.lookup(&split_path("/files/report.xml"), 4).is_empty());
        assert_eq!(r.lookup(&split_path("/tags/a%20b"), 4), vec![&"space"]);
        assert_eq!(split_path("http://h:8080/a//b/?q#f"), vec!["a", "b"]);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41%e2%82%ac"), "A€");
    }

    #[test]
    fn typed_params_from_schema() {
        let uuid = ParamKind::from_schema(Some("string"), Some("uuid"), None, None);
        assert!(uuid.matches("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!uuid.matches("nope"));
        let pat = ParamKind::from_schema(Some("string"), None, Some("^[A-Z]{3}$"), None);
        assert!(pat.matches("GBP") && !pat.matches("gbp"));
        let en = ParamKind::from_schema(Some("string"), None, None, Some(vec!["a".into()]));
        assert!(en.matches("a") && !en.matches("b"));
    }
}
