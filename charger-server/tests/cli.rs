//! The `charger-server` binary as a user runs it: start with no configuration, one-line
//! errors for a busy port or a bad setting, and bulk provisioning to a bundle file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod support;

use support::{command, start, start_command, TempDir, BIN};

fn get(addr: &str, path: &str, token: Option<&str>) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request").status().as_u16()
    })
}

/// POSTs a JSON body; the status.
fn post(addr: &str, path: &str, token: &str, body: serde_json::Value) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{addr}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    })
}

/// Every state-changing REST call ends with an audit line naming its caller, route and
/// status (who did what), and anonymous calls are named so.
#[test]
fn state_changing_calls_are_logged_with_their_principal() {
    let dir = TempDir::new();
    let mut cmd = command(&dir.0);
    cmd.env("CHARGER_ADMIN_TOKEN", "cli-test-admin-token-0123456789");
    let mut server = start_command(cmd);
    let addr = server.http_addr();
    let body = serde_json::json!({"id": "acme", "name": "Acme"});
    assert_eq!(
        post(
            &addr,
            "/api/v1/owners",
            "cli-test-admin-token-0123456789",
            body.clone()
        ),
        201
    );
    let line = server.wait_for("principal=admin");
    for expected in ["audit", "/api/v1/owners", "method=POST", "status=201"] {
        assert!(line.contains(expected), "{expected} in {line}");
    }
    assert_eq!(post(&addr, "/api/v1/tariffs", "cht_wrong", body), 401);
    let line = server.wait_for("principal=anonymous");
    assert!(
        line.contains("/api/v1/tariffs") && line.contains("status=401"),
        "{line}"
    );
}

#[test]
fn starts_with_no_configuration_and_prints_the_admin_token_once() {
    let dir = TempDir::new();
    let mut server = start(&dir.0);
    server.wait_for("Admin token");
    let token = server.wait_for("cht_");
    assert!(token.starts_with("cht_") && !token.contains(' '), "{token}");
    let addr = server.http_addr();
    assert_eq!(get(&addr, "/healthz", None), 200);
    assert_eq!(get(&addr, "/api/v1/owners", Some(&token)), 200);
    assert_eq!(get(&addr, "/api/v1/owners", Some("cht_wrong")), 401);

    let data = dir.0.join("data");
    assert!(data.join("charger.db").exists(), "SQLite file in ./data");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let secret = data.join("server.secret");
        let mode = std::fs::metadata(&secret)
            .expect("secret")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "secret is private");
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p).expect("exists").permissions().mode() & 0o777
        };
        assert_eq!(mode(&data), 0o700, "the data directory is private");
        assert_eq!(
            mode(&data.join("charger.db")),
            0o600,
            "the database is private"
        );
        for extra in ["charger.db-wal", "charger.db-shm"] {
            let p = data.join(extra);
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{extra} is private");
            }
        }
    }
    drop(server);

    // Second start: the token is not printed again, and still works.
    let mut server = start(&dir.0);
    let addr = server.http_addr();
    assert_eq!(get(&addr, "/api/v1/owners", Some(&token)), 200);
    assert!(
        !server.seen.iter().any(|l| l.contains("Admin token")),
        "{:#?}",
        server.seen
    );
}

/// Runs the binary to completion (bounded) and returns (exit code, stderr).
fn run_to_end(mut cmd: Command) -> (Option<i32>, String) {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the command exits within 60 s")
        .expect("output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The last stderr line, the one that tells the operator what to change.
fn error_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or("")
}

#[test]
fn a_busy_port_is_one_line_naming_the_setting() {
    let dir = TempDir::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr");
    let mut cmd = command(&dir.0);
    cmd.env("CHARGER_HTTP_LISTEN", addr.to_string());
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    let line = error_line(&stderr);
    assert!(line.starts_with("error: CHARGER_HTTP_LISTEN:"), "{stderr}");
    assert!(line.contains("already in use"), "{stderr}");
}

#[test]
fn a_bad_database_url_is_one_line_naming_the_setting() {
    let dir = TempDir::new();
    // A port nothing listens on: bind one, note it, free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    for url in [
        "mysql://root@127.0.0.1/charger".to_owned(),
        "sqlite:///nonexistent-directory/x/charger.db".to_owned(),
        format!("postgres://nobody:hunter2@127.0.0.1:{closed}/charger"),
    ] {
        let mut cmd = command(&dir.0);
        cmd.env("DATABASE_URL", &url);
        let (code, stderr) = run_to_end(cmd);
        assert_eq!(code, Some(2), "{url}: {stderr}");
        assert!(
            error_line(&stderr).starts_with("error: DATABASE_URL:"),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
    }
}

#[test]
fn a_secret_that_does_not_match_the_database_is_refused() {
    let dir = TempDir::new();
    let mut first = command(&dir.0);
    first.args(["provision", "--owner", "acme", "--count", "1", "--out", "-"]);
    let (code, stderr) = run_to_end(first);
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::write(dir.0.join("other.secret"), "ab".repeat(32)).expect("write");
    let mut cmd = command(&dir.0);
    cmd.env("CHARGER_SECRET_FILE", dir.0.join("other.secret"));
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        error_line(&stderr).starts_with("error: CHARGER_SECRET_FILE:"),
        "{stderr}"
    );
}

