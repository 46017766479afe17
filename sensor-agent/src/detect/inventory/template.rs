//! Route template inference for traffic that no spec describes.
//!
//! Two mechanisms, applied per path segment:
//! 1. value shape: numeric ids -> `{id}`, UUIDs -> `{uuid}`, >= 16 hex chars -> `{hash}`,
//!    e-mail addresses -> `{email}`, ISO dates / date-times -> `{date}`, long mixed
//!    alphanumeric (base64/JWT-like) tokens -> `{token}`, overlong segments -> `{param}`;
//! 2. cardinality: a per-host trie of the templated segments seen so far. When a node gets
//!    more than `threshold` distinct *literal* children, the position collapses to `{param}`
//!    for good, and the caller is told (a [`Collapse`]) so it can merge the entries already
//!    recorded under the old literals.
//!
//! Short words (`/users/me`, `/v1`, `/api`) stay literal until the cardinality rule fires.
//! Memory is bounded by `max_nodes` trie nodes over all hosts; past that, new literals are
//! only shape-classified.

use std::collections::HashMap;

/// Segments longer than this that match no shape are still templated as `{param}`.
const LONG_SEGMENT: usize = 80;

#[must_use]
pub fn is_integer(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())
}

#[must_use]
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

fn is_hex_hash(s: &str) -> bool {
    s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s.contains(|c: char| c.is_whitespace() || c == '/')
        && !domain.contains('@')
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 10 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10)) {
        return false;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (b.len() == 10 || matches!(b[10], b'T' | b't' | b' '))
}

fn is_token(s: &str) -> bool {
    if s.len() < 16 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=+.~".contains(&b)) {
        return false;
    }
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let upper = s.bytes().filter(u8::is_ascii_uppercase).count();
    let lower = s.bytes().filter(u8::is_ascii_lowercase).count();
    let letters = upper + lower;
    (digits >= 2 && letters >= 2) || (s.len() >= 24 && upper >= 2 && lower >= 2 && !s.contains('-'))
}

/// The placeholder for a segment whose *value shape* says it is a parameter, if any.
#[must_use]
pub fn classify_segment(seg: &str) -> Option<&'static str> {
    if is_integer(seg) {
        Some("{id}")
    } else if is_uuid(seg) {
        Some("{uuid}")
    } else if is_date(seg) {
        Some("{date}")
    } else if is_hex_hash(seg) {
        Some("{hash}")
    } else if is_email(seg) {
        Some("{email}")
    } else if is_token(seg) {
        Some("{token}")
    } else if seg.len() > LONG_SEGMENT {
        Some("{param}")
    } else {
        None
    }
}

/// A position that just became `{param}`: for `host`, every inferred route whose first
/// `prefix.len()` segments equal `prefix` and whose next segment is a literal should now read
/// `{param}` there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collapse {
    pub host: String,
    pub prefix: Vec<String>,
}

#[derive(Default)]
struct TNode {
    children: HashMap<String, TNode>,
    literal_children: usize,
    collapsed: bool,
}

impl TNode {
    fn size(&self) -> usize {
        1 + self.children.values().map(TNode::size).sum::<usize>()
    }
}

/// Per-host cardinality trie (see the module docs).
pub struct Templater {
    roots: HashMap<String, TNode>,
    nodes: usize,
    max_nodes: usize,
    threshold: usize,
}

impl Templater {
    #[must_use]
    pub fn new(threshold: usize, max_nodes: usize) -> Templater {
        Templater { roots: HashMap::new(), nodes: 0, max_nodes, threshold: threshold.max(1) }
    }

    /// Templates decoded path `segments` seen on `host`, updating the trie.
    pub fn template<S: AsRef<str>>(&mut self, host: &str, segments: &[S]) -> (String, Option<Collapse>) {
        let mut out: Vec<String> = Vec::with_capacity(segments.len());
        let mut collapse = None;
        if !self.roots.contains_key(host) && self.nodes < self.max_nodes {
            self.roots.insert(host.to_owned(), TNode::default());
            self.nodes += 1;
        }
        let mut node = self.roots.get_mut(host);
        for seg in segments {
            let seg = seg.as_ref();
            let key: String = if let Some(p) = classify_segment(seg) {
                p.to_owned()
            } else if seg.starts_with('{') && seg.ends_with('}') {
                seg.to_owned() // an already-templated route (seeding from the store)
            } else if let Some(n) = node.as_deref_mut() {
                if n.collapsed {
                    "{param}".to_owned()
                } else if n.children.contains_key(seg) {
                    seg.to_owned()
                } else if n.literal_children >= self.threshold {
                    let removed: usize =
                        n.children.iter().filter(|(k, _)| !k.starts_with('{')).map(|(_, c)| c.size()).sum();
                    n.children.retain(|k, _| k.starts_with('{'));
                    n.literal_children = 0;
                    n.collapsed = true;
                    self.nodes -= removed;
                    collapse = Some(Collapse { host: host.to_owned(), prefix: out.clone() });
                    "{param}".to_owned()
                } else {
                    seg.to_owned()
                }
            } else {
                seg.to_owned()
            };
            node = match node {
                Some(n) => {
                    if key == "{param}" {
                        n.collapsed = true;
                    }
                    if !n.children.contains_key(&key) && self.nodes < self.max_nodes {
                        if !key.starts_with('{') {
                            n.literal_children += 1;
                        }
                        self.nodes += 1;
                        n.children.insert(key.clone(), TNode::default());
                    }
                    n.children.get_mut(&key)
                }
                None => None,
            };
            out.push(key);
        }
        (format!("/{}", out.join("/")), collapse)
    }

