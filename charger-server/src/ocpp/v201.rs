//! OCPP 2.0.1: each CALL a charging station sends, mapped onto the domain's charging calls,
//! and the REST commands as 2.0.1 CALLs.
//!
//! - EVSE *n* is the domain's connector *n* (one connector per EVSE); EVSE 0 is the
//!   station as a whole (its history only).
//! - Authorize: the owner's tag as `idTokenInfo` (the group as `groupIdToken`).
//! - TransactionEvent cannot be refused: the station's `transactionId` names the session
//!   (a repeat of any event finds it again); the session starts with the first event that
//!   carries an idToken (readings of earlier events of the socket kept for its start);
//!   meter values are added as they come, values that arrive after the end add nothing;
//!   `Ended` stops and bills it (disputed when a reading is implausible); an `Ended` for a
//!   transaction never seen is recorded disputed. The answer carries the running (or
//!   final) cost as `totalCost`.
//! - Meter values normalised to Wh: `unitOfMeasure` (`Wh`, `kWh`) with its multiplier,
//!   per-phase rows summed when no total is given, Register or Interval.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use charger_protocol::ocpp::v201::{
    self, AuthorizationStatus, IdToken, IdTokenInfo, IdTokenKind, Measurand, MeterValue,
    RegistrationStatus, TransactionEventKind,
};
use charger_protocol::ocpp::{payload, CiString, ErrorCode, Version};

use super::meter::{Kind, Reading};
use super::{CallError, Hub};
use crate::charging::{
    Charger, ChargerWork, SessionRef, StartInput, StartKind, StopInput, UnknownStop,
};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, TagUid};
use crate::records::charging::{Sample, StopReason};
use crate::records::devices::{Registration, StationVariable};
use crate::tags::Tag;

type CallResult = std::result::Result<Value, CallError>;

/// How long a Pending station waits before it boots again, in seconds.
pub const PENDING_INTERVAL_S: i64 = 10;

/// The actions a station sends: supported, or known and not supported.
const STATION_ACTIONS: &[(&str, bool)] = &[
    ("Authorize", true),
    ("BootNotification", true),
    ("DataTransfer", true),
    ("FirmwareStatusNotification", true),
    ("Heartbeat", true),
    ("LogStatusNotification", true),
    ("MeterValues", true),
    ("NotifyEvent", true),
    ("NotifyReport", true),
    ("SecurityEventNotification", true),
    ("StatusNotification", true),
    ("TransactionEvent", true),
    ("ClearedChargingLimit", false),
    ("Get15118EVCertificate", false),
    ("GetCertificateStatus", false),
    ("NotifyChargingLimit", false),
    ("NotifyCustomerInformation", false),
    ("NotifyDisplayMessages", false),
    ("NotifyEVChargingNeeds", false),
    ("NotifyEVChargingSchedule", false),
    ("NotifyMonitoringReport", false),
    ("PublishFirmwareStatusNotification", false),
    ("ReportChargingProfiles", false),
    ("ReservationStatusUpdate", false),
    ("SignCertificate", false),
];

/// Handles one CALL; returns the action's metrics label and the answer.
pub(super) async fn handle(
    hub: &Hub,
    device: &DeviceId,
    action: &str,
    body: &Value,
) -> (&'static str, CallResult) {
    let label = match super::known_action(STATION_ACTIONS, action, "an OCPP 2.0.1 charging station")
    {
        Ok(label) => label,
        Err(refused) => return refused,
    };
    let result = match label {
        "Heartbeat" => payload::<v201::Empty>(body)
            .map_err(CallError::from)
            .and_then(|_| {
                to_value(&v201::HeartbeatResponse {
                    custom_data: None,
                    current_time: hub.service.now(),
                })
            }),
        "DataTransfer" => {
            let known = hub
                .settings
                .vendor_id
                .as_deref()
                .is_some_and(|v| body["vendorId"].as_str() == Some(v));
            Ok(json!({"status": if known { "Accepted" } else { "UnknownVendorId" }}))
        }
        "FirmwareStatusNotification"
        | "LogStatusNotification"
        | "NotifyEvent"
        | "SecurityEventNotification" => {
            tracing::info!(device = %device, action = label, "OCPP 2.0.1 notification");
            Ok(json!({}))
        }
        _ => super::writer::in_transaction(hub, device, Version::V201, label, body).await,
    };
    (label, result)
}

