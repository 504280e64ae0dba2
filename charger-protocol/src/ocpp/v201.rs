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

use super::{time, CiString, Decimal, Items, NonEmpty, Tenths};

/// A vendor's extension of any object: its `vendorId` and whatever the vendor adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomData {
    pub vendor_id: CiString<255>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

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
    pub additional_info: Option<NonEmpty<AdditionalInfo>>,
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
    pub evse_id: Option<NonEmpty<i64>>,
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
    pub sampled_value: NonEmpty<SampledValue>,
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
    pub iso15118_certificate_hash_data: Option<Items<OcspRequestData, 1, 4>>,
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
    pub meter_value: Option<NonEmpty<MeterValue>>,
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
    pub meter_value: NonEmpty<MeterValue>,
}

// --- The device model: NotifyReport ------------------------------------------------------

wire_enum!(AttributeKind {
    Actual => "Actual",
    Target => "Target",
    MinSet => "MinSet",
    MaxSet => "MaxSet",
});

wire_enum!(Mutability { ReadOnly => "ReadOnly", WriteOnly => "WriteOnly", ReadWrite => "ReadWrite" });

wire_enum!(DataKind {
    String => "string",
    Decimal => "decimal",
    Integer => "integer",
    DateTime => "dateTime",
    Boolean => "boolean",
    OptionList => "OptionList",
    SequenceList => "SequenceList",
    MemberList => "MemberList",
});

/// A part of the station (a controller, an EVSE, a connector...), maybe on one EVSE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Component {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse: Option<Evse>,
    pub name: CiString<50>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<CiString<50>>,
}

/// A variable of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub name: CiString<50>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<CiString<50>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariableAttribute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    /// `Actual` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<AttributeKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<CiString<2500>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutability: Option<Mutability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constant: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariableCharacteristics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<CiString<16>>,
    pub data_type: DataKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_limit: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_limit: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_list: Option<CiString<1000>>,
    pub supports_monitoring: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub component: Component,
    pub variable: Variable,
    pub variable_attribute: Items<VariableAttribute, 1, 4>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable_characteristics: Option<VariableCharacteristics>,
}

/// One part of a report (`tbc`: more parts follow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyReportRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub request_id: i64,
    #[serde(with = "time")]
    pub generated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_data: Option<NonEmpty<ReportData>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tbc: Option<bool>,
    pub seq_no: i64,
}

// --- What the CSMS sends (the REST commands) ------------------------------------------------

/// The many answers that are a status and maybe why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusResponse<S> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub status: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_info: Option<StatusInfo>,
}

wire_enum!(ResetKind { Immediate => "Immediate", OnIdle => "OnIdle" });
wire_enum!(ResetStatus { Accepted => "Accepted", Rejected => "Rejected", Scheduled => "Scheduled" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(rename = "type")]
    pub kind: ResetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_id: Option<i64>,
}

wire_enum!(OperationalStatus { Inoperative => "Inoperative", Operative => "Operative" });
wire_enum!(ChangeAvailabilityStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    Scheduled => "Scheduled",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeAvailabilityRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse: Option<Evse>,
    pub operational_status: OperationalStatus,
}

wire_enum!(MessageTrigger {
    BootNotification => "BootNotification",
    LogStatusNotification => "LogStatusNotification",
    FirmwareStatusNotification => "FirmwareStatusNotification",
    Heartbeat => "Heartbeat",
    MeterValues => "MeterValues",
    SignChargingStationCertificate => "SignChargingStationCertificate",
    SignV2gCertificate => "SignV2GCertificate",
    StatusNotification => "StatusNotification",
    TransactionEvent => "TransactionEvent",
    SignCombinedCertificate => "SignCombinedCertificate",
    PublishFirmwareStatusNotification => "PublishFirmwareStatusNotification",
});
wire_enum!(TriggerMessageStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    NotImplemented => "NotImplemented",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerMessageRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse: Option<Evse>,
    pub requested_message: MessageTrigger,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetVariableData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_type: Option<AttributeKind>,
    pub component: Component,
    pub variable: Variable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetVariablesRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub get_variable_data: NonEmpty<GetVariableData>,
}

wire_enum!(GetVariableStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    UnknownComponent => "UnknownComponent",
    UnknownVariable => "UnknownVariable",
    NotSupportedAttributeType => "NotSupportedAttributeType",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetVariableResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_status_info: Option<StatusInfo>,
    pub attribute_status: GetVariableStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_type: Option<AttributeKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_value: Option<CiString<2500>>,
    pub component: Component,
    pub variable: Variable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetVariablesResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub get_variable_result: NonEmpty<GetVariableResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetVariableData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_type: Option<AttributeKind>,
    pub attribute_value: CiString<1000>,
    pub component: Component,
    pub variable: Variable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetVariablesRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub set_variable_data: NonEmpty<SetVariableData>,
}

wire_enum!(SetVariableStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    UnknownComponent => "UnknownComponent",
    UnknownVariable => "UnknownVariable",
    NotSupportedAttributeType => "NotSupportedAttributeType",
    RebootRequired => "RebootRequired",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetVariableResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_type: Option<AttributeKind>,
    pub attribute_status: SetVariableStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_status_info: Option<StatusInfo>,
    pub component: Component,
    pub variable: Variable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetVariablesResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub set_variable_result: NonEmpty<SetVariableResult>,
}

