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
pub fn tag_in(field: &str, uid: &str) -> Result<TagUid> {
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
            .unwrap_or(0)
            .max(0),
        duration_ms: (stopped_at - session.started_at).num_milliseconds(),
        lines: Vec::new(),
        net: rust_decimal::Decimal::ZERO,
        tax: rust_decimal::Decimal::ZERO,
        total: rust_decimal::Decimal::ZERO,
    }
}

/// How a session start reaches the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartKind {
    /// Happening now, from a charger online: refused when a rule says no.
    Live,
    /// Made while the charger was offline, named by the charger's own id (`local_id`):
    /// always recorded (disputed when a rule says no); a repeat answers the same session.
    Offline(String),
    /// Reported by a charger that cannot be refused (OCPP's StartTransaction), under a key
    /// the edge derives from what identifies it: always recorded, disputed when its tag is
    /// refused or a rule says no; a repeat of the key answers the same session.
    Reported(String),
}

/// A session start, whatever protocol carried it.
#[derive(Debug, Clone)]
pub struct StartInput {
    pub tag: TagUid,
    pub connector: i64,
    pub meter_start_wh: i64,
    pub started_at: DateTime<Utc>,
    pub kind: StartKind,
    /// A reported start whose token is no tag of this backend (why): recorded under
    /// [`NO_TAG`], disputed, with no tag check and no unknown-tag sighting.
    pub unidentified: Option<String>,
    /// A reported start the edge doubts (why, such as a start reading it was never told):
    /// recorded, disputed.
    pub doubt: Option<String>,
}

/// A started (or found again) session.
#[derive(Debug)]
pub struct Started {
    pub session_id: i64,
    pub tariff: Option<TariffId>,
    pub prices: Prices,
    /// A reported start: the tag's verdict (`Ok` with the tag when it may charge).
    pub verdict: Option<std::result::Result<crate::tags::Tag, Error>>,
}

/// A session's standing after samples.
#[derive(Debug, Clone)]
pub struct Running {
    pub session_id: i64,
    pub energy_wh: i64,
    pub net: rust_decimal::Decimal,
    /// With tax.
    pub total: rust_decimal::Decimal,
    /// Disputed: nothing is billed until an operator resolves it.
    pub disputed: bool,
    pub currency: crate::billing::Currency,
}

/// A session stop, whatever protocol carried it.
#[derive(Debug, Clone)]
pub struct StopInput {
    pub which: SessionRef,
    pub meter_stop_wh: i64,
    pub stopped_at: DateTime<Utc>,
    pub reason: crate::records::charging::StopReason,
    /// Whether the charger can be refused: a MyBox charger can (its live stop is checked),
    /// an OCPP charger cannot (an implausible stop closes the session disputed).
    pub refusable: bool,
}

/// A stopped session and its bill.
#[derive(Debug, Clone)]
pub struct Stopped {
    pub session_id: i64,
    pub bill: Bill,
    pub currency: crate::billing::Currency,
    pub disputed: bool,
}

/// A stop for a transaction the server never saw start (an OCPP charger's placeholder id
/// for a start it could not report): recorded as a disputed session, never lost.
#[derive(Debug, Clone)]
pub struct UnknownStop {
    /// What the charger called it (its `transactionId`).
    pub reference: String,
    /// The session's key, when the charger names its transactions for good (2.0.1): later
    /// events of the transaction find this session. Otherwise one is made of the stop.
    pub key: Option<String>,
    /// The tag, when the stop names one.
    pub tag: Option<TagUid>,
    pub meter_start_wh: i64,
    pub started_at: DateTime<Utc>,
    pub meter_stop_wh: i64,
    pub stopped_at: DateTime<Utc>,
    pub reason: crate::records::charging::StopReason,
}

/// The tag recorded for a session whose stop names none.
pub const NO_TAG: &str = "00000000";

