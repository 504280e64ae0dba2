//! Scale-out fixtures: Debian's Mosquitto with its dynamic security plugin on a free
//! loopback port (configuration generated here, as `docs/operations.md` describes it),
//! and several `charger-server` processes on one throwaway PostgreSQL behind it.
//!
//! In CI (`CI=true`) a missing `mosquitto` or PostgreSQL fails the test; elsewhere the
//! test is skipped with a line on stderr.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{fresh_database, Db, Rest, TempDir, ADMIN_TOKEN};

/// The server's own account on the broker.
pub const SERVER_USER: &str = "mybox-server";
pub const SERVER_PASSWORD: &str = "test-server-password";
const ADMIN_USER: &str = "admin";
const ADMIN_PASSWORD: &str = "test-dynsec-admin";
/// Where Debian puts the plugin.
const DYNSEC_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Mosquitto with dynamic security, killed on drop.
pub struct Mosquitto {
    pub port: u16,
    pub dir: TempDir,
    child: Option<Child>,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Mosquitto {
    /// Starts it with the server's role and account (None: skipped outside CI).
    pub fn start() -> Option<Mosquitto> {
        if !have("mosquitto") || !have("mosquitto_ctrl") || !Path::new(DYNSEC_PLUGIN).exists() {
            assert!(
                !in_ci(),
                "CI=true but mosquitto (with its dynamic security plugin) is missing"
            );
            eprintln!("mosquitto is not installed: skipping a scale-out test");
            return None;
        }
        let dir = TempDir::new();
        let port = free_port();
        let dynsec = dir.0.join("dynsec.json");
        let ok = Command::new("mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&dynsec)
            .args([ADMIN_USER, ADMIN_PASSWORD])
            .stdout(Stdio::null())
            .status()
            .expect("mosquitto_ctrl")
            .success();
        assert!(ok, "mosquitto_ctrl dynsec init");
        let conf = format!(
            "per_listener_settings false\n\
             allow_anonymous false\n\
             listener {port} 127.0.0.1\n\
             plugin {DYNSEC_PLUGIN}\n\
             plugin_opt_config_file {}\n\
             persistence false\n\
             retain_available false\n\
             set_tcp_nodelay true\n\
             log_dest file {}\n",
            dynsec.display(),
            dir.0.join("mosquitto.log").display(),
        );
        std::fs::write(dir.0.join("mosquitto.conf"), conf).expect("config");
        // Run as root, Mosquitto drops to the `mosquitto` user, which must write here.
        if Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"))
        {
            let _ = Command::new("chown")
                .args(["-R", "mosquitto"])
                .arg(&dir.0)
                .status();
        }
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.run();
        // The server's role: answers and commands out, requests in (shared and plain), and
        // the dynamic security API (docs/operations.md, "Scale-out").
        for args in [
            vec!["createRole", "mybox-server"],
            vec![
                "addRoleACL",
                "mybox-server",
                "publishClientSend",
                "+/res/+/+",
                "allow",
            ],
            vec![
                "addRoleACL",
                "mybox-server",
                "subscribePattern",
                "$share/+/+/req/+/+",
                "allow",
            ],
            vec![
                "addRoleACL",
                "mybox-server",
                "subscribePattern",
                "+/req/+/+",
                "allow",
            ],
            vec![
                "addRoleACL",
                "mybox-server",
                "publishClientSend",
                "$CONTROL/dynamic-security/#",
                "allow",
            ],
            vec![
                "addRoleACL",
                "mybox-server",
                "publishClientReceive",
                "$CONTROL/dynamic-security/#",
                "allow",
            ],
            vec![
                "addRoleACL",
                "mybox-server",
                "subscribePattern",
                "$CONTROL/dynamic-security/#",
                "allow",
            ],
            vec!["createClient", SERVER_USER, "-p", SERVER_PASSWORD],
            vec!["addClientRole", SERVER_USER, "mybox-server"],
        ] {
            m.ctrl(&args);
        }
        Some(m)
    }

    fn run(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.0.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "mosquitto listens on {}",
            self.port
        );
    }

    /// Kills it (SIGKILL); its dynamic security file stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same configuration.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Runs `mosquitto_ctrl dynsec <args>` as the dynsec admin; its output.
    pub fn ctrl(&self, args: &[&str]) -> String {
        let out = Command::new("mosquitto_ctrl")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-u", ADMIN_USER, "-P", ADMIN_PASSWORD, "dynsec"])
            .args(args)
            .output()
            .expect("mosquitto_ctrl");
        assert!(
            out.status.success(),
            "mosquitto_ctrl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("mosquitto.log")).unwrap_or_default()
    }
}

/// The `charger-server` binary built beside this test (or benchmark).
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("charger-server"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (a benchmark: build \
         it first with `cargo build --release -p charger-server`)",
        bin.display()
    );
    bin
}

/// One server process, killed on drop.
pub struct Instance {
    pub rest: Rest,
    child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::ops::Deref for Instance {
    type Target = Rest;
    fn deref(&self) -> &Rest {
        &self.rest
    }
}

impl Instance {
    /// The process id (a benchmark reads its resident memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, nothing flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether a log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.lines
            .lock()
            .map(|l| l.iter().any(|x| x.contains(text)))
            .unwrap_or(false)
    }
}

/// Starts `cmd` (a `charger-server`), captures its lines, and waits until it serves REST;
/// returns it and, with the embedded broker, the MQTT address.
pub async fn launch(mut cmd: Command, name: &str) -> (Instance, Option<SocketAddr>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn charger-server");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let streams: [Box<dyn std::io::Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("stdout")),
        Box::new(child.stderr.take().expect("stderr")),
    ];
    for stream in streams {
        let (tx, lines, name) = (tx.clone(), lines.clone(), name.to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[{name}] {line}");
                }
                if let Ok(mut l) = lines.lock() {
                    l.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
    }
    let field = |line: &str, key: &str| {
        line.split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned)
    };
    let (http, mqtt) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut mqtt = None;
        while Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            if line.contains("MQTT broker listening") {
                mqtt = field(&line, "mqtt_addr=");
            }
            if line.contains("REST API listening") {
                return (field(&line, "http_addr="), mqtt);
            }
        }
        (None, mqtt)
    })
    .await
    .expect("joined");
    let Some(http) = http else {
        let log = lines.lock().map(|l| l.join("\n")).unwrap_or_default();
        panic!("{name} did not start:\n{log}");
    };
    let instance = Instance {
        rest: Rest {
            base: format!("http://{http}"),
            http: reqwest::Client::new(),
        },
        child,
        lines,
    };
    (instance, mqtt.and_then(|m| m.parse().ok()))
}