#[test]
fn provision_writes_one_private_bundle_per_charger() {
    let dir = TempDir::new();
    let out = dir.0.join("bundles.jsonl");
    let mut cmd = command(&dir.0);
    cmd.args([
        "provision",
        "--owner",
        "fleet",
        "--count",
        "300",
        "--connectors",
        "2",
    ])
    .arg("--out")
    .arg(&out);
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&out).expect("bundles");
    let bundles: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(bundles.len(), 300);
    assert_eq!(bundles[0]["device_id"], "fleet-00000");
    assert_eq!(bundles[0]["owner"], "fleet");
    assert_eq!(bundles[299]["mqtt"]["username"], "fleet-00299");
    assert_eq!(bundles[5]["key"].as_str().expect("key").len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).expect("out").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "bundles hold secrets");
    }
    // The same range again is refused with a clear line.
    let mut again = command(&dir.0);
    again.args([
        "provision",
        "--owner",
        "fleet",
        "--count",
        "1",
        "--out",
        "-",
    ]);
    let (code, stderr) = run_to_end(again);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(error_line(&stderr).contains("already exists"), "{stderr}");
}

#[test]
fn tls_settings_are_checked_at_start() {
    let dir = TempDir::new();
    let missing = dir.0.join("missing.pem");
    let mut only_cert = command(&dir.0);
    only_cert.env("CHARGER_TLS_CERT", &missing);
    let (code, stderr) = run_to_end(only_cert);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        error_line(&stderr).starts_with("error: CHARGER_TLS_CERT:"),
        "{stderr}"
    );
    assert!(error_line(&stderr).contains("together"), "{stderr}");

    let mut unreadable = command(&dir.0);
    unreadable
        .env("CHARGER_TLS_CERT", &missing)
        .env("CHARGER_TLS_KEY", &missing);
    let (code, stderr) = run_to_end(unreadable);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        error_line(&stderr).starts_with("error: CHARGER_TLS_CERT: cannot read"),
        "{stderr}"
    );
}

/// A MQTT 3.1.1 CONNECT with this client id and a password that is wrong.
fn connect_packet(client_id: &str) -> Vec<u8> {
    login_packet(client_id, "wrong")
}

/// A MQTT 3.1.1 CONNECT (rumqttc's codec): client id = user name, and a password.
fn login_packet(client_id: &str, password: &str) -> Vec<u8> {
    let mut connect = rumqttc::Connect::new(client_id);
    connect.keep_alive = 30;
    connect.set_login(client_id, password);
    let mut buf = bytes::BytesMut::new();
    connect.write(&mut buf).expect("encodes");
    buf.to_vec()
}

#[test]
fn logs_stay_short_whatever_a_client_sends_and_the_file_limit_is_raised() {
    use std::io::{Read as _, Write as _};
    let dir = TempDir::new();
    let mut server = start(&dir.0);
    // The open-file limit is raised at start, and said so.
    let line = server.wait_for("open_files=");
    assert!(line.contains("chargers="), "{line}");
    let mqtt = server.mqtt_addr();
    // A refused login with a 1,500-character client id (and user name): one short log line.
    let mut s = std::net::TcpStream::connect(&mqtt).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(&connect_packet(&"x".repeat(1_500)))
        .expect("CONNECT");
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).expect("CONNACK");
    assert_eq!(ack[3], 4, "bad user name or password");
    let line = server.wait_for("login refused");
    assert!(line.len() < 400, "a {}-byte log line", line.len());
    // A 65,000-byte client id is over the CONNECT limit: closed before any login or log.
    let mut s = std::net::TcpStream::connect(&mqtt).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(&connect_packet(&"y".repeat(65_000)));
    let mut buf = [0u8; 16];
    assert!(
        matches!(s.read(&mut buf), Ok(0) | Err(_)),
        "closed without an answer"
    );
    let addr = server.http_addr();
    assert_eq!(get(&addr, "/healthz", None), 200);
    assert!(
        server.seen.iter().all(|l| l.len() < 2_000),
        "a long log line: {:?}",
        server.seen.iter().map(String::len).max()
    );
}

