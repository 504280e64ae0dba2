//! The charger API's domain: what each endpoint a charger calls over MQTT means.
//!
//! Every handler runs inside the transaction of a batch of requests ([`ChargerTx`]), so a
//! request's change and the answer kept for its `(device, id)` commit together, and a
//! batch of requests shares one commit (group commit). Handlers check everything before
//! they write; a domain error (4xx) keeps what was written before it on purpose (the
//! record of an unknown tag), an internal error rolls the request back.
//!
//! - [`authorize`]: may this tag start here (or stop that session)?
//! - [`sessions`]: `session-start`, `meter-values`, `session-stop`, billing by the
//!   session's own times.
//! - [`enrollment`]: `tag-enroll` (installer cards), `ownership-claim` and `rekey` (new
//!   credentials through an X25519 exchange), `local-list`.

mod authorize;
mod enrollment;
pub mod history;
pub mod inputs;
mod remote;
pub mod resolution;
mod sessions;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::billing::cost::{Bill, Prices};
use crate::billing::{money_text, Currency};
use crate::devices::parse_data;
use crate::error::{Error, Result};
use crate::service::Service;
use crate::store::ChargerTx;
use charger_protocol::api;

pub use crate::records::charging::{
    rfc3339, Charger, LocalListItem, LocalListPage, NewSession, Resolved, Sample, Session,
    SessionRef, SessionStatus, StopReason, StopRecord, Superseded,
};
pub use enrollment::{LocalListDelta, LOCAL_LIST_PAGE};
pub use remote::{CommandResult, COMMANDS, OCPP_COMMANDS};
pub use sessions::{
    tag_in, Running, StartInput, StartKind, Started, StopInput, Stopped, UnknownStop, MAX_SAMPLES,
    NO_TAG,
};

/// The prices of a session started where no tariff applies: free, in ISO 4217's "XXX"
/// (no currency), so it is visibly apart in reports.
pub fn free_prices() -> Prices {
    Prices {
        currency: Currency::none(),
        energy_per_kwh: Decimal::ZERO,
        time_per_hour: Decimal::ZERO,
        session_fee: Decimal::ZERO,
        tax_rate: Decimal::ZERO,
    }
}

/// The endpoints a charger may call.
pub use charger_protocol::endpoint::ENDPOINTS;

/// A successful answer: its code (200 or 201) and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: u16,
    pub body: serde_json::Value,
    /// The charger's credentials (and maybe owner) changed: once this answer is delivered,
    /// its connection is closed, so it can only come back with the new ones.
    pub revoke: bool,
}

impl Reply {
    /// An answer built from its protocol type (`charger_protocol::api`).
    fn typed<T: Serialize>(code: u16, body: &T) -> Result<Self> {
        let body = serde_json::to_value(body)
            .map_err(|e| Error::Internal(format!("an answer that is not JSON: {e}")))?;
        Ok(Reply {
            code,
            body,
            revoke: false,
        })
    }

    fn revoking(body: serde_json::Value) -> Self {
        Reply {
            code: 200,
            body,
            revoke: true,
        }
    }
}

fn check_connector(charger: &Charger, connector: i64) -> Result<()> {
    if (1..=charger.connectors).contains(&connector) {
        Ok(())
    } else {
        Err(Error::invalid(
            "connector",
            format!(
                "this charger has connectors 1 to {}, not {connector}",
                charger.connectors
            ),
        ))
    }
}

/// The body of a billed session, as `session-stop` answers it.
fn bill_body(
    session_id: i64,
    bill: &Bill,
    currency: &Currency,
    disputed: bool,
) -> api::SessionStopResponse {
    api::SessionStopResponse {
        session_id,
        energy_wh: bill.energy_wh,
        duration_s: bill.duration_ms / 1000,
        net: money_text(bill.net, currency),
        tax: money_text(bill.tax, currency),
        total: money_text(bill.total, currency),
        currency: currency.code().to_owned(),
        disputed: disputed.then_some(true),
    }
}

