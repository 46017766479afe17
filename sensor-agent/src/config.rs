//! Command line -> validated configuration, before anything starts.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use thiserror::Error;

use crate::{
    capture::enrich::Filter,
    detect::{
        DetectConfig,
        sensitive::{Detector, SensitiveConfig},
    },
    export::otlp::{
        OtlpConfig, OtlpConfigError, OtlpFlags,
        config::{Compression, Protocol},
    },
};

/// apisense watches the HTTP API traffic of this host with eBPF (no change to the services) and
/// reports every request/response exchange.
#[derive(Debug, Parser)]
#[command(name = "apisense", version, about, long_about = None)]
pub struct Cli {
    /// Log filter, `RUST_LOG` syntax (e.g. `info`, `debug`, `apisense=debug`). Logs go to stderr.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to the kernel and report HTTP exchanges until interrupted (needs root).
    Run(RunArgs),
    /// Attach to the kernel and write the captured event stream to a file, for `replay` (needs
    /// root).
    Record(RecordArgs),
    /// Run the whole userspace pipeline on a recording, without privileges; same output as `run`.
    Replay(ReplayArgs),
    /// Print the endpoint inventory kept in the state directory.
    Inventory(InventoryArgs),
    /// Render the endpoint inventory as a single-file HTML page.
    Report(ReportArgs),
    /// Configuration file tools.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file (syntax, keys, patterns) without starting anything.
    Check { file: PathBuf },
}

