//! Traffic generation and the reference matcher of the inventory bench.
//!
//! The reference is deliberately naive: segment by segment, a `{param}` matches any non-empty
//! segment; of the templates that fit, literal segments win at the first depth they differ,
//! then the reading with the server prefix, then the spec listed first (the rules the
//! inventory documents); the first that has the method documents the call.

use std::fmt::Write as _;

use anyhow::Context as _;
use serde_json::Value;

pub const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// One documented path with its operations: (METHOD, documented status codes).
pub struct PathDoc {
    /// Server prefix + spec path, as the inventory reports it.
    pub template: String,
    pub segments: Vec<Seg>,
    /// The spec path alone (the prefix stripped by an ingress).
    pub stripped: String,
    pub stripped_segments: Vec<Seg>,
    pub prefix: String,
    pub ops: Vec<(String, Vec<u16>)>,
}

#[derive(Clone, PartialEq)]
pub enum Seg {
    Lit(String),
    Param,
}

pub fn segments(template: &str) -> Vec<Seg> {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| if s.starts_with('{') { Seg::Param } else { Seg::Lit(s.to_owned()) })
        .collect()
}

/// Truth category of one exchange.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Truth {
    Documented,
    Shadow,
    UndocumentedMethod,
    /// Meant as undocumented, but the spec cannot tell it apart from a documented path.
    Ambiguous,
}

pub struct Exchange {
    pub method: String,
    pub target: String,
    pub status: u16,
    pub truth: Truth,
    /// What was generated: "documented", "near miss", ...
    pub category: &'static str,
    /// Truth endpoint key: method + the template the traffic was generated from.
    pub endpoint: String,
    /// Expected route for documented traffic.
    pub route: Option<String>,
}

/// How documented calls arrive, and which readings of the specs the deployment allows.
#[derive(Clone, Copy)]
pub struct Wire {
    /// Calls are sent with the server prefix.
    pub send_prefixed: bool,
    /// Calls are sent without it.
    pub send_stripped: bool,
    /// The prefixed reading documents a call (false: a config rule says `stripped`).
    pub allow_prefixed: bool,
}

/// Small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A realistic path parameter value.
    pub fn id(&mut self) -> String {
        const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
        match self.below(5) {
            0 => format!("{}", 10_000 + self.below(90_000_000)),
            1 => {
                let (a, b) = (self.next(), self.next());
                format!(
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                    a >> 32,
                    a & 0xffff,
                    (a >> 16) & 0xfff,
                    0x8000 | (b & 0x3fff),
                    b >> 16
                )
            }
            2 => {
                let tail: String = (0..10).map(|_| char::from(*self.pick(ALNUM))).collect();
                format!("{}-{tail}", self.pick(&["pdc", "aac", "sdp", "vrp", "acc"]))
            }
            3 => format!("acct%2D{}", self.below(1_000_000)),
            _ => format!("{}", self.below(1000)),
        }
    }
}

/// The documented paths of parsed spec documents (servers[0] gives the prefix).
pub fn load_docs(docs: &[(String, Value)]) -> anyhow::Result<Vec<PathDoc>> {
    let mut out = Vec::new();
    for (name, doc) in docs {
        let url = doc
            .pointer("/servers/0/url")
            .and_then(Value::as_str)
            .with_context(|| format!("{name}: no servers[0].url"))?;
        // The path of an absolute URL is the prefix.
        let prefix = url.split_once("://").map_or(url, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
        let prefix = prefix.trim_end_matches('/').to_owned();
        let paths =
            doc.get("paths").and_then(Value::as_object).with_context(|| format!("{name}: no paths"))?;
        for (path, item) in paths {
            let mut ops = Vec::new();
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let statuses: Vec<u16> = op
                    .get("responses")
                    .and_then(Value::as_object)
                    .map(|r| r.keys().filter_map(|k| k.parse().ok()).collect())
                    .unwrap_or_default();
                ops.push((m.to_ascii_uppercase(), statuses));
            }
            let template = format!("{prefix}{path}");
            out.push(PathDoc {
                segments: segments(&template),
                template,
                stripped_segments: segments(path),
                stripped: path.clone(),
                prefix: prefix.clone(),
                ops,
            });
        }
    }
    Ok(out)
}

