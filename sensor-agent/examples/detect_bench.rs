//! `cargo xtask bench detect`, apisense side: runs the sensitive-data detector over the corpus
//! written by `bench/detect_corpus.py` and writes what it found, per document, plus its
//! single-thread throughput (best of N passes over the whole corpus).
//!
//! Usage: `detect_bench CORPUS.jsonl OUT.json [REPS]`
//!
//! Two modes are measured on the same documents:
//! - `inspect`: the document as the body of a POST request with its content type
//!   (`application/json`, `application/x-www-form-urlencoded`, `text/plain`), as the sensor sees it;
//! - `scan_text`: the document as plain text, no structure or field names;
//!
//! and `inspect` once more with `min_confidence: medium` (low-confidence findings dropped).
//!
//! Findings never carry raw values, so each hit is reported as (kind, masked sample, count).

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context as _, bail};
use sensor_agent::detect::sensitive::{
    Confidence, Detector, ExchangeView, Finding, MessageView, SensitiveConfig, Side,
};
use serde_json::{Value, json};

struct Doc {
    id: u64,
    format: String,
    text: String,
    /// Generated API JSON with nothing sensitive (the `filler/*` groups).
    filler: bool,
}

#[derive(Clone, Copy)]
enum Mode {
    Inspect,
    ScanText,
}

fn content_type(format: &str) -> &'static str {
    match format {
        "json" => "application/json",
        "form" => "application/x-www-form-urlencoded",
        _ => "text/plain; charset=utf-8",
    }
}

fn run(det: &Detector, mode: Mode, doc: &Doc) -> Vec<Finding> {
    match mode {
        Mode::Inspect => {
            let headers: Vec<(String, Vec<u8>)> = Vec::new();
            let view = ExchangeView {
                method: "POST",
                target: "/api/v1/submit",
                request: Some(MessageView {
                    headers: &headers,
                    body: doc.text.as_bytes(),
                    content_type: Some(content_type(&doc.format)),
                }),
                response: None,
            };
            det.inspect(&view)
        }
        Mode::ScanText => det.scan_text(doc.text.as_bytes(), Side::Request, "body"),
    }
}

/// apisense detector name -> corpus kind (other detectors are kept as `other:<name>`).
fn kind_of(detector: &str) -> String {
    match detector {
        "payment_card" => "card".to_owned(),
        "iban" | "aws_access_key_id" | "aws_secret_access_key" | "jwt" => detector.to_owned(),
        other => format!("other:{other}"),
    }
}

fn load(path: &str) -> anyhow::Result<Vec<Doc>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut docs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).with_context(|| format!("{path}:{}", n + 1))?;
        let field = |k: &str| v.get(k).with_context(|| format!("{path}:{}: no {k:?}", n + 1));
        docs.push(Doc {
            id: field("id")?.as_u64().context("id is not an integer")?,
            format: field("format")?.as_str().unwrap_or_default().to_owned(),
            text: field("text")?.as_str().context("text is not a string")?.to_owned(),
            filler: field("group")?.as_str().is_some_and(|g| g.starts_with("filler")),
        });
    }
    Ok(docs)
}

/// Best wall time of `reps` passes over `docs` (seconds), and every pass's time.
fn best_pass(det: &Detector, mode: Mode, docs: &[&Doc], reps: usize) -> (f64, Vec<f64>) {
    let mut best = f64::INFINITY;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        let mut n = 0usize;
        for doc in docs {
            n += std::hint::black_box(run(det, mode, doc)).len();
        }
        std::hint::black_box(n);
        let s = start.elapsed().as_secs_f64();
        times.push(s);
        best = best.min(s);
    }
    (best, times)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(corpus), Some(out)) = (args.get(1), args.get(2)) else {
        bail!("usage: detect_bench CORPUS.jsonl OUT.json [REPS]");
    };
    let reps: usize = args.get(3).map_or(Ok(5), |r| r.parse()).context("REPS")?;
    let docs = load(corpus)?;
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    let all: Vec<&Doc> = docs.iter().collect();
    let filler: Vec<&Doc> = docs.iter().filter(|d| d.filler).collect();
    let filler_bytes: usize = filler.iter().map(|d| d.text.len()).sum();
    let default = Detector::new(&SensitiveConfig::default())?;
    let medium = Detector::new(&SensitiveConfig {
        min_confidence: Some(Confidence::Medium),
        ..SensitiveConfig::default()
    })?;
    let runs = [
        ("apisense (inspect)", &default, Mode::Inspect),
        ("apisense (scan_text)", &default, Mode::ScanText),
        ("apisense (inspect, min_confidence medium)", &medium, Mode::Inspect),
    ];

    let mut tools = Vec::new();
    let mut summary = String::new();
    for (name, det, mode) in runs {
        let mut results = Vec::with_capacity(docs.len());
        for doc in &docs {
            let hits: Vec<Value> = run(det, mode, doc)
                .iter()
                .map(|f| json!({"kind": kind_of(&f.detector), "sample": f.sample, "count": f.count}))
                .collect();
            if !hits.is_empty() {
                results.push(json!({"id": doc.id, "hits": hits}));
            }
        }
        let (best, times) = best_pass(det, mode, &all, reps);
        let mbps = bytes as f64 / 1e6 / best;
        // The filler alone: what a sensor pays for ordinary traffic with nothing to report.
        let (filler_best, _) = best_pass(det, mode, &filler, reps);
        let filler_mbps = filler_bytes as f64 / 1e6 / filler_best;
        let _ = writeln!(
            summary,
            "{}: {:.1} MB/s (best of {} over {bytes} bytes); filler only {:.1} MB/s ({filler_bytes} bytes)",
            name,
            mbps,
            times.len(),
            filler_mbps
        );
        tools.push(json!({
            "tool": name,
            "bytes": bytes,
            "reps": times.len(),
            "seconds": times,
            "seconds_best": best,
            "mb_per_s": mbps,
            "filler_bytes": filler_bytes,
            "filler_seconds_best": filler_best,
            "filler_mb_per_s": filler_mbps,
            "value_matching": false,
            "docs": results,
        }));
    }
    let out_json = json!({"tools": tools});
    std::fs::write(out, serde_json::to_vec(&out_json)?).with_context(|| format!("writing {out}"))?;
    eprint!("{summary}");
    Ok(())
}
