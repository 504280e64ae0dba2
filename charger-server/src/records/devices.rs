//! Chargers: what is kept of each, its connectors, presence, history, credentials and
//! transfer offers.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::{DeviceId, OwnerId, TariffId};

/// What a charger is given once at provisioning or rotation: a MyBox firmware bundle
/// (MQTT credentials and key), or an OCPP charger's Basic-auth credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Bundle {
    Mybox(charger_protocol::FirmwareBundle),
    Ocpp(OcppBundle),
}

impl Bundle {
    pub fn device_id(&self) -> &str {
        match self {
            Bundle::Mybox(b) => &b.device_id,
            Bundle::Ocpp(b) => &b.device_id,
        }
    }
}

/// An OCPP charger's credentials. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OcppBundle {
    pub device_id: String,
    pub owner: String,
    pub protocol: Protocol,
    pub ocpp: OcppCredentials,
}

/// Where and how an OCPP charger connects.
#[derive(Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OcppCredentials {
    /// The WebSocket path on the REST listener: `/ocpp/<id>`.
    pub path: String,
    /// The WebSocket subprotocol to offer.
    pub subprotocol: String,
    /// HTTP Basic username: the charger id (its ChargePointId).
    pub username: String,
    /// HTTP Basic password: 40 hexadecimal digits (20 bytes), also the value of the
    /// `AuthorizationKey` configuration key.
    pub password: String,
    /// A rotation only: whether a connected charger took the new password
    /// (`ChangeConfiguration AuthorizationKey` accepted) before the old one stopped working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<bool>,
}

impl std::fmt::Debug for OcppBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcppBundle")
            .field("device_id", &self.device_id)
            .field("owner", &self.owner)
            .field("protocol", &self.protocol)
            .field("path", &self.ocpp.path)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The protocol a charger speaks, chosen at provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize)]
pub enum Protocol {
    /// The MyBox MQTT API.
    #[default]
    #[serde(rename = "mybox")]
    Mybox,
    /// OCPP 1.6J over a WebSocket.
    #[serde(rename = "ocpp1.6")]
    Ocpp16,
    /// OCPP 2.0.1 over a WebSocket (it may also negotiate 1.6).
    #[serde(rename = "ocpp2.0.1")]
    Ocpp201,
}

impl Protocol {
    pub const ALL: &'static [Protocol] = &[Protocol::Mybox, Protocol::Ocpp16, Protocol::Ocpp201];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mybox => "mybox",
            Protocol::Ocpp16 => "ocpp1.6",
            Protocol::Ocpp201 => "ocpp2.0.1",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.as_str() == s)
    }

    /// Whether it speaks OCPP.
    pub fn is_ocpp(self) -> bool {
        self != Protocol::Mybox
    }
}

/// A charger as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub id: DeviceId,
    pub owner: OwnerId,
    pub connector_count: i64,
    /// Each connector's rated power, in W: energy beyond it is refused.
    pub max_power_w: i64,
    /// Its requests must use envelope v2 (v1, with the key in clear, gets 401).
    pub require_v2: bool,
    /// The protocol it speaks.
    pub protocol: Protocol,
    /// OCPP chargers only: what their boot is answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<Registration>,
    pub connectors: Vec<Connector>,
    pub tariff: Option<TariffId>,
    pub firmware: Option<String>,
    pub model: Option<String>,
    pub online: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One connector's last reported state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connector {
    pub id: i64,
    pub state: String,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One presence change of `device`'s connection `conn` (0 behind an external broker).
#[derive(Debug, Clone)]
pub struct PresenceChange {
    pub device: DeviceId,
    pub conn: i64,
    pub kind: PresenceKind,
    pub at: DateTime<Utc>,
}

/// What happened to a charger's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceKind {
    /// Its connection opened: online.
    Connected,
    /// Its connection closed (or its will came, or it went silent): offline, unless a
    /// newer connection has taken over.
    Disconnected,
    /// A message from it: it was seen now (and is online, behind an external broker).
    Seen,
}

