//! Command line -> validated configuration, before anything starts.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use thiserror::Error;

mod file;
mod spec_binding;
pub use file::{ConfigFile, KubernetesFileConfig, OtlpFileConfig, Toggle};

use crate::{
    capture::enrich::Filter,
    detect::DetectConfig,
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
    /// [default: the config file's `log`, else info]
    #[arg(long, global = true, env = "RUST_LOG")]
    pub log: Option<String>,

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
    /// The blind-spot inventory: every process with TCP sockets on this host and whether its TLS
    /// is decrypted, by which library, or why not (reads /proc; run as root to see every process).
    Status(StatusArgs),
    /// Configuration file tools.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file (syntax, keys, patterns) without starting anything.
    Check { file: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InventoryFormat {
    /// Aligned text, undocumented endpoints first.
    Table,
    /// `{"endpoints": [...], "findings": [...], "clients": [...]}`: the inventory with the
    /// security findings and per-client data.
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
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub format: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// Aligned text, processes whose TLS is not decrypted first.
    Table,
    Json,
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

    /// Kernel ring buffer size in MiB (power of two). Larger absorbs bigger bursts. [default: 16]
    #[arg(long, value_name = "MIB")]
    pub ring_buffer_mib: Option<u32>,

    /// Connections tracked at once, in the kernel and in the agent. [default: 65536]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,

    /// YAML configuration file: every flag has a key of the same name in snake case
    /// (`ring_buffer_mib: 64`), plus the sensitive-data policy and Kubernetes settings. Flags
    /// override it. Checked with `apisense config check FILE`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AnalysisArgs {
    /// Body bytes kept per message for inspection; sizes are always reported exactly.
    /// [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Bytes the agent may hold across all connections (out-of-order data, partial heads, bodies
    /// kept for inspection); beyond it the parsers holding most are reset (counted). [default: 256]
    #[arg(long, value_name = "MIB")]
    pub max_buffered_mib: Option<u32>,

    /// OpenAPI 3.x / Swagger 2.0 document (YAML or JSON), or a directory of them; repeatable.
    /// Exchanges are classified against them (documented, shadow, undocumented method/status,
    /// deprecated).
    #[arg(long = "openapi", value_name = "PATH")]
    pub openapi: Vec<PathBuf>,

    /// Where the endpoint inventory persists (`run`: /var/lib/apisense; `replay`: in memory
    /// unless given).
    #[arg(long, value_name = "DIR", env = "APISENSE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where to write exchanges as JSON Lines: a file path (created 0600, appended), or `-` for
    /// stdout (the default).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<String>,

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

    /// Seconds between exports of the agent's own metrics over OTLP. [default: 10]
    #[arg(long, value_name = "SECONDS")]
    pub otlp_metrics_interval: Option<u64>,

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
            || file.is_some_and(|f| f.enabled != Some(false))
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
        let interval = self
            .otlp_metrics_interval
            .or(from_file.metrics_interval_seconds)
            .unwrap_or(DEFAULT_METRICS_INTERVAL);
        if interval == 0 {
            return Err(ConfigError::Invalid {
                setting: "--otlp-metrics-interval / otlp.metrics_interval_seconds".to_owned(),
                problem: "0 is not a number of seconds above zero".to_owned(),
            });
        }
        config.metrics_interval = std::time::Duration::from_secs(interval);
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
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<String>,

    /// YAML configuration file (as for `run`; its analysis settings and policy apply).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

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
    pub kubernetes: KubernetesConfig,
    /// The config file's log filter.
    pub log: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub input: PathBuf,
    pub output: Output,
    pub analysis: AnalysisConfig,
    /// The config file's log filter.
    pub log: Option<String>,
}

/// Whether and how pods are looked up in the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    pub enabled: Toggle,
    pub node_name: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `setting` names where the value came from: the flag, or the key and its file.
    #[error("{setting}: {problem}")]
    Invalid { setting: String, problem: String },
    #[error("config file {path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("OTLP: {0}")]
    Otlp(#[source] OtlpConfigError),
}

/// A setting's value and where it came from, so that an error names what the user wrote.
struct Pick<T> {
    value: T,
    setting: String,
}

/// Flag over file over default.
fn pick<T>(
    flag: Option<T>,
    from_file: Option<T>,
    default: T,
    (flag_name, key): (&str, &str),
    file: Option<&std::path::Path>,
) -> Pick<T> {
    match (flag, from_file, file) {
        (Some(value), _, _) => Pick { value, setting: flag_name.to_owned() },
        (None, Some(value), Some(path)) => Pick { value, setting: format!("{key} (in {})", path.display()) },
        _ => Pick { value: default, setting: format!("{flag_name} default") },
    }
}

impl<T> Pick<T> {
    fn check(
        self,
        ok: impl FnOnce(&T) -> bool,
        problem: impl FnOnce(&T) -> String,
    ) -> Result<T, ConfigError> {
        if ok(&self.value) {
            Ok(self.value)
        } else {
            Err(ConfigError::Invalid { problem: problem(&self.value), setting: self.setting })
        }
    }
}

/// A list setting: the flags replace the file's list when any is given.
fn list<T: Clone>(flags: Vec<T>, from_file: &[T]) -> Vec<T> {
    if flags.is_empty() { from_file.to_vec() } else { flags }
}

/// The configuration file named by `--config`, loaded and validated.
fn load(path: Option<&std::path::Path>) -> Result<Option<ConfigFile>, ConfigError> {
    path.map(ConfigFile::load).transpose()
}

impl TryFrom<RunArgs> for RunConfig {
    type Error = ConfigError;

    fn try_from(args: RunArgs) -> Result<Self, ConfigError> {
        let path = args.capture.config.clone();
        let f = load(path.as_deref())?.unwrap_or_default();
        let capture = capture(args.capture, &f, path.as_deref())?;
        let otlp = args.otlp.resolve(f.otlp.as_ref(), &|k| std::env::var(k).ok())?;
        let mut analysis = analysis(args.analysis, capture.max_connections, &f, path.as_deref())?;
        analysis.detect.state_dir.get_or_insert_with(|| PathBuf::from(DEFAULT_STATE_DIR));
        Ok(RunConfig {
            kubernetes: kubernetes(&f),
            output: Some(output(args.output.as_deref().or(f.output.as_deref()))?),
            otlp,
            metrics_addr: args.metrics_addr.or(f.metrics_addr),
            record: args.record.or(f.record),
            log: f.log,
            analysis,
            capture,
        })
    }
}

impl TryFrom<RecordArgs> for RunConfig {
    type Error = ConfigError;

    fn try_from(args: RecordArgs) -> Result<Self, ConfigError> {
        let path = args.capture.config.clone();
        let f = load(path.as_deref())?.unwrap_or_default();
        let capture = capture(args.capture, &f, path.as_deref())?;
        let defaults = AnalysisArgs {
            max_body_bytes: None,
            max_buffered_mib: None,
            openapi: Vec::new(),
            state_dir: None,
        };
        Ok(RunConfig {
            output: None,
            otlp: None,
            metrics_addr: None,
            record: Some(args.out),
            kubernetes: kubernetes(&f),
            log: f.log.clone(),
            analysis: analysis(defaults, capture.max_connections, &ConfigFile::default(), None)?,
            capture,
        })
    }
}

impl TryFrom<ReplayArgs> for ReplayConfig {
    type Error = ConfigError;

    fn try_from(args: ReplayArgs) -> Result<Self, ConfigError> {
        let f = load(args.config.as_deref())?.unwrap_or_default();
        Ok(ReplayConfig {
            input: args.file,
            output: output(args.output.as_deref().or(f.output.as_deref()))?,
            analysis: analysis(args.analysis, 1 << 20, &f, args.config.as_deref())?,
            log: f.log,
        })
    }
}

fn capture(
    args: CaptureArgs,
    f: &ConfigFile,
    path: Option<&std::path::Path>,
) -> Result<CaptureConfig, ConfigError> {
    let ring_buffer_mib =
        pick(args.ring_buffer_mib, f.ring_buffer_mib, 16, ("--ring-buffer-mib", "ring_buffer_mib"), path)
            .check(
                |v| v.is_power_of_two() && *v <= 1024,
                |v| format!("{v} is not a power of two between 1 and 1024"),
            )?;
    let max_connections =
        pick(args.max_connections, f.max_connections, 65_536, ("--max-connections", "max_connections"), path)
            .check(|v| (16..=1 << 20).contains(v), |v| format!("{v} is outside 16..=1048576"))?;
    Ok(CaptureConfig {
        filter: Filter { pids: list(args.pids, &f.pids), ports: list(args.ports, &f.ports) },
        ring_buffer_bytes: ring_buffer_mib << 20,
        max_connections,
    })
}

fn analysis(
    args: AnalysisArgs,
    max_connections: u32,
    f: &ConfigFile,
    path: Option<&std::path::Path>,
) -> Result<AnalysisConfig, ConfigError> {
    let max_body_bytes =
        pick(args.max_body_bytes, f.max_body_bytes, 65_536, ("--max-body-bytes", "max_body_bytes"), path)
            .check(|v| *v <= 16 << 20, |v| format!("{v} is above 16777216"))?;
    let max_buffered_mib = pick(
        args.max_buffered_mib,
        f.max_buffered_mib,
        256,
        ("--max-buffered-mib", "max_buffered_mib"),
        path,
    )
    .check(|v| (1..=65_536).contains(v), |v| format!("{v} is outside 1..=65536"))?;
    Ok(AnalysisConfig {
        max_body_bytes,
        max_buffered_bytes: u64::from(max_buffered_mib) << 20,
        max_connections: max_connections as usize,
        detect: DetectConfig {
            openapi: list(args.openapi, &f.openapi),
            // Validated when the file was loaded; a rule's spec name is checked against the
            // specs when they load.
            spec_rules: f.spec_binding.rules().map_err(|problem| ConfigError::Invalid {
                setting: path.map_or_else(
                    || "spec_binding".to_owned(),
                    |p| format!("spec_binding (in {})", p.display()),
                ),
                problem,
            })?,
            unseen_host_warning: f.spec_binding.unseen_host_warning(),
            state_dir: args.state_dir.or_else(|| f.state_dir.clone()),
            sensitive: f.sensitive.clone(),
            analytics: f.analytics.clone(),
        },
    })
}

fn kubernetes(f: &ConfigFile) -> KubernetesConfig {
    KubernetesConfig {
        enabled: f.kubernetes.enabled.unwrap_or_default(),
        node_name: f.kubernetes.node_name.clone(),
    }
}

/// `apisense config check FILE`: the file as `run --config FILE` would take it, every value
/// validated, without starting anything.
pub fn check(path: &std::path::Path) -> Result<(), ConfigError> {
    checked(path).map(drop)
}

/// [`check`], returning the configuration (for `config check` to describe the specs).
pub fn checked(path: &std::path::Path) -> Result<RunConfig, ConfigError> {
    let command_line =
        [std::ffi::OsStr::new("apisense"), "run".as_ref(), "--config".as_ref(), path.as_os_str()];
    let Ok(Cli { command: Command::Run(args), .. }) = Cli::try_parse_from(command_line) else {
        return Err(ConfigError::File { path: path.to_path_buf(), problem: "not a usable path".to_owned() });
    };
    RunConfig::try_from(args)
}

fn output(arg: Option<&str>) -> Result<Output, ConfigError> {
    match arg {
        None | Some("-") => Ok(Output::Stdout),
        Some("") => Err(ConfigError::Invalid {
            setting: "--output".to_owned(),
            problem: "empty path (use - for stdout)".to_owned(),
        }),
        Some(path) => Ok(Output::File(PathBuf::from(path))),
    }
}

/// Starts logging with the flag's (or `RUST_LOG`'s) filter, else the config file's, else `info`.
pub fn init_logging(flag: Option<&str>, from_file: Option<&str>) {
    let filter = flag.or(from_file).unwrap_or("info");
    env_logger::Builder::new()
        .parse_filters(filter)
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
        let e = |argv: &[&str]| args(argv).unwrap_err().to_string();
        assert_eq!(
            e(&["--ring-buffer-mib", "3"]),
            "--ring-buffer-mib: 3 is not a power of two between 1 and 1024"
        );
        assert!(e(&["--max-connections", "1"]).starts_with("--max-connections: 1 "));
        assert!(e(&["--output", ""]).starts_with("--output: empty path"));
        assert!(e(&["--max-buffered-mib", "0"]).starts_with("--max-buffered-mib: 0 "));
        assert!(e(&["--otlp", "--otlp-metrics-interval", "0"]).contains("otlp-metrics-interval"));
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
    fn analytics_section_reaches_detection_and_bad_values_name_the_key() {
        let dir = std::env::temp_dir().join(format!("apisense-config-analytics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.yaml");
        std::fs::write(&good, "analytics:\n  api_key_headers: [x-tpp-key]\n  zombie_window_hours: 48\n  error_rate_increase: 0.3\n").unwrap();
        let c = RunConfig::try_from(run_args(&good)).unwrap();
        assert_eq!(c.analysis.detect.analytics.api_key_headers, ["x-tpp-key"]);
        assert_eq!(c.analysis.detect.analytics.zombie_window_hours, 48);
        assert_eq!(c.analysis.detect.analytics.anomaly_window_seconds, 60, "defaults fill the rest");
        for (name, text, key) in [
            ("typo.yaml", "analytics:\n  zombie_window: 1\n", "zombie_window"),
            ("range.yaml", "analytics:\n  error_rate_increase: 2\n", "error_rate_increase"),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let e = ConfigFile::load(&path).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(key), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn run_args(config: &std::path::Path) -> RunArgs {
        let argv =
            [std::ffi::OsStr::new("apisense"), "run".as_ref(), "--config".as_ref(), config.as_os_str()];
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(run) => run,
            _ => unreachable!("run was asked for"),
        }
    }

    #[test]
    fn otlp_from_the_config_file_under_flags() {
        let file = OtlpFileConfig {
            enabled: None,
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
        let off = OtlpFileConfig { enabled: Some(false), ..file.clone() };
        assert!(args(&[]).resolve(Some(&off), &|_| None).unwrap().is_none(), "enabled: false");
        assert!(args(&["--otlp"]).resolve(Some(&off), &|_| None).unwrap().is_some(), "the flag wins");
        let bad = OtlpFileConfig { protocol: Some("smoke".into()), ..file };
        assert!(args(&[]).resolve(Some(&bad), &|_| None).unwrap_err().to_string().contains("otlp.protocol"));
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("apisense-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn every_setting_from_the_file_and_flags_override() {
        let dir = temp_dir("full");
        let path = dir.join("apisense.yaml");
        std::fs::write(
            &path,
            "log: debug\noutput: out.jsonl\nrecord: /tmp/rec\nmetrics_addr: 127.0.0.1:9464\n\
             ports: [443, 8443]\npids: [7]\nring_buffer_mib: 64\nmax_connections: 1024\n\
             max_body_bytes: 4096\nmax_buffered_mib: 32\nopenapi: [specs]\nstate_dir: state\n\
             kubernetes:\n  enabled: false\n  node_name: node-a\n\
             otlp:\n  endpoint: http://collector:4317\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let c = args(&["--config", config]).unwrap();
        assert_eq!(c.log.as_deref(), Some("debug"));
        assert_eq!(c.output, Some(Output::File(dir.join("out.jsonl"))), "relative to the file");
        assert_eq!(c.record, Some(PathBuf::from("/tmp/rec")));
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.capture.filter.ports, [443, 8443]);
        assert_eq!(c.capture.filter.pids, [7]);
        assert_eq!(c.capture.ring_buffer_bytes, 64 << 20);
        assert_eq!(c.capture.max_connections, 1024);
        assert_eq!(c.analysis.max_body_bytes, 4096);
        assert_eq!(c.analysis.max_buffered_bytes, 32 << 20);
        assert_eq!(c.analysis.detect.openapi, [dir.join("specs")]);
        assert_eq!(c.analysis.detect.state_dir, Some(dir.join("state")));
        assert_eq!(
            c.kubernetes,
            KubernetesConfig { enabled: Toggle::False, node_name: Some("node-a".into()) }
        );
        assert_eq!(c.otlp.unwrap().endpoint, "http://collector:4317");

        let c = args(&[
            "--config",
            config,
            "--port",
            "80",
            "-o",
            "-",
            "--ring-buffer-mib",
            "8",
            "--max-body-bytes",
            "1",
        ])
        .unwrap();
        assert_eq!(c.capture.filter.ports, [80], "a flag list replaces the file's");
        assert_eq!(c.capture.filter.pids, [7]);
        assert_eq!(c.output, Some(Output::Stdout));
        assert_eq!(c.capture.ring_buffer_bytes, 8 << 20);
        assert_eq!(c.analysis.max_body_bytes, 1);
        assert_eq!(c.analysis.max_buffered_bytes, 32 << 20);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_values_in_the_file_name_the_key_and_the_file() {
        let dir = temp_dir("bad");
        let path = dir.join("bad.yaml");
        let check = |yaml: &str, expect: &[&str]| {
            std::fs::write(&path, yaml).unwrap();
            let e = args(&["--config", path.to_str().unwrap()]).unwrap_err().to_string();
            assert!(expect.iter().all(|x| e.contains(x)), "{yaml:?}: {e}");
        };
        check("ring_buffer_mib: 3\n", &["ring_buffer_mib", "bad.yaml", "power of two"]);
        check("max_connections: 2\n", &["max_connections", "bad.yaml"]);
        check("ports: [99999]\n", &["bad.yaml", "ports"]);
        check("metrics_addr: nowhere\n", &["bad.yaml", "metrics_addr"]);
        check("output: ''\n", &["bad.yaml", "output"]);
        check("kubernetes:\n  enabled: maybe\n", &["bad.yaml", "enabled"]);
        check("otlp:\n  endpoint: ftp://x\n", &["ftp://x"]);
        check("ring_bufer_mib: 4\n", &["bad.yaml", "unknown field", "ring_bufer_mib"]);
        std::fs::write(&path, "max_buffered_mib: 0\n").unwrap();
        assert!(super::check(&path).unwrap_err().to_string().contains("max_buffered_mib (in "));
        std::fs::write(&path, "max_buffered_mib: 1\n").unwrap();
        assert_eq!(super::check(&path), Ok(()));
        // A flag fixes what the file got wrong only where it gives the value.
        std::fs::write(&path, "ring_buffer_mib: 3\n").unwrap();
        assert!(args(&["--config", path.to_str().unwrap(), "--ring-buffer-mib", "4"]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every flag of `run` has a key in the file: adding a flag without one fails here.
    #[test]
    fn every_run_flag_has_a_config_key() {
        use clap::CommandFactory as _;
        let cli = Cli::command();
        let run = cli.find_subcommand("run").unwrap();
        // Flags whose key differs from the flag's name in snake case.
        let renamed: &[(&str, &str)] = &[
            ("port", "ports"),
            ("pid", "pids"),
            ("otlp", "otlp:\n  enabled"),
            ("otlp-endpoint", "otlp:\n  endpoint"),
            ("otlp-protocol", "otlp:\n  protocol"),
            ("otlp-header", "otlp:\n  headers"),
            ("otlp-compression", "otlp:\n  compression"),
            ("otlp-metrics-interval", "otlp:\n  metrics_interval_seconds"),
            ("service-name", "otlp:\n  service_name"),
        ];
        let mut checked = 0;
        for arg in run.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "config" | "help") {
                continue;
            }
            let key = renamed
                .iter()
                .find(|(f, _)| *f == long)
                .map_or_else(|| long.replace('-', "_"), |(_, k)| (*k).to_owned());
            let e = serde_norway::from_str::<ConfigFile>(&format!("{key}: ~\n")).err().map(|e| e.to_string());
            assert!(
                !e.as_deref().unwrap_or("").contains("unknown field"),
                "--{long} has no config key {key:?}: {e:?}"
            );
            checked += 1;
        }
        assert!(checked >= 18, "only {checked} flags seen");
    }

    #[test]
    fn garbage_flags_are_rejected() {
        assert!(Cli::try_parse_from(["apisense", "run", "--port", "notaport"]).is_err());
        assert!(Cli::try_parse_from(["apisense", "run", "--nope"]).is_err());
    }
}
