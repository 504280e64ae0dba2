//! MQTT test clients: rumqttc (3.1.1 and 5.0) behind one small interface, with
//! TCP_NODELAY, for driving the broker the way a charger does.

use std::time::Duration;

use charger_protocol::{
    open_response, open_response_on, seal_request_v2, DeviceKey, FirmwareBundle, RequestId,
    ResponseEnvelope,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Protocol version of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V4,
    V5,
}

/// Delivery level of a publish or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// SUBACK: per filter, whether it was granted.
    SubAck(Vec<bool>),
    Publish {
        topic: String,
        payload: Vec<u8>,
    },
    /// PUBACK, with whether it said success (5.0 can say "not authorized").
    PubAck(bool),
    /// The connection ended.
    Closed(String),
}

enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// A connected MQTT client and what it receives.
pub struct Probe {
    client: Client,
    rx: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connection options of a probe.
pub struct Login<'a> {
    pub addr: std::net::SocketAddr,
    pub client_id: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub will: Option<(&'a str, &'a str)>,
}

impl<'a> Login<'a> {
    /// The login of a provisioned charger.
    pub fn device(addr: std::net::SocketAddr, bundle: &'a FirmwareBundle) -> Self {
        Self {
            addr,
            client_id: &bundle.device_id,
            username: &bundle.mqtt.username,
            password: &bundle.mqtt.password,
            will: None,
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);

impl Probe {
    /// Connects; `Err` carries why the broker refused (or the connection failed).
    pub async fn connect(version: Version, login: Login<'_>) -> Result<Probe, String> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (client, task) = match version {
            Version::V4 => {
                use rumqttc::{Event, Packet};
                let host = login.addr.ip().to_string();
                let mut opts = rumqttc::MqttOptions::new(login.client_id, host, login.addr.port());
                opts.set_credentials(login.username, login.password);
                opts.set_keep_alive(Duration::from_secs(30));
                if let Some((topic, payload)) = login.will {
                    opts.set_last_will(rumqttc::LastWill::new(
                        topic,
                        payload,
                        rumqttc::QoS::AtMostOnce,
                        false,
                    ));
                }
                let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 100);
                let mut net = rumqttc::NetworkOptions::new();
                net.set_tcp_nodelay(true);
                eventloop.set_network_options(net);
                let task = tokio::spawn(async move {
                    loop {
                        let seen = match eventloop.poll().await {
                            Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::SubAck(vec![]),
                            Ok(Event::Incoming(Packet::SubAck(s))) => Seen::SubAck(
                                s.return_codes
                                    .iter()
                                    .map(|c| !matches!(c, rumqttc::SubscribeReasonCode::Failure))
                                    .collect(),
                            ),
                            Ok(Event::Incoming(Packet::Publish(p))) => Seen::Publish {
                                topic: p.topic.clone(),
                                payload: p.payload.to_vec(),
                            },
                            Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck(true),
                            Ok(_) => continue,
                            Err(e) => {
                                let _ = tx.send(Seen::Closed(e.to_string()));
                                return;
                            }
                        };
                        if tx.send(seen).is_err() {
                            return;
                        }
                    }
                });
                (Client::V4(client), task)
            }
            Version::V5 => {
                use rumqttc::v5::mqttbytes::v5::Packet;
                use rumqttc::v5::Event;
                let host = login.addr.ip().to_string();
                let mut opts =
                    rumqttc::v5::MqttOptions::new(login.client_id, host, login.addr.port());
                opts.set_credentials(login.username, login.password);
                opts.set_keep_alive(Duration::from_secs(30));
                if let Some((topic, payload)) = login.will {
                    opts.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                        topic,
                        payload,
                        rumqttc::v5::mqttbytes::QoS::AtMostOnce,
                        false,
                        None,
                    ));
                }
                let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(opts, 100);
                let mut net = rumqttc::NetworkOptions::new();
                net.set_tcp_nodelay(true);
                eventloop.options.set_network_options(net);
                let task = tokio::spawn(async move {
                    use rumqttc::v5::mqttbytes::v5::{PubAckReason, SubscribeReasonCode};
                    loop {
                        let seen = match eventloop.poll().await {
                            Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::SubAck(vec![]),
                            Ok(Event::Incoming(Packet::SubAck(s))) => Seen::SubAck(
                                s.return_codes
                                    .iter()
                                    .map(|c| matches!(c, SubscribeReasonCode::Success(_)))
                                    .collect(),
                            ),
                            Ok(Event::Incoming(Packet::Publish(p))) => Seen::Publish {
                                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                                payload: p.payload.to_vec(),
                            },
                            Ok(Event::Incoming(Packet::PubAck(a))) => {
                                Seen::PubAck(a.reason == PubAckReason::Success)
                            }
                            Ok(_) => continue,
                            Err(e) => {
                                let _ = tx.send(Seen::Closed(e.to_string()));
                                return;
                            }
                        };
                        if tx.send(seen).is_err() {
                            return;
                        }
                    }
                });
                (Client::V5(client), task)
            }
        };
        // The first event says whether the broker accepted us.
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(Seen::SubAck(codes))) if codes.is_empty() => Ok(Probe { client, rx, task }),
            Ok(Some(Seen::Closed(why))) => {
                task.abort();
                Err(why)
            }
            other => {
                task.abort();
                Err(format!("unexpected first event: {other:?}"))
            }
        }
    }

    /// Subscribes to one filter and returns whether the SUBACK granted it.
    pub async fn subscribe(&mut self, filter: &str, qos: Qos) -> bool {
        match &self.client {
            Client::V4(c) => c.subscribe(filter, qos4(qos)).await.expect("subscribe"),
            Client::V5(c) => c.subscribe(filter, qos5(qos)).await.expect("subscribe"),
        }
        loop {
            match self.next(WAIT).await {
                Some(Seen::SubAck(codes)) => return codes.first().copied().unwrap_or(false),
                Some(Seen::PubAck(_)) => continue,
                other => panic!("expected a SUBACK for {filter}, got {other:?}"),
            }
        }
    }

    pub async fn publish(&self, topic: &str, qos: Qos, retain: bool, payload: Vec<u8>) {
        match &self.client {
            Client::V4(c) => c
                .publish(topic, qos4(qos), retain, payload)
                .await
                .expect("publish"),
            Client::V5(c) => c
                .publish(topic, qos5(qos), retain, payload)
                .await
                .expect("publish"),
        }
    }

    /// Publishes with an MQTT 5 topic alias (5.0 only).
    pub async fn publish_with_alias(&self, topic: &str, alias: u16, payload: Vec<u8>) {
        let Client::V5(c) = &self.client else {
            panic!("topic aliases are MQTT 5");
        };
        let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
            topic_alias: Some(alias),
            ..Default::default()
        };
        c.publish_with_properties(topic, qos5(Qos::AtLeastOnce), false, payload, props)
            .await
            .expect("publish");
    }

    /// The next thing seen within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Seen> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next publish within `wait`, skipping acknowledgements.
    pub async fn next_publish(&mut self, wait: Duration) -> Option<(String, Vec<u8>)> {
        let deadline = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Seen::Publish { topic, payload })) => return Some((topic, payload)),
                Ok(Some(Seen::Closed(_))) | Ok(None) | Err(_) => return None,
                Ok(Some(_)) => continue,
            }
        }
    }

    /// Every publish received within `wait` (used to prove that nothing arrives).
    pub async fn publishes_within(&mut self, wait: Duration) -> Vec<(String, Vec<u8>)> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while let Ok(Some(seen)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            if let Seen::Publish { topic, payload } = seen {
                out.push((topic, payload));
            }
        }
        out
    }

    /// Waits for the connection to end; returns why, or `None` if it stays up for `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Seen::Closed(why))) => return Some(why),
                Ok(None) => return Some("event loop ended".into()),
                Ok(Some(_)) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Sends DISCONNECT.
    pub async fn disconnect(&self) {
        let _ = match &self.client {
            Client::V4(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Client::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }
}

fn qos4(q: Qos) -> rumqttc::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
    }
}

