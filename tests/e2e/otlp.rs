//! OTLP export end to end: the real agent capturing real traffic sends spans to a real OTLP
//! receiver (the official protobuf definitions, served by tonic), over gRPC and HTTP/protobuf.
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::{
            ExportLogsServiceRequest, ExportLogsServiceResponse,
            logs_service_server::{LogsService, LogsServiceServer},
        },
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    common::v1::{KeyValue, any_value::Value},
    trace::v1::{Span, span::SpanKind},
};
use prost::Message as _;
use tonic::codec::CompressionEncoding;

use crate::harness::{self, Agent, str_at};

#[derive(Clone, Default)]
struct Received {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.logs.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver on `port`, running until dropped.
pub(crate) struct Receiver {
    received: Received,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Receiver {
    pub(crate) fn start(port: u16) -> Receiver {
        Self::start_with(port, None)
    }

    /// With `tls`, the receiver serves gRPC over TLS with that certificate.
    fn start_with(port: u16, tls: Option<&harness::Cert>) -> Receiver {
        let tls = tls.map(|c| {
            let identity = tonic::transport::Identity::from_pem(
                std::fs::read(&c.cert).unwrap(),
                std::fs::read(&c.key).unwrap(),
            );
            tonic::transport::ServerTlsConfig::new().identity(identity)
        });
        let received = Received::default();
        let service = received.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let addr: SocketAddr = ([127, 0, 0, 1], port).into();
                let mut builder = tonic::transport::Server::builder();
                if let Some(tls) = tls {
                    builder = builder.tls_config(tls).unwrap();
                }
                builder
                    .add_service(
                        TraceServiceServer::new(service.clone()).accept_compressed(CompressionEncoding::Gzip),
                    )
                    .add_service(
                        LogsServiceServer::new(service.clone()).accept_compressed(CompressionEncoding::Gzip),
                    )
                    .add_service(
                        MetricsServiceServer::new(service).accept_compressed(CompressionEncoding::Gzip),
                    )
                    .serve_with_shutdown(addr, async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        harness::wait_listening(port);
        Receiver { received, stop: Some(stop), thread: Some(thread) }
    }

    fn spans(&self) -> Vec<(Vec<KeyValue>, Span)> {
        self.received
            .traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .flat_map(|rs| {
                let resource = rs.resource.clone().map(|r| r.attributes).unwrap_or_default();
                rs.scope_spans.iter().flat_map(move |ss| {
                    ss.spans.iter().map({
                        let resource = resource.clone();
                        move |s| (resource.clone(), s.clone())
                    })
                })
            })
            .collect()
    }

    pub(crate) fn wait_spans(
        &self,
        what: &str,
        done: impl Fn(&[(Vec<KeyValue>, Span)]) -> bool,
    ) -> Vec<(Vec<KeyValue>, Span)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; got {} spans", spans.len());
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a log record whose `event.name` is `name`; returns its severity text and body.
    fn wait_log(&self, name: &str) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.received.logs.lock().unwrap().iter().find_map(|r| {
                r.resource_logs
                    .iter()
                    .flat_map(|rl| rl.scope_logs.iter())
                    .flat_map(|sl| sl.log_records.iter())
                    .find(|l| attr_str(&l.attributes, "event.name") == name)
                    .map(|l| {
                        let body = match l.body.as_ref().and_then(|b| b.value.as_ref()) {
                            Some(Value::StringValue(s)) => s.clone(),
                            _ => String::new(),
                        };
                        (l.severity_text.clone(), body)
                    })
            });
            if let Some(found) = found {
                return found;
            }
            assert!(Instant::now() < deadline, "no {name} log record");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the latest data point of cumulative sum `name` reaches `at_least`.
    fn wait_metric(&self, name: &str, at_least: f64) {
        use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value as Number};
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let best = self
                .received
                .metrics
                .lock()
                .unwrap()
                .iter()
                .flat_map(|r| r.resource_metrics.iter())
                .flat_map(|rm| rm.scope_metrics.iter())
                .flat_map(|sm| sm.metrics.iter())
                .filter(|m| m.name == name)
                .filter_map(|m| match &m.data {
                    Some(Data::Sum(s)) => s.data_points.last().and_then(|p| match p.value {
                        Some(Number::AsDouble(v)) => Some(v),
                        _ => None,
                    }),
                    _ => None,
                })
                .fold(0.0_f64, f64::max);
            if best >= at_least {
                return;
            }
            assert!(Instant::now() < deadline, "no {name} >= {at_least} over OTLP metrics (best {best})");
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every byte the receiver got, re-encoded, for the raw-secret check.
    fn all_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for r in self.received.traces.lock().unwrap().iter() {
            out.extend(r.encode_to_vec());
        }
        for r in self.received.logs.lock().unwrap().iter() {
            out.extend(r.encode_to_vec());
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

pub(crate) fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> &'a str {
    match attr(attrs, key) {
        Some(Value::StringValue(s)) => s,
        _ => "",
    }
}

fn attr_int(attrs: &[KeyValue], key: &str) -> i64 {
    match attr(attrs, key) {
        Some(Value::IntValue(i)) => *i,
        _ => -1,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn kernel_spans_follow_the_http_conventions_and_join_traces() {
    if !harness::kernel_available("kernel_spans_follow_the_http_conventions_and_join_traces") {
        return;
    }
    let receiver_port = harness::free_port();
    let receiver = Receiver::start(receiver_port);
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let agent = Agent::start(&[
        "--port",
        &port.to_string(),
        "--otlp-endpoint",
        &format!("http://127.0.0.1:{receiver_port}"),
        "--otlp-compression",
        "gzip",
        "--otlp-metrics-interval",
        "1",
    ]);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    harness::curl_ok(&[
        "-H",
        &format!("traceparent: {traceparent}"),
        "-H",
        "Authorization: Bearer sup3rs3cret-token",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"cardNumber": "4111111111111111"}"#,
        &format!("http://127.0.0.1:{port}/payments/42?token=qu3ry-s3cret&x=1"),
    ]);
    let jsonl = agent.wait_for(
        "the exchange in JSONL",
        |e| str_at(e, "/request/path") == "/payments/42",
        |s| s.len() >= 2,
    );
    let spans = receiver.wait_spans("server and client spans", |s| {
        s.iter().filter(|(_, span)| attr_str(&span.attributes, "url.path") == "/payments/42").count() >= 2
    });
    let mine: Vec<&(Vec<KeyValue>, Span)> =
        spans.iter().filter(|(_, s)| attr_str(&s.attributes, "url.path") == "/payments/42").collect();
    let (server_resource, server) =
        mine.iter().find(|(_, s)| s.kind == SpanKind::Server as i32).map(|x| (&x.0, &x.1)).unwrap();
    let (client_resource, client) =
        mine.iter().find(|(_, s)| s.kind == SpanKind::Client as i32).map(|x| (&x.0, &x.1)).unwrap();

    // Parent from traceparent: both spans join the caller's trace.
    for span in [server, client] {
        assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(span.span_id.len(), 8);
        let a = &span.attributes;
        assert_eq!(attr_str(a, "http.request.method"), "POST");
        assert_eq!(attr_int(a, "http.response.status_code"), 200);
        assert_eq!(attr_str(a, "url.scheme"), "http");
        assert_eq!(attr_str(a, "url.query"), "token=[REDACTED]&x=1");
        assert_eq!(attr_str(a, "network.protocol.version"), "1.1");
        assert_eq!(attr_str(a, "server.address"), "127.0.0.1");
        assert_eq!(attr_int(a, "server.port"), i64::from(port));
        assert!(attr_str(a, "user_agent.original").starts_with("curl/"));
        assert_eq!(attr_int(a, "http.request.body.size"), 34);
        assert!(attr_int(a, "http.response.body.size") > 0);
        if span.kind == SpanKind::Server as i32 {
            // From the server's socket. (A client's own address can be unknown when the client
            // exits before the agent reads /proc: see the README.)
            assert_eq!(attr_str(a, "client.address"), "127.0.0.1");
        }
        assert!(!attr_str(a, "http.route").is_empty());
        assert!(!attr_str(a, "apisense.endpoint.status").is_empty());
        // Times come from the capture, not the export: they bracket the JSONL timestamps.
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        assert!(span.start_time_unix_nano > 1_700_000_000_000_000_000);
        // The card number in the body is a masked span event.
        let event = span
            .events
            .iter()
            .find(|e| {
                e.name == "apisense.sensitive_data"
                    && attr_str(&e.attributes, "apisense.sensitive.detector") == "payment_card"
            })
            .expect("a payment_card finding event");
        assert!(attr_str(&event.attributes, "apisense.sensitive.sample").starts_with("411111"));
    }
    assert_eq!(attr_str(server_resource, "service.name"), "python3", "derived from the echo server");
    assert_eq!(attr_str(client_resource, "service.name"), "curl");
    assert!(attr_int(server_resource, "process.pid") > 0);
    assert!(!attr_str(server_resource, "host.name").is_empty());
    assert_eq!(jsonl.len(), 2);

    // The agent's own metrics arrive too, as cumulative sums.
    receiver.wait_metric("apisense_http_exchanges_total", 2.0);
    // Security findings are log records: bearer credentials over loopback plaintext.
    let (severity, body) = receiver.wait_log("apisense.security.credentials_over_plaintext");
    assert_eq!(
        (severity.as_str(), body.as_str()),
        ("INFO2", "bearer credentials sent over plaintext HTTP, not TLS (loopback only)")
    );

    let all = receiver.all_bytes();
    for raw in ["sup3rs3cret-token", "qu3ry-s3cret", "4111111111111111"] {
        assert!(!contains(&all, raw.as_bytes()), "raw secret {raw} reached the collector");
    }
}

#[test]
fn kernel_spans_reach_a_collector_that_comes_back() {
    if !harness::kernel_available("kernel_spans_reach_a_collector_that_comes_back") {
        return;
    }
    let receiver_port = harness::free_port();
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let mut agent = Agent::start(&[
        "--port",
        &port.to_string(),
        "--otlp-endpoint",
        &format!("http://127.0.0.1:{receiver_port}"),
    ]);
    // Collector down: capture goes on, exports fail and are retried.
    for i in 0..20 {
        harness::curl_ok(&[&format!("http://127.0.0.1:{port}/down/{i}")]);
    }
    agent.wait_for(
        "exchanges while the collector is down",
        |e| str_at(e, "/request/path").starts_with("/down/"),
        |s| s.len() >= 40,
    );
    // Nothing piles up while the collector is away: the queue is bounded and batches give up.
    let rss = agent.resident_bytes();
    assert!(rss > 0 && rss < 256 << 20, "agent RSS {rss} bytes while the collector is down");
    thread::sleep(Duration::from_secs(1));
    let receiver = Receiver::start(receiver_port);
    for i in 0..5 {
        harness::curl_ok(&[&format!("http://127.0.0.1:{port}/up/{i}")]);
    }
    receiver.wait_spans("spans after the collector came back", |s| {
        s.iter().filter(|(_, span)| attr_str(&span.attributes, "url.path").starts_with("/up/")).count() >= 10
    });
    assert!(agent.is_running());
    let log = agent.stop();
    assert!(log.contains("OTLP export failed"), "failures are logged: {log}");
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A minimal OTLP/HTTP receiver: POST /v1/traces with a protobuf body (gzip or not).
fn http_receiver(port: u16) -> Arc<Mutex<Vec<(String, ExportTraceServiceRequest)>>> {
    use std::io::{BufRead, BufReader, Read, Write};
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let sink = Arc::clone(&sink);
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let (mut length, mut gzip, mut content_type) = (0usize, false, String::new());
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        gzip |= h == "content-encoding: gzip";
                        if let Some(v) = h.strip_prefix("content-type:") {
                            v.trim().clone_into(&mut content_type);
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    assert!(!gzip, "not asked for");
                    assert_eq!(content_type, "application/x-protobuf");
                    if path == "/v1/traces" {
                        sink.lock()
                            .unwrap()
                            .push((path, ExportTraceServiceRequest::decode(&body[..]).unwrap()));
                    }
                    writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
                }
            });
        }
    });
    got
}

#[test]
fn kernel_spans_over_http_protobuf() {
    if !harness::kernel_available("kernel_spans_over_http_protobuf") {
        return;
    }
    let receiver_port = harness::free_port();
    let got = http_receiver(receiver_port);
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    // Configured through the standard environment variables this time.
    let endpoint = format!("http://127.0.0.1:{receiver_port}");
    let agent = Agent::start_env(
        &["--port", &port.to_string(), "--service-name", "payments-edge"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
    );
    harness::curl_ok(&[&format!("http://127.0.0.1:{port}/over/http")]);
    agent.wait_for("the exchange", |e| str_at(e, "/request/path") == "/over/http", |s| s.len() >= 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let requests = got.lock().unwrap().clone();
        let spans: Vec<(String, Span)> = requests
            .iter()
            .flat_map(|(_, r)| r.resource_spans.iter())
            .flat_map(|rs| {
                let service = rs
                    .resource
                    .as_ref()
                    .map(|r| attr_str(&r.attributes, "service.name").to_owned())
                    .unwrap_or_default();
                rs.scope_spans.iter().flat_map(move |ss| {
                    ss.spans.iter().map({
                        let service = service.clone();
                        move |s| (service.clone(), s.clone())
                    })
                })
            })
            .filter(|(_, s)| attr_str(&s.attributes, "url.path") == "/over/http")
            .collect();
        if spans.len() >= 2 {
            assert!(spans.iter().all(|(service, _)| service == "payments-edge"), "--service-name overrides");
            break;
        }
        assert!(Instant::now() < deadline, "no spans over HTTP/protobuf");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kernel_self_metrics_in_prometheus_format() {
    if !harness::kernel_available("kernel_self_metrics_in_prometheus_format") {
        return;
    }
    let (port, metrics_port, dead_collector) =
        (harness::free_port(), harness::free_port(), harness::free_port());
    let _server = harness::echo_server(port);
    let agent = Agent::start(&[
        "--port",
        &port.to_string(),
        "--metrics-addr",
        &format!("127.0.0.1:{metrics_port}"),
        "--otlp-endpoint",
        &format!("http://127.0.0.1:{dead_collector}"),
    ]);
    harness::curl_ok(&[&format!("http://127.0.0.1:{port}/metered")]);
    agent.wait_for("the exchange", |e| str_at(e, "/request/path") == "/metered", |s| s.len() >= 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::process::Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{metrics_port}/metrics")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let value = |name: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1.0)
        };
        if value("apisense_http_exchanges_total") >= 2.0 && value("apisense_otlp_export_errors_total") >= 1.0
        {
            assert!(text.contains("# TYPE apisense_capture_records_total counter"));
            assert!(value("apisense_capture_payload_bytes_total") > 0.0);
            assert!(value("apisense_kernel_ringbuf_dropped_total") >= 0.0);
            assert!(value("apisense_process_resident_memory_bytes") > 1_000_000.0);
            assert!(text.contains("apisense_otlp_spans_dropped_total{reason=\"export_failed\"}"));
            break;
        }
        assert!(Instant::now() < deadline, "metrics never showed the exchange:\n{text}");
        thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn kernel_spans_over_grpc_with_tls() {
    if !harness::kernel_available("kernel_spans_over_grpc_with_tls") {
        return;
    }
    let cert = harness::self_signed_cert();
    let receiver_port = harness::free_port();
    let receiver = Receiver::start_with(receiver_port, Some(&cert));
    let port = harness::free_port();
    let _server = harness::echo_server(port);
    let endpoint = format!("https://127.0.0.1:{receiver_port}");
    let ca = cert.cert.display().to_string();
    let agent = Agent::start_env(
        &["--port", &port.to_string(), "--otlp-endpoint", &endpoint],
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca)],
    );
    harness::curl_ok(&[&format!("http://127.0.0.1:{port}/over/tls")]);
    agent.wait_for("the exchange", |e| str_at(e, "/request/path") == "/over/tls", |s| s.len() >= 2);
    receiver.wait_spans("spans over TLS", |s| {
        s.iter().filter(|(_, span)| attr_str(&span.attributes, "url.path") == "/over/tls").count() >= 2
    });
}
