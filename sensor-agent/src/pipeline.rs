//! The only wiring file: builds every stage, then runs them.
//!
//! live:   ring buffer -> decode -> enrich -> [recording] -> analysis -> (`capture_to_export`) -> JSONL
//! replay: recording -> analysis -> JSONL
//!
//! analysis = reassembly -> http -> exchange records. The synchronous stages run on the
//! ring-reader task, one record at a time; the exporter runs on its own thread behind a bounded
//! channel whose overflow is counted, never waited on, so a slow output can never stall the
//! reading of the kernel's ring buffer.
use std::{
    fs::{File, OpenOptions},
    io::{BufReader, BufWriter},
    os::unix::fs::OpenOptionsExt,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{HashMap, MapData};
use sensor_common::{ConnState, conn_key};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};

use crate::{
    capture::{
        Event, decode,
        enrich::{EnrichStats, Enricher},
        loader::{self, LoadOptions},
        losses::{self, KernelCounters},
        pods::{self, PodDirectory},
        recording,
        tls_libs::{TlsAttacher, TlsStats},
    },
    config::{AnalysisConfig, Output, ReplayConfig, RunConfig},
    detect::Detect,
    export::{
        batch,
        clock::{Clock, monotonic_ns},
        jsonl::{self, JsonlWriter},
        metrics,
        otlp::{self, OtlpStatsSnapshot},
        record::ExchangeRecord,
    },
    http::{
        Limits,
        stage::{HttpStage, HttpStageStats, Observed},
    },
    reassembly::{Reassembler, ReassemblyLimits, ReassemblyStats, StreamEvent},
};

/// How often the inventory is written to the state directory.
const INVENTORY_FLUSH: Duration = Duration::from_secs(10);

/// Records handled per wake-up before the loop looks at its timers and signals again.
const BATCH: usize = 4096;
const CAPTURE_TO_EXPORT: usize = 8192;

pub fn run(config: RunConfig) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_live(config))
}

