//! Helpers shared by the binary's tests: a temporary directory and a server process.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_charger-server");

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("charger-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process, killed on drop, with its stdout and stderr lines.
pub struct Server {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command with no configuration in the environment, run in `dir`, on free ports.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("CHARGER_HTTP_LISTEN", "127.0.0.1:0")
        .env("CHARGER_MQTT_LISTEN", "127.0.0.1:0");
    cmd
}

pub fn start(dir: &Path) -> Server {
    start_command(command(dir))
}

/// Spawns `cmd` as a server, capturing its output lines.
pub fn start_command(mut cmd: Command) -> Server {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn charger-server");
    let (tx, lines) = mpsc::channel();
    let streams: [Box<dyn std::io::Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("stdout")),
        Box::new(child.stderr.take().expect("stderr")),
    ];
    for stream in streams {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    Server {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Server {
    /// Waits (with a deadline) for a line containing `needle`, and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("no line with {needle:?} within 30 s; saw: {:#?}", self.seen)
    }

    /// The MQTT address from the "MQTT broker listening" log line.
    pub fn mqtt_addr(&mut self) -> String {
        let line = self.wait_for("MQTT broker listening");
        let start = line.find("mqtt_addr=").expect("mqtt_addr field") + "mqtt_addr=".len();
        line[start..]
            .split_whitespace()
            .next()
            .expect("address")
            .to_owned()
    }

    /// The HTTP address from the "REST API listening" log line.
    pub fn http_addr(&mut self) -> String {
        let line = self.wait_for("REST API listening");
        let start = line.find("http_addr=").expect("http_addr field") + "http_addr=".len();
        line[start..]
            .split_whitespace()
            .next()
            .expect("address")
            .to_owned()
    }
}
