//! An external broker (Mosquitto, EMQX) as the pipeline's transport: this instance is one
//! MQTT 5 client among several sharing the requests.
//!
//! - Requests: one shared subscription per endpoint,
//!   `$share/<group>/+/req/+/<endpoint>`: each request reaches one instance of the group.
//!   Command answers (`+/req/+/<command>`) are a plain subscription: every instance gets
//!   them, and the one that sent the command takes the answer.
//! - Flow control: requests are acknowledged (PUBACK) once queued in the pipeline, and the
//!   broker sends at most `RECEIVE_MAXIMUM` unacknowledged ones, so a burst waits in the
//!   broker, not in this process's memory.
//! - Answers and commands are published at QoS 1.
//! - The broker lost: reconnects with backoff (0.1 s doubling to 5 s), subscribes again,
//!   and (with dynsec) reconciles the chargers' accounts.
//! - Presence comes from requests and wills ([`Presence::Heartbeat`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;

use super::dynsec::{self, Dynsec};
use super::{Commands, DispatcherConfig, Handler, ECHO_ENDPOINT};
use crate::config::BrokerAcl;
use crate::ids::DeviceId;
use crate::requests::{Outcome, Pipeline, Presence, Transport};
use crate::secrets::Secret;
use crate::service::Service;

/// Unacknowledged requests the broker may send this instance at once.
const RECEIVE_MAXIMUM: u16 = 1024;
/// Largest packet read from the broker: requests over CHARGER_MQTT_MAX_PAYLOAD are
/// answered 413, but dynamic security's client listing (about 150 bytes a charger) must fit.
const MAX_INCOMING_PACKET: u32 = 32 << 20;
/// How long after a claim's or rekey's answer the old credentials are revoked at the
/// broker (the answer must reach the charger before the broker disconnects it).
const REVOKE_GRACE: Duration = Duration::from_millis(500);
/// How often the chargers' accounts are reconciled with the database (besides at start
/// and after each reconnect): catches chargers provisioned by the `provision` command.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
/// How soon an instance that found another reconciling tries again.
const RECONCILE_RETRY: Duration = Duration::from_secs(30);

/// How to reach the external broker.
#[derive(Debug, Clone)]
pub struct ExternalConfig {
    /// mqtt://host:port or mqtts://host:port.
    pub url: String,
    pub username: String,
    pub password: Secret,
    /// PEM CA to verify an mqtts:// broker with.
    pub ca: Option<std::path::PathBuf>,
    pub group: String,
    pub acl: BrokerAcl,
    pub dispatcher: DispatcherConfig,
    /// The connection's keep-alive (`CHARGER_MQTT_BROKER_KEEP_ALIVE_S`).
    pub keep_alive: Duration,
    /// Each charger's request budget (`CHARGER_MQTT_RATE`, `CHARGER_MQTT_BURST`,
    /// `CHARGER_MQTT_ABUSE_SECONDS`), kept by this instance for the requests it takes.
    pub budget: Budget,
}

/// A charger's request budget behind an external broker.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Requests a second.
    pub rate: f64,
    /// Requests at once.
    pub burst: f64,
    /// Over its rate this long, the charger is disconnected through the broker's API.
    pub abuse_after: Duration,
}

/// Longest a request over its charger's rate is held before it is handled; one that would
/// wait longer is dropped (unanswered: the charger floods, or it would not be this far
/// over). Bounds what a flooder holds of the broker's in-flight window.
const MAX_HOLD: Duration = Duration::from_secs(2);

/// What to do with a request, by its charger's budget.
enum Admit {
    Now,
    After(Duration),
    Drop,
    /// Over its rate for too long: drop it and disconnect the charger.
    Cut,
}

/// The per-charger budget of the requests this instance takes (the embedded broker's
/// limit, enforced behind the broker): over its rate a charger's requests are held, too
/// far over they are dropped, and over it for `abuse_after` it is disconnected (once per
/// `abuse_after`).
struct Budgets {
    buckets: crate::limits::Buckets<DeviceId>,
    abuse_after: Duration,
    cut: std::sync::Mutex<HashMap<DeviceId, std::time::Instant>>,
}

