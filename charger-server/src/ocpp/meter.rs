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
    /// `Current.Import`, in A (of one phase, or of each when no phase is named).
    Current,
}

/// One sampled value, scaled to Wh (or W).
#[derive(Debug, Clone, Copy)]
pub(super) struct Reading {
    pub kind: Kind,
    /// Of one phase (phases add up; otherwise the last value given counts).
    pub phased: bool,
    /// Which site phase of the charger (0 to 2: L1, L2, L3, to neutral or not), if one.
    pub phase: Option<usize>,
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
        let mut current: Option<[u32; 3]> = None;
        for r in readings {
            let slot = match (r.kind, r.phased) {
                (Kind::Current, _) => {
                    let amps = whole(r.value)?.clamp(0, i64::from(u32::MAX));
                    let amps = u32::try_from(amps).unwrap_or(u32::MAX);
                    let c = current.get_or_insert([0; 3]);
                    match r.phase {
                        Some(p) if p < 3 => c[p] = amps,
                        _ => *c = [amps; 3],
                    }
                    continue;
                }
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
            current_a: current,
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
            phase: None,
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
            phase: None,
            value: Decimal::new(25, 1),
        };
        let got = samples([(t, vec![half])], 0).expect("samples");
        assert_eq!(got[0].energy_wh, 3);
        let huge = Reading {
            kind: Kind::Register,
            phased: false,
            phase: None,
            value: Decimal::MAX,
        };
        assert!(samples([(t, vec![huge])], 0).is_err());
    }

    #[test]
    fn currents_are_kept_per_phase_and_an_unphased_one_for_all() {
        let t = Utc::now();
        let current = |phase: Option<usize>, a: i64| Reading {
            kind: Kind::Current,
            phased: phase.is_some(),
            phase,
            value: Decimal::from(a),
        };
        let got = samples(
            [
                (
                    t,
                    vec![
                        r(Kind::Register, false, 10),
                        current(Some(0), 16),
                        current(Some(2), 7),
                    ],
                ),
                (t, vec![r(Kind::Register, false, 20), current(None, 9)]),
                (t, vec![r(Kind::Register, false, 30)]),
            ],
            0,
        )
        .expect("samples");
        assert_eq!(got[0].current_a, Some([16, 0, 7]));
        assert_eq!(got[1].current_a, Some([9, 9, 9]));
        assert_eq!(got[2].current_a, None);
    }
}
