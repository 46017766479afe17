//! Command line -> validated configuration, before anything starts.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use thiserror::Error;

use crate::capture::enrich::Filter;

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
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where to write exchanges as JSON Lines: a file path (created 0600, appended), or `-` for
    /// stdout (the default).
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub output: String,

    /// Only report connections with this local or remote port (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// Only report connections of this process id (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Kernel ring buffer size in MiB (power of two). Larger absorbs bigger bursts.
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    pub ring_buffer_mib: u32,

    /// Body bytes kept per message for inspection; sizes are always reported exactly.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,

    /// Connections tracked at once, in the kernel and in the agent.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub max_connections: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub output: Output,
    pub filter: Filter,
    pub ring_buffer_bytes: u32,
    pub max_body_bytes: usize,
    pub max_connections: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--ring-buffer-mib: {0} is not a power of two between 1 and 1024")]
    RingBuffer(u32),
    #[error("--max-connections: {0} is outside 16..=1048576")]
    MaxConnections(u32),
    #[error("--max-body-bytes: {0} is above 16777216")]
    MaxBody(usize),
    #[error("--output: empty path")]
    EmptyOutput,
}

impl TryFrom<RunArgs> for RunConfig {
    type Error = ConfigError;

    fn try_from(args: RunArgs) -> Result<Self, ConfigError> {
        if !args.ring_buffer_mib.is_power_of_two() || args.ring_buffer_mib > 1024 {
            return Err(ConfigError::RingBuffer(args.ring_buffer_mib));
        }
        if !(16..=1 << 20).contains(&args.max_connections) {
            return Err(ConfigError::MaxConnections(args.max_connections));
        }
        if args.max_body_bytes > 16 << 20 {
            return Err(ConfigError::MaxBody(args.max_body_bytes));
        }
        let output = match args.output.as_str() {
            "-" => Output::Stdout,
            "" => return Err(ConfigError::EmptyOutput),
            path => Output::File(PathBuf::from(path)),
        };
        Ok(RunConfig {
            output,
            filter: Filter {
                pids: args.pids,
                ports: args.ports,
            },
            ring_buffer_bytes: args.ring_buffer_mib << 20,
            max_body_bytes: args.max_body_bytes,
            max_connections: args.max_connections,
        })
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
        let Command::Run(run) = Cli::try_parse_from(argv).unwrap().command;
        RunConfig::try_from(run)
    }

    #[test]
    fn defaults_are_valid() {
        let c = args(&[]).unwrap();
        assert_eq!(c.output, Output::Stdout);
        assert_eq!(c.ring_buffer_bytes, 16 << 20);
    }

    #[test]
    fn bad_values_name_the_flag() {
        assert_eq!(
            args(&["--ring-buffer-mib", "3"]).unwrap_err(),
            ConfigError::RingBuffer(3)
        );
        assert!(
            args(&["--max-connections", "1"])
                .unwrap_err()
                .to_string()
                .contains("--max-connections")
        );
        assert_eq!(args(&["--output", ""]).unwrap_err(), ConfigError::EmptyOutput);
    }

    #[test]
    fn filters_and_file_output() {
        let c = args(&[
            "--port",
            "80",
            "--port",
            "8080",
            "--pid",
            "7",
            "-o",
            "/tmp/x.jsonl",
        ])
        .unwrap();
        assert_eq!(c.filter.ports, vec![80, 8080]);
        assert_eq!(c.filter.pids, vec![7]);
        assert_eq!(c.output, Output::File("/tmp/x.jsonl".into()));
    }

    #[test]
    fn garbage_flags_are_rejected() {
        assert!(Cli::try_parse_from(["apisense", "run", "--port", "notaport"]).is_err());
        assert!(Cli::try_parse_from(["apisense", "run", "--nope"]).is_err());
    }
}
