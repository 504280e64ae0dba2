//! The domain service: the one layer the MQTT and REST edges call. It holds the store and
//! the server secret, checks every input, applies owner scoping, and returns domain
//! errors. The methods live beside their types in `owners/`, `devices/`, `tags/` and
//! `billing/`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use charger_protocol::DeviceKey;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::ids::{DeviceId, OwnerId};
use crate::secrets::ServerSecret;
use crate::store::Store;

/// Where chargers reach the MQTT broker, as written into firmware bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttEndpoint {
    pub host: String,
    pub port: u16,
}

/// Who is calling: the platform admin or one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Owner(OwnerId),
}

impl Principal {
    /// The owner a listing is limited to (`None` for the admin: everything).
    pub fn owner_filter(&self) -> Option<&OwnerId> {
        match self {
            Principal::Admin => None,
            Principal::Owner(o) => Some(o),
        }
    }

    /// Whether the caller may see a row owned by `owner`. A row the caller may not see is
    /// reported as not found, never as forbidden, so ids of other owners do not leak.
    pub fn can_see(&self, owner: &OwnerId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Owner(o) => o == owner,
        }
    }

    /// Fails with 403 unless the caller is the admin.
    pub fn require_admin(&self) -> Result<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Owner(_) => Err(Error::forbidden(
                "admin_only",
                "this call needs the platform admin token",
            )),
        }
    }

    /// The owner namespace an id given by the caller lives in (tag uids and tariff ids are
    /// unique per owner): an owner token's own (naming another owner is not found); the
    /// admin's `requested`, or None when it named none (then the id is looked up across
    /// owners, and must be unambiguous).
    pub fn namespace(&self, requested: Option<OwnerId>) -> Result<Option<OwnerId>> {
        match (self, requested) {
            (Principal::Owner(o), None) => Ok(Some(o.clone())),
            (Principal::Owner(o), Some(r)) if *o == r => Ok(Some(r)),
            (Principal::Owner(_), Some(_)) => Err(Error::not_found("owner")),
            (Principal::Admin, r) => Ok(r),
        }
    }

    /// The owner a new row belongs to: an owner token may only create rows for itself
    /// (another owner is reported as not found); the admin must name one.
    pub fn owner_for_new(&self, requested: Option<OwnerId>) -> Result<OwnerId> {
        match (self, requested) {
            (Principal::Owner(o), None) => Ok(o.clone()),
            (Principal::Owner(o), Some(r)) if *o == r => Ok(r),
            (Principal::Owner(_), Some(_)) => Err(Error::not_found("owner")),
            (Principal::Admin, Some(r)) => Ok(r),
            (Principal::Admin, None) => Err(Error::invalid("owner", "is required")),
        }
    }
}

/// Who a command goes to, and how it is sealed.
pub struct Recipient<'a> {
    pub owner: &'a OwnerId,
    pub device: &'a DeviceId,
    pub key: &'a DeviceKey,
    /// The envelope version the charger speaks.
    pub version: charger_protocol::Version,
}

/// How the service reaches a connected charger: the MQTT edge's command path.
#[async_trait]
pub trait CommandChannel: Send + Sync {
    /// Whether the charger is connected now, when the transport can tell; None when
    /// presence is the database's (behind an external broker).
    fn is_connected(&self, device: &DeviceId) -> Option<bool>;
    /// Closes the charger's connection now (its credentials were revoked).
    async fn disconnect(&self, device: &DeviceId);
    /// Chargers were provisioned (an external broker's accounts follow).
    async fn accounts_changed(&self, devices: &[DeviceId]);
    /// Sends `command` with `data` to the charger (sealed with its key, in its envelope
    /// version); returns its answer, or None when it did not answer within `timeout`.
    async fn call(
        &self,
        to: &Recipient<'_>,
        command: &str,
        data: &serde_json::Value,
        timeout: Duration,
    ) -> Option<serde_json::Value>;
}

