//! The OCPP edge: OCPP 1.6J chargers on a WebSocket at `/ocpp/<charger id>` of the REST
//! listener (docs/ocpp.md).
//!
//! The handshake is checked before the upgrade, in this order: an unknown id (or a charger
//! that does not speak OCPP) is 404; plain ws:// without `CHARGER_OCPP_ALLOW_PLAIN` is 403;
//! no HTTP Basic credentials is 401, wrong ones 401, too many attempts for the charger 429;
//! no `ocpp1.6` among the offered subprotocols is 400; the socket caps (total, per source)
//! are 503. Then each socket is one task: it takes the charger's CALLs one at a time (the
//! charger waits for each answer, as OCPP-J says), and sends the server's CALLs (REST
//! commands) one at a time, the next once the last is answered or given up. CALLs may
//! cross. A charger that connects again is served on the new socket and the old one is
//! closed, on this instance and (through [`Relay`]) on any other.
//!
//! [`v16`] maps each 1.6 action onto the protocol-neutral charging calls of the domain.

mod commands;
mod meter;
mod relay;
mod v16;
mod v201;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use charger_protocol::ocpp::{ErrorCode, Frame, Version};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::api::{ApiState, Peer};
use crate::devices::{PresenceChange, PresenceKind, Protocol};
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::records::devices::Registration;

use crate::limits::{Buckets, PerSource, SourceSlot};
use crate::metrics::{limit_hit, limit_hit_logged, Limit};
use crate::service::{OcppChannel, Service};

/// What the server may send a station whose registration is not accepted yet.
const PENDING_ACTIONS: &[&str] = &[
    "GetBaseReport",
    "GetReport",
    "GetVariables",
    "SetVariables",
    "TriggerMessage",
];

/// How long a rejected charger waits before it boots again, in seconds.
pub const REJECTED_INTERVAL_S: i64 = 300;

/// An action a charger sends, by its version's table of (name, supported): its metrics
/// label (from a bounded set), or the CALLERROR with that label: NotImplemented for an
/// action the version does not have, NotSupported for one this server does not take.
fn known_action(
    table: &[(&'static str, bool)],
    action: &str,
    sender: &str,
) -> std::result::Result<&'static str, (&'static str, std::result::Result<Value, CallError>)> {
    match table.iter().find(|(name, _)| *name == action) {
        Some((label, true)) => Ok(label),
        Some((label, false)) => Err((
            label,
            Err(CallError::new(
                ErrorCode::NotSupported,
                "this server does not support this action",
            )),
        )),
        None => Err((
            "unknown",
            Err(CallError::new(
                ErrorCode::NotImplemented,
                format!("this action is not {sender} action"),
            )),
        )),
    }
}

pub use relay::Relay;

/// The OCPP edge's settings (each documented in docs/operations.md).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Plain ws:// is allowed (security profile 1).
    pub allow_plain: bool,
    /// The listener speaks TLS (wss://, profile 2).
    pub tls: bool,
    pub max_message_bytes: usize,
    /// 2.0.1 transactions kept per station before their idToken
    /// (`CHARGER_OCPP_PENDING_TRANSACTIONS`).
    pub pending_transactions: usize,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    /// The DataTransfer vendorId answered Accepted.
    pub vendor_id: Option<String>,
    /// Handshakes per charger per minute (`CHARGER_MQTT_LOGINS_PER_MINUTE`).
    pub logins_per_minute: u32,
    /// CALLs per second per charger and burst (`CHARGER_MQTT_RATE`, `CHARGER_MQTT_BURST`).
    pub rate: u32,
    pub burst: u32,
    /// How long a charger may stay over its rate before it is disconnected.
    pub abuse: Duration,
}