impl Service {
    /// `session-start` (MyBox): the request's fields onto [`Service::start_session`].
    pub(super) async fn session_start(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::SessionStartRequest = parse_data(data)?;
        let input = StartInput {
            tag: tag_in("tag", &req.tag)?,
            connector: req.connector,
            meter_start_wh: req.meter_start_wh,
            started_at: req.started_at,
            kind: match req.local_id {
                Some(local) => StartKind::Offline(check_local_id(local)?),
                None => StartKind::Live,
            },
            unidentified: None,
            doubt: None,
        };
        let s = self.start_session(tx, charger, input, now).await?;
        Reply::typed(201, &start_body(s.session_id, s.tariff.as_ref(), &s.prices))
    }

    /// Starts a session (or finds the one a repeated offline or reported start made).
    pub async fn start_session(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        req: StartInput,
        now: DateTime<Utc>,
    ) -> Result<Started> {
        let tag = req.tag.clone();
        check_connector(charger, req.connector)?;
        // Its site (if any) shares its connection out again once this is committed.
        self.charger_changed(&charger.id);
        let (local_id, reported) = match &req.kind {
            StartKind::Live => (None, false),
            StartKind::Offline(l) => (Some(l.clone()), false),
            StartKind::Reported(k) => (Some(k.clone()), true),
        };
        // A reported start older than a live one may be was queued while offline.
        let live_age = i64::try_from(self.limits.live_start_max_age_s).unwrap_or(i64::MAX);
        let offline = match req.kind {
            StartKind::Live => false,
            StartKind::Offline(_) => true,
            StartKind::Reported(_) => req.started_at < now - chrono::Duration::seconds(live_age),
        };
        let inputs = self.check_start(req.meter_start_wh, req.started_at, offline, now);
        // A live start that breaks a rule is refused; an offline or reported one (the car
        // has charged) is recorded, disputed.
        let dispute = match inputs {
            Err(e) if local_id.is_none() => return Err(e),
            Err(e) => Some(e.to_string()),
            Ok(()) => None,
        };
        // An offline start from before the charger moved belongs to its owner then, billed
        // by that owner's tariff (docs/operations.md, "Ownership transfer").
        let earlier = match offline {
            true => tx.owner_at(&charger.id, req.started_at).await?,
            false => None,
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
        let mut verdict = None;
        let mut dispute = dispute.or_else(|| req.doubt.clone());
        if let Some(local) = &local_id {
            // A repeated offline or reported start (the charger retried).
            let known = SessionRef::Local(local.clone());
            if let Some(s) = tx.session(&charger.id, &known).await? {
                let verdict = match (reported, &req.unidentified) {
                    (true, Some(_)) => Some(Err(Error::not_found("tag"))),
                    (true, None) => {
                        Some(self.tag_verdict_for(tx, charger, &tag, now, &known).await?)
                    }
                    (false, _) => None,
                };
                return Ok(Started {
                    session_id: s.id,
                    tariff: s.tariff,
                    prices: s.prices,
                    verdict,
                });
            }
            if reported {
                // A new transaction on a connector whose last one never reported its end
                // (its stop was lost): that one is closed, disputed, at its last reading.
                if let Some(stale) = tx.active_session_on(&charger.id, req.connector).await? {
                    self.close_superseded(tx, charger, stale, now).await?;
                }
                let v = match &req.unidentified {
                    Some(why) => {
                        dispute.get_or_insert_with(|| why.clone());
                        Err(Error::not_found("tag"))
                    }
                    None => self.tag_verdict(tx, charger, &tag, now).await?,
                };
                if let Err(e) = &v {
                    dispute.get_or_insert_with(|| format!("the tag was refused: {e}"));
                }
                verdict = Some(v);
            } else if tx.tag(&owner, &tag).await?.is_none() {
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
                    return Ok(Started {
                        session_id: s.id,
                        tariff: s.tariff,
                        prices: s.prices,
                        verdict,
                    });
                }
            }
            return Err(Error::Internal(
                "a session's local_id conflicts, yet no session has it".to_owned(),
            ));
        };
        tracing::info!(device = %charger.id, session = id, offline, disputed = new.dispute.is_some(), "session started");
        Ok(Started {
            session_id: id,
            tariff: new.tariff,
            prices: new.prices,
            verdict,
        })
    }

