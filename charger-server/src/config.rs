//! Settings: one clap flag and one environment variable each, so `charger-server --help`
//! is the configuration reference.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::secrets::Secret;

/// The MyBox charging backend: MQTT broker for chargers, charger API, REST API.
#[derive(Debug, Parser)]
#[command(name = "charger-server", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; without a subcommand the server runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Provision many chargers at once and write their firmware bundles as JSON lines.
    Provision(ProvisionArgs),
    /// Replace every stored admin token with a new one, printed once.
    RotateAdminToken,
}

/// `charger-server provision`.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// Owner of the new chargers; created (named after its id) when it does not exist.
    #[arg(long)]
    pub owner: String,
    /// How many chargers to create (at most 10000 per call).
    #[arg(long)]
    pub count: usize,
    /// Device id prefix; ids are <prefix><n> with n zero-padded. Default: "<owner>-".
    #[arg(long)]
    pub prefix: Option<String>,
    /// First number n.
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    /// Connectors per charger.
    #[arg(long, default_value_t = 1)]
    pub connectors: i64,
    /// Each connector's rated power in W (default 22000): energy a charger reports beyond
    /// what it can deliver in the elapsed time is refused.
    #[arg(long)]
    pub max_power_w: Option<i64>,
    /// The protocol the chargers speak: mybox (the MQTT API), ocpp1.6 or ocpp2.0.1.
    #[arg(long, default_value = "mybox", value_parser = parse_protocol)]
    pub protocol: crate::records::devices::Protocol,
    /// Where to write the bundles (one JSON object per line, file mode 0600); - for stdout.
    #[arg(long, default_value = "bundles.jsonl")]
    pub out: PathBuf,
}

fn parse_protocol(s: &str) -> Result<crate::records::devices::Protocol, String> {
    crate::records::devices::Protocol::parse(s)
        .ok_or_else(|| "expected mybox, ocpp1.6 or ocpp2.0.1".to_owned())
}

/// Whether the REST API speaks HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HttpTls {
    /// HTTPS when a certificate is configured.
    Auto,
    /// Plain HTTP (TLS terminated by a proxy in front).
    Off,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Which MQTT broker chargers connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerMode {
    /// The broker inside this process (one instance).
    Embedded,
    /// An existing broker (Mosquitto, EMQX) this instance connects to as a client; several
    /// instances share the requests through an MQTT 5 shared subscription.
    External,
}

/// Who provisions the chargers' accounts and ACL on an external broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerAcl {
    /// Mosquitto 2's dynamic security plugin, over `$CONTROL/dynamic-security/v1`.
    Dynsec,
    /// The broker asks this server over HTTP (EMQX 5: `/broker/emqx/authn` and `authz`,
    /// with CHARGER_BROKER_AUTH_SECRET).
    Http,
}

