//! The load benchmark (not a test): `cargo bench -p charger-server --bench fleet`.
//!
//! In one run, on one machine, it starts the release `charger-server` (SQLite, free
//! loopback ports, the `echo` diagnostic on), provisions 10,000 chargers, plays them with
//! the simulator's load mode (`charger_firmware_sim::load`, real MQTT clients) and prints
//! ratios against a baseline measured in the same run:
//!
//! 1. bare `echo` round trips through the embedded broker, saturated: the baseline;
//! 2. `authorize` (the full path) saturated, ÷ (1);
//! 3. `session-start` + `session-stop` (durable) saturated, ÷ (1);
//! 4. 10,000 connected idle chargers: the server's resident memory per charger;
//! 5. 10,000 chargers reconnecting at once: time until all are connected again, ÷ the
//!    same storm against Debian's Mosquitto (`/usr/sbin/mosquitto`) on another free port;
//! 6. p50 and p99 of `authorize` (and of `echo`) at 10 % of their saturated rates.
//!
//! Every phase is bounded in time; the servers are killed at the end.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use charger_firmware_sim::load::{self, LoadConfig, Mix, Op, Report};
use charger_protocol::FirmwareBundle;

/// Chargers connected for the idle-memory and storm phases.
const FLEET: usize = 10_000;
/// Chargers playing the saturated and paced phases (one request in flight each).
const LOAD_CHARGERS: usize = 256;
/// Each load phase.
const PHASE: Duration = Duration::from_secs(8);
/// Connecting or reconnecting the fleet.
const CONNECT_LIMIT: Duration = Duration::from_secs(120);
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