/// What a handler knows of the request beside its data.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The request id's JSON text.
    pub request_id: &'a str,
    pub endpoint: &'a str,
}

/// A charger's own transaction, as a protocol edge without a batch of its own holds it
/// (the OCPP edge: one per CALL): what the charging calls run inside, committed by
/// [`Service::commit`].
pub type ChargerWork = Box<dyn ChargerTx>;

impl Service {
    /// Opens a transaction for one of `device`'s messages, with the charger as it is
    /// now; None when no such charger exists.
    pub async fn begin_charger(
        &self,
        device: &crate::ids::DeviceId,
    ) -> Result<Option<(ChargerWork, Charger)>> {
        let mut tx = self.store.begin().await?;
        match tx.charger(device, "").await? {
            Some((charger, _)) => Ok(Some((tx, charger))),
            None => Ok(None),
        }
    }

    /// A transaction for a group of charger messages (each finds its charger with
    /// [`Service::charger_in`]), committed by [`Service::commit`].
    pub async fn begin_work(&self) -> Result<ChargerWork> {
        Ok(self.store.begin().await?)
    }

    /// A charger as its messages need it, inside `tx`.
    pub async fn charger_in(
        &self,
        tx: &mut dyn ChargerTx,
        device: &crate::ids::DeviceId,
    ) -> Result<Option<Charger>> {
        Ok(tx.charger(device, "").await?.map(|(c, _)| c))
    }

    /// A read-only [`ChargerWork`] for a message that changes nothing (an authorization):
    /// no write transaction, no commit to wait for; the unknown tags it sees are held for
    /// [`Service::commit`], which writes them in a transaction of their own.
    pub async fn begin_charger_read(
        &self,
        device: &crate::ids::DeviceId,
    ) -> Result<Option<(ChargerWork, Charger)>> {
        let mut tx = self.store.begin_read().await?;
        match tx.charger(device, "").await? {
            Some((charger, _)) => Ok(Some((tx, charger))),
            None => Ok(None),
        }
    }

    /// Commits what a charger's message changed, durably, with the unknown tags it saw.
    pub async fn commit(&self, mut tx: ChargerWork) -> Result<()> {
        let notes = tx.held_notes();
        if notes.is_empty() {
            tx.commit().await?;
            return Ok(());
        }
        // A read-only one cannot write them: they go in a transaction of their own.
        let read_only = tx.is_read_only();
        let mut w = if read_only {
            tx.commit().await?;
            self.store.begin().await?
        } else {
            tx
        };
        let dropped = w
            .record_unknown_tags(&notes, self.limits.unknown_tags_per_owner)
            .await?;
        crate::metrics::limit_add(crate::metrics::Limit::UnknownTags, dropped);
        w.commit().await?;
        Ok(())
    }

    /// Runs one charger request inside `tx`: the endpoint's handler, by name. An unknown
    /// endpoint is 404.
    pub async fn charger_request(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        request: &RequestContext<'_>,
        data: &serde_json::Value,
    ) -> Result<Reply> {
        let endpoint = request.endpoint;
        let now = self.now();
        use api::Endpoint;
        let Some(endpoint) = Endpoint::parse(endpoint) else {
            return Err(Error::not_found("endpoint"));
        };
        match endpoint {
            Endpoint::Boot => self.boot(tx, charger, data).await,
            Endpoint::Status => self.status(tx, charger, data, now).await,
            Endpoint::Authorize => self.authorize(tx, charger, data, now).await,
            Endpoint::SessionStart => self.session_start(tx, charger, data, now).await,
            Endpoint::MeterValues => self.meter_values(tx, charger, data, now).await,
            Endpoint::SessionStop => self.session_stop(tx, charger, data, now).await,
            Endpoint::TagEnroll => self.tag_enroll(tx, charger, data, now).await,
            Endpoint::OwnershipClaim => self.ownership_claim(tx, charger, request, data, now).await,
            Endpoint::LocalList => self.local_list(tx, charger, data).await,
            Endpoint::Rekey => self.rekey(tx, charger, request, data, now).await,
            Endpoint::Heartbeat => self.heartbeat(data),
            Endpoint::Offline => {
                // Presence is recorded as the request arrives (behind an external
                // broker); on the embedded broker the socket's close already did.
                let _: api::OfflineRequest = parse_data(data)?;
                Reply::typed(200, &api::OfflineResponse {})
            }
        }
    }