/// A socket's mailbox, for what the server sends it.
enum Outbound {
    Call {
        action: String,
        payload: Value,
        reply: oneshot::Sender<Result<Value>>,
        deadline: tokio::time::Instant,
    },
    /// Close the socket (the charger connected again, or its password changed).
    Close(&'static str),
}

struct Handle {
    conn: i64,
    tx: mpsc::Sender<Outbound>,
    /// The OCPP version the socket negotiated.
    version: Version,
}

/// The OCPP sockets this instance holds, and the limits they share.
pub struct Hub {
    service: Service,
    settings: Settings,
    sockets: Mutex<HashMap<DeviceId, Handle>>,
    slots: Arc<Semaphore>,
    sources: Arc<PerSource>,
    logins: Buckets<DeviceId>,
    requests: Buckets<DeviceId>,
    presence: mpsc::Sender<PresenceChange>,
    connected: AtomicI64,
    /// The other instances (PostgreSQL LISTEN/NOTIFY), when there can be any.
    relay: std::sync::OnceLock<Relay>,
    /// The group commit of the CALLs that write.
    writer: std::sync::OnceLock<mpsc::Sender<writer::Job>>,
    /// 2.0.1 transactions seen before their idToken, per station.
    pending: Mutex<v201::PendingTransactions>,
}

impl Hub {
    /// The hub; it becomes the service's OCPP channel (the caller keeps it alive).
    pub fn new(service: Service, settings: Settings) -> Arc<Self> {
        let per_minute = f64::from(settings.logins_per_minute.max(1));
        let hub = Arc::new(Self {
            presence: crate::devices::presence_writer(service.clone()),
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            sources: PerSource::new(settings.max_connections_per_source),
            logins: Buckets::new(per_minute / 60.0, per_minute),
            requests: Buckets::new(f64::from(settings.rate), f64::from(settings.burst)),
            service: service.clone(),
            settings,
            sockets: Mutex::new(HashMap::new()),
            connected: AtomicI64::new(0),
            pending: Mutex::new(v201::PendingTransactions::default()),
            relay: std::sync::OnceLock::new(),
            writer: std::sync::OnceLock::new(),
        });
        let _ = hub.writer.set(writer::start_writer(Arc::downgrade(&hub)));
        let channel: Arc<dyn OcppChannel> = hub.clone();
        service.set_ocpp_channel(&channel);
        hub
    }

    /// Joins the other instances through the database (PostgreSQL only).
    pub async fn join(self: &Arc<Self>, database_url: &str) -> anyhow::Result<()> {
        if let Some(relay) = Relay::start(self.clone(), database_url).await? {
            let _ = self.relay.set(relay);
        }
        Ok(())
    }

    /// Sockets open now (for `/metrics`).
    pub fn connected(&self) -> i64 {
        self.connected.load(Ordering::Relaxed)
    }

    fn mailbox(&self, device: &DeviceId) -> Option<mpsc::Sender<Outbound>> {
        self.sockets
            .lock()
            .ok()
            .and_then(|s| s.get(device).map(|h| h.tx.clone()))
    }

    /// The version of the socket this instance holds for the charger.
    fn version_of(&self, device: &DeviceId) -> Option<Version> {
        self.sockets
            .lock()
            .ok()
            .and_then(|s| s.get(device).map(|h| h.version))
    }

    /// Runs a REST command over the socket this instance holds, in the OCPP version it
    /// speaks; None when this instance holds none.
    async fn command_local(
        &self,
        device: &DeviceId,
        command: &str,
        data: &Value,
        timeout: Duration,
    ) -> Option<Result<Value>> {
        let version = self.version_of(device)?;
        Some(match version {
            Version::V16 => self.run_command(device, command, data, timeout).await,
            Version::V201 => v201::run_command(self, device, command, data, timeout).await,
        })
    }

    /// Sends a CALL over a socket this instance holds; None when it holds none.
    async fn call_local(
        &self,
        device: &DeviceId,
        action: &str,
        payload: Value,
        timeout: Duration,
    ) -> Option<Result<Value>> {
        let mailbox = self.mailbox(device)?;
        // What the server sends is bounded as what it takes.
        if payload.to_string().len() > self.settings.max_message_bytes {
            return Some(Err(Error::invalid(
                "data",
                "is larger than CHARGER_OCPP_MAX_MESSAGE_BYTES",
            )));
        }
        let (reply, answer) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + timeout;
        let call = Outbound::Call {
            action: action.to_owned(),
            payload,
            reply,
            deadline,
        };
        if mailbox.send(call).await.is_err() {
            return None;
        }
        Some(match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            // The socket closed with the CALL unanswered.
            Ok(Err(_)) => Err(Error::conflict(
                "device_offline",
                "the charger disconnected before it answered",
            )),
            Err(_) => Err(Error::Timeout),
        })
    }