fn main() {
    let dir = std::env::temp_dir().join(format!("charger-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bundles_path = support::provision(&dir, "fleet", FLEET);
    let bundles = charger_firmware_sim::read_bundles(std::io::BufReader::new(
        std::fs::File::open(&bundles_path).expect("bundles"),
    ))
    .expect("bundles");
    let server = support::start_server(&dir, &[("CHARGER_MQTT_ECHO", "true")]);
    let pid = server.child.id();
    let broker = server.mqtt.to_string();
    println!(
        "fleet benchmark: charger-server pid {pid} at {broker}; {FLEET} chargers; \
         load phases of {} s with {LOAD_CHARGERS} chargers",
        PHASE.as_secs()
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut summary = Vec::new();
    runtime.block_on(async {
        let tags = import_tags(server.http, LOAD_CHARGERS).await;
        let players = &bundles[..LOAD_CHARGERS];
        let config = |mix: Op, rate: Option<f64>| LoadConfig {
            broker: Some(broker.clone()),
            mix: Mix::only(mix),
            rate,
            duration: PHASE,
            max_requests: None,
            tags: tags.clone(),
            connect_concurrency: LOAD_CHARGERS,
            progress: false,
            envelope: charger_protocol::Version::V2,
        };

        let echo = phase("1. echo, saturated", players, config(Op::Echo, None)).await;
        let authorize = phase(
            "2. authorize, saturated",
            players,
            config(Op::Authorize, None),
        )
        .await;
        let session = phase(
            "3. session-start + session-stop, saturated",
            players,
            config(Op::Session, None),
        )
        .await;
        let ratio_a = authorize.throughput / echo.throughput;
        let ratio_s = session.throughput / echo.throughput;
        println!("authorize / echo = {ratio_a:.2}   session / echo = {ratio_s:.2}");
        summary.push((
            "2. authorize / echo",
            format!("{ratio_a:.2}"),
            ">= 0.9",
            ratio_a >= 0.9,
        ));
        summary.push((
            "3. session / echo",
            format!("{ratio_s:.2}"),
            ">= 0.5",
            ratio_s >= 0.5,
        ));

        let paced_a = phase(
            "6a. authorize at 10% of its saturated rate",
            players,
            config(Op::Authorize, Some(authorize.throughput / 10.0)),
        )
        .await;
        let paced_e = phase(
            "6b. echo at 10% of its saturated rate",
            players,
            config(Op::Echo, Some(echo.throughput / 10.0)),
        )
        .await;
        let p99 = paced_a.latency.p99_us;
        summary.push((
            "6. authorize p50 / p99 at 10%",
            format!("{} us / {} us", paced_a.latency.p50_us, p99),
            "p99 < 1000 us",
            p99 < 1000,
        ));
        summary.push((
            "   echo p50 / p99 at 10%",
            format!(
                "{} us / {} us",
                paced_e.latency.p50_us, paced_e.latency.p99_us
            ),
            "(baseline)",
            true,
        ));

        // 4. Idle chargers. Let the server settle first: idle runtime threads exit.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = support::rss_kib(pid);
        let (links, took) = load::connect_all(&bundles, Some(&broker), 512, CONNECT_LIMIT).await;
        let connected = links.iter().filter(|l| l.is_some()).count();
        tokio::time::sleep(Duration::from_secs(12)).await;
        let after = support::rss_kib(pid);
        let per = after.saturating_sub(before) as f64 * 1024.0 / connected.max(1) as f64;
        println!(
            "\n4. idle chargers: {connected} connected in {:.2} s (512 at a time); server RSS \
             {before} KiB -> {after} KiB: {per:.0} bytes per idle charger",
            took.as_secs_f64()
        );
        summary.push((
            "4. memory per idle charger",
            format!("{:.1} KB", per / 1000.0),
            "<= 10 KB",
            per <= 10_000.0,
        ));

        // 5. The storm: every connection drops at once, every charger reconnects at once.
        let ours = storm("charger-server", &bundles, &broker, links).await;
        let theirs = match Mosquitto::start(&dir) {
            Some(m) => {
                let address = m.address.to_string();
                let (warm, _) =
                    load::connect_all(&bundles, Some(&address), 512, CONNECT_LIMIT).await;
                let t = storm("mosquitto", &bundles, &address, warm).await;
                drop(m);
                Some(t)
            }
            None => {
                println!("5. {MOSQUITTO} not found: the storm has no peer to compare with");
                None
            }
        };
        if let (Some(ours), Some(theirs)) = (ours, theirs.flatten()) {
            let r = ours.as_secs_f64() / theirs.as_secs_f64();
            println!("storm: charger-server / mosquitto = {r:.2}");
            summary.push((
                "5. reconnect storm / mosquitto",
                format!(
                    "{r:.2} ({:.2} s vs {:.2} s)",
                    ours.as_secs_f64(),
                    theirs.as_secs_f64()
                ),
                "<= 1",
                r <= 1.0,
            ));
        }
    });
    drop(server);
    println!("\nsummary");
    for (what, value, target, met) in &summary {
        println!(
            "  {what:<32} {value:<28} target {target:<14} {}",
            if *met { "met" } else { "MISSED" }
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs one load phase and prints its report.
async fn phase(name: &str, players: &[FirmwareBundle], config: LoadConfig) -> Report {
    let report = load::run(players, config).await.expect(name);
    println!("\n{name}\n{}", report.text());
    report
}

/// Drops every link at once (the sockets close), then reconnects every charger at once;
/// returns how long until all were connected again (None if some never were).
async fn storm(
    name: &str,
    bundles: &[FirmwareBundle],
    broker: &str,
    links: Vec<Option<charger_firmware_sim::link::Link>>,
) -> Option<Duration> {
    let before = links.iter().filter(|l| l.is_some()).count();
    drop(links);
    let (links, took) =
        load::connect_all(bundles, Some(broker), bundles.len(), CONNECT_LIMIT).await;
    let after = links.iter().filter(|l| l.is_some()).count();
    println!(
        "5. storm against {name}: {before} connected, all dropped; {after} of {} reconnected in {:.2} s",
        bundles.len(),
        took.as_secs_f64()
    );
    drop(links);
    // Let the broker see the last sockets close before the next phase.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (after == bundles.len()).then_some(took)
}

/// Enrolls `n` tags (`BE000000`, `BE000001`, ...) for the fleet's owner through the REST
/// import, each allowed several sessions.
async fn import_tags(http: SocketAddr, n: usize) -> Vec<String> {
    let tags: Vec<String> = (0..n).map(|i| format!("BE{i:06X}")).collect();
    let mut csv = String::from("uid,owner,max_sessions\n");
    for t in &tags {
        csv.push_str(&format!("{t},fleet,100\n"));
    }
    let res = reqwest::Client::new()
        .post(format!("http://{http}/api/v1/tags/import"))
        .bearer_auth(support::ADMIN_TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("tag import");
    assert!(
        res.status().is_success(),
        "tag import: {} {}",
        res.status(),
        res.text().await.unwrap_or_default()
    );
    tags
}

/// Debian's Mosquitto as a plain broker on a free loopback port (anonymous, no
/// persistence); killed on drop.
struct Mosquitto {
    child: Child,
    address: SocketAddr,
}

impl Mosquitto {
    fn start(dir: &Path) -> Option<Mosquitto> {
        if !Path::new(MOSQUITTO).exists() {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest none\nmax_keepalive 600\n"
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
        Some(Mosquitto { child, address })
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
