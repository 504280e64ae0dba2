//! `charger-firmware-sim`: command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// MyBox charger simulator.
#[derive(Debug, Parser)]
#[command(name = "charger-firmware-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a firmware bundle file (JSON lines) and summarize it.
    Inspect {
        /// The file `charger-server provision` wrote.
        bundles: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { bundles } => std::fs::File::open(&bundles)
            .with_context(|| format!("{}", bundles.display()))
            .and_then(|f| charger_firmware_sim::read_bundles(std::io::BufReader::new(f)))
            .map(|b| print!("{}", charger_firmware_sim::summarize(&b))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
