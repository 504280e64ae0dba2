//! OCPP 1.6J messages: the payloads of every CALL the server takes from a charge point and
//! of every CALL it sends (Core, Local Auth List Management, Remote Trigger, Smart
//! Charging), as the OCA JSON schemas define them (`tests/e2e/ocpp_schemas.rs` checks
//! them against the schemas that ship with PyPI's `ocpp` package).
//!
//! Payloads the server receives refuse unknown fields (`additionalProperties: false`);
//! strings are bounded as the schemas bound them ([`CiString`]); times are UTC; charging
//! rates are integer tenths ([`Tenths`]), never floats.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{time, CiString, Tenths};

/// A payload with no fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

// --- Shared types ----------------------------------------------------------------------

wire_enum!(AuthorizationStatus {
    Accepted => "Accepted",
    Blocked => "Blocked",
    Expired => "Expired",
    Invalid => "Invalid",
    ConcurrentTx => "ConcurrentTx",
});

/// What a Central System says of an idTag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdTagInfo {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::option"
    )]
    pub expiry_date: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id_tag: Option<CiString<20>>,
    pub status: AuthorizationStatus,
}

wire_enum!(ReadingContext {
    InterruptionBegin => "Interruption.Begin",
    InterruptionEnd => "Interruption.End",
    SampleClock => "Sample.Clock",
    SamplePeriodic => "Sample.Periodic",
    TransactionBegin => "Transaction.Begin",
    TransactionEnd => "Transaction.End",
    Trigger => "Trigger",
    Other => "Other",
});

wire_enum!(ValueFormat { Raw => "Raw", SignedData => "SignedData" });

wire_enum!(Measurand {
    EnergyActiveExportRegister => "Energy.Active.Export.Register",
    EnergyActiveImportRegister => "Energy.Active.Import.Register",
    EnergyReactiveExportRegister => "Energy.Reactive.Export.Register",
    EnergyReactiveImportRegister => "Energy.Reactive.Import.Register",
    EnergyActiveExportInterval => "Energy.Active.Export.Interval",
    EnergyActiveImportInterval => "Energy.Active.Import.Interval",
    EnergyReactiveExportInterval => "Energy.Reactive.Export.Interval",
    EnergyReactiveImportInterval => "Energy.Reactive.Import.Interval",
    PowerActiveExport => "Power.Active.Export",
    PowerActiveImport => "Power.Active.Import",
    PowerOffered => "Power.Offered",
    PowerReactiveExport => "Power.Reactive.Export",
    PowerReactiveImport => "Power.Reactive.Import",
    PowerFactor => "Power.Factor",
    CurrentImport => "Current.Import",
    CurrentExport => "Current.Export",
    CurrentOffered => "Current.Offered",
    Voltage => "Voltage",
    Frequency => "Frequency",
    Temperature => "Temperature",
    SoC => "SoC",
    Rpm => "RPM",
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
    Cable => "Cable",
    Ev => "EV",
    Inlet => "Inlet",
    Outlet => "Outlet",
    Body => "Body",
});

wire_enum!(UnitOfMeasure {
    Wh => "Wh",
    KWh => "kWh",
    Varh => "varh",
    Kvarh => "kvarh",
    W => "W",
    KW => "kW",
    Va => "VA",
    Kva => "kVA",
    Var => "var",
    Kvar => "kvar",
    A => "A",
    V => "V",
    K => "K",
    Celcius => "Celcius",
    Celsius => "Celsius",
    Fahrenheit => "Fahrenheit",
    Percent => "Percent",
    Hertz => "Hertz",
});

/// One sampled value: a number as text, with what it measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SampledValue {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ReadingContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ValueFormat>,
    /// Default: `Energy.Active.Import.Register`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurand: Option<Measurand>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Default: `Wh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitOfMeasure>,
}

/// The values sampled at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterValue {
    #[serde(with = "time")]
    pub timestamp: DateTime<Utc>,
    pub sampled_value: Vec<SampledValue>,
}

