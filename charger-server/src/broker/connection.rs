//! One charger's MQTT connection: CONNECT and authentication, the ACL on every packet,
//! its publishes handed to the dispatcher and acknowledged, its answers written at the
//! QoS of its subscription, keep-alive, will, and a clean end.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, ConnectReturnCode, LastWill, Packet, PingResp, PubAck,
    PubAckReason, PubComp, PubCompReason, PubRec, PubRecReason, QoS, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck, UnsubAckReason,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use super::acl;
use super::codec::{peek_publish, sniff, Codec, Sniff};
use super::{Kick, Mailbox, Shared, REVOKE_GRACE};

/// How long a revoked connection stays open for the PUBACK of its last answer.
const REVOKE_LINGER: Duration = Duration::from_secs(1);
use crate::devices::{PresenceChange, PresenceKind};
use crate::error::Error;
use crate::ids::{DeviceId, OwnerId};

/// How often a busy charger's `last_seen` is written at most.
const SEEN_EVERY: Duration = Duration::from_secs(10);

/// Keep-alive used when a client asks for none (0): idle sockets are still timed out.
const DEFAULT_KEEP_ALIVE_S: u16 = 600;

/// Why a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The client sent DISCONNECT: the will is discarded.
    Normal,
    /// Anything else: socket error, keep-alive expiry, protocol error, kicked. The will is
    /// published.
    Abnormal(&'static str),
    /// The device's ACL was revoked (ownership moved): closed without its will, which
    /// names the old owner's topics.
    Revoked,
}

/// An authenticated connection.
struct Session {
    device: DeviceId,
    /// This connection's number in the registry.
    conn: i64,
    /// When its last message was written down as `last_seen` (at most every
    /// [`SEEN_EVERY`]).
    seen_marked: Instant,
    owner: OwnerId,
    /// Superseded credentials: the one endpoint they may publish to and read the answer
    /// of (their exchange's).
    only: Option<String>,
    codec: Codec,
    will: Option<LastWill>,
    keep_alive: Duration,
    violations: u32,
    /// Set when the ACL is revoked: the topic of the last publish to deliver before closing.
    revoked: Option<String>,
    /// That last publish is written: the connection closes on the client's PUBACK (so the
    /// client has read it before the socket goes) or after a short linger.
    last_delivered: bool,
    /// Filters subscribed on this connection (at most `max_subscriptions`), each with
    /// its granted QoS.
    subscriptions: Vec<(String, QoS)>,
    /// Packet ids of QoS 1 answers written and not acknowledged yet.
    inflight: Vec<u16>,
    /// The next packet id to try for a QoS 1 answer.
    next_pkid: u16,
    /// Most answers in flight: the server's limit, or the client's receive maximum (5.0).
    window: usize,
    /// Where the dispatcher's answers and others' kicks arrive.
    mailbox: Arc<Mailbox>,
}

impl Session {
    /// The QoS of the subscription `topic` matches (the highest, if several); None when
    /// the charger did not subscribe to it.
    fn subscribed(&self, topic: &str) -> Option<QoS> {
        self.subscriptions
            .iter()
            .filter(|(filter, _)| rumqttd::protocol::matches(topic, filter))
            .map(|(_, qos)| *qos)
            .max_by_key(|q| *q as u8)
    }

    /// A free packet id for a QoS 1 answer.
    fn pkid(&mut self) -> u16 {
        loop {
            let id = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if id != 0 && !self.inflight.contains(&id) {
                return id;
            }
        }
    }
}

/// Serves one accepted socket to the end.
pub(super) async fn serve<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: std::net::SocketAddr,
    login_slot: super::LoginSlot,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let deadline = Instant::now() + shared.config.connect_timeout;
    serve_until(shared, stream, peer, login_slot, deadline).await;
}

