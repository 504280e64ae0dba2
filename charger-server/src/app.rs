//! Start-up: opens the data directory, the secret and the database, binds the listeners
//! and serves. [`App::start`] is what `main` and the end-to-end tests call.
//!
//! Every start-up failure names the setting to change, so `main` can print it as one line.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState};
use crate::broker::{Broker, BrokerConfig};
use crate::config::{BrokerMode, Config};
use crate::secrets::{Secret, ServerSecret};
use crate::service::{MqttEndpoint, Service};
use crate::store::{self, Store};

const SECRET_FINGERPRINT_KEY: &str = "secret_fingerprint";

/// A running server.
pub struct App {
    /// Where the REST API listens (the real port when configured with port 0).
    pub http_addr: SocketAddr,
    /// Where the embedded MQTT broker listens (0.0.0.0:0 with an external broker).
    pub mqtt_addr: SocketAddr,
    /// Where MQTT over TLS listens, when a certificate is configured.
    pub mqtt_tls_addr: Option<SocketAddr>,
    /// The embedded broker (None with an external one).
    pub broker: Option<Broker>,
    /// The embedded broker's dispatcher: it serves while the app holds it.
    _dispatcher: Option<Arc<dyn crate::broker::Inbound>>,
    pub service: Service,
    /// The admin token generated on this start, to be printed once; `None` when one was
    /// configured or already existed.
    pub new_admin_token: Option<Secret>,
    /// The OCPP edge: it serves while the app holds it.
    pub ocpp: Arc<crate::ocpp::Hub>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Opens the secret and the database and checks they belong together.
pub async fn open_service(config: &Config) -> anyhow::Result<Service> {
    open_service_with_port(config, config.mqtt_listen.port()).await
}

/// [`open_service`] with the MQTT port chargers are told to use (the bound one).
async fn open_service_with_port(config: &Config, mqtt_port: u16) -> anyhow::Result<Service> {
    let database_url = config.database_url();
    if config.database_url.is_none() {
        create_private_dir(&config.data_dir).with_context(|| {
            format!(
                "CHARGER_DATA_DIR: cannot create {}",
                config.data_dir.display()
            )
        })?;
    }
    let secret_path = config.secret_file();
    if let Some(dir) = secret_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)
            .with_context(|| format!("CHARGER_SECRET_FILE: cannot create {}", dir.display()))?;
    }
    let secret = ServerSecret::load_or_create(&secret_path)
        .with_context(|| format!("CHARGER_SECRET_FILE: cannot use {}", secret_path.display()))?;
    let options = store::DbOptions {
        statement_timeout_ms: config.pg_statement_timeout_ms,
        lock_timeout_ms: config.pg_lock_timeout_ms,
        idle_in_transaction_ms: config.pg_idle_in_transaction_ms,
    };
    let store = store::connect_with(&database_url, &options)
        .await
        .map_err(|e| anyhow!("DATABASE_URL: {e}"))?;
    store
        .read_model()
        .set_cap(usize::try_from(config.read_model_entries).unwrap_or(0));
    let fingerprint = secret.fingerprint();
    let in_force = store
        .init_meta(SECRET_FINGERPRINT_KEY, &fingerprint)
        .await
        .map_err(|e| anyhow!("DATABASE_URL: {e}"))?;
    if in_force != fingerprint {
        return Err(anyhow!(
            "CHARGER_SECRET_FILE: {} is not the secret this database was provisioned with; \
             point CHARGER_SECRET_FILE at the original file",
            secret_path.display()
        ));
    }
    let mqtt = MqttEndpoint {
        host: public_host(config),
        port: mqtt_port,
    };
    let store: Arc<dyn Store> = Arc::new(store);
    Ok(
        Service::new(store, secret, mqtt).with_limits(crate::service::Limits {
            offline_max_age_days: config.offline_max_age_days,
            request_log_days: config.request_log_days,
            unknown_tags_per_owner: usize::try_from(config.unknown_tags_per_owner).unwrap_or(1000),
            heartbeat_s: config.heartbeat_s,
            audit_log_days: config.audit_log_days,
            credentials_grace_s: config.credentials_grace_s,
            live_start_max_age_s: config.live_start_max_age_s,
            transfers_per_receiver: config.transfers_per_receiver,
            transfers_per_pair: config.transfers_per_pair,
            console_sessions_per_token: config.console_sessions_per_token,
            site_tick_ms: config.site_tick_ms,
            site_rotate_s: config.site_rotate_s,
        }),
    )
}