/// How the service reaches a connected OCPP charger: the OCPP edge's sockets.
#[async_trait]
pub trait OcppChannel: Send + Sync {
    /// Whether this instance holds the charger's socket now.
    fn holds(&self, device: &DeviceId) -> bool;
    /// Sends `command` (one of [`crate::charging::OCPP_COMMANDS`]) with its REST `data` to
    /// the charger, over whichever instance holds its socket; returns the charger's
    /// answer. 422 for data the command cannot take, 409 `device_offline` when no instance
    /// holds its socket, 504 when it does not answer within `timeout`, 502 for a CALLERROR
    /// or an answer OCPP does not define.
    async fn command(
        &self,
        device: &DeviceId,
        command: &str,
        data: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value>;
    /// Closes the charger's socket (its credentials changed), on whichever instance.
    async fn disconnect(&self, device: &DeviceId);
}

/// Default heartbeat interval chargers are told to keep, in seconds.
pub const HEARTBEAT_S: u64 = 300;
/// Default oldest offline session start accepted without dispute, in days.
pub const OFFLINE_MAX_AGE_DAYS_DEFAULT: u32 = 90;

/// Limits the service enforces (each a setting; see `config.rs`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Oldest offline session start accepted without dispute, in days.
    pub offline_max_age_days: u32,
    /// How long answers are kept for repeated requests (the idempotency window), in days.
    pub request_log_days: u32,
    /// Unknown-tag sightings kept per owner (the most recent).
    pub unknown_tags_per_owner: usize,
    /// How often an idle charger sends `heartbeat`, in seconds (told in `boot`); behind
    /// an external broker a charger silent for twice this is offline.
    pub heartbeat_s: u64,
    /// How long audit entries are kept, in days.
    pub audit_log_days: u32,
    /// How long credentials superseded by a claim or rekey may still log in to repeat
    /// that exchange (and nothing else), in seconds.
    pub credentials_grace_s: u64,
    /// How far behind the server's clock a live session start may be, in seconds.
    pub live_start_max_age_s: u64,
    /// Open transfer offers one receiving owner id may have.
    pub transfers_per_receiver: u32,
    /// Open transfer offers one sender may have addressed to one receiving owner id.
    pub transfers_per_pair: u32,
    /// Console sessions one token may hold at once (the oldest beyond are ended).
    pub console_sessions_per_token: u32,
    /// Time between the site balancer's runs when nothing happens, in ms.
    pub site_tick_ms: u64,
    /// How long an admitted session keeps its current before a paused one of its
    /// priority takes its turn, in s.
    pub site_rotate_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            offline_max_age_days: OFFLINE_MAX_AGE_DAYS_DEFAULT,
            request_log_days: 30,
            unknown_tags_per_owner: 1000,
            heartbeat_s: HEARTBEAT_S,
            audit_log_days: 400,
            credentials_grace_s: 600,
            live_start_max_age_s: 900,
            transfers_per_receiver: 100,
            transfers_per_pair: 10,
            console_sessions_per_token: 20,
            site_tick_ms: crate::sites::balancer::TICK_MS_DEFAULT,
            site_rotate_s: crate::sites::balancer::ROTATE_S_DEFAULT,
        }
    }
}

/// The service, cheap to clone and shared by every edge.
#[derive(Clone)]
pub struct Service {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) secret: ServerSecret,
    pub(crate) mqtt: MqttEndpoint,
    /// Set once the MQTT edge has started. Weak: the command path holds the service, and
    /// whoever runs the edge holds the command path (no reference cycle keeps a stopped
    /// server's database pool alive).
    pub(crate) commands: Arc<OnceLock<std::sync::Weak<dyn CommandChannel>>>,
    /// Set once the OCPP edge has started (weak, as `commands`).
    pub(crate) ocpp: Arc<OnceLock<std::sync::Weak<dyn OcppChannel>>>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) limits: Arc<Limits>,
    /// When each token's last use was written (see `owners`).
    pub(crate) token_uses:
        Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
    /// The site balancer's state in this instance.
    pub(crate) sites: Arc<crate::sites::balancer::Runtime>,
}