/// Runs the analysis stages over a recording, as fast as it reads.
pub fn replay(config: &ReplayConfig) -> anyhow::Result<()> {
    let input = File::open(&config.input).with_context(|| format!("opening {}", config.input.display()))?;
    let mut reader = recording::Reader::new(BufReader::with_capacity(1 << 20, input))
        .with_context(|| format!("reading {}", config.input.display()))?;
    let mut out =
        JsonlWriter::open(&config.output).with_context(|| format!("opening output {:?}", config.output))?;
    let mut analysis = Analysis::new(&config.analysis, Clock::from_boot_wall_ns(reader.boot_wall_ns))?;
    let mut events = 0u64;
    let mut write_error = None;
    let mut sink = |record: ExchangeRecord| {
        if write_error.is_none()
            && let Err(e) = out.write(&record)
        {
            write_error = Some(e);
        }
    };
    let ended = loop {
        match reader.next_event() {
            Ok(Some(event)) => {
                events += 1;
                analysis.push(event);
                analysis.drain(None, &mut sink);
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    analysis.shutdown();
    analysis.drain(None, &mut sink);
    analysis.persist();
    if let Some(e) = write_error {
        return Err(e).context("writing exchanges");
    }
    out.flush().context("writing exchanges")?;
    if let Some(e) = ended {
        log::warn!("{}: {e}", config.input.display());
    }
    let summary = serde_json::json!({
        "events": events,
        "exchanges_written": out.written,
        "reassembly": analysis.reassembly.stats,
        "http": analysis.http.stats(),
    });
    log::info!("replayed: {summary}");
    Ok(())
}

#[expect(
    clippy::too_many_lines,
    reason = "the live loop is where every stage meets; split, the wiring would scatter"
)]
async fn run_live(config: RunConfig) -> anyhow::Result<()> {
    let output = match &config.output {
        Some(o) => Some(JsonlWriter::open(o).with_context(|| format!("opening output {o:?}"))?),
        None => None,
    };
    let clock = Clock::now();
    let recorder = match &config.record {
        Some(path) => Some(
            open_recording(path, &clock).with_context(|| format!("creating recording {}", path.display()))?,
        ),
        None => None,
    };
    let mut capture = Capture {
        enrich: Enricher::new(config.capture.filter.clone(), config.capture.max_connections as usize),
        events: Vec::new(),
        records: 0,
        payload_bytes: 0,
        decode_errors: 0,
        recorder,
    };
    let mut analysis = match output {
        Some(_) => Some(Analysis::new(&config.analysis, clock)?),
        None => None,
    };
    let pods = pods::start(&config.kubernetes).await.context("pod identity")?;
    let probes = loader::load(&LoadOptions {
        ring_buffer_bytes: config.capture.ring_buffer_bytes,
        max_connections: config.capture.max_connections,
    })?;
    let attached = probes.attached;
    let syscall_hooks = probes.syscall_hooks.describe();
    let counters = probes.counters;
    let mut conns = probes.conns;
    let mut ebpf = probes.ebpf; // attached until the end of this function
    let mut tls = TlsAttacher::new();
    tls.scan_host(&mut ebpf);
    let libraries = tls.describe();
    log::info!(
        "TLS libraries probed ({}): {}",
        libraries.len(),
        if libraries.is_empty() { "none yet".to_owned() } else { libraries.join("; ") }
    );
    // SAFETY: the ring buffer owns its map fd and keeps it open for as long as the AsyncFd lives.
    let mut ring = unsafe { AsyncFd::register_with_interest(probes.ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("polling the ring buffer: {e}"))?;
    let (capture_to_export, export_rx) = batch::queue(CAPTURE_TO_EXPORT);
    let exporter = output.map(|out| tokio::task::spawn_blocking(move || jsonl::run(export_rx, out)));
    let (mut otlp, otlp_task) = match &config.otlp {
        Some(c) => {
            let (sender, task) = otlp::spawn(c.clone()).context("starting the OTLP exporter")?;
            (Some(sender), Some(task))
        }
        None => (None, None),
    };
    let published: metrics::Shared = Arc::default();
    let started_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last_otlp_metrics = Instant::now();
    if let Some(addr) = config.metrics_addr {
        let listener = metrics::bind(addr).await.with_context(|| format!("--metrics-addr {addr}"))?;
        log::info!("metrics at http://{addr}/metrics");
        tokio::spawn(metrics::serve(listener, Arc::clone(&published)));
    }
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut losses = LossReporter::default();
    log::info!(
        "capturing: {attached} tracepoints attached (syscalls: {syscall_hooks}), {}",
        describe(&config)
    );
    let mut export_dropped = 0u64;
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting on the ring buffer")?;
                let rb = guard.get_inner_mut();
                let mut handled = 0;
                while handled < BATCH {
                    let Some(item) = rb.next() else { break };
                    capture.ingest(&item);
                    handled += 1;
                }
                if handled < BATCH {
                    guard.clear_ready();
                }
                for event in capture.take_events() {
                    match event {
                        Event::Exec { tgid } => tls.on_exec(&mut ebpf, tgid),
                        Event::Exit { tgid } => tls.on_exit(&mut ebpf, tgid),
                        _ => {}
                    }
                    if let Some(analysis) = analysis.as_mut() {
                        analysis.push(event);
                    }
                }
                if let Some(analysis) = analysis.as_mut() {
                    forget_closed(&mut capture, analysis);
                    deliver(analysis, otlp.as_mut(), pods.as_ref(), &capture_to_export, &mut export_dropped);
                }
                mute(&mut conns, capture.enrich.take_mutes());
            }
            _ = tick.tick() => {
                if let Some(analysis) = analysis.as_mut() {
                    analysis.tick(monotonic_ns());
                    forget_closed(&mut capture, analysis);
                    deliver(analysis, otlp.as_mut(), pods.as_ref(), &capture_to_export, &mut export_dropped);
                }
                capture.flush_recording();
                let kernel = losses::read(&counters);
                losses.check(kernel);
                tls.tick(&mut ebpf);
                let otlp_due = config.otlp.as_ref().is_some_and(|c| last_otlp_metrics.elapsed() >= c.metrics_interval);
                if config.metrics_addr.is_some() || otlp_due {
                    let written = Some(capture_to_export.taken());
                    let snapshot = metrics_snapshot(&capture, analysis.as_ref(), &kernel, &tls.stats, otlp.as_ref(), export_dropped, written);
                    if let (true, Some(sender)) = (otlp_due, otlp.as_mut()) {
                        sender.send_metrics(&snapshot, started_unix_ns);
                        last_otlp_metrics = Instant::now();
                    }
                    if let Ok(mut shared) = published.lock() {
                        *shared = snapshot;
                    }
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    if let Some(analysis) = analysis.as_mut() {
        analysis.shutdown();
        deliver(analysis, otlp.as_mut(), pods.as_ref(), &capture_to_export, &mut export_dropped);
        analysis.persist();
    }
    capture.flush_recording();
    drop(capture_to_export);
    let written = match exporter {
        Some(handle) => handle.await.context("exporter thread")?.context("writing exchanges")?,
        None => 0,
    };
    drop(otlp);
    let otlp = match otlp_task {
        // Bounded: a collector that is down does not hold the agent's exit for long.
        Some(task) => tokio::time::timeout(Duration::from_secs(5), task).await.ok().and_then(Result::ok),
        None => None,
    };
    let summary =
        Summary::of(&capture, analysis.as_ref(), losses::read(&counters), tls.stats, otlp, export_dropped);
    match serde_json::to_string(&Summary { exchanges_written: Some(written), ..summary }) {
        Ok(line) => log::info!("stopped: {line}"),
        Err(e) => log::error!("stopped: the summary could not be serialised: {e}"),
    }
    Ok(())
}

fn describe(config: &RunConfig) -> String {
    let output = match &config.output {
        Some(Output::Stdout) => Some("writing exchanges to stdout".to_owned()),
        Some(Output::File(p)) => Some(format!("writing exchanges to {}", p.display())),
        None => None,
    };
    let record = config.record.as_ref().map(|p| format!("recording to {}", p.display()));
    [output, record].into_iter().flatten().collect::<Vec<_>>().join(", ")
}

fn open_recording(
    path: &std::path::Path,
    clock: &Clock,
) -> std::io::Result<recording::Writer<BufWriter<File>>> {
    let file = OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)?;
    recording::Writer::new(BufWriter::with_capacity(1 << 20, file), clock.boot_wall_ns())
}

/// Connections the analysis closed on its own (idle, table full) must be resolved afresh if
/// they speak again, rather than dropped as belonging to nothing.
fn forget_closed(capture: &mut Capture, analysis: &mut Analysis) {
    for conn_id in analysis.closed.drain(..) {
        capture.enrich.forget(conn_id);
    }
}

/// Every counter of the agent, as the `stopped:` line shows it; the metrics export each too
/// ([`metrics::Snapshot::summary_counters`]).
#[derive(serde::Serialize)]
struct Summary {
    /// Lines the JSONL writer wrote (in the metrics: exchanges handed to it); absent without
    /// JSONL output.
    #[serde(skip_serializing_if = "Option::is_none")]
    exchanges_written: Option<u64>,
    export_dropped: u64,
    decode_errors: u64,
    capture: EnrichStats,
    reassembly: Option<ReassemblyStats>,
    http: Option<HttpStageStats>,
    kernel: KernelCounters,
    tls: TlsStats,
    otlp: Option<OtlpStatsSnapshot>,
}

impl Summary {
    fn of(
        capture: &Capture,
        analysis: Option<&Analysis>,
        kernel: KernelCounters,
        tls: TlsStats,
        otlp: Option<OtlpStatsSnapshot>,
        export_dropped: u64,
    ) -> Summary {
        Summary {
            exchanges_written: None,
            export_dropped,
            decode_errors: capture.decode_errors,
            capture: capture.enrich.stats,
            reassembly: analysis.map(|a| a.reassembly.stats),
            http: analysis.map(|a| a.http.stats()),
            kernel,
            tls,
            otlp,
        }
    }
}

/// HTTP/2 counters (`apisense_http2_*`), beside the HTTP/1 ones.
fn http2_metrics(s: &mut metrics::Snapshot, h2: &crate::http::h2::H2Stats) {
    s.counter("apisense_http2_connections_total", "Connections parsed as HTTP/2.", h2.connections);
    s.counter("apisense_http2_streams_total", "HTTP/2 streams seen.", h2.streams);
    s.counter("apisense_http2_resyncs_total", "Times HTTP/2 framing was lost and found again.", h2.resyncs);
    s.counter(
        "apisense_http2_hpack_undecodable_fields_total",
        "Header fields referencing HPACK entries never seen (left out).",
        h2.hpack_undecodable_fields,
    );
    let limits = "HTTP/2 limits reached.";
    s.counter_with("apisense_http2_limit_total", limits, "limit=\"streams\"", h2.stream_cap_evictions);
    s.counter_with("apisense_http2_limit_total", limits, "limit=\"held_bytes\"", h2.held_evictions);
    s.counter_with("apisense_http2_limit_total", limits, "limit=\"header_list\"", h2.header_lists_too_large);
    s.counter_with("apisense_http2_limit_total", limits, "limit=\"hpack_table\"", h2.hpack_table_capped);
}

/// Hands the exchanges the analysis finished to the exporters, never waiting on them.
fn deliver(
    analysis: &mut Analysis,
    mut otlp: Option<&mut otlp::OtlpSender>,
    pods: Option<&PodDirectory>,
    jsonl: &batch::BatchQueue<ExchangeRecord>,
    dropped: &mut u64,
) {
    let mut pending = Vec::new();
    let send = |records: Vec<ExchangeRecord>, dropped: &mut u64| {
        if let Err(n) = jsonl.send(records) {
            let before = *dropped;
            *dropped += n as u64;
            // Logged each time the total crosses a power of two: a few lines, however long.
            if before.checked_ilog2() != dropped.checked_ilog2() {
                log::warn!("exporter behind: {dropped} exchanges dropped so far");
            }
        }
    };
    analysis.drain(pods, &mut |record| {
        if let Some(otlp) = otlp.as_mut() {
            otlp.send(&record);
        }
        pending.push(record);
        if pending.len() == batch::BATCH {
            send(std::mem::replace(&mut pending, Vec::with_capacity(batch::BATCH)), dropped);
        }
    });
    send(pending, dropped);
}

/// The agent's counters as Prometheus samples (`apisense_<stage>_<thing>`).
#[expect(clippy::too_many_lines, reason = "one flat list of metrics reads better than several halves")]
fn metrics_snapshot(
    capture: &Capture,
    analysis: Option<&Analysis>,
    kernel: &KernelCounters,
    tls: &TlsStats,
    otlp: Option<&otlp::OtlpSender>,
    export_dropped: u64,
    written: Option<u64>,
) -> metrics::Snapshot {
    let mut s = metrics::Snapshot::default();
    s.counter("apisense_capture_records_total", "Ring-buffer records read.", capture.records);
    s.counter("apisense_capture_payload_bytes_total", "Payload bytes captured.", capture.payload_bytes);
    s.counter(
        "apisense_capture_decode_errors_total",
        "Ring-buffer records that did not decode.",
        capture.decode_errors,
    );
    s.counter(
        "apisense_capture_orphan_chunks_total",
        "Data for connections never seen open.",
        capture.enrich.stats.orphan_chunks,
    );
    s.counter(
        "apisense_capture_filtered_connections_total",
        "Connections left out by --port/--pid.",
        capture.enrich.stats.filtered_connections,
    );
    s.counter(
        "apisense_kernel_ringbuf_dropped_total",
        "Records the kernel could not put in the full ring buffer.",
        kernel.ringbuf_dropped,
    );
    s.counter(
        "apisense_kernel_ringbuf_dropped_bytes_total",
        "Payload bytes in those records.",
        kernel.ringbuf_dropped_bytes,
    );
    s.counter(
        "apisense_kernel_map_full_total",
        "Connections or syscalls not followed: a kernel map was full.",
        kernel.conn_map_full + kernel.pending_map_full,
    );
    s.counter(
        "apisense_kernel_truncated_bytes_total",
        "Bytes beyond the per-syscall copy bound (reported as gaps).",
        kernel.truncated_bytes,
    );
    s.counter(
        "apisense_kernel_read_failed_bytes_total",
        "Bytes that could not be read from user memory.",
        kernel.read_failed_bytes,
    );
    s.counter(
        "apisense_kernel_tls_unknown_fd_total",
        "TLS plaintext dropped: connection unknown.",
        kernel.tls_unknown_fd,
    );
    s.gauge(
        "apisense_tls_libraries",
        "TLS libraries probed.",
        tls.libraries_attached - tls.libraries_detached,
    );
    s.counter(
        "apisense_tls_attach_failures_total",
        "TLS libraries that could not be probed.",
        tls.attach_failures + tls.libraries_without_symbols,
    );
    s.counter(
        "apisense_tls_blind_programs_total",
        "Programs seen whose TLS the sensor cannot decrypt (Go, rustls, static OpenSSL, Java); `apisense status` lists them.",
        tls.blind_executables,
    );
    if let Some(a) = analysis {
        let r = &a.reassembly.stats;
        s.counter(
            "apisense_reassembly_gap_bytes_total",
            "Stream bytes missing (loss or truncation).",
            r.gap_bytes,
        );
        s.counter(
            "apisense_reassembly_evictions_total",
            "Connections closed by the agent (idle, table full).",
            r.idle_evictions + r.table_evictions,
        );
        s.gauge("apisense_reassembly_pending_bytes", "Out-of-order bytes held.", r.pending_bytes);
        let h = a.http.stats();
        s.counter("apisense_http_exchanges_total", "Exchanges reported.", h.exchanges);
        s.counter(
            "apisense_http_parse_errors_total",
            "HTTP messages that could not be framed.",
            h.parsers.parse_errors,
        );
        s.counter(
            "apisense_http_resyncs_total",
            "Times parsing resynchronised after a gap or error.",
            h.parsers.resyncs,
        );
        s.counter(
            "apisense_http_memory_resets_total",
            "Parsers reset by the memory budget.",
            h.memory_resets,
        );
        s.gauge("apisense_http_held_bytes", "Bytes held by HTTP parsers.", h.held_bytes);
        http2_metrics(&mut s, &h.h2);
        s.counter("apisense_detect_findings_total", "Sensitive-data findings.", a.findings);
        s.counter(
            "apisense_detect_security_events_total",
            "Security findings and events raised (each finding once).",
            a.security_events,
        );
        s.counter(
            "apisense_detect_security_dropped_total",
            "Security findings or endpoint baselines not kept: table full.",
            a.detect.analytics_dropped(),
        );
        s.counter(
            "apisense_detect_inventory_dropped_total",
            "Endpoints not inventoried: table full.",
            a.detect.dropped(),
        );
        s.gauge(
            "apisense_detect_inventory_specs_hosts_unseen",
            "OpenAPI specs whose server hosts no exchange has had yet.",
            a.detect.specs_hosts_unseen(),
        );
    }
    s.counter(
        "apisense_export_dropped_total",
        "Exchanges the JSONL exporter could not keep up with.",
        export_dropped,
    );
    if let Some(o) = otlp.map(otlp::OtlpSender::snapshot) {
        s.counter("apisense_otlp_spans_exported_total", "Spans accepted by the collector.", o.spans_exported);
        s.counter_with(
            "apisense_otlp_spans_dropped_total",
            "Spans dropped.",
            "reason=\"queue_full\"",
            o.spans_dropped_queue_full,
        );
        s.counter_with(
            "apisense_otlp_spans_dropped_total",
            "Spans dropped.",
            "reason=\"export_failed\"",
            o.spans_dropped_export_failed,
        );
        s.counter("apisense_otlp_export_errors_total", "Failed export attempts.", o.export_errors);
        s.gauge("apisense_otlp_queue_depth", "Spans waiting to be exported.", o.queue_depth);
    }
    s.gauge(
        "apisense_process_resident_memory_bytes",
        "The agent's resident memory.",
        metrics::resident_bytes(),
    );
    let summary = Summary {
        exchanges_written: written,
        ..Summary::of(capture, analysis, *kernel, *tls, otlp.map(otlp::OtlpSender::snapshot), export_dropped)
    };
    match serde_json::to_value(&summary) {
        Ok(v) => s.summary_counters(&v),
        Err(e) => log::warn!("metrics: the counter summary could not be serialised: {e}"),
    }
    s
}

/// Stops the kernel copying payload of connections the agent will not report.
fn mute(conns: &mut HashMap<MapData, u64, ConnState>, which: Vec<(u32, i32)>) {
    for (tgid, fd) in which {
        let key = conn_key(tgid, fd);
        if let Ok(mut state) = conns.get(&key, 0) {
            state.muted = 1;
            // BPF_EXIST: never resurrect an entry the kernel removed at close.
            let _ = conns.insert(key, state, 2);
        }
    }
}

/// Warns (at most every 10 s) when the kernel reports new losses.
#[derive(Default)]
struct LossReporter {
    last: KernelCounters,
    last_warn: Option<Instant>,
}

impl LossReporter {
    fn check(&mut self, now: KernelCounters) {
        let dropped = now.ringbuf_dropped.saturating_sub(self.last.ringbuf_dropped);
        let map_full = (now.conn_map_full + now.pending_map_full)
            .saturating_sub(self.last.conn_map_full + self.last.pending_map_full);
        if (dropped > 0 || map_full > 0)
            && self.last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(10))
        {
            log::warn!(
                "kernel losses: {dropped} ring-buffer records dropped ({} in total), {map_full} \
                 syscalls or connections untracked because a map was full",
                now.ringbuf_dropped
            );
            self.last = now;
            self.last_warn = Some(Instant::now());
        }
    }
}

/// The capture stage's userspace half: decode and resolve, and record if asked.
struct Capture {
    enrich: Enricher,
    events: Vec<Event>,
    records: u64,
    payload_bytes: u64,
    decode_errors: u64,
    recorder: Option<recording::Writer<BufWriter<File>>>,
}

impl Capture {
    fn ingest(&mut self, record: &[u8]) {
        self.records += 1;
        match decode::decode(record) {
            Ok(event) => {
                if let crate::capture::event::CaptureEvent::Data(chunk) = &event {
                    self.payload_bytes += chunk.payload.len() as u64;
                }
                self.enrich.push(event, &mut self.events);
            }
            Err(e) => {
                self.decode_errors += 1;
                if self.decode_errors.is_power_of_two() {
                    log::warn!("undecodable ring-buffer record ({} so far): {e}", self.decode_errors);
                }
            }
        }
    }

    /// The events decoded since the last call, written to the recording first.
    fn take_events(&mut self) -> Vec<Event> {
        let events = std::mem::take(&mut self.events);
        if let Some(rec) = self.recorder.as_mut() {
            for event in &events {
                if let Err(e) = rec.write(event) {
                    log::error!("recording stopped: {e}");
                    self.recorder = None;
                    break;
                }
            }
        }
        events
    }

    fn flush_recording(&mut self) {
        if let Some(rec) = self.recorder.as_mut()
            && let Err(e) = rec.flush()
        {
            log::error!("recording stopped: {e}");
            self.recorder = None;
        }
    }
}

/// Everything after capture: reassembly, HTTP, exchange records. Fed the same way live and in
/// replay, which is what makes a replay reproduce the live output.
struct Analysis {
    clock: Clock,
    detect: Detect,
    last_flush: Option<Instant>,
    reassembly: Reassembler,
    http: HttpStage,
    streams: Vec<StreamEvent>,
    observed: Vec<Observed>,
    /// Connections reassembly closed, for the capture stage to forget.
    closed: Vec<u64>,
    findings: u64,
    security_events: u64,
}

impl Analysis {
    fn new(config: &AnalysisConfig, clock: Clock) -> anyhow::Result<Self> {
        let limits = Limits { max_body_capture: config.max_body_bytes, ..Limits::default() };
        // A quarter of the budget for out-of-order data, the rest for parsers (partial heads,
        // bodies kept for inspection, requests waiting for their responses).
        let quarter = config.max_buffered_bytes / 4;
        let parsers = usize::try_from(config.max_buffered_bytes - quarter).unwrap_or(usize::MAX);
        let detect = Detect::new(&config.detect)?;
        Ok(Analysis {
            clock,
            detect,
            last_flush: None,
            reassembly: Reassembler::new(ReassemblyLimits {
                max_connections: config.max_connections,
                max_pending_total: quarter,
                ..ReassemblyLimits::default()
            }),
            http: HttpStage::new(limits, parsers),
            streams: Vec::new(),
            observed: Vec::new(),
            closed: Vec::new(),
            findings: 0,
            security_events: 0,
        })
    }

    fn push(&mut self, event: Event) {
        self.reassembly.push(event, &mut self.streams);
        self.advance();
    }

    fn tick(&mut self, now_ns: u64) {
        self.reassembly.tick(now_ns, &mut self.streams);
        self.advance();
        if self.last_flush.is_none_or(|t| t.elapsed() > INVENTORY_FLUSH) {
            self.detect.flush();
            self.last_flush = Some(Instant::now());
        }
    }

    /// Ends every connection, so requests still waiting for a response are reported.
    fn shutdown(&mut self) {
        self.reassembly.close_all(&mut self.streams);
        self.advance();
    }

    /// Persists what detection keeps (call after the last `drain`).
    fn persist(&mut self) {
        self.detect.flush();
    }

    fn advance(&mut self) {
        for stream in self.streams.drain(..) {
            if let StreamEvent::Close { conn_id, .. } = &stream {
                self.closed.push(*conn_id);
            }
            self.http.push(stream, &mut self.observed);
        }
    }

    /// Classifies and hands on the exchanges finished so far; `pods` names each one's pod.
    fn drain(&mut self, pods: Option<&PodDirectory>, sink: &mut impl FnMut(ExchangeRecord)) {
        for observed in self.observed.drain(..) {
            // Looked up here, not at connection open: a pod's status lists its container ids
            // only after they started, often after their first connection.
            let pod = pods.zip(observed.meta.container_id.as_deref()).and_then(|(p, id)| p.lookup(id));
            let start = observed.exchange.request.as_ref().map_or(observed.meta.opened_ns, |r| r.start_ns);
            let wall_ms = self
                .clock
                .wall(start)
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let assessment = self.detect.inspect(&observed, pod.as_deref(), wall_ms);
            self.findings += assessment.findings.len() as u64;
            self.security_events += assessment.events.len() as u64;
            let mut record = ExchangeRecord::new(&observed, &self.clock, &assessment);
            record.k8s = pod;
            sink(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::capture::{ConnMeta, Direction, Origin, RawChunk, Role};

    fn open(conn_id: u64) -> Event {
        Event::Open(Arc::new(ConnMeta {
            conn_id,
            tgid: 1,
            fd: conn_id as i32,
            role: Role::Server,
            origin: Origin::Accept,
            comm: "srv".into(),
            exe: None,
            local: None,
            remote: None,
            opened_ns: 0,
            tls: false,
            service: String::new(),
            container_id: None,
        }))
    }

    fn data(conn_id: u64, offset: u64, bytes: &[u8], ts_ns: u64) -> Event {
        Event::Data(RawChunk {
            conn_id,
            tgid: 1,
            fd: conn_id as i32,
            ts_ns,
            direction: Direction::Ingress,
            tls: false,
            source: 1,
            offset,
            len: bytes.len() as u64,
            payload: Bytes::copy_from_slice(bytes),
        })
    }

    fn analysis(budget_mib: u64) -> Analysis {
        let config = AnalysisConfig {
            max_body_bytes: 65_536,
            max_buffered_bytes: budget_mib << 20,
            max_connections: 65_536,
            detect: crate::detect::DetectConfig::default(),
        };
        Analysis::new(&config, Clock::from_boot_wall_ns(0)).unwrap()
    }

    /// Every number the `stopped:` line shows is also a metric, under
    /// `apisense_<stage>_<thing>_total` (levels as gauges, without `_total`).
    #[test]
    fn every_counter_of_the_stopped_summary_is_a_metric() {
        let capture = Capture {
            enrich: Enricher::new(crate::capture::enrich::Filter::default(), 16),
            events: Vec::new(),
            records: 0,
            payload_bytes: 0,
            decode_errors: 0,
            recorder: None,
        };
        let a = analysis(4);
        let otlp = otlp::OtlpStatsSnapshot {
            spans_exported: 0,
            spans_dropped_queue_full: 0,
            spans_dropped_export_failed: 0,
            logs_exported: 0,
            logs_dropped_queue_full: 0,
            logs_dropped_export_failed: 0,
            metrics_dropped_queue_full: 0,
            metrics_dropped_export_failed: 0,
            export_errors: 0,
            queue_depth: 0,
        };
        let kernel = KernelCounters::default();
        let tls = TlsStats::default();
        let stopped = Summary {
            exchanges_written: Some(0),
            ..Summary::of(&capture, Some(&a), kernel, tls, Some(otlp), 0)
        };
        let line = serde_json::to_value(&stopped).unwrap();
        let mut leaves = Vec::new();
        metrics::summary_leaves(&line, &mut "apisense".to_owned(), &mut leaves);
        assert!(leaves.len() > 50, "the summary lost its counters: {line}");
        // No OTLP sender here: its counters reach the metrics through the same summary.
        let mut snapshot = metrics_snapshot(&capture, Some(&a), &kernel, &tls, None, 0, Some(0));
        snapshot.summary_counters(&serde_json::json!({ "otlp": line["otlp"] }));
        let rendered = snapshot.render();
        for (name, _, _) in &leaves {
            let total = format!("{name}_total");
            assert!(
                snapshot.has(name) || snapshot.has(&total),
                "{name} of the stopped: line is not a metric"
            );
            assert!(
                rendered.contains(&format!("# TYPE {total} "))
                    || rendered.contains(&format!("# TYPE {name} "))
            );
        }
    }

    /// 10,000 idle connections each holding a partial head, one slow-loris sending a head a
    /// byte at a time, one client streaming a never-ending chunked body, and one pipelining
    /// requests with bodies that are never answered: what the agent holds stays under budget.
    #[test]
    fn memory_stays_within_budget_under_idle_slow_and_huge_senders() {
        let mut a = analysis(4);
        let budget = 3u64 << 20; // the parsers' three quarters of 4 MiB
        for id in 0..10_000 {
            a.push(open(id));
            a.push(data(id, 0, format!("POST /idle/{id} HTTP/1.1\r\nHost: x\r\nX-Pad: ").as_bytes(), 1));
        }
        let (loris, stream, pipeliner) = (20_000, 20_001, 20_002);
        for id in [loris, stream, pipeliner] {
            a.push(open(id));
        }
        let mut offsets = [0u64; 3];
        let head = b"GET /slow HTTP/1.1\r\nX-A: ";
        a.push(data(loris, 0, head, 2));
        offsets[0] = head.len() as u64;
        let chunked = b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        a.push(data(stream, 0, chunked, 2));
        offsets[1] = chunked.len() as u64;
        let piece = vec![b'z'; 60_000];
        for round in 0..2_000u64 {
            let ts = 3 + round;
            a.push(data(loris, offsets[0], b"a", ts));
            offsets[0] += 1;
            let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), &piece, b"\r\n"].concat();
            a.push(data(stream, offsets[1], &chunk, ts));
            offsets[1] += chunk.len() as u64;
            let request = [
                format!("POST /p/{round} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", piece.len()).as_bytes(),
                &piece[..],
            ]
            .concat();
            a.push(data(pipeliner, offsets[2], &request, ts));
            offsets[2] += request.len() as u64;
            let parser_bytes = a.http.stats().held_bytes;
            assert!(parser_bytes <= budget + 200_000, "round {round}: parsers hold {parser_bytes} bytes");
            a.drain(None, &mut |_| {});
        }
        let stats = a.http.stats();
        assert!(stats.memory_resets > 0, "{stats:?}");
        assert!(stats.exchanges > 1_000, "reset parsers report what they held: {stats:?}");
        assert_eq!(a.reassembly.stats.pending_bytes, 0);
    }

    /// Out-of-order chunks that never get their hole filled cannot pile up across connections.
    #[test]
    fn out_of_order_bytes_stay_within_budget() {
        let mut a = analysis(4);
        let quarter = 1u64 << 20;
        for id in 0..2_000 {
            a.push(open(id));
            // Offset 10: the first 10 bytes never arrive.
            a.push(data(id, 10, &[b'x'; 4_000], 1));
            assert!(a.reassembly.stats.pending_bytes <= quarter);
        }
        assert!(a.reassembly.stats.budget_flushes > 0);
        assert!(a.reassembly.stats.gap_bytes > 0);
    }
}