/// A page of chargers (`DeviceQuery`) or their counts, for a fleet of any size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceState {
    #[default]
    All,
    Online,
    Offline,
    /// A connector is charging.
    Charging,
    /// A connector is faulted.
    Faulted,
}

impl DeviceState {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "all" => DeviceState::All,
            "online" => DeviceState::Online,
            "offline" => DeviceState::Offline,
            "charging" => DeviceState::Charging,
            "faulted" => DeviceState::Faulted,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::All => "all",
            DeviceState::Online => "online",
            DeviceState::Offline => "offline",
            DeviceState::Charging => "charging",
            DeviceState::Faulted => "faulted",
        }
    }
}

/// What the store filters a page of chargers by.
#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    pub owner: Option<OwnerId>,
    /// Part of the id, model or firmware (any case).
    pub search: Option<String>,
    pub state: DeviceState,
    /// Only ids after this one (the page's cursor).
    pub after: Option<DeviceId>,
    pub limit: i64,
}

/// A fleet's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FleetCounts {
    pub chargers: i64,
    pub online: i64,
    pub charging: i64,
    pub faulted: i64,
}

/// A variable of an OCPP 2.0.1 station's configuration (its Actual value), as its report
/// gave it; `evse` 0 is the station as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StationVariable {
    pub component: String,
    pub evse: i64,
    pub variable: String,
    pub value: String,
    pub updated_at: DateTime<Utc>,
}

/// A connector's last reported error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub device: DeviceId,
    pub connector: i64,
    pub state: String,
    pub error: String,
    pub at: DateTime<Utc>,
}

/// One line of a charger's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceEvent {
    pub at: DateTime<Utc>,
    /// `connected`, `disconnected`, `online`, `status`, `request:<endpoint>`,
    /// `command:<name>` ...
    pub kind: String,
    pub detail: String,
    /// A request's answer code.
    pub code: Option<i64>,
}

/// Which lines of a charger's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryKind {
    #[default]
    All,
    /// Answered requests.
    Requests,
    /// Commands and operators' actions.
    Commands,
    /// Connections and disconnections.
    Connections,
    /// Connector status changes.
    Status,
}

impl HistoryKind {
    pub const ALL: [HistoryKind; 5] = [
        HistoryKind::All,
        HistoryKind::Requests,
        HistoryKind::Commands,
        HistoryKind::Connections,
        HistoryKind::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::All => "all",
            HistoryKind::Requests => "requests",
            HistoryKind::Commands => "commands",
            HistoryKind::Connections => "connections",
            HistoryKind::Status => "status",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The event kinds (of `device_events`) it shows; None when it shows none.
    pub fn event_kinds(self) -> Option<&'static [&'static str]> {
        match self {
            HistoryKind::All => Some(&["connected", "disconnected", "online", "status"]),
            HistoryKind::Connections => Some(&["connected", "disconnected", "online"]),
            HistoryKind::Status => Some(&["status"]),
            HistoryKind::Requests | HistoryKind::Commands => None,
        }
    }

    /// Whether it shows answered requests.
    pub fn requests(self) -> bool {
        matches!(self, HistoryKind::All | HistoryKind::Requests)
    }

    /// Whether it shows commands and actions.
    pub fn actions(self) -> bool {
        matches!(self, HistoryKind::All | HistoryKind::Commands)
    }
}

/// What to read of a charger's history: lines of `kind` from `since` through `through`
/// (both inclusive), newest first, at most `limit` of each source.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub kind: HistoryKind,
    pub since: Option<DateTime<Utc>>,
    pub through: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// A device row to insert.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub id: DeviceId,
    pub owner: OwnerId,
    pub connectors: i64,
    pub max_power_w: i64,
    pub password_hash: String,
    pub key_version: i64,
    pub protocol: Protocol,
    pub created_at: DateTime<Utc>,
}

