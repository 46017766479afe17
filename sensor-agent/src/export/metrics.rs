//! Self-metrics in the Prometheus text format on `--metrics-addr` (GET /metrics). The pipeline
//! publishes a snapshot at each tick; the endpoint only reads it, so scraping never touches
//! capture.
use std::{
    borrow::Cow,
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// Everything the agent counts, as last published.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub samples: Vec<Sample>,
}

/// `(name, help, kind, labels, value)`; names and help are owned only when derived at run time.
pub type Sample = (Cow<'static, str>, Cow<'static, str>, Kind, String, f64);

/// Summary counters that are levels, not totals: exported as gauges.
const SUMMARY_GAUGES: &[&str] = &["pending_bytes", "held_bytes", "queue_depth"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Snapshot {
    pub fn counter(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.samples.push((name.into(), help.into(), Kind::Counter, String::new(), value as f64));
    }

    pub fn counter_with(&mut self, name: &'static str, help: &'static str, labels: &str, value: u64) {
        self.samples.push((name.into(), help.into(), Kind::Counter, labels.to_owned(), value as f64));
    }

    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.samples.push((name.into(), help.into(), Kind::Gauge, String::new(), value as f64));
    }

    /// Adds every number of a `stopped:`-style summary not already exported under its own
    /// name: `{"reassembly":{"gap_bytes":3}}` is `apisense_reassembly_gap_bytes_total`. What the
    /// agent counts for its final line it thus also exports, by construction.
    pub fn summary_counters(&mut self, summary: &serde_json::Value) {
        let mut leaves = Vec::new();
        summary_leaves(summary, &mut String::from("apisense"), &mut leaves);
        for (path, last, value) in leaves {
            let gauge = SUMMARY_GAUGES.contains(&last.as_str());
            let name = if gauge { path } else { format!("{path}_total") };
            if self.samples.iter().any(|(n, ..)| *n == name) {
                continue;
            }
            let help =
                format!("`{}` of the agent's `stopped:` summary.", name.trim_start_matches("apisense_"));
            let kind = if gauge { Kind::Gauge } else { Kind::Counter };
            self.samples.push((name.into(), help.into(), kind, String::new(), value));
        }
    }

    /// Whether a metric of this name is exported.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, ..)| n == name)
    }

    /// The Prometheus text exposition (version 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut last = "";
        for (name, help, kind, labels, value) in &self.samples {
            let name = name.as_ref();
            if name != last {
                let kind = match kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                };
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                last = name;
            }
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
        out
    }
}

/// `(metric name, last key, value)` of every number in `v`, names joined with `_`.
pub fn summary_leaves(v: &serde_json::Value, path: &mut String, out: &mut Vec<(String, String, f64)>) {
    let serde_json::Value::Object(map) = v else { return };
    for (key, value) in map {
        let len = path.len();
        path.push('_');
        path.push_str(key);
        match value {
            serde_json::Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push((path.clone(), key.clone(), x));
                }
            }
            serde_json::Value::Object(_) => summary_leaves(value, path, out),
            _ => {}
        }
        path.truncate(len);
    }
}

pub type Shared = Arc<Mutex<Snapshot>>;

/// Resident memory of this process, from /proc/self/statm.
#[must_use]
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Serves `GET /metrics` until the runtime stops. One small request per connection; anything
/// else gets 404. Bind errors are returned so a bad address fails at start.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf));
            let Ok(Ok(n)) = read.await else {
                return;
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let response = if request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?") {
                let body = shared.lock().map(|s| s.render()).unwrap_or_default();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let mut s = Snapshot::default();
        s.counter("apisense_http_exchanges_total", "Exchanges reported.", 3);
        s.counter_with("apisense_otlp_spans_dropped_total", "Spans dropped.", "reason=\"queue_full\"", 1);
        s.counter_with("apisense_otlp_spans_dropped_total", "Spans dropped.", "reason=\"export_failed\"", 2);
        s.gauge("apisense_process_resident_memory_bytes", "RSS.", 42);
        let text = s.render();
        assert!(
            text.contains("# TYPE apisense_http_exchanges_total counter\napisense_http_exchanges_total 3\n")
        );
        assert_eq!(text.matches("# TYPE apisense_otlp_spans_dropped_total").count(), 1);
        assert!(text.contains("apisense_otlp_spans_dropped_total{reason=\"export_failed\"} 2"));
        assert!(text.contains("apisense_process_resident_memory_bytes 42"));
        assert!(resident_bytes() > 0);
    }
}
