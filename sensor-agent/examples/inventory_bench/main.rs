//! `cargo xtask bench inventory`: how well the inventory labels undocumented (`shadow`)
//! endpoints, on traffic generated from real specs.
//!
//! Usage: `inventory_bench SPEC_DIR [PASSES]` (the UK Open Banking specs of
//! `../shared/testdata/openapi/obie`). Prints Markdown tables on stdout.
//!
//! Traffic: every documented operation with concrete ids, query strings and slash variants;
//! injected undocumented paths (near misses, extra segments, other prefixes, invented resources);
//! undocumented methods on documented paths; and undocumented literals in the place of a path
//! parameter, which no spec-based matcher can tell from an id (reported apart).
//! The truth of every exchange is decided by a deliberately naive reference matcher (segment by
//! segment, a `{param}` matches any non-empty segment) over the specs' templates.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use sensor_agent::detect::inventory::{EndpointStatus, Inventory, Observation, Specs, parse_yaml};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// One documented path with its operations: (METHOD, documented status codes).
struct PathDoc {
    /// Server prefix + spec path, as the inventory reports it.
    template: String,
    segments: Vec<Seg>,
    ops: Vec<(String, Vec<u16>)>,
}

#[derive(Clone, PartialEq)]
enum Seg {
    Lit(String),
    Param,
}

fn segments(template: &str) -> Vec<Seg> {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| if s.starts_with('{') { Seg::Param } else { Seg::Lit(s.to_owned()) })
        .collect()
}

/// Truth category of one exchange.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Truth {
    Documented,
    Shadow,
    UndocumentedMethod,
    /// Meant as undocumented, but the spec cannot tell it apart from a documented path.
    Ambiguous,
}

struct Exchange {
    method: String,
    target: String,
    status: u16,
    truth: Truth,
    /// What was generated: "documented", "near miss", ...
    category: &'static str,
    /// Truth endpoint key: method + the template the traffic was generated from.
    endpoint: String,
    /// Expected route for documented traffic.
    route: Option<String>,
}

/// Small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A realistic path parameter value.
    fn id(&mut self) -> String {
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

fn load_docs(dir: &PathBuf) -> anyhow::Result<(Vec<PathDoc>, Vec<String>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut prefixes = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {name}"))?;
        let doc = parse_yaml(&text, &name)?;
        let prefix = doc
            .pointer("/servers/0/url")
            .and_then(Value::as_str)
            .with_context(|| format!("{name}: no servers[0].url"))?
            .trim_end_matches('/')
            .to_owned();
        prefixes.push(prefix.clone());
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
            out.push(PathDoc { segments: segments(&template), template, ops });
        }
    }
    prefixes.sort();
    prefixes.dedup();
    Ok((out, prefixes))
}

/// The naive reference: the documented path item matching these logical segments, if any.
fn reference<'a>(docs: &'a [PathDoc], segs: &[Seg]) -> Option<&'a PathDoc> {
    docs.iter().find(|d| {
        d.segments.len() == segs.len()
            && d.segments.iter().zip(segs).all(|(t, s)| match (t, s) {
                (Seg::Param, _) => true,
                (Seg::Lit(a), Seg::Lit(b)) => a == b,
                (Seg::Lit(_), Seg::Param) => false,
            })
    })
}

