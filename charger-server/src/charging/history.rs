//! What operators and accountants read: sessions (filtered, cursor-paginated), one
//! session with its meter samples and cost lines, and billing reports.
//!
//! Pagination is by session id, newest first: a cursor is the id of the last row of a
//! page, and the next page holds the ids below it. New sessions get larger ids, so paging
//! while sessions are added neither skips nor repeats a row.
//!
//! A billing report covers the stopped sessions that **started** in `[from, to)` (a
//! session belongs to the period of its own start, whenever it was reported), grouped by
//! UTC day, UTC month, charger or tag, one currency per row; per-currency totals are the
//! exact sums of the rows, which are exact sums of the sessions' billed minor units.

pub use crate::records::charging::{
    MeterSample, ReportKey, ReportSum, SessionFilter, StoredCostLine,
};
use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Datelike as _, Utc};
use serde::{Deserialize, Serialize};

use super::{rfc3339, Session, SessionStatus};
use crate::billing::{money_text, Currency};
use crate::error::{Error, Result};
use crate::ids::{DeviceId, OwnerId, TagUid};
use crate::service::{Principal, Service};

/// Default and largest page size.
pub const PAGE_DEFAULT: i64 = 50;
pub const PAGE_MAX: i64 = 500;

/// `GET /api/v1/sessions` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub device: Option<DeviceId>,
    pub tag: Option<TagUid>,
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// A session as the REST API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: i64,
    pub device: DeviceId,
    pub connector: i64,
    pub owner: OwnerId,
    pub tag: TagUid,
    pub local_id: Option<String>,
    pub status: SessionStatus,
    pub offline: bool,
    pub meter_start_wh: i64,
    pub meter_stop_wh: Option<i64>,
    pub last_meter_wh: i64,
    pub energy_wh: Option<i64>,
    pub started_at: String,
    pub stopped_at: Option<String>,
    pub stop_reason: Option<String>,
    /// Why it is disputed (status `disputed`).
    pub dispute: Option<String>,
    pub tariff: serde_json::Value,
    pub currency: String,
    pub net: Option<String>,
    pub tax: Option<String>,
    pub total: Option<String>,
    /// How an operator resolved it, when it was disputed: `{action, by, at}`.
    pub resolution: Option<super::Resolved>,
    /// While it charges: the bill so far (net, session fee included) to its latest meter
    /// sample, as `meter-values` answers it; null otherwise.
    pub running_net: Option<String>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        let c = &s.prices.currency;
        SessionView {
            id: s.id,
            device: s.device.clone(),
            connector: s.connector,
            owner: s.owner.clone(),
            tag: s.tag.clone(),
            local_id: s.local_id.clone(),
            status: s.status,
            offline: s.offline,
            meter_start_wh: s.meter_start_wh,
            meter_stop_wh: s.meter_stop_wh,
            last_meter_wh: s.last_meter_wh,
            energy_wh: s.energy_wh,
            started_at: rfc3339(s.started_at),
            stopped_at: s.stopped_at.map(rfc3339),
            stop_reason: s.stop_reason.clone(),
            dispute: s.dispute.clone(),
            tariff: serde_json::json!({
                "id": s.tariff,
                "currency": c.code(),
                "energy_per_kwh": s.prices.energy_per_kwh.to_string(),
                "time_per_hour": s.prices.time_per_hour.to_string(),
                "session_fee": s.prices.session_fee.to_string(),
                "tax_rate": s.prices.tax_rate.to_string(),
            }),
            currency: c.code().to_owned(),
            net: s.net.map(|v| money_text(v, c)),
            tax: s.tax.map(|v| money_text(v, c)),
            total: s.total.map(|v| money_text(v, c)),
            resolution: s.resolution.clone(),
            running_net: (s.status == SessionStatus::Active && s.dispute.is_none())
                .then(|| {
                    crate::billing::cost::running_net(
                        &s.prices,
                        s.meter_start_wh,
                        s.last_meter_wh,
                        s.started_at,
                        s.last_sample_at.unwrap_or(s.started_at),
                    )
                    .ok()
                })
                .flatten()
                .map(|v| money_text(v, c)),
        }
    }
}

