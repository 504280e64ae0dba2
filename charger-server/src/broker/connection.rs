//! One charger's MQTT connection: CONNECT and authentication, the ACL on every packet,
//! forwarding to and from rumqttd's router, keep-alive, will, and a clean end.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::local::LinkRx;
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, ConnectReturnCode, LastWill, Packet, PingResp, PubAck,
    PubAckReason, Publish, SubAck, Subscribe, SubscribeReasonCode,
};
use rumqttd::{ConnectionId, Notification};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio::time::Instant;

use super::acl;
use super::codec::{peek_publish, sniff, Codec, Sniff};
use super::feeder::Feed;
use super::{Kick, Shared, REVOKE_GRACE};

/// How long a revoked connection stays open for the PUBACK of its last answer.
const REVOKE_LINGER: Duration = Duration::from_secs(1);
use crate::devices::PresenceChange;
use crate::error::Error;
use crate::ids::{DeviceId, OwnerId};

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
    /// The router dropped the connection itself; it must not be told again.
    RouterGone,
    /// The device's ACL was revoked (ownership moved): closed without its will, which
    /// names the old owner's topics.
    Revoked,
}

/// An authenticated, linked connection.
struct Session {
    device: DeviceId,
    owner: OwnerId,
    codec: Codec,
    id: ConnectionId,
    will: Option<LastWill>,
    keep_alive: Duration,
    violations: u32,
    /// SUBSCRIBEs forwarded with some filters removed: pkid -> codes of the refused ones
    /// (None where the router's answer goes).
    partial_subacks: HashMap<u16, Vec<Option<SubscribeReasonCode>>>,
    /// Set when the ACL is revoked: the topic of the last publish to deliver before closing.
    revoked: Option<String>,
    /// That last publish is written: the connection closes on the client's PUBACK (so the
    /// client has read it before the socket goes) or after a short linger.
    last_delivered: bool,
    /// The charger's request rate (a token bucket).
    rate: RateLimit,
    /// Filters subscribed on this connection (at most `max_subscriptions`).
    subscriptions: std::collections::HashSet<String>,
}

/// A token bucket: `rate` requests a second, `burst` at once. A request over it waits
/// (which slows the charger's own connection, and only it); a charger that stays over its
/// rate for `abuse_after` is disconnected.
#[derive(Debug)]
struct RateLimit {
    tokens: f64,
    last: Instant,
    /// Since when the charger has been over its rate without backing off.
    over_since: Option<Instant>,
}

impl RateLimit {
    fn new(burst: f64) -> Self {
        Self {
            tokens: burst,
            last: Instant::now(),
            over_since: None,
        }
    }

    /// Takes a token; returns how long the request must wait for it (zero: none).
    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Duration {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(burst) - 1.0;
        self.last = now;
        if self.tokens >= 0.0 {
            if self.tokens >= burst / 2.0 {
                // Backed off to half a burst in hand: no longer over the rate.
                self.over_since = None;
            }
            return Duration::ZERO;
        }
        self.over_since.get_or_insert(now);
        Duration::from_secs_f64(-self.tokens / rate)
    }
}

