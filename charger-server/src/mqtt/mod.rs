//! The MQTT edge of the charger API: an in-process consumer of the broker's router that
//! takes every REQ (`+/req/+/+`), opens the envelope, calls the service, and publishes
//! the sealed RES on `<owner>/res/<device>/<endpoint>`.
//!
//! Envelope rules (see `docs/mqtt-api.md` when it lands): a REQ that cannot be parsed
//! gets 400 with `data` ""; a wrong `key` gets 401 with `data` ""; every other answer is
//! sealed with the device key.

use bytes::Bytes;
use charger_protocol::{
    seal_response, DeviceKey, Direction, ErrorBody, RequestEnvelope, ResponseEnvelope, Topic,
};
use rumqttd::protocol::{Packet, Publish};
use rumqttd::Notification;
use serde_json::json;

use crate::broker::{Broker, Feed};
use crate::error::Error;
use crate::ids::DeviceId;
use crate::service::Service;
use crate::store::StoredResult;

/// The filter the dispatcher subscribes to: every device's requests.
pub const REQUEST_FILTER: &str = "+/req/+/+";
/// Client id of the dispatcher's router link ('.' keeps it apart from device ids).
const DISPATCHER_ID: &str = "charger-server.dispatcher";

/// Starts the dispatcher on `broker`.
pub async fn start(broker: &Broker, service: Service) -> std::io::Result<()> {
    let (mut link_tx, mut link_rx) = broker.link(DISPATCHER_ID).await?;
    let id = link_rx.id();
    tokio::task::spawn_blocking(move || {
        link_tx
            .subscribe(REQUEST_FILTER)
            .map(|_| link_tx)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
    .await
    .map_err(std::io::Error::other)?
    .map(|link_tx| {
        let feeder = broker.feeder().clone();
        tokio::spawn(async move { feeder.send(Feed::Register(id, link_tx)).await });
    })?;
    let feeder = broker.feeder().clone();
    tokio::spawn(async move {
        loop {
            let notification = match link_rx.next().await {
                Ok(Some(n)) => n,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "dispatcher link closed");
                    return;
                }
            };
            match notification {
                Notification::Forward(forward) => {
                    let service = service.clone();
                    let feeder = feeder.clone();
                    tokio::spawn(async move {
                        let publish = forward.publish;
                        let Some((topic, payload)) =
                            handle(&service, &publish.topic, &publish.payload).await
                        else {
                            return;
                        };
                        let res = Publish::new(Bytes::from(topic), Bytes::from(payload), false);
                        feeder
                            .send(Feed::Packet(id, Box::new(Packet::Publish(res, None))))
                            .await;
                    });
                }
                Notification::Unschedule => {
                    // Unanswered, the router stops delivering after a batch.
                    let woken = link_rx.wake().await;
                    if woken.is_err() {
                        return;
                    }
                }
                _ => {}
            }
        }
    });
    Ok(())
}

/// Handles one REQ; returns the RES topic and payload, or `None` for a topic that is not
/// a request (the ACL makes that impossible from devices).
pub async fn handle(service: &Service, topic: &[u8], payload: &[u8]) -> Option<(String, Vec<u8>)> {
    let topic = std::str::from_utf8(topic).ok()?;
    let t = Topic::parse(topic).ok()?;
    if t.direction != Direction::Request {
        return None;
    }
    let res_topic = charger_protocol::topic::response_topic(t.user, t.device, t.endpoint);
    let device = DeviceId::parse(t.device).ok()?;
    let span = tracing::info_span!("mqtt", device = %device, endpoint = t.endpoint);
    let _guard = span.enter();

    let unsealed = |id, code| ResponseEnvelope {
        id,
        status: 0,
        code,
        data: String::new(),
    };
    let envelope = match RequestEnvelope::parse(payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::info!(error = e.error, "unreadable request");
            return Some((res_topic, to_json(&unsealed(e.id, 400))));
        }
    };
    let id = envelope.id.clone();
    let key = match service.device_key_of(&device).await {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(error = %e, "device key lookup failed");
            return None;
        }
    };
    let presented = DeviceKey::from_hex(&envelope.key).ok();
    if !presented.is_some_and(|p| p.ct_eq(&key)) {
        return Some((res_topic, to_json(&unsealed(Some(id), 401))));
    }
    // Idempotency: a repeated (device, id) gets the stored answer, and changes nothing.
    let request_id = id.json_text();
    let result = match service.request_result(&device, &request_id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            let (code, body) = dispatch(service, &device, t.endpoint, &envelope.data).await;
            let fresh = StoredResult {
                code,
                body: body.to_string(),
            };
            if code >= 500 {
                // Not kept: the device may retry and succeed.
                fresh
            } else {
                match service
                    .remember_result(&device, &request_id, t.endpoint, fresh)
                    .await
                {
                    Ok(kept) => kept,
                    Err(e) => {
                        tracing::error!(error = %e, "request result not stored");
                        internal_error()
                    }
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "request log lookup failed");
            internal_error()
        }
    };
    let sealed = seal_response(&key, id, result.code, result.body.as_bytes()).ok()?;
    Some((res_topic, to_json(&sealed)))
}

/// Calls the endpoint's handler: (code, body).
async fn dispatch(
    service: &Service,
    device: &DeviceId,
    endpoint: &str,
    data: &serde_json::Value,
) -> (u16, serde_json::Value) {
    match endpoint {
        "boot" => match service.boot(device, data).await {
            Ok(body) => (200, body),
            Err(e) => error_body(&e),
        },
        "status" => match service.status(device, data).await {
            Ok(body) => (200, body),
            Err(e) => error_body(&e),
        },
        other => (
            404,
            serde_json::to_value(ErrorBody {
                error: "unknown_endpoint".into(),
                message: format!("no endpoint {other:?}"),
            })
            .unwrap_or_default(),
        ),
    }
}

fn internal_error() -> StoredResult {
    StoredResult {
        code: 500,
        body: json!({"error": "internal", "message": "the server could not complete the request"})
            .to_string(),
    }
}

fn to_json(res: &ResponseEnvelope) -> Vec<u8> {
    serde_json::to_vec(res).unwrap_or_default()
}

/// Maps a domain error to a RES code and error body (5xx opaque, logged).
fn error_body(e: &Error) -> (u16, serde_json::Value) {
    let code = match e {
        Error::Invalid { .. } => 422,
        Error::NotFound { .. } => 404,
        Error::Conflict { .. } => 409,
        Error::Forbidden { .. } => 403,
        Error::Unauthorized => 401,
        Error::Unavailable(_) => 503,
        Error::Internal(_) => 500,
    };
    let message = if code >= 500 {
        tracing::error!(error = %e, "request failed");
        "the server could not complete the request".to_owned()
    } else {
        e.to_string()
    };
    (code, json!({"error": e.code(), "message": message}))
}