/// A page of sessions.
#[derive(Debug, Clone, Serialize)]
pub struct SessionPage {
    pub sessions: Vec<SessionView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A session with its samples and cost lines.
#[derive(Debug, Clone, Serialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionView,
    /// At most [`SAMPLES_SHOWN`] (+1) of them, evenly thinned, the first and last kept.
    pub samples: Vec<MeterSample>,
    /// How many samples the session has.
    pub samples_total: i64,
    pub cost_lines: Vec<StoredCostLine>,
}

/// Samples shown of one session: a session's page and answer stay small, however many
/// samples a charger sent.
pub const SAMPLES_SHOWN: i64 = 1000;

/// How a billing report groups sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Day,
    Month,
    Device,
    Tag,
}

/// `GET /api/v1/reports/billing` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: GroupBy,
    /// `csv` for text/csv (as with `Accept: text/csv`), `json` for JSON.
    pub format: Option<String>,
}

/// One row of a billing report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    pub group: String,
    pub currency: String,
    pub sessions: i64,
    pub energy_wh: i128,
    pub net: String,
    pub tax: String,
    pub total: String,
}

/// A billing report: rows and per-currency totals.
#[derive(Debug, Clone, Serialize)]
pub struct BillingReport {
    pub from: String,
    pub to: String,
    pub group_by: String,
    pub rows: Vec<ReportRow>,
    pub totals: Vec<ReportRow>,
}

impl BillingReport {
    /// RFC 4180 CSV (written by the `csv` crate): a header row, one row per group and
    /// currency, then one `total` row per currency; CRLF line ends; fields quoted when
    /// they need it.
    pub fn to_csv(&self) -> Result<String> {
        let failed = |e: &dyn std::fmt::Display| Error::Internal(format!("report CSV: {e}"));
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        w.write_record([
            "group",
            "currency",
            "sessions",
            "energy_wh",
            "net",
            "tax",
            "total",
        ])
        .map_err(|e| failed(&e))?;
        for r in self.rows.iter().chain(&self.totals) {
            w.write_record([
                r.group.as_str(),
                r.currency.as_str(),
                &r.sessions.to_string(),
                &r.energy_wh.to_string(),
                &r.net,
                &r.tax,
                &r.total,
            ])
            .map_err(|e| failed(&e))?;
        }
        let bytes = w.into_inner().map_err(|e| failed(&e))?;
        String::from_utf8(bytes).map_err(|e| failed(&e))
    }
}

const MS_PER_DAY: i64 = 86_400_000;

fn day_text(day: &str) -> Result<(String, String)> {
    let n = i64::from_str(day).map_err(|e| Error::Internal(format!("report day {day}: {e}")))?;
    let t = DateTime::from_timestamp_millis(n.saturating_mul(MS_PER_DAY))
        .ok_or_else(|| Error::Internal(format!("report day out of range: {n}")))?;
    Ok((
        t.format("%Y-%m-%d").to_string(),
        format!("{:04}-{:02}", t.year(), t.month()),
    ))
}

fn parse_cursor(cursor: &str) -> Result<i64> {
    cursor
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::invalid("cursor", "is not a cursor this API returned"))
}

