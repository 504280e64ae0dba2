//! Billing arithmetic. The declared rounding policy:
//!
//! 1. The cost lines are exact decimals: energy = Wh / 1000 × price per kWh; time = the
//!    session's own duration (stop − start, in milliseconds) / 3,600,000 × price per hour;
//!    the session fee.
//! 2. `net` = their exact sum, rounded **once** to the currency's minor unit, half away
//!    from zero.
//! 3. `tax` = `net` × tax rate, rounded once the same way (tax on the billed net, as an
//!    invoice shows it).
//! 4. `total` = `net` + `tax`, exact; so net + tax = total always holds to the cent.
//!
//! Nothing here reads a clock: time is priced from the session's own timestamps, never
//! from when a late message arrived.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::money::Currency;

/// Prices a session is billed by: a snapshot taken from its tariff at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prices {
    pub currency: Currency,
    pub energy_per_kwh: Decimal,
    pub time_per_hour: Decimal,
    pub session_fee: Decimal,
    /// A fraction: 0.21 is 21 %.
    pub tax_rate: Decimal,
}

/// One exact line of a bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostLine {
    /// `energy`, `time` or `session_fee`.
    pub kind: String,
    /// kWh, hours or 1.
    pub quantity: Decimal,
    pub unit_price: Decimal,
    /// quantity × unit price, not rounded.
    pub amount: Decimal,
}

/// The billed result of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bill {
    pub energy_wh: i64,
    pub duration_ms: i64,
    pub lines: Vec<CostLine>,
    pub net: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
}

/// Why a session cannot be billed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("the meter went backwards: stop {stop} Wh is below start {start} Wh")]
    MeterBackwards { start: i64, stop: i64 },
    #[error("the session stops before it starts")]
    StopBeforeStart,
    #[error("the amount is too large to bill")]
    Overflow,
}

const WH_PER_KWH: i64 = 1_000;
const MS_PER_HOUR: i64 = 3_600_000;

/// Rounds to the currency's minor unit, half away from zero: the one rounding step.
pub fn round_money(amount: Decimal, currency: &Currency) -> Decimal {
    amount.round_dp_with_strategy(
        currency.minor_units(),
        RoundingStrategy::MidpointAwayFromZero,
    )
}

/// Bills a session from its meter readings and its own start and stop times.
pub fn bill(
    prices: &Prices,
    meter_start_wh: i64,
    meter_stop_wh: i64,
    started_at: DateTime<Utc>,
    stopped_at: DateTime<Utc>,
) -> Result<Bill, BillingError> {
    if meter_stop_wh < meter_start_wh {
        return Err(BillingError::MeterBackwards {
            start: meter_start_wh,
            stop: meter_stop_wh,
        });
    }
    if stopped_at < started_at {
        return Err(BillingError::StopBeforeStart);
    }
    let energy_wh = meter_stop_wh
        .checked_sub(meter_start_wh)
        .ok_or(BillingError::Overflow)?;
    let duration_ms = (stopped_at - started_at).num_milliseconds();
    let kwh = Decimal::from(energy_wh) / Decimal::from(WH_PER_KWH);
    let hours = Decimal::from(duration_ms) / Decimal::from(MS_PER_HOUR);

    let line = |kind: &str, quantity: Decimal, unit_price: Decimal| {
        quantity
            .checked_mul(unit_price)
            .map(|amount| CostLine {
                kind: kind.to_owned(),
                quantity,
                unit_price,
                amount,
            })
            .ok_or(BillingError::Overflow)
    };
    let lines = vec![
        line("energy", kwh, prices.energy_per_kwh)?,
        line("time", hours, prices.time_per_hour)?,
        line("session_fee", Decimal::ONE, prices.session_fee)?,
    ];
    let exact_net = lines
        .iter()
        .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.amount))
        .ok_or(BillingError::Overflow)?;
    let net = round_money(exact_net, &prices.currency);
    let tax = round_money(
        net.checked_mul(prices.tax_rate)
            .ok_or(BillingError::Overflow)?,
        &prices.currency,
    );
    let total = net.checked_add(tax).ok_or(BillingError::Overflow)?;
    Ok(Bill {
        energy_wh,
        duration_ms,
        lines,
        net,
        tax,
        total,
    })
}