/// The reference verdict: (documented path, its template for this reading, has the method).
pub fn reference<'a>(
    docs: &'a [PathDoc],
    segs: &[Seg],
    method: &str,
    wire: Wire,
) -> Option<(&'a PathDoc, String, bool)> {
    let fits = |t: &[Seg]| {
        t.len() == segs.len()
            && t.iter().zip(segs).all(|(t, s)| match (t, s) {
                (Seg::Param, _) => true,
                (Seg::Lit(a), Seg::Lit(b)) => a == b,
                (Seg::Lit(_), Seg::Param) => false,
            })
    };
    let mut found: Vec<(Vec<bool>, bool, usize, &PathDoc, &str)> = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if (wire.allow_prefixed || d.prefix.is_empty()) && fits(&d.segments) {
            found.push((d.segments.iter().map(|s| *s == Seg::Param).collect(), false, i, d, &d.template));
        }
        if !d.prefix.is_empty() && fits(&d.stripped_segments) {
            found.push((
                d.stripped_segments.iter().map(|s| *s == Seg::Param).collect(),
                true,
                i,
                d,
                &d.stripped,
            ));
        }
    }
    found.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    let with_method = found.iter().find(|f| f.3.ops.iter().any(|(m, _)| m == method));
    with_method
        .map(|f| (f.3, f.4.to_owned(), true))
        .or_else(|| found.first().map(|f| (f.3, f.4.to_owned(), false)))
}

pub fn template_of(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        s.push('/');
        match seg {
            Seg::Lit(l) => s.push_str(l),
            Seg::Param => s.push_str("{param}"),
        }
    }
    s
}

/// A concrete target for logical segments (params get ids), with optional slash/query variants.
pub fn render(rng: &mut Rng, segs: &[Seg], variant: usize) -> String {
    let mut path = String::new();
    for s in segs {
        path.push('/');
        match s {
            Seg::Lit(l) => path.push_str(l),
            Seg::Param => path.push_str(&rng.id()),
        }
    }
    match variant % 5 {
        1 => path.push('/'),
        2 => path = path.replacen('/', "//", 1),
        3 => {
            let _ = write!(
                path,
                "?fromBookingDateTime=2024-0{}-01T00:00:00&page={}",
                1 + rng.below(9),
                rng.below(20)
            );
        }
        4 => {
            let _ = write!(path, "?x-request-id={}", rng.id());
        }
        _ => {}
    }
    path
}

/// Near misses of a literal segment: typo, singular/plural, case.
fn near_misses(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    if word.len() > 3 {
        let mut typo = word.to_owned();
        typo.remove(word.len() / 2);
        out.push(typo);
    }
    out.push(word.strip_suffix('s').map_or_else(|| format!("{word}s"), str::to_owned));
    let mut upper = word.to_owned();
    if let Some(first) = upper.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    out.push(upper);
    out
}

