//! The charger request service: the one home of the request path, whatever carries it.
//!
//! A transport (the embedded broker's connections, or a client of an external broker)
//! parses a REQ into a [`ChargerRequest`] and [`Pipeline::submit`]s it. The pipeline runs
//! it through the domain in a group commit ([`batch`]: the transaction, the savepoints,
//! the key check, the kept answers), seals the answer, and hands it back to the transport
//! as an [`Outcome`] to publish, only once what it changed is durable. Server commands
//! ([`Commander`]) go out and come back through the same transport.
//!
//! The transport is an adapter behind [`Transport`]: the domain never names a broker, and
//! the MQTT edge never reaches the store.

mod batch;
mod commands;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use charger_protocol::RequestEnvelope;

use crate::devices::PresenceChange;
use crate::ids::DeviceId;
use crate::service::Service;

pub use batch::{endpoint_label, error_body, to_json, MAX_BATCH, READ_ENDPOINTS};
pub use commands::{Commander, COMMAND_ID_PREFIX};

/// A request that passed the envelope checks (parsed, within the size limit).
#[derive(Clone)]
pub struct ChargerRequest {
    pub device: DeviceId,
    /// The embedded broker's connection it came on (None behind an external broker).
    pub conn: Option<i64>,
    /// When the transport received it (for the latency histogram).
    pub received: Instant,
    /// The `<user>` of the REQ topic.
    pub user: String,
    pub endpoint: String,
    /// Where its answer goes.
    pub res_topic: String,
    pub envelope: RequestEnvelope,
}

/// A RES to publish.
pub struct Outcome {
    pub topic: String,
    pub payload: Vec<u8>,
    /// The charger's credentials changed (a claim or a rekey): close its connection, and
    /// refuse the old ones, once this RES is delivered.
    pub revoke: Option<DeviceId>,
    /// The connection the request came on, when the transport can tell: only it is
    /// revoked.
    pub conn: Option<i64>,
}

/// How the pipeline reaches chargers: the MQTT edge's adapters implement it.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Publishes a RES (an answer or a command), after its `revoke` is in force.
    async fn deliver(&self, out: Outcome);
    /// Whether the charger is connected, when the transport can tell (it holds the
    /// socket); None when presence comes from the database (an external broker).
    fn is_connected(&self, device: &DeviceId) -> Option<bool>;
    /// The charger's credentials were revoked: close its connection now (and, on an
    /// external broker, refuse its old password).
    async fn disconnect(&self, device: &DeviceId);
    /// Chargers were provisioned: an external broker's accounts follow. The embedded
    /// broker checks the database at each login and needs nothing.
    async fn accounts_changed(&self, _devices: &[DeviceId]) {}
}

/// Where presence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The transport holds the chargers' sockets (the embedded broker).
    Socket,
    /// Behind an external broker: online from a request until twice the heartbeat passes
    /// without one, or its will (`offline`) arrives.
    Heartbeat,
}

/// How often a busy charger's `last_seen` is written at most, behind an external broker
/// (or half the heartbeat, when that is shorter).
const SEEN_EVERY: Duration = Duration::from_secs(10);

/// The running request service.
pub struct Pipeline {
    writers: batch::Writers,
    commander: Arc<Commander>,
}

/// Behind an external broker, presence comes from requests: a charger is marked seen by a
/// request whose key checks out (and offline by its will, once its key checks out too), so
/// that nobody else's publish can change it.
pub(crate) struct Marks {
    /// When each charger was last marked seen.
    seen: Mutex<HashMap<DeviceId, Instant>>,
    presence_tx: tokio::sync::mpsc::Sender<PresenceChange>,
    seen_every: Duration,
}

impl Marks {
    /// Marks the charger online (at most every [`SEEN_EVERY`]), or offline when this is
    /// its will.
    pub(crate) async fn seen(&self, device: &DeviceId, endpoint: &str) {
        let online = endpoint != charger_protocol::endpoint::OFFLINE;
        let now = Instant::now();
        let due = match self.seen.lock() {
            Ok(mut seen) => {
                if online {
                    let due = seen
                        .get(device)
                        .is_none_or(|t| now.duration_since(*t) >= self.seen_every);
                    if due {
                        seen.insert(device.clone(), now);
                    }
                    due
                } else {
                    seen.remove(device);
                    true
                }
            }
            Err(_) => true,
        };
        if due {
            let _ = self
                .presence_tx
                .send(PresenceChange {
                    device: device.clone(),
                    conn: 0,
                    kind: if online {
                        crate::devices::PresenceKind::Seen
                    } else {
                        crate::devices::PresenceKind::Disconnected
                    },
                    at: chrono::Utc::now(),
                })
                .await;
        }
    }
}

impl Pipeline {
    /// Starts the writers (and, behind an external broker, the presence sweeper).
    pub fn start(service: Service, transport: Arc<dyn Transport>, presence: Presence) -> Self {
        let commander = Arc::new(Commander::new(service.clone(), transport.clone()));
        let channel: Arc<dyn crate::service::CommandChannel> = commander.clone();
        service.set_command_channel(&channel);
        let marks = (presence == Presence::Heartbeat).then(|| {
            tokio::spawn(sweep_presence(service.clone()));
            let half_heartbeat =
                Duration::from_millis(service.limits.heartbeat_s.saturating_mul(500));
            Arc::new(Marks {
                seen: Mutex::new(HashMap::new()),
                presence_tx: crate::devices::presence_writer(service.clone()),
                seen_every: SEEN_EVERY.min(half_heartbeat),
            })
        });
        Self {
            writers: batch::start(service, transport, marks),
            commander,
        }
    }

    /// The command path.
    pub fn commander(&self) -> &Arc<Commander> {
        &self.commander
    }

    /// Takes a request: a command's answer goes to its caller, anything else is queued
    /// for its device's writer (waiting while the queue is full).
    pub async fn submit(&self, request: ChargerRequest) {
        if !self.commander.take_answer(&request) {
            self.writers.send(request).await;
        }
    }

    /// Hands a command's answer to the command waiting for it on this instance; anything
    /// else on a command's topic is dropped (behind an external broker every instance
    /// receives those).
    pub fn take_command_answer(&self, request: &ChargerRequest) {
        self.commander.take_answer(request);
    }
}

/// Behind an external broker: marks offline, every few seconds, the chargers not heard
/// from for twice the heartbeat.
async fn sweep_presence(service: Service) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        match service.sweep_presence().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                chargers = n,
                "chargers silent past twice the heartbeat marked offline"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot sweep presence"),
        }
    }
}
