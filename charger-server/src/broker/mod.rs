//! The embedded MQTT broker: the chargers' side of the server.
//!
//! A charger can only publish requests to the server and subscribe to its own answers
//! ([`acl`]), so there is nothing to route between clients: each connection
//! ([`connection`]) accepts its socket (TCP_NODELAY), decodes MQTT 3.1.1 and 5.0 with
//! rumqttd's codecs, authenticates the device against the store, checks every SUBSCRIBE,
//! PUBLISH and will against the ACL, hands the allowed publishes to the dispatcher
//! ([`Inbound`]) and acknowledges them, and writes the answers the dispatcher
//! [`Broker::deliver`]s to it, at the QoS of the matching subscription, with its own
//! packet ids and in-flight window.
//!
//! Until round 2 a rumqttd router sat between the connections and the dispatcher; its
//! fixed per-link queues cost about 40 KB per idle charger and a thread hop per message
//! (docs/benchmarks.md). Now an idle connection is its task, its buffers and an empty
//! inbox.
//!
//! - wills are kept here, ACL-checked at CONNECT and handed on at an abnormal close;
//! - keep-alive is enforced here (1.5 × the client's value);
//! - no topic aliases are offered, retain flags are cleared, sessions are always clean;
//! - a second connection of a device closes the first and waits for it to be gone.

pub mod acl;
mod codec;
mod connection;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;

pub use acl::{may_publish, may_subscribe};

use crate::devices::PresenceChange;
use crate::ids::DeviceId;
use crate::metrics::{limit_hit_logged, Limit};
use crate::service::Service;

/// Broker limits.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
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
    /// Of those, sockets one source address may have; more from it are closed at once.
    pub max_pending_logins_per_source: usize,
    /// Logins one device id may make per minute (with as many at once).
    pub logins_per_minute: u32,
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
    /// QoS 1 answers written to one connection and not acknowledged yet; as many more
    /// wait, further ones are dropped.
    pub max_inflight: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            max_packet_size: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_violations: 10,
            max_connect_bytes: 4096,
            max_pending_logins: 1024,
            max_pending_logins_per_source: 128,
            logins_per_minute: 10,
            max_chargers: 20_000,
            rate_per_s: 20,
            burst: 40,
            abuse_after: Duration::from_secs(30),
            max_subscriptions: 8,
            max_inflight: 32,
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Kick {
    #[default]
    Stay,
    /// Close now (a newer connection of the device, or its credentials revoked).
    Close,
    /// The device's ACL is revoked (its owner changed): take nothing more from it,
    /// deliver the publish on this topic (its last answer), then close.
    CloseAfter(String),
}

/// How long a revoked connection waits for its last answer before it closes anyway.
pub(crate) const REVOKE_GRACE: Duration = Duration::from_secs(5);

/// Where the broker hands what chargers publish (requests, and wills): the request
/// dispatcher. Chargers can only talk to the server, so there is no router between them:
/// a publish that passed the ACL goes here, and answers come back by [`Broker::deliver`].
#[async_trait::async_trait]
pub trait Inbound: Send + Sync {
    /// Takes one publish of connection `conn`; returns once it is queued (the connection
    /// then acknowledges it).
    async fn publish(&self, conn: i64, topic: &[u8], payload: &[u8]);
}

/// A publish waiting to be written to a charger.
pub(crate) struct Letter {
    pub topic: String,
    pub payload: bytes::Bytes,
}

/// One connection's inbox: what others tell it (a kick) and the answers to write. An idle
/// connection holds it empty (nothing allocated but the box itself).
#[derive(Default)]
pub(crate) struct Mailbox {
    state: Mutex<Letters>,
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct Letters {
    kick: Kick,
    out: VecDeque<Letter>,
}

impl Mailbox {
    fn kick(&self, kick: Kick) {
        if let Ok(mut s) = self.state.lock() {
            s.kick = kick;
        }
        self.wake.notify_one();
    }

    /// Queues a letter; false (dropped) when `limit` letters are waiting already.
    fn post(&self, letter: Letter, limit: usize) -> bool {
        let posted = self.state.lock().is_ok_and(|mut s| {
            if s.out.len() >= limit {
                return false;
            }
            s.out.push_back(letter);
            true
        });
        if posted {
            self.wake.notify_one();
        }
        posted
    }

    /// Waits until someone posts or kicks.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The kick, reset to `Stay` once read.
    pub(crate) fn take_kick(&self) -> Kick {
        self.state
            .lock()
            .map(|mut s| std::mem::take(&mut s.kick))
            .unwrap_or(Kick::Close)
    }