impl Service {
    pub fn new(store: Arc<dyn Store>, secret: ServerSecret, mqtt: MqttEndpoint) -> Self {
        Self {
            store,
            secret,
            mqtt,
            commands: Arc::new(OnceLock::new()),
            ocpp: Arc::new(OnceLock::new()),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            limits: Arc::new(Limits::default()),
            token_uses: Arc::default(),
            sites: Arc::default(),
        }
    }

    /// The service with these limits in force.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// The charger API's request counters.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Connects the command path (once, at start-up); the caller keeps it alive.
    pub fn set_command_channel(&self, channel: &Arc<dyn CommandChannel>) {
        let _ = self.commands.set(Arc::downgrade(channel));
    }

    /// Connects the OCPP edge (once, at start-up); the caller keeps it alive.
    pub fn set_ocpp_channel(&self, channel: &Arc<dyn OcppChannel>) {
        let _ = self.ocpp.set(Arc::downgrade(channel));
    }

    /// The OCPP edge, while it runs.
    pub(crate) fn ocpp_channel(&self) -> Option<Arc<dyn OcppChannel>> {
        self.ocpp.get().and_then(std::sync::Weak::upgrade)
    }

    /// The command path, while the MQTT edge runs.
    pub(crate) fn channel(&self) -> Option<Arc<dyn CommandChannel>> {
        self.commands.get().and_then(std::sync::Weak::upgrade)
    }

    /// The key that seals the web console's session cookies.
    pub fn console_key(&self) -> [u8; 32] {
        self.secret.console_key()
    }

    /// The store, for start-up checks and tests.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How often an idle charger is told to send a heartbeat, in seconds.
    pub fn heartbeat_s(&self) -> u64 {
        self.limits.heartbeat_s
    }

    /// The current time, truncated to the millisecond the schema keeps.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
    }

    /// Notes a tag refused at a charger because nobody knows it; the request path records
    /// it (within `CHARGER_UNKNOWN_TAGS_PER_OWNER`) whatever the request's outcome.
    pub(crate) async fn note_unknown_tag(
        &self,
        tx: &mut dyn crate::store::ChargerTx,
        device: &DeviceId,
        owner: &OwnerId,
        uid: &crate::ids::TagUid,
        at: DateTime<Utc>,
    ) -> Result<()> {
        tx.note_unknown_tag(device, owner, uid, at).await?;
        Ok(())
    }

    /// Deletes the answers kept for repeated requests that are older than the idempotency
    /// window (`CHARGER_REQUEST_LOG_DAYS`), in batches; returns how many. A request repeated
    /// after that gets a fresh answer.
    pub async fn prune_request_log(&self, now: DateTime<Utc>) -> Result<u64> {
        const BATCH: usize = 10_000;
        let before = now - chrono::Duration::days(i64::from(self.limits.request_log_days));
        let mut total = 0;
        loop {
            let n = self.store.prune_request_log(before, BATCH).await?;
            total += n;
            crate::metrics::limit_add(crate::metrics::Limit::RequestLog, n);
            if n < BATCH as u64 {
                return Ok(total);
            }
            // Let charger requests in between batches.
            tokio::task::yield_now().await;
        }
    }

    /// Behind an external broker: marks offline the chargers silent for twice the
    /// heartbeat; returns how many.
    pub async fn sweep_presence(&self) -> Result<u64> {
        let silent = i64::try_from(self.limits.heartbeat_s.saturating_mul(2)).unwrap_or(i64::MAX);
        let before = self.now() - chrono::Duration::seconds(silent);
        Ok(self.store.set_silent_devices_offline(before).await?)
    }

    /// Sessions charging now, all owners (for `/metrics`).
    pub async fn count_active_sessions(&self) -> Result<i64> {
        Ok(self.store.count_active_sessions().await?)
    }

    /// Checks that `owner` exists (as 404 "owner" otherwise).
    pub(crate) async fn require_owner(&self, owner: &OwnerId) -> Result<()> {
        match self.store.get_owner(owner).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found("owner")),
        }
    }
}