/// Server settings.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Log lines as `text` or `json` (one object per line). Which lines: `RUST_LOG`
    /// (default: this server's at info, the libraries' at warn).
    #[arg(
        long,
        env = "CHARGER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,

    /// The MQTT broker chargers connect to: `embedded` (the default; one instance) or
    /// `external` (CHARGER_MQTT_BROKER_URL; several instances on one PostgreSQL).
    #[arg(
        long,
        env = "CHARGER_MQTT_BROKER",
        value_enum,
        default_value_t = BrokerMode::Embedded,
        global = true
    )]
    pub mqtt_broker: BrokerMode,

    /// The external broker: mqtt://host:port, or mqtts://host:port for TLS (verified with
    /// CHARGER_MQTT_BROKER_CA, else the system's roots).
    #[arg(long, env = "CHARGER_MQTT_BROKER_URL", global = true)]
    pub mqtt_broker_url: Option<String>,

    /// This server's user name on the external broker.
    #[arg(long, env = "CHARGER_MQTT_BROKER_USERNAME", global = true)]
    pub mqtt_broker_username: Option<String>,

    /// This server's password on the external broker.
    #[arg(
        long,
        env = "CHARGER_MQTT_BROKER_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub mqtt_broker_password: Option<Secret>,

    /// Keep-alive of each instance's connection to the external broker, in seconds: a
    /// hung instance (stopped, not dead) is dropped by the broker after 1.5 times this,
    /// and its share of the requests goes to the others.
    #[arg(
        long,
        env = "CHARGER_MQTT_BROKER_KEEP_ALIVE_S",
        default_value_t = 5,
        value_parser = clap::value_parser!(u16).range(5..=300),
        global = true
    )]
    pub mqtt_broker_keep_alive_s: u16,

    /// PostgreSQL: longest statement, in ms (`statement_timeout` of every connection);
    /// a longer one fails (503, or its batch retried).
    #[arg(
        long,
        env = "CHARGER_PG_STATEMENT_TIMEOUT_MS",
        default_value_t = 60_000,
        value_parser = clap::value_parser!(u32).range(100..=3_600_000),
        global = true
    )]
    pub pg_statement_timeout_ms: u32,

    /// PostgreSQL: longest wait for a lock, in ms (`lock_timeout`): a batch blocked by a
    /// hung instance's locks gives up and is retried instead of waiting with it.
    #[arg(
        long,
        env = "CHARGER_PG_LOCK_TIMEOUT_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u32).range(100..=3_600_000),
        global = true
    )]
    pub pg_lock_timeout_ms: u32,

    /// PostgreSQL: longest a session may sit in an open transaction doing nothing, in ms
    /// (`idle_in_transaction_session_timeout`): a hung instance's transaction is ended,
    /// and its locks released, after this.
    #[arg(
        long,
        env = "CHARGER_PG_IDLE_IN_TRANSACTION_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u32).range(100..=3_600_000),
        global = true
    )]
    pub pg_idle_in_transaction_ms: u32,

    /// PEM CA certificate to verify an mqtts:// external broker with.
    #[arg(long, env = "CHARGER_MQTT_BROKER_CA", global = true)]
    pub mqtt_broker_ca: Option<PathBuf>,

    /// Shared-subscription group the instances share requests in.
    #[arg(
        long,
        env = "CHARGER_MQTT_SHARE_GROUP",
        default_value = "mybox",
        global = true
    )]
    pub mqtt_share_group: String,

    /// Who provisions the chargers on the external broker: `dynsec` (Mosquitto 2) or
    /// `http` (EMQX 5 asks this server).
    #[arg(
        long,
        env = "CHARGER_MQTT_BROKER_ACL",
        value_enum,
        default_value_t = BrokerAcl::Dynsec,
        global = true
    )]
    pub mqtt_broker_acl: BrokerAcl,

    /// Heartbeat interval chargers are told in `boot`, in seconds; behind an external
    /// broker a charger silent for twice this is shown offline.
    #[arg(
        long,
        env = "CHARGER_HEARTBEAT_S",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        global = true
    )]
    pub heartbeat_s: u64,

    /// Address of the MQTT listener for chargers.
    #[arg(
        long,
        env = "CHARGER_MQTT_LISTEN",
        default_value = "0.0.0.0:1883",
        global = true
    )]
    pub mqtt_listen: SocketAddr,

    /// Address of the MQTT-over-TLS listener; bound only when CHARGER_TLS_CERT and
    /// CHARGER_TLS_KEY are set.
    #[arg(
        long,
        env = "CHARGER_MQTT_TLS_LISTEN",
        default_value = "0.0.0.0:8883",
        global = true
    )]
    pub mqtt_tls_listen: SocketAddr,

    /// PEM certificate chain for the MQTT TLS listener (with CHARGER_TLS_KEY).
    #[arg(long, env = "CHARGER_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for the MQTT TLS listener (with CHARGER_TLS_CERT).
    #[arg(long, env = "CHARGER_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,

    /// Most simultaneous MQTT connections (router slots): chargers plus a few internal links.
    #[arg(
        long,
        env = "CHARGER_MQTT_MAX_CONNECTIONS",
        default_value_t = 20_000,
        global = true
    )]
    pub mqtt_max_connections: usize,

    /// Largest charger request payload, in bytes; a larger one is answered with code 413.
    /// Packets over four times this (at least 1 MiB) close the connection.
    #[arg(
        long,
        env = "CHARGER_MQTT_MAX_PAYLOAD",
        default_value_t = 65_536,
        value_parser = clap::value_parser!(u32).range(1024..=16_777_216),
        global = true
    )]
    pub mqtt_max_payload: u32,

    /// Largest CONNECT packet before login, in bytes; a bigger one closes the socket.
    #[arg(
        long,
        env = "CHARGER_MQTT_MAX_CONNECT_BYTES",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u32).range(256..=65_536),
        global = true
    )]
    pub mqtt_max_connect_bytes: u32,

    /// Sockets that may be logging in at once (each has 10 s to send its CONNECT); more
    /// are closed at once.
    #[arg(
        long,
        env = "CHARGER_MQTT_MAX_PENDING_LOGINS",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub mqtt_max_pending_logins: u32,

    /// Sockets one source address (an IPv4 address or an IPv6 /64) may have logging in
    /// at once; more from it are closed at once, so that one source cannot take the
    /// whole of CHARGER_MQTT_MAX_PENDING_LOGINS.
    #[arg(
        long,
        env = "CHARGER_MQTT_MAX_PENDING_LOGINS_PER_SOURCE",
        default_value_t = 128,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub mqtt_max_pending_logins_per_source: u32,

    /// Logins one charger (by device id) may make per minute, with as many at once; more
    /// are refused (CONNACK "server unavailable" / 5.0 "server busy") until its budget
    /// refills, whichever connection it comes from.
    #[arg(
        long,
        env = "CHARGER_MQTT_LOGINS_PER_MINUTE",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub mqtt_logins_per_minute: u32,

    /// Requests per second each charger may send, sustained; over it, its requests wait.
    #[arg(
        long,
        env = "CHARGER_MQTT_RATE",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub mqtt_rate: u32,

    /// Requests a charger may send at once above its rate.
    #[arg(
        long,
        env = "CHARGER_MQTT_BURST",
        default_value_t = 40,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub mqtt_burst: u32,

    /// Seconds a charger may stay over its rate before it is disconnected.
    #[arg(
        long,
        env = "CHARGER_MQTT_ABUSE_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        global = true
    )]
    pub mqtt_abuse_seconds: u64,

    /// OCPP chargers may connect over plain ws:// (OCPP security profile 1: Basic auth
    /// without TLS) when the REST listener has no certificate. Off by default: then an
    /// OCPP charger must come over wss:// (profile 2), and a plain handshake is refused 403.
    #[arg(
        long,
        env = "CHARGER_OCPP_ALLOW_PLAIN",
        default_value_t = false,
        global = true
    )]
    pub ocpp_allow_plain: bool,

    /// Largest OCPP WebSocket message (and frame) a charger may send, in bytes; a bigger
    /// one closes its socket (1009).
    #[arg(
        long,
        env = "CHARGER_OCPP_MAX_MESSAGE_BYTES",
        default_value_t = 65_536,
        value_parser = clap::value_parser!(u32).range(1024..=16_777_216),
        global = true
    )]
    pub ocpp_max_message_bytes: u32,

    /// OCPP 2.0.1 transactions a station may have told of before their idToken (kept in
    /// memory for their start); beyond, its oldest is forgotten (it then starts from the event with its idToken).
    #[arg(
        long,
        env = "CHARGER_OCPP_PENDING_TRANSACTIONS",
        default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(1..=1024),
        global = true
    )]
    pub ocpp_pending_transactions: u32,

    /// OCPP WebSockets open at once; a handshake beyond is refused 503.
    #[arg(
        long,
        env = "CHARGER_OCPP_MAX_CONNECTIONS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub ocpp_max_connections: u32,

    /// OCPP WebSockets one source address (an IPv4 address or an IPv6 /64) may hold; a
    /// handshake beyond is refused 503 (a site's chargers behind one NAT share it).
    #[arg(
        long,
        env = "CHARGER_OCPP_MAX_CONNECTIONS_PER_SOURCE",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub ocpp_max_connections_per_source: u32,

    /// The DataTransfer vendorId the server answers (with Accepted and no data);
    /// any other is UnknownVendorId. Unset: every vendorId is UnknownVendorId.
    #[arg(long, env = "CHARGER_OCPP_VENDOR_ID", global = true)]
    pub ocpp_vendor_id: Option<String>,

    /// Subscriptions one charger connection may hold.
    #[arg(
        long,
        env = "CHARGER_MQTT_MAX_SUBSCRIPTIONS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=1024),
        global = true
    )]
    pub mqtt_max_subscriptions: u32,

    /// QoS 1 answers written to one charger and not acknowledged yet; as many more wait,
    /// further ones are dropped (a repeat of the request gets the kept answer).
    #[arg(
        long,
        env = "CHARGER_MQTT_MAX_INFLIGHT",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(1..=65_535),
        global = true
    )]
    pub mqtt_max_inflight: u32,

    /// How long the answer to a charger request is kept for repeats of it (the
    /// idempotency window), in days; older ones are deleted every 10 minutes.
    #[arg(
        long,
        env = "CHARGER_REQUEST_LOG_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=3650),
        global = true
    )]
    pub request_log_days: u32,

    /// Unknown-tag sightings kept per owner (the most recent; each is one uid at one
    /// charger, with its count of attempts).
    #[arg(
        long,
        env = "CHARGER_UNKNOWN_TAGS_PER_OWNER",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub unknown_tags_per_owner: u32,

    /// Chargers and tags kept in the authorize read model (docs/storage.md,
    /// "Authorize from memory"); past it, authorize reads the database for the rest. 0
    /// turns the read model off.
    #[arg(
        long,
        env = "CHARGER_READ_MODEL_ENTRIES",
        default_value_t = 200_000,
        value_parser = clap::value_parser!(u32).range(0..=10_000_000),
        global = true
    )]
    pub read_model_entries: u32,

    /// Oldest offline session start (a `session-start` with a `local_id`) accepted without
    /// dispute, in days; an older one is recorded as disputed, billed nothing.
    #[arg(
        long,
        env = "CHARGER_OFFLINE_MAX_AGE_DAYS",
        default_value_t = 90,
        value_parser = clap::value_parser!(u32).range(1..=3650),
        global = true
    )]
    pub offline_max_age_days: u32,

    /// Seconds credentials superseded by an `ownership-claim` or `rekey` may still log in,
    /// only to repeat that exchange's request and read its kept answer (a lost answer
    /// never strands a charger); everything else they send is refused.
    #[arg(
        long,
        env = "CHARGER_CREDENTIALS_GRACE_S",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(0..=86_400),
        global = true
    )]
    pub credentials_grace_s: u64,

    /// Seconds a live `session-start` (one without a `local_id`) may be behind the
    /// server's clock; an older one is refused (422 `started_at`). Starts made offline
    /// carry a `local_id` and may be older (CHARGER_OFFLINE_MAX_AGE_DAYS).
    #[arg(
        long,
        env = "CHARGER_LIVE_START_MAX_AGE_S",
        default_value_t = 900,
        value_parser = clap::value_parser!(u64).range(60..=86_400),
        global = true
    )]
    pub live_start_max_age_s: u64,

    /// Open transfer offers (offered or accepted) addressed to one owner id; more are
    /// refused (409 `receiver_inbox_full`), whether that owner exists or not.
    #[arg(
        long,
        env = "CHARGER_TRANSFERS_PER_RECEIVER",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub transfers_per_receiver: u32,

    /// Open transfer offers one owner may have addressed to one receiving owner id, so that
    /// one sender cannot fill a receiver's CHARGER_TRANSFERS_PER_RECEIVER alone (409
    /// `too_many_offers`).
    #[arg(
        long,
        env = "CHARGER_TRANSFERS_PER_PAIR",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub transfers_per_pair: u32,

    /// Console sessions one token may hold at once: signing in again ends the oldest
    /// beyond this (counted as `console_sessions_ended`).
    #[arg(
        long,
        env = "CHARGER_CONSOLE_SESSIONS_PER_TOKEN",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=10_000),
        global = true
    )]
    pub console_sessions_per_token: u32,

    /// Time between the site balancer's runs when nothing happens, in ms (leases are
    /// renewed, offline chargers' leases run out, paused sessions take their turn).
    #[arg(
        long,
        env = "CHARGER_SITE_TICK_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000),
        global = true
    )]
    pub site_tick_ms: u64,

    /// How long an admitted session on a full site keeps its current before a paused one
    /// of its priority takes its turn, in s.
    #[arg(
        long,
        env = "CHARGER_SITE_ROTATE_S",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=86_400),
        global = true
    )]
    pub site_rotate_s: u64,

    /// How long the audit log of operators' actions on chargers is kept, in days.
    #[arg(
        long,
        env = "CHARGER_AUDIT_LOG_DAYS",
        default_value_t = 400,
        value_parser = clap::value_parser!(u32).range(1..=36_500),
        global = true
    )]
    pub audit_log_days: u32,

    /// Answer REQs on the `echo` endpoint by publishing the payload back unchanged on the
    /// RES topic, with no envelope check, crypto or database: the broker's own round
    /// trip, which the load benchmark uses as its baseline. Off by default: then `echo`
    /// is an ordinary request to an unknown endpoint, checked like any other (401 unless
    /// it opens under the charger's key, then 404).
    #[arg(
        long,
        env = "CHARGER_MQTT_ECHO",
        default_value_t = false,
        global = true
    )]
    pub mqtt_echo: bool,

    /// Host name written into firmware bundles for chargers to connect to. Default: the
    /// MQTT listen address, or this machine's host name when that is 0.0.0.0 or [::].
    #[arg(long, env = "CHARGER_MQTT_PUBLIC_HOST", global = true)]
    pub mqtt_public_host: Option<String>,

    /// Address of the REST API.
    #[arg(
        long,
        env = "CHARGER_HTTP_LISTEN",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    pub http_listen: SocketAddr,

    /// Whether the REST API speaks HTTPS: `auto` when CHARGER_TLS_CERT and CHARGER_TLS_KEY
    /// are set (the same certificate as MQTT over TLS), `off` for plain HTTP (behind a
    /// proxy that terminates TLS).
    #[arg(
        long,
        env = "CHARGER_HTTP_TLS",
        value_enum,
        default_value_t = HttpTls::Auto,
        global = true
    )]
    pub http_tls: HttpTls,

    /// Most open REST connections; a new one beyond it is closed at once (counted).
    #[arg(
        long,
        env = "CHARGER_HTTP_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub http_max_connections: u32,

    /// Open REST connections one source address (an IPv4 address or an IPv6 /64) may
    /// hold; a new one beyond it is closed at once (counted). Behind a reverse proxy every
    /// client has the proxy's address: set it to CHARGER_HTTP_MAX_CONNECTIONS there.
    #[arg(
        long,
        env = "CHARGER_HTTP_MAX_CONNECTIONS_PER_SOURCE",
        default_value_t = 128,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub http_max_connections_per_source: u32,

    /// Console sign-in attempts one source address may make per minute (with as many at
    /// once); more are answered 429 and logged.
    #[arg(
        long,
        env = "CHARGER_LOGIN_ATTEMPTS_PER_MINUTE",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        global = true
    )]
    pub login_attempts_per_minute: u32,

    /// Time a REST client has to send its request headers (and finish a TLS handshake),
    /// in milliseconds; then the connection is closed.
    #[arg(
        long,
        env = "CHARGER_HTTP_HEADER_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000),
        global = true
    )]
    pub http_header_timeout_ms: u64,

    /// Largest request headers, in bytes (at least 8192).
    #[arg(
        long,
        env = "CHARGER_HTTP_MAX_HEADER_BYTES",
        default_value_t = 16_384,
        value_parser = clap::value_parser!(u32).range(8192..=1_048_576),
        global = true
    )]
    pub http_max_header_bytes: u32,

    /// Largest request body, in bytes; a larger one is answered 413.
    #[arg(
        long,
        env = "CHARGER_HTTP_MAX_BODY",
        default_value_t = 4_194_304,
        value_parser = clap::value_parser!(u32).range(1024..=1_073_741_824),
        global = true
    )]
    pub http_max_body: u32,

    /// Time a REST client has to send its whole request body, in milliseconds, counted
    /// from the end of its headers (a total deadline: a body that trickles in is cut off
    /// at it, answered 408).
    #[arg(
        long,
        env = "CHARGER_HTTP_BODY_TIMEOUT_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(100..=3_600_000),
        global = true
    )]
    pub http_body_timeout_ms: u64,

    /// Directory for the SQLite database and the server secret.
    #[arg(
        long,
        env = "CHARGER_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Database: sqlite://<file> or postgres://<user>:<password>@<host>/<db>.
    /// Default: sqlite://<data dir>/charger.db.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<Secret>,

    /// Secret an external broker (EMQX's HTTP authentication and authorization) sends as
    /// `Authorization: Bearer <secret>` to `/broker/emqx/authn` and `/broker/emqx/authz`;
    /// at least 32 bytes (a shorter or empty one stops the server at start). Unset: those
    /// paths answer 401 to everyone.
    #[arg(
        long,
        env = "CHARGER_BROKER_AUTH_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub broker_auth_secret: Option<Secret>,

    /// Platform admin token. When unset, one is generated on first start and printed once.
    #[arg(
        long,
        env = "CHARGER_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<Secret>,

    /// File holding the 32-byte server secret from which device keys derive (64 hex
    /// characters, created with mode 0600 when missing). Every server instance sharing a
    /// database needs the same one. Default: <data dir>/server.secret.
    #[arg(long, env = "CHARGER_SECRET_FILE", global = true)]
    pub secret_file: Option<PathBuf>,
}