#[test]
fn near_the_open_file_limit_chargers_are_refused_not_stalled() {
    use std::io::{Read as _, Write as _};
    let dir = TempDir::new();
    let out = dir.0.join("bundles.jsonl");
    let mut cmd = command(&dir.0);
    cmd.args(["provision", "--owner", "acme", "--count", "400"])
        .arg("--out")
        .arg(&out);
    let (code, stderr) = run_to_end(cmd);
    assert_eq!(code, Some(0), "{stderr}");
    let bundles: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .expect("bundles")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();

    // The server under a hard limit of 600 open files (as `ulimit -Hn 600` would leave
    // it), with 64 REST connections: 96 files are kept for the database and the rest,
    // an eighth of what REST leaves for sockets logging in (55), and 600 - 96 - 64 - 55 =
    // 385 chargers.
    let cmd = command(&dir.0);
    let program = cmd.get_program().to_owned();
    let mut limited = Command::new("bash");
    limited
        .arg("-c")
        .arg("ulimit -Sn 600 && ulimit -Hn 600 && exec \"$0\"")
        .arg(program)
        .current_dir(&dir.0)
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            limited.env(k, v);
        }
    }
    limited.env("CHARGER_HTTP_MAX_CONNECTIONS", "64");
    let mut server = support::start_command(limited);
    let line = server.wait_for("open_files=");
    assert!(line.contains("chargers=385"), "{line}");
    let mqtt = server.mqtt_addr();
    let http = server.http_addr();

    // 400 chargers log in: the first 385 are accepted, every other one is refused at once
    // (closed), none is left hanging, and the REST API keeps answering.
    let mut held = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for b in &bundles {
        let mut s = std::net::TcpStream::connect(&mqtt).expect("TCP connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let id = b["device_id"].as_str().expect("id");
        let password = b["mqtt"]["password"].as_str().expect("password");
        let _ = s.write_all(&login_packet(id, password));
        let mut ack = [0u8; 4];
        match s.read_exact(&mut ack) {
            Ok(()) if ack == [0x20, 2, 0, 0] => {
                accepted += 1;
                held.push(s);
            }
            Ok(()) => panic!("an unexpected CONNACK {ack:?}"),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("charger {id} left waiting: a stall")
            }
            Err(_) => refused += 1,
        }
    }
    assert_eq!(accepted, 385, "refused {refused}");
    assert_eq!(refused, 15);
    assert_eq!(get(&http, "/healthz", None), 200);
    server.wait_for("charger connection cap is reached");
}

/// Runs the server under an open-file limit of `files` (soft and hard), with no other
/// setting changed.
fn under_file_limit(dir: &Path, files: u32) -> Command {
    let cmd = command(dir);
    let program = cmd.get_program().to_owned();
    let mut limited = Command::new("bash");
    limited
        .arg("-c")
        .arg(format!(
            "ulimit -Sn {files} && ulimit -Hn {files} && exec \"$0\""
        ))
        .arg(program)
        .current_dir(dir)
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            limited.env(k, v);
        }
    }
    limited
}

/// At a hard limit of 1,024 open files and default settings, the caps are shared out (REST
/// a quarter, chargers most of the rest) and said in one line; below 256 the server
/// refuses to start, with a line that says what to raise, instead of serving one charger.
#[test]
fn a_low_open_file_limit_is_shared_out_or_refused_with_a_clear_line() {
    let dir = TempDir::new();
    let mut server = support::start_command(under_file_limit(&dir.0, 1024));
    let line = server.wait_for("open_files=");
    for expected in [
        "open_files=1024",
        "http_connections=232",
        "chargers=609",
        "pending_logins=87",
    ] {
        assert!(line.contains(expected), "{expected} in {line}");
    }
    let http = server.http_addr();
    assert_eq!(get(&http, "/healthz", None), 200);
    drop(server);

    let dir = TempDir::new();
    let (code, stderr) = run_to_end(under_file_limit(&dir.0, 200));
    assert_eq!(code, Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: the open-file limit is 200") && last.contains("at least 256"),
        "{stderr}"
    );
}