    pub(crate) fn next_letter(&self) -> Option<Letter> {
        self.state.lock().ok().and_then(|mut s| {
            let letter = s.out.pop_front();
            if s.out.is_empty() && s.out.capacity() > 8 {
                // A burst is over: an idle connection holds no queue.
                s.out = VecDeque::new();
            }
            letter
        })
    }
}

/// One registered device connection, so a newer one can close it and wait for it.
struct Registration {
    seq: i64,
    mailbox: Arc<Mailbox>,
    closed: tokio::sync::oneshot::Receiver<()>,
    /// Logged in with superseded credentials.
    restricted: bool,
}

/// What a connection keeps of its registration: its number, its inbox, and the signal it
/// gives once it is gone.
pub(crate) struct Registered {
    pub seq: i64,
    pub mailbox: Arc<Mailbox>,
    closed: tokio::sync::oneshot::Sender<()>,
}

/// State shared by the accept loop and every connection.
pub(crate) struct Shared {
    /// Weak: the dispatcher holds the broker (to answer), and the app holds the dispatcher.
    inbound: OnceLock<std::sync::Weak<dyn Inbound>>,
    presence: tokio::sync::mpsc::Sender<PresenceChange>,
    service: Service,
    config: BrokerConfig,
    metrics: Arc<BrokerMetrics>,
    registry: Mutex<HashMap<DeviceId, Registration>>,
    /// Sockets still logging in.
    pending_logins: Arc<tokio::sync::Semaphore>,
    /// Their share per source address.
    login_sources: Arc<crate::limits::PerSource>,
    /// Each device id's request budget (`CHARGER_MQTT_RATE`, `CHARGER_MQTT_BURST`): it
    /// outlives the connection, so reconnecting does not refill it; wills draw on it too.
    pub(crate) requests: crate::limits::Buckets<DeviceId>,
    /// Each device id's login budget (`CHARGER_MQTT_LOGINS_PER_MINUTE`), one for its
    /// current credentials and one for superseded ones (whoever holds those cannot spend
    /// the charger's own).
    pub(crate) logins: crate::limits::Buckets<(DeviceId, bool)>,
}

impl Shared {
    /// Registers a new connection of `device`, first closing an earlier one and waiting
    /// until it is gone (its will published, its presence ended). A `restricted` one
    /// (superseded credentials) does not displace an unrestricted one: None.
    async fn register(&self, device: &DeviceId, restricted: bool) -> Option<Registered> {
        let seq = rand::random::<i64>() & i64::MAX;
        let mailbox = Arc::new(Mailbox::default());
        let (closed_tx, closed) = tokio::sync::oneshot::channel();
        let previous = {
            let mut r = self.registry.lock().ok()?;
            if restricted && r.get(device).is_some_and(|old| !old.restricted) {
                return None;
            }
            r.insert(
                device.clone(),
                Registration {
                    seq,
                    mailbox: mailbox.clone(),
                    closed,
                    restricted,
                },
            )
        };
        if let Some(old) = previous {
            old.mailbox.kick(Kick::Close);
            if tokio::time::timeout(Duration::from_secs(10), old.closed)
                .await
                .is_err()
            {
                tracing::warn!(%device, "earlier connection did not close in time");
            }
        }
        Some(Registered {
            seq,
            mailbox,
            closed: closed_tx,
        })
    }

    /// Forgets a connection (if it is still the registered one) and tells a successor
    /// waiting in [`Shared::register`] that it is gone.
    fn unregister(&self, device: &DeviceId, registered: Registered) {
        if let Ok(mut r) = self.registry.lock() {
            if r.get(device).is_some_and(|reg| reg.seq == registered.seq) {
                r.remove(device);
            }
        }
        let _ = registered.closed.send(());
    }

