//! `apisense`: an eBPF sensor that reports the HTTP API traffic of the host it runs on.
mod capture;
mod config;
mod detect;
mod export;
mod http;
mod pipeline;
mod reassembly;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = config::Cli::parse();
    config::init_logging(&cli);
    let result = match cli.command {
        config::Command::Run(args) => config::RunConfig::try_from(args)
            .map_err(anyhow::Error::from)
            .and_then(pipeline::run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