    /// Closes the socket this instance holds for the charger, if any.
    async fn close_local(&self, device: &DeviceId, why: &'static str) -> bool {
        match self.mailbox(device) {
            Some(mailbox) => mailbox.send(Outbound::Close(why)).await.is_ok(),
            None => false,
        }
    }

    /// Closes every socket (the server is stopping).
    pub async fn close_all(&self) {
        let mailboxes: Vec<_> = self
            .sockets
            .lock()
            .map(|s| s.values().map(|h| h.tx.clone()).collect())
            .unwrap_or_default();
        for mailbox in mailboxes {
            let _ = mailbox
                .send(Outbound::Close("the server is stopping"))
                .await;
        }
    }

    /// Registers a new socket; the one it replaces (on this instance) is told to close.
    fn register(&self, device: &DeviceId, conn: i64, tx: mpsc::Sender<Outbound>, version: Version) {
        let old = self
            .sockets
            .lock()
            .ok()
            .and_then(|mut s| s.insert(device.clone(), Handle { conn, tx, version }));
        if let Some(old) = old {
            let _ = old
                .tx
                .try_send(Outbound::Close("the charger connected again"));
        }
    }

    fn unregister(&self, device: &DeviceId, conn: i64) {
        if let Ok(mut s) = self.sockets.lock() {
            if s.get(device).is_some_and(|h| h.conn == conn) {
                s.remove(device);
            }
        }
    }
}

#[async_trait]
impl OcppChannel for Hub {
    fn holds(&self, device: &DeviceId) -> bool {
        self.mailbox(device).is_some()
    }

    async fn command(
        &self,
        device: &DeviceId,
        command: &str,
        data: &Value,
        timeout: Duration,
    ) -> Result<Value> {
        if let Some(result) = self.command_local(device, command, data, timeout).await {
            return result;
        }
        match self.relay.get() {
            Some(relay) => relay.command(device, command, data, timeout).await,
            None => Err(Error::conflict(
                "device_offline",
                "the charger is not connected",
            )),
        }
    }

    async fn disconnect(&self, device: &DeviceId) {
        self.close_local(device, "its credentials changed").await;
        if let Some(relay) = self.relay.get() {
            relay.disconnect(device).await;
        }
    }
}

/// The OCPP routes, merged into the REST listener's router.
pub fn routes(hub: Arc<Hub>) -> Router<ApiState> {
    Router::new().route(
        "/ocpp/{id}",
        get(
            move |state: State<ApiState>,
                  path: Path<String>,
                  peer: Peer,
                  headers: HeaderMap,
                  ws: std::result::Result<
                WebSocketUpgrade,
                axum::extract::ws::rejection::WebSocketUpgradeRejection,
            >| { handshake(hub.clone(), state, path, peer, headers, ws) },
        ),
    )
}

fn refuse(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

/// The HTTP Basic credentials of a request, if well formed: (username, password bytes).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 512 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Whether the password (the 40 hex digits issued, or the 20 bytes they stand for, as
/// the 1.6 security extension's `AuthorizationKey` allows) matches the stored hash.
fn password_matches(password: &[u8], hash: &str) -> bool {
    let as_text = std::str::from_utf8(password)
        .ok()
        .map(|p| p.to_ascii_lowercase());
    if let Some(text) = as_text {
        if crate::secrets::verify_secret(&text, hash) {
            return true;
        }
    }
    password.len() == 20 && crate::secrets::verify_secret(&hex::encode(password), hash)
}

/// Whether the client offered `ocpp1.6`.
fn offers_subprotocol(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == wanted)
}

