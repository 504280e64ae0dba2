//! OCPP 1.6J: each CALL a charge point sends, mapped onto the domain's charging calls.
//!
//! - Authorize: the owner's tag, as `idTagInfo` (unknown or not allowed here: Invalid;
//!   blocked: Blocked; expired: Expired; charging elsewhere at its cap: ConcurrentTx);
//!   `parentIdTag` is the tag's group.
//! - StartTransaction: always recorded (the car may be charging already), the session id
//!   is the `transactionId`; a retry with the same connector, idTag, timestamp and
//!   meterStart gets the same one. A refused tag's session is disputed and the charger is
//!   told the tag's status (it stops, by `StopTransactionOnInvalidId`).
//! - MeterValues: energy normalised to integer Wh (Wh or kWh, Register or Interval, the
//!   phases summed when no total is given); a value that is not a number is a CALLERROR.
//! - StopTransaction: always answered; its `transactionData` is added first; a stop of an
//!   unknown transaction is recorded as a disputed session.

use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr as _;

use charger_protocol::ocpp::v16::{
    self, AuthorizationStatus, ChargePointErrorCode, ChargePointStatus, IdTagInfo, Measurand,
    MeterValue, RegistrationStatus, UnitOfMeasure,
};
use charger_protocol::ocpp::{payload, CiString, ErrorCode, Version};

use super::meter::{Kind, Reading};
use super::{CallError, Hub};
use crate::charging::{
    Charger, ChargerWork, SessionRef, StartInput, StartKind, StopInput, UnknownStop,
};
use crate::error::Error;
use crate::ids::{DeviceId, TagUid};
use crate::records::charging::{Sample, StopReason};
use crate::tags::Tag;

type CallResult = std::result::Result<Value, CallError>;

/// Handles one CALL; returns the action's metrics label (from a bounded set) and the
/// answer.
pub(super) async fn handle(
    hub: &Hub,
    device: &DeviceId,
    action: &str,
    body: &Value,
) -> (&'static str, CallResult) {
    let label = match super::known_action(
        v16::CHARGE_POINT_ACTIONS,
        action,
        "an OCPP 1.6 charge point",
    ) {
        Ok(label) => label,
        Err(refused) => return refused,
    };
    let result = match label {
        "Heartbeat" => heartbeat(hub, body),
        "DataTransfer" => data_transfer(hub, body),
        "DiagnosticsStatusNotification" => {
            notification::<v16::DiagnosticsStatusNotificationRequest>(body)
        }
        "FirmwareStatusNotification" => {
            notification::<v16::FirmwareStatusNotificationRequest>(body)
        }
        "SecurityEventNotification" => notification::<v16::SecurityEventNotificationRequest>(body),
        _ => super::writer::in_transaction(hub, device, Version::V16, label, body).await,
    };
    (label, result)
}

fn to_value<T: serde::Serialize>(t: &T) -> CallResult {
    serde_json::to_value(t).map_err(|e| {
        tracing::error!(error = %e, "an OCPP answer that is not JSON");
        CallError::new(ErrorCode::InternalError, "internal error")
    })
}

fn heartbeat(hub: &Hub, body: &Value) -> CallResult {
    let _: v16::Empty = payload(body)?;
    to_value(&v16::HeartbeatResponse {
        current_time: hub.service.now(),
    })
}

fn data_transfer(hub: &Hub, body: &Value) -> CallResult {
    let req: v16::DataTransferRequest = payload(body)?;
    let known = hub
        .settings
        .vendor_id
        .as_deref()
        .is_some_and(|v| v == req.vendor_id.as_str());
    to_value(&v16::DataTransferResponse {
        status: if known {
            v16::DataTransferStatus::Accepted
        } else {
            v16::DataTransferStatus::UnknownVendorId
        },
        data: None,
    })
}

/// A notification the server takes and keeps nothing of but its log line.
fn notification<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &Value) -> CallResult {
    let req: T = payload(body)?;
    tracing::info!(notification = ?req, "OCPP notification");
    Ok(serde_json::json!({}))
}

pub(super) async fn dispatch(
    hub: &Hub,
    tx: &mut ChargerWork,
    charger: &Charger,
    action: &str,
    body: &Value,
) -> CallResult {
    match action {
        "BootNotification" => boot(hub, tx, charger, body).await,
        "StatusNotification" => status(hub, tx, charger, body).await,
        "Authorize" => authorize(hub, tx, charger, body).await,
        "StartTransaction" => start(hub, tx, charger, body).await,
        "MeterValues" => meter_values(hub, tx, charger, body).await,
        "StopTransaction" => stop(hub, tx, charger, body).await,
        _ => Err(CallError::new(
            ErrorCode::NotSupported,
            "this server does not support this action",
        )),
    }
}

