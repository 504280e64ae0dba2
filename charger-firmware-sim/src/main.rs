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
    /// Play one charger, step by step, from a script file or from standard input
    /// (interactive: type `online`, `tap 04A1B2C3`, `plug`, `charge 2s 11000`, `unplug`, ...).
    Run {
        /// The bundle file.
        #[arg(long)]
        bundles: PathBuf,
        /// Which charger of the file (default: the first).
        #[arg(long)]
        device: Option<String>,
        /// Broker address, instead of the bundle's host and port.
        #[arg(long)]
        broker: Option<String>,
        /// Simulated seconds of energy flow per real second.
        #[arg(long, default_value_t = 60.0)]
        scale: f64,
        /// The envelope: v2 (sealed requests, no key on the wire) or v1.
        #[arg(long, value_enum, default_value_t = Envelope::V2)]
        envelope: Envelope,
        /// The charger's protocol: mybox (MQTT) or ocpp (also ocpp1.6, ocpp2.0.1: the bundle
        /// file then holds OCPP credentials, the charger speaks 1.6, and --server names the
        /// server).
        #[arg(long, value_enum, default_value_t = Protocol::Mybox)]
        protocol: Protocol,
        /// OCPP: the server's WebSocket address, e.g. ws://127.0.0.1:8080.
        #[arg(long)]
        server: Option<String>,
        /// The script; `-` or none reads standard input.
        script: Option<PathBuf>,
    },
    /// Play many chargers at once: a request mix at a target rate, with live progress and
    /// a report (throughput, latency percentiles, errors by code, reconnects).
    Load {
        /// The bundle file.
        #[arg(long)]
        bundles: PathBuf,
        /// How many chargers of the file (default: all of them).
        #[arg(long)]
        chargers: Option<usize>,
        /// Broker address, instead of the bundles' host and port.
        #[arg(long)]
        broker: Option<String>,
        /// Weighted mix of echo, authorize, session (start + stop), status, boot.
        #[arg(long, default_value = "authorize")]
        mix: charger_firmware_sim::load::Mix,
        /// Requests per second for the whole fleet (default: as fast as they go, one
        /// request in flight per charger).
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds of load (after all chargers connected).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Stop after this many requests.
        #[arg(long)]
        requests: Option<u64>,
        /// Tag uids for authorize and session, one per line; charger i uses line i mod n.
        #[arg(long)]
        tags: Option<PathBuf>,
        /// Chargers connecting at the same time.
        #[arg(long, default_value_t = 512)]
        connect_concurrency: usize,
        /// Print the report as JSON on standard output (progress still goes to stderr).
        #[arg(long)]
        json: bool,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
        /// The envelope: v2 (sealed requests, no key on the wire) or v1.
        #[arg(long, value_enum, default_value_t = Envelope::V2)]
        envelope: Envelope,
        /// The chargers' protocol: mybox (MQTT) or ocpp (also ocpp1.6, ocpp2.0.1: the bundle
        /// file then holds OCPP credentials, each charger offers its bundle's subprotocol,
        /// and --server names the server).
        #[arg(long, value_enum, default_value_t = Protocol::Mybox)]
        protocol: Protocol,
        /// OCPP: the server's WebSocket address, e.g. ws://127.0.0.1:8080.
        #[arg(long)]
        server: Option<String>,
    },
}

/// The protocol chargers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Protocol {
    Mybox,
    /// OCPP: each charger offers its bundle's subprotocol (ocpp1.6 or ocpp2.0.1) in load
    /// runs; `run` plays 1.6 (a 2.0.1 station may negotiate it).
    #[value(name = "ocpp", alias = "ocpp1.6", alias = "ocpp2.0.1")]
    Ocpp,
}

/// The envelope version, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Envelope {
    V1,
    V2,
}

impl From<Envelope> for charger_protocol::Version {
    fn from(e: Envelope) -> Self {
        match e {
            Envelope::V1 => charger_protocol::Version::V1,
            Envelope::V2 => charger_protocol::Version::V2,
        }
    }
}

fn load_bundles(path: &PathBuf) -> anyhow::Result<Vec<charger_protocol::FirmwareBundle>> {
    std::fs::File::open(path)
        .with_context(|| format!("{}", path.display()))
        .and_then(|f| charger_firmware_sim::read_bundles(std::io::BufReader::new(f)))
}