    /// Replays a stored inferred route so cardinality state survives restarts.
    pub fn seed(&mut self, host: &str, route: &str) {
        let segs: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
        let _ = self.template(host, &segs);
    }

    /// Trie nodes in use (for stats / tests).
    #[must_use]
    pub fn nodes(&self) -> usize {
        self.nodes
    }
}

/// Rewrites `route` for a [`Collapse`] (None if unaffected).
#[must_use]
pub fn apply_collapse(route: &str, prefix: &[String]) -> Option<String> {
    let segs: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let k = prefix.len();
    if segs.len() <= k || segs[k].starts_with('{') || segs[..k].iter().zip(prefix).any(|(a, b)| a != b) {
        return None;
    }
    let mut new = segs;
    new[k] = "{param}";
    Some(format!("/{}", new.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tp: &mut Templater, path: &str) -> String {
        tp.template("h", &super::super::router::split_path(path)).0
    }

    #[test]
    fn shapes() {
        let mut tp = Templater::new(20, 10_000);
        assert_eq!(t(&mut tp, "/users/123"), "/users/{id}");
        assert_eq!(t(&mut tp, "/users/456/"), "/users/{id}");
        assert_eq!(t(&mut tp, "/users/me"), "/users/me");
        assert_eq!(t(&mut tp, "/v1/api"), "/v1/api");
        assert_eq!(t(&mut tp, "/o/123e4567-e89b-12d3-a456-426614174000"), "/o/{uuid}");
        assert_eq!(t(&mut tp, "/blobs/9f86d081884c7d659a2feaa0c55ad015"), "/blobs/{hash}");
        assert_eq!(t(&mut tp, "/by-email/alice%40example.com"), "/by-email/{email}");
        assert_eq!(t(&mut tp, "/reports/2024-01-31"), "/reports/{date}");
        assert_eq!(t(&mut tp, "/reports/2024-13-31"), "/reports/2024-13-31");
        assert_eq!(t(&mut tp, "/s/eyJhbGciOiJIUzI1NiJ9xYz"), "/s/{token}");
        assert_eq!(t(&mut tp, "/open-banking/v4.0/aisp"), "/open-banking/v4.0/aisp");
        assert_eq!(t(&mut tp, "/domestic-payment-consents"), "/domestic-payment-consents");
        assert_eq!(t(&mut tp, "/"), "/");
        assert!(!is_email("a@b") && is_email("a.b+c@d.co.uk"));
    }

    #[test]
    fn cardinality_collapse() {
        let mut tp = Templater::new(3, 10_000);
        for name in ["alice", "bob", "carol"] {
            let (r, c) = tp.template("h", &["users", name, "posts"]);
            assert_eq!(r, format!("/users/{name}/posts"));
            assert!(c.is_none());
        }
        let (r, c) = tp.template("h", &["users", "dave", "posts"]);
        assert_eq!(r, "/users/{param}/posts");
        assert_eq!(c, Some(Collapse { host: "h".into(), prefix: vec!["users".into()] }));
        let (r, c) = tp.template("h", &["users", "erin"]);
        assert_eq!((r.as_str(), c), ("/users/{param}", None));
        // other hosts are independent
        assert_eq!(tp.template("other", &["users", "erin"]).0, "/users/erin");
        assert_eq!(
            apply_collapse("/users/alice/posts", &["users".into()]).as_deref(),
            Some("/users/{param}/posts")
        );
        assert_eq!(apply_collapse("/users/{id}", &["users".into()]), None);
        assert_eq!(apply_collapse("/teams/x", &["users".into()]), None);
    }

    #[test]
    fn bounded_nodes_and_seed() {
        let mut tp = Templater::new(1000, 50);
        for i in 0..500 {
            let _ = tp.template("h", &[format!("w{i}x")]);
        }
        assert!(tp.nodes() <= 50);
        let mut tp = Templater::new(20, 100);
        tp.seed("h", "/users/{param}");
        assert_eq!(tp.template("h", &["users", "zed"]).0, "/users/{param}");
    }
}