wire_enum!(ReportBase {
    ConfigurationInventory => "ConfigurationInventory",
    FullInventory => "FullInventory",
    SummaryInventory => "SummaryInventory",
});
wire_enum!(DeviceModelStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    NotSupported => "NotSupported",
    EmptyResultSet => "EmptyResultSet",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetBaseReportRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub request_id: i64,
    pub report_base: ReportBase,
}

wire_enum!(AcceptedRejected { Accepted => "Accepted", Rejected => "Rejected" });
wire_enum!(SendLocalListStatus {
    Accepted => "Accepted",
    Failed => "Failed",
    VersionMismatch => "VersionMismatch",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetLocalListVersionResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub version_number: i64,
}

wire_enum!(ChargingProfileKind { Absolute => "Absolute", Recurring => "Recurring", Relative => "Relative" });
wire_enum!(ChargingProfilePurpose {
    ChargingStationExternalConstraints => "ChargingStationExternalConstraints",
    ChargingStationMaxProfile => "ChargingStationMaxProfile",
    TxDefaultProfile => "TxDefaultProfile",
    TxProfile => "TxProfile",
});
wire_enum!(ChargingRateUnit { W => "W", A => "A" });
wire_enum!(RecurrencyKind { Daily => "Daily", Weekly => "Weekly" });
wire_enum!(CostKind {
    CarbonDioxideEmission => "CarbonDioxideEmission",
    RelativePricePercentage => "RelativePricePercentage",
    RenewableGenerationPercentage => "RenewableGenerationPercentage",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingSchedulePeriod {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    /// Seconds from the schedule's start.
    pub start_period: i64,
    /// In the schedule's unit (A or W), with one decimal at most.
    pub limit: Tenths,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_phases: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_to_use: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelativeTimeInterval {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub start: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub cost_kind: CostKind,
    pub amount: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_multiplier: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumptionCost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub start_value: Decimal,
    pub cost: Items<Cost, 1, 3>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SalesTariffEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub relative_time_interval: RelativeTimeInterval,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_price_level: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumption_cost: Option<Items<ConsumptionCost, 1, 3>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SalesTariff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_tariff_description: Option<CiString<32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_e_price_levels: Option<i64>,
    pub sales_tariff_entry: Items<SalesTariffEntry, 1, 1024>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingSchedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub id: i64,
    #[serde(
        default,
        with = "time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_schedule: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    pub charging_rate_unit: ChargingRateUnit,
    pub charging_schedule_period: Items<ChargingSchedulePeriod, 1, 1024>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_charging_rate: Option<Tenths>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_tariff: Option<SalesTariff>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub id: i64,
    pub stack_level: i64,
    pub charging_profile_purpose: ChargingProfilePurpose,
    pub charging_profile_kind: ChargingProfileKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrency_kind: Option<RecurrencyKind>,
    #[serde(
        default,
        with = "time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(
        default,
        with = "time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_to: Option<DateTime<Utc>>,
    pub charging_schedule: Items<ChargingSchedule, 1, 3>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<CiString<36>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetChargingProfileRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub evse_id: i64,
    pub charging_profile: ChargingProfile,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearChargingProfileCriteria {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile_purpose: Option<ChargingProfilePurpose>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_level: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearChargingProfileRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile_criteria: Option<ClearChargingProfileCriteria>,
}

wire_enum!(ClearChargingProfileStatus { Accepted => "Accepted", Unknown => "Unknown" });
wire_enum!(ChargingLimitSource { Ems => "EMS", Other => "Other", So => "SO", Cso => "CSO" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingProfileCriterion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile_purpose: Option<ChargingProfilePurpose>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_level: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile_id: Option<NonEmpty<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_limit_source: Option<Items<ChargingLimitSource, 1, 4>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetChargingProfilesRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub request_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_id: Option<i64>,
    pub charging_profile: ChargingProfileCriterion,
}

wire_enum!(GetChargingProfileStatus { Accepted => "Accepted", NoProfiles => "NoProfiles" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetCompositeScheduleRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub duration: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_rate_unit: Option<ChargingRateUnit>,
    pub evse_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompositeSchedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub charging_schedule_period: NonEmpty<ChargingSchedulePeriod>,
    pub evse_id: i64,
    pub duration: i64,
    #[serde(with = "time")]
    pub schedule_start: DateTime<Utc>,
    pub charging_rate_unit: ChargingRateUnit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetCompositeScheduleResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub status: AcceptedRejected,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_info: Option<StatusInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<CompositeSchedule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetTransactionStatusRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<CiString<36>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetTransactionStatusResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ongoing_indicator: Option<bool>,
    pub messages_in_queue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestStartTransactionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evse_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id_token: Option<IdToken>,
    pub id_token: IdToken,
    pub remote_start_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile: Option<ChargingProfile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestStartTransactionResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub status: AcceptedRejected,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_info: Option<StatusInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<CiString<36>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestStopTransactionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub transaction_id: CiString<36>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnlockConnectorRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    pub evse_id: i64,
    pub connector_id: i64,
}

wire_enum!(UnlockStatus {
    Unlocked => "Unlocked",
    UnlockFailed => "UnlockFailed",
    OngoingAuthorizedTransaction => "OngoingAuthorizedTransaction",
    UnknownConnector => "UnknownConnector",
});
