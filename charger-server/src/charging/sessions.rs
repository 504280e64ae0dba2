//! `session-start`, `meter-values`, `session-stop`.
//!
//! A live start (no `local_id`) re-checks the tag like `authorize` and refuses a busy
//! connector. A start that carries a `local_id` was made while the charger was offline:
//! the car has charged already, so it is always recorded (flagged `offline`), never
//! refused, and a repeat of the same `local_id` answers the same session. Sessions are
//! billed by their own start and stop times, whenever the messages arrive.

use crate::records::charging::{check_local_id, NewSession, SessionRef, StopRecord};
use chrono::{DateTime, Utc};

use super::inputs::{check_energy, check_power, check_reading, check_time};
use super::{bill_body, check_connector, free_prices, Charger, Reply, Session, SessionStatus};
use crate::billing::cost::{self, Bill, BillingError, Prices};
use crate::devices::parse_data;
use crate::error::{Error, Result};
use crate::ids::{TagUid, TariffId};
use crate::service::Service;
use crate::store::ChargerTx;
use charger_protocol::api;

/// Most samples one `meter-values` request may carry.
pub const MAX_SAMPLES: usize = 100;

/// A tag uid given in a request's `field`, checked.
pub(crate) fn tag_in(field: &str, uid: &str) -> Result<TagUid> {
    TagUid::parse(uid).map_err(|_| {
        Error::invalid(
            field,
            "an RFID uid is 8, 14 or 20 hexadecimal digits (4, 7 or 10 bytes)",
        )
    })
}

fn start_body(
    session: i64,
    tariff: Option<&TariffId>,
    prices: &Prices,
) -> api::SessionStartResponse {
    api::SessionStartResponse {
        session_id: session,
        tariff: api::TariffSnapshot {
            id: tariff.map(TariffId::to_string),
            currency: prices.currency.code().to_owned(),
            energy_per_kwh: prices.energy_per_kwh.to_string(),
            time_per_hour: prices.time_per_hour.to_string(),
            session_fee: prices.session_fee.to_string(),
            tax_rate: prices.tax_rate.to_string(),
        },
    }
}

fn billing_error(e: BillingError) -> Error {
    match e {
        BillingError::MeterBackwards { .. } => Error::invalid("meter_stop_wh", e.to_string()),
        BillingError::StopBeforeStart => {
            Error::invalid("stopped_at", "is before the session's start")
        }
        BillingError::Overflow => Error::invalid("meter_stop_wh", e.to_string()),
    }
}

/// The bill of a disputed session: its energy and duration, and nothing to pay.
fn nothing_billed(session: &Session, meter_stop_wh: i64, stopped_at: DateTime<Utc>) -> Bill {
    Bill {
        energy_wh: meter_stop_wh
            .checked_sub(session.meter_start_wh)
            .unwrap_or(0),
        duration_ms: (stopped_at - session.started_at).num_milliseconds(),
        lines: Vec::new(),
        net: rust_decimal::Decimal::ZERO,
        tax: rust_decimal::Decimal::ZERO,
        total: rust_decimal::Decimal::ZERO,
    }
}

impl Service {
    pub(super) async fn session_start(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::SessionStartRequest = parse_data(data)?;
        let tag = tag_in("tag", &req.tag)?;
        check_connector(charger, req.connector)?;
        let local_id = req.local_id.clone().map(check_local_id).transpose()?;
        let offline = local_id.is_some();
        let inputs = self.check_start(&req, offline, now);
        // A live start that breaks a rule is refused; an offline one (the car has charged)
        // is recorded, disputed.
        let dispute = match inputs {
            Err(e) if !offline => return Err(e),
            Err(e) => Some(e.to_string()),
            Ok(()) => None,
        };
        // An offline start from before the charger moved belongs to its owner then, billed
        // by that owner's tariff (docs/operations.md, "Ownership transfer").
        let earlier = match &local_id {
            Some(_) => tx.owner_at(&charger.id, req.started_at).await?,
            None => None,
        };
        // Replayed after the move, it is the former owner's, by its tariff, but disputed:
        // its new owner's charger could otherwise bill the former owner's drivers for
        // sessions it makes up. The former owner's operator resolves it (bills it, or voids
        // it).
        let dispute = match (&earlier, dispute) {
            (Some((former, _)), None) => Some(format!(
                "started before the charger moved from {former}, replayed after the move"
            )),
            (_, d) => d,
        };
        let (owner, owner_tariff) = match earlier {
            Some((owner, tariff)) => (owner, tariff),
            None => (charger.owner.clone(), charger.tariff.clone()),
        };
        if let Some(local) = &local_id {
            // A repeated offline start (the charger retried with a new request id).
            let known = SessionRef::Local(local.clone());
            if let Some(s) = tx.session(&charger.id, &known).await? {
                return Reply::typed(201, &start_body(s.id, s.tariff.as_ref(), &s.prices));
            }
            if tx.tag(&owner, &tag).await?.is_none() {
                self.note_unknown_tag(tx, &charger.id, &owner, &tag, now)
                    .await?;
            }
        } else {
            // Starts racing for this tag or connector (other writers, other instances)
            // check one after the other.
            tx.lock_start(&charger.owner, &tag, &charger.id, req.connector)
                .await?;
            self.tag_may_start(tx, charger, &tag, now).await?;
            if tx
                .active_session_on(&charger.id, req.connector)
                .await?
                .is_some()
            {
                return Err(Error::conflict(
                    "connector_busy",
                    "a session is already active on this connector",
                ));
            }
        }
        let tariff = tx.tariff_of(&owner, owner_tariff.as_ref()).await?;
        let (tariff_id, prices) = match &tariff {
            Some(t) => (Some(t.id.clone()), t.prices()),
            None => {
                tracing::warn!(device = %charger.id, "no tariff applies: the session is free");
                (None, free_prices())
            }
        };
        let new = NewSession {
            device: charger.id.clone(),
            connector: req.connector,
            owner,
            tag,
            local_id,
            offline,
            meter_start_wh: req.meter_start_wh,
            started_at: req.started_at,
            tariff: tariff_id,
            prices,
            dispute,
            created_at: now,
        };
        let Some(id) = tx.insert_session(&new).await? else {
            // The same offline start, recorded first by another writer or instance (the
            // charger retried under a new request id): the same answer as a repeat gets.
            let known = new.local_id.clone().map(SessionRef::Local);
            if let Some(known) = known {
                if let Some(s) = tx.session(&charger.id, &known).await? {
                    return Reply::typed(201, &start_body(s.id, s.tariff.as_ref(), &s.prices));
                }
            }
            return Err(Error::Internal(
                "a session's local_id conflicts, yet no session has it".to_owned(),
            ));
        };
        tracing::info!(device = %charger.id, session = id, offline, disputed = new.dispute.is_some(), "session started");
        Reply::typed(201, &start_body(id, new.tariff.as_ref(), &new.prices))
    }