async fn handshake(
    hub: Arc<Hub>,
    State(_state): State<ApiState>,
    Path(id): Path<String>,
    Peer(peer): Peer,
    headers: HeaderMap,
    ws: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Response {
    let Ok(device) = DeviceId::parse(&id) else {
        return refuse(StatusCode::NOT_FOUND, "no such charger");
    };
    let auth = match hub.service.ocpp_login_of(&device).await {
        Ok(Some(auth)) if auth.protocol.is_ocpp() => auth,
        Ok(_) => return refuse(StatusCode::NOT_FOUND, "no such charger"),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a charger's OCPP login");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    };
    if !hub.settings.tls && !hub.settings.allow_plain {
        limit_hit(Limit::OcppPlain);
        return refuse(
            StatusCode::FORBIDDEN,
            "plain ws:// is not allowed here: connect over wss://",
        );
    }
    let Some((user, password)) = basic_credentials(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"ocpp\"")],
            "HTTP Basic credentials are required",
        )
            .into_response();
    };
    if user != device.as_str() || !password_matches(&password, &auth.password_hash) {
        tracing::info!(device = %device, "OCPP handshake with wrong credentials refused");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"ocpp\"")],
            "wrong credentials",
        )
            .into_response();
    }
    // Only a handshake with the right password spends the charger's budget: nobody else
    // can lock it out (guessing a 160-bit password is bounded by the REST listener's
    // per-source limits).
    if !hub.logins.try_take(&device, Instant::now()) {
        limit_hit_logged(
            Limit::OcppLoginRate,
            "an OCPP handshake refused: its charger is over CHARGER_MQTT_LOGINS_PER_MINUTE",
        );
        return refuse(StatusCode::TOO_MANY_REQUESTS, "too many attempts");
    }
    // A 2.0.1 charger may also speak 1.6: 2.0.1 is preferred when both are offered.
    let speaks: &[Version] = match auth.protocol {
        Protocol::Ocpp16 => &[Version::V16],
        Protocol::Ocpp201 => &[Version::V201, Version::V16],
        Protocol::Mybox => return refuse(StatusCode::NOT_FOUND, "no such charger"),
    };
    let Some(version) = speaks
        .iter()
        .copied()
        .find(|v| offers_subprotocol(&headers, v.subprotocol()))
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "no WebSocket subprotocol this charger speaks (ocpp1.6, or ocpp2.0.1 for a 2.0.1 charger) was offered",
        );
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let source = match peer {
        Some(ip) => match hub.sources.try_acquire(ip) {
            Some(slot) => Some(slot),
            None => {
                limit_hit(Limit::OcppConnectionsPerSource);
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many sockets from here",
                );
            }
        },
        None => None,
    };
    let Ok(permit) = hub.slots.clone().try_acquire_owned() else {
        limit_hit(Limit::OcppConnections);
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "too many sockets");
    };
    let max = hub.settings.max_message_bytes;
    // A 1.6 charger is registered by its provisioning; a 2.0.1 station once its first boot
    // was answered (Pending, then Accepted); a rejected one is not.
    let registered = match auth.registration {
        Registration::Accepted => true,
        // A 1.6 charger is registered by its provisioning; a 2.0.1 station that connects
        // on 1.6 boots first all the same.
        Registration::Pending => version == Version::V16 && auth.protocol == Protocol::Ocpp16,
        Registration::Rejected => false,
    };
    // Small buffers: an idle charger holds a few KB, not tungstenite's 2 x 128 KiB; a
    // message is written out at once (an answer is never held back to fill a buffer).
    ws.protocols([version.subprotocol()])
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(max.saturating_mul(4))
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            run(
                hub,
                device,
                version,
                socket,
                (permit, source),
                peer,
                (registered, auth.registration == Registration::Rejected),
            )
            .await;
        })
}