/// [`serve`], with the CONNECT due by `deadline` (a total deadline, the TLS handshake's
/// time included).
pub(super) async fn serve_until<S>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: std::net::SocketAddr,
    login_slot: super::LoginSlot,
    deadline: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut rbuf = BytesMut::with_capacity(1024);
    let mut wbuf = BytesMut::with_capacity(1024);
    let connect =
        tokio::time::timeout_at(deadline, read_connect(&shared, &mut stream, &mut rbuf)).await;
    let (codec, packet) = match connect {
        Ok(Ok(Some(v))) => v,
        Ok(Ok(None)) | Err(_) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "no valid CONNECT");
            return;
        }
    };
    let Packet::Connect(connect, props, will, _will_props, login) = packet else {
        return;
    };
    // The CONNECT is read (and small): the login slot is freed once it is checked.
    let login_slot = Some(login_slot);

    // Authentication: client id = username = device id, and the provisioned password.
    let refuse = |code| {
        Packet::ConnAck(
            ConnAck {
                session_present: false,
                code,
            },
            None,
        )
    };
    let login = login.unwrap_or_else(|| rumqttd::protocol::Login {
        username: String::new(),
        password: String::new(),
    });
    let authenticated = shared
        .service
        .authenticate_device(&connect.client_id, &login.username, &login.password)
        .await;
    drop(login_slot);
    let (owner, only) = match authenticated {
        Ok(login) => (login.owner, login.only),
        Err(e) => {
            shared
                .metrics
                .refused_logins
                .fetch_add(1, Ordering::Relaxed);
            if !matches!(e, Error::Unauthorized) {
                tracing::error!(error = %e, "device authentication failed");
            }
            tracing::info!(%peer, client_id = %crate::telemetry::field(&connect.client_id), "login refused");
            let code = ConnectReturnCode::BadUserNamePassword;
            let _ = write_packet(&mut stream, &mut wbuf, codec, refuse(code)).await;
            return;
        }
    };
    let Ok(device) = DeviceId::parse(&connect.client_id) else {
        return;
    };
    // Logins are budgeted per device id, whatever socket they come from (only once the
    // password is right: nobody else can spend a charger's budget).
    if !shared
        .logins
        .try_take(&(device.clone(), only.is_some()), Instant::now().into_std())
    {
        crate::metrics::limit_hit_logged(
            crate::metrics::Limit::MqttLoginRate,
            "MQTT login refused: the charger logs in more often than CHARGER_MQTT_LOGINS_PER_MINUTE",
        );
        let code = match codec {
            Codec::V4 => ConnectReturnCode::ServiceUnavailable,
            Codec::V5 => ConnectReturnCode::ServerBusy,
        };
        let _ = write_packet(&mut stream, &mut wbuf, codec, refuse(code)).await;
        return;
    }
    // Superseded credentials come back only to repeat their exchange: whatever will they
    // set is not kept (it would name topics they may not use).
    let will = if only.is_some() { None } else { will };
    // A will is a publish like any other: it must target the device's own REQ topics.
    if let Some(w) = &will {
        let topic = String::from_utf8_lossy(&w.topic);
        if !acl::may_publish(owner.as_str(), device.as_str(), &topic) {
            shared
                .metrics
                .acl_denied_publish
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%device, topic = %crate::telemetry::field(&topic), "will outside the device's topics refused");
            let _ = write_packet(
                &mut stream,
                &mut wbuf,
                codec,
                refuse(ConnectReturnCode::NotAuthorized),
            )
            .await;
            return;
        }
    }

    // One connection per device: an earlier one is closed (its will handed on, its
    // presence ended) before this one goes on. Superseded credentials never displace a
    // connection made with the current ones (whoever holds an old bundle cannot knock
    // the charger off).
    let Some(registered) = shared.register(&device, only.is_some()).await else {
        tracing::info!(%device, "superseded credentials refused: the charger is connected with its current ones");
        let _ = write_packet(
            &mut stream,
            &mut wbuf,
            codec,
            refuse(ConnectReturnCode::NotAuthorized),
        )
        .await;
        return;
    };
    let conn_seq = registered.seq;

    let keep_alive_s = match connect.keep_alive {
        0 => DEFAULT_KEEP_ALIVE_S,
        n => n,
    };
    let receive_maximum = props
        .as_ref()
        .and_then(|p| p.receive_maximum)
        .map_or(usize::MAX, usize::from);
    let connack_props = (codec == Codec::V5).then(|| ConnAckProperties {
        // No topic aliases (they would hide topics from the ACL), no retained messages,
        // no shared subscriptions for devices.
        topic_alias_max: Some(0),
        retain_available: Some(0),
        shared_subscription_available: Some(0),
        server_keep_alive: (connect.keep_alive == 0).then_some(DEFAULT_KEEP_ALIVE_S),
        // The charger's current owner: the `<user>` of its topics (a charger restored
        // from an old flash learns it here).
        user_properties: vec![("owner".to_owned(), owner.to_string())],
        ..ConnAckProperties::default()
    });
    let connack = Packet::ConnAck(
        ConnAck {
            session_present: false,
            code: ConnectReturnCode::Success,
        },
        connack_props,
    );
    let mut session = Session {
        device,
        conn: conn_seq,
        seen_marked: Instant::now(),
        owner,
        only,
        codec,
        will,
        keep_alive: Duration::from_millis(u64::from(keep_alive_s) * 1500),
        violations: 0,
        revoked: None,
        last_delivered: false,
        subscriptions: Vec::new(),
        inflight: Vec::new(),
        next_pkid: 1,
        window: shared.config.max_inflight.clamp(1, receive_maximum.max(1)),
        mailbox: registered.mailbox.clone(),
    };
    shared.metrics.connections.fetch_add(1, Ordering::Relaxed);
    shared
        .metrics
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    presence(&shared, &session.device, conn_seq, true).await;
    tracing::info!(device = %session.device, %peer, ?codec, "device connected");

    let end = match write_packet(&mut stream, &mut wbuf, codec, connack).await {
        Ok(()) => run(&shared, &mut session, &mut stream, rbuf, wbuf).await,
        Err(_) => End::Abnormal("write failed"),
    };

    // The end: hand the will on after an abnormal close. A will is a request like any
    // other: it draws on the device's request budget, and is dropped when that is spent.
    if let (End::Abnormal(_), Some(will)) = (&end, session.will.take()) {
        let now = Instant::now().into_std();
        if !shared.requests.try_take(&session.device, now) {
            crate::metrics::limit_hit_logged(
                crate::metrics::Limit::MqttWillDropped,
                "a charger's will dropped: its device id is over CHARGER_MQTT_RATE",
            );
        } else if let Some(inbound) = shared.inbound() {
            inbound.publish(conn_seq, &will.topic, &will.message).await;
        }
    }
    presence(&shared, &session.device, conn_seq, false).await;
    shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    shared.unregister(&session.device, registered);
    tracing::info!(device = %session.device, ?end, "device disconnected");
}

