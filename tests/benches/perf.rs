//! The performance table (not a test): every row of the round 2 targets, in one run.
//!
//!     cargo build --release -p charger-server
//!     TEST_DATABASE_URL=postgres://... cargo bench -p charger-e2e --bench perf
//!
//! Everything runs on this machine, on free loopback ports, with the simulator's load mode
//! (`charger_firmware_sim::load`: real MQTT clients, one request in flight per charger,
//! envelope v2) and Debian's Mosquitto (`/usr/sbin/mosquitto`). Every figure is a ratio
//! against a baseline measured in the same run:
//!
//! 1. the embedded broker on SQLite (release `charger-server`, `echo` on, the per-charger
//!    rate limit lifted: the chargers are load generators): `echo`, `authorize` and
//!    `session-start` + `session-stop` saturated; `authorize` and `echo` paced at 10 % of
//!    their saturated rates (p99 ratio); 10,000 idle chargers (resident memory per
//!    charger); all of them reconnecting at once, against the same storm on Mosquitto;
//!    Beside them, OCPP 1.6J chargers on the same server (`Authorize` and whole
//!    transactions saturated, as ratios of the MQTT figures), and 5,000 idle OCPP chargers
//!    on a server of their own (resident memory per charger);
//! 2. Mosquitto's bare echo: the same clients against Mosquitto, answered by a rumqttc
//!    responder in its own process (this benchmark started again as the responder);
//! 3. a victim's `status` p99 while another charger floods, against its p99 alone, on a
//!    server with the default rate limit;
//! 4. with TEST_DATABASE_URL: the figures of (1) on PostgreSQL with one instance (embedded
//!    broker) and with three instances behind Mosquitto (dynamic security).
//!
//! It ends with the table: target, figure, met or missed. Every phase is bounded in count
//! and time; every process is killed at the end.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use charger_e2e::cluster::{free_port, launch, server_command, Cluster, ClusterConfig, Instance};
use charger_e2e::TempDir;
use charger_firmware_sim::link::Link;
use charger_firmware_sim::load::{self, LoadConfig, Mix, Op, Report};
use charger_firmware_sim::ocpp as load_ocpp;
use charger_protocol::FirmwareBundle;

/// Chargers connected for the idle-memory and storm phases.
const FLEET: usize = 10_000;
/// OCPP chargers connected for the idle-memory phase.
const OCPP_FLEET: usize = 5_000;
/// Chargers playing the load phases (one request in flight each).
const LOAD_CHARGERS: usize = 256;
/// Each load phase.
const PHASE: Duration = Duration::from_secs(8);
/// Connecting or reconnecting the fleet.
const CONNECT_LIMIT: Duration = Duration::from_secs(120);
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// The victim's requests, paced at 10 a second (half its own rate limit).
const VICTIM_REQUESTS: usize = 200;
const VICTIM_PACE: Duration = Duration::from_millis(100);
/// Set in the environment of this benchmark started again as Mosquitto's echo responder.
const RESPONDER_ENV: &str = "PERF_ECHO_RESPONDER";

/// One row of the table.
struct Row {
    what: String,
    figure: String,
    target: &'static str,
    met: Option<bool>,
}

fn row(what: impl Into<String>, figure: String, target: &'static str, met: Option<bool>) -> Row {
    Row {
        what: what.into(),
        figure,
        target,
        met,
    }
}

/// The saturated and paced figures of one configuration.
struct Load {
    echo: Report,
    authorize: Report,
    session: Report,
    paced_authorize: Report,
    paced_echo: Report,
}

