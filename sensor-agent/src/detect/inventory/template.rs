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

/// Paths remembered with their routes, at most (then the memory starts over).
const MAX_CACHED_ROUTES: usize = 1024;
/// Longer (host, path) keys are not remembered: they are rare and would dominate the memory.
const MAX_CACHED_KEY: usize = 256;

/// Per-host cardinality trie (see the module docs).
pub struct Templater {
    roots: HashMap<String, TNode>,
    nodes: usize,
    max_nodes: usize,
    threshold: usize,
    /// Changes made to the trie so far: a route remembered is only valid while this is still
    /// the count it was remembered at.
    changes: u64,
    /// (host, path) -> route, all computed since the last change of the trie. An API's traffic
    /// repeats a few paths; templating one again walks the trie with three hash lookups and
    /// two allocations per segment to find the same answer (a second call on an unchanged trie
    /// changes nothing and returns the same route, see the test).
    routes: HashMap<String, String>,
    routes_at: u64,
}

impl Templater {
    #[must_use]
    pub fn new(threshold: usize, max_nodes: usize) -> Templater {
        Templater {
            roots: HashMap::new(),
            nodes: 0,
            max_nodes,
            threshold: threshold.max(1),
            changes: 0,
            routes: HashMap::new(),
            routes_at: 0,
        }
    }

    /// Templates decoded path `segments` seen on `host`, updating the trie.
    pub fn template<S: AsRef<str>>(&mut self, host: &str, segments: &[S]) -> (String, Option<Collapse>) {
        let key = route_key(host, segments);
        if self.routes_at != self.changes {
            self.routes.clear();
            self.routes_at = self.changes;
        }
        if let Some(route) = key.as_ref().and_then(|k| self.routes.get(k)) {
            return (route.clone(), None);
        }
        let (route, collapse) = self.template_uncached(host, segments);
        if let Some(key) = key {
            if self.routes_at != self.changes || self.routes.len() >= MAX_CACHED_ROUTES {
                self.routes.clear();
                self.routes_at = self.changes;
            }
            self.routes.insert(key, route.clone());
        }
        (route, collapse)
    }

    /// Routes remembered (for the tests).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.routes.len()
    }

    fn template_uncached<S: AsRef<str>>(&mut self, host: &str, segments: &[S]) -> (String, Option<Collapse>) {
        let mut out: Vec<String> = Vec::with_capacity(segments.len());
        let mut collapse = None;
        if !self.roots.contains_key(host) && self.nodes < self.max_nodes {
            self.roots.insert(host.to_owned(), TNode::default());
            self.nodes += 1;
            self.changes += 1;
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
                    self.changes += 1;
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
                    if key == "{param}" && !n.collapsed {
                        n.collapsed = true;
                        self.changes += 1;
                    }
                    if !n.children.contains_key(&key) && self.nodes < self.max_nodes {
                        if !key.starts_with('{') {
                            n.literal_children += 1;
                        }
                        self.nodes += 1;
                        self.changes += 1;
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

/// The cache key of a (host, segments) pair: each part with its length, since a decoded
/// segment may hold any character (`a%2Fb` is one segment, `a/b` two). `None` if too long.
fn route_key<S: AsRef<str>>(host: &str, segments: &[S]) -> Option<String> {
    let len = host.len() + segments.iter().map(|s| s.as_ref().len() + 4).sum::<usize>();
    if len > MAX_CACHED_KEY {
        return None;
    }
    let mut key = String::with_capacity(len + 8);
    for part in std::iter::once(host).chain(segments.iter().map(AsRef::as_ref)) {
        key.push_str(&part.len().to_string());
        key.push(':');
        key.push_str(part);
    }
    Some(key)
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

    /// The remembered routes answer as the trie does, on traffic that keeps collapsing,
    /// filling the trie and repeating itself; and there are never more than the cap of them.
    #[test]
    fn remembered_routes_equal_the_uncached_ones() {
        for (threshold, max_nodes) in [(3, 10_000), (2, 12), (50, 40)] {
            let mut cached = Templater::new(threshold, max_nodes);
            let mut plain = Templater::new(threshold, max_nodes);
            let words = ["a", "b", "c", "d", "e", "f", "42", "me", "x%2Fy", "a/b", "{id}"];
            let mut seed: u64 = 3;
            for step in 0..20_000 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let host = ["h", "k"][(seed >> 60) as usize % 2];
                let len = (seed >> 50) as usize % 4;
                let path: Vec<&str> =
                    (0..len).map(|i| words[(seed >> (7 * i + 3)) as usize % words.len()]).collect();
                assert_eq!(
                    cached.template(host, &path),
                    plain.template_uncached(host, &path),
                    "step {step} {path:?}"
                );
                assert_eq!(cached.nodes(), plain.nodes());
                assert!(cached.remembered() <= MAX_CACHED_ROUTES);
            }
        }
        let mut tp = Templater::new(1_000_000, 1_000_000);
        for i in 0..5000 {
            let _ = tp.template("h", &[format!("p{i}q")]);
            let _ = tp.template("h", &[format!("p{i}q")]);
            assert!(tp.remembered() <= MAX_CACHED_ROUTES);
        }
    }

    #[test]
    fn route_keys_keep_segments_apart() {
        assert_ne!(route_key("h", &["a/b"]), route_key("h", &["a", "b"]));
        assert_ne!(route_key("h", &["ab"]), route_key("ha", &["b"]));
        assert_eq!(route_key("h", &["x".repeat(300)]), None);
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
