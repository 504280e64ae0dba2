//! An operator's resolution of a disputed session (docs/operations.md, "Billing inputs and
//! disputed sessions"): void it (billed nothing, for good), or bill it with corrected
//! readings and times, checked like a meter's and priced by the session's own tariff
//! snapshot. Who did it and when are recorded with it; two operators resolving at once get
//! one resolution and one 409.

pub use crate::records::charging::Resolution;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::inputs::{check_energy, check_reading, check_time};
use super::SessionStatus;
use crate::billing::cost::{self, Bill};
use crate::error::{Error, Result};
use crate::service::{Principal, Service};

/// What the operator does with a disputed session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveAction {
    /// Billed nothing, for good.
    Void,
    /// Billed with the readings and times given (or, for those not given, the recorded ones).
    Bill,
}

/// `POST /api/v1/sessions/{id}/resolution`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    pub action: ResolveAction,
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub meter_start_wh: Option<i64>,
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub meter_stop_wh: Option<i64>,
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// Why (1-200 characters), kept in the audit log.
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub note: Option<String>,
}

impl Service {
    /// Resolves a disputed session of the caller's (404 for another's, 409 when it is not
    /// disputed, or another operator resolved it first; 422 for readings or times no
    /// meter can produce). Returns the session as it is now.
    pub async fn resolve_session(
        &self,
        who: &Principal,
        id: i64,
        req: ResolveRequest,
    ) -> Result<super::history::SessionDetail> {
        let session = match self.store.get_session(id).await? {
            Some(s) if who.can_see(&s.owner) => s,
            _ => return Err(Error::not_found("session")),
        };
        let note = crate::tags::check_text("note", req.note.clone())?;
        if session.status != SessionStatus::Disputed {
            return Err(Error::conflict(
                "not_disputed",
                format!("the session is {}, not disputed", session.status.as_str()),
            ));
        }
        let now = self.now();
        let start_wh = req.meter_start_wh.unwrap_or(session.meter_start_wh);
        let stop_wh = req
            .meter_stop_wh
            .or(session.meter_stop_wh)
            .ok_or_else(|| Error::invalid("meter_stop_wh", "is required: none was recorded"))?;
        let started_at = req.started_at.unwrap_or(session.started_at);
        let stopped_at = req
            .stopped_at
            .or(session.stopped_at)
            .ok_or_else(|| Error::invalid("stopped_at", "is required: none was recorded"))?;
        let currency = session.prices.currency.clone();
        let resolution = match req.action {
            ResolveAction::Void => Resolution {
                status: SessionStatus::Void,
                meter_start_wh: session.meter_start_wh,
                meter_stop_wh: session.meter_stop_wh.unwrap_or(session.last_meter_wh),
                started_at: session.started_at,
                stopped_at: session.stopped_at.unwrap_or(now),
                bill: Bill {
                    energy_wh: 0,
                    duration_ms: 0,
                    lines: Vec::new(),
                    net: rust_decimal::Decimal::ZERO,
                    tax: rust_decimal::Decimal::ZERO,
                    total: rust_decimal::Decimal::ZERO,
                },
                currency,
                action: "void",
                by: who.audit_name(),
                at: now,
            },
            ResolveAction::Bill => {
                check_reading("meter_start_wh", start_wh)?;
                check_reading("meter_stop_wh", stop_wh)?;
                check_time("started_at", started_at, now)?;
                check_time("stopped_at", stopped_at, now)?;
                if stopped_at < started_at {
                    return Err(Error::invalid("stopped_at", "is before started_at"));
                }
                if stop_wh < start_wh {
                    return Err(Error::invalid("meter_stop_wh", "is below meter_start_wh"));
                }
                let device = self
                    .store
                    .get_device(&session.device)
                    .await?
                    .ok_or_else(|| Error::not_found("device"))?;
                check_energy(
                    "meter_stop_wh",
                    stop_wh - start_wh,
                    device.max_power_w,
                    started_at,
                    stopped_at,
                )?;
                let bill = cost::bill(&session.prices, start_wh, stop_wh, started_at, stopped_at)
                    .map_err(|e| Error::invalid("meter_stop_wh", e.to_string()))?;
                if [bill.net, bill.tax, bill.total]
                    .into_iter()
                    .any(|a| crate::billing::to_minor(a, &currency).is_none())
                {
                    return Err(Error::invalid(
                        "meter_stop_wh",
                        "the bill is too large to record",
                    ));
                }
                Resolution {
                    status: SessionStatus::Stopped,
                    meter_start_wh: start_wh,
                    meter_stop_wh: stop_wh,
                    started_at,
                    stopped_at,
                    bill,
                    currency,
                    action: "billed",
                    by: who.audit_name(),
                    at: now,
                }
            }
        };
        let resolved = self.store.resolve_session(id, &resolution).await?;
        let outcome = if resolved {
            resolution.action
        } else {
            "not_disputed"
        };
        self.audit(
            who,
            Some(&session.owner),
            Some(&session.device),
            "session:resolve",
            Some(format!(
                "session {id}: {}{}",
                resolution.action,
                note.map(|n| format!(" ({n})")).unwrap_or_default()
            )),
            outcome,
        )
        .await;
        if !resolved {
            return Err(Error::conflict(
                "not_disputed",
                "another operator resolved the session first",
            ));
        }
        tracing::info!(session = id, action = resolution.action, by = %resolution.by, "disputed session resolved");
        self.get_session(who, id).await
    }
}