/// The YAML configuration file. Unknown keys are errors, named with their line.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Sensitive-data policy.
    #[serde(default)]
    pub sensitive: SensitiveConfig,
    /// OTLP export (its presence enables it); flags override, it overrides `OTEL_*` variables.
    #[serde(default)]
    pub otlp: Option<OtlpFileConfig>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpFileConfig {
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`.
    pub protocol: Option<String>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// `none` or `gzip`.
    pub compression: Option<String>,
    pub service_name: Option<String>,
    /// PEM CA bundle for an https endpoint.
    pub certificate: Option<PathBuf>,
    pub metrics_interval_seconds: Option<u64>,
}

impl ConfigFile {
    /// Reads and validates `path`: YAML, known keys, compilable detectors.
    pub fn load(path: &std::path::Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_path_buf(), problem: e.to_string() })?;
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_norway::from_str(&text)
                .map_err(|e| ConfigError::File { path: path.to_path_buf(), problem: e.to_string() })?
        };
        Detector::new(&file.sensitive).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            problem: format!("sensitive: {e}"),
        })?;
        Ok(file)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InventoryFormat {
    /// Aligned text, undocumented endpoints first.
    Table,
    Json,
    /// A draft OpenAPI 3.1 document of what was observed (shadow endpoints first).
    Openapi,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// The agent's state directory.
    #[arg(long, value_name = "DIR", env = "APISENSE_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    #[arg(long, value_enum, default_value_t = InventoryFormat::Table)]
    pub format: InventoryFormat,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The page to write.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,

    /// The agent's state directory.
    #[arg(long, value_name = "DIR", env = "APISENSE_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

const DEFAULT_METRICS_INTERVAL: u64 = 10;

/// Where a node's inventory lives unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/apisense";

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Only report connections with this local or remote port (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// Only report connections of this process id (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Kernel ring buffer size in MiB (power of two). Larger absorbs bigger bursts.
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    pub ring_buffer_mib: u32,

    /// Connections tracked at once, in the kernel and in the agent.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub max_connections: u32,
}

#[derive(Debug, Args)]
pub struct AnalysisArgs {
    /// Body bytes kept per message for inspection; sizes are always reported exactly.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,

    /// Bytes the agent may hold across all connections (out-of-order data, partial heads, bodies
    /// kept for inspection); beyond it the parsers holding most are reset (counted).
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub max_buffered_mib: u32,

    /// OpenAPI 3.x / Swagger 2.0 document (YAML or JSON), or a directory of them; repeatable.
    /// Exchanges are classified against them (documented, shadow, undocumented method/status,
    /// deprecated).
    #[arg(long = "openapi", value_name = "PATH")]
    pub openapi: Vec<PathBuf>,

    /// Where the endpoint inventory persists (`run`: /var/lib/apisense; `replay`: in memory
    /// unless given).
    #[arg(long, value_name = "DIR", env = "APISENSE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// YAML configuration file (sensitive-data policy: detectors on/off, custom detectors,
    /// per-endpoint allowlists). Checked with `apisense config check FILE`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where to write exchanges as JSON Lines: a file path (created 0600, appended), or `-` for
    /// stdout (the default).
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub output: String,

    /// Also write the captured event stream to FILE (as `apisense record` does).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    #[command(flatten)]
    pub otlp: OtlpArgs,

    /// Serve the agent's own metrics in the Prometheus text format at `http://ADDR/metrics`
    /// (e.g. `127.0.0.1:9464`).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub capture: CaptureArgs,

    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// OTLP export; enabled by any of these flags or by `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`.
#[derive(Debug, Args)]
pub struct OtlpArgs {
    /// Export a span per exchange over OTLP (default endpoint: gRPC `http://localhost:4317`).
    #[arg(long)]
    pub otlp: bool,

    /// OTLP endpoint, e.g. `http://otel-collector:4317` (gRPC) or `http://otel-collector:4318`
    /// (HTTP); overrides `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// OTLP protocol; overrides `OTEL_EXPORTER_OTLP_PROTOCOL`.
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<Protocol>,

    /// Extra header `name=value` on every export (repeatable); adds to
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    #[arg(long = "otlp-header", value_name = "NAME=VALUE")]
    pub otlp_headers: Vec<String>,

    /// Compression of exports; overrides `OTEL_EXPORTER_OTLP_COMPRESSION`.
    #[arg(long, value_enum, value_name = "ALGORITHM")]
    pub otlp_compression: Option<Compression>,

    /// Seconds between exports of the agent's own metrics over OTLP.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_METRICS_INTERVAL)]
    pub otlp_metrics_interval: u64,

    /// `service.name` for every span instead of the one derived from each process (the
    /// program, or the script an interpreter runs); overrides `OTEL_SERVICE_NAME`.
    #[arg(long, value_name = "NAME")]
    pub service_name: Option<String>,
}

impl OtlpArgs {
    fn resolve(
        self,
        file: Option<&OtlpFileConfig>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, ConfigError> {
        let bad = |key: &str, value: &str| ConfigError::File {
            path: PathBuf::from("--config"),
            problem: format!("otlp.{key}: {value:?} is not valid"),
        };
        let from_file = file.cloned().unwrap_or_default();
        let protocol = match (self.otlp_protocol, from_file.protocol.as_deref()) {
            (Some(p), _) => Some(p),
            (None, Some("grpc")) => Some(Protocol::Grpc),
            (None, Some("http/protobuf")) => Some(Protocol::HttpProtobuf),
            (None, Some(other)) => return Err(bad("protocol", other)),
            (None, None) => None,
        };
        let compression = match (self.otlp_compression, from_file.compression.as_deref()) {
            (Some(c), _) => Some(c),
            (None, Some("gzip")) => Some(Compression::Gzip),
            (None, Some("none")) => Some(Compression::None),
            (None, Some(other)) => return Err(bad("compression", other)),
            (None, None) => None,
        };
        let enabled = self.otlp
            || file.is_some()
            || self.otlp_endpoint.is_some()
            || ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
                .iter()
                .any(|k| env(k).is_some_and(|v| !v.trim().is_empty()));
        if !enabled {
            return Ok(None);
        }
        let headers =
            from_file.headers.iter().map(|(k, v)| format!("{k}={v}")).chain(self.otlp_headers).collect();
        let flags = OtlpFlags {
            endpoint: self.otlp_endpoint.or(from_file.endpoint),
            protocol,
            headers,
            compression,
            service_name: self.service_name.or(from_file.service_name),
        };
        let mut config = OtlpConfig::resolve(&flags, env).map_err(ConfigError::Otlp)?;
        let interval = if self.otlp_metrics_interval == DEFAULT_METRICS_INTERVAL {
            from_file.metrics_interval_seconds.unwrap_or(DEFAULT_METRICS_INTERVAL)
        } else {
            self.otlp_metrics_interval
        };
        config.metrics_interval = std::time::Duration::from_secs(interval.max(1));
        if from_file.certificate.is_some() {
            config.ca_certificate = from_file.certificate;
        }
        Ok(Some(config))
    }
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The recording to write (created 0600, replaced).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    #[command(flatten)]
    pub capture: CaptureArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A file written by `apisense record` or `apisense run --record`.
    pub file: PathBuf,

    /// Where to write exchanges as JSON Lines (`-` for stdout, the default).
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub output: String,

    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub filter: Filter,
    pub ring_buffer_bytes: u32,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    pub max_body_bytes: usize,
    pub max_buffered_bytes: u64,
    pub max_connections: usize,
    pub detect: DetectConfig,
}

/// What a live session does with what it captures.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `None` when only recording.
    pub output: Option<Output>,
    pub otlp: Option<OtlpConfig>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub record: Option<PathBuf>,
    pub capture: CaptureConfig,
    pub analysis: AnalysisConfig,
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub input: PathBuf,
    pub output: Output,
    pub analysis: AnalysisConfig,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--ring-buffer-mib: {0} is not a power of two between 1 and 1024")]
    RingBuffer(u32),
    #[error("--max-connections: {0} is outside 16..=1048576")]
    MaxConnections(u32),
    #[error("--max-body-bytes: {0} is above 16777216")]
    MaxBody(usize),
    #[error("--max-buffered-mib: {0} is outside 1..=65536")]
    MaxBuffered(u32),
    #[error("--output: empty path")]
    EmptyOutput,
    #[error("config file {path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("OTLP: {0}")]
    Otlp(#[source] OtlpConfigError),
}

impl TryFrom<RunArgs> for RunConfig {
    type Error = ConfigError;

    fn try_from(args: RunArgs) -> Result<Self, ConfigError> {
        let capture = capture(args.capture)?;
        let file = args.analysis.config.as_deref().map(ConfigFile::load).transpose()?;
        let otlp =
            args.otlp.resolve(file.as_ref().and_then(|f| f.otlp.as_ref()), &|k| std::env::var(k).ok())?;
        let mut analysis = analysis(args.analysis, capture.max_connections, file.as_ref())?;
        analysis.detect.state_dir.get_or_insert_with(|| PathBuf::from(DEFAULT_STATE_DIR));
        Ok(RunConfig {
            output: Some(output(&args.output)?),
            otlp,
            metrics_addr: args.metrics_addr,
            record: args.record,
            analysis,
            capture,
        })
    }
}

impl TryFrom<RecordArgs> for RunConfig {
    type Error = ConfigError;

    fn try_from(args: RecordArgs) -> Result<Self, ConfigError> {
        let capture = capture(args.capture)?;
        let defaults = AnalysisArgs {
            max_body_bytes: 65_536,
            max_buffered_mib: 256,
            openapi: Vec::new(),
            state_dir: None,
            config: None,
        };
        Ok(RunConfig {
            output: None,
            otlp: None,
            metrics_addr: None,
            record: Some(args.out),
            analysis: analysis(defaults, capture.max_connections, None)?,
            capture,
        })
    }
}

impl TryFrom<ReplayArgs> for ReplayConfig {
    type Error = ConfigError;

    fn try_from(args: ReplayArgs) -> Result<Self, ConfigError> {
        Ok(ReplayConfig {
            input: args.file,
            output: output(&args.output)?,
            analysis: {
                let file = args.analysis.config.as_deref().map(ConfigFile::load).transpose()?;
                analysis(args.analysis, 1 << 20, file.as_ref())?
            },
        })
    }
}

fn capture(args: CaptureArgs) -> Result<CaptureConfig, ConfigError> {
    if !args.ring_buffer_mib.is_power_of_two() || args.ring_buffer_mib > 1024 {
        return Err(ConfigError::RingBuffer(args.ring_buffer_mib));
    }
    if !(16..=1 << 20).contains(&args.max_connections) {
        return Err(ConfigError::MaxConnections(args.max_connections));
    }
    Ok(CaptureConfig {
        filter: Filter { pids: args.pids, ports: args.ports },
        ring_buffer_bytes: args.ring_buffer_mib << 20,
        max_connections: args.max_connections,
    })
}

fn analysis(
    args: AnalysisArgs,
    max_connections: u32,
    file: Option<&ConfigFile>,
) -> Result<AnalysisConfig, ConfigError> {
    if args.max_body_bytes > 16 << 20 {
        return Err(ConfigError::MaxBody(args.max_body_bytes));
    }
    if !(1..=65_536).contains(&args.max_buffered_mib) {
        return Err(ConfigError::MaxBuffered(args.max_buffered_mib));
    }
    Ok(AnalysisConfig {
        max_body_bytes: args.max_body_bytes,
        max_buffered_bytes: u64::from(args.max_buffered_mib) << 20,
        max_connections: max_connections as usize,
        detect: DetectConfig {
            openapi: args.openapi,
            state_dir: args.state_dir,
            sensitive: file.map(|f| f.sensitive.clone()).unwrap_or_default(),
        },
    })
}

fn output(arg: &str) -> Result<Output, ConfigError> {
    match arg {
        "-" => Ok(Output::Stdout),
        "" => Err(ConfigError::EmptyOutput),
        path => Ok(Output::File(PathBuf::from(path))),
    }
}

pub fn init_logging(cli: &Cli) {
    env_logger::Builder::new()
        .parse_filters(&cli.log)
        .format_timestamp_millis()
        .target(env_logger::Target::Stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<RunConfig, ConfigError> {
        let mut argv = vec!["apisense", "run"];
        argv.extend_from_slice(extra);
        let Command::Run(run) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
        RunConfig::try_from(run)
    }

    #[test]
    fn defaults_are_valid() {
        let c = args(&[]).unwrap();
        assert_eq!(c.output, Some(Output::Stdout));
        assert_eq!(c.capture.ring_buffer_bytes, 16 << 20);
        assert_eq!(c.analysis.max_buffered_bytes, 256 << 20);
        assert!(c.record.is_none());
    }

    #[test]
    fn bad_values_name_the_flag() {
        assert_eq!(args(&["--ring-buffer-mib", "3"]).unwrap_err(), ConfigError::RingBuffer(3));
        assert!(args(&["--max-connections", "1"]).unwrap_err().to_string().contains("--max-connections"));
        assert_eq!(args(&["--output", ""]).unwrap_err(), ConfigError::EmptyOutput);
        assert_eq!(args(&["--max-buffered-mib", "0"]).unwrap_err(), ConfigError::MaxBuffered(0));
    }

    #[test]
    fn filters_file_output_and_recording() {
        let c = args(&[
            "--port",
            "80",
            "--port",
            "8080",
            "--pid",
            "7",
            "-o",
            "/tmp/x.jsonl",
            "--record",
            "/tmp/r",
        ])
        .unwrap();
        assert_eq!(c.capture.filter.ports, vec![80, 8080]);
        assert_eq!(c.capture.filter.pids, vec![7]);
        assert_eq!(c.output, Some(Output::File("/tmp/x.jsonl".into())));
        assert_eq!(c.record, Some(PathBuf::from("/tmp/r")));
    }

    #[test]
    fn record_and_replay_commands() {
        let Command::Record(r) =
            Cli::try_parse_from(["apisense", "record", "--out", "f", "--port", "1"]).unwrap().command
        else {
            unreachable!()
        };
        let c = RunConfig::try_from(r).unwrap();
        assert!(c.output.is_none());
        assert_eq!(c.record, Some(PathBuf::from("f")));
        let Command::Replay(r) = Cli::try_parse_from(["apisense", "replay", "f", "-o", "x"]).unwrap().command
        else {
            unreachable!()
        };
        let c = ReplayConfig::try_from(r).unwrap();
        assert_eq!(c.input, PathBuf::from("f"));
        assert!(Cli::try_parse_from(["apisense", "record"]).is_err(), "--out is required");
    }

    #[test]
    fn config_file_errors_name_the_file_and_key() {
        let dir = std::env::temp_dir().join(format!("apisense-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.yaml");
        std::fs::write(&good, "sensitive:\n  disabled: [phone]\n  allow:\n    - path: /cards/*\n      detectors: [payment_card]\n").unwrap();
        assert_eq!(ConfigFile::load(&good).unwrap().sensitive.disabled, ["phone"]);
        let unknown = dir.join("unknown.yaml");
        std::fs::write(&unknown, "sensitive:\n  disabld: [phone]\n").unwrap();
        let e = ConfigFile::load(&unknown).unwrap_err().to_string();
        assert!(e.contains("unknown.yaml") && e.contains("disabld"), "{e}");
        let regex = dir.join("regex.yaml");
        std::fs::write(&regex, "sensitive:\n  custom:\n    - name: acct\n      pattern: '([0-9'\n").unwrap();
        let e = ConfigFile::load(&regex).unwrap_err().to_string();
        assert!(e.contains("regex.yaml") && e.contains("acct"), "{e}");
        let garbage = dir.join("garbage.yaml");
        std::fs::write(&garbage, "[[[:").unwrap();
        assert!(ConfigFile::load(&garbage).unwrap_err().to_string().contains("garbage.yaml"));
        assert!(
            ConfigFile::load(&dir.join("missing.yaml")).unwrap_err().to_string().contains("missing.yaml")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn otlp_from_the_config_file_under_flags() {
        let file = OtlpFileConfig {
            endpoint: Some("http://collector:4317".into()),
            protocol: Some("grpc".into()),
            headers: [("x-team".to_owned(), "sec".to_owned())].into(),
            compression: Some("gzip".into()),
            service_name: None,
            certificate: None,
            metrics_interval_seconds: Some(30),
        };
        let args = |extra: &[&str]| {
            let mut argv = vec!["apisense", "run"];
            argv.extend_from_slice(extra);
            let Command::Run(run) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
            run.otlp
        };
        let c = args(&[]).resolve(Some(&file), &|_| None).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://collector:4317");
        assert_eq!(c.metrics_interval, std::time::Duration::from_secs(30));
        assert!(c.headers.contains(&("x-team".to_owned(), "sec".to_owned())));
        let c =
            args(&["--otlp-endpoint", "http://flag:4317"]).resolve(Some(&file), &|_| None).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://flag:4317", "flags win");
        assert!(args(&[]).resolve(None, &|_| None).unwrap().is_none(), "off unless asked");
        let bad = OtlpFileConfig { protocol: Some("smoke".into()), ..file };
        assert!(args(&[]).resolve(Some(&bad), &|_| None).unwrap_err().to_string().contains("otlp.protocol"));
    }

    #[test]
    fn garbage_flags_are_rejected() {
        assert!(Cli::try_parse_from(["apisense", "run", "--port", "notaport"]).is_err());
        assert!(Cli::try_parse_from(["apisense", "run", "--nope"]).is_err());
    }
}