impl Budgets {
    fn new(budget: &Budget) -> Self {
        Self {
            buckets: crate::limits::Buckets::new(budget.rate, budget.burst),
            abuse_after: budget.abuse_after,
            cut: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn admit(&self, device: &DeviceId) -> Admit {
        let now = std::time::Instant::now();
        let (rate, burst) = (self.buckets.rate, self.buckets.burst);
        let (wait, over_since) = self
            .buckets
            .with(device, now, |b| (b.take(rate, burst, now), b.over_since))
            .unwrap_or_default();
        if wait.is_zero() {
            return Admit::Now;
        }
        crate::metrics::limit_hit(crate::metrics::Limit::MqttRate);
        if over_since.is_some_and(|t| now.saturating_duration_since(t) >= self.abuse_after) {
            let Ok(mut cut) = self.cut.lock() else {
                return Admit::Drop;
            };
            if cut.len() >= 1024 {
                let abuse_after = self.abuse_after;
                cut.retain(|_, at| now.saturating_duration_since(*at) < abuse_after);
            }
            let recent = cut
                .get(device)
                .is_some_and(|at| now.saturating_duration_since(*at) < self.abuse_after);
            if !recent {
                cut.insert(device.clone(), now);
                return Admit::Cut;
            }
            return Admit::Drop;
        }
        if wait > MAX_HOLD {
            Admit::Drop
        } else {
            Admit::After(wait)
        }
    }
}

/// The charger a request's topic names (None: not a charger's request topic).
fn device_of(topic: &[u8]) -> Option<DeviceId> {
    let topic = std::str::from_utf8(topic).ok()?;
    let t = charger_protocol::Topic::parse(topic).ok()?;
    DeviceId::parse(t.device).ok()
}

struct External {
    client: AsyncClient,
    dynsec: Option<Arc<Dynsec>>,
    service: Service,
}

impl External {
    async fn publish(&self, topic: String, payload: Vec<u8>) {
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            tracing::error!(error = %e, "cannot publish to the external broker");
        }
    }

    /// Brings one charger's broker account up to date (dynsec only).
    async fn sync(&self, device: &DeviceId) {
        let Some(dynsec) = &self.dynsec else {
            return;
        };
        let account = match self.service.broker_account_of(device).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(%device, error = %e, "charger's broker account not read");
                return;
            }
        };
        if let Err(e) = dynsec.sync(device, account.as_ref()).await {
            tracing::error!(%device, error = %e, "charger's broker account not updated");
        }
    }
}

#[async_trait]
impl Transport for External {
    async fn deliver(&self, out: Outcome) {
        let revoke = out.revoke.clone();
        self.publish(out.topic, out.payload).await;
        if let Some(device) = revoke {
            // The server already refuses the old key; the broker refuses the old password
            // (and disconnects the charger) once the answer has had time to arrive. In the
            // background: the writer publishing this batch's other answers does not wait.
            let (client, dynsec, service) = (
                self.client.clone(),
                self.dynsec.clone(),
                self.service.clone(),
            );
            tokio::spawn(async move {
                tokio::time::sleep(REVOKE_GRACE).await;
                let later = External {
                    client,
                    dynsec,
                    service,
                };
                later.sync(&device).await;
            });
        }
    }

    fn is_connected(&self, _device: &DeviceId) -> Option<bool> {
        None
    }

    async fn disconnect(&self, device: &DeviceId) {
        self.sync(device).await;
    }

    async fn accounts_changed(&self, devices: &[DeviceId]) {
        for device in devices {
            self.sync(device).await;
        }
    }
}