fn qos5(q: Qos) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    }
}

/// A REQ payload for `bundle`: `{"id", "key", "data"}`.
pub fn request(bundle: &FirmwareBundle, id: serde_json::Value, data: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"id": id, "key": bundle.key, "data": data}))
        .expect("json")
}

/// A v2 REQ payload for `bundle` on `endpoint`: `{"v": 2, "id", "data": <sealed>}`.
pub fn request_v2(
    bundle: &FirmwareBundle,
    endpoint: &str,
    id: serde_json::Value,
    data: serde_json::Value,
) -> Vec<u8> {
    let id: RequestId = serde_json::from_value(id).expect("an id");
    let key = DeviceKey::from_hex(&bundle.key).expect("key");
    let req = seal_request_v2(&key, endpoint, id, data.to_string().as_bytes()).expect("seal");
    serde_json::to_vec(&req).expect("json")
}

/// Parses a RES to a REQ on `endpoint` (v1 or v2) and opens its body (`None` for an empty
/// `data`).
pub fn open_on(
    bundle: &FirmwareBundle,
    endpoint: &str,
    payload: &[u8],
) -> (ResponseEnvelope, Option<serde_json::Value>) {
    let res: ResponseEnvelope = serde_json::from_slice(payload).expect("RES envelope");
    if res.data.is_empty() {
        return (res, None);
    }
    let key = DeviceKey::from_hex(&bundle.key).expect("key");
    let body = open_response_on(&key, endpoint, &res).expect("RES authenticates");
    let body = serde_json::from_slice(&body).expect("RES body is JSON");
    (res, Some(body))
}