/// Serves one accepted socket to the end.
pub(super) async fn serve<S>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: std::net::SocketAddr,
    login_slot: tokio::sync::OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut rbuf = BytesMut::with_capacity(1024);
    let mut wbuf = BytesMut::with_capacity(1024);
    let connect = tokio::time::timeout(
        shared.config.connect_timeout,
        read_connect(&shared, &mut stream, &mut rbuf),
    )
    .await;
    let (codec, packet) = match connect {
        Ok(Ok(Some(v))) => v,
        Ok(Ok(None)) | Err(_) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "no valid CONNECT");
            return;
        }
    };
    let Packet::Connect(connect, _props, will, _will_props, login) = packet else {
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
    let owner = match authenticated {
        Ok(owner) => owner,
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

    // One connection per device: an earlier one is closed and fully gone from the
    // router before this one links, so a reused router slot is never disconnected by
    // the old connection's goodbye.
    let registered = shared.register(&device).await;
    let conn_seq = registered.seq;
    let (link_tx, link_rx) = match shared.linker.link(device.as_str()).await {
        Ok(link) => link,
        Err(e) => {
            tracing::error!(%device, error = %e, "router refused the connection");
            // 3.1.1 knows only "service unavailable" (3); rumqttd's v4 writer panics on
            // the 5.0-only codes.
            let code = match codec {
                Codec::V4 => ConnectReturnCode::ServiceUnavailable,
                Codec::V5 => ConnectReturnCode::ServerUnavailable,
            };
            let _ = write_packet(&mut stream, &mut wbuf, codec, refuse(code)).await;
            shared.unregister(&device, registered);
            return;
        }
    };
    let id = link_rx.id();
    shared.feeder.send(Feed::Register(id, link_tx)).await;

    let keep_alive_s = match connect.keep_alive {
        0 => DEFAULT_KEEP_ALIVE_S,
        n => n,
    };
    let props = (codec == Codec::V5).then(|| ConnAckProperties {
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
        props,
    );
    let mut session = Session {
        device,
        owner,
        codec,
        id,
        will,
        keep_alive: Duration::from_millis(u64::from(keep_alive_s) * 1500),
        violations: 0,
        partial_subacks: HashMap::new(),
        revoked: None,
        last_delivered: false,
        rate: RateLimit::new(f64::from(shared.config.burst)),
        subscriptions: std::collections::HashSet::new(),
    };
    shared.metrics.connections.fetch_add(1, Ordering::Relaxed);
    shared
        .metrics
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    let presence_end = presence(&shared, &session.device, conn_seq);
    tracing::info!(device = %session.device, %peer, connection = id, ?codec, "device connected");

    let end = match write_packet(&mut stream, &mut wbuf, codec, connack).await {
        Ok(()) => {
            run(
                &shared,
                &mut session,
                &mut stream,
                rbuf,
                wbuf,
                link_rx,
                registered.kick.clone(),
            )
            .await
        }
        Err(_) => End::Abnormal("write failed"),
    };

    // The end: publish the will on an abnormal close, then free the router slot.
    let mut last = Vec::new();
    if let (End::Abnormal(_), Some(will)) = (&end, session.will.take()) {
        last.push(Packet::Publish(
            Publish::new(will.topic, will.message, false),
            None,
        ));
    }
    shared.feeder.close(id, last, end != End::RouterGone).await;
    shared.unregister(&session.device, registered);
    shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    let _ = presence_end.send(());
    tracing::info!(device = %session.device, connection = id, ?end, "device disconnected");
}

/// Queues "online" for this connection now and "offline" when the returned sender fires
/// (or is dropped). The presence writer commits them in order, in batches; the CONNACK
/// does not wait for the database.
fn presence(shared: &Shared, device: &DeviceId, conn: i64) -> tokio::sync::oneshot::Sender<()> {
    let (end, ended) = tokio::sync::oneshot::channel::<()>();
    let tx = shared.presence.clone();
    let device = device.clone();
    tokio::spawn(async move {
        let change = |online| PresenceChange {
            device: device.clone(),
            conn,
            online,
            at: chrono::Utc::now(),
        };
        let _ = tx.send(change(true)).await;
        let _ = ended.await;
        let _ = tx.send(change(false)).await;
    });
    end
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

/// The connection's main loop: socket in, router out, keep-alive, kick.
async fn run<S>(
    shared: &Shared,
    s: &mut Session,
    stream: &mut S,
    mut rbuf: BytesMut,
    mut wbuf: BytesMut,
    mut link_rx: LinkRx,
    mut kick: watch::Receiver<Kick>,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut deadline = Instant::now() + s.keep_alive;
    loop {
        // Decode every whole packet already buffered.
        loop {
            let publish_header = peek_publish(&rbuf);
            match s.codec.read(&mut rbuf, shared.config.max_packet_size) {
                Ok(packet) => {
                    if s.revoked.is_none() {
                        deadline = Instant::now() + s.keep_alive;
                    }
                    wbuf.clear();
                    match incoming(shared, s, packet, publish_header, &mut wbuf).await {
                        Ok(()) => {}
                        Err(end) => return end,
                    }
                    if !wbuf.is_empty() && stream.write_all(&wbuf).await.is_err() {
                        return End::Abnormal("write failed");
                    }
                }
                Err(rumqttd::protocol::Error::InsufficientBytes(_)) => break,
                Err(e) => {
                    tracing::info!(device = %s.device, error = %e, "malformed packet");
                    return End::Abnormal("malformed packet");
                }
            }
        }
        // Biased, kick first: a revocation is seen before the answer it waits for.
        tokio::select! {
            biased;
            changed = kick.changed() => {
                let order = kick.borrow_and_update().clone();
                match (changed, order) {
                    (Err(_), _) | (Ok(()), Kick::Close) => return End::Abnormal("replaced or revoked"),
                    (Ok(()), Kick::CloseAfter(topic)) => {
                        s.revoked = Some(topic);
                        deadline = Instant::now() + REVOKE_GRACE;
                    }
                    (Ok(()), Kick::Stay) => {}
                }
            }
            read = stream.read_buf(&mut rbuf) => match read {
                Ok(0) | Err(_) => return End::Abnormal("socket closed"),
                Ok(_) => {}
            },
            notification = link_rx.next() => {
                let notification = match notification {
                    Ok(Some(n)) => n,
                    Ok(None) => continue,
                    Err(_) => return End::RouterGone,
                };
                wbuf.clear();
                if let Some(end) = outgoing(s, notification, &link_rx, &mut wbuf).await {
                    let _ = stream.write_all(&wbuf).await;
                    let _ = stream.flush().await;
                    if end != End::Revoked {
                        return end;
                    }
                    s.last_delivered = true;
                    deadline = Instant::now() + REVOKE_LINGER;
                    continue;
                }
                if !wbuf.is_empty() && stream.write_all(&wbuf).await.is_err() {
                    return End::Abnormal("write failed");
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return if s.revoked.is_some() { End::Revoked } else { End::Abnormal("keep-alive expired") };
            }
        }
    }
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
    let id = s.id;
    let forward = move |packet| Feed::Packet(id, Box::new(packet));
    if s.last_delivered && matches!(packet, Packet::PubAck(..)) {
        // The client has the last answer.
        return Err(End::Revoked);
    }
    if s.revoked.is_some() && matches!(packet, Packet::Publish(..) | Packet::Subscribe(..)) {
        // The ACL this connection was given is gone: nothing more is forwarded.
        tracing::info!(device = %s.device, "dropped a packet of a revoked connection");
        return Ok(());
    }
    match packet {
        Packet::Publish(mut publish, props) => {
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
            if !acl::may_publish(s.owner.as_str(), s.device.as_str(), &topic) {
                shared
                    .metrics
                    .acl_denied_publish
                    .fetch_add(1, Ordering::Relaxed);
                violation(shared, s, "publish", &topic)?;
                let (qos, pkid) = publish_header.unwrap_or((0, 0));
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
            // Over its rate: the request waits, and so does the rest of this connection.
            let rate = f64::from(shared.config.rate_per_s.max(1));
            let burst = f64::from(shared.config.burst.max(1));
            let wait = s.rate.take(rate, burst, Instant::now());
            if !wait.is_zero() {
                crate::metrics::limit_hit(crate::metrics::Limit::MqttRate);
                if s.rate
                    .over_since
                    .is_some_and(|t| t.elapsed() >= shared.config.abuse_after)
                {
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
            // Retained messages would outlive later ACL changes.
            publish.retain = false;
            shared
                .feeder
                .send(forward(Packet::Publish(publish, props)))
                .await;
        }
        Packet::Subscribe(subscribe, props) => {
            let Subscribe { pkid, filters } = subscribe;
            let refused = match s.codec {
                Codec::V4 => SubscribeReasonCode::Failure,
                Codec::V5 => SubscribeReasonCode::NotAuthorized,
            };
            let mut codes = Vec::with_capacity(filters.len());
            let mut allowed = Vec::with_capacity(filters.len());
            for filter in filters {
                if !acl::may_subscribe(s.owner.as_str(), s.device.as_str(), &filter.path) {
                    shared
                        .metrics
                        .acl_denied_subscribe
                        .fetch_add(1, Ordering::Relaxed);
                    violation(shared, s, "subscribe", &filter.path)?;
                    codes.push(Some(refused));
                } else if !s.subscriptions.contains(&filter.path)
                    && s.subscriptions.len() >= shared.config.max_subscriptions
                {
                    crate::metrics::limit_hit_logged(
                        crate::metrics::Limit::MqttSubscriptions,
                        "SUBSCRIBE refused: the connection holds CHARGER_MQTT_MAX_SUBSCRIPTIONS filters",
                    );
                    codes.push(Some(refused));
                } else {
                    s.subscriptions.insert(filter.path.clone());
                    codes.push(None);
                    allowed.push(filter);
                }
            }
            if allowed.is_empty() {
                let return_codes = codes.into_iter().flatten().collect();
                encode(s, Packet::SubAck(SubAck { pkid, return_codes }, None), wbuf);
            } else {
                if codes.iter().any(Option::is_some) {
                    s.partial_subacks.insert(pkid, codes);
                }
                let subscribe = Subscribe {
                    pkid,
                    filters: allowed,
                };
                shared
                    .feeder
                    .send(forward(Packet::Subscribe(subscribe, props)))
                    .await;
            }
        }
        Packet::PingReq(_) => encode(s, Packet::PingResp(PingResp), wbuf),
        Packet::Disconnect(..) => return Err(End::Normal),
        Packet::Unsubscribe(unsubscribe, props) => {
            for filter in &unsubscribe.filters {
                s.subscriptions.remove(filter);
            }
            shared
                .feeder
                .send(forward(Packet::Unsubscribe(unsubscribe, props)))
                .await;
        }
        packet @ (Packet::PubAck(..)
        | Packet::PubRec(..)
        | Packet::PubRel(..)
        | Packet::PubComp(..)) => {
            shared.feeder.send(forward(packet)).await;
        }
        Packet::Connect(..)
        | Packet::ConnAck(..)
        | Packet::SubAck(..)
        | Packet::UnsubAck(..)
        | Packet::PingResp(..) => return Err(End::Abnormal("protocol violation")),
    }
    Ok(())
}

/// Handles one notification from the router: packets for the device go into `wbuf`.
async fn outgoing(
    s: &mut Session,
    notification: Notification,
    link_rx: &LinkRx,
    wbuf: &mut BytesMut,
) -> Option<End> {
    match notification {
        // The router pauses a link after a batch; it must be woken, or delivery stops.
        Notification::Unschedule => {
            if link_rx.wake().await.is_err() {
                return Some(End::RouterGone);
            }
        }
        Notification::Disconnect(..) => {
            let packet: Option<Packet> = notification.into();
            if let Some(p) = packet {
                encode(s, p, wbuf);
            }
            return Some(End::RouterGone);
        }
        notification => {
            let packet: Option<Packet> = notification.into();
            match packet {
                Some(Packet::SubAck(suback, props)) => {
                    let suback = merge_suback(s, suback);
                    encode(s, Packet::SubAck(suback, props), wbuf);
                }
                Some(Packet::ConnAck(..)) | None => {}
                Some(Packet::Publish(publish, props)) => {
                    let last = s
                        .revoked
                        .as_deref()
                        .is_some_and(|t| publish.topic == t.as_bytes());
                    encode(s, Packet::Publish(publish, props), wbuf);
                    if last {
                        return Some(End::Revoked);
                    }
                }
                Some(p) => encode(s, p, wbuf),
            }
        }
    }
    None
}

/// Puts refused filters' codes back into the router's SUBACK, in the client's order.
fn merge_suback(s: &mut Session, suback: SubAck) -> SubAck {
    let Some(codes) = s.partial_subacks.remove(&suback.pkid) else {
        return suback;
    };
    let mut granted = suback.return_codes.into_iter();
    let return_codes = codes
        .into_iter()
        .map(|c| c.unwrap_or_else(|| granted.next().unwrap_or(SubscribeReasonCode::Failure)))
        .collect();
    SubAck {
        pkid: suback.pkid,
        return_codes,
    }
}