async fn boot(hub: &Hub, tx: &mut ChargerWork, charger: &Charger, body: &Value) -> CallResult {
    let req: v16::BootNotificationRequest = payload(body)?;
    let model = format!(
        "{} {}",
        req.charge_point_vendor.as_str(),
        req.charge_point_model.as_str()
    );
    let firmware = req
        .firmware_version
        .as_ref()
        .map_or("unknown", CiString::as_str);
    hub.service
        .record_boot(tx.as_mut(), charger, firmware, &model)
        .await?;
    // A provisioned charger is registered at its first boot (1.6 has no Pending here),
    // unless an operator rejected it.
    let rejected = hub.service.register_ocpp(tx.as_mut(), charger).await?
        == crate::records::devices::Registration::Rejected;
    to_value(&v16::BootNotificationResponse {
        status: if rejected {
            RegistrationStatus::Rejected
        } else {
            RegistrationStatus::Accepted
        },
        current_time: hub.service.now(),
        interval: if rejected {
            super::REJECTED_INTERVAL_S
        } else {
            i64::try_from(hub.service.heartbeat_s()).unwrap_or(i64::MAX)
        },
    })
}

/// A 1.6 connector status as the backend's state names.
pub(crate) fn state_name(s: ChargePointStatus) -> &'static str {
    match s {
        ChargePointStatus::Available => "available",
        ChargePointStatus::Preparing => "preparing",
        ChargePointStatus::Charging => "charging",
        ChargePointStatus::SuspendedEvse => "suspended_evse",
        ChargePointStatus::SuspendedEv => "suspended_ev",
        ChargePointStatus::Finishing => "finishing",
        ChargePointStatus::Reserved => "reserved",
        ChargePointStatus::Unavailable => "unavailable",
        ChargePointStatus::Faulted => "faulted",
    }
}

async fn status(hub: &Hub, tx: &mut ChargerWork, charger: &Charger, body: &Value) -> CallResult {
    let req: v16::StatusNotificationRequest = payload(body)?;
    // The error code, with the charger's own words when it gives them.
    let error = (req.error_code != ChargePointErrorCode::NoError).then(|| {
        let mut text = req.error_code.as_str().to_owned();
        for extra in [&req.vendor_error_code, &req.info].into_iter().flatten() {
            text.push_str(": ");
            text.push_str(extra.as_str());
        }
        text.chars().take(100).collect::<String>()
    });
    hub.service
        .record_status(
            tx.as_mut(),
            charger,
            req.connector_id,
            state_name(req.status),
            error.as_deref(),
            hub.service.now(),
        )
        .await?;
    Ok(serde_json::json!({}))
}

/// What 1.6 says of a tag verdict.
fn tag_info(verdict: &std::result::Result<Tag, Error>) -> IdTagInfo {
    match verdict {
        Ok(tag) => IdTagInfo {
            expiry_date: tag.expires_at,
            parent_id_tag: tag.group.as_deref().map(CiString::cut),
            status: AuthorizationStatus::Accepted,
        },
        Err(e) => IdTagInfo {
            expiry_date: None,
            parent_id_tag: None,
            status: match e.code() {
                "tag_blocked" => AuthorizationStatus::Blocked,
                "tag_expired" => AuthorizationStatus::Expired,
                "tag_busy" => AuthorizationStatus::ConcurrentTx,
                _ => AuthorizationStatus::Invalid,
            },
        },
    }
}

fn invalid_tag() -> IdTagInfo {
    IdTagInfo {
        expiry_date: None,
        parent_id_tag: None,
        status: AuthorizationStatus::Invalid,
    }
}

pub(super) async fn authorize(
    hub: &Hub,
    tx: &mut ChargerWork,
    charger: &Charger,
    body: &Value,
) -> CallResult {
    let req: v16::AuthorizeRequest = payload(body)?;
    // An idTag that is no RFID uid is no tag of any owner.
    let info = match TagUid::parse(req.id_tag.as_str()) {
        Ok(uid) => {
            let verdict = hub
                .service
                .tag_verdict(tx.as_mut(), charger, &uid, hub.service.now())
                .await?;
            tag_info(&verdict)
        }
        Err(_) => invalid_tag(),
    };
    to_value(&v16::AuthorizeResponse { id_tag_info: info })
}