fn to_value<T: serde::Serialize>(t: &T) -> CallResult {
    serde_json::to_value(t).map_err(|e| {
        tracing::error!(error = %e, "an OCPP answer that is not JSON");
        CallError::new(ErrorCode::InternalError, "internal error")
    })
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
        "TransactionEvent" => transaction_event(hub, tx, charger, body).await,
        "NotifyReport" => report(hub, tx, charger, body).await,
        "MeterValues" => {
            let req: v201::MeterValuesRequest = payload(body)?;
            if !(0..=charger.connectors).contains(&req.evse_id) {
                return Err(CallError::new(
                    ErrorCode::PropertyConstraintViolation,
                    "this charger has no such EVSE",
                ));
            }
            samples(&req.meter_value, 0)?;
            Ok(json!({}))
        }
        _ => Err(CallError::new(
            ErrorCode::NotSupported,
            "this server does not support this action",
        )),
    }
}

/// The configuration variables the server keeps of a station's reports (component,
/// variable): the ones it uses or an operator needs to see. Never a secret (the password
/// is write-only anyway).
pub const KEPT_VARIABLES: &[(&str, &str)] = &[
    ("AlignedDataCtrlr", "Interval"),
    ("AlignedDataCtrlr", "Measurands"),
    ("AuthCacheCtrlr", "Enabled"),
    ("AuthCtrlr", "AuthorizeRemoteStart"),
    ("AuthCtrlr", "Enabled"),
    ("AuthCtrlr", "LocalAuthorizeOffline"),
    ("AuthCtrlr", "LocalPreAuthorize"),
    ("AuthCtrlr", "MasterPassGroupId"),
    ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
    ("ChargingStation", "PhaseRotation"),
    ("ChargingStation", "SupplyPhases"),
    ("Connector", "PhaseRotation"),
    ("Connector", "SupplyPhases"),
    ("EVSE", "PhaseRotation"),
    ("EVSE", "SupplyPhases"),
    ("LocalAuthListCtrlr", "Enabled"),
    ("OCPPCommCtrlr", "HeartbeatInterval"),
    ("SampledDataCtrlr", "TxEndedInterval"),
    ("SampledDataCtrlr", "TxEndedMeasurands"),
    ("SampledDataCtrlr", "TxStartedMeasurands"),
    ("SampledDataCtrlr", "TxUpdatedInterval"),
    ("SampledDataCtrlr", "TxUpdatedMeasurands"),
    ("SecurityCtrlr", "SecurityProfile"),
    ("SmartChargingCtrlr", "Enabled"),
    ("SmartChargingCtrlr", "RateUnit"),
    ("TxCtrlr", "EVConnectionTimeOut"),
    ("TxCtrlr", "StopTxOnInvalidId"),
    ("TxCtrlr", "TxStartPoint"),
    ("TxCtrlr", "TxStopPoint"),
];

/// A part of a base report: the Actual values of the kept variables (of the station, or
/// of one of its EVSEs; instances are not kept), each part as it arrives.
async fn report(hub: &Hub, tx: &mut ChargerWork, charger: &Charger, body: &Value) -> CallResult {
    let req: v201::NotifyReportRequest = payload(body)?;
    let now = hub.service.now();
    let kept: Vec<StationVariable> = req
        .report_data
        .iter()
        .flatten()
        .filter(|d| d.component.instance.is_none() && d.variable.instance.is_none())
        .filter(|d| KEPT_VARIABLES.contains(&(d.component.name.as_str(), d.variable.name.as_str())))
        .filter_map(|d| {
            let evse = d.component.evse.as_ref().map_or(0, |e| e.id);
            if !(0..=charger.connectors).contains(&evse) {
                return None;
            }
            let actual = d
                .variable_attribute
                .iter()
                .find(|a| matches!(a.kind, None | Some(v201::AttributeKind::Actual)))?;
            Some(StationVariable {
                component: d.component.name.as_str().to_owned(),
                evse,
                variable: d.variable.name.as_str().to_owned(),
                value: actual.value.as_ref()?.as_str().to_owned(),
                updated_at: now,
            })
        })
        .collect();
    hub.service
        .record_station_variables(tx.as_mut(), charger, &kept)
        .await?;
    Ok(json!({}))
}

