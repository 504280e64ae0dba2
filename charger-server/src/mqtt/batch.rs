//! Group commit of charger requests.
//!
//! Requests queue up while the previous batch commits; a writer then takes up to
//! [`MAX_BATCH`] of them and runs them in one transaction, each inside a savepoint, so a
//! failing request rolls back alone. Each request's change and the answer kept for its
//! `(device, id)` are in the same transaction, and nothing is published before the commit
//! has returned: an answered request is durable (SQLite `synchronous=FULL`). One commit
//! (one fsync) serves the whole batch.
//!
//! A device's requests always go to the same writer, in the order the router delivered
//! them, so an offline charger's replay (start, values, stop) is applied in order. SQLite
//! has one writer (it has one write lock anyway); Postgres has several.

use std::hash::{Hash as _, Hasher as _};

use charger_protocol::{seal_response, DeviceKey, ResponseEnvelope};
use serde_json::json;
use tokio::sync::mpsc;

use super::{endpoint_label, to_json, Job, Outgoing, Publisher};
use crate::broker::Broker;
use crate::charging::ENDPOINTS;
use crate::error::Error;
use crate::ids::DeviceId;
use crate::service::Service;
use crate::store::{Backend, ChargerTx, StoreError, StoredResult};

/// Most requests in one transaction.
pub const MAX_BATCH: usize = 256;
/// Requests waiting per writer before the dispatcher waits (back-pressure on the router).
const QUEUE: usize = 16_384;

/// The writers' queues; a device always maps to the same one.
pub(super) struct Writers {
    queues: Vec<mpsc::Sender<Job>>,
}

impl Writers {
    pub(super) async fn send(&self, job: Job) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        job.device.hash(&mut h);
        let n = self.queues.len().max(1) as u64;
        let i = usize::try_from(h.finish() % n).unwrap_or(0);
        if let Some(q) = self.queues.get(i) {
            let _ = q.send(job).await;
        }
    }
}

/// Starts the writer tasks.
pub(super) fn start(service: Service, broker: Broker, publisher: Publisher) -> Writers {
    let count = match service.store().backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 4,
    };
    let queues = (0..count)
        .map(|_| {
            let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
            let service = service.clone();
            let broker = broker.clone();
            let publisher = publisher.clone();
            tokio::spawn(async move {
                let mut jobs = Vec::with_capacity(MAX_BATCH);
                while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                    let done = run_batch(&service, &mut jobs).await;
                    for d in done {
                        if let Some(device) = &d.revoke {
                            // Before the RES goes out: the connection closes once it has
                            // delivered it, and forwards nothing more meanwhile.
                            broker.revoke_after(device, &d.out.topic);
                        }
                        publisher.publish(d.out).await;
                        service
                            .metrics()
                            .request(d.endpoint, d.code, d.received.elapsed());
                    }
                }
            });
            tx
        })
        .collect();
    Writers { queues }
}

/// An answer ready to publish once its batch has committed.
struct Done {
    out: Outgoing,
    endpoint: &'static str,
    code: u16,
    received: std::time::Instant,
    /// The charger changed owner: revoke its connection after this RES.
    revoke: Option<DeviceId>,
}

/// Runs `jobs` (drained) in one transaction; returns what to publish, empty when the
/// transaction failed (nothing was acknowledged: the chargers will retry).
async fn run_batch(service: &Service, jobs: &mut Vec<Job>) -> Vec<Done> {
    let count = jobs.len();
    let mut tx = match service.store().begin().await {
        Ok(tx) => tx,
        Err(e) => {
            crate::metrics::db_error();
            tracing::error!(error = %e, requests = count, "cannot open a transaction; requests dropped");
            jobs.clear();
            return Vec::new();
        }
    };
    let mut done = Vec::with_capacity(count);
    for job in jobs.drain(..) {
        match one(service, tx.as_mut(), job).await {
            Ok(Some(d)) => done.push(d),
            Ok(None) => {}
            Err(e) => {
                crate::metrics::db_error();
                tracing::error!(error = %e, requests = count, "batch failed; requests dropped");
                return Vec::new();
            }
        }
    }
    if let Err(e) = tx.commit().await {
        crate::metrics::db_error();
        tracing::error!(error = %e, requests = count, "batch commit failed; requests dropped");
        return Vec::new();
    }
    done
}