/// A `charger-server` command with a clean environment, its data in `data`.
pub fn server_command(data: &Path, database_url: &str) -> Command {
    std::fs::create_dir_all(data).expect("data dir");
    let mut cmd = Command::new(server_binary());
    cmd.current_dir(data)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("CHARGER_DATA_DIR", data)
        .env("DATABASE_URL", database_url)
        .env("CHARGER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CHARGER_HTTP_LISTEN", "127.0.0.1:0")
        .env("CHARGER_MQTT_LISTEN", "127.0.0.1:0");
    cmd
}

/// Settings of a cluster's instances.
#[derive(Clone)]
pub struct ClusterConfig {
    pub instances: usize,
    pub heartbeat_s: u64,
    /// Extra environment for every instance.
    pub env: Vec<(String, String)>,
    /// The instances reach PostgreSQL through a [`PgProxy`] (to make it unreachable).
    pub db_proxy: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            instances: 3,
            heartbeat_s: 300,
            env: Vec::new(),
            db_proxy: false,
        }
    }
}

/// Mosquitto, one PostgreSQL database, and `n` server instances.
pub struct Cluster {
    pub instances: Vec<Instance>,
    pub mosquitto: Mosquitto,
    pub database_url: String,
    pub config: ClusterConfig,
    pub proxy: Option<PgProxy>,
    pub dir: TempDir,
}