impl Service {
    /// A page of the sessions the caller may see, newest first.
    pub async fn list_sessions(&self, who: &Principal, q: SessionQuery) -> Result<SessionPage> {
        let limit = q.limit.unwrap_or(PAGE_DEFAULT);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 500"));
        }
        if let (Some(from), Some(to)) = (q.from, q.to) {
            if from > to {
                return Err(Error::invalid("from", "is after to"));
            }
        }
        let status =
            match q.status.as_deref() {
                None => None,
                Some(s) => Some(SessionStatus::parse(s).ok_or_else(|| {
                    Error::invalid("status", "is active, stopped, disputed or void")
                })?),
            };
        let filter = SessionFilter {
            owner: who.owner_filter().cloned(),
            device: q.device,
            tag: q.tag,
            status,
            from: q.from,
            to: q.to,
            before_id: q.cursor.as_deref().map(parse_cursor).transpose()?,
            limit: limit + 1,
        };
        let mut rows = self.store.list_sessions(&filter).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(last.id.to_string()),
            _ => None,
        };
        Ok(SessionPage {
            sessions: rows.iter().map(SessionView::from).collect(),
            next_cursor,
        })
    }

    /// One session with its meter samples and cost lines (404 if not the caller's).
    pub async fn get_session(&self, who: &Principal, id: i64) -> Result<SessionDetail> {
        let session = match self.store.get_session(id).await? {
            Some(s) if who.can_see(&s.owner) => s,
            _ => return Err(Error::not_found("session")),
        };
        let (samples, samples_total, cost_lines) =
            self.store.session_details(id, SAMPLES_SHOWN).await?;
        Ok(SessionDetail {
            session: SessionView::from(&session),
            samples,
            samples_total,
            cost_lines,
        })
    }

    /// The billing report over the caller's sessions.
    pub async fn billing_report(&self, who: &Principal, q: &ReportQuery) -> Result<BillingReport> {
        if q.from >= q.to {
            return Err(Error::invalid("from", "must be before to"));
        }
        let key = match q.group_by {
            GroupBy::Day | GroupBy::Month => ReportKey::Day,
            GroupBy::Device => ReportKey::Device,
            GroupBy::Tag => ReportKey::Tag,
        };
        let sums = self
            .store
            .billing_sums(who.owner_filter(), q.from, q.to, key)
            .await?;
        // (group, currency) -> sums; months fold their days.
        let mut groups: BTreeMap<(String, String), ReportSum> = BTreeMap::new();
        for s in sums {
            let group = match q.group_by {
                GroupBy::Day => day_text(&s.key)?.0,
                GroupBy::Month => day_text(&s.key)?.1,
                GroupBy::Device => s.key.clone(),
                // `<owner>/<uid>`: an owner's report names its uids alone, the admin's
                // (several owners, whose uids may coincide) names both.
                GroupBy::Tag => match who {
                    Principal::Admin => s.key.clone(),
                    Principal::Owner(_) => s
                        .key
                        .split_once('/')
                        .map_or_else(|| s.key.clone(), |(_, uid)| uid.to_owned()),
                },
            };
            add(&mut groups, (group, s.currency.clone()), &s);
        }
        let mut totals: BTreeMap<(String, String), ReportSum> = BTreeMap::new();
        for ((_, currency), s) in &groups {
            add(&mut totals, ("total".to_owned(), currency.clone()), s);
        }
        let row = |((group, currency), s): (&(String, String), &ReportSum)| -> Result<ReportRow> {
            let c = Currency::parse(currency)?;
            let money = |minor: i128| -> Result<String> {
                let amount =
                    rust_decimal::Decimal::try_from_i128_with_scale(minor, c.minor_units())
                        .map_err(|e| Error::Internal(format!("report sum {minor}: {e}")))?;
                Ok(money_text(amount, &c))
            };
            Ok(ReportRow {
                group: group.clone(),
                currency: currency.clone(),
                sessions: s.sessions,
                energy_wh: s.energy_wh,
                net: money(s.net_minor)?,
                tax: money(s.tax_minor)?,
                total: money(s.total_minor)?,
            })
        };
        Ok(BillingReport {
            from: rfc3339(q.from),
            to: rfc3339(q.to),
            group_by: format!("{:?}", q.group_by).to_lowercase(),
            rows: groups.iter().map(row).collect::<Result<_>>()?,
            totals: totals.iter().map(row).collect::<Result<_>>()?,
        })
    }
}

fn add(map: &mut BTreeMap<(String, String), ReportSum>, key: (String, String), s: &ReportSum) {
    let e = map.entry(key.clone()).or_insert_with(|| ReportSum {
        key: key.0,
        currency: key.1,
        sessions: 0,
        energy_wh: 0,
        net_minor: 0,
        tax_minor: 0,
        total_minor: 0,
    });
    // 128 bits: the sums of at most 2^63 rows of 64-bit values cannot wrap.
    e.sessions = e.sessions.saturating_add(s.sessions);
    e.energy_wh += s.energy_wh;
    e.net_minor += s.net_minor;
    e.tax_minor += s.tax_minor;
    e.total_minor += s.total_minor;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_since_the_epoch_name_their_day_and_month() {
        assert_eq!(
            day_text("20416").expect("day"),
            ("2025-11-24".to_owned(), "2025-11".to_owned())
        );
        assert_eq!(day_text("0").expect("day").0, "1970-01-01");
    }
}
