//! The only wiring file: builds every stage, then runs the capture loop.
//!
//! ring buffer -> decode -> enrich -> reassembly -> http -> record -> (`capture_to_export`) -> JSONL
//!
//! The synchronous stages run on the ring-reader task, one record at a time; the exporter runs
//! on its own thread behind a bounded channel whose overflow is counted, never waited on, so a
//! slow output can never stall the reading of the kernel's ring buffer.
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aya::maps::{HashMap, MapData};
use sensor_common::{ConnState, conn_key, proto};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    capture::{
        Event, decode,
        enrich::{EnrichStats, Enricher},
        loader::{self, LoadOptions},
        losses::{self, KernelCounters},
        tls_libs::{TlsAttacher, TlsStats},
    },
    config::RunConfig,
    export::{
        clock::{Clock, monotonic_ns},
        jsonl,
        record::ExchangeRecord,
    },
    http::{
        Limits,
        stage::{HttpStage, HttpStageStats, Observed},
    },
    reassembly::{Reassembler, ReassemblyLimits, ReassemblyStats, StreamEvent},
};

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

async fn run_live(config: RunConfig) -> anyhow::Result<()> {
    let output =
        jsonl::open(&config.output).with_context(|| format!("opening output {:?}", config.output))?;
    let mut stages = Stages::new(&config);
    let probes = loader::load(&LoadOptions {
        ring_buffer_bytes: config.ring_buffer_bytes,
        max_connections: config.max_connections,
    })?;
    let attached = probes.attached;
    let counters = probes.counters;
    let mut conns = probes.conns;
    let mut ebpf = probes.ebpf; // attached until the end of this function
    let mut tls = TlsAttacher::new();
    tls.scan_host(&mut ebpf);
    let libraries = tls.describe();
    log::info!(
        "TLS libraries probed ({}): {}",
        libraries.len(),
        if libraries.is_empty() {
            "none yet".to_owned()
        } else {
            libraries.join("; ")
        }
    );
    // SAFETY: the ring buffer owns its map fd and keeps it open for as long as the AsyncFd lives.
    let mut ring = unsafe { AsyncFd::register_with_interest(probes.ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("polling the ring buffer: {e}"))?;
    let (capture_to_export, export_rx) = mpsc::channel(CAPTURE_TO_EXPORT);
    let exporter = tokio::task::spawn_blocking(move || jsonl::run(export_rx, output));
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut losses = LossReporter::default();
    log::info!(
        "capturing: {attached} tracepoints attached, writing exchanges to {}",
        match &config.output {
            crate::config::Output::Stdout => "stdout".to_owned(),
            crate::config::Output::File(p) => p.display().to_string(),
        }
    );
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting on the ring buffer")?;
                let rb = guard.get_inner_mut();
                let mut handled = 0;
                while handled < BATCH {
                    let Some(item) = rb.next() else { break };
                    stages.ingest(&item);
                    handled += 1;
                }
                if handled < BATCH {
                    guard.clear_ready();
                }
                stages.deliver(&capture_to_export);
                mute(&mut conns, stages.enrich.take_mutes());
                for event in stages.processes.drain(..) {
                    match event {
                        Event::Exec { tgid } => tls.on_exec(tgid),
                        Event::Exit { tgid } => tls.on_exit(&mut ebpf, tgid),
                        _ => {}
                    }
                }
            }
            _ = tick.tick() => {
                stages.tick(monotonic_ns());
                stages.deliver(&capture_to_export);
                losses.check(losses::read(&counters));
                tls.tick(&mut ebpf);
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    stages.shutdown();
    stages.deliver(&capture_to_export);
    drop(capture_to_export);
    let written = exporter
        .await
        .context("exporter thread")?
        .context("writing exchanges")?;
    let summary = Summary {
        exchanges_written: written,
        export_dropped: stages.export_dropped,
        decode_errors: stages.decode_errors,
        capture: stages.enrich.stats,
        reassembly: stages.reassembly.stats,
        http: stages.http.stats(),
        kernel: losses::read(&counters),
        tls: tls.stats,
    };
    log::info!("stopped: {}", serde_json::to_string(&summary).unwrap_or_default());
    Ok(())
}

#[derive(serde::Serialize)]
struct Summary {
    exchanges_written: u64,
    export_dropped: u64,
    decode_errors: u64,
    capture: EnrichStats,
    reassembly: ReassemblyStats,
    http: HttpStageStats,
    kernel: KernelCounters,
    tls: TlsStats,
}

/// Stops the kernel copying payload of connections the agent will not report.
fn mute(conns: &mut HashMap<MapData, u64, ConnState>, which: Vec<(u32, i32)>) {
    for (tgid, fd) in which {
        let key = conn_key(tgid, fd);
        if let Ok(mut state) = conns.get(&key, 0) {
            state.proto = proto::OTHER;
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
            && self
                .last_warn
                .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
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

/// The synchronous stages, fed one ring record at a time.
struct Stages {
    clock: Clock,
    enrich: Enricher,
    reassembly: Reassembler,
    http: HttpStage,
    events: Vec<Event>,
    streams: Vec<StreamEvent>,
    observed: Vec<Observed>,
    /// Process exec/exit events for the TLS attacher.
    processes: Vec<Event>,
    decode_errors: u64,
    export_dropped: u64,
}

impl Stages {
    fn new(config: &RunConfig) -> Self {
        let limits = Limits {
            max_body_capture: config.max_body_bytes,
            ..Limits::default()
        };
        Stages {
            clock: Clock::now(),
            enrich: Enricher::new(config.filter.clone(), config.max_connections as usize),
            reassembly: Reassembler::new(ReassemblyLimits {
                max_connections: config.max_connections as usize,
                ..ReassemblyLimits::default()
            }),
            http: HttpStage::new(limits),
            events: Vec::new(),
            streams: Vec::new(),
            observed: Vec::new(),
            processes: Vec::new(),
            decode_errors: 0,
            export_dropped: 0,
        }
    }

    fn ingest(&mut self, record: &[u8]) {
        match decode::decode(record) {
            Ok(event) => self.enrich.push(event, &mut self.events),
            Err(e) => {
                self.decode_errors += 1;
                if self.decode_errors.is_power_of_two() {
                    log::warn!(
                        "undecodable ring-buffer record ({} so far): {e}",
                        self.decode_errors
                    );
                }
            }
        }
        self.advance();
    }

    fn tick(&mut self, now_ns: u64) {
        self.reassembly.tick(now_ns, &mut self.streams);
        self.advance();
    }

    /// Ends every connection, so requests still waiting for a response are reported.
    fn shutdown(&mut self) {
        self.reassembly.tick(u64::MAX, &mut self.streams);
        self.advance();
    }

    fn advance(&mut self) {
        for event in self.events.drain(..) {
            if matches!(event, Event::Exec { .. } | Event::Exit { .. }) {
                self.processes.push(event);
            } else {
                self.reassembly.push(event, &mut self.streams);
            }
        }
        for stream in self.streams.drain(..) {
            if let StreamEvent::Close { conn_id, .. } = &stream {
                // Reassembly may close on its own (idle, table full): the connection's next bytes
                // must then be resolved again rather than dropped as belonging to nothing.
                self.enrich.forget(*conn_id);
            }
            self.http.push(stream, &mut self.observed);
        }
    }

    fn deliver(&mut self, tx: &mpsc::Sender<ExchangeRecord>) {
        for observed in self.observed.drain(..) {
            if tx.try_send(ExchangeRecord::new(&observed, &self.clock)).is_err() {
                self.export_dropped += 1;
                if self.export_dropped.is_power_of_two() {
                    log::warn!(
                        "exporter behind: {} exchanges dropped so far",
                        self.export_dropped
                    );
                }
            }
        }
    }
}
