//! Tariffs: an owner's prices.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::cost;
use super::money::Currency;
use crate::ids::{OwnerId, TariffId};

/// Prices an owner charges, assigned per charger or as the owner's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tariff {
    pub id: TariffId,
    pub owner: OwnerId,
    pub currency: Currency,
    pub energy_per_kwh: Decimal,
    pub time_per_hour: Decimal,
    pub session_fee: Decimal,
    /// A fraction: 0.21 is 21 %.
    pub tax_rate: Decimal,
    /// Applies to the owner's chargers that have no tariff of their own.
    pub default: bool,
    pub created_at: DateTime<Utc>,
}

impl Tariff {
    /// The prices a session started now is billed by.
    pub fn prices(&self) -> cost::Prices {
        cost::Prices {
            currency: self.currency.clone(),
            energy_per_kwh: self.energy_per_kwh,
            time_per_hour: self.time_per_hour,
            session_fee: self.session_fee,
            tax_rate: self.tax_rate,
        }
    }
}
