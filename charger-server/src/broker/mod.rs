//! The embedded MQTT broker: rumqttd's router behind our own connection front-end.
//!
//! rumqttd 0.20 authenticates logins but cannot authorize topics, so chargers never
//! reach its listeners. Our front-end ([`connection`]) accepts the socket (TCP_NODELAY),
//! decodes MQTT 3.1.1 and 5.0 with rumqttd's codecs, authenticates the device against
//! the store, checks every SUBSCRIBE, PUBLISH and will against [`acl`], and forwards what
//! is allowed to the router through one local link per connection. In-process consumers
//! (the request dispatcher) attach to the same router with [`Broker::link`].
//!
//! How it avoids rumqttd's traps:
//! - every closed connection sends the router a DISCONNECT, so its slot is freed;
//! - wills are kept here, ACL-checked at CONNECT and published on an abnormal close;
//! - `Unschedule` is answered with `wake()` on every link;
//! - blocking link calls run on a blocking thread or the [`feeder`] thread;
//! - keep-alive is enforced here (1.5 × the client's value);
//! - no topic aliases are offered, retain flags are cleared, sessions are always clean;
//! - a second connection of a device closes the first before it links.

pub mod acl;
mod codec;
mod connection;
mod feeder;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttd::local::{LinkRx, LinkTx};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use acl::{may_publish, may_subscribe};
pub use feeder::{Feed, Feeder};

use crate::devices::PresenceChange;
use crate::ids::DeviceId;
use crate::metrics::{limit_hit_logged, Limit};
use crate::service::Service;

/// Broker limits.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Router connection slots: chargers plus in-process links.
    pub max_connections: usize,
    /// Largest MQTT packet accepted, in bytes.
    pub max_packet_size: usize,
    /// Time a new socket has to send its CONNECT.
    pub connect_timeout: Duration,
    /// ACL violations tolerated on one connection before it is closed.
    pub max_violations: u32,
    /// Largest CONNECT, in bytes: a bigger one closes the socket before any login.
    pub max_connect_bytes: usize,
    /// Sockets that may be waiting to log in at once; more are closed at once.
    pub max_pending_logins: usize,
    /// Chargers connected at once; more are refused at once (the lower of
    /// `CHARGER_MQTT_MAX_CONNECTIONS` and what the open-file limit allows).
    pub max_chargers: usize,
    /// Requests a charger may publish per second, sustained.
    pub rate_per_s: u32,
    /// Requests a charger may publish at once above its rate.
    pub burst: u32,
    /// How long a charger may stay over its rate before it is disconnected.
    pub abuse_after: Duration,
    /// Subscriptions one connection may hold.
    pub max_subscriptions: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_packet_size: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_violations: 10,
            max_connect_bytes: 4096,
            max_pending_logins: 1024,
            max_chargers: 20_000,
            rate_per_s: 20,
            burst: 40,
            abuse_after: Duration::from_secs(30),
            max_subscriptions: 8,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    /// Devices connected now.
    pub connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub refused_logins: AtomicU64,
    pub acl_denied_publish: AtomicU64,
    pub acl_denied_subscribe: AtomicU64,
    pub violation_disconnects: AtomicU64,
}

impl BrokerMetrics {
    /// Copies the broker's counters into the exposition.
    pub fn publish(&self, to: &crate::metrics::Metrics) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        to.gauge(
            "charger_mqtt_connections",
            self.connections.load(Ordering::Relaxed) as f64,
        );
        to.counter(
            "charger_mqtt_connections_total",
            &[],
            load(&self.connections_total),
        );
        to.counter(
            "charger_mqtt_refused_logins_total",
            &[],
            load(&self.refused_logins),
        );
        for (kind, n) in [
            ("publish", &self.acl_denied_publish),
            ("subscribe", &self.acl_denied_subscribe),
        ] {
            to.counter(
                "charger_mqtt_acl_denied_total",
                &[("kind", kind.to_owned())],
                load(n),
            );
        }
        to.counter(
            "charger_mqtt_violation_disconnects_total",
            &[],
            load(&self.violation_disconnects),
        );
    }
}

/// What a connection is told to do by someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kick {
    Stay,
    /// Close now (a newer connection of the device, or its credentials revoked).
    Close,
    /// The device's ACL is revoked (its owner changed): forward nothing more from it,
    /// deliver the publish on this topic (its last answer), then close.
    CloseAfter(String),
}