async fn boot(hub: &Hub, tx: &mut ChargerWork, charger: &Charger, body: &Value) -> CallResult {
    let req: v201::BootNotificationRequest = payload(body)?;
    let station = &req.charging_station;
    let model = format!(
        "{} {}",
        station.vendor_name.as_str(),
        station.model.as_str()
    );
    let model: String = model.chars().take(100).collect();
    let firmware = station
        .firmware_version
        .as_ref()
        .map_or("unknown", CiString::as_str);
    hub.service
        .record_boot(tx.as_mut(), charger, firmware, &model)
        .await?;
    // Its first boot is Pending: the server reads its configuration, and the station boots
    // again after the interval, then Accepted.
    let (status, interval) = match hub.service.register_ocpp(tx.as_mut(), charger).await? {
        Registration::Pending => (RegistrationStatus::Pending, PENDING_INTERVAL_S),
        Registration::Rejected => (RegistrationStatus::Rejected, super::REJECTED_INTERVAL_S),
        Registration::Accepted => (
            RegistrationStatus::Accepted,
            i64::try_from(hub.service.heartbeat_s()).unwrap_or(i64::MAX),
        ),
    };
    to_value(&v201::BootNotificationResponse {
        custom_data: None,
        current_time: hub.service.now(),
        interval,
        status,
        status_info: None,
    })
}

async fn status(hub: &Hub, tx: &mut ChargerWork, charger: &Charger, body: &Value) -> CallResult {
    let req: v201::StatusNotificationRequest = payload(body)?;
    let state = match req.connector_status {
        v201::ConnectorStatus::Available => "available",
        v201::ConnectorStatus::Occupied => "occupied",
        v201::ConnectorStatus::Reserved => "reserved",
        v201::ConnectorStatus::Unavailable => "unavailable",
        v201::ConnectorStatus::Faulted => "faulted",
    };
    hub.service
        .record_status(
            tx.as_mut(),
            charger,
            req.evse_id,
            state,
            None,
            hub.service.now(),
        )
        .await?;
    Ok(json!({}))
}

fn info(verdict: &std::result::Result<Tag, Error>) -> IdTokenInfo {
    let (status, tag) = match verdict {
        Ok(tag) => (AuthorizationStatus::Accepted, Some(tag)),
        Err(e) => (
            match e.code() {
                "tag_blocked" => AuthorizationStatus::Blocked,
                "tag_expired" => AuthorizationStatus::Expired,
                "tag_busy" => AuthorizationStatus::ConcurrentTx,
                "not_found" => AuthorizationStatus::Unknown,
                _ => AuthorizationStatus::Invalid,
            },
            None,
        ),
    };
    IdTokenInfo {
        custom_data: None,
        status,
        cache_expiry_date_time: tag.and_then(|t| t.expires_at),
        charging_priority: None,
        language1: None,
        evse_id: None,
        group_id_token: tag.and_then(|t| t.group.as_deref()).map(|g| IdToken {
            custom_data: None,
            additional_info: None,
            id_token: CiString::cut(g),
            kind: IdTokenKind::Central,
        }),
        language2: None,
        personal_message: None,
    }
}

fn unknown_token() -> IdTokenInfo {
    IdTokenInfo {
        custom_data: None,
        status: AuthorizationStatus::Unknown,
        cache_expiry_date_time: None,
        charging_priority: None,
        language1: None,
        evse_id: None,
        group_id_token: None,
        language2: None,
        personal_message: None,
    }
}

/// The tag an idToken names, when it is an RFID uid (the only tokens this server keeps).
/// The backend's tag an idToken names: an RFID card's (ISO 14443 or 15693) uid; any other
/// kind of token (a key code, an eMAID, NoAuthorization...) names none.
fn tag_of(token: &IdToken) -> Option<TagUid> {
    matches!(token.kind, IdTokenKind::Iso14443 | IdTokenKind::Iso15693)
        .then(|| TagUid::parse(token.id_token.as_str()).ok())
        .flatten()
}