/// How often the request log is pruned.
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Prunes the request log past the idempotency window, the audit log past its keeping
/// time and the expired console sessions, now and every 10 minutes.
async fn housekeeping(service: Service) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        match service.prune_request_log(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                answers = n,
                "request log pruned past the idempotency window"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot prune the request log"),
        }
        if let Err(e) = service.prune_device_events(now).await {
            tracing::warn!(error = %e, "cannot prune chargers' events");
        }
        if let Err(e) = service.prune_audit(now).await {
            tracing::warn!(error = %e, "cannot prune the audit log");
        }
        if let Err(e) = service.prune_console_sessions().await {
            tracing::warn!(error = %e, "cannot prune console sessions");
        }
    }
}

/// Files kept for everything but connections: the database (its pool, SQLite's WAL and
/// shared-memory files), the listeners, logs, the external broker's socket.
const RESERVED_FILES: u64 = 96;
/// The least open-file limit the server starts with: below it, it could serve only a
/// handful of chargers and REST clients, and says so instead of starting half-blind.
pub const MIN_OPEN_FILES: u64 = 256;

/// How many sockets of each kind the open-file limit holds (each is a setting's value, or
/// less when the limit is lower).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCaps {
    /// Open REST (and OCPP) connections.
    pub http: usize,
    /// Chargers connected to the embedded broker.
    pub chargers: usize,
    /// Sockets logging in to the embedded broker.
    pub pending_logins: usize,
}

/// Shares `open_files` between REST connections, chargers and sockets logging in: each gets
/// its setting when the limit holds them all; otherwise REST gets at most a quarter and
/// the sockets logging in an eighth of what is left, the chargers the rest. None when the
/// limit is below [`MIN_OPEN_FILES`].
pub fn file_caps(open_files: u64, config: &Config, embedded: bool) -> Option<FileCaps> {
    if open_files < MIN_OPEN_FILES {
        return None;
    }
    let available = usize::try_from(open_files - RESERVED_FILES).unwrap_or(usize::MAX);
    let http_wanted = usize::try_from(config.http_max_connections).unwrap_or(usize::MAX);
    if !embedded {
        return Some(FileCaps {
            http: http_wanted.min(available),
            chargers: 0,
            pending_logins: 0,
        });
    }
    let pending_wanted = usize::try_from(config.mqtt_max_pending_logins).unwrap_or(usize::MAX);
    let chargers_wanted = config.mqtt_max_connections.max(1);
    let all = http_wanted
        .saturating_add(pending_wanted)
        .saturating_add(chargers_wanted);
    if all <= available {
        return Some(FileCaps {
            http: http_wanted,
            chargers: chargers_wanted,
            pending_logins: pending_wanted,
        });
    }
    let http = http_wanted.min((available / 4).max(16));
    let pending_logins = pending_wanted.min(((available - http) / 8).max(8));
    let chargers = chargers_wanted.min(available - http - pending_logins);
    Some(FileCaps {
        http,
        chargers,
        pending_logins,
    })
}

/// Raises the open-file soft limit to the hard limit and shares it out ([`file_caps`]);
/// an error that names the setting when the limit is too low to run.
fn open_file_caps(config: &Config, embedded: bool) -> anyhow::Result<FileCaps> {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            u64::MAX
        }
    };
    let caps = file_caps(soft, config, embedded).ok_or_else(|| {
        anyhow!(
            "the open-file limit is {soft}, too low to serve chargers and REST clients; \
             raise it to at least {MIN_OPEN_FILES} (LimitNOFILE= in systemd, ulimit -n)"
        )
    })?;
    let lowered = caps.http < usize::try_from(config.http_max_connections).unwrap_or(usize::MAX)
        || (embedded
            && (caps.chargers < config.mqtt_max_connections
                || caps.pending_logins
                    < usize::try_from(config.mqtt_max_pending_logins).unwrap_or(usize::MAX)));
    if lowered {
        tracing::warn!(
            open_files = soft,
            http_connections = caps.http,
            chargers = caps.chargers,
            pending_logins = caps.pending_logins,
            "the open-file limit holds fewer connections than configured; the caps are \
             lowered to fit (new ones beyond them are refused, never stalled); raise the \
             hard limit (LimitNOFILE= in systemd, ulimit -Hn) to serve more"
        );
    } else {
        tracing::info!(
            open_files = soft,
            http_connections = caps.http,
            chargers = caps.chargers,
            "open-file limit raised"
        );
    }
    Ok(caps)
}

