//! ISO 4217 currency codes and their minor units.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A three-letter ISO 4217 code with the number of digits of its minor unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

/// Currencies whose minor unit is not 2 digits (ISO 4217).
const ZERO_DIGITS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
const THREE_DIGITS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
const FOUR_DIGITS: &[&str] = &["CLF", "UYW"];

impl Currency {
    /// Accepts three upper-case ASCII letters.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::invalid(
                "currency",
                "must be an ISO 4217 code of three upper-case letters, e.g. EUR",
            ))
        }
    }

    /// ISO 4217 "XXX": no currency (sessions where no tariff applied).
    pub fn none() -> Self {
        Self("XXX".to_owned())
    }

    pub fn code(&self) -> &str {
        &self.0
    }

    /// Digits of the minor unit: 2 for most, 0 for JPY, 3 for KWD.
    pub fn minor_units(&self) -> u32 {
        let code = self.0.as_str();
        if ZERO_DIGITS.contains(&code) {
            0
        } else if THREE_DIGITS.contains(&code) {
            3
        } else if FOUR_DIGITS.contains(&code) {
            4
        } else {
            2
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).map_err(|e| e.to_string())
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `amount` (already rounded to the minor unit) as an integer count of minor units.
pub fn to_minor(amount: rust_decimal::Decimal, currency: &Currency) -> Option<i64> {
    use rust_decimal::prelude::ToPrimitive as _;
    let scaled = amount.checked_mul(rust_decimal::Decimal::from(
        10_i64.pow(currency.minor_units()),
    ))?;
    if scaled.fract().is_zero() {
        scaled.to_i64()
    } else {
        None
    }
}

/// An integer count of minor units as a decimal amount with the currency's scale.
pub fn from_minor(minor: i64, currency: &Currency) -> rust_decimal::Decimal {
    rust_decimal::Decimal::new(minor, currency.minor_units())
}

/// A rounded amount as the API shows it: with exactly the currency's minor digits
/// ("8.90", "12", "1.250").
pub fn money_text(amount: rust_decimal::Decimal, currency: &Currency) -> String {
    let mut shown = amount;
    shown.rescale(currency.minor_units());
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_follow_iso_4217() {
        let c = |s| Currency::parse(s).expect("currency");
        assert_eq!(c("EUR").minor_units(), 2);
        assert_eq!(c("JPY").minor_units(), 0);
        assert_eq!(c("KWD").minor_units(), 3);
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
    }

    #[test]
    fn minor_unit_conversion_is_exact() {
        let eur = Currency::parse("EUR").expect("currency");
        let amount = rust_decimal::Decimal::new(1234, 2);
        assert_eq!(to_minor(amount, &eur), Some(1234));
        assert_eq!(from_minor(1234, &eur), amount);
        assert_eq!(to_minor(rust_decimal::Decimal::new(12345, 3), &eur), None);
        let jpy = Currency::parse("JPY").expect("currency");
        assert_eq!(from_minor(381, &jpy).to_string(), "381");
    }
}