fn main() {
    if let Ok(broker) = std::env::var(RESPONDER_ENV) {
        responder(&broker);
        return;
    }
    if !Path::new(MOSQUITTO).exists() {
        println!("perf benchmark: needs Debian's mosquitto ({MOSQUITTO}); not run");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        let dir = TempDir::new();
        rows.push(fsync_row(&dir));
        rows.push(allocator_row());
        let only = std::env::var("PERF_ONLY").unwrap_or_default();
        if only == "postgres" {
            // The PostgreSQL rows alone.
            postgres(&dir, &mut rows).await;
            return rows;
        }
        sqlite(&dir, &mut rows).await;
        if only == "sqlite" {
            return rows;
        }
        victim_row(&dir, &mut rows).await;
        postgres(&dir, &mut rows).await;
        rows
    });
    println!("\nsummary (one run; {LOAD_CHARGERS} chargers in the load phases, {FLEET} idle)");
    for r in &rows {
        let verdict = match r.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "  {:<72} {:<30} {:<9} {verdict}",
            r.what, r.figure, r.target
        );
    }
}

/// The site allocator's time for a site of 1,000 chargers with a session each (issue 24):
/// the median of 50 runs, against 10 ms (it runs on every start and stop, and on a tick).
fn allocator_row() -> Row {
    use charger_server::sites::allocator::{allocate, bench_site};
    let site = bench_site(1_000);
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            let t = std::time::Instant::now();
            std::hint::black_box(allocate(&site));
            t.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "\n== site allocator: 1,000 chargers, median {:.2} ms, worst {:.2} ms",
        median.as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    row(
        "site allocator, 1,000 chargers with a session each (median of 50)",
        format!("{:.2} ms", median.as_secs_f64() * 1e3),
        "<= 10 ms",
        Some(median <= Duration::from_millis(10)),
    )
}

/// Section 1 and 2: the embedded broker on SQLite, and Mosquitto beside it.
async fn sqlite(dir: &TempDir, rows: &mut Vec<Row>) {
    let data = dir.0.join("sqlite");
    let url = format!("sqlite://{}", data.join("charger.db").display());
    let server = embedded(&data, &url, "embedded, SQLite").await;
    let broker = server.1.to_string();
    let bundles = server.0.provision("fleet", FLEET).await;
    let tags = server.0.import_load_tags("fleet", LOAD_CHARGERS).await;
    let players = &bundles[..LOAD_CHARGERS];
    let l = measure("embedded, SQLite", &broker, players, &tags).await;
    load_rows("SQLite, 1 instance", &l, rows);
    if std::env::var("PERF_ONLY").is_ok_and(|v| v == "sqlite") {
        // The SQLite load rows only (a quick look while working on the durable path).
        return;
    }
    ocpp_load(&server.0, &tags, &l, rows).await;

    // Idle chargers. Let the server settle first: idle runtime threads exit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = server.0.pid();
    let before = rss_kib(pid);
    let (links, took) = load::connect_all(&bundles, Some(&broker), 512, CONNECT_LIMIT).await;
    let connected = links.iter().filter(|l| l.is_some()).count();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = rss_kib(pid);
    let per = after.saturating_sub(before) as f64 * 1024.0 / connected.max(1) as f64;
    println!(
        "\nidle chargers: {connected} connected in {:.2} s; server RSS {before} KiB -> {after} KiB: \
         {per:.0} bytes per idle charger",
        took.as_secs_f64()
    );
    rows.push(row(
        format!("server memory per idle charger at {FLEET} (RSS growth)"),
        format!("{:.1} KB", per / 1000.0),
        "<= 10 KB",
        Some(connected == FLEET && per <= 10_000.0),
    ));

    // The storm: every connection drops at once, every charger reconnects at once.
    let ours = storm("charger-server", &bundles, &broker, links).await;
    drop(server);
    let mosquitto = PlainMosquitto::start(dir);
    let address = mosquitto.address.to_string();
    let (warm, _) = load::connect_all(&bundles, Some(&address), 512, CONNECT_LIMIT).await;
    let theirs = storm("mosquitto", &bundles, &address, warm).await;
    let storm_row = match (ours, theirs) {
        (Some(o), Some(t)) => {
            let r = o.as_secs_f64() / t.as_secs_f64();
            row(
                "reconnect storm / Mosquitto's",
                format!(
                    "{r:.2} ({:.2} s vs {:.2} s)",
                    o.as_secs_f64(),
                    t.as_secs_f64()
                ),
                "<= 1",
                Some(r <= 1.0),
            )
        }
        _ => row(
            "reconnect storm / Mosquitto's",
            "not every charger came back".into(),
            "<= 1",
            Some(false),
        ),
    };
    rows.push(storm_row);
    ocpp_idle(dir, rows).await;

    // Mosquitto's bare echo: the same clients, a rumqttc responder in its own process.
    let responder = Responder::start(mosquitto.address);
    let echo = phase(
        "Mosquitto bare echo, saturated",
        players,
        config(&address, &tags, Op::Echo, None),
    )
    .await;
    drop(responder);
    drop(mosquitto);
    let r = l.authorize.throughput / echo.throughput;
    rows.push(row(
        "authorize (durable path) / Mosquitto's bare echo",
        format!(
            "{r:.2} ({:.0}/s vs {:.0}/s)",
            l.authorize.throughput, echo.throughput
        ),
        ">= 1.0",
        Some(r >= 1.0),
    ));
}