#[allow(clippy::too_many_lines)]
pub fn generate(docs: &[PathDoc], wire: Wire) -> Vec<Exchange> {
    let mut prefixes: Vec<String> = if wire.send_prefixed {
        docs.iter().map(|d| d.prefix.clone()).collect()
    } else {
        vec![String::new()]
    };
    prefixes.sort();
    prefixes.dedup();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    let push = |out: &mut Vec<Exchange>, method: &str, target: String, status, segs: &[Seg], category| {
        let (truth, route) = match reference(docs, segs, method, wire) {
            Some((_, template, true)) => {
                if category == "documented" {
                    (Truth::Documented, Some(template))
                } else {
                    (Truth::Ambiguous, None)
                }
            }
            Some(_) if category == "undocumented method" => (Truth::UndocumentedMethod, None),
            Some(_) => (Truth::Ambiguous, None),
            None => (Truth::Shadow, None),
        };
        let endpoint = format!("{method} {}", template_of(segs));
        out.push(Exchange { method: method.to_owned(), target, status, truth, category, endpoint, route });
    };
    for d in docs {
        // The segments as this deployment sends them (with the prefix when it is sent at all).
        let wire_segments = if wire.send_prefixed { &d.segments } else { &d.stripped_segments };
        let own_prefix = if wire.send_prefixed { Some(&d.prefix) } else { None };
        let prefix_len = if wire.send_prefixed { segments(&d.prefix).len() } else { 0 };
        for (method, statuses) in &d.ops {
            let ok: Vec<u16> = statuses.iter().copied().filter(|s| (200..300).contains(s)).collect();
            for i in 0..12 {
                let status = if i % 4 == 3 && !statuses.is_empty() {
                    *rng.pick(statuses)
                } else {
                    ok.first().copied().unwrap_or(200)
                };
                // Both readings sent: one call in three without the prefix (an ingress that
                // strips it in front of some of the replicas).
                let segs = if wire.send_stripped && (!wire.send_prefixed || i % 3 == 2) {
                    &d.stripped_segments
                } else {
                    &d.segments
                };
                let target = render(&mut rng, segs, i);
                push(&mut out, method, target, status, segs, "documented");
            }
        }
        let method = d.ops.first().map_or("GET", |(m, _)| m.as_str()).to_owned();
        // Near misses: each literal segment after the server prefix, mangled.
        for (i, seg) in wire_segments.iter().enumerate().skip(prefix_len) {
            let Seg::Lit(word) = seg else { continue };
            for miss in near_misses(word) {
                let mut segs = wire_segments.clone();
                segs[i] = Seg::Lit(miss);
                for v in 0..2 {
                    let target = render(&mut rng, &segs, v);
                    push(&mut out, &method, target, 404, &segs, "near miss");
                }
            }
        }
        // Extra trailing segments.
        for extra in ["export", "raw", "v2", "history", "debug"] {
            let mut segs = wire_segments.clone();
            segs.push(Seg::Lit(extra.to_owned()));
            let target = render(&mut rng, &segs, 0);
            push(&mut out, &method, target, 200, &segs, "extra segment");
        }
        // Other prefixes: other versions, another API, none, an extra /api.
        // (No prefix at all is not among them: a prefix may be stripped, that call is documented.)
        let rest = &d.stripped_segments;
        let mut other: Vec<String> = vec![
            "/open-banking/v3.1/aisp".into(),
            "/open-banking/v4.1/pisp".into(),
            "/open-banking/v4.0".into(),
        ];
        if !wire.allow_prefixed && !d.prefix.is_empty() {
            // The prefix where a config rule says the ingress strips it.
            other.push(d.prefix.clone());
        }
        other.extend(prefixes.iter().map(|p| format!("/api{p}")));
        // The other APIs' prefixes (a documented path under the wrong API).
        other.extend(prefixes.iter().filter(|p| Some(*p) != own_prefix && !p.is_empty()).cloned());
        for p in other {
            let mut segs = segments(&p);
            segs.extend(rest.iter().cloned());
            let target = render(&mut rng, &segs, 0);
            push(&mut out, &method, target, 200, &segs, "other prefix");
        }
        // Undocumented methods.
        for m in METHODS {
            let m = m.to_ascii_uppercase();
            if d.ops.iter().any(|(o, _)| *o == m) {
                continue;
            }
            for v in 0..2 {
                let target = render(&mut rng, wire_segments, v);
                push(&mut out, &m, target, 405, wire_segments, "undocumented method");
            }
        }
        // An undocumented literal where the spec has a (plain string) parameter.
        if wire_segments.last() == Some(&Seg::Param) {
            for word in ["export", "search", "summary"] {
                let mut segs = wire_segments.clone();
                if let Some(last) = segs.last_mut() {
                    *last = Seg::Lit(word.to_owned());
                }
                let target = render(&mut rng, &segs, 0);
                push(&mut out, &method, target, 200, &segs, "literal in a parameter position");
            }
        }
    }
    // Invented resources under each real prefix.
    for p in &prefixes {
        for rest in [
            "/admin/accounts",
            "/internal/metrics",
            "/debug/vars",
            "/accounts-export",
            "/v2/accounts/{id}",
            "/health",
        ] {
            let segs = segments(&format!("{p}{rest}"));
            for v in 0..3 {
                let target = render(&mut rng, &segs, v);
                push(&mut out, "GET", target, 200, &segs, "invented resource");
            }
        }
    }
    out
}