/// The running cost of an open session so far (net, rounded), for `meter-values`.
pub fn running_net(
    prices: &Prices,
    meter_start_wh: i64,
    meter_now_wh: i64,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Decimal, BillingError> {
    bill(
        prices,
        meter_start_wh,
        meter_now_wh,
        started_at,
        now.max(started_at),
    )
    .map(|b| b.net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use std::str::FromStr as _;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal literal")
    }

    fn prices(currency: &str, kwh: &str, hour: &str, fee: &str, tax: &str) -> Prices {
        Prices {
            currency: Currency::parse(currency).expect("currency"),
            energy_per_kwh: d(kwh),
            time_per_hour: d(hour),
            session_fee: d(fee),
            tax_rate: d(tax),
        }
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s)
            .single()
            .expect("valid time")
    }

    #[test]
    fn zero_wh_and_zero_time_bills_only_the_fee() {
        let p = prices("EUR", "0.30", "1.20", "0.50", "0.21");
        let b = bill(&p, 1000, 1000, at(10, 0, 0), at(10, 0, 0)).expect("bill");
        assert_eq!(b.energy_wh, 0);
        assert_eq!((b.net, b.tax, b.total), (d("0.50"), d("0.11"), d("0.61")));
    }

    #[test]
    fn a_plain_session_bills_energy_time_fee_and_tax() {
        // 12.345 kWh × 0.30 = 3.7035; 1.5 h × 1.20 = 1.80; fee 0.50: exact 6.0035 -> 6.00
        // tax 6.00 × 0.21 = 1.26; total 7.26
        let p = prices("EUR", "0.30", "1.20", "0.50", "0.21");
        let b = bill(&p, 100_000, 112_345, at(10, 0, 0), at(11, 30, 0)).expect("bill");
        assert_eq!(b.lines[0].amount, d("3.7035"));
        assert_eq!(b.lines[1].amount, d("1.80"));
        assert_eq!((b.net, b.tax, b.total), (d("6.00"), d("1.26"), d("7.26")));
    }

    #[test]
    fn sub_cent_results_round_half_away_from_zero() {
        // 1 Wh at 0.30/kWh = 0.0003 -> 0.00; 17 Wh = 0.0051 -> 0.01; 0.005 exactly -> 0.01
        let p = prices("EUR", "0.30", "0", "0", "0");
        let t = at(10, 0, 0);
        assert_eq!(bill(&p, 0, 1, t, t).expect("bill").net, d("0.00"));
        assert_eq!(bill(&p, 0, 17, t, t).expect("bill").net, d("0.01"));
        let half = prices("EUR", "0.25", "0", "0", "0");
        assert_eq!(bill(&half, 0, 20, t, t).expect("bill").net, d("0.01"));
        assert_eq!(bill(&half, 0, 60, t, t).expect("bill").net, d("0.02"));
    }

    #[test]
    fn a_three_day_session_prices_its_own_duration() {
        let p = prices("EUR", "0", "0.10", "0", "0");
        let start = Utc
            .with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
            .single()
            .expect("time");
        let stop = Utc
            .with_ymd_and_hms(2026, 3, 4, 8, 0, 0)
            .single()
            .expect("time");
        let b = bill(&p, 0, 0, start, stop).expect("bill");
        assert_eq!(b.duration_ms, 72 * 3_600_000);
        assert_eq!(b.net, d("7.20"));
    }

    #[test]
    fn a_tax_rate_that_forces_rounding_rounds_once() {
        // net 9.99 × 0.19 = 1.8981 -> 1.90; total 11.89
        let p = prices("EUR", "0", "0", "9.99", "0.19");
        let t = at(10, 0, 0);
        let b = bill(&p, 0, 0, t, t).expect("bill");
        assert_eq!((b.net, b.tax, b.total), (d("9.99"), d("1.90"), d("11.89")));
        // half-way tax: 0.10 × 0.05 = 0.005 -> 0.01
        let p = prices("EUR", "0", "0", "0.10", "0.05");
        assert_eq!(bill(&p, 0, 0, t, t).expect("bill").tax, d("0.01"));
    }

    #[test]
    fn zero_and_three_digit_currencies_round_to_their_minor_unit() {
        let t = at(10, 0, 0);
        // JPY: 12.5 kWh × 30.5 = 381.25 -> 381; tax 10 % = 38.1 -> 38
        let jpy = prices("JPY", "30.5", "0", "0", "0.10");
        let b = bill(&jpy, 0, 12_500, t, t).expect("bill");
        assert_eq!((b.net, b.tax, b.total), (d("381"), d("38"), d("419")));
        // KWD: 12.345 kWh × 0.0555 = 0.6851475 -> 0.685
        let kwd = prices("KWD", "0.0555", "0", "0", "0");
        assert_eq!(bill(&kwd, 0, 12_345, t, t).expect("bill").net, d("0.685"));
        // 0.5 JPY rounds away from zero to 1
        let half = prices("JPY", "0", "0", "0.5", "0");
        assert_eq!(bill(&half, 0, 0, t, t).expect("bill").net, d("1"));
    }

    #[test]
    fn meter_readings_that_go_backwards_are_an_error_never_a_negative_bill() {
        let p = prices("EUR", "0.30", "0", "0", "0");
        let t = at(10, 0, 0);
        assert_eq!(
            bill(&p, 5000, 4999, t, t),
            Err(BillingError::MeterBackwards {
                start: 5000,
                stop: 4999
            })
        );
        assert_eq!(
            bill(&p, 0, 1, at(10, 0, 1), at(10, 0, 0)),
            Err(BillingError::StopBeforeStart)
        );
    }

    #[test]
    fn lines_are_exact_and_total_is_net_plus_tax() {
        let p = prices("EUR", "0.3333", "0.7777", "0.1111", "0.2");
        let b = bill(&p, 0, 7_777, at(10, 0, 0), at(10, 17, 13)).expect("bill");
        let exact: Decimal = b.lines.iter().map(|l| l.amount).sum();
        assert_eq!(b.net, round_money(exact, &p.currency));
        assert_eq!(b.total, b.net + b.tax);
    }
}
