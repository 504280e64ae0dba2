//! Tariffs and billing arithmetic. [`cost`] holds the money math and its rounding policy;
//! this module holds tariffs (per owner, optionally the owner's default) and their checks.

pub use crate::records::cost;

use rust_decimal::Decimal;
use serde::Deserialize;

pub use crate::records::billing::Tariff;
pub use crate::records::money::{from_minor, money_text, to_minor, Currency};

use crate::error::{Error, Result};
use crate::ids::{OwnerId, TariffId};
use crate::service::{Principal, Service};

/// `POST /api/v1/tariffs`. Prices are decimal strings ("0.30"), never JSON numbers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTariffRequest {
    pub id: TariffId,
    /// Required with the admin token; an owner token may omit it (never `null`).
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub owner: Option<OwnerId>,
    pub currency: Currency,
    #[serde(deserialize_with = "plain_decimal")]
    pub energy_per_kwh: Decimal,
    #[serde(deserialize_with = "plain_decimal")]
    pub time_per_hour: Decimal,
    #[serde(deserialize_with = "plain_decimal")]
    pub session_fee: Decimal,
    #[serde(deserialize_with = "plain_decimal")]
    pub tax_rate: Decimal,
    #[serde(default)]
    pub default: bool,
}

/// A price as `openapi.yaml` says: a string of digits with an optional point and at most
/// six decimals (`"0.30"`). rust_decimal's own parser also takes `"1e3"`, `"-0"` and
/// `"+1"`, which no price list writes; those are refused.
fn plain_decimal<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Decimal, D::Error> {
    use serde::de::Error as _;
    let text = String::deserialize(d)?;
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text.as_str(), None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let fits = digits(whole)
        && whole.len() <= 12
        && fraction.is_none_or(|f| digits(f) && f.len() <= MAX_PRICE_SCALE as usize);
    if !fits {
        return Err(D::Error::custom(
            "a price is a decimal string like \"0.30\": digits, then at most 6 decimals",
        ));
    }
    text.parse::<Decimal>().map_err(D::Error::custom)
}

/// `PATCH /api/v1/tariffs/{id}`: the fields to change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTariffRequest {
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub currency: Option<Currency>,
    #[serde(default, deserialize_with = "optional_plain_decimal")]
    pub energy_per_kwh: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_plain_decimal")]
    pub time_per_hour: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_plain_decimal")]
    pub session_fee: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_plain_decimal")]
    pub tax_rate: Option<Decimal>,
    #[serde(default, deserialize_with = "crate::tags::not_null")]
    pub default: Option<bool>,
}

/// A present price (never `null`), as [`plain_decimal`] reads it.
fn optional_plain_decimal<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Decimal>, D::Error> {
    plain_decimal(d).map(Some)
}

/// Most decimal places a price may have.
const MAX_PRICE_SCALE: u32 = 6;

fn check_price(field: &str, value: Decimal) -> Result<Decimal> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(Error::invalid(field, "must not be negative"));
    }
    if value.scale() > MAX_PRICE_SCALE {
        return Err(Error::invalid(field, "must have at most 6 decimal places"));
    }
    if value > Decimal::from(1_000_000) {
        return Err(Error::invalid(field, "must be at most 1000000"));
    }
    Ok(value.normalize())
}

impl Service {
    pub async fn create_tariff(&self, who: &Principal, req: CreateTariffRequest) -> Result<Tariff> {
        let owner = who.owner_for_new(req.owner)?;
        self.require_owner(&owner).await?;
        let tax_rate = check_price("tax_rate", req.tax_rate)?;
        if tax_rate > Decimal::ONE {
            return Err(Error::invalid(
                "tax_rate",
                "is a fraction between 0 and 1 (0.21 is 21 %)",
            ));
        }
        let tariff = Tariff {
            id: req.id,
            owner,
            currency: req.currency,
            energy_per_kwh: check_price("energy_per_kwh", req.energy_per_kwh)?,
            time_per_hour: check_price("time_per_hour", req.time_per_hour)?,
            session_fee: check_price("session_fee", req.session_fee)?,
            tax_rate,
            default: req.default,
            created_at: self.now(),
        };
        self.store
            .insert_tariff(&tariff)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict { .. } => {
                    Error::conflict("tariff_exists", "a tariff with this id exists")
                }
                other => other,
            })?;
        tracing::info!(tariff = %tariff.id, owner = %tariff.owner, "tariff created");
        Ok(tariff)
    }

    /// A tariff of the caller's (tariff ids are unique per owner; the admin names the
    /// owner with `owner` when the id is used by several).
    pub async fn get_tariff(
        &self,
        who: &Principal,
        id: &TariffId,
        owner: Option<OwnerId>,
    ) -> Result<Tariff> {
        let found = match who.namespace(owner)? {
            Some(o) => self.store.get_tariff(&o, id).await?.into_iter().collect(),
            None => self.store.find_tariffs(id).await?,
        };
        one_of("tariff", found)
    }

    pub async fn list_tariffs(&self, who: &Principal) -> Result<Vec<Tariff>> {
        Ok(self.store.list_tariffs(who.owner_filter()).await?)
    }

    /// Changes a tariff's prices or default flag (those given). Sessions keep the prices
    /// they started with: a change applies to sessions that start after it.
    pub async fn update_tariff(
        &self,
        who: &Principal,
        id: &TariffId,
        owner: Option<OwnerId>,
        req: UpdateTariffRequest,
    ) -> Result<Tariff> {
        let mut tariff = self.get_tariff(who, id, owner).await?;
        if let Some(currency) = req.currency {
            tariff.currency = currency;
        }
        for (field, value, slot) in [
            (
                "energy_per_kwh",
                req.energy_per_kwh,
                &mut tariff.energy_per_kwh,
            ),
            (
                "time_per_hour",
                req.time_per_hour,
                &mut tariff.time_per_hour,
            ),
            ("session_fee", req.session_fee, &mut tariff.session_fee),
            ("tax_rate", req.tax_rate, &mut tariff.tax_rate),
        ] {
            if let Some(v) = value {
                *slot = check_price(field, v)?;
            }
        }
        if tariff.tax_rate > Decimal::ONE {
            return Err(Error::invalid(
                "tax_rate",
                "is a fraction between 0 and 1 (0.21 is 21 %)",
            ));
        }
        if let Some(default) = req.default {
            tariff.default = default;
        }
        if !self.store.update_tariff(&tariff).await? {
            return Err(Error::not_found("tariff"));
        }
        tracing::info!(tariff = %tariff.id, owner = %tariff.owner, "tariff changed");
        Ok(tariff)
    }
}

/// The one row an id names, or 404; 422 `owner` when the admin's id is ambiguous.
pub(crate) fn one_of<T>(what: &'static str, mut found: Vec<T>) -> Result<T> {
    match found.len() {
        0 => Err(Error::not_found(what)),
        1 => found.pop().ok_or_else(|| Error::not_found(what)),
        _ => Err(Error::invalid(
            "owner",
            format!("several owners use this {what} id: name the owner with ?owner="),
        )),
    }
}
