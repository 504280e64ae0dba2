//! Ownership transfer with the receiver's consent, and credential rotation.
//!
//! 1. The charger's owner (or the admin) offers it to another owner. The answer is the
//!    same whether that owner exists or not, so owner ids cannot be probed.
//! 2. The receiving owner, with its own token, accepts (and only then, and only it, sees
//!    the claim code) or declines. The sender may withdraw the offer; it expires.
//! 3. The code is entered at the charger (`ownership-claim`, see `charging::enrollment`):
//!    the charger moves, gets new credentials through an X25519 exchange, and its old
//!    password and key are refused.
//!
//! Operators can also rotate a charger's credentials over REST (a leaked bundle): a new
//! bundle, shown once; the old password and key are refused at once and the charger's
//! connection is closed.

use crate::records::devices::{TransferOffer, TransferStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Bundle;
use crate::charging::rfc3339;
use crate::error::{Error, Result};
use crate::ids::{DeviceId, OwnerId};
use crate::secrets::{hash_secret, random_token};
use crate::service::{Principal, Service};
use crate::store::NewTransfer;

/// How long an offer (and the code of an accepted one) stays valid.
pub const TRANSFER_VALID_HOURS: i64 = 72;

/// `POST /api/v1/devices/{id}/transfers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    pub to: OwnerId,
}

/// An offer as the REST API shows it. `code` only in the receiver's answer to `accept`.
#[derive(Debug, Clone, Serialize)]
pub struct TransferView {
    pub id: String,
    pub device: DeviceId,
    pub from: OwnerId,
    pub to: OwnerId,
    pub status: TransferStatus,
    pub expires_at: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// `GET /api/v1/transfers` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// A page of offers.
#[derive(Debug, Clone, Serialize)]
pub struct TransferPage {
    pub transfers: Vec<TransferView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A cursor this API made: `<created ms>_<id>`.
fn parse_transfer_cursor(cursor: &str) -> Result<(DateTime<Utc>, String)> {
    let bad = || Error::invalid("cursor", "is not a cursor this API returned");
    let (ms, id) = cursor.split_once('_').ok_or_else(bad)?;
    let at = ms
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(bad)?;
    if id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok((at, id.to_owned()))
}

fn closed(status: TransferStatus) -> Error {
    Error::conflict(
        "transfer_closed",
        format!("the offer is {}", status.as_str()),
    )
}

impl Service {
    /// Offers `device` to owner `to`. The answer does not say whether `to` exists.
    pub async fn create_transfer(
        &self,
        who: &Principal,
        device: &DeviceId,
        req: TransferRequest,
    ) -> Result<TransferView> {
        let d = self.get_device(who, device).await?;
        if d.owner == req.to {
            return Err(Error::invalid(
                "to",
                "the charger already belongs to this owner",
            ));
        }
        let now = self.now();
        let offer = TransferOffer {
            id: format!("tr_{}", random_token(12)),
            device: device.clone(),
            from: d.owner.clone(),
            to: req.to,
            status: TransferStatus::Offered,
            expires_at: now + chrono::Duration::hours(TRANSFER_VALID_HOURS),
            created_at: now,
            updated_at: now,
        };
        let stored = self
            .store
            .insert_transfer(
                &offer,
                self.limits.transfers_per_receiver,
                self.limits.transfers_per_pair,
            )
            .await?;
        let refused = match stored {
            NewTransfer::Stored => None,
            NewTransfer::NotTheSenders => Some(Error::not_found("device")),
            NewTransfer::ChargerHasOpenOffer => Some(Error::conflict(
                "transfer_open",
                "the charger has an open offer already; withdraw it first",
            )),
            // Said the same whether or not the receiving owner exists.
            NewTransfer::ReceiverFull => Some(Error::conflict(
                "receiver_inbox_full",
                "the receiving owner has as many open offers as it may; try again later",
            )),
            NewTransfer::PairFull => Some(Error::conflict(
                "too_many_offers",
                "you have as many open offers to this owner as you may; withdraw one first",
            )),
        };
        let outcome = refused.as_ref().map_or("ok", Error::code);
        self.audit(
            who,
            Some(&d.owner),
            Some(device),
            "transfer:offer",
            Some(format!("to {}", offer.to)),
            outcome,
        )
        .await;
        if let Some(e) = refused {
            return Err(e);
        }
        tracing::info!(%device, from = %offer.from, to = %offer.to, transfer = %offer.id, "transfer offered");
        Ok(offer.view(now))
    }