    /// The dispatcher, once it is attached (and while it runs).
    fn inbound(&self) -> Option<Arc<dyn Inbound>> {
        self.inbound.get().and_then(std::sync::Weak::upgrade)
    }
}

/// The running broker.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl Broker {
    /// Starts the accept loop on `listener` (and on the TLS listener, if any). Chargers'
    /// publishes are taken once [`Broker::attach`] has named where they go.
    pub fn start(
        listener: TcpListener,
        tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
        service: Service,
        config: BrokerConfig,
    ) -> std::io::Result<Broker> {
        let local_addr = listener.local_addr()?;
        let config_pending = config.max_pending_logins.max(1);
        let logins_per_minute = f64::from(config.logins_per_minute.max(1));
        let shared = Arc::new(Shared {
            login_sources: crate::limits::PerSource::new(config.max_pending_logins_per_source),
            requests: crate::limits::Buckets::new(
                f64::from(config.rate_per_s.max(1)),
                f64::from(config.burst.max(1)),
            ),
            logins: crate::limits::Buckets::new(logins_per_minute / 60.0, logins_per_minute),
            inbound: OnceLock::new(),
            presence: crate::devices::presence_writer(service.clone()),
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

    /// Names where chargers' publishes go (once; a second call is ignored). The caller
    /// keeps `inbound` alive as long as the broker should serve.
    pub fn attach(&self, inbound: &Arc<dyn Inbound>) {
        let _ = self.shared.inbound.set(Arc::downgrade(inbound));
    }

    /// Where the broker listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics(&self) -> &Arc<BrokerMetrics> {
        &self.shared.metrics
    }

    /// Queues a publish for `device`'s connection, which writes it if the device is
    /// subscribed to `topic` (as a broker would). False when the device is not connected
    /// here, or when `CHARGER_MQTT_MAX_INFLIGHT` answers already wait for it (dropped and
    /// counted: a repeat of the request gets the kept answer).
    pub fn deliver(&self, device: &DeviceId, topic: String, payload: Vec<u8>) -> bool {
        let Some(mailbox) = self.mailbox(device) else {
            return false;
        };
        let letter = Letter {
            topic,
            payload: payload.into(),
        };
        // The window's answers in flight and as many waiting: the connection may not have
        // taken any from the mailbox yet when they all arrive.
        let posted = mailbox.post(letter, self.shared.config.max_inflight.saturating_mul(2));
        if !posted {
            limit_hit_logged(
                Limit::MqttInflight,
                "answer dropped: the charger has CHARGER_MQTT_MAX_INFLIGHT answers unacknowledged and as many waiting",
            );
        }
        posted
    }

    /// Closes the connection of `device`, if any (credentials revoked).
    pub fn disconnect_device(&self, device: &DeviceId) -> bool {
        self.kick(device, Kick::Close)
    }

    /// Revokes the ACL of `device`'s connection `conn` at once (its credentials changed):
    /// nothing more it sends is taken; it receives the publish on `last_topic` (the answer
    /// to its claim or rekey, which must be delivered after this call), then it is closed,
    /// so it can only come back with its new credentials. Without that publish it is closed
    /// after a grace time. Another connection of the device (a newer one) is left alone.
    pub fn revoke_after(&self, device: &DeviceId, conn: i64, last_topic: &str) -> bool {
        let Some(mailbox) = self.shared.registry.lock().ok().and_then(|r| {
            r.get(device)
                .filter(|reg| reg.seq == conn)
                .map(|reg| reg.mailbox.clone())
        }) else {
            return false;
        };
        mailbox.kick(Kick::CloseAfter(last_topic.to_owned()));
        true
    }

    /// Whether `device` has a connection to this broker now.
    pub fn is_connected(&self, device: &DeviceId) -> bool {
        self.mailbox(device).is_some()
    }

    fn mailbox(&self, device: &DeviceId) -> Option<Arc<Mailbox>> {
        self.shared
            .registry
            .lock()
            .ok()
            .and_then(|r| r.get(device).map(|reg| reg.mailbox.clone()))
    }

    fn kick(&self, device: &DeviceId, kick: Kick) -> bool {
        let Some(mailbox) = self.mailbox(device) else {
            return false;
        };
        mailbox.kick(kick);
        true
    }

    /// Devices connected now.
    pub fn connected(&self) -> i64 {
        self.shared.metrics.connections.load(Ordering::Relaxed)
    }
}

/// What a socket logging in holds: a slot of the global cap and one of its source's share.
pub(crate) struct LoginSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _source: crate::limits::SourceSlot,
}

/// Accepts sockets (TCP_NODELAY on each), with TLS when an acceptor is given. A socket
/// beyond the connection cap, or beyond the sockets allowed to be logging in at once, is
/// closed at once (counted, logged at most every few seconds): never queued, never a stall.
/// So is one beyond its source's share of the sockets logging in.
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
        let Some(source) = shared.login_sources.try_acquire(peer.ip()) else {
            limit_hit_logged(
                Limit::MqttPendingLoginsPerSource,
                "MQTT connection refused: its source has too many sockets logging in \
                 (CHARGER_MQTT_MAX_PENDING_LOGINS_PER_SOURCE)",
            );
            continue;
        };
        let Ok(permit) = shared.pending_logins.clone().try_acquire_owned() else {
            limit_hit_logged(
                Limit::MqttPendingLogins,
                "MQTT connection refused: too many sockets logging in (CHARGER_MQTT_MAX_PENDING_LOGINS)",
            );
            continue;
        };
        let login = LoginSlot {
            _permit: permit,
            _source: source,
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
                    // The handshake counts against the CONNECT deadline: one total
                    // deadline for the handshake and the CONNECT.
                    let deadline = tokio::time::Instant::now() + shared.config.connect_timeout;
                    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            connection::serve_until(shared, tls, peer, login, deadline).await
                        }
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