pub(super) async fn authorize(
    hub: &Hub,
    tx: &mut ChargerWork,
    charger: &Charger,
    body: &Value,
) -> CallResult {
    let req: v201::AuthorizeRequest = payload(body)?;
    let token_info = match tag_of(&req.id_token) {
        Some(uid) => info(
            &hub.service
                .tag_verdict(tx.as_mut(), charger, &uid, hub.service.now())
                .await?,
        ),
        None => unknown_token(),
    };
    to_value(&v201::AuthorizeResponse {
        custom_data: None,
        id_token_info: token_info,
        certificate_status: None,
    })
}

/// Wh (or W) of a sampled value: its unit (`Wh`, `kWh`; `W`, `kW`) times ten to its
/// multiplier; None for another unit.
fn scaled(value: Decimal, unit: Option<&v201::UnitOfMeasure>, power: bool) -> Option<Decimal> {
    let text = unit
        .and_then(|u| u.unit.as_ref())
        .map(CiString::as_str)
        .unwrap_or(if power { "W" } else { "Wh" });
    let base = match (text, power) {
        ("Wh", false) | ("W", true) => Decimal::ONE,
        ("kWh", false) | ("kW", true) => Decimal::ONE_THOUSAND,
        _ => return None,
    };
    let exponent = unit.and_then(|u| u.multiplier).unwrap_or(0);
    if !(-9..=9).contains(&exponent) {
        return None;
    }
    let mut factor = base;
    for _ in 0..exponent.unsigned_abs() {
        factor = if exponent > 0 {
            factor * Decimal::TEN
        } else {
            factor / Decimal::TEN
        };
    }
    value.checked_mul(factor)
}

/// The samples of 2.0.1 meter values (see [`super::meter`]): `unitOfMeasure` with its
/// multiplier.
fn samples(values: &[MeterValue], last_wh: i64) -> std::result::Result<Vec<Sample>, CallError> {
    let given = values.iter().map(|mv| {
        let readings = mv
            .sampled_value
            .iter()
            .filter_map(|sv| {
                let kind = match sv
                    .measurand
                    .unwrap_or(Measurand::EnergyActiveImportRegister)
                {
                    Measurand::EnergyActiveImportRegister => Kind::Register,
                    Measurand::EnergyActiveImportInterval => Kind::Interval,
                    Measurand::PowerActiveImport => Kind::Power,
                    Measurand::CurrentImport => Kind::Current,
                    _ => return None,
                };
                let value = match kind {
                    Kind::Current => {
                        let unit = sv.unit_of_measure.as_ref();
                        let text = unit.and_then(|u| u.unit.as_ref()).map(CiString::as_str);
                        let plain = unit.and_then(|u| u.multiplier).unwrap_or(0) == 0;
                        (matches!(text, None | Some("A")) && plain).then_some(sv.value.0)?
                    }
                    _ => scaled(sv.value.0, sv.unit_of_measure.as_ref(), kind == Kind::Power)?,
                };
                use v201::Phase as P;
                Some(Reading {
                    kind,
                    phased: sv.phase.is_some(),
                    phase: match sv.phase {
                        Some(P::L1 | P::L1N) => Some(0),
                        Some(P::L2 | P::L2N) => Some(1),
                        Some(P::L3 | P::L3N) => Some(2),
                        _ => None,
                    },
                    value,
                })
            })
            .collect();
        (mv.timestamp, readings)
    });
    super::meter::samples(given, last_wh)
}

fn stop_reason(r: Option<v201::StoppedReason>) -> StopReason {
    use v201::StoppedReason as R;
    match r {
        None | Some(R::Local | R::StoppedByEv | R::MasterPass) => StopReason::Local,
        Some(R::Remote) => StopReason::Remote,
        Some(R::EvDisconnected) => StopReason::EvDisconnected,
        Some(R::PowerLoss) => StopReason::PowerLoss,
        Some(R::Reboot | R::ImmediateReset) => StopReason::Reboot,
        Some(R::EmergencyStop | R::GroundFault | R::OvercurrentFault | R::PowerQuality) => {
            StopReason::Faulted
        }
        Some(
            R::EnergyLimitReached | R::SocLimitReached | R::TimeLimitReached | R::LocalOutOfCredit,
        ) => StopReason::Limit,
        Some(R::DeAuthorized | R::Other | R::Timeout) => StopReason::Other,
    }
}

