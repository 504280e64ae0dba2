//! The fleet benchmark's external mode (not a test):
//!
//!     cargo build --release -p charger-server
//!     TEST_DATABASE_URL=postgres://... cargo bench -p charger-e2e --bench scale_out
//!
//! In one run, with the same simulator load (`charger_firmware_sim::load`, real MQTT
//! clients, 128 chargers, one request in flight each, envelope v2), it measures:
//!
//! - the embedded broker on SQLite and on PostgreSQL (one process each);
//! - Debian's Mosquitto with dynamic security, in front of 1, 2 and 3 instances on one
//!   PostgreSQL (a fresh database each);
//!
//! each with `echo` (the broker round trip), `authorize` and `session-start` +
//! `session-stop` saturated, and `authorize` paced at 200/s (the latency of one request
//! without queueing: the external hop's cost per request is the difference of the p50s).
//! Every phase is bounded in time; every process is killed at the end.

use std::time::Duration;

use charger_e2e::cluster::{launch, server_command, Cluster, ClusterConfig, Mosquitto};
use charger_e2e::{Rest, TempDir};
use charger_firmware_sim::load::{self, LoadConfig, Mix, Op, Report};
use charger_protocol::FirmwareBundle;

const CHARGERS: usize = 128;
const PHASE: Duration = Duration::from_secs(6);
const PACED_RATE: f64 = 200.0;

/// One configuration's figures.
struct Row {
    name: String,
    echo: Report,
    authorize: Report,
    session: Report,
    paced: Report,
}

fn main() {
    if Mosquitto::start().is_none() || std::env::var("TEST_DATABASE_URL").is_err() {
        println!("scale_out benchmark: needs Debian's mosquitto and TEST_DATABASE_URL; skipped");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        let dir = TempDir::new();
        rows.push(embedded(&dir, "embedded, SQLite", None).await);
        let pg = charger_e2e::fresh_database(charger_e2e::Db::Postgres, &dir)
            .await
            .expect("postgres");
        rows.push(embedded(&dir, "embedded, PostgreSQL", Some(pg)).await);
        for n in 1..=3 {
            rows.push(external(n).await);
        }
        rows
    });
    println!(
        "\nsummary ({CHARGERS} chargers, {} s phases; requests per second, saturated)",
        PHASE.as_secs()
    );
    println!(
        "  {:<34} {:>9} {:>10} {:>9} {:>8} {:>8}   authorize at {PACED_RATE}/s p50 / p99",
        "configuration", "echo/s", "authorize", "session", "auth/echo", "sess/echo"
    );
    for r in &rows {
        println!(
            "  {:<34} {:>9.0} {:>10.0} {:>9.0} {:>8.2} {:>8.2}   {} us / {} us",
            r.name,
            r.echo.throughput,
            r.authorize.throughput,
            r.session.throughput,
            r.authorize.throughput / r.echo.throughput,
            r.session.throughput / r.echo.throughput,
            r.paced.latency.p50_us,
            r.paced.latency.p99_us,
        );
    }
    if let (Some(pg), Some(ext)) = (rows.get(1), rows.get(2)) {
        let hop = ext.paced.latency.p50_us as i64 - pg.paced.latency.p50_us as i64;
        println!(
            "\n  the external hop (Mosquitto + 1 instance vs embedded, both on PostgreSQL): \
             {hop} us per authorize at p50"
        );
    }
}

/// The embedded broker in its own process, on SQLite (None) or PostgreSQL.
async fn embedded(dir: &TempDir, name: &str, database: Option<String>) -> Row {
    let data = dir.0.join(name.replace([',', ' '], "_"));
    let url = database.unwrap_or_else(|| format!("sqlite://{}", data.join("charger.db").display()));
    let mut cmd = server_command(&data, &url);
    cmd.env("RUST_LOG", "warn,charger_server::app=info")
        .env("CHARGER_MQTT_ECHO", "true")
        // The chargers are load generators: no per-charger rate limit.
        .env("CHARGER_MQTT_RATE", "1000000")
        .env("CHARGER_MQTT_BURST", "1000000")
        .env("CHARGER_MQTT_MAX_PENDING_LOGINS", "100000")
        // Every load charger comes from 127.0.0.1: no per-source share, no login budget.
        .env("CHARGER_MQTT_MAX_PENDING_LOGINS_PER_SOURCE", "100000")
        .env("CHARGER_MQTT_LOGINS_PER_MINUTE", "1000000")
        .env("CHARGER_HTTP_MAX_CONNECTIONS_PER_SOURCE", "1000000");
    let (server, mqtt) = launch(cmd, name).await;
    let mqtt = mqtt.expect("the embedded broker's address");
    let (bundles, tags) = fleet(&server).await;
    measure(name, &mqtt.to_string(), &bundles, &tags).await
}

/// Mosquitto in front of `n` instances on one fresh PostgreSQL database.
async fn external(n: usize) -> Row {
    let c = Cluster::start(ClusterConfig {
        instances: n,
        env: vec![
            ("CHARGER_MQTT_ECHO".into(), "true".into()),
            ("RUST_LOG".into(), "warn,charger_server::app=info".into()),
            // The chargers are load generators: no per-charger rate limit (the instances
            // keep one behind the broker too).
            ("CHARGER_MQTT_RATE".into(), "1000000".into()),
            ("CHARGER_MQTT_BURST".into(), "1000000".into()),
        ],
        ..ClusterConfig::default()
    })
    .await
    .expect("cluster");
    let started = std::time::Instant::now();
    let (bundles, tags) = fleet(&c.instances[0]).await;
    if let Some(last) = bundles.last() {
        c.wait_for_account_within(&last.device_id, true, Duration::from_secs(300))
            .await;
    }
    println!(
        "{CHARGERS} chargers provisioned on Mosquitto's dynamic security in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let name = format!("Mosquitto + {n} instance(s), PostgreSQL");
    measure(&name, &c.mosquitto.addr().to_string(), &bundles, &tags).await
}

/// Provisions the chargers and one tag each (several sessions allowed).
async fn fleet(rest: &Rest) -> (Vec<FirmwareBundle>, Vec<String>) {
    let bundles = rest.provision("fleet", CHARGERS).await;
    let tags = rest.import_load_tags("fleet", CHARGERS).await;
    (bundles, tags)
}

async fn measure(name: &str, broker: &str, bundles: &[FirmwareBundle], tags: &[String]) -> Row {
    println!("\n== {name} (broker {broker})");
    let config = |op: Op, rate: Option<f64>| LoadConfig {
        broker: Some(broker.to_owned()),
        mix: Mix::only(op),
        rate,
        duration: PHASE,
        max_requests: None,
        tags: tags.to_vec(),
        connect_concurrency: CHARGERS,
        progress: false,
        envelope: charger_protocol::Version::V2,
    };
    let phase = |label: &'static str, config: LoadConfig| async move {
        let report = load::run(bundles, config).await.expect(label);
        println!(
            "{label:<16} {:>8.0}/s  p50 {:>6} us  p99 {:>7} us  errors {:?}",
            report.throughput, report.latency.p50_us, report.latency.p99_us, report.errors
        );
        report
    };
    Row {
        name: name.to_owned(),
        echo: phase("echo", config(Op::Echo, None)).await,
        authorize: phase("authorize", config(Op::Authorize, None)).await,
        session: phase("session", config(Op::Session, None)).await,
        paced: phase("authorize paced", config(Op::Authorize, Some(PACED_RATE))).await,
    }
}
