//! Meter values of either version as the domain's samples, in integer Wh (and W).
//!
//! Each version reads its own sampled values into [`Reading`]s (its units scaled to Wh or
//! W, what the server does not use left out); one rule makes samples of them: the active
//! import register (the total, or the sum of its phases when no total is given), else the
//! last reading plus an interval; the import power. A meter value with no energy is no
//! sample. Values are exact decimals, rounded to the nearest whole Wh once, at the end.

use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive as _;
use rust_decimal::Decimal;

use charger_protocol::ocpp::ErrorCode;

use super::CallError;
use crate::records::charging::Sample;

/// What a sampled value measures, of what the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `Energy.Active.Import.Register`, in Wh.
    Register,
    /// `Energy.Active.Import.Interval`, in Wh.
    Interval,
    /// `Power.Active.Import`, in W.
    Power,
}

/// One sampled value, scaled to Wh (or W).
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    pub kind: Kind,
    /// Of one phase (phases add up; otherwise the last value given counts).
    pub phased: bool,
    pub value: Decimal,
}

/// The samples of meter values given as (time, readings), oldest first; `last_wh` is the
/// session's reading before them (for intervals).
pub(super) fn samples(
    values: impl IntoIterator<Item = (DateTime<Utc>, Vec<Reading>)>,
    mut last_wh: i64,
) -> Result<Vec<Sample>, CallError> {
    let mut out = Vec::new();
    for (at, readings) in values {
        let (mut total, mut phases, mut interval, mut power) = (None, None, None, None);
        for r in readings {
            let slot = match (r.kind, r.phased) {
                (Kind::Register, false) => &mut total,
                (Kind::Register, true) => &mut phases,
                (Kind::Interval, _) => &mut interval,
                (Kind::Power, _) => &mut power,
            };
            *slot = Some(match (r.phased, *slot) {
                (true, Some(sum)) => sum + r.value,
                _ => r.value,
            });
        }
        let energy = match (total.or(phases), interval) {
            (Some(register), _) => whole(register)?,
            (None, Some(delta)) => last_wh.saturating_add(whole(delta)?),
            (None, None) => continue,
        };
        last_wh = energy;
        out.push(Sample {
            at,
            energy_wh: energy,
            power_w: power.map(whole).transpose()?,
            current_a: None,
        });
    }
    Ok(out)
}

fn whole(value: Decimal) -> Result<i64, CallError> {
    value
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
        .ok_or_else(|| {
            CallError::new(
                ErrorCode::PropertyConstraintViolation,
                "a sampled value is out of range",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: Kind, phased: bool, value: i64) -> Reading {
        Reading {
            kind,
            phased,
            value: Decimal::from(value),
        }
    }

    #[test]
    fn phases_add_up_a_total_wins_and_intervals_follow_the_last_reading() {
        let t = Utc::now();
        let got = samples(
            [
                (
                    t,
                    vec![r(Kind::Register, true, 100), r(Kind::Register, true, 150)],
                ),
                (
                    t,
                    vec![
                        r(Kind::Register, true, 1),
                        r(Kind::Register, false, 400),
                        r(Kind::Power, true, 1000),
                        r(Kind::Power, true, 2000),
                    ],
                ),
                (t, vec![r(Kind::Interval, false, 50)]),
                (t, vec![r(Kind::Power, false, 7)]),
            ],
            0,
        )
        .expect("samples");
        let energy: Vec<i64> = got.iter().map(|s| s.energy_wh).collect();
        assert_eq!(energy, [250, 400, 450]);
        assert_eq!(got[1].power_w, Some(3000));
    }

    #[test]
    fn halves_round_away_from_zero_and_huge_values_are_refused() {
        let t = Utc::now();
        let half = Reading {
            kind: Kind::Register,
            phased: false,
            value: Decimal::new(25, 1),
        };
        let got = samples([(t, vec![half])], 0).expect("samples");
        assert_eq!(got[0].energy_wh, 3);
        let huge = Reading {
            kind: Kind::Register,
            phased: false,
            value: Decimal::MAX,
        };
        assert!(samples([(t, vec![huge])], 0).is_err());
    }
}
