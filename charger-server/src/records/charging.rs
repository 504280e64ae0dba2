//! Sessions and what the charger API reads and writes of them: the charger as a request
//! sees it, a session, its samples and stop, its bill and resolution, the local list.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::cost::{Bill, Prices};
use super::money::Currency;
use super::tags::Tag;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, OwnerId, TagUid, TariffId};
use charger_protocol::api;

/// Why a session stopped (the wire type).
pub use charger_protocol::api::StopReason;

/// A charger as the charger API needs it, read inside the request's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charger {
    pub id: DeviceId,
    pub owner: OwnerId,
    pub connectors: i64,
    pub tariff: Option<TariffId>,
    pub key_version: i64,
    /// It changed owner: its next local list starts over.
    pub list_reset: bool,
    /// Each connector's rated power, in W: the bound of plausible energy.
    pub max_power_w: i64,
    /// Only envelope v2 is accepted from it.
    pub require_v2: bool,
    /// Its credentials before its last claim or rekey, while they may still repeat that
    /// exchange.
    pub superseded: Option<Superseded>,
}

/// Credentials a claim or a rekey replaced, kept for a grace window
/// (`CHARGER_CREDENTIALS_GRACE_S`) so that a charger whose answer was lost can log in with
/// them and repeat that one request (its kept answer), and do nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superseded {
    /// The key version of the old credentials.
    pub key_version: i64,
    /// The owner whose topics the old credentials used.
    pub owner: OwnerId,
    /// The exchange's request id (its JSON text) and endpoint.
    pub request_id: String,
    pub endpoint: String,
    /// Until when the old password logs in.
    pub until: DateTime<Utc>,
}

/// Whether a session is still charging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Active,
    Stopped,
    /// Closed by a late replay with readings no meter can produce: billed nothing until an
    /// operator resolves it.
    Disputed,
    /// A disputed session an operator voided: billed nothing, for good.
    Void,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Stopped => "stopped",
            SessionStatus::Disputed => "disputed",
            SessionStatus::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(SessionStatus::Active),
            "stopped" => Some(SessionStatus::Stopped),
            "disputed" => Some(SessionStatus::Disputed),
            "void" => Some(SessionStatus::Void),
            _ => None,
        }
    }
}

/// A charging session. `owner` is the charger's owner when it started: the one that
/// bills it, unchanged by a later transfer of the charger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: i64,
    pub device: DeviceId,
    pub connector: i64,
    pub owner: OwnerId,
    pub tag: TagUid,
    pub local_id: Option<String>,
    pub status: SessionStatus,
    /// Started while the charger was offline: recorded without live checks.
    pub offline: bool,
    pub meter_start_wh: i64,
    pub meter_stop_wh: Option<i64>,
    pub last_meter_wh: i64,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub stop_reason: Option<String>,
    /// Why the session is disputed (an offline replay no meter could produce).
    pub dispute: Option<String>,
    /// The time of its latest meter sample.
    pub last_sample_at: Option<DateTime<Utc>>,
    /// The tariff the prices were taken from (None: the charger had none: free).
    pub tariff: Option<TariffId>,
    pub prices: Prices,
    pub energy_wh: Option<i64>,
    pub net: Option<Decimal>,
    pub tax: Option<Decimal>,
    pub total: Option<Decimal>,
    /// How an operator resolved it, when it was disputed.
    pub resolution: Option<Resolved>,
}

/// An operator's resolution of a disputed session: what, who, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// `void` or `billed`.
    pub action: String,
    /// `admin` or `owner:<id>`.
    pub by: String,
    pub at: DateTime<Utc>,
}

/// RFC 3339 UTC with milliseconds, the API's time format.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How a charger names a session: the server's id, or its own id for an offline start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRef {
    Id(i64),
    Local(String),
}

impl SessionRef {
    /// Exactly one of the two fields, checked; `None` when neither is given.
    pub fn from_fields(session_id: Option<i64>, local_id: Option<String>) -> Result<Option<Self>> {
        match (session_id, local_id) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "session_id",
                "give session_id or local_id, not both",
            )),
            (Some(id), None) => Ok(Some(SessionRef::Id(id))),
            (None, Some(local)) => Ok(Some(SessionRef::Local(check_local_id(local)?))),
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn required(session_id: Option<i64>, local_id: Option<String>) -> Result<Self> {
        Self::from_fields(session_id, local_id)?
            .ok_or_else(|| Error::invalid("session_id", "give session_id or local_id"))
    }
}