/// Creates `dir` (and its parents) readable by this user only (0700); an existing one is
/// left as it is, with a warning when others may read it.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        if let Ok(meta) = std::fs::metadata(dir) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(dir = %dir.display(), "the data directory is open to other users; chmod 700 it");
            }
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

fn public_host(config: &Config) -> String {
    if let Some(host) = &config.mqtt_public_host {
        return host.clone();
    }
    let ip = config.mqtt_listen.ip();
    if !ip.is_unspecified() {
        return ip.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The TLS acceptor for MQTT, when CHARGER_TLS_CERT and CHARGER_TLS_KEY are set.
fn tls_acceptor(config: &Config) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert_path, key_path) = match (&config.tls_cert, &config.tls_key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => {
            return Err(anyhow!(
                "CHARGER_TLS_CERT: CHARGER_TLS_CERT and CHARGER_TLS_KEY must be set together"
            ))
        }
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("CHARGER_TLS_CERT: cannot read {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "CHARGER_TLS_CERT: no certificate in {}",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| anyhow!("CHARGER_TLS_KEY: cannot read {}: {e}", key_path.display()))?;
    let tls = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("CHARGER_TLS_KEY: does not fit CHARGER_TLS_CERT: {e}"))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))))
}

async fn bind(addr: SocketAddr, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow!("{setting}: {addr} is already in use; set {setting} to a free address")
        } else {
            anyhow!("{setting}: cannot listen on {addr}: {e}")
        }
    })
}

/// Starts the embedded broker and its dispatcher.
async fn start_embedded(
    config: &Config,
    caps: FileCaps,
    service: &Service,
    mqtt: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    dispatcher: crate::mqtt::DispatcherConfig,
) -> anyhow::Result<(Broker, Arc<dyn crate::broker::Inbound>)> {
    let max_chargers = caps.chargers;
    // Nobody is connected to a broker that has just started.
    service.store().set_all_devices_offline().await?;
    let broker = Broker::start(
        mqtt,
        tls,
        service.clone(),
        BrokerConfig {
            max_packet_size: dispatcher.max_payload.saturating_mul(4).max(1 << 20) + 1024,
            max_connect_bytes: usize::try_from(config.mqtt_max_connect_bytes).unwrap_or(4096),
            max_pending_logins: caps.pending_logins,
            max_pending_logins_per_source: usize::try_from(
                config.mqtt_max_pending_logins_per_source,
            )
            .unwrap_or(128),
            logins_per_minute: config.mqtt_logins_per_minute,
            max_chargers,
            rate_per_s: config.mqtt_rate,
            burst: config.mqtt_burst,
            abuse_after: std::time::Duration::from_secs(config.mqtt_abuse_seconds),
            max_subscriptions: usize::try_from(config.mqtt_max_subscriptions).unwrap_or(8),
            max_inflight: usize::try_from(config.mqtt_max_inflight).unwrap_or(32),
            ..BrokerConfig::default()
        },
    )
    .context("starting the MQTT broker")?;
    let dispatcher = crate::mqtt::start(&broker, service.clone(), dispatcher)
        .await
        .context("starting the MQTT request dispatcher")?;
    Ok((broker, dispatcher))
}