    pub(super) async fn meter_values(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::MeterValuesRequest = parse_data(data)?;
        let which = SessionRef::required(req.session_id, req.local_id)?;
        if req.samples.is_empty() || req.samples.len() > MAX_SAMPLES {
            return Err(Error::invalid("samples", "must hold 1 to 100 samples"));
        }
        let session = self.session_of(tx, charger, &which).await?;
        if session.status != SessionStatus::Active {
            return Err(Error::conflict("session_closed", "the session has stopped"));
        }
        let mut prev_at = session.last_sample_at.unwrap_or(session.started_at);
        let mut prev_wh = session.last_meter_wh;
        for (i, s) in req.samples.iter().enumerate() {
            let field = |name: &str| format!("samples[{i}].{name}");
            check_reading(&field("energy_wh"), s.energy_wh)?;
            check_time(&field("at"), s.at, now)?;
            if s.at < session.started_at {
                return Err(Error::invalid(field("at"), "is before the session's start"));
            }
            if s.at < prev_at {
                return Err(Error::invalid(
                    field("at"),
                    "is before an earlier sample: samples must come in time order",
                ));
            }
            if s.energy_wh < session.meter_start_wh {
                return Err(Error::invalid(
                    field("energy_wh"),
                    "is below the session's meter start",
                ));
            }
            if s.energy_wh < prev_wh {
                return Err(Error::invalid(
                    field("energy_wh"),
                    "is below an earlier sample: the meter never goes backwards",
                ));
            }
            if let Some(p) = s.power_w {
                check_power(&field("power_w"), p, charger.max_power_w)?;
            }
            check_energy(
                &field("energy_wh"),
                s.energy_wh - session.meter_start_wh,
                charger.max_power_w,
                session.started_at,
                s.at,
            )?;
            (prev_at, prev_wh) = (s.at, s.energy_wh);
        }
        let (last, latest_at) = (prev_wh, prev_at);
        tx.add_meter_samples(session.id, &req.samples, last, latest_at)
            .await?;
        let net = if session.dispute.is_some() {
            rust_decimal::Decimal::ZERO
        } else {
            cost::running_net(
                &session.prices,
                session.meter_start_wh,
                last,
                session.started_at,
                latest_at,
            )
            .map_err(billing_error)?
        };
        Reply::typed(
            200,
            &api::MeterValuesResponse {
                session_id: session.id,
                energy_wh: last - session.meter_start_wh,
                net: crate::billing::money_text(net, &session.prices.currency),
                currency: session.prices.currency.code().to_owned(),
            },
        )
    }