/// Parses a RES and opens its sealed body (`None` for an empty `data`).
pub fn open(
    bundle: &FirmwareBundle,
    payload: &[u8],
) -> (ResponseEnvelope, Option<serde_json::Value>) {
    let res: ResponseEnvelope = serde_json::from_slice(payload).expect("RES envelope");
    if res.data.is_empty() {
        return (res, None);
    }
    let key = DeviceKey::from_hex(&bundle.key).expect("key");
    let body = open_response(&key, &res).expect("RES authenticates under the device key");
    let body = serde_json::from_slice(&body).expect("RES body is JSON");
    (res, Some(body))
}

/// A charger: its MQTT connection, its bundle and its request counter.
pub struct Charger {
    pub probe: Probe,
    pub b: FirmwareBundle,
    /// The `<user>` it talks under (its owner, as it believes).
    pub user: String,
    pub next_id: i64,
    /// Speaks envelope v2 (no key on the wire) instead of v1.
    pub v2: bool,
}

impl Charger {
    pub async fn connect(app: &crate::TestApp, b: &FirmwareBundle) -> Charger {
        Self::connect_as(app, b, &b.owner).await
    }

    pub async fn connect_as(app: &crate::TestApp, b: &FirmwareBundle, user: &str) -> Charger {
        Self::connect_to(app.app.mqtt_addr, b, user).await
    }

    /// Connects to the broker at `addr` (an external one) as `user`.
    pub async fn connect_to(addr: std::net::SocketAddr, b: &FirmwareBundle, user: &str) -> Charger {
        let mut probe = Probe::connect(Version::V4, Login::device(addr, b))
            .await
            .expect("connects");
        let filter = format!("{user}/res/{}/+", b.device_id);
        assert!(
            probe.subscribe(&filter, Qos::AtLeastOnce).await,
            "subscribed"
        );
        Charger {
            probe,
            b: b.clone(),
            user: user.to_owned(),
            next_id: 1,
            v2: false,
        }
    }

    /// Calls `endpoint` with a fresh id; returns (code, opened body).
    pub async fn call(
        &mut self,
        endpoint: &str,
        data: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let id = json!(self.next_id);
        self.next_id += 1;
        self.call_with_id(id, endpoint, data).await
    }

    pub async fn call_with_id(
        &mut self,
        id: serde_json::Value,
        endpoint: &str,
        data: serde_json::Value,
    ) -> (u16, Value) {
        let payload = if self.v2 {
            request_v2(&self.b, endpoint, id, data)
        } else {
            request(&self.b, id, data)
        };
        self.send_raw(endpoint, payload).await
    }

    pub async fn send_raw(&mut self, endpoint: &str, payload: Vec<u8>) -> (u16, serde_json::Value) {
        let topic = format!("{}/req/{}/{endpoint}", self.user, self.b.device_id);
        self.probe
            .publish(&topic, Qos::AtLeastOnce, false, payload)
            .await;
        let expected = format!("{}/res/{}/{endpoint}", self.user, self.b.device_id);
        loop {
            let (topic, payload) = self.probe.next_publish(WAIT).await.expect("a RES");
            if topic != expected {
                continue;
            }
            let (res, body) = open_on(&self.b, endpoint, &payload);
            return (res.code, body.unwrap_or(Value::Null));
        }
    }
}
