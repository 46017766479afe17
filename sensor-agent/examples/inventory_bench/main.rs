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
//! segment, a `{param}` matches any non-empty segment, literals first; a server prefix may be
//! absent) over the specs' templates ([`traffic`]).
//!
//! Then the deployment shapes ([`shapes`]): the same specs with absolute servers, called on
//! their own host, on a pod's host, with the prefix stripped, with templated first segments,
//! and bound by a config rule; `shadow` precision/recall and `documented` accuracy per shape.

mod shapes;
mod traffic;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use sensor_agent::detect::inventory::{EndpointStatus, Inventory, Observation, Specs, parse_yaml};
use serde_json::Value;
use traffic::{Exchange, Truth, Wire};

fn observe_all(specs: &Arc<Specs>, traffic: &[Exchange]) -> Vec<(EndpointStatus, String)> {
    observe_on(specs, traffic, "bank.example.com", None)
}

/// Every exchange through a fresh inventory, as sent to `host` (server socket `port`).
fn observe_on(
    specs: &Arc<Specs>,
    traffic: &[Exchange],
    host: &str,
    port: Option<u16>,
) -> Vec<(EndpointStatus, String)> {
    let mut inv = Inventory::new(Arc::clone(specs), None);
    traffic
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let obs = Observation {
                host,
                server_port: port,
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
    let documents = read_documents(&dir)?;
    let docs = traffic::load_docs(&documents)?;
    // As published (relative servers), on the host the specs are served from; calls with the
    // server prefix and, one in three, without it.
    let both = Wire { send_prefixed: true, send_stripped: true, allow_prefixed: true };
    let traffic = traffic::generate(&docs, both);
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
    md.push_str(&shapes::report(&documents)?);
    print!("{md}");
    Ok(())
}

/// The `*.yaml` specs of `dir`, sorted by name, parsed.
fn read_documents(dir: &PathBuf) -> anyhow::Result<Vec<(String, Value)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let name = f.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            Ok((name.clone(), parse_yaml(&text, &name)?))
        })
        .collect()
}