/// One charger's socket, until it closes.
async fn run(
    hub: Arc<Hub>,
    device: DeviceId,
    version: Version,
    mut socket: WebSocket,
    _slots: (OwnedSemaphorePermit, Option<SourceSlot>),
    peer: Option<IpAddr>,
    (registered, rejected): (bool, bool),
) {
    let conn = rand::random::<i64>().abs().max(1);
    // Whether the station may send more than BootNotification (2.0.1: not before its
    // registration is accepted; a registered one that reconnects without booting is).
    let mut accepted = registered;
    let mut rejected = rejected;
    // Messages the server triggered before the registration was accepted (B02.FR.09).
    let mut triggered: Vec<String> = Vec::new();
    // The server asked it for a report (before acceptance, only then may it send one).
    let mut report_asked = false;
    let (tx, mut rx) = mpsc::channel::<Outbound>(16);
    hub.register(&device, conn, tx, version);
    if let Some(relay) = hub.relay.get() {
        // Another instance may still hold an older socket of this charger.
        relay.connected(&device, conn).await;
    }
    hub.connected.fetch_add(1, Ordering::Relaxed);
    presence(&hub, &device, conn, PresenceKind::Connected).await;
    tracing::info!(device = %device, ?peer, "OCPP charger connected");
    let idle = Duration::from_secs(hub.service.heartbeat_s().saturating_mul(3).max(60));
    let mut pending: Option<(String, oneshot::Sender<Result<Value>>, tokio::time::Instant)> = None;
    let mut queue: VecDeque<Outbound> = VecDeque::new();
    let mut last_seen_mark = Instant::now();
    let mut over_since: Option<Instant> = None;
    let end: &str = loop {
        // The next server CALL goes out once the last is answered or given up.
        while pending.is_none() {
            let Some(Outbound::Call {
                action,
                payload,
                reply,
                deadline,
            }) = queue.pop_front()
            else {
                break;
            };
            if reply.is_closed() {
                continue;
            }
            if deadline <= tokio::time::Instant::now() {
                let _ = reply.send(Err(Error::Timeout));
                continue;
            }
            // Before its registration is accepted (2.0.1 B02), a station is only asked
            // for its configuration and to send messages: what it is triggered to send
            // is taken from it then.
            if !accepted && !PENDING_ACTIONS.contains(&action.as_str()) {
                let _ = reply.send(Err(Error::conflict(
                    "registration_pending",
                    "the charger's registration is not accepted yet: it is only asked for its configuration",
                )));
                continue;
            }
            if !accepted && matches!(action.as_str(), "GetBaseReport" | "GetReport") {
                report_asked = true;
            }
            if !accepted && action == "TriggerMessage" && triggered.len() < 8 {
                if let Some(m) = payload["requestedMessage"].as_str() {
                    triggered.push(m.to_owned());
                }
            }
            let id = format!("{:016x}", rand::random::<u64>());
            let frame = Frame::Call {
                id: id.clone(),
                action,
                payload,
            };
            if socket
                .send(Message::Text(frame.to_text().into()))
                .await
                .is_err()
            {
                let _ = reply.send(Err(Error::conflict(
                    "device_offline",
                    "the charger disconnected",
                )));
                break;
            }
            pending = Some((id, reply, deadline));
        }
        let pending_deadline = pending.as_ref().map(|p| p.2);
        tokio::select! {
            incoming = tokio::time::timeout(idle, socket.recv()) => {
                let message = match incoming {
                    Err(_) => break "silent past three heartbeats",
                    Ok(None) => break "closed",
                    Ok(Some(Err(e))) => {
                        if is_capacity(&e) {
                            limit_hit(Limit::OcppMessageSize);
                            let _ = socket.send(Message::Close(Some(CloseFrame {
                                code: 1009,
                                reason: "message too big".into(),
                            }))).await;
                            break "a message over CHARGER_OCPP_MAX_MESSAGE_BYTES";
                        }
                        break "socket error";
                    }
                    Ok(Some(Ok(m))) => m,
                };
                if last_seen_mark.elapsed() >= Duration::from_secs(10) {
                    last_seen_mark = Instant::now();
                    presence(&hub, &device, conn, PresenceKind::Seen).await;
                }
                match message {
                    Message::Text(text) => {
                        let answer = match Frame::parse(text.as_str()) {
                            Ok(Frame::Call { id, action, payload }) => {
                                // Over its rate, the charger's CALL waits; over it too
                                // long, the charger is disconnected.
                                let wait = hub.requests.take(&device, Instant::now());
                                if !wait.is_zero() {
                                    limit_hit(Limit::OcppRate);
                                    let since = *over_since.get_or_insert_with(Instant::now);
                                    if since.elapsed() + wait > hub.settings.abuse {
                                        limit_hit_logged(
                                            Limit::OcppRateDisconnect,
                                            "an OCPP charger disconnected: over its rate for CHARGER_MQTT_ABUSE_SECONDS",
                                        );
                                        break "over its rate";
                                    }
                                    tokio::time::sleep(wait).await;
                                } else {
                                    over_since = None;
                                }
                                let was_triggered = !accepted
                                    && triggered.iter().position(|t| *t == action).map(|i| triggered.swap_remove(i)).is_some();
                                // Before acceptance: its boot, the report the server asked
                                // for (never while rejected), and what it was triggered to send.
                                let allowed = action == "BootNotification"
                                    || (action == "NotifyReport" && report_asked && !rejected);
                                if !accepted && !was_triggered && !allowed {
                                    hub.service.metrics().ocpp_message("before_acceptance", ErrorCode::SecurityError.as_str(version));
                                    Some(Frame::error(version, &id, ErrorCode::SecurityError, "the station's registration is not accepted: send BootNotification"))
                                } else {
                                    let frame = answer_call(&hub, &device, version, id, &action, &payload).await;
                                    if action == "BootNotification" {
                                        if let Frame::CallResult { payload, .. } = &frame {
                                            accepted = payload["status"] == "Accepted";
                                            rejected = payload["status"] == "Rejected";
                                            if payload["status"] == "Pending" {
                                                read_configuration(&hub, &device);
                                            }
                                        }
                                    }
                                    Some(frame)
                                }
                            }
                            Ok(Frame::CallResult { id, payload }) => {
                                match pending.take() {
                                    Some((want, reply, _)) if want == id => {
                                        let _ = reply.send(Ok(payload));
                                    }
                                    other => pending = other,
                                }
                                None
                            }
                            Ok(Frame::CallError { id, code, description, .. }) => {
                                match pending.take() {
                                    Some((want, reply, _)) if want == id => {
                                        let code: String = code.chars().take(40).collect();
                                        let description: String = description.chars().take(200).collect();
                                        let _ = reply.send(Err(Error::BadAnswer(format!(
                                            "the charger answered CALLERROR {code}: {description}"
                                        ))));
                                    }
                                    other => pending = other,
                                }
                                None
                            }
                            Err(e) => {
                                let outcome = if e.call && e.id.is_some() { e.code.as_str(version) } else { "dropped" };
                                hub.service.metrics().ocpp_message("invalid", outcome);
                                match (e.call, e.id) {
                                    (true, Some(id)) => Some(Frame::error(version, &id, e.code, &e.description)),
                                    // A malformed answer to the server's CALL: 502 now,
                                    // not a wait for the deadline.
                                    (false, Some(id)) if pending.as_ref().is_some_and(|(want, _, _)| *want == id) => {
                                        if let Some((_, reply, _)) = pending.take() {
                                            let _ = reply.send(Err(Error::BadAnswer(format!(
                                                "the charger's answer is not an OCPP frame: {}",
                                                e.description
                                            ))));
                                        }
                                        None
                                    }
                                    // Nothing to answer to: a CALLERROR needs the id of a CALL.
                                    _ => {
                                        tracing::debug!(device = %device, "an OCPP frame that cannot be answered dropped");
                                        None
                                    }
                                }
                            }
                        };
                        if let Some(frame) = answer {
                            if socket.send(Message::Text(frame.to_text().into())).await.is_err() {
                                break "closed while answering";
                            }
                        }
                    }
                    Message::Binary(_) => {
                        let _ = socket.send(Message::Close(Some(CloseFrame {
                            code: 1003,
                            reason: "OCPP-J frames are text".into(),
                        }))).await;
                        break "a binary frame";
                    }
                    Message::Close(_) => {
                        // The close handshake's answer (RFC 6455 5.5.1): the WebSocket
                        // queued it, and the next read writes it out.
                        let _ = tokio::time::timeout(Duration::from_secs(1), socket.recv()).await;
                        break "closed by the charger";
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            out = rx.recv() => {
                match out {
                    // Nothing is sent to a rejected charger.
                    Some(Outbound::Call { reply, .. }) if rejected => {
                        let _ = reply.send(Err(Error::conflict(
                            "registration_rejected",
                            "the charger's registration is rejected: nothing is sent to it",
                        )));
                    }
                    Some(call @ Outbound::Call { .. }) => queue.push_back(call),
                    Some(Outbound::Close(why)) => {
                        let _ = socket.send(Message::Close(Some(CloseFrame {
                            code: 1000,
                            reason: why.into(),
                        }))).await;
                        break why;
                    }
                    None => break "the server is stopping",
                }
            }
            () = async {
                match pending_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                // No answer in time (504): the next CALL may go.
                if let Some((_, reply, _)) = pending.take() {
                    let _ = reply.send(Err(Error::Timeout));
                }
            }
        }
    };
    if let Some((_, reply, _)) = pending {
        let _ = reply.send(Err(Error::conflict(
            "device_offline",
            "the charger disconnected before it answered",
        )));
    }
    hub.unregister(&device, conn);
    hub.connected.fetch_sub(1, Ordering::Relaxed);
    presence(&hub, &device, conn, PresenceKind::Disconnected).await;
    tracing::info!(device = %device, end, "OCPP charger disconnected");
}

/// While a station is Pending: asks for its configuration (GetBaseReport), which it
/// reports in NotifyReport messages.
fn read_configuration(hub: &Arc<Hub>, device: &DeviceId) {
    let (hub, device) = (hub.clone(), device.clone());
    tokio::spawn(async move {
        let request = serde_json::json!({
            "requestId": rand::random::<u32>() & 0x7fff_ffff,
            "reportBase": "ConfigurationInventory",
        });
        match hub
            .call_local(&device, "GetBaseReport", request, Duration::from_secs(30))
            .await
        {
            Some(Ok(answer)) => {
                tracing::info!(device = %device, status = %answer["status"], "configuration asked for")
            }
            Some(Err(e)) => tracing::info!(device = %device, error = %e, "configuration not read"),
            None => {}
        }
    });
}

fn is_capacity(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Capacity")
}

async fn presence(hub: &Hub, device: &DeviceId, conn: i64, kind: PresenceKind) {
    let _ = hub
        .presence
        .send(PresenceChange {
            device: device.clone(),
            conn,
            kind,
            at: chrono::Utc::now(),
        })
        .await;
}

/// Answers one CALL of a charger: a CALLRESULT, or the CALLERROR its defect calls for.
async fn answer_call(
    hub: &Hub,
    device: &DeviceId,
    version: Version,
    id: String,
    action: &str,
    payload: &Value,
) -> Frame {
    let (label, result) = match version {
        Version::V16 => v16::handle(hub, device, action, payload).await,
        Version::V201 => v201::handle(hub, device, action, payload).await,
    };
    match result {
        Ok(payload) => {
            hub.service.metrics().ocpp_message(label, "result");
            Frame::CallResult { id, payload }
        }
        Err(e) => {
            hub.service
                .metrics()
                .ocpp_message(label, e.code.as_str(version));
            Frame::error(version, &id, e.code, &e.description)
        }
    }
}

/// A CALLERROR to answer.
#[derive(Debug)]
pub(crate) struct CallError {
    code: ErrorCode,
    description: String,
}

impl CallError {
    fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        CallError {
            code,
            description: description.into(),
        }
    }
}

impl From<charger_protocol::ocpp::PayloadError> for CallError {
    fn from(e: charger_protocol::ocpp::PayloadError) -> Self {
        CallError::new(e.code, e.description)
    }
}

impl From<Error> for CallError {
    /// The domain's refusals as OCPP's error codes; failures are opaque (and logged).
    fn from(e: Error) -> Self {
        match &e {
            Error::Invalid { .. } => {
                CallError::new(ErrorCode::PropertyConstraintViolation, e.to_string())
            }
            Error::NotFound { .. } | Error::Conflict { .. } | Error::Forbidden { .. } => {
                CallError::new(ErrorCode::GenericError, e.to_string())
            }
            _ => {
                tracing::error!(error = %e, "an OCPP CALL failed");
                CallError::new(ErrorCode::InternalError, "internal error")
            }
        }
    }
}
