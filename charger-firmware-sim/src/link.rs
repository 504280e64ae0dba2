//! A charger's MQTT link: login from the firmware bundle, TCP_NODELAY, the RES
//! subscription, REQ/RES with fresh ids, and the server's commands.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use charger_protocol::{
    open_response_on, seal_request_v2, DeviceKey, FirmwareBundle, RequestId, ResponseEnvelope,
    Version,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// How long a request waits for its answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to a request: its code and opened body (`Null` for an unsealed answer).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub code: u16,
    pub body: Value,
}

/// A command from the server (remote start, remote stop, unlock).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: String,
    pub name: String,
    pub data: Value,
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>;

/// Request ids: unique across restarts of the simulator (start time in ms, then a counter).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn next_id() -> String {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| chrono::Utc::now().timestamp_millis());
    format!("{start}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// One connected charger.
pub struct Link {
    client: rumqttc::AsyncClient,
    pub bundle: FirmwareBundle,
    /// The `<user>` of its topics (its owner).
    pub user: String,
    /// The envelope it speaks: v2 (sealed requests, no key on the wire) unless set to v1.
    pub version: Version,
    key: DeviceKey,
    waiters: Waiters,
    commands: mpsc::UnboundedReceiver<Command>,
    pending_commands: VecDeque<Command>,
    closed: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    /// Connects as the bundle's charger to `broker` (default: the bundle's host and port)
    /// and subscribes to its answers under `user` (default: the bundle's owner).
    pub async fn connect(
        bundle: &FirmwareBundle,
        broker: Option<&str>,
        user: Option<&str>,
    ) -> anyhow::Result<Link> {
        let (host, port) = match broker {
            Some(b) => {
                let (h, p) = b
                    .rsplit_once(':')
                    .ok_or_else(|| anyhow!("broker {b:?} is not host:port"))?;
                (h.to_owned(), p.parse().context("broker port")?)
            }
            None => (bundle.mqtt.host.clone(), bundle.mqtt.port),
        };
        let mut opts = rumqttc::MqttOptions::new(&bundle.device_id, host, port);
        opts.set_credentials(&bundle.mqtt.username, &bundle.mqtt.password);
        opts.set_keep_alive(Duration::from_secs(60));
        opts.set_clean_session(true);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let user = user.unwrap_or(&bundle.owner).to_owned();
        let key = DeviceKey::from_hex(&bundle.key).context("bundle key")?;
        // The will: an `offline` REQ built now, which the broker publishes if this
        // connection is lost (behind an external broker the server then marks the charger
        // offline at once).
        let will_id = format!("will-{}", chrono::Utc::now().timestamp_millis());
        let will = charger_protocol::seal_request_v2(
            &key,
            charger_protocol::endpoint::OFFLINE,
            charger_protocol::RequestId::Str(will_id),
            b"{}",
        )
        .context("sealing the will")?;
        opts.set_last_will(rumqttc::LastWill::new(
            charger_protocol::topic::request_topic(
                &user,
                &bundle.device_id,
                charger_protocol::endpoint::OFFLINE,
            ),
            serde_json::to_vec(&will).context("the will as JSON")?,
            rumqttc::QoS::AtLeastOnce,
            false,
        ));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 64);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(10);
        eventloop.set_network_options(net);
        let link_key = key.clone();
        let waiters: Waiters = Arc::default();
        let closed: Arc<Mutex<Option<String>>> = Arc::default();
        let (command_tx, commands) = mpsc::unbounded_channel();
        let (ready_tx, ready) = oneshot::channel::<Result<(), String>>();
        let task = {
            let waiters = waiters.clone();
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut ready_tx = Some(ready_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(s))) => {
                            let ok = s
                                .return_codes
                                .iter()
                                .all(|c| !matches!(c, rumqttc::SubscribeReasonCode::Failure));
                            if let Some(r) = ready_tx.take() {
                                let _ = r.send(if ok {
                                    Ok(())
                                } else {
                                    Err("subscription refused".into())
                                });
                            }
                        }
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                            incoming(&key, &p.topic, &p.payload, &waiters, &command_tx);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let why = e.to_string();
                            if let Some(r) = ready_tx.take() {
                                let _ = r.send(Err(why.clone()));
                            }
                            if let Ok(mut c) = closed.lock() {
                                *c = Some(why);
                            }
                            // Pending requests fail at once rather than time out.
                            if let Ok(mut w) = waiters.lock() {
                                w.clear();
                            }
                            return;
                        }
                    }
                }
            })
        };
        let filter = format!("{user}/res/{}/+", bundle.device_id);
        client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .await
            .context("subscribe")?;
        match tokio::time::timeout(ANSWER_TIMEOUT, ready).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(why))) => bail!("{}: {why}", bundle.device_id),
            _ => bail!("{}: no CONNACK/SUBACK in time", bundle.device_id),
        }
        Ok(Link {
            client,
            bundle: bundle.clone(),
            user,
            version: Version::V2,
            key: link_key,
            waiters,
            commands,
            pending_commands: VecDeque::new(),
            closed,
            task,
        })
    }

    /// Why the connection ended, if it has.
    pub fn closed(&self) -> Option<String> {
        self.closed.lock().ok().and_then(|c| c.clone())
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&mut self, endpoint: &str, data: Value) -> anyhow::Result<Answer> {
        let id = next_id();
        self.request_with_id(RequestId::Str(id), endpoint, data)
            .await
    }

    /// Sends a request with a given id (a retry) and waits for its answer.
    pub async fn request_with_id(
        &mut self,
        id: RequestId,
        endpoint: &str,
        data: Value,
    ) -> anyhow::Result<Answer> {
        if let Some(why) = self.closed() {
            bail!("disconnected: {why}");
        }
        let (tx, rx) = oneshot::channel();
        let key = id.json_text();
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(key.clone(), tx);
        }
        let payload = self.envelope(id, endpoint, &data)?;
        let topic = format!("{}/req/{}/{endpoint}", self.user, self.bundle.device_id);
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .context("publish")?;
        match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => bail!("disconnected while waiting for {endpoint}"),
            Err(_) => {
                if let Ok(mut w) = self.waiters.lock() {
                    w.remove(&key);
                }
                bail!("no answer to {endpoint} within {ANSWER_TIMEOUT:?}")
            }
        }
    }

    /// Commands received so far (and not yet taken).
    pub fn take_commands(&mut self) -> Vec<Command> {
        while let Ok(c) = self.commands.try_recv() {
            self.pending_commands.push_back(c);
        }
        self.pending_commands.drain(..).collect()
    }

    /// Waits up to `wait` for the next command.
    pub async fn next_command(&mut self, wait: Duration) -> Option<Command> {
        if let Some(c) = self.pending_commands.pop_front() {
            return Some(c);
        }
        tokio::time::timeout(wait, self.commands.recv())
            .await
            .ok()
            .flatten()
    }

    /// Answers a command on `<user>/req/<device>/<command>` with its id.
    pub async fn answer_command(&self, command: &Command, data: Value) -> anyhow::Result<()> {
        let id = RequestId::Str(command.id.clone());
        let payload = self.envelope(id, &command.name, &data)?;
        let topic = format!(
            "{}/req/{}/{}",
            self.user, self.bundle.device_id, command.name
        );
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .context("publish")
    }

    /// A REQ in this link's envelope version: v1 shows the key, v2 seals the params.
    fn envelope(&self, id: RequestId, endpoint: &str, data: &Value) -> anyhow::Result<String> {
        Ok(match self.version {
            Version::V1 => json!({"id": id, "key": self.bundle.key, "data": data}).to_string(),
            Version::V2 => {
                let req = seal_request_v2(&self.key, endpoint, id, data.to_string().as_bytes())
                    .context("sealing a v2 request")?;
                serde_json::to_string(&req).context("v2 request")?
            }
        })
    }

    /// Sends DISCONNECT (a clean goodbye).
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Routes one RES (or command) to its waiter.
fn incoming(
    key: &DeviceKey,
    topic: &str,
    payload: &[u8],
    waiters: &Waiters,
    commands: &mpsc::UnboundedSender<Command>,
) {
    let endpoint = topic.rsplit('/').next().unwrap_or_default().to_owned();
    let Ok(res) = serde_json::from_slice::<ResponseEnvelope>(payload) else {
        if endpoint == "echo" {
            echoed(payload, waiters);
        }
        return;
    };
    let body = if res.data.is_empty() {
        Value::Null
    } else {
        match open_response_on(key, &endpoint, &res) {
            Ok(plain) => serde_json::from_slice(&plain).unwrap_or(Value::Null),
            // Not authentic under our key: ignore it.
            Err(_) => return,
        }
    };
    match &res.id {
        Some(RequestId::Str(id)) if id.starts_with("srv-") => {
            let _ = commands.send(Command {
                id: id.clone(),
                name: endpoint,
                data: body,
            });
        }
        Some(id) => {
            let waiter = waiters
                .lock()
                .ok()
                .and_then(|mut w| w.remove(&id.json_text()));
            if let Some(w) = waiter {
                let _ = w.send(Answer {
                    code: res.code,
                    body,
                });
            }
        }
        // An unreadable request of ours (400/413 with id null): nobody to tell.
        None => {}
    }
}

/// The server's echo diagnostic sends our own request back: it answers the waiter of
/// its id with 200.
fn echoed(payload: &[u8], waiters: &Waiters) {
    #[derive(serde::Deserialize)]
    struct Echo {
        id: RequestId,
    }
    let Ok(echo) = serde_json::from_slice::<Echo>(payload) else {
        return;
    };
    let waiter = waiters
        .lock()
        .ok()
        .and_then(|mut w| w.remove(&echo.id.json_text()));
    if let Some(w) = waiter {
        let _ = w.send(Answer {
            code: 200,
            body: Value::Null,
        });
    }
}
