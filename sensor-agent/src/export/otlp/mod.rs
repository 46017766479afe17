//! OTLP export: one span per exchange (HTTP semantic conventions, see `semconv`), findings as
//! span events, newly discovered undocumented endpoints and security findings/events as log
//! records; over gRPC or
//! HTTP/protobuf, batched per process (resource), behind a bounded queue.
//!
//! Never hurts capture: the pipeline only `try_send`s (a full queue is a counted drop), sending
//! and retrying (exponential backoff while the collector is down) happen on the exporter task,
//! and nothing grows while the collector is away: the queue is the only buffer, plus one batch.
//! The agent's own connections to the collector are never captured (the kernel programs skip
//! the agent's process).
pub mod config;
pub mod semconv;
mod transport;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::{AnyValue, InstrumentationScope, any_value::Value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use tokio::sync::mpsc;

pub use self::config::{OtlpConfig, OtlpConfigError, OtlpFlags};
use self::{semconv::IdSource, transport::Transport};
use super::record::ExchangeRecord;

const QUEUE: usize = 8192;
const BATCH_SPANS: usize = 512;
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// A batch is retried (with backoff) for at most this long, then dropped and counted.
const RETRY_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct OtlpStats {
    pub spans_exported: AtomicU64,
    pub spans_dropped_queue_full: AtomicU64,
    pub spans_dropped_export_failed: AtomicU64,
    pub logs_exported: AtomicU64,
    pub logs_dropped_queue_full: AtomicU64,
    pub logs_dropped_export_failed: AtomicU64,
    pub metrics_dropped_queue_full: AtomicU64,
    pub metrics_dropped_export_failed: AtomicU64,
    pub export_errors: AtomicU64,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct OtlpStatsSnapshot {
    pub spans_exported: u64,
    pub spans_dropped_queue_full: u64,
    pub spans_dropped_export_failed: u64,
    pub logs_exported: u64,
    pub logs_dropped_queue_full: u64,
    pub logs_dropped_export_failed: u64,
    pub metrics_dropped_queue_full: u64,
    pub metrics_dropped_export_failed: u64,
    pub export_errors: u64,
    pub queue_depth: u64,
}

enum Item {
    Span { key: u32, resource: Box<Resource>, span: Box<Span> },
    Log { resource: Box<Resource>, record: Box<LogRecord> },
    Metrics(Box<ExportMetricsServiceRequest>),
}

/// The pipeline's handle: turns records into spans and queues them without ever waiting.
pub struct OtlpSender {
    tx: mpsc::Sender<Item>,
    stats: Arc<OtlpStats>,
    ids: IdSource,
    service_name: Option<String>,
    host_name: String,
}

impl OtlpSender {
    pub fn send(&mut self, record: &ExchangeRecord) {
        let resource = semconv::resource(record, self.service_name.as_deref(), &self.host_name);
        let span = semconv::span(record, &mut self.ids);
        let item = Item::Span {
            key: semconv::resource_key(record),
            resource: Box::new(resource.clone()),
            span: Box::new(span),
        };
        if self.tx.try_send(item).is_err() {
            self.stats.spans_dropped_queue_full.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(endpoint) = record.endpoint.as_ref().filter(|e| e.new && e.status != "documented") {
            let request = record.request.as_ref();
            let body = format!(
                "new {} endpoint: {} {}{}",
                endpoint.status,
                request.map_or("", |r| r.method.as_str()),
                request.and_then(|r| r.headers.get("host")).map_or("", String::as_str),
                endpoint.route
            );
            let log = LogRecord {
                time_unix_nano: record.start_unix_ns,
                observed_time_unix_nano: record.end_unix_ns,
                severity_number: SeverityNumber::Warn as i32,
                severity_text: "WARN".to_owned(),
                body: Some(AnyValue { value: Some(Value::StringValue(body)) }),
                attributes: vec![
                    semconv::kv_str("event.name", "apisense.endpoint.discovered"),
                    semconv::kv_str("apisense.endpoint.status", endpoint.status),
                    semconv::kv_str("http.route", &endpoint.route),
                    semconv::kv_str("http.request.method", request.map_or("", |r| r.method.as_str())),
                ],
                ..LogRecord::default()
            };
            self.send_log(&resource, log);
        }
        for event in &record.events {
            let log = semconv::security_log(event, record.start_unix_ns, record.end_unix_ns);
            self.send_log(&resource, log);
        }
    }

    /// Queues the agent's own metrics (cumulative sums and gauges), resource `service.name` =
    /// `apisense`.
    pub fn send_metrics(&mut self, snapshot: &crate::export::metrics::Snapshot, started_unix_ns: u64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let request = metrics_request(snapshot, &self.host_name, started_unix_ns, now);
        if self.tx.try_send(Item::Metrics(Box::new(request))).is_err() {
            self.stats.metrics_dropped_queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues one log record; a full queue is a counted drop.
    fn send_log(&self, resource: &Resource, record: LogRecord) {
        let item = Item::Log { resource: Box::new(resource.clone()), record: Box::new(record) };
        if self.tx.try_send(item).is_err() {
            self.stats.logs_dropped_queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[must_use]
    pub fn snapshot(&self) -> OtlpStatsSnapshot {
        snapshot(&self.stats, (QUEUE - self.tx.capacity()) as u64)
    }
}

fn snapshot(stats: &OtlpStats, queue_depth: u64) -> OtlpStatsSnapshot {
    OtlpStatsSnapshot {
        spans_exported: stats.spans_exported.load(Ordering::Relaxed),
        spans_dropped_queue_full: stats.spans_dropped_queue_full.load(Ordering::Relaxed),
        spans_dropped_export_failed: stats.spans_dropped_export_failed.load(Ordering::Relaxed),
        logs_exported: stats.logs_exported.load(Ordering::Relaxed),
        logs_dropped_queue_full: stats.logs_dropped_queue_full.load(Ordering::Relaxed),
        logs_dropped_export_failed: stats.logs_dropped_export_failed.load(Ordering::Relaxed),
        metrics_dropped_queue_full: stats.metrics_dropped_queue_full.load(Ordering::Relaxed),
        metrics_dropped_export_failed: stats.metrics_dropped_export_failed.load(Ordering::Relaxed),
        export_errors: stats.export_errors.load(Ordering::Relaxed),
        queue_depth,
    }
}

/// Starts the exporter task (inside a tokio runtime).
pub fn spawn(
    config: OtlpConfig,
) -> Result<(OtlpSender, tokio::task::JoinHandle<OtlpStatsSnapshot>), transport::TransportError> {
    let transport = Transport::new(&config)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let stats = Arc::new(OtlpStats::default());
    let host_name =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
    log::info!("OTLP: exporting spans to {} ({:?})", config.endpoint, config.protocol);
    let task = tokio::spawn(run(rx, transport, Arc::clone(&stats)));
    Ok((OtlpSender { tx, stats, ids: IdSource::new(), service_name: config.service_name, host_name }, task))
}

#[derive(Default)]
struct Batch {
    spans: HashMap<u32, (Resource, Vec<Span>)>,
    logs: Vec<(Resource, LogRecord)>,
    count: usize,
}

async fn run(mut rx: mpsc::Receiver<Item>, transport: Transport, stats: Arc<OtlpStats>) -> OtlpStatsSnapshot {
    let mut batch = Batch::default();
    let mut deadline = tokio::time::Instant::now() + BATCH_DELAY;
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(item) => {
                    handle(&mut batch, item, &transport, &stats).await;
                    if batch.count >= BATCH_SPANS {
                        flush(&mut batch, &transport, &stats).await;
                        deadline = tokio::time::Instant::now() + BATCH_DELAY;
                    }
                }
                None => break,
            },
            () = tokio::time::sleep_until(deadline) => {
                flush(&mut batch, &transport, &stats).await;
                deadline = tokio::time::Instant::now() + BATCH_DELAY;
            }
        }
    }
    flush(&mut batch, &transport, &stats).await;
    snapshot(&stats, 0)
}

/// Sends what cannot wait for a batch (metrics), or adds to the batch.
async fn handle(batch: &mut Batch, item: Item, transport: &Transport, stats: &OtlpStats) {
    if let Item::Metrics(request) = item {
        if !with_retry(|| transport.metrics((*request).clone()), stats).await {
            stats.metrics_dropped_export_failed.fetch_add(1, Ordering::Relaxed);
            log::debug!("self-metrics not exported");
        }
        return;
    }
    add(batch, item);
}

fn metrics_request(
    snapshot: &crate::export::metrics::Snapshot,
    host_name: &str,
    start: u64,
    now: u64,
) -> ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::metrics::v1::{
        AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
        number_data_point,
    };

    use crate::export::metrics::Kind;
    let mut metrics: Vec<Metric> = Vec::new();
    for (name, help, kind, labels, value) in &snapshot.samples {
        let attributes = labels
            .split(',')
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| semconv::kv_str(k.trim(), v.trim().trim_matches('"')))
            .collect();
        let point = NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsDouble(*value)),
            ..NumberDataPoint::default()
        };
        if let Some(existing) = metrics.iter_mut().find(|m| m.name == name.as_ref()) {
            match &mut existing.data {
                Some(metric::Data::Sum(s)) => s.data_points.push(point),
                Some(metric::Data::Gauge(g)) => g.data_points.push(point),
                _ => {}
            }
            continue;
        }
        let data = match kind {
            Kind::Counter => metric::Data::Sum(Sum {
                data_points: vec![point],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            Kind::Gauge => metric::Data::Gauge(Gauge { data_points: vec![point] }),
        };
        metrics.push(Metric {
            name: name.to_string(),
            description: help.to_string(),
            data: Some(data),
            ..Metric::default()
        });
    }
    let resource = Resource {
        attributes: vec![
            semconv::kv_str("service.name", "apisense"),
            semconv::kv_str("host.name", host_name),
        ],
        ..Resource::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics { scope: Some(scope()), metrics, ..ScopeMetrics::default() }],
            ..ResourceMetrics::default()
        }],
    }
}

