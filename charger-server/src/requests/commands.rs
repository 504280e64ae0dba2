//! Server-to-charger commands (remote start, remote stop, unlock) inside the same ACL.
//!
//! The server publishes the command on `<owner>/res/<device>/<command>` as a RES envelope
//! with an id of its own (`srv-<random>`) and the command's data sealed with the device
//! key; the charger answers on `<owner>/req/<device>/<command>` with that id, its key and
//! its answer as `data`. The caller waits for the answer, or gives up after its timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use charger_protocol::{
    open_request_v2, seal_response, seal_response_v2, DeviceKey, RequestId, Version,
};
use tokio::sync::oneshot;

use super::batch::to_json;
use super::{ChargerRequest as Job, Outcome, Transport};
use crate::ids::DeviceId;
use crate::service::{CommandChannel, Recipient, Service};

/// Commands waiting for their charger's answer, keyed by (device, command id).
///
/// Behind an external broker with several instances, every instance receives every
/// command answer (a plain subscription beside the shared one); the one holding the
/// pending command takes it, the others drop it.
pub struct Commander {
    service: Service,
    transport: Arc<dyn Transport>,
    pending: Mutex<HashMap<(DeviceId, String), oneshot::Sender<serde_json::Value>>>,
}

impl Commander {
    pub(super) fn new(service: Service, transport: Arc<dyn Transport>) -> Self {
        Self {
            service,
            transport,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// If `job` answers a pending command, hands it over (after the key check) and
    /// returns true; otherwise the job is an ordinary request.
    pub(crate) fn take_answer(&self, job: &Job) -> bool {
        let RequestId::Str(id) = &job.envelope.id else {
            return false;
        };
        if !id.starts_with(COMMAND_ID_PREFIX) {
            return false;
        }
        let waiter = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&(job.device.clone(), id.clone())));
        let Some(waiter) = waiter else {
            tracing::debug!(device = %job.device, id = %crate::telemetry::field(id), "answer to no command pending here (late, or another instance's) dropped");
            return true;
        };
        let service = self.service.clone();
        let device = job.device.clone();
        let envelope = job.envelope.clone();
        let command = job.endpoint.clone();
        tokio::spawn(async move {
            let (key, require_v2) = match service.device_key_of(&device).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(%device, error = %e, "command answer not checked");
                    return;
                }
            };
            // v1 shows the key (not accepted from a charger that must speak v2); v2 seals
            // the answer under it (bound to the command and id).
            let answer = match envelope.version() {
                Version::V1 if require_v2 => None,
                Version::V1 => DeviceKey::from_hex(&envelope.key)
                    .is_ok_and(|p| p.ct_eq(&key))
                    .then_some(envelope.data),
                Version::V2 => open_request_v2(&key, &command, &envelope)
                    .ok()
                    .and_then(|plain| serde_json::from_slice(&plain).ok()),
            };
            match answer {
                Some(data) => {
                    let _ = waiter.send(data);
                }
                None => {
                    tracing::warn!(%device, "command answer that does not authenticate dropped")
                }
            }
        });
        true
    }

    fn forget(&self, device: &DeviceId, id: &str) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&(device.clone(), id.to_owned()));
        }
    }
}

/// Server command ids start with this; chargers' own ids should not.
pub const COMMAND_ID_PREFIX: &str = "srv-";

#[async_trait]
impl CommandChannel for Commander {
    fn is_connected(&self, device: &DeviceId) -> Option<bool> {
        self.transport.is_connected(device)
    }

    async fn disconnect(&self, device: &DeviceId) {
        self.transport.disconnect(device).await;
    }

    async fn accounts_changed(&self, devices: &[DeviceId]) {
        self.transport.accounts_changed(devices).await;
    }

    async fn call(
        &self,
        to: &Recipient<'_>,
        command: &str,
        data: &serde_json::Value,
        timeout: Duration,
    ) -> Option<serde_json::Value> {
        let (owner, device, key, version) = (to.owner, to.device, to.key, to.version);
        let id = format!("{COMMAND_ID_PREFIX}{}", crate::secrets::random_token(12));
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert((device.clone(), id.clone()), tx);
        }
        let body = data.to_string();
        let sealed = match version {
            Version::V1 => seal_response(key, RequestId::Str(id.clone()), 200, body.as_bytes()),
            Version::V2 => seal_response_v2(
                key,
                command,
                RequestId::Str(id.clone()),
                200,
                body.as_bytes(),
            ),
        };
        let sealed = match sealed {
            Ok(res) => res,
            Err(e) => {
                tracing::error!(error = %e, "cannot seal a command");
                self.forget(device, &id);
                return None;
            }
        };
        let topic =
            charger_protocol::topic::response_topic(owner.as_str(), device.as_str(), command);
        tracing::info!(%device, command, id, "command sent");
        self.transport
            .deliver(Outcome {
                topic,
                payload: to_json(&sealed),
                revoke: None,
                conn: None,
            })
            .await;
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Some(answer),
            _ => None,
        };
        if answer.is_none() {
            self.forget(device, &id);
        }
        answer
    }
}