/// What the events of a transaction not yet started (no idToken yet) told: its first
/// reading and EVSE, kept per charger and transaction until the session can start.
#[derive(Debug, Clone)]
struct Pending {
    first: Option<(DateTime<Utc>, i64)>,
    evse: Option<i64>,
    at: DateTime<Utc>,
}

/// Transactions seen before their idToken, per charger: at most
/// `CHARGER_OCPP_PENDING_TRANSACTIONS` each (the oldest goes first), for [`PENDING_KEEP`]
/// at most, and at most
/// [`PENDING_CHARGERS`] chargers, so that no station can crowd out another's. Kept in
/// memory only: after a restart, or on another instance, a transaction's start is taken
/// from the event that brings its idToken (docs/ocpp.md).
#[derive(Default)]
pub(super) struct PendingTransactions {
    by_charger: HashMap<DeviceId, Vec<(String, Pending, std::time::Instant)>>,
}

const PENDING_CHARGERS: usize = 20_000;
const PENDING_KEEP: Duration = Duration::from_secs(24 * 3600);

impl PendingTransactions {
    fn get(&mut self, device: &DeviceId, transaction: &str) -> Option<Pending> {
        let list = self.by_charger.get_mut(device)?;
        list.retain(|(_, _, since)| since.elapsed() < PENDING_KEEP);
        list.iter()
            .find(|(t, _, _)| t == transaction)
            .map(|(_, p, _)| p.clone())
    }

    fn remove(&mut self, device: &DeviceId, transaction: &str) {
        if let Some(list) = self.by_charger.get_mut(device) {
            list.retain(|(t, _, _)| t != transaction);
            if list.is_empty() {
                self.by_charger.remove(device);
            }
        }
    }

    fn insert(&mut self, device: &DeviceId, transaction: String, pending: Pending, per: usize) {
        if !self.by_charger.contains_key(device) && self.by_charger.len() >= PENDING_CHARGERS {
            self.by_charger
                .retain(|_, list| list.iter().any(|(_, _, s)| s.elapsed() < PENDING_KEEP));
            if self.by_charger.len() >= PENDING_CHARGERS {
                crate::metrics::limit_hit(crate::metrics::Limit::OcppPendingTransactions);
                return;
            }
        }
        let list = self.by_charger.entry(device.clone()).or_default();
        list.retain(|(t, _, since)| *t != transaction && since.elapsed() < PENDING_KEEP);
        if list.len() >= per.max(1) {
            crate::metrics::limit_hit(crate::metrics::Limit::OcppPendingTransactions);
            list.remove(0);
        }
        list.push((transaction, pending, std::time::Instant::now()));
    }
}

/// The session key of a station's transaction id.
fn session_key(transaction: &str) -> Result<String> {
    use crate::records::charging::STATION_TRANSACTION_PREFIX as T;
    crate::records::charging::check_local_id(format!("{T}{transaction}"))
}