/// One request inside its savepoint. A store error here fails the batch.
async fn one(
    service: &Service,
    tx: &mut dyn ChargerTx,
    job: Job,
) -> Result<Option<Done>, StoreError> {
    tx.savepoint().await?;
    let endpoint = endpoint_label(&job.endpoint);
    let received = job.received;
    let done = |topic: String, payload: Vec<u8>, code: u16, revoke: Option<DeviceId>| Done {
        out: Outgoing { topic, payload },
        endpoint,
        code,
        received,
        revoke,
    };
    let Some(charger) = tx.charger(&job.device).await? else {
        // Deleted after it connected; nothing to answer with.
        tx.release_savepoint().await?;
        return Ok(None);
    };
    let key = service.device_key(&job.device, charger.key_version);
    let id = job.envelope.id.clone();
    let presented = DeviceKey::from_hex(&job.envelope.key).ok();
    if !presented.is_some_and(|p| p.ct_eq(&key)) {
        tx.release_savepoint().await?;
        tracing::info!(device = %job.device, endpoint = %job.endpoint, "wrong key");
        let res = ResponseEnvelope {
            id: Some(id),
            status: 0,
            code: 401,
            data: String::new(),
        };
        return Ok(Some(done(job.res_topic, to_json(&res), 401, None)));
    }
    // Idempotency: a repeated (device, id) gets the kept answer and changes nothing.
    let request_id = id.json_text();
    let mut revoke = None;
    let result = match tx.request_result(&job.device, &request_id).await? {
        Some(kept) => kept,
        None if job.user != charger.owner.as_str() => {
            // A request on the topics of the charger's former owner, sent before its
            // connection was revoked.
            tx.release_savepoint().await?;
            tracing::info!(device = %job.device, "request under a former owner dropped");
            return Ok(None);
        }
        None => {
            let (code, body) = if ENDPOINTS.contains(&job.endpoint.as_str()) {
                let answer = service
                    .charger_request(tx, &charger, &job.endpoint, &job.envelope.data)
                    .await;
                match answer {
                    Ok(reply) => (reply.code, reply.body),
                    Err(e) => error_body(&e),
                }
            } else {
                (
                    404,
                    json!({"error": "unknown_endpoint", "message": format!("no endpoint {:?}", job.endpoint)}),
                )
            };
            if code >= 500 {
                // Undone and not kept: the charger may retry and succeed.
                tx.rollback_to_savepoint().await?;
                let sealed = seal(&key, id, code, &body.to_string());
                return Ok(sealed.map(|payload| done(job.res_topic, payload, code, None)));
            }
            if job.endpoint == "ownership-claim" && code == 200 {
                revoke = Some(job.device.clone());
            }
            let fresh = StoredResult {
                code,
                body: body.to_string(),
            };
            tx.save_request_result(
                &job.device,
                &request_id,
                &job.endpoint,
                &fresh,
                service.now(),
            )
            .await?
        }
    };
    tx.release_savepoint().await?;
    let code = result.code;
    Ok(
        seal(&key, id, code, &result.body)
            .map(|payload| done(job.res_topic, payload, code, revoke)),
    )
}

fn seal(
    key: &DeviceKey,
    id: charger_protocol::RequestId,
    code: u16,
    body: &str,
) -> Option<Vec<u8>> {
    match seal_response(key, id, code, body.as_bytes()) {
        Ok(res) => Some(to_json(&res)),
        Err(e) => {
            tracing::error!(error = %e, "cannot seal a response");
            None
        }
    }
}

/// Maps a domain error to a RES code and error body (5xx opaque, logged).
pub(super) fn error_body(e: &Error) -> (u16, serde_json::Value) {
    let code = match e {
        Error::Invalid { .. } => 422,
        Error::NotFound { .. } => 404,
        Error::Conflict { .. } => 409,
        Error::Forbidden { .. } => 403,
        Error::Unauthorized => 401,
        Error::Timeout => 504,
        Error::Unavailable(_) => 503,
        Error::Internal(_) => 500,
    };
    let message = if code >= 500 {
        tracing::error!(error = %e, "request failed");
        "the server could not complete the request".to_owned()
    } else {
        e.to_string()
    };
    let mut body = json!({"error": e.code(), "message": message});
    if let Error::Invalid { field, .. } = e {
        body["field"] = field.clone().into();
    }
    (code, body)
}
