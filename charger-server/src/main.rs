//! `charger-server`: parse the settings, start logging, run.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use charger_server::config::{Cli, Command, ProvisionArgs};
use charger_server::devices::BulkCreateDevicesRequest;
use charger_server::ids::OwnerId;
use charger_server::owners::CreateOwnerRequest;
use charger_server::service::{Principal, Service};
use charger_server::{app, telemetry, App, Config};
use clap::Parser as _;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_with(cli.config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None | Some(Command::Serve) => serve(cli.config).await,
            Some(Command::Provision(args)) => provision(cli.config, args).await,
            Some(Command::RotateAdminToken) => rotate_admin_token(cli.config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line that names the setting to change.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::start(config).await?;
    if let Some(token) = &app.new_admin_token {
        print_admin_token(token.expose());
    }
    let http_addr = app.http_addr;
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            r.context("cannot listen for Ctrl-C")?;
            tracing::info!(%http_addr, "shutting down");
        }
        r = app.wait() => return r,
    }
    Ok(())
}

/// The one place a secret is printed: the generated admin token, to stdout, once.
fn print_admin_token(token: &str) {
    println!("Admin token (shown once; keep it safe, or set CHARGER_ADMIN_TOKEN):");
    println!("{token}");
}

async fn rotate_admin_token(config: Config) -> anyhow::Result<()> {
    let service = app::open_service(&config).await?;
    let token = service.issue_admin_token(true).await?;
    print_admin_token(token.expose());
    Ok(())
}

async fn provision(config: Config, args: ProvisionArgs) -> anyhow::Result<()> {
    let service: Service = app::open_service(&config).await?;
    let owner = OwnerId::parse(&args.owner).context("--owner")?;
    if service.get_owner(&Principal::Admin, &owner).await.is_err() {
        service
            .create_owner(
                &Principal::Admin,
                CreateOwnerRequest {
                    id: owner.clone(),
                    name: owner.to_string(),
                },
            )
            .await
            .context("creating the owner")?;
    }
    let bundles = service
        .create_devices_bulk(
            &Principal::Admin,
            BulkCreateDevicesRequest {
                owner: Some(owner.clone()),
                prefix: args.prefix.unwrap_or_else(|| format!("{owner}-")),
                count: args.count,
                connectors: args.connectors,
                max_power_w: args.max_power_w,
                start: args.start,
                protocol: Some(args.protocol),
            },
        )
        .await
        .context("provisioning")?;
    let mut out: Box<dyn std::io::Write> = if args.out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(private_file(&args.out).with_context(|| format!("--out {}", args.out.display()))?)
    };
    let mut buf = std::io::BufWriter::new(&mut out);
    for bundle in &bundles {
        serde_json::to_writer(&mut buf, bundle)?;
        buf.write_all(b"\n")?;
    }
    buf.flush()?;
    drop(buf);
    tracing::info!(count = bundles.len(), owner = %owner, out = %args.out.display(), "bundles written");
    Ok(())
}

/// Bundles hold passwords and keys: the file is readable by its owner only.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}