/// Longest `local_id` accepted in any form, in bytes.
pub const MAX_LOCAL_ID_BYTES: usize = 256;

/// How an OCPP 2.0.1 station's transaction id is kept as a session's `local_id`.
pub const STATION_TRANSACTION_PREFIX: &str = "t-";

/// The station's own transaction id of a session kept under `local_id`, if it named one.
pub fn station_transaction(local_id: &str) -> Option<&str> {
    local_id.strip_prefix(STATION_TRANSACTION_PREFIX)
}

/// A device-made session id. The documented form is `[A-Za-z0-9_-]{1,64}`; another
/// (non-empty, at most 256 bytes) is not refused, since refusing an offline start loses a
/// session the car has charged: it is kept as `h-` and 40 hex digits of its SHA-256, the
/// same for every message that names it, so the session's values and stop still find it.
pub fn check_local_id(local: String) -> Result<String> {
    if charger_protocol::topic::is_valid_part(&local) {
        return Ok(local);
    }
    if local.is_empty() || local.len() > MAX_LOCAL_ID_BYTES {
        return Err(Error::invalid("local_id", "must be 1 to 256 bytes"));
    }
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(local.as_bytes()));
    Ok(format!("h-{}", &digest[..40]))
}

/// A session row to insert.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub device: DeviceId,
    pub connector: i64,
    pub owner: OwnerId,
    pub tag: TagUid,
    pub local_id: Option<String>,
    pub offline: bool,
    pub meter_start_wh: i64,
    pub started_at: DateTime<Utc>,
    pub tariff: Option<TariffId>,
    pub prices: Prices,
    /// Why an offline start is disputed (readings or times no meter can produce).
    pub dispute: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What a stop records.
#[derive(Debug, Clone)]
pub struct StopRecord {
    pub meter_stop_wh: i64,
    pub stopped_at: DateTime<Utc>,
    pub reason: StopReason,
    /// The bill: nothing for a disputed session.
    pub bill: Bill,
    /// Set: the session is closed as `disputed`, for an operator to resolve.
    pub dispute: Option<String>,
    /// The session's currency (its amounts are stored in its minor units).
    pub currency: Currency,
}

/// One meter reading (the wire type).
pub type Sample = api::MeterSample;

/// What the store filters sessions by.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub owner: Option<OwnerId>,
    pub device: Option<DeviceId>,
    pub tag: Option<TagUid>,
    pub status: Option<SessionStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only ids below this one (the cursor).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One meter sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeterSample {
    pub at: String,
    pub energy_wh: i64,
    pub power_w: Option<i64>,
}

/// One stored cost line (exact decimals, before the one rounding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredCostLine {
    pub kind: String,
    pub quantity: String,
    pub unit_price: String,
    pub amount: String,
}

/// What the store groups by (months are folded from days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKey {
    /// Days since the Unix epoch (UTC).
    Day,
    Device,
    Tag,
}

/// One aggregated row from the store: sums of billed minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSum {
    pub key: String,
    pub currency: String,
    pub sessions: i64,
    /// Sums in 128 bits: they never wrap.
    pub energy_wh: i128,
    pub net_minor: i128,
    pub tax_minor: i128,
    pub total_minor: i128,
}

/// What the store records for a resolution.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// `Stopped` (billed) or `Void`.
    pub status: SessionStatus,
    pub meter_start_wh: i64,
    pub meter_stop_wh: i64,
    pub started_at: DateTime<Utc>,
    pub stopped_at: DateTime<Utc>,
    pub bill: Bill,
    pub currency: Currency,
    /// `void` or `billed`.
    pub action: &'static str,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// One change of an owner's tag list: a tag as it is now, or a removed uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalListItem {
    Tag(Tag),
    Removed { uid: TagUid, version: i64 },
}

impl LocalListItem {
    pub fn version(&self) -> i64 {
        match self {
            LocalListItem::Tag(t) => t.list_version,
            LocalListItem::Removed { version, .. } => *version,
        }
    }
}

/// The owner's list version now, and its changes after a version, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalListPage {
    pub current: i64,
    pub items: Vec<LocalListItem>,
}