async fn start(hub: &Hub, tx: &mut ChargerWork, charger: &Charger, body: &Value) -> CallResult {
    let req: v16::StartTransactionRequest = payload(body)?;
    let Ok(tag) = TagUid::parse(req.id_tag.as_str()) else {
        return Err(CallError::new(
            ErrorCode::PropertyConstraintViolation,
            "idTag is not an RFID uid (8, 14 or 20 hexadecimal digits), so no tag of this server",
        ));
    };
    // What identifies the start: a retry after a reconnect carries the same.
    let key = crate::records::charging::check_local_id(format!(
        "ocpp1.6:{}:{}:{}:{}",
        req.connector_id,
        tag,
        req.timestamp.timestamp_millis(),
        req.meter_start
    ))?;
    let input = StartInput {
        tag,
        connector: req.connector_id,
        meter_start_wh: req.meter_start,
        started_at: req.timestamp,
        kind: StartKind::Reported(key),
        unidentified: None,
        doubt: None,
    };
    let started = hub
        .service
        .start_session(tx.as_mut(), charger, input, hub.service.now())
        .await?;
    let info = started.verdict.as_ref().map_or_else(invalid_tag, tag_info);
    to_value(&v16::StartTransactionResponse {
        id_tag_info: info,
        transaction_id: started.session_id,
    })
}

/// A number of a sampled value (never a float: decimal text).
fn number(text: &str) -> std::result::Result<Decimal, CallError> {
    Decimal::from_str(text.trim())
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| {
            CallError::new(
                ErrorCode::PropertyConstraintViolation,
                "a sampled value is not a number",
            )
        })
}

/// Wh (or W) of a value in its unit; None for a unit that is not energy (or power).
fn scaled(value: Decimal, unit: Option<UnitOfMeasure>, power: bool) -> Option<Decimal> {
    match (unit, power) {
        (None | Some(UnitOfMeasure::Wh), false) => Some(value),
        (Some(UnitOfMeasure::KWh), false) => Some(value * Decimal::ONE_THOUSAND),
        (None | Some(UnitOfMeasure::W), true) => Some(value),
        (Some(UnitOfMeasure::KW), true) => Some(value * Decimal::ONE_THOUSAND),
        _ => None,
    }
}

/// The samples of 1.6 meter values (see [`super::meter`]); signed data is left out.
fn samples(values: &[MeterValue], last_wh: i64) -> std::result::Result<Vec<Sample>, CallError> {
    let mut given = Vec::with_capacity(values.len());
    for mv in values {
        let mut readings = Vec::new();
        for sv in &mv.sampled_value {
            if sv.format == Some(v16::ValueFormat::SignedData) {
                continue;
            }
            let kind = match sv
                .measurand
                .unwrap_or(Measurand::EnergyActiveImportRegister)
            {
                Measurand::EnergyActiveImportRegister => Kind::Register,
                Measurand::EnergyActiveImportInterval => Kind::Interval,
                Measurand::PowerActiveImport => Kind::Power,
                Measurand::CurrentImport => Kind::Current,
                // What the server does not use is not read.
                _ => continue,
            };
            let n = number(&sv.value)?;
            let value = match kind {
                Kind::Current => matches!(sv.unit, None | Some(UnitOfMeasure::A)).then_some(n),
                _ => scaled(n, sv.unit, kind == Kind::Power),
            };
            if let Some(value) = value {
                use v16::Phase as P;
                readings.push(Reading {
                    kind,
                    phased: sv.phase.is_some(),
                    phase: match sv.phase {
                        Some(P::L1 | P::L1N) => Some(0),
                        Some(P::L2 | P::L2N) => Some(1),
                        Some(P::L3 | P::L3N) => Some(2),
                        _ => None,
                    },
                    value,
                });
            }
        }
        given.push((mv.timestamp, readings));
    }
    super::meter::samples(given, last_wh)
}

