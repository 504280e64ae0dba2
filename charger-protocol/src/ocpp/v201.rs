//! OCPP 2.0.1: the payloads of the Core messages a charging station sends (and their
//! answers), as the OCA JSON schemas define them (`tests/e2e/ocpp_schemas.rs` checks them
//! against the schemas that ship with PyPI's `ocpp` package).
//!
//! Every object may carry `customData` (a vendor's extension, kept as it came); unknown
//! fields are refused; strings are bounded as the schemas bound them; times are UTC;
//! sampled values are exact decimals ([`Decimal`]), never floats.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{time, CiString, Decimal};

/// A vendor's extension of any object (`vendorId` and whatever the vendor adds).
pub type CustomData = Value;

/// A payload with no fields but `customData`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Empty {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
}

// --- Shared types ----------------------------------------------------------------------

wire_enum!(IdTokenKind {
    Central => "Central",
    EMaid => "eMAID",
    Iso14443 => "ISO14443",
    Iso15693 => "ISO15693",
    KeyCode => "KeyCode",
    Local => "Local",
    MacAddress => "MacAddress",
    NoAuthorization => "NoAuthorization",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdditionalInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub additional_id_token: CiString<36>,
    #[serde(rename = "type")]
    pub kind: CiString<50>,
}

/// An identifier of a driver (an RFID card's uid, a key code, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<Vec<AdditionalInfo>>,
    pub id_token: CiString<36>,
    #[serde(rename = "type")]
    pub kind: IdTokenKind,
}

wire_enum!(AuthorizationStatus {
    Accepted => "Accepted",
    Blocked => "Blocked",
    ConcurrentTx => "ConcurrentTx",
    Expired => "Expired",
    Invalid => "Invalid",
    NoCredit => "NoCredit",
    NotAllowedTypeEvse => "NotAllowedTypeEVSE",
    NotAtThisLocation => "NotAtThisLocation",
    NotAtThisTime => "NotAtThisTime",
    Unknown => "Unknown",
});

wire_enum!(MessageFormat { Ascii => "ASCII", Html => "HTML", Uri => "URI", Utf8 => "UTF8" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub format: MessageFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<CiString<8>>,
    pub content: CiString<512>,
}

/// What the CSMS says of an idToken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdTokenInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub status: AuthorizationStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::option"
    )]
    pub cache_expiry_date_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language1: Option<CiString<8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_id: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id_token: Option<IdToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language2: Option<CiString<8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_message: Option<MessageContent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub reason_code: CiString<20>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<CiString<512>>,
}

/// An EVSE, and maybe one of its connectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Evse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
}

wire_enum!(ReadingContext {
    InterruptionBegin => "Interruption.Begin",
    InterruptionEnd => "Interruption.End",
    Other => "Other",
    SampleClock => "Sample.Clock",
    SamplePeriodic => "Sample.Periodic",
    TransactionBegin => "Transaction.Begin",
    TransactionEnd => "Transaction.End",
    Trigger => "Trigger",
});

wire_enum!(Measurand {
    CurrentExport => "Current.Export",
    CurrentImport => "Current.Import",
    CurrentOffered => "Current.Offered",
    EnergyActiveExportRegister => "Energy.Active.Export.Register",
    EnergyActiveImportRegister => "Energy.Active.Import.Register",
    EnergyReactiveExportRegister => "Energy.Reactive.Export.Register",
    EnergyReactiveImportRegister => "Energy.Reactive.Import.Register",
    EnergyActiveExportInterval => "Energy.Active.Export.Interval",
    EnergyActiveImportInterval => "Energy.Active.Import.Interval",
    EnergyActiveNet => "Energy.Active.Net",
    EnergyReactiveExportInterval => "Energy.Reactive.Export.Interval",
    EnergyReactiveImportInterval => "Energy.Reactive.Import.Interval",
    EnergyReactiveNet => "Energy.Reactive.Net",
    EnergyApparentNet => "Energy.Apparent.Net",
    EnergyApparentImport => "Energy.Apparent.Import",
    EnergyApparentExport => "Energy.Apparent.Export",
    Frequency => "Frequency",
    PowerActiveExport => "Power.Active.Export",
    PowerActiveImport => "Power.Active.Import",
    PowerFactor => "Power.Factor",
    PowerOffered => "Power.Offered",
    PowerReactiveExport => "Power.Reactive.Export",
    PowerReactiveImport => "Power.Reactive.Import",
    SoC => "SoC",
    Voltage => "Voltage",
});

wire_enum!(Phase {
    L1 => "L1",
    L2 => "L2",
    L3 => "L3",
    N => "N",
    L1N => "L1-N",
    L2N => "L2-N",
    L3N => "L3-N",
    L1L2 => "L1-L2",
    L2L3 => "L2-L3",
    L3L1 => "L3-L1",
});

wire_enum!(Location {
    Body => "Body",
    Cable => "Cable",
    Ev => "EV",
    Inlet => "Inlet",
    Outlet => "Outlet",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedMeterValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub signed_meter_data: CiString<2500>,
    pub signing_method: CiString<50>,
    pub encoding_method: CiString<50>,
    pub public_key: CiString<2500>,
}

/// A unit and a power of ten (`multiplier`): the value times 10^multiplier, in `unit`
/// (default `Wh`, multiplier 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitOfMeasure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<CiString<20>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<i64>,
}

/// One sampled value: an exact decimal, with what it measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SampledValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub value: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ReadingContext>,
    /// Default: `Energy.Active.Import.Register`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurand: Option<Measurand>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_meter_value: Option<SignedMeterValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_of_measure: Option<UnitOfMeasure>,
}

/// The values sampled at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub sampled_value: Vec<SampledValue>,
    #[serde(with = "time")]
    pub timestamp: DateTime<Utc>,
}