/// How long a revoked connection waits for its last answer before it closes anyway.
pub(crate) const REVOKE_GRACE: Duration = Duration::from_secs(5);

/// One registered device connection, so a newer one can close it and wait for it.
struct Registration {
    seq: i64,
    kick: watch::Sender<Kick>,
    closed: watch::Receiver<bool>,
}

/// What a connection keeps of its registration: its number, the signal that tells it to
/// close, and the signal it gives once it is fully gone from the router.
pub(crate) struct Registered {
    pub seq: i64,
    pub kick: watch::Receiver<Kick>,
    closed: watch::Sender<bool>,
}

/// The one thread that builds router links: `LinkBuilder::build` blocks until the router
/// answers, so it runs here rather than on async workers or a pool of blocking threads
/// (whose stacks a connection storm would multiply).
#[derive(Clone)]
struct Linker {
    tx: std::sync::mpsc::Sender<(
        String,
        tokio::sync::oneshot::Sender<Result<LinkPair, String>>,
    )>,
}

type LinkPair = (LinkTx, LinkRx);

impl Linker {
    fn start(router: rumqttd::Broker) -> std::io::Result<Linker> {
        let (tx, rx) = std::sync::mpsc::channel::<(
            String,
            tokio::sync::oneshot::Sender<Result<LinkPair, String>>,
        )>();
        std::thread::Builder::new()
            .name("mqtt-linker".into())
            .spawn(move || {
                for (client_id, reply) in rx {
                    let _ = reply.send(router.link(&client_id).map_err(|e| e.to_string()));
                }
            })?;
        Ok(Linker { tx })
    }

    async fn link(&self, client_id: &str) -> Result<LinkPair, String> {
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send((client_id.to_owned(), reply))
            .map_err(|_| "the router linker stopped".to_owned())?;
        wait.await
            .map_err(|_| "the router linker stopped".to_owned())?
    }
}

/// State shared by the accept loop and every connection.
pub(crate) struct Shared {
    linker: Linker,
    presence: tokio::sync::mpsc::Sender<PresenceChange>,
    feeder: Feeder,
    service: Service,
    config: BrokerConfig,
    metrics: Arc<BrokerMetrics>,
    registry: Mutex<HashMap<DeviceId, Registration>>,
    /// Sockets still logging in.
    pending_logins: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    /// Registers a new connection of `device`, first closing an earlier one and waiting
    /// until it is gone from the router.
    async fn register(&self, device: &DeviceId) -> Registered {
        let seq = rand::random::<i64>() & i64::MAX;
        let (kick, kick_rx) = watch::channel(Kick::Stay);
        let (closed_tx, closed) = watch::channel(false);
        let previous = self
            .registry
            .lock()
            .map(|mut r| r.insert(device.clone(), Registration { seq, kick, closed }))
            .ok()
            .flatten();
        if let Some(mut old) = previous {
            let _ = old.kick.send(Kick::Close);
            let wait = old.closed.wait_for(|c| *c);
            if tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .is_err()
            {
                tracing::warn!(%device, "earlier connection did not close in time");
            }
        }
        Registered {
            seq,
            kick: kick_rx,
            closed: closed_tx,
        }
    }

    /// Forgets a connection (if it is still the registered one) and tells a successor
    /// waiting in [`Shared::register`] that it is gone.
    fn unregister(&self, device: &DeviceId, registered: Registered) {
        if let Ok(mut r) = self.registry.lock() {
            if r.get(device).is_some_and(|reg| reg.seq == registered.seq) {
                r.remove(device);
            }
        }
        let _ = registered.closed.send(true);
    }
}