    /// A page of the offers the caller sent or received (all of them for the admin),
    /// newest first.
    pub async fn list_transfers(&self, who: &Principal, q: TransferQuery) -> Result<TransferPage> {
        let limit = q.limit.unwrap_or(crate::charging::history::PAGE_DEFAULT);
        if !(1..=crate::charging::history::PAGE_MAX).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 500"));
        }
        let cursor = q.cursor.as_deref().map(parse_transfer_cursor).transpose()?;
        let now = self.now();
        let mut offers = self
            .store
            .list_transfers(who.owner_filter(), cursor, limit + 1)
            .await?;
        let more = offers.len() as i64 > limit;
        offers.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = match (more, offers.last()) {
            (true, Some(last)) => Some(format!(
                "{}_{}",
                last.created_at.timestamp_millis(),
                last.id
            )),
            _ => None,
        };
        Ok(TransferPage {
            transfers: offers.iter().map(|o| o.view(now)).collect(),
            next_cursor,
        })
    }

    /// One offer the caller sent or received.
    pub async fn get_transfer(&self, who: &Principal, id: &str) -> Result<TransferView> {
        Ok(self.visible_transfer(who, id).await?.view(self.now()))
    }

    async fn visible_transfer(&self, who: &Principal, id: &str) -> Result<TransferOffer> {
        if id.len() > 64 {
            return Err(Error::not_found("transfer"));
        }
        match self.store.get_transfer(id).await? {
            Some(o) if who.can_see(&o.from) || who.can_see(&o.to) => Ok(o),
            _ => Err(Error::not_found("transfer")),
        }
    }

    /// The receiving owner accepts: the answer carries the claim code, shown this once.
    pub async fn accept_transfer(&self, who: &Principal, id: &str) -> Result<TransferView> {
        let offer = self.receiving(who, id).await?;
        let now = self.now();
        let status = offer.status_at(now);
        if status != TransferStatus::Offered {
            return Err(closed(status));
        }
        let code = random_token(18);
        let moved = self
            .store
            .set_transfer_status(
                id,
                TransferStatus::Offered,
                TransferStatus::Accepted,
                Some(&hash_secret(&code)),
                now,
            )
            .await?;
        if !moved {
            return Err(Error::conflict("transfer_closed", "the offer has changed"));
        }
        tracing::info!(transfer = %id, device = %offer.device, to = %offer.to, "transfer accepted");
        let mut view = TransferOffer {
            status: TransferStatus::Accepted,
            ..offer
        }
        .view(now);
        view.code = Some(code);
        Ok(view)
    }

    /// The receiving owner declines an open offer.
    pub async fn decline_transfer(&self, who: &Principal, id: &str) -> Result<TransferView> {
        let offer = self.receiving(who, id).await?;
        self.close_transfer(offer, TransferStatus::Declined).await
    }

    /// The sender (or the admin) withdraws an open offer, accepted or not.
    pub async fn withdraw_transfer(&self, who: &Principal, id: &str) -> Result<TransferView> {
        let offer = self.visible_transfer(who, id).await?;
        if !who.can_see(&offer.from) {
            return Err(Error::forbidden(
                "not_sender",
                "only the charger's owner may withdraw the offer",
            ));
        }
        self.close_transfer(offer, TransferStatus::Withdrawn).await
    }

    async fn receiving(&self, who: &Principal, id: &str) -> Result<TransferOffer> {
        let offer = self.visible_transfer(who, id).await?;
        match who {
            Principal::Owner(o) if *o == offer.to => Ok(offer),
            _ => Err(Error::forbidden(
                "not_receiver",
                "only the receiving owner answers an offer, with its own token",
            )),
        }
    }