// --- Charging station to CSMS ----------------------------------------------------------

wire_enum!(BootReason {
    ApplicationReset => "ApplicationReset",
    FirmwareUpdate => "FirmwareUpdate",
    LocalReset => "LocalReset",
    PowerUp => "PowerUp",
    RemoteReset => "RemoteReset",
    ScheduledReset => "ScheduledReset",
    Triggered => "Triggered",
    Unknown => "Unknown",
    Watchdog => "Watchdog",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Modem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iccid: Option<CiString<20>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imsi: Option<CiString<20>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingStation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<CiString<25>>,
    pub model: CiString<20>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modem: Option<Modem>,
    pub vendor_name: CiString<50>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<CiString<50>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootNotificationRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub charging_station: ChargingStation,
    pub reason: BootReason,
}

wire_enum!(RegistrationStatus {
    Accepted => "Accepted",
    Pending => "Pending",
    Rejected => "Rejected",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootNotificationResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(with = "time")]
    pub current_time: DateTime<Utc>,
    pub interval: i64,
    pub status: RegistrationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_info: Option<StatusInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(with = "time")]
    pub current_time: DateTime<Utc>,
}

wire_enum!(ConnectorStatus {
    Available => "Available",
    Occupied => "Occupied",
    Reserved => "Reserved",
    Unavailable => "Unavailable",
    Faulted => "Faulted",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusNotificationRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(with = "time")]
    pub timestamp: DateTime<Utc>,
    pub connector_status: ConnectorStatus,
    pub evse_id: i64,
    pub connector_id: i64,
}

wire_enum!(HashAlgorithm { Sha256 => "SHA256", Sha384 => "SHA384", Sha512 => "SHA512" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OcspRequestData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub hash_algorithm: HashAlgorithm,
    pub issuer_name_hash: CiString<128>,
    pub issuer_key_hash: CiString<128>,
    pub serial_number: CiString<40>,
    #[serde(rename = "responderURL")]
    pub responder_url: CiString<512>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub id_token: IdToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CiString<5500>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso15118_certificate_hash_data: Option<Vec<OcspRequestData>>,
}

wire_enum!(AuthorizeCertificateStatus {
    Accepted => "Accepted",
    SignatureError => "SignatureError",
    CertificateExpired => "CertificateExpired",
    CertificateRevoked => "CertificateRevoked",
    NoCertificateAvailable => "NoCertificateAvailable",
    CertChainError => "CertChainError",
    ContractCancelled => "ContractCancelled",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizeResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub id_token_info: IdTokenInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_status: Option<AuthorizeCertificateStatus>,
}

wire_enum!(TransactionEventKind {
    Ended => "Ended",
    Started => "Started",
    Updated => "Updated",
});

wire_enum!(TriggerReason {
    Authorized => "Authorized",
    CablePluggedIn => "CablePluggedIn",
    ChargingRateChanged => "ChargingRateChanged",
    ChargingStateChanged => "ChargingStateChanged",
    Deauthorized => "Deauthorized",
    EnergyLimitReached => "EnergyLimitReached",
    EvCommunicationLost => "EVCommunicationLost",
    EvConnectTimeout => "EVConnectTimeout",
    MeterValueClock => "MeterValueClock",
    MeterValuePeriodic => "MeterValuePeriodic",
    TimeLimitReached => "TimeLimitReached",
    Trigger => "Trigger",
    UnlockCommand => "UnlockCommand",
    StopAuthorized => "StopAuthorized",
    EvDeparted => "EVDeparted",
    EvDetected => "EVDetected",
    RemoteStop => "RemoteStop",
    RemoteStart => "RemoteStart",
    AbnormalCondition => "AbnormalCondition",
    SignedDataReceived => "SignedDataReceived",
    ResetCommand => "ResetCommand",
});

wire_enum!(ChargingState {
    Charging => "Charging",
    EvConnected => "EVConnected",
    SuspendedEv => "SuspendedEV",
    SuspendedEvse => "SuspendedEVSE",
    Idle => "Idle",
});

wire_enum!(StoppedReason {
    DeAuthorized => "DeAuthorized",
    EmergencyStop => "EmergencyStop",
    EnergyLimitReached => "EnergyLimitReached",
    EvDisconnected => "EVDisconnected",
    GroundFault => "GroundFault",
    ImmediateReset => "ImmediateReset",
    Local => "Local",
    LocalOutOfCredit => "LocalOutOfCredit",
    MasterPass => "MasterPass",
    Other => "Other",
    OvercurrentFault => "OvercurrentFault",
    PowerLoss => "PowerLoss",
    PowerQuality => "PowerQuality",
    Reboot => "Reboot",
    Remote => "Remote",
    SocLimitReached => "SOCLimitReached",
    StoppedByEv => "StoppedByEV",
    TimeLimitReached => "TimeLimitReached",
    Timeout => "Timeout",
});

/// What a TransactionEvent says of its transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transaction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    /// The station's own id of the transaction.
    pub transaction_id: CiString<36>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_state: Option<ChargingState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_spent_charging: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<StoppedReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_start_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransactionEventRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub event_type: TransactionEventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_value: Option<Vec<MeterValue>>,
    #[serde(with = "time")]
    pub timestamp: DateTime<Utc>,
    pub trigger_reason: TriggerReason,
    pub seq_no: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_phases_used: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cable_max_current: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<i64>,
    pub transaction_info: Transaction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse: Option<Evse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<IdToken>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransactionEventResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    /// The running (or final) cost, in the tariff's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_info: Option<IdTokenInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_personal_message: Option<MessageContent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterValuesRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub evse_id: i64,
    pub meter_value: Vec<MeterValue>,
}
