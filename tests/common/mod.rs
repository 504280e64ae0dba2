//! Shared helpers for the end-to-end tests: a throwaway database per test (SQLite always,
//! PostgreSQL from `TEST_DATABASE_URL`), the real server on free loopback ports, and a
//! small HTTP client.
//!
//! `TEST_LOG=1` shows the server's logs. In CI (`CI=true`) a Postgres test without
//! `TEST_DATABASE_URL` fails instead of skipping.

pub mod browser;
pub mod cluster;
pub mod mqtt;
pub mod ocpp;

use std::path::PathBuf;

use charger_server::secrets::Secret;
use charger_server::store::{self, SqlStore};
use charger_server::{App, Config};
use serde_json::Value;
use sqlx::Connection as _;

/// The admin token every test server is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("charger-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        charger_server::telemetry::init();
    }
}

/// The Postgres server URL for tests, or `None` to skip (never in CI).
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but TEST_DATABASE_URL is not set: the Postgres suite must run in CI")
        }
        _ => {
            eprintln!("TEST_DATABASE_URL is not set: skipping a Postgres test");
            None
        }
    }
}

/// The database tests run the server on: Postgres when `TEST_DATABASE_URL` is set.
pub fn default_db() -> Db {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Db::Postgres,
        _ => Db::Sqlite,
    }
}

/// A fresh, empty database URL of the given kind (`None`: Postgres unavailable, skip).
pub async fn fresh_database(db: Db, dir: &TempDir) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!("sqlite://{}", dir.0.join("charger.db").display())),
        Db::Postgres => {
            let server = postgres_url()?;
            let name = format!("charger_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&server)
                .await
                .expect("connect to TEST_DATABASE_URL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let _ = conn.close().await;
            Some(with_database_name(&server, &name))
        }
    }
}

/// `postgres://u@h:5432/postgres?x=y` with the database name replaced.
fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A migrated store on a fresh database.
pub async fn test_store(db: Db) -> Option<(SqlStore, TempDir)> {
    init_logs();
    let dir = TempDir::new();
    let url = fresh_database(db, &dir).await?;
    let store = store::connect(&url).await.expect("connect and migrate");
    Some((store, dir))
}

/// A running server and a client for it.
pub struct TestApp {
    pub app: App,
    pub rest: Rest,
    pub dir: TempDir,
    pub db: Db,
    /// The server's database, for a test that must reach behind the API.
    pub database_url: String,
}

/// A REST client of one server.
pub struct Rest {
    pub base: String,
    pub http: reqwest::Client,
}

impl std::ops::Deref for TestApp {
    type Target = Rest;
    fn deref(&self) -> &Rest {
        &self.rest
    }
}

/// Starts the server on free loopback ports with a fresh database of the default kind.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(default_db())
        .await
        .expect("database for the test server")
}

/// Starts the server on the given database kind (`None`: Postgres unavailable, skip).
pub async fn spawn_app_on(db: Db) -> Option<TestApp> {
    spawn_app_with(db, |_| {}).await
}

/// Starts the server like [`spawn_app_on`], with the config adjusted by `adjust`.
pub async fn spawn_app_with(db: Db, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    init_logs();
    let dir = TempDir::new();
    let url = fresh_database(db, &dir).await?;
    let mut config = Config::for_tests(dir.0.clone());
    adjust(&mut config);
    config.database_url = Some(Secret::new(url.clone()));
    config.admin_token = Some(Secret::new(ADMIN_TOKEN));
    let app = App::start(config).await.expect("server starts");
    let base = format!("http://{}", app.http_addr);
    Some(TestApp {
        app,
        rest: Rest {
            base,
            http: reqwest::Client::new(),
        },
        dir,
        db,
        database_url: url,
    })
}

impl TestApp {
    /// One integer a query returns, read behind the API's back.
    pub async fn scalar(&self, query: &str) -> i64 {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("connect to the test database");
        sqlx::query_scalar(query)
            .fetch_one(&mut conn)
            .await
            .expect(query)
    }