    async fn close_transfer(
        &self,
        offer: TransferOffer,
        to: TransferStatus,
    ) -> Result<TransferView> {
        let now = self.now();
        let status = offer.status_at(now);
        if !matches!(status, TransferStatus::Offered | TransferStatus::Accepted) {
            return Err(closed(status));
        }
        if !self
            .store
            .set_transfer_status(&offer.id, offer.status, to, None, now)
            .await?
        {
            return Err(Error::conflict("transfer_closed", "the offer has changed"));
        }
        tracing::info!(transfer = %offer.id, status = to.as_str(), "transfer closed");
        Ok(TransferOffer {
            status: to,
            ..offer
        }
        .view(now))
    }

    /// Gives a charger a new password and key (a lost or leaked bundle): the new bundle is
    /// shown once; the old credentials are refused at once and its connection closed.
    pub async fn rotate_credentials(&self, who: &Principal, id: &DeviceId) -> Result<Bundle> {
        let device = self.get_device(who, id).await?;
        let current = self
            .store
            .get_device_auth(id)
            .await?
            .ok_or_else(|| Error::not_found("device"))?;
        let next = current.key_version + 1;
        let password = self.password_of(id, current.protocol, next);
        // An OCPP charger online is given the new password first (the 1.6 security
        // extension's AuthorizationKey), so it can come back once the old one stops.
        let pushed = match (current.protocol.is_ocpp(), self.ocpp_channel()) {
            (true, Some(channel)) if channel.holds(id) || device.online => {
                // 1.6: ChangeConfiguration AuthorizationKey; 2.0.1: SetVariables
                // SecurityCtrlr.BasicAuthPassword.
                let data = serde_json::json!({"password": password});
                let answer = channel
                    .command(
                        id,
                        "change-password",
                        &data,
                        std::time::Duration::from_secs(10),
                    )
                    .await;
                Some(matches!(&answer, Ok(a) if a["status"] == "Accepted"
                    || a["setVariableResult"][0]["attributeStatus"] == "Accepted"))
            }
            (true, _) => Some(false),
            _ => None,
        };
        // Compare-and-swap on the version: of rotations (or a claim, a rekey) racing, one
        // wins and the others change nothing (409), so the bundle handed out is the one in
        // force.
        let rotated = self
            .store
            .rotate_device_credentials(
                id,
                &device.owner,
                current.key_version,
                &hash_secret(&password),
            )
            .await?;
        if !rotated {
            self.audit(
                who,
                Some(&device.owner),
                Some(id),
                "credentials:rotate",
                None,
                "rotated_concurrently",
            )
            .await;
            return Err(Error::conflict(
                "rotated_concurrently",
                "the credentials changed meanwhile; rotate again",
            ));
        }
        if let Some(channel) = self.channel() {
            channel.disconnect(id).await;
        }
        if let Some(channel) = self.ocpp_channel().filter(|_| current.protocol.is_ocpp()) {
            channel.disconnect(id).await;
        }
        self.audit(
            who,
            Some(&device.owner),
            Some(id),
            "credentials:rotate",
            None,
            "ok",
        )
        .await;
        let mut bundle = self.bundle(id, &device.owner, current.protocol, password, next);
        if let crate::devices::Bundle::Ocpp(b) = &mut bundle {
            b.ocpp.pushed = pushed;
        }
        Ok(bundle)
    }
}

/// An offer as the REST API shows it.
trait Viewed {
    fn view(&self, now: DateTime<Utc>) -> TransferView;
}

impl Viewed for TransferOffer {
    fn view(&self, now: DateTime<Utc>) -> TransferView {
        TransferView {
            id: self.id.clone(),
            device: self.device.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            status: self.status_at(now),
            expires_at: rfc3339(self.expires_at),
            created_at: rfc3339(self.created_at),
            code: None,
        }
    }
}