    /// `boot`: records firmware and model; answers server time, heartbeat and owner.
    async fn boot(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
    ) -> Result<Reply> {
        let req: api::BootRequest = parse_data(data)?;
        for (field, value) in [("firmware", &req.firmware), ("model", &req.model)] {
            if value.is_empty() || value.chars().count() > crate::devices::MAX_INFO_LEN {
                return Err(Error::invalid(field, "must be 1 to 100 characters"));
            }
        }
        if req.connectors != charger.connectors {
            tracing::warn!(
                device = %charger.id,
                reported = req.connectors,
                provisioned = charger.connectors,
                "charger reports another connector count than provisioned"
            );
        }
        self.record_boot(tx, charger, &req.firmware, &req.model)
            .await?;
        Reply::typed(
            200,
            &api::BootResponse {
                server_time: self.now(),
                heartbeat_s: self.limits.heartbeat_s,
                owner: charger.owner.to_string(),
                // The count the server uses (the provisioned one), whatever the charger said.
                connectors: charger.connectors,
            },
        )
    }

    /// `heartbeat {}`: the server's time (a charger sends it when it has sent nothing else
    /// for `heartbeat_s`).
    fn heartbeat(&self, data: &serde_json::Value) -> Result<Reply> {
        let _: api::HeartbeatRequest = parse_data(data)?;
        Reply::typed(
            200,
            &api::HeartbeatResponse {
                server_time: self.now(),
            },
        )
    }

    /// `status`: records a connector's state (and error code, if any).
    async fn status(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Reply> {
        let req: api::StatusRequest = parse_data(data)?;
        if let Some(error) = &req.error {
            if error.is_empty() || error.chars().count() > crate::devices::MAX_INFO_LEN {
                return Err(Error::invalid("error", "must be 1 to 100 characters"));
            }
        }
        check_connector(charger, req.connector)?;
        self.record_status(
            tx,
            charger,
            req.connector,
            req.state.as_str(),
            req.error.as_deref(),
            now,
        )
        .await?;
        Reply::typed(200, &api::Empty {})
    }

    /// An OCPP charger booted: its registration before this boot (Pending: its first, then
    /// registered; Rejected: an operator refused it, and it stays so).
    pub async fn register_ocpp(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
    ) -> Result<crate::records::devices::Registration> {
        Ok(tx.register_ocpp(&charger.id).await?)
    }

    /// An OCPP 2.0.1 station reported these configuration variables (its base report).
    pub async fn record_station_variables(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        variables: &[crate::records::devices::StationVariable],
    ) -> Result<()> {
        tx.set_station_variables(&charger.id, variables).await?;
        Ok(())
    }

    /// A charger booted with this firmware and model.
    pub async fn record_boot(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        firmware: &str,
        model: &str,
    ) -> Result<()> {
        tx.set_device_boot(&charger.id, firmware, model).await?;
        // A charger on a site is given its default limit again.
        self.charger_changed(&charger.id);
        Ok(())
    }

    /// A connector's state (and error code) changed; connector 0 is the charger as a
    /// whole (OCPP), kept in its history only.
    pub async fn record_status(
        &self,
        tx: &mut dyn ChargerTx,
        charger: &Charger,
        connector: i64,
        state: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if connector != 0 {
            check_connector(charger, connector)?;
        }
        tx.set_connector_state(&charger.id, connector, state, error, now)
            .await?;
        Ok(())
    }
}
