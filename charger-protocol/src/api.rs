//! Every endpoint and command of the charger API as types: the [`Endpoint`] and
//! [`Command`] names, and for each a `*Request` (what the charger sends, the envelope's
//! params) and a `*Response` (the answer body on success). Error answers are
//! [`crate::ErrorBody`] (with `field` on 422).
//!
//! Requests refuse unknown fields, as the server does. Times are RFC 3339 (UTC in
//! answers), energy integer Wh, money decimal strings with the currency's minor digits
//! (`"8.90"`), tag uids hex strings (the server checks their form and answers them
//! upper-case).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Times in answers: RFC 3339, UTC, always with milliseconds (`2026-11-24T18:00:00.000Z`).
pub mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    /// The same for an optional time.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize as _, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => DateTime::parse_from_rfc3339(&text)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(serde::de::Error::custom),
            }
        }
    }
}

/// The endpoints a charger calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Boot,
    Status,
    Authorize,
    SessionStart,
    MeterValues,
    SessionStop,
    TagEnroll,
    OwnershipClaim,
    LocalList,
    Rekey,
    Heartbeat,
    Offline,
}

impl Endpoint {
    /// Every endpoint, in the order of the docs' table.
    pub const ALL: &'static [Endpoint] = &[
        Endpoint::Boot,
        Endpoint::Status,
        Endpoint::Authorize,
        Endpoint::SessionStart,
        Endpoint::MeterValues,
        Endpoint::SessionStop,
        Endpoint::TagEnroll,
        Endpoint::OwnershipClaim,
        Endpoint::LocalList,
        Endpoint::Rekey,
        Endpoint::Heartbeat,
        Endpoint::Offline,
    ];

    /// The name in topics (`<user>/req/<device>/<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Boot => "boot",
            Endpoint::Status => "status",
            Endpoint::Authorize => "authorize",
            Endpoint::SessionStart => "session-start",
            Endpoint::MeterValues => "meter-values",
            Endpoint::SessionStop => "session-stop",
            Endpoint::TagEnroll => "tag-enroll",
            Endpoint::OwnershipClaim => "ownership-claim",
            Endpoint::LocalList => "local-list",
            Endpoint::Rekey => "rekey",
            Endpoint::Heartbeat => "heartbeat",
            Endpoint::Offline => "offline",
        }
    }

    pub fn parse(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.iter().copied().find(|e| e.as_str() == name)
    }
}

/// The commands the server sends a charger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    RemoteStart,
    RemoteStop,
    Unlock,
}

impl Command {
    pub const ALL: &'static [Command] =
        &[Command::RemoteStart, Command::RemoteStop, Command::Unlock];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::RemoteStart => "remote-start",
            Command::RemoteStop => "remote-stop",
            Command::Unlock => "unlock",
        }
    }

    pub fn parse(name: &str) -> Option<Command> {
        Command::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

/// `boot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootRequest {
    pub firmware: String,
    pub model: String,
    pub connectors: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootResponse {
    #[serde(with = "millis")]
    pub server_time: DateTime<Utc>,
    pub heartbeat_s: u64,
    pub owner: String,
    /// The connector count the server uses (the provisioned one).
    pub connectors: i64,
}

/// A connector's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    Available,
    Preparing,
    Charging,
    Suspended,
    Finishing,
    Faulted,
    Unavailable,
}

impl ConnectorState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorState::Available => "available",
            ConnectorState::Preparing => "preparing",
            ConnectorState::Charging => "charging",
            ConnectorState::Suspended => "suspended",
            ConnectorState::Finishing => "finishing",
            ConnectorState::Faulted => "faulted",
            ConnectorState::Unavailable => "unavailable",
        }
    }
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub connector: i64,
    pub state: ConnectorState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An empty answer body (`{}`): `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `authorize`: may `tag` start on `connector`, or (with `session_id` / `local_id`) stop
/// that session?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    pub tag: String,
    pub connector: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
}

/// A tag's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagRole {
    Driver,
    Installer,
}

/// A tag's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagStatus {
    Active,
    Blocked,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),* }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),* }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($text => Ok($ty::$variant),)* other => Err(format!("unknown value {other:?}")) }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(TagRole { Driver => "driver", Installer => "installer" });
text_enum!(TagStatus { Active => "active", Blocked => "blocked" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeResponse {
    pub tag: String,
    /// Always `accepted` (refusals are error answers).
    pub status: String,
    pub role: TagRole,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "millis::option"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The session the tag may stop (when asked about one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<i64>,
}

/// `session-start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionStartRequest {
    pub tag: String,
    pub connector: i64,
    pub meter_start_wh: i64,
    pub started_at: DateTime<Utc>,
    /// A device-made id for a start made offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
}

/// The prices a session is billed by (decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TariffSnapshot {
    /// None when no tariff applies (the session is free, currency `XXX`).
    pub id: Option<String>,
    pub currency: String,
    pub energy_per_kwh: String,
    pub time_per_hour: String,
    pub session_fee: String,
    pub tax_rate: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStartResponse {
    pub session_id: i64,
    pub tariff: TariffSnapshot,
}