/// Without `RUST_LOG` the log shows this server's lines, not the libraries' info lines
/// (rumqttd logs every router link); `CHARGER_LOG_FORMAT=json` writes one JSON object per
/// line; `--version` answers.
#[test]
fn logs_default_to_our_lines_and_can_be_json() {
    let dir = TempDir::new();
    let mut cmd = command(&dir.0);
    cmd.env_remove("RUST_LOG")
        .env("CHARGER_LOG_FORMAT", "json")
        .env("CHARGER_ADMIN_TOKEN", "cli-test-admin-token");
    let mut server = start_command(cmd);
    let line = server.wait_for("REST API listening");
    let first: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(first["fields"]["message"], "REST API listening");
    assert_eq!(first["level"], "INFO");
    // A charger connecting makes rumqttd log at info; none of it may show.
    let broker = server.wait_for("MQTT broker listening");
    let broker: serde_json::Value = serde_json::from_str(&broker).expect("a JSON line");
    let mqtt = broker["fields"]["mqtt_addr"]
        .as_str()
        .expect("mqtt_addr field")
        .to_owned();
    let mut s = std::net::TcpStream::connect(&mqtt).expect("connect");
    use std::io::Write as _;
    s.write_all(&login_packet("nobody", "wrong")).expect("send");
    // The refusal is logged once the server has handled the login.
    server.wait_for("login refused");
    let _ = server.child.kill();
    while let Ok(line) = server.lines.recv_timeout(Duration::from_millis(200)) {
        server.seen.push(line);
    }
    for line in &server.seen {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"));
        let target = v["target"].as_str().unwrap_or_default();
        assert!(
            target.starts_with("charger_server") || v["level"] != "INFO",
            "a library's info line: {line}"
        );
    }

    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("charger-server {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A fenced block of docs/operations.md, by its language tag (`ini`, `sh`).
fn operations_block(lang: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .expect("docs/operations.md");
    let start = doc
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("a ```{lang} block"))
        + 4
        + lang.len();
    let len = doc[start..].find("```").expect("the block's end");
    doc[start..start + len].to_owned()
}

/// The systemd unit and environment file of docs/operations.md, tried as written: the
/// unit passes `systemd-analyze verify`, and the server starts with the file's settings
/// under the unit's open-file limit.
#[test]
fn the_documented_systemd_unit_and_environment_file_work() {
    let unit = operations_block("ini");
    let env = operations_block("sh");
    assert!(unit.contains("LimitNOFILE=65536"), "{unit}");
    let dir = TempDir::new();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if analyze.exists() {
        let path = dir.0.join("charger-server.service");
        std::fs::write(&path, unit.replace("/usr/local/bin/charger-server", BIN))
            .expect("unit file");
        let out = Command::new(analyze)
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Without a running systemd it may say so; anything about the unit itself fails.
        let about_unit: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("charger-server.service"))
            .collect();
        assert!(about_unit.is_empty(), "systemd-analyze verify: {stderr}");
    } else {
        assert!(!ci, "CI=true but systemd-analyze is missing");
    }

    // The environment file's settings, with the data directory and ports made local.
    let data = dir.0.join("state");
    // The unit's open-file limit, or this machine's hard limit when lower (a container).
    let documented: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .and_then(|n| n.trim().parse().ok())
        .expect("LimitNOFILE");
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    let files = documented.min(hard);
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={files}:{files}"))
        .arg("--")
        .arg(BIN);
    cmd.current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CHARGER_ADMIN_TOKEN", "cli-test-admin-token");
    for line in env.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').expect("KEY=value");
        let value = match key {
            "CHARGER_DATA_DIR" => data.display().to_string(),
            k if k.ends_with("_LISTEN") => "127.0.0.1:0".to_owned(),
            _ => value.to_owned(),
        };
        cmd.env(key, value);
    }
    let mut server = start_command(cmd);
    // The limit in force, logged at start (a warning when it holds fewer chargers than
    // CHARGER_MQTT_MAX_CONNECTIONS); the environment file asks for JSON lines.
    let line = server.wait_for("\"open_files\":");
    assert!(line.contains(&format!("\"open_files\":{files}")), "{line}");
    server.wait_for("REST API listening");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&data)
        .expect("data dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}
