//! What the benchmarks share: the release server as its own process on free loopback
//! ports, with its log in the data dir, and its resident memory.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_charger-server");
pub const ADMIN_TOKEN: &str = "bench-admin";

/// A running server; killed on drop.
pub struct Server {
    pub child: Child,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server command on `dir`, both listeners on free loopback ports.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("CHARGER_DATA_DIR", dir)
        .env("CHARGER_HTTP_LISTEN", "127.0.0.1:0")
        .env("CHARGER_MQTT_LISTEN", "127.0.0.1:0")
        .env("CHARGER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn,charger_server::app=info")
        .env("RUST_BACKTRACE", "1")
        // The benchmark's chargers are load generators: no per-charger rate limit, and a
        // reconnect storm of the whole fleet may log in at once.
        .env("CHARGER_MQTT_RATE", "1000000")
        .env("CHARGER_MQTT_BURST", "1000000")
        .env("CHARGER_MQTT_MAX_PENDING_LOGINS", "100000")
        // Every load charger comes from 127.0.0.1: no per-source share, no login budget.
        .env("CHARGER_MQTT_MAX_PENDING_LOGINS_PER_SOURCE", "100000")
        .env("CHARGER_MQTT_LOGINS_PER_MINUTE", "1000000")
        .env("CHARGER_HTTP_MAX_CONNECTIONS_PER_SOURCE", "1000000");
    cmd
}

/// Requests of `device` the server answered (its kept answers), read from the SQLite
/// database in `dir`.
pub async fn requests_answered(dir: &Path, device: &str) -> u64 {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", dir.join("charger.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("the benchmark's database");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mqtt_requests WHERE device_id = $1")
        .bind(device)
        .fetch_one(&mut conn)
        .await
        .expect("count");
    u64::try_from(n).unwrap_or(0)
}

/// Provisions `count` chargers of `owner`; returns the bundle file.
pub fn provision(dir: &Path, owner: &str, count: usize) -> PathBuf {
    let path = dir.join(format!("{owner}.jsonl"));
    // The bundles name this address; the benchmarks pass the real one to the clients.
    let status = command(dir)
        .env("CHARGER_MQTT_LISTEN", "127.0.0.1:1883")
        .args(["provision", "--owner", owner, "--count", &count.to_string()])
        .arg("--out")
        .arg(&path)
        .status()
        .expect("provision");
    assert!(status.success(), "provisioning failed");
    path
}

/// Starts the server (with `envs` added) and waits for both of its addresses.
pub fn start_server(dir: &Path, envs: &[(&str, &str)]) -> Server {
    let mut cmd = command(dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start charger-server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log_path = dir.join("server.log");
    std::thread::spawn(move || {
        let mut log = std::fs::File::create(log_path).ok();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(f) = log.as_mut() {
                use std::io::Write as _;
                let _ = writeln!(f, "{line}");
            }
            for key in ["mqtt_addr=", "http_addr="] {
                if let Some(at) = line.find(key) {
                    let addr = line[at + key.len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send((key, addr));
                }
            }
        }
    });
    let (mut mqtt, mut http) = (None, None);
    while mqtt.is_none() || http.is_none() {
        let (key, addr) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server reports its addresses");
        let addr: SocketAddr = addr.parse().expect("address");
        if key == "mqtt_addr=" {
            mqtt = Some(addr);
        } else {
            http = Some(addr);
        }
    }
    Server {
        child,
        mqtt: mqtt.expect("mqtt"),
        http: http.expect("http"),
    }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}
