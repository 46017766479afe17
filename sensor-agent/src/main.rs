//! `apisense`: an eBPF sensor that reports the HTTP API traffic of the host it runs on.
use std::process::ExitCode;

use clap::Parser as _;
use sensor_agent::{config, pipeline};

fn main() -> ExitCode {
    let cli = config::Cli::parse();
    config::init_logging(&cli);
    let result = match cli.command {
        config::Command::Run(args) => {
            config::RunConfig::try_from(args).map_err(anyhow::Error::from).and_then(pipeline::run)
        }
        config::Command::Record(args) => {
            config::RunConfig::try_from(args).map_err(anyhow::Error::from).and_then(pipeline::run)
        }
        config::Command::Replay(args) => config::ReplayConfig::try_from(args)
            .map_err(anyhow::Error::from)
            .and_then(|c| pipeline::replay(&c)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