/// The external broker's settings, and the port chargers are told (the URL's).
fn external_config(
    config: &Config,
    dispatcher: crate::mqtt::DispatcherConfig,
) -> anyhow::Result<(crate::mqtt::ExternalConfig, u16)> {
    let url = config.mqtt_broker_url.clone().ok_or_else(|| {
        anyhow!("CHARGER_MQTT_BROKER_URL: required with CHARGER_MQTT_BROKER=external")
    })?;
    let username = config.mqtt_broker_username.clone().ok_or_else(|| {
        anyhow!("CHARGER_MQTT_BROKER_USERNAME: required with CHARGER_MQTT_BROKER=external")
    })?;
    let password = config.mqtt_broker_password.clone().ok_or_else(|| {
        anyhow!("CHARGER_MQTT_BROKER_PASSWORD: required with CHARGER_MQTT_BROKER=external")
    })?;
    let port = url
        .rsplit_once(':')
        .and_then(|(_, p)| p.trim_end_matches('/').parse::<u16>().ok())
        .unwrap_or(if url.starts_with("mqtts://") {
            8883
        } else {
            1883
        });
    Ok((
        crate::mqtt::ExternalConfig {
            url,
            username,
            password,
            ca: config.mqtt_broker_ca.clone(),
            group: config.mqtt_share_group.clone(),
            acl: config.mqtt_broker_acl,
            dispatcher,
            keep_alive: std::time::Duration::from_secs(u64::from(config.mqtt_broker_keep_alive_s)),
            budget: crate::mqtt::Budget {
                rate: f64::from(config.mqtt_rate),
                burst: f64::from(config.mqtt_burst),
                abuse_after: std::time::Duration::from_secs(config.mqtt_abuse_seconds),
            },
        },
        port,
    ))
}

/// Shortest `CHARGER_BROKER_AUTH_SECRET` accepted, in bytes.
pub const MIN_BROKER_SECRET_BYTES: usize = 32;

/// A broker secret, when set, must be long enough to resist guessing: an empty one (as an
/// environment file gives it) would let anyone ask the server about any charger.
fn check_broker_secret(config: &Config) -> anyhow::Result<()> {
    match &config.broker_auth_secret {
        Some(s) if s.expose().len() < MIN_BROKER_SECRET_BYTES => Err(anyhow!(
            "CHARGER_BROKER_AUTH_SECRET: is {} bytes; it must be at least \
             {MIN_BROKER_SECRET_BYTES} (e.g. openssl rand -hex 32), or unset",
            s.expose().len()
        )),
        _ => Ok(()),
    }
}