    pub(super) async fn session_stop(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::SessionStopRequest = parse_data(data)?;
        let which = SessionRef::required(req.session_id, req.local_id.clone())?;
        let session = self.session_of(tx, charger, &which).await?;
        if session.status != SessionStatus::Active {
            // The same stop again (an offline charger's retry) gets the same answer.
            if session.meter_stop_wh == Some(req.meter_stop_wh)
                && session.stopped_at == Some(req.stopped_at)
            {
                let bill = match session.status {
                    SessionStatus::Disputed => {
                        nothing_billed(&session, req.meter_stop_wh, req.stopped_at)
                    }
                    _ => cost::bill(
                        &session.prices,
                        session.meter_start_wh,
                        req.meter_stop_wh,
                        session.started_at,
                        req.stopped_at,
                    )
                    .map_err(billing_error)?,
                };
                return Reply::typed(
                    200,
                    &bill_body(
                        session.id,
                        &bill,
                        &session.prices.currency,
                        session.status == SessionStatus::Disputed,
                    ),
                );
            }
            return Err(Error::conflict("session_closed", "the session has stopped"));
        }
        let billed = check_stop(&session, &req, charger, now).and_then(|()| {
            let bill = cost::bill(
                &session.prices,
                session.meter_start_wh,
                req.meter_stop_wh,
                session.started_at,
                req.stopped_at,
            )
            .map_err(billing_error)?;
            let c = &session.prices.currency;
            if [bill.net, bill.tax, bill.total]
                .into_iter()
                .any(|a| crate::billing::to_minor(a, c).is_none())
            {
                return Err(Error::invalid(
                    "meter_stop_wh",
                    "the bill is too large to record",
                ));
            }
            Ok(bill)
        });
        // Live: a stop no meter can make is refused. Replayed late (an offline session):
        // it is closed, disputed, never lost.
        let (bill, dispute) = match (billed, &session.dispute) {
            (Ok(bill), None) => (bill, None),
            (Err(e), _) if !session.offline => return Err(e),
            (Err(e), dispute) => (
                nothing_billed(&session, req.meter_stop_wh, req.stopped_at),
                Some(dispute.clone().unwrap_or_else(|| e.to_string())),
            ),
            (Ok(_), Some(dispute)) => (
                nothing_billed(&session, req.meter_stop_wh, req.stopped_at),
                Some(dispute.clone()),
            ),
        };
        let body = bill_body(
            session.id,
            &bill,
            &session.prices.currency,
            dispute.is_some(),
        );
        let stop = StopRecord {
            meter_stop_wh: req.meter_stop_wh,
            stopped_at: req.stopped_at,
            reason: req.reason,
            bill,
            dispute,
            currency: session.prices.currency.clone(),
        };
        tx.stop_session(session.id, &stop).await?;
        tracing::info!(device = %charger.id, session = session.id, disputed = stop.dispute.is_some(), "session stopped");
        Reply::typed(200, &body)
    }

    /// The start's readings and times (the offline window only for an offline start).
    fn check_start(
        &self,
        req: &api::SessionStartRequest,
        offline: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_reading("meter_start_wh", req.meter_start_wh)?;
        check_time("started_at", req.started_at, now)?;
        // A live start happens now: only a start made offline (with a local_id) may carry
        // an old time. Otherwise a charger could bill years of parking in one request.
        let live_age = i64::try_from(self.limits.live_start_max_age_s).unwrap_or(i64::MAX);
        if !offline && req.started_at < now - chrono::Duration::seconds(live_age) {
            return Err(Error::invalid(
                "started_at",
                format!(
                    "is more than {live_age} s before the server's clock; a start made while \
                     offline carries a local_id"
                ),
            ));
        }
        let window = chrono::Duration::days(i64::from(self.limits.offline_max_age_days));
        if offline && req.started_at < now - window {
            return Err(Error::invalid(
                "started_at",
                format!(
                    "is older than the offline window of {} days",
                    self.limits.offline_max_age_days
                ),
            ));
        }
        Ok(())
    }

    /// A session of this charger (404 for any other).
    async fn session_of(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        which: &SessionRef,
    ) -> Result<Session> {
        tx.session(&charger.id, which)
            .await?
            .ok_or_else(|| Error::not_found("session"))
    }
}

/// The stop's reading and time against the session so far.
fn check_stop(
    session: &Session,
    req: &api::SessionStopRequest,
    charger: &Charger,
    now: DateTime<Utc>,
) -> Result<()> {
    check_reading("meter_stop_wh", req.meter_stop_wh)?;
    check_time("stopped_at", req.stopped_at, now)?;
    if req.stopped_at < session.started_at {
        return Err(Error::invalid(
            "stopped_at",
            "is before the session's start",
        ));
    }
    if session.last_sample_at.is_some_and(|at| req.stopped_at < at) {
        return Err(Error::invalid(
            "stopped_at",
            "is before the last meter sample",
        ));
    }
    if req.meter_stop_wh < session.meter_start_wh {
        return Err(Error::invalid(
            "meter_stop_wh",
            format!(
                "the meter went backwards: stop {} Wh is below start {} Wh",
                req.meter_stop_wh, session.meter_start_wh
            ),
        ));
    }
    if req.meter_stop_wh < session.last_meter_wh {
        return Err(Error::invalid(
            "meter_stop_wh",
            format!(
                "is below the last meter sample ({} Wh): the meter never goes backwards",
                session.last_meter_wh
            ),
        ));
    }
    check_energy(
        "meter_stop_wh",
        req.meter_stop_wh - session.meter_start_wh,
        charger.max_power_w,
        session.started_at,
        req.stopped_at,
    )
}