    /// Runs one SQL statement on the server's database behind its back (to break a row
    /// the API would never store); returns the rows it changed.
    pub async fn sql(&self, statement: &str) -> u64 {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("connect to the test database");
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect(statement)
            .rows_affected()
    }
}

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost signed by it,
/// made with the `openssl` command.
pub struct TestCa {
    pub dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl TestCa {
    pub fn new() -> Self {
        let dir = TempDir::new();
        let path = |name: &str| dir.0.join(name);
        std::fs::write(
            path("ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("extensions");
        let openssl = |args: &[&str]| {
            let status = std::process::Command::new("openssl")
                .current_dir(&dir.0)
                .args(args)
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl");
            assert!(status.success(), "openssl {args:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca_args = [
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ];
        openssl(&[&["req", "-x509"][..], &ec, &ca_args].concat());
        let csr_args = [
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ];
        openssl(&[&["req"][..], &ec, &csr_args].concat());
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext",
            "-out",
            "cert.pem",
        ]);
        Self {
            cert: path("cert.pem"),
            key: path("key.pem"),
            ca: path("ca.pem"),
            dir,
        }
    }

    /// GET `path` over HTTPS from `addr`, trusting this CA only; (status, body text).
    /// (A small client of its own: the tests' HTTP client has no TLS.)
    pub async fn https_get(
        &self,
        addr: std::net::SocketAddr,
        path: &str,
        token: &str,
    ) -> std::io::Result<(u16, String)> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;
        use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).expect("CA file") {
            roots
                .add(cert.expect("CA certificate"))
                .expect("a usable CA");
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        Ok((status, body))
    }
}

impl TestCa {
    /// The status line and headers of GET `path` over HTTPS (no token).
    pub async fn https_head(
        &self,
        addr: std::net::SocketAddr,
        path: &str,
    ) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;
        use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).expect("CA file") {
            roots
                .add(cert.expect("CA certificate"))
                .expect("a usable CA");
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).into_owned();
        Ok(text.split("\r\n\r\n").next().unwrap_or("").to_owned())
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// An HTTP answer: status and JSON body (`Value::Null` when the body is empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Rest {
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("HTTP request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("HTTP body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body }
    }

    /// Sends a raw body with a JSON content type.
    pub async fn post_raw(&self, path: &str, token: &str, body: &str) -> Answer {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("HTTP request");
        let status = res.status().as_u16();
        let body = serde_json::from_str(&res.text().await.expect("body")).unwrap_or(Value::Null);
        Answer { status, body }
    }

    /// Polls the device until REST shows it `online` (or not); gives up after 10 s.
    pub async fn wait_for_online(&self, device: &str, online: bool) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let a = self
                .get(&format!("/api/v1/devices/{device}"), ADMIN_TOKEN)
                .await;
            if a.body["online"] == online {
                return a.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{device} online={online} never seen: {a:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.request(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request(reqwest::Method::POST, path, Some(token), Some(&body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request(reqwest::Method::PUT, path, Some(token), Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request(reqwest::Method::PATCH, path, Some(token), Some(&body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.request(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// Provisions `count` chargers `<owner>-NNNNN` for a new or existing owner and returns
    /// their firmware bundles.
    pub async fn provision(
        &self,
        owner: &str,
        count: usize,
    ) -> Vec<charger_protocol::FirmwareBundle> {
        if self
            .get(&format!("/api/v1/owners/{owner}"), ADMIN_TOKEN)
            .await
            .status
            == 404
        {
            let a = self
                .post(
                    "/api/v1/owners",
                    ADMIN_TOKEN,
                    serde_json::json!({"id": owner, "name": owner}),
                )
                .await;
            assert_eq!(a.status, 201, "{a:?}");
        }
        let a = self
            .post(
                "/api/v1/devices/bulk",
                ADMIN_TOKEN,
                serde_json::json!({"owner": owner, "prefix": format!("{owner}-"), "count": count}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        serde_json::from_value(a.body["devices"].clone()).expect("bundles")
    }

    /// Imports `n` tags of `owner` (`BE000000`, `BE000001`, ...) over REST, each allowed
    /// 100 sessions at once (the benchmarks' load tags); returns their uids.
    pub async fn import_load_tags(&self, owner: &str, n: usize) -> Vec<String> {
        let tags: Vec<String> = (0..n).map(|i| format!("BE{i:06X}")).collect();
        let mut csv = String::from("uid,owner,max_sessions\n");
        for t in &tags {
            csv.push_str(&format!("{t},{owner},100\n"));
        }
        let res = self
            .http
            .post(format!("{}/api/v1/tags/import", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .expect("tag import");
        assert!(res.status().is_success(), "tag import: {}", res.status());
        tags
    }

    /// Creates an owner and returns a token scoped to it.
    /// Signs in to the console with `token`; the session cookie.
    pub async fn console_sign_in(&self, token: &str) -> String {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .post(format!("{}/login", self.base))
            .form(&[("token", token)])
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 303);
        let set = r
            .headers()
            .get("set-cookie")
            .expect("a cookie")
            .to_str()
            .expect("text");
        set.split(';').next().expect("cookie").to_owned()
    }

    /// GET `path` with a console cookie: (status, body).
    pub async fn console_get(&self, cookie: &str, path: &str) -> (u16, String) {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .expect("GET");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    pub async fn owner_with_token(&self, id: &str) -> String {
        let a = self
            .post(
                "/api/v1/owners",
                ADMIN_TOKEN,
                serde_json::json!({"id": id, "name": format!("{id} Ltd")}),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        let a = self
            .post(
                &format!("/api/v1/owners/{id}/tokens"),
                ADMIN_TOKEN,
                Value::Null,
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["token"].as_str().expect("token").to_owned()
    }
}

/// Asserts an error answer: the status, and the `{"error", "message"}` body.
pub fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.body["error"], code, "{a:?}");
    assert!(
        a.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{a:?}"
    );
}

/// Generates one `#[tokio::test]` per backend (modules `sqlite` and `postgres`) for each
/// case `async fn case(fixture)`, where the fixture comes from `$make(Db) -> Option<_>`.
/// The Postgres variant returns early when Postgres is not configured (never in CI).
#[macro_export]
macro_rules! on_both_databases {
    ($make:ident => $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture = super::$make($crate::Db::Sqlite).await.expect("sqlite fixture");
                    super::$case(fixture).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(fixture) = super::$make($crate::Db::Postgres).await else { return };
                    super::$case(fixture).await;
                }
            )*
        }
    };
}

/// The count of `charger_limit_hits_total{limit="<limit>"}` in a `/metrics` text.
pub fn limit_hits(metrics: &str, limit: &str) -> u64 {
    let prefix = format!("charger_limit_hits_total{{limit=\"{limit}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{limit} in /metrics"))
}

impl TestApp {
    /// A REST client of a server at `base`.
    pub fn rest_of(base: String) -> Rest {
        Rest {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// `GET path` as text (no token).
    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("text")
    }

    /// The hits of one limit so far, from `/metrics`.
    pub async fn limit_hits(&self, limit: &str) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        limit_hits(&text, limit)
    }
}

/// Whether the server closes `s` within `wait` (reads until the end of the stream or an
/// error, discarding what comes).
pub async fn closed_within(s: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 1024];
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Tables and columns a refused request may change: the kept answer (its idempotency), the
/// unknown-tag sightings (an audit of refusals), the audit log, presence and token use.
const SNAPSHOT_EXCLUDED: &[&str] = &[
    "mqtt_requests",
    "unknown_tags",
    "audit_log",
    "console_sessions",
    "_sqlx_migrations",
    "api_tokens.last_used_at",
    "devices.online",
    "devices.online_conn",
    "devices.last_seen",
];

impl TestApp {
    /// Every row of every table (but [`SNAPSHOT_EXCLUDED`]) as text, sorted: two
    /// snapshots are equal when nothing was changed. SQLite only.
    pub async fn snapshot(&self) -> Vec<String> {
        use sqlx::Connection as _;
        assert_eq!(self.db, Db::Sqlite, "snapshots read SQLite's catalog");
        let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
            .await
            .expect("connect to the test database");
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&mut conn)
        .await
        .expect("tables");
        let mut rows = Vec::new();
        for (table,) in tables {
            if SNAPSHOT_EXCLUDED.contains(&table.as_str()) {
                continue;
            }
            let columns: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&mut conn)
                    .await
                    .expect("columns");
            let kept: Vec<String> = columns
                .into_iter()
                .map(|(c,)| c)
                .filter(|c| !SNAPSHOT_EXCLUDED.contains(&format!("{table}.{c}").as_str()))
                .map(|c| format!("quote(\"{c}\")"))
                .collect();
            let sql = format!(
                "SELECT '{table}: ' || {} FROM \"{table}\"",
                kept.join(" || '|' || ")
            );
            let found: Vec<(String,)> = sqlx::query_as(&sql)
                .fetch_all(&mut conn)
                .await
                .expect("rows");
            rows.extend(found.into_iter().map(|(r,)| r));
        }
        rows.sort();
        rows
    }
}
