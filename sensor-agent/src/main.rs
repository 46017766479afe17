//! `apisense`: an eBPF sensor that reports the HTTP API traffic of the host it runs on.
use std::process::ExitCode;

use clap::Parser as _;
use sensor_agent::{config, pipeline};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config::Cli { log, command } = config::Cli::parse();
    // Logging starts once the config file (which may set the filter) is read; a config error is
    // logged at the default level.
    let start_logging = |from_file: Option<&str>| config::init_logging(log.as_deref(), from_file);
    let run = |c: Result<config::RunConfig, config::ConfigError>| match c {
        Ok(c) => {
            start_logging(c.log.as_deref());
            pipeline::run(c)
        }
        Err(e) => {
            start_logging(None);
            Err(e.into())
        }
    };
    let result = match command {
        config::Command::Run(args) => run(config::RunConfig::try_from(args)),
        config::Command::Record(args) => run(config::RunConfig::try_from(args)),
        config::Command::Replay(args) => match config::ReplayConfig::try_from(args) {
            Ok(c) => {
                start_logging(c.log.as_deref());
                pipeline::replay(&c)
            }
            Err(e) => {
                start_logging(None);
                Err(e.into())
            }
        },
        config::Command::Inventory(args) => {
            start_logging(None);
            print_inventory(&args)
        }
        config::Command::Report(args) => {
            start_logging(None);
            write_report(&args)
        }
        config::Command::Status(args) => {
            start_logging(None);
            print_status(&args)
        }
        config::Command::Config(config::ConfigCommand::Check { file }) => {
            start_logging(None);
            check_config(&file)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `config check`: the file's values, then its specs (loaded and bound as `run` would, when
/// they are readable here: a file checked off the node may name paths that exist only there).
fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    use sensor_agent::detect::specs;
    let c = config::checked(file)?;
    let detect = &c.analysis.detect;
    let missing: Vec<String> =
        detect.openapi.iter().filter(|p| !p.exists()).map(|p| p.display().to_string()).collect();
    if missing.is_empty() {
        let (loaded, report) = specs::load(detect)?;
        if !detect.openapi.is_empty() {
            println!("OpenAPI: {} operations from {} file(s)", report.operations, report.files.len());
        }
        for line in specs::describe(&loaded).iter().chain(report.skipped.iter()) {
            println!("  {line}");
        }
    } else {
        println!("OpenAPI: not found here, specs not checked: {}", missing.join(", "));
    }
    println!("{}: ok", file.display());
    Ok(())
}

fn print_inventory(args: &config::InventoryArgs) -> anyhow::Result<()> {
    use sensor_agent::detect::{analytics, inventory, load_entries, load_security};
    let entries = load_entries(&args.state_dir)?;
    let text = match args.format {
        config::InventoryFormat::Table => {
            let security = load_security(&args.state_dir)?;
            inventory::render_table(&entries) + &analytics::render_table(&security)
        }
        config::InventoryFormat::Json => {
            let security = load_security(&args.state_dir)?;
            let endpoints: serde_json::Value = serde_json::from_str(&inventory::render_json(&entries))?;
            serde_json::to_string_pretty(&serde_json::json!({
                "endpoints": endpoints,
                "findings": security.findings,
                "clients": security.clients,
            }))?
        }
        config::InventoryFormat::Openapi => {
            serde_json::to_string_pretty(&inventory::render_openapi(&entries))?
        }
    };
    println!("{text}");
    Ok(())
}

fn print_status(args: &config::StatusArgs) -> anyhow::Result<()> {
    use sensor_agent::capture::visibility::{self, TlsVisibility};
    let processes = visibility::Scanner::default().scan();
    let ktls = visibility::ktls_sessions();
    let privileges = sensor_agent::capture::privileges::Privileges::current();
    match args.format {
        config::StatusFormat::Json => {
            let doc = serde_json::json!({ "processes": processes, "ktls_sessions": ktls, "privileges": privileges });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        config::StatusFormat::Table => {
            print!("{}", visibility::render_table(&processes));
            let blind =
                processes.iter().filter(|p| matches!(p.tls, TlsVisibility::NotDecrypted { .. })).count();
            println!(
                "\n{} processes with TCP sockets, {blind} with TLS the sensor cannot decrypt",
                processes.len()
            );
            if let Some(n) = ktls.filter(|n| *n > 0) {
                println!("kernel TLS (kTLS) sessions on this host: {n}, not visible to the sensor");
            }
            println!("{}", privileges.summary());
        }
    }
    Ok(())
}

fn write_report(args: &config::ReportArgs) -> anyhow::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};

    use anyhow::Context as _;
    use sensor_agent::detect::{analytics, inventory, load_entries, load_security};
    let entries = load_entries(&args.state_dir)?;
    let security = load_security(&args.state_dir)?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let page = inventory::render_html_with(
        &entries,
        &format!("apisense inventory: {}", host.trim()),
        &analytics::render_html(&security),
    );
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