async fn transaction_event(
    hub: &Hub,
    tx: &mut ChargerWork,
    charger: &Charger,
    body: &Value,
) -> CallResult {
    let req: v201::TransactionEventRequest = payload(body)?;
    let now = hub.service.now();
    let transaction = req.transaction_info.transaction_id.as_str().to_owned();
    let key = session_key(&transaction)?;
    let which = SessionRef::Local(key.clone());
    let values = req.meter_value.as_deref().unwrap_or_default();
    let span = hub
        .service
        .session_span(tx.as_mut(), charger, &which)
        .await?;
    let known = span.map(|(_, _, last)| last);
    let mut readings = samples(values, known.unwrap_or(0))?;
    // The reading the session started from, when this event starts it.
    let mut started_from = None;

    let mut verdict = None;
    if known.is_none() {
        let remembered = hub
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.get(&charger.id, &transaction));
        let evse = req
            .evse
            .as_ref()
            .map(|e| e.id)
            .or(remembered.as_ref().and_then(|p| p.evse));
        // The earliest reading told so far (events may arrive in any order).
        let first = [
            remembered.as_ref().and_then(|p| p.first),
            readings.first().map(|s| (s.at, s.energy_wh)),
        ]
        .into_iter()
        .flatten()
        .min();
        let started_at = remembered
            .as_ref()
            .map_or(req.timestamp, |p| p.at.min(req.timestamp));
        // A token that is no tag of this backend (another kind, or not a uid) still
        // starts the session the station reports: under the placeholder tag, disputed.
        let tag = match req.id_token.as_ref() {
            None => None,
            Some(t) => Some(match tag_of(t) {
                Some(tag) => (tag, None),
                None => (
                    TagUid::parse(crate::charging::NO_TAG)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                    Some(format!(
                        "the station's idToken (of kind {}) is no tag of this backend",
                        t.kind.as_str()
                    )),
                ),
            }),
        };
        match tag {
            Some((tag, unidentified)) => {
                // With no reading told for its start (lost with a restart, or never sent),
                // its energy is unknown: recorded from 0, disputed.
                let doubt = first.is_none().then(|| {
                    "the station told no meter reading for the transaction's start".to_owned()
                });
                let (at, meter) = first.unwrap_or((started_at, 0));
                let input = StartInput {
                    tag,
                    connector: evse.unwrap_or(1),
                    meter_start_wh: meter,
                    started_at: at.min(started_at),
                    kind: StartKind::Reported(key.clone()),
                    unidentified,
                    doubt,
                };
                let start_at = input.started_at;
                let started = hub
                    .service
                    .start_session(tx.as_mut(), charger, input, now)
                    .await?;
                verdict = started.verdict;
                // The start's own reading is the session's start, not a sample of it.
                readings.retain(|s| s.at > start_at);
                started_from = Some(meter);
                if let Ok(mut p) = hub.pending.lock() {
                    p.remove(&charger.id, &transaction);
                }
            }
            None if req.event_type == TransactionEventKind::Ended => {
                let stop = UnknownStop {
                    reference: transaction.clone(),
                    key: Some(key.clone()),
                    tag: None,
                    meter_start_wh: first.map_or(0, |f| f.1),
                    started_at: first.map_or(started_at, |f| f.0),
                    meter_stop_wh: readings
                        .last()
                        .map_or(first.map_or(0, |f| f.1), |s| s.energy_wh),
                    stopped_at: req.timestamp,
                    reason: stop_reason(req.transaction_info.stopped_reason),
                };
                let stopped = hub
                    .service
                    .record_unknown_stop(tx.as_mut(), charger, stop, now)
                    .await?;
                if let Ok(mut p) = hub.pending.lock() {
                    p.remove(&charger.id, &transaction);
                }
                return to_value(&v201::TransactionEventResponse {
                    total_cost: (!stopped.disputed)
                        .then_some(charger_protocol::ocpp::Decimal(stopped.bill.total)),
                    ..Default::default()
                });
            }
            None => {
                // Not authorized yet: what it told waits for the event that brings the
                // idToken.
                if let Ok(mut p) = hub.pending.lock() {
                    p.insert(
                        &charger.id,
                        transaction.clone(),
                        Pending {
                            first,
                            evse,
                            at: started_at,
                        },
                        hub.settings.pending_transactions,
                    );
                }
                return Ok(json!({}));
            }
        }
    }
    // A start event replayed after later ones moves the session's start back to its
    // reading (applied in seqNo order, whatever the arrival order).
    if let (Some((started_at, meter_start, _)), Some(first)) = (span, readings.first()) {
        if first.at < started_at && first.energy_wh <= meter_start {
            hub.service
                .amend_reported_start(tx.as_mut(), charger, &which, first.at, first.energy_wh, now)
                .await?;
        }
    }
    // The readings, then (Ended) the stop.
    let mut running = None;
    for chunk in readings.chunks(crate::charging::MAX_SAMPLES) {
        match hub
            .service
            .add_samples(tx.as_mut(), charger, &which, chunk, now)
            .await
        {
            Ok(r) => running = Some(r),
            // After the end, or readings no meter makes (billed by the end alone).
            Err(e) if e.is_refusal() => {
                tracing::info!(device = %charger.id, error = %e, "transaction readings left out");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // The running cost with tax (I02), then the final one; none while disputed (0 would
    // say it is free).
    let mut total = running.filter(|r| !r.disputed).map(|r| r.total);
    if req.event_type == TransactionEventKind::Ended {
        // The last reading before this event's (a reading the session refused does not
        // lower it).
        let last = known.or(started_from).unwrap_or(0);
        // It cannot have ended before its own last reading (a station may stamp the event
        // a moment before the meter value it carries).
        let input = StopInput {
            which,
            meter_stop_wh: readings.last().map_or(last, |s| s.energy_wh.max(last)),
            stopped_at: readings
                .last()
                .map_or(req.timestamp, |s| s.at.max(req.timestamp)),
            reason: stop_reason(req.transaction_info.stopped_reason),
            refusable: false,
        };
        match hub
            .service
            .stop_session(tx.as_mut(), charger, input, now)
            .await
        {
            Ok(stopped) => total = (!stopped.disputed).then_some(stopped.bill.total),
            Err(e @ Error::Conflict { .. }) => {
                tracing::warn!(device = %charger.id, error = %e, "a second, different end of a transaction ignored");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let token_info = match (&verdict, req.id_token.as_ref()) {
        (Some(v), _) => Some(info(v)),
        (None, Some(token)) => match tag_of(token) {
            Some(uid) => Some(info(
                &hub.service
                    .tag_verdict_for(
                        tx.as_mut(),
                        charger,
                        &uid,
                        now,
                        &SessionRef::Local(key.clone()),
                    )
                    .await?,
            )),
            None => Some(unknown_token()),
        },
        (None, None) => None,
    };
    to_value(&v201::TransactionEventResponse {
        total_cost: total.map(charger_protocol::ocpp::Decimal),
        id_token_info: token_info,
        ..Default::default()
    })
}

/// A REST command as a 2.0.1 CALL over the socket this instance holds: its data checked
/// against the action's type before it is sent (422 naming what is wrong), the station's
/// answer against the response's type (502 otherwise).
pub(super) async fn run_command(
    hub: &Hub,
    device: &DeviceId,
    command: &str,
    data: &Value,
    timeout: Duration,
) -> Result<Value> {
    use super::commands::{ocpp_data, to_json};
    use charger_protocol::ocpp::Items;
    use v201::*;
    type Status<S> = StatusResponse<S>;
    match command {
        "remote-start" => {
            let req: charger_protocol::api::RemoteStartRequest = crate::devices::parse_data(data)?;
            let call = RequestStartTransactionRequest {
                custom_data: None,
                evse_id: Some(req.connector),
                group_id_token: None,
                id_token: IdToken {
                    custom_data: None,
                    additional_info: None,
                    id_token: CiString::new(req.tag.to_ascii_uppercase())
                        .ok_or_else(|| Error::invalid("tag", "is too long"))?,
                    kind: IdTokenKind::Iso14443,
                },
                remote_start_id: i64::from(rand::random::<u32>() & 0x7fff_ffff),
                charging_profile: None,
            };
            hub.send::<RequestStartTransactionResponse>(
                device,
                "RequestStartTransaction",
                to_json(&call)?,
                timeout,
            )
            .await
        }
        "remote-stop" => {
            let req: charger_protocol::api::RemoteStopRequest = crate::devices::parse_data(data)?;
            let key = hub
                .service
                .session_local_id(device, req.session_id)
                .await?
                .ok_or_else(|| Error::not_found("session"))?;
            let transaction = crate::records::charging::station_transaction(&key)
                .and_then(|t| CiString::new(t.to_owned()))
                .ok_or_else(|| {
                    Error::conflict(
                        "session_unknown_to_charger",
                        "the charger did not name this session: it cannot be stopped by its id",
                    )
                })?;
            let call = RequestStopTransactionRequest {
                custom_data: None,
                transaction_id: transaction,
            };
            hub.send::<Status<AcceptedRejected>>(
                device,
                "RequestStopTransaction",
                to_json(&call)?,
                timeout,
            )
            .await
        }
        "unlock" => {
            let req: charger_protocol::api::UnlockRequest = crate::devices::parse_data(data)?;
            let call = UnlockConnectorRequest {
                custom_data: None,
                evse_id: req.connector,
                connector_id: 1,
            };
            hub.send::<Status<UnlockStatus>>(device, "UnlockConnector", to_json(&call)?, timeout)
                .await
        }
        // A rotation's new password, pushed first.
        "change-password" => {
            let call = SetVariablesRequest {
                custom_data: None,
                set_variable_data: Items(vec![SetVariableData {
                    custom_data: None,
                    attribute_type: None,
                    attribute_value: CiString::new(
                        data["password"].as_str().unwrap_or_default().to_owned(),
                    )
                    .ok_or_else(|| Error::invalid("password", "is too long"))?,
                    component: Component {
                        custom_data: None,
                        evse: None,
                        name: CiString::cut("SecurityCtrlr"),
                        instance: None,
                    },
                    variable: Variable {
                        custom_data: None,
                        name: CiString::cut("BasicAuthPassword"),
                        instance: None,
                    },
                }]),
            };
            hub.send::<SetVariablesResponse>(device, "SetVariables", to_json(&call)?, timeout)
                .await
        }
        "reset" => {
            let p = ocpp_data::<ResetRequest>(data)?;
            hub.send::<Status<ResetStatus>>(device, "Reset", p, timeout)
                .await
        }
        "change-availability" => {
            let p = ocpp_data::<ChangeAvailabilityRequest>(data)?;
            hub.send::<Status<ChangeAvailabilityStatus>>(device, "ChangeAvailability", p, timeout)
                .await
        }
        "trigger-message" => {
            let p = ocpp_data::<TriggerMessageRequest>(data)?;
            hub.send::<Status<TriggerMessageStatus>>(device, "TriggerMessage", p, timeout)
                .await
        }
        "get-variables" => {
            let p = ocpp_data::<GetVariablesRequest>(data)?;
            hub.send::<GetVariablesResponse>(device, "GetVariables", p, timeout)
                .await
        }
        "set-variables" => {
            let p = ocpp_data::<SetVariablesRequest>(data)?;
            hub.send::<SetVariablesResponse>(device, "SetVariables", p, timeout)
                .await
        }
        "get-base-report" => {
            let p = ocpp_data::<GetBaseReportRequest>(data)?;
            hub.send::<Status<DeviceModelStatus>>(device, "GetBaseReport", p, timeout)
                .await
        }
        "clear-cache" => {
            let p = ocpp_data::<Empty>(data)?;
            hub.send::<Status<AcceptedRejected>>(device, "ClearCache", p, timeout)
                .await
        }
        "get-local-list-version" => {
            let p = ocpp_data::<Empty>(data)?;
            hub.send::<GetLocalListVersionResponse>(device, "GetLocalListVersion", p, timeout)
                .await
        }
        "send-local-list" => {
            hub.sync_local_list(device, Version::V201, data, timeout)
                .await
        }
        "set-charging-profile" => {
            let p = ocpp_data::<SetChargingProfileRequest>(data)?;
            hub.send::<Status<AcceptedRejected>>(device, "SetChargingProfile", p, timeout)
                .await
        }
        "clear-charging-profile" => {
            let p = ocpp_data::<ClearChargingProfileRequest>(data)?;
            hub.send::<Status<ClearChargingProfileStatus>>(
                device,
                "ClearChargingProfile",
                p,
                timeout,
            )
            .await
        }
        "get-charging-profiles" => {
            let p = ocpp_data::<GetChargingProfilesRequest>(data)?;
            hub.send::<Status<GetChargingProfileStatus>>(device, "GetChargingProfiles", p, timeout)
                .await
        }
        "get-composite-schedule" => {
            let p = ocpp_data::<GetCompositeScheduleRequest>(data)?;
            hub.send::<GetCompositeScheduleResponse>(device, "GetCompositeSchedule", p, timeout)
                .await
        }
        "get-transaction-status" => {
            let p = ocpp_data::<GetTransactionStatusRequest>(data)?;
            hub.send::<GetTransactionStatusResponse>(device, "GetTransactionStatus", p, timeout)
                .await
        }
        _ => Err(Error::not_found("command")),
    }
}