/// OCPP chargers provisioned in the benchmark's owner.
async fn provision_ocpp(
    server: &Instance,
    count: usize,
    protocol: &str,
) -> Vec<load_ocpp::OcppBundle> {
    let prefix = if protocol == "ocpp1.6" {
        "ocpp-"
    } else {
        "ocpp201-"
    };
    charger_e2e::ocpp::bulk_bundles(&server.rest, "fleet", prefix, count, protocol).await
}

/// OCPP 1.6J and 2.0.1 beside MQTT on the same server in the same run: `Authorize` and
/// whole transactions (1.6: StartTransaction + StopTransaction; 2.0.1: TransactionEvent
/// Started + Ended) saturated, as ratios of the MQTT figures.
async fn ocpp_load(server: &Instance, tags: &[String], mqtt: &Load, rows: &mut Vec<Row>) {
    for (protocol, name) in [("ocpp1.6", "OCPP 1.6J"), ("ocpp2.0.1", "OCPP 2.0.1")] {
        ocpp_load_of(server, tags, mqtt, rows, protocol, name).await;
    }
}

async fn ocpp_load_of(
    server: &Instance,
    tags: &[String],
    mqtt: &Load,
    rows: &mut Vec<Row>,
    protocol: &str,
    name: &str,
) {
    let bundles = provision_ocpp(server, LOAD_CHARGERS, protocol).await;
    let ws = server.rest.base.replace("http://", "ws://");
    println!("\n== {name}, embedded, SQLite ({ws})");
    let c = |op| LoadConfig {
        mix: Mix::only(op),
        ..config(&ws, tags, op, None)
    };
    let players = &bundles[..LOAD_CHARGERS];
    let authorize = ocpp_phase("Authorize, saturated", players, c(Op::Authorize)).await;
    let session = ocpp_phase("transaction, saturated", players, c(Op::Session)).await;
    for (what, o, m) in [
        (
            format!("{name} Authorize / MQTT authorize (throughput)"),
            &authorize,
            &mqtt.authorize,
        ),
        (
            format!("{name} transaction / MQTT session (throughput)"),
            &session,
            &mqtt.session,
        ),
    ] {
        let r = o.throughput / m.throughput;
        rows.push(row(
            what,
            format!("{r:.2} ({:.0}/s vs {:.0}/s)", o.throughput, m.throughput),
            ">= 0.8",
            Some(r >= 0.8 && o.error_count() == 0),
        ));
    }
}