/// An OCPP charger's registration: what its BootNotification is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Never booted (a 2.0.1 station's next boot is Pending while its configuration is
    /// read), or told by an operator to boot as if new.
    Pending,
    /// Booted and accepted.
    Accepted,
    /// Refused by an operator: its boot is Rejected, nothing else it sends is taken, and
    /// nothing is sent to it.
    Rejected,
}

impl Registration {
    /// As stored (`devices.ocpp_registered`).
    pub fn code(self) -> i64 {
        match self {
            Registration::Pending => 0,
            Registration::Accepted => 1,
            Registration::Rejected => 2,
        }
    }

    pub fn from_code(code: i64) -> Registration {
        match code {
            0 => Registration::Pending,
            2 => Registration::Rejected,
            _ => Registration::Accepted,
        }
    }
}

/// What the broker checks a CONNECT against.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    pub owner: OwnerId,
    pub password_hash: String,
    pub key_version: i64,
    /// It speaks envelope v2 only (server commands go to it in v2).
    pub require_v2: bool,
    pub protocol: Protocol,
    /// An OCPP charger's registration (a 2.0.1 station's first boot is Pending).
    pub registration: Registration,
    /// The password a claim or rekey replaced, while it may still repeat that exchange.
    pub superseded: Option<SupersededLogin>,
}

/// A superseded password (see [`super::charging::Superseded`]).
#[derive(Debug, Clone)]
pub struct SupersededLogin {
    pub password_hash: String,
    /// The owner whose topics it used, and the exchange it may repeat.
    pub owner: OwnerId,
    pub endpoint: String,
    pub until: DateTime<Utc>,
}

/// A charger's login that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLogin {
    /// The `<user>` of its topics.
    pub owner: OwnerId,
    /// Set for superseded credentials: the one endpoint whose request it may repeat and
    /// whose answer it may subscribe to (nothing else).
    pub only: Option<String>,
}

/// Settings of a device to change (`None`: leave as it is).
#[derive(Debug, Clone, Default)]
pub struct DeviceSettings {
    pub max_power_w: Option<i64>,
    pub require_v2: Option<bool>,
    /// OCPP chargers only.
    pub registration: Option<Registration>,
}

/// A charger's account on an external broker (Mosquitto's dynamic security).
#[derive(Debug, Clone)]
pub struct BrokerAccount {
    pub device: DeviceId,
    pub owner: OwnerId,
    /// Its credentials version (changes with every rotation, claim and rekey).
    pub version: i64,
    /// Its MQTT password; None when it was made before passwords were derived (then the
    /// charger must be given new credentials before it can use an external broker).
    pub password: Option<crate::secrets::Secret>,
}

/// Where an offer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Waiting for the receiving owner.
    Offered,
    /// Accepted: the code may be entered at the charger.
    Accepted,
    Declined,
    Withdrawn,
    /// The charger has moved.
    Claimed,
    /// Another offer of the same charger was claimed first.
    Void,
    /// Offered or accepted, but past its `expires_at`.
    Expired,
}

impl TransferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferStatus::Offered => "offered",
            TransferStatus::Accepted => "accepted",
            TransferStatus::Declined => "declined",
            TransferStatus::Withdrawn => "withdrawn",
            TransferStatus::Claimed => "claimed",
            TransferStatus::Void => "void",
            TransferStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            TransferStatus::Offered,
            TransferStatus::Accepted,
            TransferStatus::Declined,
            TransferStatus::Withdrawn,
            TransferStatus::Claimed,
            TransferStatus::Void,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// An offer to move a charger to another owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferOffer {
    pub id: String,
    pub device: DeviceId,
    pub from: OwnerId,
    pub to: OwnerId,
    /// As stored (never `Expired`: that is computed, see [`TransferOffer::status_at`]).
    pub status: TransferStatus,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TransferOffer {
    /// The status as of `now`: an open offer past its time is `Expired`.
    pub fn status_at(&self, now: DateTime<Utc>) -> TransferStatus {
        match self.status {
            TransferStatus::Offered | TransferStatus::Accepted if self.expires_at <= now => {
                TransferStatus::Expired
            }
            s => s,
        }
    }
}