/// A concrete target for logical segments (params get ids), with optional slash/query variants.
fn render(rng: &mut Rng, segs: &[Seg], variant: usize) -> String {
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

fn template_of(segs: &[Seg]) -> String {
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
fn generate(docs: &[PathDoc], prefixes: &[String]) -> Vec<Exchange> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    let push = |out: &mut Vec<Exchange>, method: &str, target: String, status, segs: &[Seg], category| {
        let (truth, route) = match reference(docs, segs) {
            Some(d) if d.ops.iter().any(|(m, _)| m == method) => {
                if category == "documented" {
                    (Truth::Documented, Some(d.template.clone()))
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
        let own_prefix = prefixes.iter().find(|p| d.template.starts_with(p.as_str()));
        let prefix_len = own_prefix.map_or(0, |p| segments(p).len());
        for (method, statuses) in &d.ops {
            let ok: Vec<u16> = statuses.iter().copied().filter(|s| (200..300).contains(s)).collect();
            for i in 0..12 {
                let status = if i % 4 == 3 && !statuses.is_empty() {
                    *rng.pick(statuses)
                } else {
                    ok.first().copied().unwrap_or(200)
                };
                let target = render(&mut rng, &d.segments, i);
                push(&mut out, method, target, status, &d.segments, "documented");
            }
        }
        let method = d.ops.first().map_or("GET", |(m, _)| m.as_str()).to_owned();
        // Near misses: each literal segment after the server prefix, mangled.
        for (i, seg) in d.segments.iter().enumerate().skip(prefix_len) {
            let Seg::Lit(word) = seg else { continue };
            for miss in near_misses(word) {
                let mut segs = d.segments.clone();
                segs[i] = Seg::Lit(miss);
                for v in 0..2 {
                    let target = render(&mut rng, &segs, v);
                    push(&mut out, &method, target, 404, &segs, "near miss");
                }
            }
        }
        // Extra trailing segments.
        for extra in ["export", "raw", "v2", "history", "debug"] {
            let mut segs = d.segments.clone();
            segs.push(Seg::Lit(extra.to_owned()));
            let target = render(&mut rng, &segs, 0);
            push(&mut out, &method, target, 200, &segs, "extra segment");
        }
        // Other prefixes: other versions, another API, none, an extra /api.
        let rest = &d.segments[prefix_len..];
        let mut other: Vec<String> = vec![
            "/open-banking/v3.1/aisp".into(),
            "/open-banking/v4.1/pisp".into(),
            "/open-banking/v4.0".into(),
            String::new(),
        ];
        other.extend(prefixes.iter().map(|p| format!("/api{p}")));
        // The other APIs' prefixes (a documented path under the wrong API).
        other.extend(prefixes.iter().filter(|p| Some(*p) != own_prefix).cloned());
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
                let target = render(&mut rng, &d.segments, v);
                push(&mut out, &m, target, 405, &d.segments, "undocumented method");
            }
        }
        // An undocumented literal where the spec has a (plain string) parameter.
        if d.segments.last() == Some(&Seg::Param) {
            for word in ["export", "search", "summary"] {
                let mut segs = d.segments.clone();
                if let Some(last) = segs.last_mut() {
                    *last = Seg::Lit(word.to_owned());
                }
                let target = render(&mut rng, &segs, 0);
                push(&mut out, &method, target, 200, &segs, "literal in a parameter position");
            }
        }
    }
    // Invented resources under each real prefix.
    for p in prefixes {
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

fn observe_all(specs: &Arc<Specs>, traffic: &[Exchange]) -> Vec<(EndpointStatus, String)> {
    let mut inv = Inventory::new(Arc::clone(specs), None);
    traffic
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let obs = Observation {
                host: "bank.example.com",
                method: &x.method,
                target: &x.target,
                status: Some(x.status),
                auth_scheme: Some("bearer"),
                client: "10.0.0.7",
                ts_unix_ms: 1_700_000_000_000 + i as u64,
                ..Observation::default()
            };
            let c = inv.observe(&obs);
            (c.status, c.route)
        })
        .collect()
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { f64::NAN } else { a as f64 / b as f64 }
}

/// Precision/recall of one label: rows of (truth is it, labeled it).
fn pr(rows: impl Iterator<Item = (bool, bool)>) -> (usize, usize, usize, f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for (truth, label) in rows {
        match (truth, label) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => {}
        }
    }
    (tp, fp, fn_, ratio(tp, tp + fp), ratio(tp, tp + fn_))
}

#[allow(clippy::too_many_lines)]
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1).map(PathBuf::from) else {
        bail!("usage: inventory_bench SPEC_DIR [PASSES]");
    };
    let passes: usize = args.get(2).map_or(Ok(10), |p| p.parse()).context("PASSES")?;
    let (specs, report) = Specs::load(std::slice::from_ref(&dir))?;
    let specs = Arc::new(specs);
    let (docs, prefixes) = load_docs(&dir)?;
    let traffic = generate(&docs, &prefixes);
    let labels = observe_all(&specs, &traffic);

    let mut md = String::new();
    let count = |t: Truth| traffic.iter().filter(|x| x.truth == t).count();
    let _ = writeln!(
        md,
        "Specs: {} files, {} operations ({} skipped parts). Traffic: {} exchanges: {} documented, {} shadow, \
         {} undocumented method, {} undocumented literal in a parameter position.\n",
        report.files.len(),
        report.operations,
        report.skipped.len(),
        traffic.len(),
        count(Truth::Documented),
        count(Truth::Shadow),
        count(Truth::UndocumentedMethod),
        count(Truth::Ambiguous),
    );

    // Per exchange (the ambiguous ones apart).
    let main: Vec<(&Exchange, &(EndpointStatus, String))> =
        traffic.iter().zip(&labels).filter(|(x, _)| x.truth != Truth::Ambiguous).collect();
    let (tp, fp, fn_, p, r) =
        pr(main.iter().map(|(x, (s, _))| (x.truth == Truth::Shadow, *s == EndpointStatus::Shadow)));
    let _ = writeln!(md, "| measure | TP | FP | FN | precision | recall |");
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    let _ = writeln!(md, "| `shadow` label, per exchange | {tp} | {fp} | {fn_} | {p:.3} | {r:.3} |");
    let (tp2, fp2, fn2, p2, r2) = pr(main
        .iter()
        .map(|(x, (s, _))| (x.truth == Truth::UndocumentedMethod, *s == EndpointStatus::UndocumentedMethod)));
    let _ = writeln!(
        md,
        "| `undocumented_method` label, per exchange | {tp2} | {fp2} | {fn2} | {p2:.3} | {r2:.3} |"
    );

    // Per distinct endpoint: majority label of its exchanges.
    let mut by_endpoint: BTreeMap<&str, (Truth, HashMap<EndpointStatus, usize>)> = BTreeMap::new();
    for (x, (s, _)) in &main {
        let e = by_endpoint.entry(x.endpoint.as_str()).or_insert_with(|| (x.truth, HashMap::new()));
        *e.1.entry(*s).or_default() += 1;
    }
    let majority = |m: &HashMap<EndpointStatus, usize>| {
        m.iter().max_by_key(|(s, n)| (**n, std::cmp::Reverse(s.report_rank()))).map(|(s, _)| *s)
    };
    let mixed = by_endpoint.values().filter(|(_, m)| m.len() > 1).count();
    let (etp, efp, efn, ep, er) = pr(by_endpoint
        .values()
        .map(|(t, m)| (*t == Truth::Shadow, majority(m) == Some(EndpointStatus::Shadow))));
    let _ =
        writeln!(md, "| `shadow` label, per distinct endpoint | {etp} | {efp} | {efn} | {ep:.3} | {er:.3} |");

    // Documented labeling: label and route.
    let documented: Vec<_> = main.iter().filter(|(x, _)| x.truth == Truth::Documented).collect();
    let label_ok = documented.iter().filter(|(_, (s, _))| *s == EndpointStatus::Documented).count();
    let route_ok = documented
        .iter()
        .filter(|(x, (s, route))| {
            *s == EndpointStatus::Documented && x.route.as_deref() == Some(route.as_str())
        })
        .count();
    let _ = writeln!(
        md,
        "\nDocumented traffic: {label_ok} of {} exchanges labeled `documented` ({:.3}); {route_ok} of them also \
         with the exact spec route ({:.3}). Distinct endpoints: {} ({} with exchanges labeled differently).\n",
        documented.len(),
        ratio(label_ok, documented.len()),
        ratio(route_ok, documented.len()),
        by_endpoint.len(),
        mixed,
    );

    // Labels by generated category.
    let mut cats: BTreeMap<(&str, Truth), BTreeMap<&str, usize>> = BTreeMap::new();
    for (x, (s, _)) in traffic.iter().zip(&labels) {
        *cats.entry((x.category, x.truth)).or_default().entry(s.as_str()).or_default() += 1;
    }
    let _ = writeln!(md, "| generated as | truth (reference matcher) | exchanges | labeled |");
    let _ = writeln!(md, "| --- | --- | ---: | --- |");
    for ((cat, truth), got) in &cats {
        let n: usize = got.values().sum();
        let got: Vec<String> = got.iter().map(|(s, c)| format!("{s} {c}")).collect();
        let truth = match truth {
            Truth::Documented => "documented",
            Truth::Shadow => "shadow",
            Truth::UndocumentedMethod => "undocumented_method",
            Truth::Ambiguous => "documented by shape (ambiguous)",
        };
        let _ = writeln!(md, "| {cat} | {truth} | {n} | {} |", got.join(", "));
    }

    // Inventory rows the shadow traffic produced (templating of unknown routes).
    let mut inv = Inventory::new(Arc::clone(&specs), None);
    for (i, x) in traffic.iter().enumerate() {
        inv.observe(&Observation {
            host: "bank.example.com",
            method: &x.method,
            target: &x.target,
            status: Some(x.status),
            ts_unix_ms: i as u64,
            ..Observation::default()
        });
    }
    let shadow_rows = inv.entries().iter().filter(|e| e.status == EndpointStatus::Shadow).count();
    let shadow_endpoints = by_endpoint.values().filter(|(t, _)| *t == Truth::Shadow).count();
    let _ = writeln!(
        md,
        "\nInventory rows: {shadow_rows} `shadow` rows for {shadow_endpoints} distinct injected shadow endpoints \
         (unknown routes are templated from traffic: `{{id}}`/`{{uuid}}`/`{{param}}`; shapes it cannot \
         tell from literals stay separate rows).\n"
    );

    // Throughput.
    let mut best = f64::INFINITY;
    for _ in 0..passes.max(1) {
        let start = Instant::now();
        std::hint::black_box(observe_all(&specs, &traffic));
        best = best.min(start.elapsed().as_secs_f64());
    }
    let _ = writeln!(
        md,
        "Throughput: {:.0} exchanges/s through `Inventory::observe` (one thread, fresh inventory each pass, \
         {} exchanges, best of {} passes).",
        traffic.len() as f64 / best,
        traffic.len(),
        passes.max(1),
    );
    print!("{md}");
    Ok(())
}
