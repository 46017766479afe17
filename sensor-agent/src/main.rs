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
        config::Command::Inventory(args) => print_inventory(&args),
        config::Command::Report(args) => write_report(&args),
        config::Command::Config(config::ConfigCommand::Check { file }) => config::ConfigFile::load(&file)
            .map(|_| println!("{}: ok", file.display()))
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_inventory(args: &config::InventoryArgs) -> anyhow::Result<()> {
    use sensor_agent::detect::{inventory, load_entries};
    let entries = load_entries(&args.state_dir)?;
    let text = match args.format {
        config::InventoryFormat::Table => inventory::render_table(&entries),
        config::InventoryFormat::Json => inventory::render_json(&entries),
        config::InventoryFormat::Openapi => {
            serde_json::to_string_pretty(&inventory::render_openapi(&entries))?
        }
    };
    println!("{text}");
    Ok(())
}

fn write_report(args: &config::ReportArgs) -> anyhow::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};

    use anyhow::Context as _;
    use sensor_agent::detect::{inventory, load_entries};
    let entries = load_entries(&args.state_dir)?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let page = inventory::render_html(&entries, &format!("apisense inventory: {}", host.trim()));
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&args.html)
        .and_then(|mut f| f.write_all(page.as_bytes()))
        .with_context(|| format!("writing {}", args.html.display()))?;
    log::info!("report written to {} ({} endpoints)", args.html.display(), entries.len());
    Ok(())
}
