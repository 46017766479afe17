//! Self-metrics in the Prometheus text format on `--metrics-addr` (GET /metrics). The pipeline
//! publishes a snapshot at each tick; the endpoint only reads it, so scraping never touches
//! capture.
use std::{
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
    /// `(name, help, kind, labels, value)`.
    pub samples: Vec<(&'static str, &'static str, Kind, String, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Snapshot {
    pub fn counter(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.samples.push((name, help, Kind::Counter, String::new(), value as f64));
    }

    pub fn counter_with(&mut self, name: &'static str, help: &'static str, labels: &str, value: u64) {
        self.samples.push((name, help, Kind::Counter, labels.to_owned(), value as f64));
    }

    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.samples.push((name, help, Kind::Gauge, String::new(), value as f64));
    }

    /// The Prometheus text exposition (version 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut last = "";
        for (name, help, kind, labels, value) in &self.samples {
            if *name != last {
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