async fn meter_values(
    hub: &Hub,
    tx: &mut ChargerWork,
    charger: &Charger,
    body: &Value,
) -> CallResult {
    let req: v16::MeterValuesRequest = payload(body)?;
    let now = hub.service.now();
    // Values outside a transaction (clock-aligned connector readings) bill nobody.
    let Some(transaction) = req.transaction_id else {
        samples(&req.meter_value, 0)?;
        return Ok(serde_json::json!({}));
    };
    let which = SessionRef::Id(transaction);
    if let Some(connector) = hub
        .service
        .session_connector(tx.as_mut(), charger, &which)
        .await?
    {
        if connector != req.connector_id {
            return Err(CallError::new(
                ErrorCode::PropertyConstraintViolation,
                "connectorId is not the transaction's connector",
            ));
        }
    }
    let Some(last) = hub
        .service
        .session_reading(tx.as_mut(), charger, &which)
        .await?
    else {
        tracing::info!(device = %charger.id, transaction, "meter values for a transaction the server does not know");
        return Ok(serde_json::json!({}));
    };
    let samples = samples(&req.meter_value, last)?;
    for chunk in samples.chunks(crate::charging::MAX_SAMPLES) {
        match hub
            .service
            .add_samples(tx.as_mut(), charger, &which, chunk, now)
            .await
        {
            Ok(_) => {}
            // Values that arrive after the stop add nothing.
            Err(Error::Conflict { .. }) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(serde_json::json!({}))
}

fn stop_reason(r: Option<v16::StopReason>) -> StopReason {
    use v16::StopReason as R;
    match r {
        None | Some(R::Local) => StopReason::Local,
        Some(R::Remote) => StopReason::Remote,
        Some(R::EvDisconnected) => StopReason::EvDisconnected,
        Some(R::PowerLoss) => StopReason::PowerLoss,
        Some(R::Reboot | R::HardReset | R::SoftReset) => StopReason::Reboot,
        Some(R::EmergencyStop) => StopReason::Faulted,
        Some(R::UnlockCommand | R::DeAuthorized | R::Other) => StopReason::Other,
    }
}

async fn stop(hub: &Hub, tx: &mut ChargerWork, charger: &Charger, body: &Value) -> CallResult {
    let req: v16::StopTransactionRequest = payload(body)?;
    let now = hub.service.now();
    let which = SessionRef::Id(req.transaction_id);
    let data = req.transaction_data.as_deref().unwrap_or_default();
    let reading = hub
        .service
        .session_reading(tx.as_mut(), charger, &which)
        .await?;
    let tag = req
        .id_tag
        .as_ref()
        .and_then(|t| TagUid::parse(t.as_str()).ok());
    match reading {
        Some(last) => {
            // The transaction's own readings first; readings no meter can make are left
            // out (the stop itself is what is billed, and checked).
            let samples = samples(data, last).unwrap_or_else(|e| {
                tracing::info!(device = %charger.id, error = %e.description, "transaction data left out");
                Vec::new()
            });
            for chunk in samples.chunks(crate::charging::MAX_SAMPLES) {
                if let Err(e) = hub
                    .service
                    .add_samples(tx.as_mut(), charger, &which, chunk, now)
                    .await
                {
                    if !e.is_refusal() {
                        return Err(e.into());
                    }
                    tracing::info!(device = %charger.id, error = %e, "transaction data left out");
                    break;
                }
            }
            let input = StopInput {
                which,
                meter_stop_wh: req.meter_stop,
                stopped_at: req.timestamp,
                reason: stop_reason(req.reason),
                refusable: false,
            };
            match hub
                .service
                .stop_session(tx.as_mut(), charger, input, now)
                .await
            {
                Ok(_) => {}
                // Another stop of a stopped transaction: answered, the first one stands.
                Err(e @ Error::Conflict { .. }) => {
                    tracing::warn!(device = %charger.id, transaction = req.transaction_id, error = %e, "a second, different stop of a transaction ignored");
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => {
            let samples = samples(data, req.meter_stop).unwrap_or_default();
            let first = samples.first();
            let unknown = UnknownStop {
                key: None,
                reference: req.transaction_id.to_string(),
                tag: tag.clone(),
                meter_start_wh: first.map_or(req.meter_stop, |s| s.energy_wh),
                started_at: first.map_or(req.timestamp, |s| s.at),
                meter_stop_wh: req.meter_stop,
                stopped_at: req.timestamp,
                reason: stop_reason(req.reason),
            };
            hub.service
                .record_unknown_stop(tx.as_mut(), charger, unknown, now)
                .await?;
        }
    }
    let info = match tag {
        Some(uid) => Some(tag_info(
            &hub.service
                .tag_verdict(tx.as_mut(), charger, &uid, Utc::now())
                .await?,
        )),
        None if req.id_tag.is_some() => Some(invalid_tag()),
        None => None,
    };
    to_value(&v16::StopTransactionResponse { id_tag_info: info })
}
