//! The MQTT edge of the charger API: two transports over the one request pipeline
//! ([`crate::requests`]). Each parses a REQ's topic and envelope, answers what cannot be
//! read (400, 413), hands the rest to the pipeline, and publishes what it gives back.
//!
//! - embedded (the default): the embedded broker's connections hand it every REQ and
//!   it hands the answers straight back to the charger's connection;
//! - [`external`]: a client of Mosquitto or EMQX sharing the requests with other instances
//!   (and, for Mosquitto, [`dynsec`]: the chargers' accounts provisioned by the server).
//!
//! Envelope rules (docs/mqtt-api.md): a REQ that cannot be parsed gets 400 with `data` ""
//! (413 when it is over the configured size); the pipeline answers a wrong key 401 with
//! `data` "" and seals every other answer with the device key.

mod dynsec;
mod external;

use std::sync::Arc;

use async_trait::async_trait;
use charger_protocol::{Direction, RequestEnvelope, ResponseEnvelope, Topic};

use crate::broker::{Broker, Inbound};
use crate::ids::DeviceId;
use crate::requests::{
    endpoint_label, to_json, ChargerRequest, Outcome, Pipeline, Presence, Transport,
};
use crate::service::Service;

pub use external::{start_external, Budget, ExternalConfig};

/// The filter of every device's requests.
pub use charger_protocol::topic::REQUEST_FILTER;

/// Dispatcher limits.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Largest REQ payload handled; a larger one is answered 413.
    pub max_payload: usize,
    /// Answer the `echo` endpoint with the payload itself (the benchmark's baseline).
    pub echo: bool,
}

/// The diagnostic endpoint answered when [`DispatcherConfig::echo`] is on.
pub const ECHO_ENDPOINT: &str = "echo";

/// The embedded broker as the pipeline's transport: answers go straight to the
/// charger's connection.
struct Embedded {
    broker: Broker,
}

#[async_trait]
impl Transport for Embedded {
    async fn deliver(&self, out: Outcome) {
        let Some(device) = Topic::parse(&out.topic)
            .ok()
            .and_then(|t| DeviceId::parse(t.device).ok())
        else {
            return;
        };
        if let (Some(device), Some(conn)) = (&out.revoke, out.conn) {
            // Before the RES goes out: the connection that asked closes once it has
            // delivered it, and takes nothing more meanwhile.
            self.broker.revoke_after(device, conn, &out.topic);
        }
        self.broker.deliver(&device, out.topic, out.payload);
    }

    fn is_connected(&self, device: &DeviceId) -> Option<bool> {
        Some(self.broker.is_connected(device))
    }

    async fn disconnect(&self, device: &DeviceId) {
        self.broker.disconnect_device(device);
    }
}

/// The dispatcher as the embedded broker's [`Inbound`]: every charger publish.
struct Dispatcher {
    config: DispatcherConfig,
    service: Service,
    pipeline: Pipeline,
    transport: Arc<Embedded>,
}

#[async_trait]
impl Inbound for Dispatcher {
    async fn publish(&self, conn: i64, topic: &[u8], payload: &[u8]) {
        let to = Handler {
            config: &self.config,
            service: &self.service,
            pipeline: &self.pipeline,
            transport: self.transport.as_ref(),
        };
        to.handle(Some(conn), topic, payload, Commands::AsRequests)
            .await;
    }
}

/// Starts the dispatcher on the embedded `broker`: the pipeline, fed by its connections.
/// The dispatcher serves as long as the returned handle is kept.
pub async fn start(
    broker: &Broker,
    service: Service,
    config: DispatcherConfig,
) -> std::io::Result<Arc<dyn Inbound>> {
    let transport = Arc::new(Embedded {
        broker: broker.clone(),
    });
    let pipeline = Pipeline::start(service.clone(), transport.clone(), Presence::Socket);
    let dispatcher: Arc<dyn Inbound> = Arc::new(Dispatcher {
        config,
        service,
        pipeline,
        transport,
    });
    broker.attach(&dispatcher);
    Ok(dispatcher)
}

