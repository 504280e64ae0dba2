//! Instances reaching each other's OCPP sockets, through PostgreSQL LISTEN/NOTIFY on one
//! channel (the database the instances already share; nothing new to run).
//!
//! - A command for a charger whose socket another instance holds is sent as a `call`
//!   note; the instance holding the socket sends the CALL and notifies the `answer`.
//! - A charger that connects sends `connected`: any other instance that still holds an
//!   older socket of it closes that one.
//! - A credential change sends `disconnect`: whichever instance holds the socket closes it.
//!
//! A note is at most 7,900 bytes (PostgreSQL's limit is 8,000): a command too large to
//! relay is refused 422 on an instance that does not hold the socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::oneshot;

use super::Hub;
use crate::error::{Error, Result};
use crate::ids::DeviceId;

const CHANNEL: &str = "charger_ocpp_relay";
const MAX_NOTE_BYTES: usize = 7_900;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Note {
    Call {
        id: String,
        from: String,
        device: String,
        command: String,
        data: Value,
        timeout_ms: u64,
    },
    Answer {
        id: String,
        to: String,
        #[serde(default)]
        result: Option<Value>,
        /// `timeout`, `offline`, or the charger's CALLERROR as text.
        #[serde(default)]
        error: Option<String>,
    },
    Connected {
        from: String,
        device: String,
    },
    Disconnect {
        device: String,
    },
}

/// This instance's end of the relay.
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Weak<Hub>,
    pool: PgPool,
    instance: String,
    waiting: Mutex<HashMap<String, oneshot::Sender<Result<Value>>>>,
}

impl Relay {
    /// Listens on the relay channel; None for a database that is not PostgreSQL (one
    /// instance only).
    pub async fn start(hub: Arc<Hub>, database_url: &str) -> anyhow::Result<Option<Relay>> {
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Ok(None);
        }
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect(database_url)
            .await?;
        let mut listener = PgListener::connect(database_url).await?;
        listener.listen(CHANNEL).await?;
        let inner = Arc::new(Inner {
            hub: Arc::downgrade(&hub),
            pool,
            instance: format!("{:016x}", rand::random::<u64>()),
            waiting: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                let note = match listener.recv().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "the OCPP relay lost its database connection; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let Some(inner) = weak.upgrade() else { break };
                match serde_json::from_str::<Note>(note.payload()) {
                    Ok(n) => {
                        let inner = inner.clone();
                        tokio::spawn(async move { inner.take(n).await });
                    }
                    Err(e) => tracing::warn!(error = %e, "an OCPP relay note that cannot be read"),
                }
            }
        });
        Ok(Some(Relay { inner }))
    }

    /// Runs a REST command through the instance holding the charger's socket (which
    /// speaks the charger's OCPP version).
    pub async fn command(
        &self,
        device: &DeviceId,
        command: &str,
        data: &Value,
        timeout: Duration,
    ) -> Result<Value> {
        let id = format!("{:016x}", rand::random::<u64>());
        let note = Note::Call {
            id: id.clone(),
            from: self.inner.instance.clone(),
            device: device.to_string(),
            command: command.to_owned(),
            data: data.clone(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let (reply, answer) = oneshot::channel();
        if let Ok(mut w) = self.inner.waiting.lock() {
            w.insert(id.clone(), reply);
        }
        let sent = self.inner.notify(&note).await;
        let result = match sent {
            Err(e) => Err(e),
            // A little longer than the charger's own deadline, for the answer's way back.
            Ok(()) => match tokio::time::timeout(timeout + Duration::from_secs(1), answer).await {
                Ok(Ok(result)) => result,
                _ => Err(Error::Timeout),
            },
        };
        if let Ok(mut w) = self.inner.waiting.lock() {
            w.remove(&id);
        }
        result
    }

    /// This instance took a socket of `device`: others close theirs.
    pub async fn connected(&self, device: &DeviceId, _conn: i64) {
        let note = Note::Connected {
            from: self.inner.instance.clone(),
            device: device.to_string(),
        };
        if let Err(e) = self.inner.notify(&note).await {
            tracing::warn!(error = %e, "cannot tell other instances of an OCPP connection");
        }
    }

    /// Whichever instance holds the charger's socket closes it.
    pub async fn disconnect(&self, device: &DeviceId) {
        let note = Note::Disconnect {
            device: device.to_string(),
        };
        if let Err(e) = self.inner.notify(&note).await {
            tracing::warn!(error = %e, "cannot tell other instances to close an OCPP socket");
        }
    }
}

impl Inner {
    async fn notify(&self, note: &Note) -> Result<()> {
        let text = serde_json::to_string(note)
            .map_err(|e| Error::Internal(format!("a relay note that is not JSON: {e}")))?;
        if text.len() > MAX_NOTE_BYTES {
            return Err(Error::invalid(
                "data",
                "too large to relay to the instance that holds the charger's socket",
            ));
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(text)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::Unavailable(format!("the OCPP relay: {e}")))?;
        Ok(())
    }

    async fn take(&self, note: Note) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        match note {
            Note::Call {
                id,
                from,
                device,
                command,
                data,
                timeout_ms,
            } => {
                let Ok(device) = DeviceId::parse(&device) else {
                    return;
                };
                let timeout = Duration::from_millis(timeout_ms.min(60_000));
                // Only the instance holding the socket answers.
                let Some(result) = hub.command_local(&device, &command, &data, timeout).await
                else {
                    return;
                };
                let (result, error) = match result {
                    Ok(v) => (Some(v), None),
                    Err(Error::Timeout) => (None, Some("timeout".to_owned())),
                    Err(Error::BadAnswer(text)) => (None, Some(format!("bad:{text}"))),
                    Err(Error::Invalid { field, message }) => {
                        (None, Some(format!("invalid:{field}:{message}")))
                    }
                    Err(_) => (None, Some("offline".to_owned())),
                };
                let answer = Note::Answer {
                    id,
                    to: from,
                    result,
                    error,
                };
                if let Err(e) = self.notify(&answer).await {
                    tracing::warn!(error = %e, "cannot relay an OCPP answer");
                }
            }
            Note::Answer {
                id,
                to,
                result,
                error,
            } => {
                if to != self.instance {
                    return;
                }
                let reply = self.waiting.lock().ok().and_then(|mut w| w.remove(&id));
                if let Some(reply) = reply {
                    let outcome = match (result, error.as_deref()) {
                        (Some(v), None) => Ok(v),
                        (_, Some("timeout")) => Err(Error::Timeout),
                        (_, Some("offline")) | (None, None) => Err(Error::conflict(
                            "device_offline",
                            "the charger disconnected before it answered",
                        )),
                        (_, Some(text)) => match text.split_once(':') {
                            Some(("invalid", rest)) => {
                                let (field, message) =
                                    rest.split_once(':').unwrap_or(("data", rest));
                                Err(Error::invalid(field.to_owned(), message.to_owned()))
                            }
                            Some(("bad", rest)) => {
                                Err(Error::BadAnswer(rest.chars().take(300).collect()))
                            }
                            _ => Err(Error::BadAnswer(text.chars().take(300).collect())),
                        },
                    };
                    let _ = reply.send(outcome);
                }
            }
            Note::Connected { from, device } => {
                if from == self.instance {
                    return;
                }
                if let Ok(device) = DeviceId::parse(&device) {
                    hub.close_local(&device, "the charger connected to another instance")
                        .await;
                }
            }
            Note::Disconnect { device } => {
                if let Ok(device) = DeviceId::parse(&device) {
                    hub.close_local(&device, "its credentials changed").await;
                }
            }
        }
    }
}