/// Queues this connection's "online" or "offline". The presence writer commits them in
/// order, in batches; the CONNACK does not wait for the database.
async fn presence(shared: &Shared, device: &DeviceId, conn: i64, online: bool) {
    let kind = if online {
        PresenceKind::Connected
    } else {
        PresenceKind::Disconnected
    };
    let change = PresenceChange {
        device: device.clone(),
        conn,
        kind,
        at: chrono::Utc::now(),
    };
    let _ = shared.presence.send(change).await;
}

/// Reads until a whole CONNECT is there; `None` when the peer went away or spoke
/// something else.
async fn read_connect<S>(
    shared: &Shared,
    stream: &mut S,
    rbuf: &mut BytesMut,
) -> std::io::Result<Option<(Codec, Packet)>>
where
    S: AsyncRead + Unpin,
{
    loop {
        if let Sniff::Codec(codec) = sniff(rbuf) {
            // Before login only a small CONNECT is read: a bigger one closes the socket as
            // soon as its header says so.
            match codec.read(rbuf, shared.config.max_connect_bytes) {
                Ok(packet @ Packet::Connect(..)) => return Ok(Some((codec, packet))),
                Ok(_) => return Ok(None),
                Err(rumqttd::protocol::Error::InsufficientBytes(_)) => {}
                Err(rumqttd::protocol::Error::PayloadSizeLimitExceeded(_)) => {
                    crate::metrics::limit_hit(crate::metrics::Limit::MqttConnectSize);
                    return Ok(None);
                }
                Err(_) => return Ok(None),
            }
        } else if sniff(rbuf) == Sniff::Refused {
            return Ok(None);
        }
        if stream.read_buf(rbuf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn write_packet<S>(
    stream: &mut S,
    wbuf: &mut BytesMut,
    codec: Codec,
    packet: Packet,
) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    wbuf.clear();
    codec
        .write(packet, wbuf)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    stream.write_all(wbuf).await?;
    stream.flush().await
}

/// The connection's main loop: socket in, answers out, keep-alive, kick.
async fn run<S>(
    shared: &Shared,
    s: &mut Session,
    stream: &mut S,
    mut rbuf: BytesMut,
    mut wbuf: BytesMut,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mailbox = s.mailbox.clone();
    let mut deadline = Instant::now() + s.keep_alive;
    loop {
        // Decode every whole packet already buffered.
        wbuf.clear();
        loop {
            let publish_header = peek_publish(&rbuf);
            match s.codec.read(&mut rbuf, shared.config.max_packet_size) {
                Ok(packet) => {
                    if s.revoked.is_none() {
                        deadline = Instant::now() + s.keep_alive;
                    }
                    if let Err(end) = incoming(shared, s, packet, publish_header, &mut wbuf).await {
                        let _ = stream.write_all(&wbuf).await;
                        return end;
                    }
                    // Answers it made room for (or an echo's) go out in the same write.
                    if outgoing(s, &mut wbuf) {
                        s.last_delivered = true;
                        deadline = Instant::now() + REVOKE_LINGER;
                    }
                }
                Err(rumqttd::protocol::Error::InsufficientBytes(_)) => break,
                Err(e) => {
                    tracing::info!(device = %s.device, error = %e, "malformed packet");
                    return End::Abnormal("malformed packet");
                }
            }
        }
        // Answers waiting, as far as the in-flight window allows (acknowledgements may
        // just have opened it).
        let last = outgoing(s, &mut wbuf);
        if !wbuf.is_empty() && stream.write_all(&wbuf).await.is_err() {
            return End::Abnormal("write failed");
        }
        if last {
            s.last_delivered = true;
            deadline = Instant::now() + REVOKE_LINGER;
        }
        if rbuf.is_empty() && rbuf.capacity() > IDLE_BUFFER {
            // A big packet went by: an idle connection keeps no big buffer.
            rbuf = BytesMut::new();
        }
        if wbuf.capacity() > IDLE_BUFFER {
            wbuf = BytesMut::new();
        }
        tokio::select! {
            biased;
            () = mailbox.woken() => {
                match mailbox.take_kick() {
                    Kick::Close => return End::Abnormal("replaced or revoked"),
                    Kick::CloseAfter(topic) => {
                        s.revoked = Some(topic);
                        deadline = Instant::now() + REVOKE_GRACE;
                    }
                    Kick::Stay => {}
                }
            }
            read = stream.read_buf(&mut rbuf) => match read {
                Ok(0) | Err(_) => return End::Abnormal("socket closed"),
                Ok(_) => {}
            },
            _ = tokio::time::sleep_until(deadline) => {
                return if s.revoked.is_some() { End::Revoked } else { End::Abnormal("keep-alive expired") };
            }
        }
    }
}

/// The largest buffer an idle connection keeps, in bytes.
const IDLE_BUFFER: usize = 4096;

/// Writes the answers waiting in the mailbox into `wbuf`, while the in-flight window has
/// room; an answer the charger is not subscribed to is dropped, as a broker would. True
/// when the last answer of a revoked connection was written.
fn outgoing(s: &mut Session, wbuf: &mut BytesMut) -> bool {
    while s.inflight.len() < s.window {
        let Some(letter) = s.mailbox.next_letter() else {
            break;
        };
        let Some(qos) = s.subscribed(&letter.topic) else {
            tracing::debug!(device = %s.device, "answer to a topic the charger is not subscribed to dropped");
            continue;
        };
        let pkid = match qos {
            QoS::AtMostOnce => None,
            _ => {
                let id = s.pkid();
                s.inflight.push(id);
                Some(id)
            }
        };
        if let Err(e) = s
            .codec
            .write_publish(&letter.topic, letter.payload, pkid, wbuf)
        {
            tracing::error!(device = %s.device, error = %e, "cannot encode a publish");
        }
        if s.revoked.as_deref() == Some(letter.topic.as_str()) {
            return true;
        }
    }
    false
}

fn encode(s: &Session, packet: Packet, wbuf: &mut BytesMut) {
    if let Err(e) = s.codec.write(packet, wbuf) {
        tracing::error!(device = %s.device, error = %e, "cannot encode a packet");
    }
}

/// Counts an ACL violation; too many end the connection.
fn violation(shared: &Shared, s: &mut Session, what: &str, topic: &str) -> Result<(), End> {
    s.violations += 1;
    tracing::warn!(device = %s.device, what, topic = %crate::telemetry::field(topic), count = s.violations, "ACL denied");
    if s.violations > shared.config.max_violations {
        shared
            .metrics
            .violation_disconnects
            .fetch_add(1, Ordering::Relaxed);
        return Err(End::Abnormal("repeated ACL violations"));
    }
    Ok(())
}

/// Handles one packet from the device; replies it answers itself go into `wbuf`.
async fn incoming(
    shared: &Shared,
    s: &mut Session,
    packet: Packet,
    publish_header: Option<(u8, u16)>,
    wbuf: &mut BytesMut,
) -> Result<(), End> {
    if s.last_delivered && matches!(packet, Packet::PubAck(..)) {
        // The client has the last answer.
        return Err(End::Revoked);
    }
    if s.revoked.is_some() && matches!(packet, Packet::Publish(..) | Packet::Subscribe(..)) {
        // The ACL this connection was given is gone: nothing more is taken.
        tracing::info!(device = %s.device, "dropped a packet of a revoked connection");
        return Ok(());
    }
    match packet {
        Packet::Publish(publish, props) => {
            let topic = String::from_utf8_lossy(&publish.topic).into_owned();
            let alias = props.as_ref().and_then(|p| p.topic_alias).is_some();
            if alias {
                // We advertised no aliases: an alias here is a protocol error.
                shared
                    .metrics
                    .acl_denied_publish
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(device = %s.device, "topic alias refused");
                return Err(End::Abnormal("topic alias"));
            }
            let (qos, pkid) = publish_header.unwrap_or((0, 0));
            let allowed = match &s.only {
                None => acl::may_publish(s.owner.as_str(), s.device.as_str(), &topic),
                Some(only) => {
                    acl::may_publish_only(s.owner.as_str(), s.device.as_str(), only, &topic)
                }
            };
            if !allowed {
                shared
                    .metrics
                    .acl_denied_publish
                    .fetch_add(1, Ordering::Relaxed);
                violation(shared, s, "publish", &topic)?;
                match qos {
                    0 => {}
                    1 => {
                        // 3.1.1 cannot say no: acknowledge and drop (as Mosquitto does);
                        // 5.0 says "not authorized".
                        let reason = match s.codec {
                            Codec::V4 => PubAckReason::Success,
                            Codec::V5 => PubAckReason::NotAuthorized,
                        };
                        encode(s, Packet::PubAck(PubAck { pkid, reason }, None), wbuf);
                    }
                    _ => {
                        return Err(End::Abnormal("refused QoS 2 publish"));
                    }
                }
                return Ok(());
            }
            // Over its rate: the request waits, and so does the rest of this connection. The
            // budget is the device id's, so a new connection does not refill it.
            let now = std::time::Instant::now();
            let (rate, burst) = (shared.requests.rate, shared.requests.burst);
            let (wait, over_since) = shared
                .requests
                .with(&s.device, now, |b| (b.take(rate, burst, now), b.over_since))
                .unwrap_or_default();
            if !wait.is_zero() {
                crate::metrics::limit_hit(crate::metrics::Limit::MqttRate);
                if over_since.is_some_and(|t| t.elapsed() >= shared.config.abuse_after) {
                    crate::metrics::limit_hit(crate::metrics::Limit::MqttRateDisconnect);
                    tracing::warn!(
                        device = %s.device,
                        seconds = shared.config.abuse_after.as_secs(),
                        "disconnected: over its request rate (CHARGER_MQTT_RATE) for too long"
                    );
                    return Err(End::Abnormal("sustained request rate"));
                }
                tokio::time::sleep(wait).await;
            }
            // A charger's last message is its "last seen" (written at most every few seconds).
            if s.seen_marked.elapsed() >= SEEN_EVERY {
                s.seen_marked = Instant::now();
                let change = PresenceChange {
                    device: s.device.clone(),
                    conn: s.conn,
                    kind: PresenceKind::Seen,
                    at: chrono::Utc::now(),
                };
                let _ = shared.presence.try_send(change);
            }
            // Handed on (queued for the pipeline), then acknowledged: a request is never
            // acknowledged and then lost in this server.
            if let Some(inbound) = shared.inbound() {
                inbound
                    .publish(s.conn, &publish.topic, &publish.payload)
                    .await;
            }
            match qos {
                0 => {}
                1 => encode(
                    s,
                    Packet::PubAck(
                        PubAck {
                            pkid,
                            reason: PubAckReason::Success,
                        },
                        None,
                    ),
                    wbuf,
                ),
                // QoS 2: taken once on PUBLISH (sessions are clean, so a DUP cannot come
                // from an earlier connection), PUBREC now, PUBCOMP on PUBREL.
                _ => encode(
                    s,
                    Packet::PubRec(
                        PubRec {
                            pkid,
                            reason: PubRecReason::Success,
                        },
                        None,
                    ),
                    wbuf,
                ),
            }
        }
        Packet::Subscribe(subscribe, _props) => {
            let Subscribe { pkid, filters } = subscribe;
            let refused = match s.codec {
                Codec::V4 => SubscribeReasonCode::Failure,
                Codec::V5 => SubscribeReasonCode::NotAuthorized,
            };
            let mut return_codes = Vec::with_capacity(filters.len());
            for filter in filters {
                let known = s.subscriptions.iter().position(|(f, _)| *f == filter.path);
                let allowed = match &s.only {
                    None => acl::may_subscribe(s.owner.as_str(), s.device.as_str(), &filter.path),
                    Some(only) => acl::may_subscribe_only(
                        s.owner.as_str(),
                        s.device.as_str(),
                        only,
                        &filter.path,
                    ),
                };
                if !allowed {
                    shared
                        .metrics
                        .acl_denied_subscribe
                        .fetch_add(1, Ordering::Relaxed);
                    violation(shared, s, "subscribe", &filter.path)?;
                    return_codes.push(refused);
                } else if known.is_none()
                    && s.subscriptions.len() >= shared.config.max_subscriptions
                {
                    crate::metrics::limit_hit_logged(
                        crate::metrics::Limit::MqttSubscriptions,
                        "SUBSCRIBE refused: the connection holds CHARGER_MQTT_MAX_SUBSCRIPTIONS filters",
                    );
                    return_codes.push(refused);
                } else {
                    // Answers go at most at QoS 1.
                    let qos = match filter.qos {
                        QoS::AtMostOnce => QoS::AtMostOnce,
                        _ => QoS::AtLeastOnce,
                    };
                    match known {
                        Some(i) => s.subscriptions[i].1 = qos,
                        None => s.subscriptions.push((filter.path, qos)),
                    }
                    return_codes.push(SubscribeReasonCode::Success(qos));
                }
            }
            encode(s, Packet::SubAck(SubAck { pkid, return_codes }, None), wbuf);
        }
        Packet::Unsubscribe(unsubscribe, _props) => {
            let reasons = unsubscribe
                .filters
                .iter()
                .map(|filter| {
                    let before = s.subscriptions.len();
                    s.subscriptions.retain(|(f, _)| f != filter);
                    if s.subscriptions.len() < before {
                        UnsubAckReason::Success
                    } else {
                        UnsubAckReason::NoSubscriptionExisted
                    }
                })
                .collect();
            let unsuback = UnsubAck {
                pkid: unsubscribe.pkid,
                reasons,
            };
            encode(s, Packet::UnsubAck(unsuback, None), wbuf);
        }
        Packet::PingReq(_) => encode(s, Packet::PingResp(PingResp), wbuf),
        Packet::Disconnect(..) => return Err(End::Normal),
        Packet::PubAck(puback, _) => {
            s.inflight.retain(|id| *id != puback.pkid);
        }
        Packet::PubRel(pubrel, _) => encode(
            s,
            Packet::PubComp(
                PubComp {
                    pkid: pubrel.pkid,
                    reason: PubCompReason::Success,
                },
                None,
            ),
            wbuf,
        ),
        // The server never publishes at QoS 2.
        Packet::PubRec(..) | Packet::PubComp(..) => {}
        Packet::Connect(..)
        | Packet::ConnAck(..)
        | Packet::SubAck(..)
        | Packet::UnsubAck(..)
        | Packet::PingResp(..) => return Err(End::Abnormal("protocol violation")),
    }
    Ok(())
}