fn options(config: &ExternalConfig) -> anyhow::Result<MqttOptions> {
    let (tls, rest) = if let Some(rest) = config.url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = config.url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        anyhow::bail!("CHARGER_MQTT_BROKER_URL: must start with mqtt:// or mqtts://");
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| anyhow::anyhow!("CHARGER_MQTT_BROKER_URL: bad port"))?,
        ),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        anyhow::bail!("CHARGER_MQTT_BROKER_URL: no host");
    }
    // Each instance its own client id ('.' keeps it apart from device ids).
    let id = format!(
        "charger-server.{}.{}",
        config.username,
        crate::secrets::random_token(6)
    );
    let mut o = MqttOptions::new(id, host, port);
    o.set_credentials(config.username.clone(), config.password.expose())
        .set_keep_alive(config.keep_alive.max(Duration::from_secs(5)))
        .set_clean_start(true)
        .set_manual_acks(true)
        .set_receive_maximum(Some(RECEIVE_MAXIMUM))
        .set_max_packet_size(Some(MAX_INCOMING_PACKET))
        .set_request_channel_capacity(65_536)
        .set_connection_timeout(10);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    if tls {
        let transport = match &config.ca {
            Some(path) => {
                let ca = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!(
                        "CHARGER_MQTT_BROKER_CA: cannot read {}: {e}",
                        path.display()
                    )
                })?;
                rumqttc::Transport::tls(ca, None, None)
            }
            None => rumqttc::Transport::tls_with_default_config(),
        };
        o.set_transport(transport);
    }
    Ok(o)
}

/// What this instance subscribes to.
fn filters(config: &ExternalConfig) -> Vec<Filter> {
    let group = &config.group;
    let mut endpoints: Vec<&str> = crate::charging::ENDPOINTS.to_vec();
    if config.dispatcher.echo {
        endpoints.push(ECHO_ENDPOINT);
    }
    let mut f: Vec<Filter> = endpoints
        .iter()
        .map(|e| Filter::new(format!("$share/{group}/+/req/+/{e}"), QoS::AtLeastOnce))
        .collect();
    f.extend(
        crate::charging::COMMANDS
            .iter()
            .map(|c| Filter::new(format!("+/req/+/{c}"), QoS::AtLeastOnce)),
    );
    if config.acl == BrokerAcl::Dynsec {
        f.push(Filter::new(dynsec::RESPONSE_TOPIC, QoS::AtLeastOnce));
    }
    f
}