// --- Charge point to Central System ----------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizeRequest {
    pub id_tag: CiString<20>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizeResponse {
    pub id_tag_info: IdTagInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootNotificationRequest {
    pub charge_point_vendor: CiString<20>,
    pub charge_point_model: CiString<20>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_point_serial_number: Option<CiString<25>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_box_serial_number: Option<CiString<25>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<CiString<50>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iccid: Option<CiString<20>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imsi: Option<CiString<20>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_type: Option<CiString<25>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter_serial_number: Option<CiString<25>>,
}

wire_enum!(RegistrationStatus {
    Accepted => "Accepted",
    Pending => "Pending",
    Rejected => "Rejected",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootNotificationResponse {
    pub status: RegistrationStatus,
    #[serde(with = "time")]
    pub current_time: DateTime<Utc>,
    /// Accepted: the heartbeat interval; otherwise how long to wait before booting again.
    pub interval: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataTransferRequest {
    pub vendor_id: CiString<255>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<CiString<50>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

wire_enum!(DataTransferStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    UnknownMessageId => "UnknownMessageId",
    UnknownVendorId => "UnknownVendorId",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataTransferResponse {
    pub status: DataTransferStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

wire_enum!(DiagnosticsStatus {
    Idle => "Idle",
    Uploaded => "Uploaded",
    UploadFailed => "UploadFailed",
    Uploading => "Uploading",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiagnosticsStatusNotificationRequest {
    pub status: DiagnosticsStatus,
}

wire_enum!(FirmwareStatus {
    Downloaded => "Downloaded",
    DownloadFailed => "DownloadFailed",
    Downloading => "Downloading",
    Idle => "Idle",
    InstallationFailed => "InstallationFailed",
    Installing => "Installing",
    Installed => "Installed",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirmwareStatusNotificationRequest {
    pub status: FirmwareStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatResponse {
    #[serde(with = "time")]
    pub current_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterValuesRequest {
    pub connector_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<i64>,
    pub meter_value: Vec<MeterValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTransactionRequest {
    pub connector_id: i64,
    pub id_tag: CiString<20>,
    pub meter_start: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<i64>,
    #[serde(with = "time")]
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTransactionResponse {
    pub id_tag_info: IdTagInfo,
    pub transaction_id: i64,
}

wire_enum!(ChargePointErrorCode {
    ConnectorLockFailure => "ConnectorLockFailure",
    EvCommunicationError => "EVCommunicationError",
    GroundFailure => "GroundFailure",
    HighTemperature => "HighTemperature",
    InternalError => "InternalError",
    LocalListConflict => "LocalListConflict",
    NoError => "NoError",
    OtherError => "OtherError",
    OverCurrentFailure => "OverCurrentFailure",
    PowerMeterFailure => "PowerMeterFailure",
    PowerSwitchFailure => "PowerSwitchFailure",
    ReaderFailure => "ReaderFailure",
    ResetFailure => "ResetFailure",
    UnderVoltage => "UnderVoltage",
    OverVoltage => "OverVoltage",
    WeakSignal => "WeakSignal",
});

wire_enum!(ChargePointStatus {
    Available => "Available",
    Preparing => "Preparing",
    Charging => "Charging",
    SuspendedEvse => "SuspendedEVSE",
    SuspendedEv => "SuspendedEV",
    Finishing => "Finishing",
    Reserved => "Reserved",
    Unavailable => "Unavailable",
    Faulted => "Faulted",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusNotificationRequest {
    pub connector_id: i64,
    pub error_code: ChargePointErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<CiString<50>>,
    pub status: ChargePointStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::option"
    )]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<CiString<255>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_error_code: Option<CiString<50>>,
}

wire_enum!(StopReason {
    EmergencyStop => "EmergencyStop",
    EvDisconnected => "EVDisconnected",
    HardReset => "HardReset",
    Local => "Local",
    Other => "Other",
    PowerLoss => "PowerLoss",
    Reboot => "Reboot",
    Remote => "Remote",
    SoftReset => "SoftReset",
    UnlockCommand => "UnlockCommand",
    DeAuthorized => "DeAuthorized",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopTransactionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tag: Option<CiString<20>>,
    pub meter_stop: i64,
    #[serde(with = "time")]
    pub timestamp: DateTime<Utc>,
    pub transaction_id: i64,
    /// Default: `Local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<StopReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_data: Option<Vec<MeterValue>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopTransactionResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tag_info: Option<IdTagInfo>,
}

/// The 1.6 security extension's `SecurityEventNotification`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityEventNotificationRequest {
    #[serde(rename = "type")]
    pub kind: CiString<50>,
    #[serde(with = "time")]
    pub timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tech_info: Option<CiString<255>>,
}

// --- Central System to charge point ----------------------------------------------------

wire_enum!(AvailabilityType { Inoperative => "Inoperative", Operative => "Operative" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeAvailabilityRequest {
    pub connector_id: i64,
    #[serde(rename = "type")]
    pub kind: AvailabilityType,
}

wire_enum!(AvailabilityStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    Scheduled => "Scheduled",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeAvailabilityResponse {
    pub status: AvailabilityStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeConfigurationRequest {
    pub key: CiString<50>,
    pub value: CiString<500>,
}

wire_enum!(ConfigurationStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    RebootRequired => "RebootRequired",
    NotSupported => "NotSupported",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeConfigurationResponse {
    pub status: ConfigurationStatus,
}

wire_enum!(ClearCacheStatus { Accepted => "Accepted", Rejected => "Rejected" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearCacheResponse {
    pub status: ClearCacheStatus,
}

wire_enum!(ChargingProfilePurpose {
    ChargePointMaxProfile => "ChargePointMaxProfile",
    TxDefaultProfile => "TxDefaultProfile",
    TxProfile => "TxProfile",
});

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearChargingProfileRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile_purpose: Option<ChargingProfilePurpose>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_level: Option<i64>,
}

wire_enum!(ClearChargingProfileStatus { Accepted => "Accepted", Unknown => "Unknown" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearChargingProfileResponse {
    pub status: ClearChargingProfileStatus,
}

wire_enum!(ChargingRateUnit { A => "A", W => "W" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetCompositeScheduleRequest {
    pub connector_id: i64,
    /// Seconds.
    pub duration: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_rate_unit: Option<ChargingRateUnit>,
}

wire_enum!(GetCompositeScheduleStatus { Accepted => "Accepted", Rejected => "Rejected" });

/// One period of a schedule, from `start_period` seconds after its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingSchedulePeriod {
    pub start_period: i64,
    pub limit: Tenths,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_phases: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingSchedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::option"
    )]
    pub start_schedule: Option<DateTime<Utc>>,
    pub charging_rate_unit: ChargingRateUnit,
    pub charging_schedule_period: Vec<ChargingSchedulePeriod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_charging_rate: Option<Tenths>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetCompositeScheduleResponse {
    pub status: GetCompositeScheduleStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::option"
    )]
    pub schedule_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_schedule: Option<ChargingSchedule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetConfigurationRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<CiString<50>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValue {
    pub key: CiString<50>,
    pub readonly: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<CiString<500>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetConfigurationResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_key: Option<Vec<KeyValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_key: Option<Vec<CiString<50>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetLocalListVersionResponse {
    /// -1: the charger keeps no list; 0: its list is empty.
    pub list_version: i64,
}

wire_enum!(ChargingProfileKind {
    Absolute => "Absolute",
    Recurring => "Recurring",
    Relative => "Relative",
});

wire_enum!(RecurrencyKind { Daily => "Daily", Weekly => "Weekly" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingProfile {
    pub charging_profile_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<i64>,
    pub stack_level: i64,
    pub charging_profile_purpose: ChargingProfilePurpose,
    pub charging_profile_kind: ChargingProfileKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrency_kind: Option<RecurrencyKind>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::option"
    )]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::option"
    )]
    pub valid_to: Option<DateTime<Utc>>,
    pub charging_schedule: ChargingSchedule,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStartTransactionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
    pub id_tag: CiString<20>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charging_profile: Option<ChargingProfile>,
}

wire_enum!(RemoteStartStopStatus { Accepted => "Accepted", Rejected => "Rejected" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStartTransactionResponse {
    pub status: RemoteStartStopStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStopTransactionRequest {
    pub transaction_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStopTransactionResponse {
    pub status: RemoteStartStopStatus,
}

wire_enum!(ResetType { Hard => "Hard", Soft => "Soft" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetRequest {
    #[serde(rename = "type")]
    pub kind: ResetType,
}

wire_enum!(ResetStatus { Accepted => "Accepted", Rejected => "Rejected" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetResponse {
    pub status: ResetStatus,
}

wire_enum!(UpdateType { Differential => "Differential", Full => "Full" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationData {
    pub id_tag: CiString<20>,
    /// Absent in a differential update: remove the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_tag_info: Option<IdTagInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendLocalListRequest {
    pub list_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_authorization_list: Option<Vec<AuthorizationData>>,
    pub update_type: UpdateType,
}

wire_enum!(UpdateStatus {
    Accepted => "Accepted",
    Failed => "Failed",
    NotSupported => "NotSupported",
    VersionMismatch => "VersionMismatch",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendLocalListResponse {
    pub status: UpdateStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetChargingProfileRequest {
    pub connector_id: i64,
    pub cs_charging_profiles: ChargingProfile,
}

wire_enum!(ChargingProfileStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    NotSupported => "NotSupported",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetChargingProfileResponse {
    pub status: ChargingProfileStatus,
}

wire_enum!(MessageTrigger {
    BootNotification => "BootNotification",
    DiagnosticsStatusNotification => "DiagnosticsStatusNotification",
    FirmwareStatusNotification => "FirmwareStatusNotification",
    Heartbeat => "Heartbeat",
    MeterValues => "MeterValues",
    StatusNotification => "StatusNotification",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerMessageRequest {
    pub requested_message: MessageTrigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
}

wire_enum!(TriggerMessageStatus {
    Accepted => "Accepted",
    Rejected => "Rejected",
    NotImplemented => "NotImplemented",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerMessageResponse {
    pub status: TriggerMessageStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnlockConnectorRequest {
    pub connector_id: i64,
}

wire_enum!(UnlockStatus {
    Unlocked => "Unlocked",
    UnlockFailed => "UnlockFailed",
    NotSupported => "NotSupported",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnlockConnectorResponse {
    pub status: UnlockStatus,
}

/// The actions a charge point sends, and whether the server takes them.
pub const CHARGE_POINT_ACTIONS: &[(&str, bool)] = &[
    ("Authorize", true),
    ("BootNotification", true),
    ("DataTransfer", true),
    ("DiagnosticsStatusNotification", true),
    ("FirmwareStatusNotification", true),
    ("Heartbeat", true),
    ("MeterValues", true),
    ("StartTransaction", true),
    ("StatusNotification", true),
    ("StopTransaction", true),
    ("SecurityEventNotification", true),
    // The security extension's certificate and log messages: known, not supported.
    ("SignCertificate", false),
    ("LogStatusNotification", false),
    ("SignedFirmwareStatusNotification", false),
];

/// The actions the server sends (as REST commands).
pub const CENTRAL_SYSTEM_ACTIONS: &[&str] = &[
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetLocalListVersion",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "TriggerMessage",
    "UnlockConnector",
];
