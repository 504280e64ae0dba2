//! Billing inputs a meter cannot produce, refused before they can be billed.
//!
//! The rules (docs/mqtt-api.md, "Billing inputs"):
//! - a reading is 0 to [`MAX_METER_WH`]; it never goes below the session's start, an
//!   earlier sample, or (for the stop) the last sample;
//! - samples come in time order, after the start and not after the stop;
//! - the energy since the start is at most what the connector's rated power delivers in
//!   the elapsed time, plus [`TOLERANCE_PERCENT`] and [`TOLERANCE_WH`]; `power_w` is at
//!   most the rated power plus the same percentage;
//! - times are no more than 5 minutes ahead of the server, not before [`EARLIEST`]
//!   (2020-01-01), and an offline start is no older than the offline window
//!   (`CHARGER_OFFLINE_MAX_AGE_DAYS`, 90 days by default).
//!
//! A live request that breaks one is 422 naming the field. An offline session (replayed
//! late, the car has charged) is never refused for them: it is recorded as `disputed`,
//! billed nothing until an operator resolves it.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// Highest meter reading accepted, in Wh (10^12 Wh: far above any real meter).
pub const MAX_METER_WH: i64 = 1_000_000_000_000;
/// Extra energy and power allowed over the rated power, in percent (meter and clock error).
pub const TOLERANCE_PERCENT: i64 = 10;
/// Extra energy allowed over the rated power's, in Wh (readings are rounded to whole Wh).
pub const TOLERANCE_WH: i64 = 10;
/// Rated power of a connector when provisioning names none, in W.
pub const DEFAULT_MAX_POWER_W: i64 = 22_000;
/// Highest rated power a connector may be given, in W (1 GW: room for simulators that
/// run time faster than real time, far above any real connector).
pub const MAX_POWER_W_LIMIT: i64 = 1_000_000_000;
/// How far ahead of the server's clock a charger's timestamp may be, in ms.
pub const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
/// Default offline window, in days.
pub use crate::service::OFFLINE_MAX_AGE_DAYS_DEFAULT;

/// 2020-01-01T00:00:00Z, in ms: no charger timestamp is older.
const EARLIEST_MS: i64 = 1_577_836_800_000;

/// The earliest timestamp a charger may send.
pub fn earliest() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(EARLIEST_MS).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `EARLIEST` for the docs.
pub const EARLIEST: &str = "2020-01-01T00:00:00Z";

/// A reading must be 0 to [`MAX_METER_WH`].
pub fn check_reading(field: &str, wh: i64) -> Result<()> {
    if (0..=MAX_METER_WH).contains(&wh) {
        Ok(())
    } else {
        Err(Error::invalid(field, "must be 0 to 1000000000000 Wh"))
    }
}

/// A timestamp must be after 2020-01-01 and at most 5 minutes ahead of `now`.
pub fn check_time(field: &str, t: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    if t.timestamp_millis() < EARLIEST_MS {
        return Err(Error::invalid(field, "is before 2020-01-01"));
    }
    if t.timestamp_millis().saturating_sub(now.timestamp_millis()) > CLOCK_SKEW_MS {
        return Err(Error::invalid(
            field,
            "is more than 5 minutes ahead of the server's clock",
        ));
    }
    Ok(())
}

/// The most energy, in Wh, a connector of `max_power_w` can deliver from `from` to `to`,
/// with the tolerance.
pub fn max_energy_wh(max_power_w: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    let ms = i128::from((to - from).num_milliseconds().max(0));
    let wh = i128::from(max_power_w) * ms * i128::from(100 + TOLERANCE_PERCENT) / (3_600_000 * 100)
        + i128::from(TOLERANCE_WH);
    i64::try_from(wh).unwrap_or(i64::MAX)
}

/// `energy_wh` since the start must fit the rated power over the elapsed time.
pub fn check_energy(
    field: &str,
    energy_wh: i64,
    max_power_w: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<()> {
    let most = max_energy_wh(max_power_w, from, to);
    if energy_wh <= most {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{energy_wh} Wh in {} s is more than this connector's rated power of {max_power_w} W can deliver (at most {most} Wh)",
                (to - from).num_seconds()
            ),
        ))
    }
}

/// `power_w` must be 0 to the rated power plus the tolerance.
pub fn check_power(field: &str, power_w: i64, max_power_w: i64) -> Result<()> {
    let most = i128::from(max_power_w) * i128::from(100 + TOLERANCE_PERCENT) / 100;
    if power_w >= 0 && i128::from(power_w) <= most {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("must be 0 to {most} W (this connector's rated power is {max_power_w} W)"),
        ))
    }
}

/// A rated power must be 1 W to [`MAX_POWER_W_LIMIT`].
pub fn check_max_power(field: &str, w: i64) -> Result<()> {
    if (1..=MAX_POWER_W_LIMIT).contains(&w) {
        Ok(())
    } else {
        Err(Error::invalid(field, "must be 1 to 1000000000 W"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn readings_outside_a_meters_range_are_refused() {
        assert!(check_reading("x", 0).is_ok());
        assert!(check_reading("x", MAX_METER_WH).is_ok());
        assert!(check_reading("x", -1).is_err());
        assert!(check_reading("x", 9_000_000_000_000_000_000).is_err());
    }

    #[test]
    fn times_before_2020_or_ahead_of_the_clock_are_refused() {
        let now = t("2026-11-30T12:00:00Z");
        assert!(check_time("x", t("2020-01-01T00:00:00Z"), now).is_ok());
        assert!(check_time("x", t("2019-12-31T23:59:59Z"), now).is_err());
        assert!(check_time("x", t("0001-01-01T00:00:00Z"), now).is_err());
        assert!(check_time("x", t("2026-11-30T12:05:00Z"), now).is_ok());
        assert!(check_time("x", t("2026-11-30T12:05:01Z"), now).is_err());
        assert!(check_time("x", t("9999-12-31T23:59:59Z"), now).is_err());
    }

    #[test]
    fn energy_is_bounded_by_rated_power_and_time_with_tolerance() {
        let a = t("2026-11-30T12:00:00Z");
        let b = t("2026-11-30T13:00:00Z");
        // 22 kW for one hour: 22,000 Wh, +10 % +10 Wh.
        assert_eq!(max_energy_wh(22_000, a, b), 24_210);
        assert!(check_energy("x", 24_210, 22_000, a, b).is_ok());
        assert!(check_energy("x", 24_211, 22_000, a, b).is_err());
        // No time, no energy beyond the slack; time backwards counts as none.
        assert_eq!(max_energy_wh(22_000, a, a), 10);
        assert_eq!(max_energy_wh(22_000, b, a), 10);
        // No overflow at the extremes.
        assert!(
            max_energy_wh(
                MAX_POWER_W_LIMIT,
                DateTime::<Utc>::MIN_UTC,
                DateTime::<Utc>::MAX_UTC
            ) > 0
        );
        assert!(check_power("x", 24_200, 22_000).is_ok());
        assert!(check_power("x", 24_201, 22_000).is_err());
        assert!(check_power("x", -1, 22_000).is_err());
    }
}