fn add(batch: &mut Batch, item: Item) {
    match item {
        Item::Span { key, resource, span } => {
            batch.spans.entry(key).or_insert_with(|| (*resource, Vec::new())).1.push(*span);
            batch.count += 1;
        }
        Item::Log { resource, record } => batch.logs.push((*resource, *record)),
        Item::Metrics(_) => {}
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "apisense".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    }
}

async fn flush(batch: &mut Batch, transport: &Transport, stats: &OtlpStats) {
    let taken = std::mem::take(batch);
    if taken.count > 0 {
        let request = ExportTraceServiceRequest {
            resource_spans: taken
                .spans
                .into_values()
                .map(|(resource, spans)| ResourceSpans {
                    resource: Some(resource),
                    scope_spans: vec![ScopeSpans { scope: Some(scope()), spans, ..ScopeSpans::default() }],
                    ..ResourceSpans::default()
                })
                .collect(),
        };
        let n = taken.count as u64;
        if with_retry(|| transport.traces(request.clone()), stats).await {
            stats.spans_exported.fetch_add(n, Ordering::Relaxed);
        } else {
            stats.spans_dropped_export_failed.fetch_add(n, Ordering::Relaxed);
        }
    }
    if !taken.logs.is_empty() {
        let n = taken.logs.len() as u64;
        let request = ExportLogsServiceRequest {
            resource_logs: taken
                .logs
                .into_iter()
                .map(|(resource, record)| ResourceLogs {
                    resource: Some(resource),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(scope()),
                        log_records: vec![record],
                        ..ScopeLogs::default()
                    }],
                    ..ResourceLogs::default()
                })
                .collect(),
        };
        if with_retry(|| transport.logs(request.clone()), stats).await {
            stats.logs_exported.fetch_add(n, Ordering::Relaxed);
        } else {
            stats.logs_dropped_export_failed.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Sends until success, a permanent error, or `RETRY_FOR` elapsed; backs off 0.25 s .. 8 s.
async fn with_retry<F, Fut>(mut send: F, stats: &OtlpStats) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), transport::SendError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match send().await {
            Ok(()) => return true,
            Err(e) => {
                let errors = stats.export_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if errors.is_power_of_two() {
                    log::warn!("OTLP export failed ({errors} failures so far): {e}");
                }
                if !e.retryable() || started.elapsed() + delay > RETRY_FOR {
                    return false;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
        }
    }
}