fn load_ocpp_bundles(
    path: &PathBuf,
) -> anyhow::Result<Vec<charger_firmware_sim::ocpp::OcppBundle>> {
    std::fs::File::open(path)
        .with_context(|| format!("{}", path.display()))
        .and_then(|f| charger_firmware_sim::ocpp::read_ocpp_bundles(std::io::BufReader::new(f)))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { bundles } => {
            load_bundles(&bundles).map(|b| print!("{}", charger_firmware_sim::summarize(&b)))
        }
        Command::Run {
            bundles,
            device,
            broker,
            scale,
            envelope,
            protocol: Protocol::Mybox,
            script,
            ..
        } => run(&bundles, device, broker, scale, envelope.into(), script),
        Command::Run {
            bundles,
            device,
            scale,
            server,
            script,
            ..
        } => run_ocpp(&bundles, device, server, scale, script),
        Command::Load {
            bundles,
            chargers,
            broker,
            mix,
            rate,
            duration,
            requests,
            tags,
            connect_concurrency,
            json,
            quiet,
            envelope,
            protocol,
            server,
        } => (|| {
            let (mut mybox, mut ocpp) = match protocol {
                Protocol::Mybox => (load_bundles(&bundles)?, Vec::new()),
                Protocol::Ocpp => (Vec::new(), load_ocpp_bundles(&bundles)?),
            };
            let count = mybox.len().max(ocpp.len());
            if let Some(n) = chargers {
                if n == 0 || n > count {
                    anyhow::bail!("--chargers must be 1 to {count} (the file's count)");
                }
                mybox.truncate(n);
                ocpp.truncate(n);
            }
            if !(duration > 0.0 && duration <= 86_400.0) {
                anyhow::bail!("--duration must be more than 0 and at most 86400 seconds");
            }
            if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                anyhow::bail!("--rate must be a positive number");
            }
            let tags = match tags {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("{}", path.display()))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
                None => Vec::new(),
            };
            let config = charger_firmware_sim::load::LoadConfig {
                broker: match protocol {
                    Protocol::Mybox => broker,
                    Protocol::Ocpp => server,
                },
                mix,
                rate,
                duration: std::time::Duration::from_secs_f64(duration),
                max_requests: requests,
                tags,
                connect_concurrency: connect_concurrency.max(1),
                progress: !quiet,
                envelope: envelope.into(),
            };
            let rt = tokio::runtime::Runtime::new()?;
            let report = match protocol {
                Protocol::Mybox => rt.block_on(charger_firmware_sim::load::run(&mybox, config))?,
                Protocol::Ocpp => {
                    rt.block_on(charger_firmware_sim::load::run_ocpp(&ocpp, config))?
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(
    bundles: &PathBuf,
    device: Option<String>,
    broker: Option<String>,
    scale: f64,
    envelope: charger_protocol::Version,
    script: Option<PathBuf>,
) -> anyhow::Result<()> {
    let bundle = pick(load_bundles(bundles)?, device.as_deref(), |b| &b.device_id)?;
    let lines = script_lines(script.as_ref())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let mut charger = charger_firmware_sim::charger::Charger::new(bundle, broker);
        charger.time_scale = scale;
        charger.envelope = envelope;
        charger.echo = true;
        for (n, step) in steps(lines) {
            if let Err(e) = charger_firmware_sim::script::run_step(&mut charger, &step).await {
                eprintln!("line {n}: {e:#}");
            }
        }
        anyhow::Ok(())
    })
}

/// `run --protocol ocpp`: one OCPP charger, step by step.
fn run_ocpp(
    bundles: &PathBuf,
    device: Option<String>,
    server: Option<String>,
    scale: f64,
    script: Option<PathBuf>,
) -> anyhow::Result<()> {
    let server = server.ok_or_else(|| {
        anyhow::anyhow!("an OCPP charger needs the server's address: --server ws://host:port")
    })?;
    let bundle = pick(load_ocpp_bundles(bundles)?, device.as_deref(), |b| {
        &b.device_id
    })?;
    let lines = script_lines(script.as_ref())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let mut charger = charger_firmware_sim::ocpp::OcppCharger::new(bundle, server);
        charger.time_scale = scale;
        charger.echo = true;
        for (n, step) in steps(lines) {
            if let Err(e) = charger_firmware_sim::script::run_ocpp_step(&mut charger, &step).await {
                eprintln!("line {n}: {e:#}");
            }
        }
        anyhow::Ok(())
    })
}

/// The bundle of `device`, or the file's first.
fn pick<B>(bundles: Vec<B>, device: Option<&str>, id: impl Fn(&B) -> &String) -> anyhow::Result<B> {
    match device {
        Some(d) => bundles
            .into_iter()
            .find(|b| id(b) == d)
            .ok_or_else(|| anyhow::anyhow!("no charger {d} in the bundle file")),
        None => bundles
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no bundles")),
    }
}

/// The script's lines: its file, or standard input for `-` or none.
fn script_lines(script: Option<&PathBuf>) -> anyhow::Result<Box<dyn std::io::BufRead>> {
    Ok(match script {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("{}", p.display()))?,
        )),
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    })
}

/// The script's steps as they are read, with their line numbers; a line that is no step
/// is reported and skipped, and reading stops at the end or at a read error.
fn steps(
    lines: Box<dyn std::io::BufRead>,
) -> impl Iterator<Item = (usize, charger_firmware_sim::script::Step)> {
    std::io::BufRead::lines(lines)
        .map_while(|line| {
            line.map_err(|e| eprintln!("the script cannot be read: {e}"))
                .ok()
        })
        .enumerate()
        .filter_map(
            |(n, line)| match charger_firmware_sim::script::parse_step(&line) {
                Ok(step) => step.map(|s| (n + 1, s)),
                Err(e) => {
                    eprintln!("line {}: {e:#}", n + 1);
                    None
                }
            },
        )
}