/// A RES to publish.
pub(crate) struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// What a command's topic carries on this transport.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commands {
    /// Only this instance sees it: an answer to a command, or a request answered 404.
    AsRequests,
    /// Every instance sees it (behind an external broker): only answers count.
    AnswersOnly,
}

/// Handles one REQ: answers what cannot be read, hands the rest to the pipeline.
struct Handler<'a> {
    config: &'a DispatcherConfig,
    service: &'a Service,
    pipeline: &'a Pipeline,
    transport: &'a dyn Transport,
}

impl Handler<'_> {
    async fn handle(&self, conn: Option<i64>, topic: &[u8], payload: &[u8], commands: Commands) {
        let received = std::time::Instant::now();
        match route(self.config, conn, topic, payload) {
            Route::Ignore => {}
            Route::Answer(out, endpoint, code) => {
                let out = Outcome {
                    topic: out.topic,
                    payload: out.payload,
                    revoke: None,
                    conn: None,
                };
                self.transport.deliver(out).await;
                self.service
                    .metrics()
                    .request(endpoint, code, received.elapsed());
            }
            Route::Job(job)
                if commands == Commands::AnswersOnly
                    && crate::charging::COMMANDS.contains(&job.endpoint.as_str()) =>
            {
                self.pipeline.take_command_answer(&job);
            }
            Route::Job(job) => self.pipeline.submit(job).await,
        }
    }
}

enum Route {
    /// Not a request (the ACL makes that impossible from devices).
    Ignore,
    /// Answered without the database (400, 413): the answer, the endpoint's metrics
    /// label, the code.
    Answer(Outgoing, &'static str, u16),
    Job(ChargerRequest),
}

/// Reads a REQ's topic and envelope; what cannot be read is answered here, in order.
fn route(config: &DispatcherConfig, conn: Option<i64>, topic: &[u8], payload: &[u8]) -> Route {
    let Some(t) = std::str::from_utf8(topic)
        .ok()
        .and_then(|t| Topic::parse(t).ok())
    else {
        return Route::Ignore;
    };
    if t.direction != Direction::Request {
        return Route::Ignore;
    }
    let Ok(device) = DeviceId::parse(t.device) else {
        return Route::Ignore;
    };
    let res_topic = charger_protocol::topic::response_topic(t.user, t.device, t.endpoint);
    let unsealed = |id, code, version| Outgoing {
        topic: res_topic.clone(),
        payload: to_json(&ResponseEnvelope::unsealed(id, version, code)),
    };
    if payload.len() > config.max_payload {
        tracing::info!(%device, size = payload.len(), "request over the payload limit");
        // The id (and version), when they can be read, so the charger can match the 413.
        #[derive(serde::Deserialize)]
        struct Head {
            id: Option<charger_protocol::RequestId>,
            v: Option<u8>,
        }
        let head = serde_json::from_slice::<Head>(payload).ok();
        let id = head
            .as_ref()
            .and_then(|h| h.id.clone())
            .filter(|id| id.validate().is_ok());
        let version = match head.and_then(|h| h.v) {
            Some(2) => charger_protocol::Version::V2,
            _ => charger_protocol::Version::V1,
        };
        let out = unsealed(id, 413, version);
        return Route::Answer(out, endpoint_label(t.endpoint), 413);
    }
    if config.echo && t.endpoint == ECHO_ENDPOINT {
        let out = Outgoing {
            topic: res_topic,
            payload: payload.to_vec(),
        };
        return Route::Answer(out, ECHO_ENDPOINT, 200);
    }
    match RequestEnvelope::parse(payload) {
        Ok(envelope) => Route::Job(ChargerRequest {
            device,
            conn,
            received: std::time::Instant::now(),
            user: t.user.to_owned(),
            endpoint: t.endpoint.to_owned(),
            res_topic,
            envelope,
        }),
        Err(e) => {
            tracing::info!(%device, error = e.error, "unreadable request");
            Route::Answer(
                unsealed(e.id, 400, e.version),
                endpoint_label(t.endpoint),
                400,
            )
        }
    }
}