/// Resident memory per idle OCPP charger, on a server of its own (so that no earlier
/// phase's freed memory is counted or reused).
async fn ocpp_idle(dir: &TempDir, rows: &mut Vec<Row>) {
    let data = dir.0.join("sqlite-ocpp");
    let url = format!("sqlite://{}", data.join("charger.db").display());
    let (server, _) = embedded(&data, &url, "embedded, SQLite, OCPP").await;
    let a = server
        .rest
        .post(
            "/api/v1/owners",
            charger_e2e::ADMIN_TOKEN,
            serde_json::json!({"id": "fleet", "name": "fleet"}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let bundles = provision_ocpp(&server, OCPP_FLEET, "ocpp1.6").await;
    let ws = server.rest.base.replace("http://", "ws://");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(server.pid());
    let (links, took) = load::connect_ocpp_all(&bundles, &ws, 512, CONNECT_LIMIT).await;
    let connected = links.iter().filter(|l| l.is_some()).count();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = rss_kib(server.pid());
    let per = after.saturating_sub(before) as f64 * 1024.0 / connected.max(1) as f64;
    println!(
        "idle OCPP chargers: {connected} connected in {:.2} s; server RSS {before} KiB -> {after} KiB: \
         {per:.0} bytes per idle charger",
        took.as_secs_f64()
    );
    rows.push(row(
        format!("server memory per idle OCPP charger at {OCPP_FLEET} (RSS growth)"),
        format!("{:.1} KB", per / 1000.0),
        "<= 16 KB",
        Some(connected == OCPP_FLEET && per <= 16_000.0),
    ));
    for link in links.into_iter().flatten() {
        link.close().await;
    }
}

async fn ocpp_phase(name: &str, players: &[load_ocpp::OcppBundle], config: LoadConfig) -> Report {
    let report = load::run_ocpp(players, config).await.expect(name);
    println!(
        "{name:<32} {:>8.0}/s  p50 {:>6} us  p99 {:>7} us  errors {:?}",
        report.throughput, report.latency.p50_us, report.latency.p99_us, report.errors
    );
    report
}

/// What one durable commit waits for at least: this disk's fsync, p50 and p99 of 2,000
/// appends of 4 KiB to a file in the benchmark's directory, each followed by `fdatasync`
/// (what SQLite's WAL does at a commit with `synchronous=FULL`). Not a target: the
/// floor under the durable path's latency.
fn fsync_row(dir: &TempDir) -> Row {
    use std::io::Write as _;
    let path = dir.0.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("probe file");
    let block = [0x5au8; 4096];
    let mut took = Vec::with_capacity(2000);
    let started = Instant::now();
    for _ in 0..2000 {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        let t = Instant::now();
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
        took.push(t.elapsed().as_micros() as u64);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    took.sort_unstable();
    let at = |p: f64| {
        took.get(((took.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
    };
    let (p50, p99) = (at(0.5).unwrap_or(0), at(0.99).unwrap_or(0));
    println!(
        "fsync probe: {} appends, p50 {p50} us, p99 {p99} us",
        took.len()
    );
    row(
        "this disk: 4 KiB append + fdatasync, p50 / p99 (the floor of a commit)",
        format!("{p50} us / {p99} us"),
        "",
        None,
    )
}

/// The rows of one configuration's load figures.
fn load_rows(name: &str, l: &Load, rows: &mut Vec<Row>) {
    let ratio = |a: &Report, b: &Report| a.throughput / b.throughput;
    let a = ratio(&l.authorize, &l.echo);
    let s = ratio(&l.session, &l.echo);
    rows.push(row(
        format!("{name}: authorize / echo, saturated"),
        format!(
            "{a:.2} ({:.0}/s vs {:.0}/s)",
            l.authorize.throughput, l.echo.throughput
        ),
        ">= 0.9",
        Some(a >= 0.9),
    ));
    rows.push(row(
        format!("{name}: session-start + stop / echo, saturated"),
        format!("{s:.2} ({:.0}/s)", l.session.throughput),
        ">= 0.5",
        Some(s >= 0.5),
    ));
    let (pa, pe) = (
        l.paced_authorize.latency.p99_us,
        l.paced_echo.latency.p99_us,
    );
    let p = pa as f64 / pe.max(1) as f64;
    rows.push(row(
        format!("{name}: authorize p99 / echo p99, at 10 %"),
        format!("{p:.1} ({pa} us vs {pe} us)"),
        "<= 1.5",
        Some(p <= 1.5),
    ));
}

/// Section 3: a flooding charger's victim, on a server with the default rate limit.
async fn victim_row(dir: &TempDir, rows: &mut Vec<Row>) {
    let data = dir.0.join("victim");
    let url = format!("sqlite://{}", data.join("charger.db").display());
    let mut cmd = server_command(&data, &url);
    cmd.env("RUST_LOG", "warn,charger_server::app=info")
        // Flooding is what is measured: the flooder is held back, not disconnected.
        .env("CHARGER_MQTT_ABUSE_SECONDS", "3600");
    let (server, mqtt) = launch(cmd, "victim").await;
    let mqtt = mqtt.expect("the embedded broker's address");
    let bundles = server.provision("fair", 2).await;
    let broker = mqtt.to_string();
    let mut link = Link::connect(&bundles[1], Some(&broker), None)
        .await
        .expect("victim connects");
    // Warm-up, not measured.
    for _ in 0..10 {
        let _ = link.request("status", status()).await;
        tokio::time::sleep(VICTIM_PACE).await;
    }
    let alone = victim(&mut link).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooder = tokio::spawn(flood(bundles[0].clone(), broker.clone(), stop.clone()));
    // The flood is under way once the server holds the flooder back (its rate limit).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = server
            .http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .expect("metrics");
        let metrics = metrics.text().await.expect("metrics text");
        if charger_e2e::limit_hits(&metrics, "mqtt_rate") > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the flood did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let flooded = victim(&mut link).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flooder.await.unwrap_or(0);
    drop(server);
    println!(
        "\nvictim: alone p99 {} us; while another charger flooded ({sent} requests) p99 {} us, \
         {} unanswered",
        alone.0, flooded.0, flooded.1
    );
    let r = flooded.0 as f64 / alone.0.max(1) as f64;
    rows.push(row(
        "a flooding charger's victim: p99 / unloaded p99",
        format!("{r:.2} ({} us vs {} us)", flooded.0, alone.0),
        "<= 2",
        Some(flooded.1 == 0 && r <= 2.0),
    ));
}

/// Section 4: PostgreSQL, one instance (embedded broker) and three behind Mosquitto.
async fn postgres(dir: &TempDir, rows: &mut Vec<Row>) {
    let Some(url) = charger_e2e::fresh_database(charger_e2e::Db::Postgres, dir).await else {
        rows.push(row(
            "PostgreSQL rows",
            "not measured (no TEST_DATABASE_URL)".into(),
            "",
            None,
        ));
        return;
    };
    {
        let server = embedded(&dir.0.join("postgres"), &url, "embedded, PostgreSQL").await;
        let broker = server.1.to_string();
        let bundles = server.0.provision("fleet", LOAD_CHARGERS).await;
        let tags = server.0.import_load_tags("fleet", LOAD_CHARGERS).await;
        let l = measure("embedded, PostgreSQL", &broker, &bundles, &tags).await;
        load_rows("PostgreSQL, 1 instance", &l, rows);
    }
    let Some(c) = Cluster::start(ClusterConfig {
        instances: 3,
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
    else {
        rows.push(row(
            "PostgreSQL, 3 instances",
            "not measured (no cluster)".into(),
            "",
            None,
        ));
        return;
    };
    let bundles = c.instances[0].provision("fleet", LOAD_CHARGERS).await;
    let tags = c.instances[0]
        .import_load_tags("fleet", LOAD_CHARGERS)
        .await;
    if let Some(last) = bundles.last() {
        c.wait_for_account_within(&last.device_id, true, Duration::from_secs(300))
            .await;
    }
    let broker = c.mosquitto.addr().to_string();
    let l = measure(
        "Mosquitto + 3 instances, PostgreSQL",
        &broker,
        &bundles,
        &tags,
    )
    .await;
    load_rows("PostgreSQL, 3 instances behind Mosquitto", &l, rows);
}

/// A release server with the embedded broker, `echo` on, no per-charger rate limit.
async fn embedded(data: &Path, url: &str, name: &str) -> (Instance, SocketAddr) {
    let mut cmd = server_command(data, url);
    cmd.env("RUST_LOG", "warn,charger_server::app=info")
        .env("CHARGER_MQTT_ECHO", "true")
        .env("CHARGER_MQTT_RATE", "1000000")
        .env("CHARGER_MQTT_BURST", "1000000")
        .env("CHARGER_MQTT_MAX_PENDING_LOGINS", "100000")
        // Every load charger comes from 127.0.0.1: no per-source share, no login budget.
        .env("CHARGER_MQTT_MAX_PENDING_LOGINS_PER_SOURCE", "100000")
        .env("CHARGER_MQTT_LOGINS_PER_MINUTE", "1000000")
        .env("CHARGER_HTTP_MAX_CONNECTIONS_PER_SOURCE", "1000000")
        // OCPP chargers over plain ws:// on loopback, all from 127.0.0.1.
        .env("CHARGER_OCPP_ALLOW_PLAIN", "true")
        .env("CHARGER_OCPP_MAX_CONNECTIONS_PER_SOURCE", "1000000");
    let (server, mqtt) = launch(cmd, name).await;
    (server, mqtt.expect("the embedded broker's address"))
}

fn config(broker: &str, tags: &[String], op: Op, rate: Option<f64>) -> LoadConfig {
    LoadConfig {
        broker: Some(broker.to_owned()),
        mix: Mix::only(op),
        rate,
        duration: PHASE,
        max_requests: None,
        tags: tags.to_vec(),
        connect_concurrency: LOAD_CHARGERS,
        progress: false,
        envelope: charger_protocol::Version::V2,
    }
}

/// The five load phases of one configuration.
async fn measure(name: &str, broker: &str, players: &[FirmwareBundle], tags: &[String]) -> Load {
    println!("\n== {name} (broker {broker})");
    let c = |op, rate| config(broker, tags, op, rate);
    let echo = phase("echo, saturated", players, c(Op::Echo, None)).await;
    let authorize = phase("authorize, saturated", players, c(Op::Authorize, None)).await;
    let session = phase("session, saturated", players, c(Op::Session, None)).await;
    let paced_authorize = phase(
        "authorize at 10 %",
        players,
        c(Op::Authorize, Some(authorize.throughput / 10.0)),
    )
    .await;
    let paced_echo = phase(
        "echo at 10 %",
        players,
        c(Op::Echo, Some(echo.throughput / 10.0)),
    )
    .await;
    Load {
        echo,
        authorize,
        session,
        paced_authorize,
        paced_echo,
    }
}

async fn phase(name: &str, players: &[FirmwareBundle], config: LoadConfig) -> Report {
    let report = load::run(players, config).await.expect(name);
    println!(
        "{name:<32} {:>8.0}/s  p50 {:>6} us  p99 {:>7} us  errors {:?}",
        report.throughput, report.latency.p50_us, report.latency.p99_us, report.errors
    );
    report
}

/// Drops every link at once, then reconnects every charger at once; how long until all
/// were connected again (None if some never were).
async fn storm(
    name: &str,
    bundles: &[FirmwareBundle],
    broker: &str,
    links: Vec<Option<Link>>,
) -> Option<Duration> {
    let before = links.iter().filter(|l| l.is_some()).count();
    drop(links);
    let (links, took) =
        load::connect_all(bundles, Some(broker), bundles.len(), CONNECT_LIMIT).await;
    let after = links.iter().filter(|l| l.is_some()).count();
    println!(
        "storm against {name}: {before} connected, all dropped; {after} of {} reconnected in {:.2} s",
        bundles.len(),
        took.as_secs_f64()
    );
    drop(links);
    // Let the broker see the last sockets close.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (after == bundles.len()).then_some(took)
}

fn status() -> serde_json::Value {
    serde_json::json!({"connector": 1, "state": "available"})
}

/// The victim's run: p99 in microseconds and how many went unanswered (it stops after 3).
async fn victim(link: &mut Link) -> (u64, usize) {
    let mut took = Vec::with_capacity(VICTIM_REQUESTS);
    let mut unanswered = 0;
    let mut next = tokio::time::Instant::now();
    for _ in 0..VICTIM_REQUESTS {
        tokio::time::sleep_until(next).await;
        next += VICTIM_PACE;
        let t = Instant::now();
        match tokio::time::timeout(Duration::from_secs(5), link.request("status", status())).await {
            Ok(Ok(a)) if a.code == 200 => took.push(t.elapsed()),
            _ => {
                unanswered += 1;
                if unanswered >= 3 {
                    break;
                }
            }
        }
    }
    took.sort();
    let p99 = took
        .get(((took.len().max(1) - 1) as f64 * 0.99).round() as usize)
        .map_or(0, |d| d.as_micros() as u64);
    (p99, unanswered)
}

/// Floods as `b` until `stop` (at most 30 s): valid `status` requests at QoS 0 as fast
/// as its connection takes them, never waiting for an answer. Returns how many it sent.
async fn flood(
    b: FirmwareBundle,
    broker: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    use std::sync::atomic::Ordering;
    let addr: SocketAddr = broker.parse().expect("broker address");
    let mut opts = rumqttc::MqttOptions::new(&b.device_id, addr.ip().to_string(), addr.port());
    opts.set_credentials(&b.mqtt.username, &b.mqtt.password);
    opts.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1000);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let events_stop = stop.clone();
    tokio::spawn(async move {
        while !events_stop.load(Ordering::Relaxed) && eventloop.poll().await.is_ok() {}
    });
    let topic = format!("{}/req/{}/status", b.owner, b.device_id);
    let start = Instant::now();
    let mut sent: u64 = 0;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
        sent += 1;
        let payload = serde_json::json!({"id": sent, "key": b.key, "data": status()}).to_string();
        let publish = client.publish(&topic, rumqttc::QoS::AtMostOnce, false, payload);
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(200), publish).await {
            break;
        }
    }
    sent
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Debian's Mosquitto as a plain broker on a free loopback port (anonymous, no
/// persistence, TCP_NODELAY); killed on drop.
struct PlainMosquitto {
    child: Child,
    address: SocketAddr,
}

impl PlainMosquitto {
    fn start(dir: &TempDir) -> PlainMosquitto {
        let port = free_port();
        let conf = dir.0.join("mosquitto-plain.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest none\nmax_keepalive 600\nset_tcp_nodelay true\n\
                 max_inflight_messages 1000\nmax_queued_messages 100000\n"
            ),
        )
        .expect("mosquitto.conf");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while std::net::TcpStream::connect(address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PlainMosquitto { child, address }
    }
}

impl Drop for PlainMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This benchmark started again as Mosquitto's echo responder; killed on drop.
struct Responder(Child);

impl Responder {
    fn start(broker: SocketAddr) -> Responder {
        let exe = std::env::current_exe().expect("benchmark executable");
        let mut child = Command::new(exe)
            .env(RESPONDER_ENV, broker.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the responder");
        // It prints one line once Mosquitto has granted its subscription.
        let stdout = child.stdout.take().expect("responder stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the responder subscribes within 10 s");
        assert_eq!(line.trim(), "subscribed", "the responder: {line:?}");
        Responder(child)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The responder: every `<owner>/req/<device>/echo` publish is published back, payload
/// unchanged, on `<owner>/res/<device>/echo` at QoS 1 (what the server's `echo` does).
/// It ends after ten minutes at most.
fn responder(broker: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let addr: SocketAddr = broker.parse().expect("broker address");
        let mut opts =
            rumqttc::MqttOptions::new("perf-echo-responder", addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_inflight(1000);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 10_000);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);
        client
            .subscribe("+/req/+/echo", rumqttc::QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, bytes::Bytes)>();
        tokio::spawn(async move {
            while let Some((topic, payload)) = rx.recv().await {
                if client
                    .publish_bytes(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    let topic = p.topic.replacen("/req/", "/res/", 1);
                    if tx.send((topic, p.payload)).is_err() {
                        return;
                    }
                }
                // Tells the benchmark it is ready (its one line of output).
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => println!("subscribed"),
                _ => {}
            }
        }
    });
}
