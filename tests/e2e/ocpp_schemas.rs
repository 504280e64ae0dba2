//! Our OCPP 1.6J and 2.0.1 wire types against the OCA JSON schemas that ship inside PyPI's `ocpp`
//! package (read from the installed package, never copied into the repository). For every
//! message: an instance with every property, one with only the required ones, and one per
//! value of each enum (made from the schema by `tests/ocpp/schema_instances.py`) must parse
//! into our type, and what our type writes back must validate against the schema; an
//! instance without one of its required properties must be refused.

use std::process::Command;

use charger_e2e::ocpp::{python, script};
use charger_protocol::ocpp::{v16, v201};
use serde_json::Value;

/// Parses `value` as `T` and writes it back.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    value: &Value,
) -> Result<Value, String> {
    let typed: T = charger_protocol::ocpp::payload(value).map_err(|e| e.description)?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

type RoundTrip = fn(&Value) -> Result<Value, String>;

/// Every 1.6 message the server reads or writes, by its schema's name.
fn v16_types() -> Vec<(&'static str, RoundTrip)> {
    vec![
        ("Authorize", round_trip::<v16::AuthorizeRequest>),
        ("AuthorizeResponse", round_trip::<v16::AuthorizeResponse>),
        (
            "BootNotification",
            round_trip::<v16::BootNotificationRequest>,
        ),
        (
            "BootNotificationResponse",
            round_trip::<v16::BootNotificationResponse>,
        ),
        ("DataTransfer", round_trip::<v16::DataTransferRequest>),
        (
            "DataTransferResponse",
            round_trip::<v16::DataTransferResponse>,
        ),
        (
            "DiagnosticsStatusNotification",
            round_trip::<v16::DiagnosticsStatusNotificationRequest>,
        ),
        (
            "DiagnosticsStatusNotificationResponse",
            round_trip::<v16::Empty>,
        ),
        (
            "FirmwareStatusNotification",
            round_trip::<v16::FirmwareStatusNotificationRequest>,
        ),
        (
            "FirmwareStatusNotificationResponse",
            round_trip::<v16::Empty>,
        ),
        ("Heartbeat", round_trip::<v16::Empty>),
        ("HeartbeatResponse", round_trip::<v16::HeartbeatResponse>),
        ("MeterValues", round_trip::<v16::MeterValuesRequest>),
        ("MeterValuesResponse", round_trip::<v16::Empty>),
        (
            "StartTransaction",
            round_trip::<v16::StartTransactionRequest>,
        ),
        (
            "StartTransactionResponse",
            round_trip::<v16::StartTransactionResponse>,
        ),
        (
            "StatusNotification",
            round_trip::<v16::StatusNotificationRequest>,
        ),
        ("StatusNotificationResponse", round_trip::<v16::Empty>),
        ("StopTransaction", round_trip::<v16::StopTransactionRequest>),
        (
            "StopTransactionResponse",
            round_trip::<v16::StopTransactionResponse>,
        ),
        (
            "SecurityEventNotification",
            round_trip::<v16::SecurityEventNotificationRequest>,
        ),
        (
            "SecurityEventNotificationResponse",
            round_trip::<v16::Empty>,
        ),
        (
            "ChangeAvailability",
            round_trip::<v16::ChangeAvailabilityRequest>,
        ),
        (
            "ChangeAvailabilityResponse",
            round_trip::<v16::ChangeAvailabilityResponse>,
        ),
        (
            "ChangeConfiguration",
            round_trip::<v16::ChangeConfigurationRequest>,
        ),
        (
            "ChangeConfigurationResponse",
            round_trip::<v16::ChangeConfigurationResponse>,
        ),
        ("ClearCache", round_trip::<v16::Empty>),
        ("ClearCacheResponse", round_trip::<v16::ClearCacheResponse>),
        (
            "ClearChargingProfile",
            round_trip::<v16::ClearChargingProfileRequest>,
        ),
        (
            "ClearChargingProfileResponse",
            round_trip::<v16::ClearChargingProfileResponse>,
        ),
        (
            "GetCompositeSchedule",
            round_trip::<v16::GetCompositeScheduleRequest>,
        ),
        (
            "GetCompositeScheduleResponse",
            round_trip::<v16::GetCompositeScheduleResponse>,
        ),
        (
            "GetConfiguration",
            round_trip::<v16::GetConfigurationRequest>,
        ),
        (
            "GetConfigurationResponse",
            round_trip::<v16::GetConfigurationResponse>,
        ),
        ("GetLocalListVersion", round_trip::<v16::Empty>),
        (
            "GetLocalListVersionResponse",
            round_trip::<v16::GetLocalListVersionResponse>,
        ),
        (
            "RemoteStartTransaction",
            round_trip::<v16::RemoteStartTransactionRequest>,
        ),
        (
            "RemoteStartTransactionResponse",
            round_trip::<v16::RemoteStartTransactionResponse>,
        ),
        (
            "RemoteStopTransaction",
            round_trip::<v16::RemoteStopTransactionRequest>,
        ),
        (
            "RemoteStopTransactionResponse",
            round_trip::<v16::RemoteStopTransactionResponse>,
        ),
        ("Reset", round_trip::<v16::ResetRequest>),
        ("ResetResponse", round_trip::<v16::ResetResponse>),
        ("SendLocalList", round_trip::<v16::SendLocalListRequest>),
        (
            "SendLocalListResponse",
            round_trip::<v16::SendLocalListResponse>,
        ),
        (
            "SetChargingProfile",
            round_trip::<v16::SetChargingProfileRequest>,
        ),
        (
            "SetChargingProfileResponse",
            round_trip::<v16::SetChargingProfileResponse>,
        ),
        ("TriggerMessage", round_trip::<v16::TriggerMessageRequest>),
        (
            "TriggerMessageResponse",
            round_trip::<v16::TriggerMessageResponse>,
        ),
        ("UnlockConnector", round_trip::<v16::UnlockConnectorRequest>),
        (
            "UnlockConnectorResponse",
            round_trip::<v16::UnlockConnectorResponse>,
        ),
    ]
}

#[test]
fn ocpp16_types_match_the_oca_schemas() {
    check("v16", "1.6", &v16_types());
}

/// Every 2.0.1 message the server reads or writes, by its schema's name.
fn v201_types() -> Vec<(&'static str, RoundTrip)> {
    vec![
        (
            "BootNotificationRequest",
            round_trip::<v201::BootNotificationRequest>,
        ),
        (
            "BootNotificationResponse",
            round_trip::<v201::BootNotificationResponse>,
        ),
        ("HeartbeatRequest", round_trip::<v201::Empty>),
        ("HeartbeatResponse", round_trip::<v201::HeartbeatResponse>),
        (
            "StatusNotificationRequest",
            round_trip::<v201::StatusNotificationRequest>,
        ),
        ("StatusNotificationResponse", round_trip::<v201::Empty>),
        ("AuthorizeRequest", round_trip::<v201::AuthorizeRequest>),
        ("AuthorizeResponse", round_trip::<v201::AuthorizeResponse>),
        (
            "TransactionEventRequest",
            round_trip::<v201::TransactionEventRequest>,
        ),
        (
            "TransactionEventResponse",
            round_trip::<v201::TransactionEventResponse>,
        ),
        ("MeterValuesRequest", round_trip::<v201::MeterValuesRequest>),
        ("MeterValuesResponse", round_trip::<v201::Empty>),
        (
            "NotifyReportRequest",
            round_trip::<v201::NotifyReportRequest>,
        ),
        ("NotifyReportResponse", round_trip::<v201::Empty>),
        ("ResetRequest", round_trip::<v201::ResetRequest>),
        (
            "ResetResponse",
            round_trip::<v201::StatusResponse<v201::ResetStatus>>,
        ),
        (
            "ChangeAvailabilityRequest",
            round_trip::<v201::ChangeAvailabilityRequest>,
        ),
        (
            "ChangeAvailabilityResponse",
            round_trip::<v201::StatusResponse<v201::ChangeAvailabilityStatus>>,
        ),
        (
            "TriggerMessageRequest",
            round_trip::<v201::TriggerMessageRequest>,
        ),
        (
            "TriggerMessageResponse",
            round_trip::<v201::StatusResponse<v201::TriggerMessageStatus>>,
        ),
        (
            "GetVariablesRequest",
            round_trip::<v201::GetVariablesRequest>,
        ),
        (
            "GetVariablesResponse",
            round_trip::<v201::GetVariablesResponse>,
        ),
        (
            "SetVariablesRequest",
            round_trip::<v201::SetVariablesRequest>,
        ),
        (
            "SetVariablesResponse",
            round_trip::<v201::SetVariablesResponse>,
        ),
        (
            "GetBaseReportRequest",
            round_trip::<v201::GetBaseReportRequest>,
        ),
        (
            "GetBaseReportResponse",
            round_trip::<v201::StatusResponse<v201::DeviceModelStatus>>,
        ),
        ("ClearCacheRequest", round_trip::<v201::Empty>),
        (
            "ClearCacheResponse",
            round_trip::<v201::StatusResponse<v201::AcceptedRejected>>,
        ),
        ("GetLocalListVersionRequest", round_trip::<v201::Empty>),
        (
            "GetLocalListVersionResponse",
            round_trip::<v201::GetLocalListVersionResponse>,
        ),
        (
            "SetChargingProfileRequest",
            round_trip::<v201::SetChargingProfileRequest>,
        ),
        (
            "SetChargingProfileResponse",
            round_trip::<v201::StatusResponse<v201::AcceptedRejected>>,
        ),
        (
            "ClearChargingProfileRequest",
            round_trip::<v201::ClearChargingProfileRequest>,
        ),
        (
            "ClearChargingProfileResponse",
            round_trip::<v201::StatusResponse<v201::ClearChargingProfileStatus>>,
        ),
        (
            "GetChargingProfilesRequest",
            round_trip::<v201::GetChargingProfilesRequest>,
        ),
        (
            "GetChargingProfilesResponse",
            round_trip::<v201::StatusResponse<v201::GetChargingProfileStatus>>,
        ),
        (
            "GetCompositeScheduleRequest",
            round_trip::<v201::GetCompositeScheduleRequest>,
        ),
        (
            "GetCompositeScheduleResponse",
            round_trip::<v201::GetCompositeScheduleResponse>,
        ),
        (
            "GetTransactionStatusRequest",
            round_trip::<v201::GetTransactionStatusRequest>,
        ),
        (
            "GetTransactionStatusResponse",
            round_trip::<v201::GetTransactionStatusResponse>,
        ),
        (
            "RequestStartTransactionRequest",
            round_trip::<v201::RequestStartTransactionRequest>,
        ),
        (
            "RequestStartTransactionResponse",
            round_trip::<v201::RequestStartTransactionResponse>,
        ),
        (
            "RequestStopTransactionRequest",
            round_trip::<v201::RequestStopTransactionRequest>,
        ),
        (
            "RequestStopTransactionResponse",
            round_trip::<v201::StatusResponse<v201::AcceptedRejected>>,
        ),
        (
            "UnlockConnectorRequest",
            round_trip::<v201::UnlockConnectorRequest>,
        ),
        (
            "SendLocalListResponse",
            round_trip::<v201::StatusResponse<v201::SendLocalListStatus>>,
        ),
        (
            "UnlockConnectorResponse",
            round_trip::<v201::StatusResponse<v201::UnlockStatus>>,
        ),
    ]
}

#[test]
fn ocpp201_types_match_the_oca_schemas() {
    check("v201", "2.0.1", &v201_types());
}

/// Checks `types` against the `version` schemas (see the module's comment).
fn check(version: &str, label: &str, types: &[(&'static str, RoundTrip)]) {
    let Some(python) = python() else {
        return;
    };
    let names: Vec<&str> = types.iter().map(|(n, _)| *n).collect();
    let generated = Command::new(&python)
        .arg(script("schema_instances.py"))
        .args(["generate", version])
        .args(&names)
        .output()
        .expect("run the schema script");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let instances: serde_json::Map<String, Value> =
        serde_json::from_slice(&generated.stdout).expect("instances");
    let mut written = serde_json::Map::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, trip) in types {
        let set = &instances[*name];
        let mut back = Vec::new();
        for valid in set["valid"].as_array().expect("valid") {
            checked += 1;
            match trip(valid) {
                Ok(v) => back.push(v),
                Err(e) => failures.push(format!("{name}: refused {valid}: {e}")),
            }
        }
        for invalid in set["invalid"].as_array().expect("invalid") {
            checked += 1;
            if trip(invalid).is_ok() {
                failures.push(format!("{name}: took {invalid} without a required field"));
            }
        }
        written.insert((*name).to_owned(), Value::Array(back));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let file = std::env::temp_dir().join(format!(
        "ocpp-{version}-written-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, Value::Object(written).to_string()).expect("write");
    let validated = Command::new(&python)
        .arg(script("schema_instances.py"))
        .args(["validate", version])
        .arg(&file)
        .output()
        .expect("run the schema script");
    let _ = std::fs::remove_file(&file);
    assert!(
        validated.status.success(),
        "what our types write does not validate:\n{}",
        String::from_utf8_lossy(&validated.stdout)
    );
    println!(
        "{checked} instances of {} OCPP {label} schemas: {}",
        types.len(),
        String::from_utf8_lossy(&validated.stdout).trim()
    );
}