impl Cluster {
    /// Starts the broker and the instances (None: skipped outside CI).
    pub async fn start(config: ClusterConfig) -> Option<Cluster> {
        let mosquitto = Mosquitto::start()?;
        let dir = TempDir::new();
        let mut database_url = fresh_database(Db::Postgres, &dir).await?;
        let proxy = if config.db_proxy {
            let proxy = PgProxy::start(PgProxy::target_of(&database_url)).await;
            database_url = proxy.url_for(&database_url);
            Some(proxy)
        } else {
            None
        };
        let mut cluster = Cluster {
            instances: Vec::new(),
            mosquitto,
            database_url,
            config,
            proxy,
            dir,
        };
        // The first one alone: it migrates the database and writes the shared secret.
        let first = cluster.spawn(0).await;
        cluster.instances.push(first);
        for i in 1..cluster.config.instances {
            let next = cluster.spawn(i).await;
            cluster.instances.push(next);
        }
        Some(cluster)
    }

    /// Starts instance `i` (a new process) and waits until it serves REST.
    pub async fn spawn(&self, i: usize) -> Instance {
        self.spawn_with(i, &self.database_url).await
    }

    /// Starts instance `i` with another database URL (a proxy in front of the database).
    pub async fn spawn_with(&self, i: usize, database_url: &str) -> Instance {
        let data = self.dir.0.join(format!("instance-{i}"));
        let mut cmd = server_command(&data, database_url);
        cmd.env("CHARGER_SECRET_FILE", self.dir.0.join("server.secret"))
            .env("CHARGER_MQTT_BROKER", "external")
            .env(
                "CHARGER_MQTT_BROKER_URL",
                format!("mqtt://127.0.0.1:{}", self.mosquitto.port),
            )
            .env("CHARGER_MQTT_BROKER_USERNAME", SERVER_USER)
            .env("CHARGER_MQTT_BROKER_PASSWORD", SERVER_PASSWORD)
            .env("CHARGER_HEARTBEAT_S", self.config.heartbeat_s.to_string());
        for (k, v) in &self.config.env {
            cmd.env(k, v);
        }
        launch(cmd, &format!("instance {i}")).await.0
    }

    /// Waits until the broker has (or no longer has) `device`'s account; panics after 10 s.
    pub async fn wait_for_account(&self, device: &str, present: bool) {
        self.wait_for_account_within(device, present, Duration::from_secs(10))
            .await;
    }

    /// [`Cluster::wait_for_account`] with another deadline.
    pub async fn wait_for_account_within(&self, device: &str, present: bool, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let out = self.mosquitto.ctrl(&["getClient", device]);
            let found = out.contains("Username:") && out.contains(device);
            if found == present {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{device} present={present} never seen on the broker: {out}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A TCP proxy in front of PostgreSQL that can make it unreachable: [`PgProxy::cut`]
/// closes every proxied connection and refuses new ones until [`PgProxy::restore`].
pub struct PgProxy {
    pub port: u16,
    on: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl PgProxy {
    /// Proxies 127.0.0.1:<free port> to `target` (host:port).
    pub async fn start(target: String) -> PgProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let on = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (on, conns) = (on.clone(), conns.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !on.load(Ordering::SeqCst) {
                        continue; // dropped: closed at once
                    }
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    if let Ok(mut c) = conns.lock() {
                        c.push(task.abort_handle());
                    }
                }
            }
        });
        PgProxy {
            port,
            on,
            conns,
            accept,
        }
    }

    pub fn cut(&self) {
        self.on.store(false, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut c) = self.conns.lock() {
            for task in c.drain(..) {
                task.abort();
            }
        }
    }

    pub fn restore(&self) {
        self.on.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `url` (postgres://user@host:port/db) pointed at the proxy.
    pub fn url_for(&self, url: &str) -> String {
        let at = url.find('@').map(|i| i + 1).unwrap_or(0);
        let slash = url[at..].find('/').map(|i| at + i).unwrap_or(url.len());
        format!("{}127.0.0.1:{}{}", &url[..at], self.port, &url[slash..])
    }

    /// The host:port `url` names.
    pub fn target_of(url: &str) -> String {
        let at = url.find('@').map(|i| i + 1).unwrap_or(0);
        let slash = url[at..].find('/').map(|i| at + i).unwrap_or(url.len());
        url[at..slash].to_owned()
    }
}