impl Config {
    /// Defaults with both listeners on free loopback ports and data in `data_dir`: what
    /// tests and benchmarks start from.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        Self {
            log_format: LogFormat::Text,
            mqtt_broker: BrokerMode::Embedded,
            mqtt_broker_url: None,
            mqtt_broker_username: None,
            mqtt_broker_password: None,
            mqtt_broker_keep_alive_s: 5,
            pg_statement_timeout_ms: 60_000,
            pg_lock_timeout_ms: 5_000,
            pg_idle_in_transaction_ms: 5_000,
            mqtt_broker_ca: None,
            mqtt_share_group: "mybox".to_owned(),
            mqtt_broker_acl: BrokerAcl::Dynsec,
            heartbeat_s: 300,
            mqtt_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            mqtt_public_host: None,
            mqtt_max_connections: 20_000,
            mqtt_max_payload: 65_536,
            mqtt_echo: false,
            offline_max_age_days: 90,
            credentials_grace_s: 600,
            // Tests start live sessions hours back to bill real durations in no time; the
            // rule's own test sets the default (900 s).
            live_start_max_age_s: 86_400,
            transfers_per_receiver: 100,
            transfers_per_pair: 10,
            console_sessions_per_token: 20,
            site_tick_ms: 5_000,
            site_rotate_s: 300,
            audit_log_days: 400,
            request_log_days: 30,
            unknown_tags_per_owner: 1000,
            read_model_entries: 200_000,
            mqtt_max_connect_bytes: 4096,
            mqtt_max_pending_logins: 1024,
            mqtt_max_pending_logins_per_source: 128,
            mqtt_logins_per_minute: 10,
            mqtt_rate: 20,
            mqtt_burst: 40,
            mqtt_abuse_seconds: 30,
            mqtt_max_subscriptions: 8,
            mqtt_max_inflight: 32,
            ocpp_allow_plain: true,
            ocpp_max_message_bytes: 65_536,
            ocpp_pending_transactions: 16,
            ocpp_max_connections: 10_000,
            ocpp_max_connections_per_source: 1_000,
            ocpp_vendor_id: None,
            mqtt_tls_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_cert: None,
            tls_key: None,
            http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_tls: HttpTls::Auto,
            http_max_connections: 1024,
            http_max_connections_per_source: 128,
            login_attempts_per_minute: 10,
            http_header_timeout_ms: 10_000,
            http_max_header_bytes: 16_384,
            http_max_body: 4_194_304,
            http_body_timeout_ms: 30_000,
            data_dir,
            database_url: None,
            admin_token: None,
            broker_auth_secret: None,
            secret_file: None,
        }
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("charger.db").display()),
        }
    }

    /// The secret file in force.
    pub fn secret_file(&self) -> PathBuf {
        self.secret_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("server.secret"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_need_no_configuration() {
        let cli = Cli::try_parse_from(["charger-server"]).expect("parses");
        assert_eq!(cli.config.http_listen.port(), 8080);
        assert_eq!(cli.config.mqtt_listen.port(), 1883);
        assert!(cli.config.database_url().starts_with("sqlite://"));
        assert!(cli.command.is_none());
    }
}
