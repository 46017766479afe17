//! Developer and CI helpers: `cargo xtask setup | run | test`.
//!
//! `setup` makes a fresh machine able to build and run the sensor; `run` and `test` call it first,
//! so a new user needs only those two commands.
mod bench;
mod fuzz;
mod setup;

use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and running needs: nightly rust-src, a bpf-linker matching the
    /// nightly's LLVM, tracefs/bpffs mounts. Idempotent.
    Setup,
    /// Build the agent (release) and run `apisense run` with the given arguments (needs root).
    Run {
        /// Arguments passed to `apisense run`, after `--` (e.g. `-- --port 8080 -o out.jsonl`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks (all, or the parts named) and rewrite their sections of BENCHMARKS.md.
    Bench {
        /// Parts to run (default: all).
        parts: Vec<String>,
        /// Short runs, for trying the harness: results are printed, BENCHMARKS.md is left alone
        /// (also `APISENSE_BENCH_QUICK=1`).
        #[arg(long)]
        quick: bool,
    },
    /// Run every cargo-fuzz target for a bounded time (nightly; seeds from ../shared/testdata).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// Set up, then run every test: unit tests and the privileged end-to-end tests that load
    /// the real eBPF programs against real servers (needs root, nginx, curl, python3).
    Test {
        /// Extra arguments for `cargo test` after `--` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Task::Setup => setup::run(setup::Purpose::Run),
        Task::Run { args } => {
            setup::run(setup::Purpose::Run)?;
            cargo(&["build", "--release", "--package", "sensor-agent"])?;
            let bin = setup::workspace_root()?.join("target/release/apisense");
            let status = Command::new(&bin)
                .arg("run")
                .args(&args)
                .status()
                .with_context(|| format!("starting {}", bin.display()))?;
            if !status.success() {
                bail!("apisense exited with {status}");
            }
            Ok(())
        }
        Task::Bench { parts, quick } => {
            setup::run(setup::Purpose::Bench)?;
            bench::run(&parts, quick)
        }
        Task::Fuzz { seconds, target } => {
            setup::run(setup::Purpose::Run)?;
            fuzz::run(seconds, target.as_deref())
        }
        Task::Test { args } => {
            setup::run(setup::Purpose::Test)?;
            cargo(&["build", "--package", "sensor-agent"])?;
            let root = setup::workspace_root()?;
            let mut cmd = Command::new(env!("CARGO"));
            cmd.current_dir(&root)
                .args(["test", "--workspace", "--exclude", "sensor-ebpf", "--"])
                .args(&args)
                .env("APISENSE_BIN", target_dir(&root).join("debug/apisense"))
                // The end-to-end tests fail instead of skipping when they cannot load probes.
                .env("APISENSE_E2E", "1");
            let status = cmd.status().context("running cargo test")?;
            if !status.success() {
                bail!("tests failed ({status})");
            }
            Ok(())
        }
    }
}

/// Where cargo builds: `CARGO_TARGET_DIR` (relative to the workspace root) or `target/`.
fn target_dir(root: &std::path::Path) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d))
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO"))
        .current_dir(setup::workspace_root()?)
        .args(args)
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}