impl App {
    /// Starts the server and returns once it is listening.
    pub async fn start(config: Config) -> anyhow::Result<App> {
        check_broker_secret(&config)?;
        let caps = open_file_caps(&config, config.mqtt_broker == BrokerMode::Embedded)?;
        let http = bind(config.http_listen, "CHARGER_HTTP_LISTEN").await?;
        let http_addr = http.local_addr()?;
        let acceptor = tls_acceptor(&config)?;
        let https = match config.http_tls {
            crate::config::HttpTls::Auto => acceptor.clone(),
            crate::config::HttpTls::Off => None,
        };
        let max_payload = usize::try_from(config.mqtt_max_payload).unwrap_or(65_536);
        let dispatcher = crate::mqtt::DispatcherConfig {
            max_payload,
            echo: config.mqtt_echo,
        };
        let (service, embedded, mqtt_addr, mqtt_tls_addr) = match config.mqtt_broker {
            BrokerMode::Embedded => {
                let mqtt = bind(config.mqtt_listen, "CHARGER_MQTT_LISTEN").await?;
                let mqtt_addr = mqtt.local_addr()?;
                let tls = match acceptor {
                    Some(acceptor) => {
                        let listener =
                            bind(config.mqtt_tls_listen, "CHARGER_MQTT_TLS_LISTEN").await?;
                        Some((listener, acceptor))
                    }
                    None => None,
                };
                let mqtt_tls_addr = match &tls {
                    Some((listener, _)) => Some(listener.local_addr()?),
                    None => None,
                };
                let service = open_service_with_port(&config, mqtt_addr.port()).await?;
                let (broker, dispatcher) =
                    start_embedded(&config, caps, &service, mqtt, tls, dispatcher).await?;
                tracing::info!(%mqtt_addr, "MQTT broker listening");
                if let Some(addr) = mqtt_tls_addr {
                    tracing::info!(mqtt_tls_addr = %addr, "MQTT over TLS listening");
                }
                (
                    service,
                    Some((broker, dispatcher)),
                    mqtt_addr,
                    mqtt_tls_addr,
                )
            }
            BrokerMode::External => {
                let external = external_config(&config, dispatcher)?;
                let service = open_service_with_port(&config, external.1).await?;
                crate::mqtt::start_external(service.clone(), external.0).await?;
                let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
                (service, None, unspecified, None)
            }
        };
        let (broker, dispatcher) = match embedded {
            Some((b, d)) => (Some(b), Some(d)),
            None => (None, None),
        };
        tokio::spawn(housekeeping(service.clone()));

        let new_admin_token = match &config.admin_token {
            Some(_) => None,
            None if service.has_admin_token().await? => None,
            None => Some(service.issue_admin_token(false).await?),
        };
        let mut state = ApiState::new(
            service.clone(),
            config.admin_token.as_ref().map(Secret::expose),
        )
        .with_login_attempts(config.login_attempts_per_minute);
        state.broker_metrics = broker.as_ref().map(|b| b.metrics().clone());
        state.broker_secret_hash = config
            .broker_auth_secret
            .as_ref()
            .map(|s| crate::secrets::hash_secret(s.expose()));
        state.max_body = usize::try_from(config.http_max_body).unwrap_or(4 << 20);
        state.body_timeout = std::time::Duration::from_millis(config.http_body_timeout_ms);
        state.https = https.is_some();
        let ocpp = crate::ocpp::Hub::new(
            service.clone(),
            crate::ocpp::Settings {
                allow_plain: config.ocpp_allow_plain,
                tls: https.is_some(),
                max_message_bytes: usize::try_from(config.ocpp_max_message_bytes).unwrap_or(65_536),
                pending_transactions: usize::try_from(config.ocpp_pending_transactions)
                    .unwrap_or(16),
                max_connections: usize::try_from(config.ocpp_max_connections)
                    .unwrap_or(usize::MAX)
                    // OCPP sockets draw on the chargers' share of the open files.
                    .min(if caps.chargers > 0 {
                        caps.chargers
                    } else {
                        usize::MAX
                    }),
                max_connections_per_source: usize::try_from(config.ocpp_max_connections_per_source)
                    .unwrap_or(usize::MAX),
                vendor_id: config.ocpp_vendor_id.clone(),
                logins_per_minute: config.mqtt_logins_per_minute,
                rate: config.mqtt_rate,
                burst: config.mqtt_burst,
                abuse: std::time::Duration::from_secs(config.mqtt_abuse_seconds),
            },
        );
        ocpp.join(&config.database_url())
            .await
            .context("the OCPP relay between instances (LISTEN on the database)")?;
        let router = api::router(
            state,
            crate::console::routes().merge(crate::ocpp::routes(ocpp.clone())),
        );
        let limits = api::serve::HttpLimits {
            max_connections: caps.http,
            max_connections_per_source: usize::try_from(config.http_max_connections_per_source)
                .unwrap_or(128),
            header_timeout: std::time::Duration::from_millis(config.http_header_timeout_ms),
            max_header_bytes: usize::try_from(config.http_max_header_bytes).unwrap_or(16_384),
        };
        let (shutdown, stop) = watch::channel(false);
        let tls_on = https.is_some();
        // The site balancer stops with the server (as the server killed would).
        tokio::spawn(crate::sites::balancer::run(service.clone(), stop.clone()));
        let server = tokio::spawn(api::serve::serve(http, router, https, limits, stop));
        tracing::info!(%http_addr, https = tls_on, "REST API listening");
        Ok(App {
            http_addr,
            mqtt_addr,
            mqtt_tls_addr,
            broker,
            _dispatcher: dispatcher,
            service,
            new_admin_token,
            ocpp,
            shutdown,
            server,
        })
    }

    /// Runs until the server stops (or fails).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        Ok(())
    }

    /// Stops accepting, lets requests in flight finish, and returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.ocpp.close_all().await;
        self.server.await??;
        Ok(())
    }
}