/// Connects to the external broker and serves charger requests through it.
pub async fn start_external(service: Service, config: ExternalConfig) -> anyhow::Result<()> {
    let options = options(&config)?;
    let (client, mut eventloop) = AsyncClient::new(options, 65_536);
    let dynsec = (config.acl == BrokerAcl::Dynsec).then(|| Arc::new(Dynsec::new(client.clone())));
    let transport = Arc::new(External {
        client: client.clone(),
        dynsec: dynsec.clone(),
        service: service.clone(),
    });
    let pipeline = Arc::new(Pipeline::start(
        service.clone(),
        transport.clone(),
        Presence::Heartbeat,
    ));
    // The event loop never waits on the pipeline: requests go through this queue (bounded
    // by the broker's receive maximum, since each is acknowledged only once submitted).
    let (requests, mut queued) = mpsc::unbounded_channel::<Publish>();
    let filters = filters(&config);
    let (connected_tx, mut connected) = tokio::sync::watch::channel(0u64);
    {
        let client = client.clone();
        let dynsec = dynsec.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut connections = 0u64;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(100);
                        connections += 1;
                        tracing::info!(connections, "connected to the external MQTT broker");
                        if let Err(e) = client.subscribe_many(filters.clone()).await {
                            tracing::error!(error = %e, "cannot subscribe on the external broker");
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let refused = ack
                            .return_codes
                            .iter()
                            .filter(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                            .count();
                        if refused > 0 {
                            tracing::error!(refused, "the external broker refused subscriptions; check this server's role there (docs/operations.md)");
                        }
                        // Subscribed: requests flow, and dynsec answers can be read.
                        let _ = connected_tx.send(connections);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if p.topic.as_ref() == dynsec::RESPONSE_TOPIC.as_bytes() {
                            if let Some(d) = &dynsec {
                                d.on_response(&p.payload);
                            }
                            let _ = client.try_ack(&p);
                        } else {
                            let _ = requests.send(p);
                        }
                    }
                    Ok(Event::Incoming(Packet::Disconnect(d))) => {
                        tracing::warn!(reason = ?d.reason_code, "the external broker disconnected this instance");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "external MQTT broker unreachable; reconnecting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }
    {
        let client = client.clone();
        let service = service.clone();
        let transport = transport.clone();
        let dispatcher = config.dispatcher.clone();
        let budgets = Budgets::new(&config.budget);
        let dynsec = dynsec.clone();
        tokio::spawn(async move {
            while let Some(p) = queued.recv().await {
                let admit = device_of(&p.topic).map(|d| (budgets.admit(&d), d));
                match admit {
                    None | Some((Admit::Now, _)) => {}
                    Some((Admit::After(wait), _)) => {
                        // Held apart, so that the other chargers' requests go on.
                        let (client, service, pipeline, transport, dispatcher) = (
                            client.clone(),
                            service.clone(),
                            pipeline.clone(),
                            transport.clone(),
                            dispatcher.clone(),
                        );
                        tokio::spawn(async move {
                            tokio::time::sleep(wait).await;
                            let to = Handler {
                                config: &dispatcher,
                                service: &service,
                                pipeline: &pipeline,
                                transport: transport.as_ref(),
                            };
                            to.handle(None, &p.topic, &p.payload, Commands::AnswersOnly)
                                .await;
                            let _ = client.ack(&p).await;
                        });
                        continue;
                    }
                    Some((Admit::Drop, _)) => {
                        let _ = client.ack(&p).await;
                        continue;
                    }
                    Some((Admit::Cut, device)) => {
                        crate::metrics::limit_hit(crate::metrics::Limit::MqttRateDisconnect);
                        tracing::warn!(
                            %device,
                            "over its request rate (CHARGER_MQTT_RATE) for too long: \
                             disconnected through the broker"
                        );
                        if let Some(d) = &dynsec {
                            let d = d.clone();
                            tokio::spawn(async move { d.kick(&device).await });
                        }
                        let _ = client.ack(&p).await;
                        continue;
                    }
                }
                let to = Handler {
                    config: &dispatcher,
                    service: &service,
                    pipeline: &pipeline,
                    transport: transport.as_ref(),
                };
                // Every instance gets command answers; only an answer counts here.
                to.handle(None, &p.topic, &p.payload, Commands::AnswersOnly)
                    .await;
                let _ = client.ack(&p).await;
            }
        });
    }
    // Wait for the first connection (bounded), then reconcile after every (re)connection.
    let first = tokio::time::timeout(Duration::from_secs(30), connected.changed()).await;
    if !matches!(first, Ok(Ok(()))) {
        anyhow::bail!(
            "CHARGER_MQTT_BROKER_URL: cannot connect to {} within 30 s (check the URL, \
             CHARGER_MQTT_BROKER_USERNAME and CHARGER_MQTT_BROKER_PASSWORD)",
            config.url
        );
    }
    if let Some(dynsec) = dynsec {
        let service = service.clone();
        tokio::spawn(async move {
            loop {
                // One instance at a time: after a broker restart every instance reconnects,
                // and all of them restoring every account at once doubled the broker's
                // time to recover. One that finds another at it tries again soon.
                let mut wait = RECONCILE_EVERY;
                match service.reconcile_alone().await {
                    Ok(Some(_alone)) => match dynsec.reconcile(&service).await {
                        Ok(0) => tracing::info!("broker accounts agree with the database"),
                        Ok(n) => tracing::info!(
                            changed = n,
                            "broker accounts reconciled with the database"
                        ),
                        Err(e) => tracing::error!(error = %e, "broker accounts not reconciled"),
                    },
                    Ok(None) => {
                        tracing::info!("another instance reconciles the broker's accounts");
                        wait = RECONCILE_RETRY;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "broker accounts not reconciled");
                        wait = RECONCILE_RETRY;
                    }
                }
                let _ = tokio::time::timeout(wait, connected.changed()).await;
            }
        });
    }
    Ok(())
}