    /// Where one of this charger's sessions starts and stands, whatever its status: its
    /// start time, its start reading and its last reading; None when it has no such
    /// session.
    pub async fn session_span(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        which: &SessionRef,
    ) -> Result<Option<(DateTime<Utc>, i64, i64)>> {
        Ok(tx
            .session(&charger.id, which)
            .await?
            .map(|s| (s.started_at, s.meter_start_wh, s.last_meter_wh)))
    }

    /// The last meter reading of one of this charger's sessions, whatever its status;
    /// None when it has no such session.
    pub async fn session_reading(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        which: &SessionRef,
    ) -> Result<Option<i64>> {
        Ok(tx
            .session(&charger.id, which)
            .await?
            .map(|s| s.last_meter_wh))
    }

    /// A reported session's start, moved back to an earlier reading (a station's start
    /// event replayed after its later events): only for a session named by the charger,
    /// to a time and reading before its own start that pass the rules of a reported start
    /// (the offline window) and plausibility. An active session's start moves; a stopped
    /// one's bill was given already, so it is not billed again: it becomes disputed, for
    /// an operator to correct. Anything else changes nothing. Whether it changed.
    pub async fn amend_reported_start(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        which: &SessionRef,
        at: DateTime<Utc>,
        meter_wh: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let Some(s) = tx.session(&charger.id, which).await? else {
            return Ok(false);
        };
        let earlier = at < s.started_at && meter_wh <= s.meter_start_wh;
        let open = matches!(s.status, SessionStatus::Active | SessionStatus::Stopped);
        if !open || s.local_id.is_none() || !earlier {
            return Ok(false);
        }
        let (end_wh, end_at) = match (s.meter_stop_wh, s.stopped_at) {
            (Some(wh), Some(stopped)) => (wh, stopped),
            _ => (s.last_meter_wh, s.last_sample_at.unwrap_or(s.started_at)),
        };
        if self.check_start(meter_wh, at, true, now).is_err()
            || check_energy(
                "meter_start_wh",
                end_wh - meter_wh,
                charger.max_power_w,
                at,
                end_at,
            )
            .is_err()
        {
            return Ok(false);
        }
        if s.status == SessionStatus::Active {
            tx.amend_session_start(s.id, at, meter_wh).await?;
            return Ok(true);
        }
        let reason = format!(
            "a start event replayed after its end puts its start at {} ({meter_wh} Wh): \
             the bill given at its end is for an operator to correct",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        let disputed = tx.dispute_stopped_session(s.id, &reason).await?;
        if disputed {
            tracing::info!(device = %charger.id, session = s.id, "a stopped session disputed: its start event came after its end");
        }
        Ok(disputed)
    }

    /// The connector of one of this charger's sessions; None when it has no such session.
    pub async fn session_connector(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        which: &SessionRef,
    ) -> Result<Option<i64>> {
        Ok(tx.session(&charger.id, which).await?.map(|s| s.connector))
    }

    /// `meter-values` (MyBox): the request's fields onto [`Service::add_samples`].
    pub(super) async fn meter_values(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::MeterValuesRequest = parse_data(data)?;
        let which = SessionRef::required(req.session_id, req.local_id)?;
        let r = self
            .add_samples(tx, charger, &which, &req.samples, now)
            .await?;
        Reply::typed(
            200,
            &api::MeterValuesResponse {
                session_id: r.session_id,
                energy_wh: r.energy_wh,
                net: crate::billing::money_text(r.net, &r.currency),
                currency: r.currency.code().to_owned(),
            },
        )
    }

    /// Adds meter samples (in time order, energy in Wh) to an active session; returns its
    /// energy and running cost.
    pub async fn add_samples(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        which: &SessionRef,
        samples: &[crate::records::charging::Sample],
        now: DateTime<Utc>,
    ) -> Result<Running> {
        if samples.is_empty() || samples.len() > MAX_SAMPLES {
            return Err(Error::invalid("samples", "must hold 1 to 100 samples"));
        }
        let session = self.session_of(tx, charger, which).await?;
        if session.status != SessionStatus::Active {
            return Err(Error::conflict("session_closed", "the session has stopped"));
        }
        let mut prev_at = session.last_sample_at.unwrap_or(session.started_at);
        let mut prev_wh = session.last_meter_wh;
        for (i, s) in samples.iter().enumerate() {
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
            if s.current_a
                .is_some_and(|c| c.iter().any(|a| *a > crate::sites::MAX_CHARGER_A))
            {
                return Err(Error::invalid(field("current_a"), "must be 0 to 500 A"));
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
        tx.add_meter_samples(session.id, samples, last, latest_at)
            .await?;
        // What the car draws now, for its site (a car drawing less leaves room to others).
        if let Some(current) = samples.last().and_then(|s| s.current_a) {
            let most = current.iter().copied().max().unwrap_or(0);
            tx.note_drawn(session.id, i64::from(most) * 10).await?;
        }
        let (net, total) = if session.dispute.is_some() {
            (rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO)
        } else {
            let b = cost::bill(
                &session.prices,
                session.meter_start_wh,
                last,
                session.started_at,
                latest_at.max(session.started_at),
            )
            .map_err(billing_error)?;
            (b.net, b.total)
        };
        Ok(Running {
            session_id: session.id,
            energy_wh: last - session.meter_start_wh,
            net,
            total,
            disputed: session.dispute.is_some(),
            currency: session.prices.currency.clone(),
        })
    }

    /// `session-stop` (MyBox): the request's fields onto [`Service::stop_session`].
    pub(super) async fn session_stop(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::SessionStopRequest = parse_data(data)?;
        let input = StopInput {
            which: SessionRef::required(req.session_id, req.local_id.clone())?,
            meter_stop_wh: req.meter_stop_wh,
            stopped_at: req.stopped_at,
            reason: req.reason,
            refusable: true,
        };
        let s = self.stop_session(tx, charger, input, now).await?;
        Reply::typed(
            200,
            &bill_body(s.session_id, &s.bill, &s.currency, s.disputed),
        )
    }

    /// Stops a session and bills it by its own times. The same stop again gets the same
    /// bill; another stop of a stopped session is 409.
    pub async fn stop_session(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        req: StopInput,
        now: DateTime<Utc>,
    ) -> Result<Stopped> {
        self.charger_changed(&charger.id);
        let session = self.session_of(tx, charger, &req.which).await?;
        if session.status != SessionStatus::Active {
            // The same stop again (an offline charger's retry) gets the same answer.
            if session.meter_stop_wh == Some(req.meter_stop_wh)
                && session.stopped_at == Some(req.stopped_at)
            {
                let disputed = session.status == SessionStatus::Disputed;
                let bill = match disputed {
                    true => nothing_billed(&session, req.meter_stop_wh, req.stopped_at),
                    false => cost::bill(
                        &session.prices,
                        session.meter_start_wh,
                        req.meter_stop_wh,
                        session.started_at,
                        req.stopped_at,
                    )
                    .map_err(billing_error)?,
                };
                return Ok(Stopped {
                    session_id: session.id,
                    bill,
                    currency: session.prices.currency.clone(),
                    disputed,
                });
            }
            return Err(Error::conflict("session_closed", "the session has stopped"));
        }
        let billed = check_stop(&session, req.meter_stop_wh, req.stopped_at, charger, now)
            .and_then(|()| {
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
        // Live: a stop no meter can make is refused. Replayed late (an offline session)
        // or from a charger that cannot be refused: it is closed, disputed, never lost.
        let (bill, dispute) = match (billed, &session.dispute) {
            (Ok(bill), None) => (bill, None),
            (Err(e), _) if req.refusable && !session.offline => return Err(e),
            (Err(e), dispute) => (
                nothing_billed(&session, req.meter_stop_wh, req.stopped_at),
                Some(dispute.clone().unwrap_or_else(|| e.to_string())),
            ),
            (Ok(_), Some(dispute)) => (
                nothing_billed(&session, req.meter_stop_wh, req.stopped_at),
                Some(dispute.clone()),
            ),
        };
        let stopped = Stopped {
            session_id: session.id,
            bill: bill.clone(),
            currency: session.prices.currency.clone(),
            disputed: dispute.is_some(),
        };
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
        Ok(stopped)
    }

    /// Closes an active session another transaction on its connector replaced: disputed,
    /// at its last reading and time, billed nothing, for an operator to resolve.
    async fn close_superseded(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        session: i64,
        _now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(s) = tx.session(&charger.id, &SessionRef::Id(session)).await? else {
            return Ok(());
        };
        let stopped_at = s.last_sample_at.unwrap_or(s.started_at);
        let stop = StopRecord {
            meter_stop_wh: s.last_meter_wh,
            stopped_at,
            reason: crate::records::charging::StopReason::Other,
            bill: nothing_billed(&s, s.last_meter_wh, stopped_at),
            dispute: Some(
                "another transaction started on its connector before its end was reported"
                    .to_owned(),
            ),
            currency: s.prices.currency.clone(),
        };
        tx.stop_session(s.id, &stop).await?;
        tracing::info!(device = %charger.id, session = s.id, "a session without an end closed, disputed");
        Ok(())
    }

    /// Records a stop of a session the server never saw start: a disputed session (on
    /// connector 0, "the charger as a whole", since the stop names none) for an operator
    /// to resolve. A repeat of the same stop finds the same session.
    pub async fn record_unknown_stop(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        stop: UnknownStop,
        now: DateTime<Utc>,
    ) -> Result<Stopped> {
        let key = match stop.key {
            Some(key) => check_local_id(key)?,
            None => check_local_id(format!(
                "stop:{}:{}:{}",
                stop.reference,
                stop.stopped_at.timestamp_millis(),
                stop.meter_stop_wh
            ))?,
        };
        let which = SessionRef::Local(key.clone());
        if tx.session(&charger.id, &which).await?.is_none() {
            let tag = match stop.tag {
                Some(t) => t,
                None => TagUid::parse(NO_TAG)
                    .map_err(|e| Error::Internal(format!("the placeholder tag: {e}")))?,
            };
            let tariff = tx
                .tariff_of(&charger.owner, charger.tariff.as_ref())
                .await?;
            let (tariff_id, prices) = match &tariff {
                Some(t) => (Some(t.id.clone()), t.prices()),
                None => (None, free_prices()),
            };
            let new = NewSession {
                device: charger.id.clone(),
                connector: 0,
                owner: charger.owner.clone(),
                tag,
                local_id: Some(key),
                offline: true,
                meter_start_wh: stop.meter_start_wh.min(stop.meter_stop_wh),
                started_at: stop.started_at.min(stop.stopped_at),
                tariff: tariff_id,
                prices,
                dispute: Some(format!(
                    "the charger stopped transaction {}, which the server never saw start",
                    stop.reference
                )),
                created_at: now,
            };
            tx.insert_session(&new).await?;
        }
        let input = StopInput {
            which,
            meter_stop_wh: stop.meter_stop_wh,
            stopped_at: stop.stopped_at,
            reason: stop.reason,
            refusable: false,
        };
        self.stop_session(tx, charger, input, now).await
    }

    /// The start's readings and times (the offline window only for an offline start).
    fn check_start(
        &self,
        meter_start_wh: i64,
        started_at: DateTime<Utc>,
        offline: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        check_reading("meter_start_wh", meter_start_wh)?;
        check_time("started_at", started_at, now)?;
        // A live start happens now: only a start made offline (with a local_id) may carry
        // an old time. Otherwise a charger could bill years of parking in one request.
        let live_age = i64::try_from(self.limits.live_start_max_age_s).unwrap_or(i64::MAX);
        if !offline && started_at < now - chrono::Duration::seconds(live_age) {
            return Err(Error::invalid(
                "started_at",
                format!(
                    "is more than {live_age} s before the server's clock; a start made while \
                     offline carries a local_id"
                ),
            ));
        }
        let window = chrono::Duration::days(i64::from(self.limits.offline_max_age_days));
        if offline && started_at < now - window {
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

struct StopReading {
    meter_stop_wh: i64,
    stopped_at: DateTime<Utc>,
}

/// The stop's reading and time against the session so far.
fn check_stop(
    session: &Session,
    meter_stop_wh: i64,
    stopped_at: DateTime<Utc>,
    charger: &Charger,
    now: DateTime<Utc>,
) -> Result<()> {
    let req = StopReading {
        meter_stop_wh,
        stopped_at,
    };
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