/// One meter reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterSample {
    pub at: DateTime<Utc>,
    pub energy_wh: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<i64>,
    /// The current drawn on each of the charger's phases (L1, L2, L3), in whole A.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_a: Option<[u32; 3]>,
}

/// `meter-values` (name the session by `session_id` or `local_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterValuesRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
    pub samples: Vec<MeterSample>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterValuesResponse {
    pub session_id: i64,
    pub energy_wh: i64,
    /// The running bill, session fee included.
    pub net: String,
    pub currency: String,
}

/// Why a session stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Local,
    Remote,
    EvDisconnected,
    Limit,
    PowerLoss,
    Reboot,
    Faulted,
    Other,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Local => "local",
            StopReason::Remote => "remote",
            StopReason::EvDisconnected => "ev_disconnected",
            StopReason::Limit => "limit",
            StopReason::PowerLoss => "power_loss",
            StopReason::Reboot => "reboot",
            StopReason::Faulted => "faulted",
            StopReason::Other => "other",
        }
    }
}

/// `session-stop` (name the session by `session_id` or `local_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionStopRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
    pub meter_stop_wh: i64,
    pub stopped_at: DateTime<Utc>,
    pub reason: StopReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStopResponse {
    pub session_id: i64,
    pub energy_wh: i64,
    /// Whole seconds (the bill uses the exact milliseconds).
    pub duration_s: i64,
    pub net: String,
    pub tax: String,
    pub total: String,
    pub currency: String,
    /// Present (true) when the session is disputed and billed nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disputed: Option<bool>,
}

/// `tag-enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagEnrollRequest {
    pub installer_tag: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagEnrollResponse {
    pub tag: String,
    pub owner: String,
}

/// `ownership-claim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnershipClaimRequest {
    pub code: String,
    /// The charger's one-time X25519 public key, base64.
    #[serde(rename = "pub")]
    pub public: String,
}

/// `rekey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RekeyRequest {
    #[serde(rename = "pub")]
    pub public: String,
}

/// The answer to `ownership-claim` and `rekey` (open with [`crate::KeyExchange::open`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsResponse {
    pub owner: String,
    /// The server's one-time X25519 public key, base64.
    #[serde(rename = "pub")]
    pub public: String,
    /// The sealed `{"password", "key"}`, base64.
    pub credentials: String,
}

/// `local-list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalListRequest {
    pub version: i64,
}

/// A tag as the local list gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalListTag {
    pub tag: String,
    pub role: TagRole,
    pub status: TagStatus,
    pub max_sessions: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "millis::option"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalListResponse {
    pub version: i64,
    pub reset: bool,
    pub more: bool,
    pub tags: Vec<LocalListTag>,
    pub removed: Vec<String>,
}

/// `heartbeat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    #[serde(with = "millis")]
    pub server_time: DateTime<Utc>,
}

/// `offline`: the charger's MQTT will, sent by the broker when its connection is lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineRequest {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineResponse {}

/// Command `remote-start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteStartRequest {
    pub tag: String,
    pub connector: i64,
}

/// Command `remote-stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteStopRequest {
    pub session_id: i64,
}

/// Command `unlock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    pub connector: i64,
}

/// Command `charging-limit` (site load management): the most current the charger may
/// draw on each of its phases, until `lease_s` seconds from now; then `failsafe_a` on each
/// phase, until the next `charging-limit`. Whole amperes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargingLimitRequest {
    /// The connector it applies to; absent: every connector (the charger's default, which
    /// a session started later also keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<i64>,
    /// Per phase of the charger (its L1, L2, L3), in A; 0 pauses charging.
    pub limits_a: [u32; 3],
    pub lease_s: u32,
    pub failsafe_a: u32,
}

/// Whether the charger does what a command asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Accepted,
    Rejected,
}

/// Why a charger refuses a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    Busy,
    NoSession,
    UnknownConnector,
    Faulted,
    Unavailable,
    Other,
}

/// A charger's answer to every command (the REQ on the command's topic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResponse {
    pub status: CommandStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RefusalReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::parse(e.as_str()), Some(*e));
            assert!(crate::endpoint::ENDPOINTS.contains(&e.as_str()));
        }
        assert_eq!(Endpoint::ALL.len(), crate::endpoint::ENDPOINTS.len());
        for c in Command::ALL {
            assert_eq!(Command::parse(c.as_str()), Some(*c));
            assert!(crate::endpoint::COMMANDS.contains(&c.as_str()));
        }
        assert_eq!(Endpoint::parse("teleport"), None);
    }

    #[test]
    fn command_answers_are_only_the_apis() {
        let ok: CommandResponse = serde_json::from_str(r#"{"status":"accepted"}"#).expect("ok");
        assert_eq!(ok.status, CommandStatus::Accepted);
        let no: CommandResponse =
            serde_json::from_str(r#"{"status":"rejected","reason":"busy"}"#).expect("ok");
        assert_eq!(no.reason, Some(RefusalReason::Busy));
        assert!(serde_json::from_str::<CommandResponse>(r#"{"status":"maybe"}"#).is_err());
        assert!(serde_json::from_str::<CommandResponse>(r#"{"status":"accepted","x":1}"#).is_err());
    }
}