/// The running broker.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl Broker {
    /// Starts the router, the feeder and the accept loop on `listener`.
    pub fn start(
        listener: TcpListener,
        tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
        service: Service,
        config: BrokerConfig,
    ) -> std::io::Result<Broker> {
        let local_addr = listener.local_addr()?;
        let router_config = rumqttd::RouterConfig {
            max_connections: config.max_connections,
            max_outgoing_packet_count: 200,
            // Per subscribed filter: small logs for devices' RES filters, a large one for
            // the dispatcher's REQ filter.
            max_segment_size: 16 * 1024,
            max_segment_count: 2,
            custom_segment: Some(HashMap::from([(
                charger_protocol::topic::REQUEST_FILTER.to_owned(),
                rumqttd::SegmentConfig {
                    max_segment_size: 64 * 1024 * 1024,
                    max_segment_count: 4,
                },
            )])),
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        let router = rumqttd::Broker::new(rumqttd::Config {
            router: router_config,
            ..Default::default()
        });
        let config_pending = config.max_pending_logins.max(1);
        let shared = Arc::new(Shared {
            linker: Linker::start(router)?,
            presence: crate::devices::presence_writer(service.clone()),
            feeder: Feeder::start()?,
            service,
            config,
            metrics: Arc::new(BrokerMetrics::default()),
            pending_logins: Arc::new(tokio::sync::Semaphore::new(config_pending)),
            registry: Mutex::new(HashMap::new()),
        });
        tokio::spawn(accept_loop(listener, None, shared.clone()));
        if let Some((listener, acceptor)) = tls {
            tokio::spawn(accept_loop(listener, Some(acceptor), shared.clone()));
        }
        Ok(Broker { shared, local_addr })
    }

    /// Where the broker listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics(&self) -> &Arc<BrokerMetrics> {
        &self.shared.metrics
    }

    /// The feeder, through which in-process links send their packets.
    pub fn feeder(&self) -> &Feeder {
        &self.shared.feeder
    }

    /// An in-process link to the router (built on the linker thread). Its
    /// `LinkTx` is returned for set-up calls (subscribe) before it is handed to the feeder.
    pub async fn link(&self, client_id: &str) -> std::io::Result<(LinkTx, LinkRx)> {
        self.shared
            .linker
            .link(client_id)
            .await
            .map_err(std::io::Error::other)
    }

    /// Closes the connection of `device`, if any (credentials revoked).
    pub fn disconnect_device(&self, device: &DeviceId) -> bool {
        self.kick(device, Kick::Close)
    }

    /// Revokes the ACL of `device`'s connection at once (its owner changed): nothing more
    /// it sends is forwarded; it receives the publish on `last_topic` (the answer to its
    /// claim, which must be published after this call), then it is closed, so it can only
    /// come back under its new owner. Without that publish it is closed after a grace time.
    pub fn revoke_after(&self, device: &DeviceId, last_topic: &str) -> bool {
        self.kick(device, Kick::CloseAfter(last_topic.to_owned()))
    }

    /// Whether `device` has a connection to this broker now.
    pub fn is_connected(&self, device: &DeviceId) -> bool {
        self.shared
            .registry
            .lock()
            .map(|r| r.contains_key(device))
            .unwrap_or(false)
    }

    fn kick(&self, device: &DeviceId, kick: Kick) -> bool {
        let kicked = self
            .shared
            .registry
            .lock()
            .ok()
            .and_then(|r| r.get(device).map(|reg| reg.kick.send(kick).is_ok()));
        kicked.unwrap_or(false)
    }

    /// Devices connected now.
    pub fn connected(&self) -> i64 {
        self.shared.metrics.connections.load(Ordering::Relaxed)
    }
}

/// Accepts sockets (TCP_NODELAY on each), with TLS when an acceptor is given. A socket
/// beyond the connection cap, or beyond the sockets allowed to be logging in at once, is
/// closed at once (counted, logged at most every few seconds): never queued, never a stall.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                limit_hit_logged(Limit::MqttConnections, &format!("MQTT accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let connected =
            usize::try_from(shared.metrics.connections.load(Ordering::Relaxed)).unwrap_or(0);
        if connected >= shared.config.max_chargers {
            limit_hit_logged(
                Limit::MqttConnections,
                "MQTT connection refused: the charger connection cap is reached \
                 (CHARGER_MQTT_MAX_CONNECTIONS, or the open-file limit)",
            );
            continue;
        }
        let Ok(login) = shared.pending_logins.clone().try_acquire_owned() else {
            limit_hit_logged(
                Limit::MqttPendingLogins,
                "MQTT connection refused: too many sockets logging in (CHARGER_MQTT_MAX_PENDING_LOGINS)",
            );
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let shared = shared.clone();
        match tls.clone() {
            None => {
                tokio::spawn(async move { connection::serve(shared, stream, peer, login).await });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    // The handshake counts against the CONNECT deadline.
                    let deadline = shared.config.connect_timeout;
                    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection::serve(shared, tls, peer, login).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}
