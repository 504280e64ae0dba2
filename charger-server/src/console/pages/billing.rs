//! Billing (`/billing`): the report by day, month, charger or tag between two dates, a bar
//! chart per currency (never two currencies on one scale) with its axis, labels and values,
//! the table, and the CSV download (`/billing.csv`, never cached).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive as _;
use rust_decimal::Decimal;

use crate::api::ApiState;
use crate::charging::history::{BillingReport, GroupBy, ReportQuery, ReportRow};
use crate::console::ui::{self, plain};
use crate::console::Viewer;
use crate::error::Error;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/billing", get(billing))
        .route("/billing.csv", get(billing_csv))
}

/// The report's query from the form (this month by day when empty).
fn report_query(q: &HashMap<String, String>) -> Result<ReportQuery, Error> {
    use chrono::{Datelike as _, NaiveDate, TimeZone as _, Utc};
    let today = Utc::now().date_naive();
    let day = |name: &str, default: NaiveDate| -> Result<NaiveDate, Error> {
        match q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| Error::invalid(name, "must be a date, YYYY-MM-DD")),
        }
    };
    let first = today.with_day(1).unwrap_or(today);
    let from = day("from", first)?;
    let to = day("to", today.succ_opt().unwrap_or(today))?;
    let group_by = match q.get("group_by").map(String::as_str) {
        Some("month") => GroupBy::Month,
        Some("device") => GroupBy::Device,
        Some("tag") => GroupBy::Tag,
        _ => GroupBy::Day,
    };
    let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
    Ok(ReportQuery {
        from: at(from),
        to: at(to),
        group_by,
        format: None,
    })
}

/// A total as an exact amount (0 when it is not one).
fn amount(total: &str) -> Decimal {
    total.parse::<Decimal>().unwrap_or_default()
}

/// The share of `max` that `v` is, for drawing a bar (0 to 1; a pixel height, never money).
fn share(v: Decimal, max: Decimal) -> f64 {
    if max <= Decimal::ZERO || v <= Decimal::ZERO {
        return 0.0;
    }
    (v / max).min(Decimal::ONE).to_f64().unwrap_or(0.0)
}

/// One currency's bar chart: an axis with its scale, a bar per group with its value above
/// and its label below.
fn chart(currency: &str, rows: &[&ReportRow], group: &str) -> Markup {
    let max = rows
        .iter()
        .map(|r| amount(&r.total))
        .fold(Decimal::ZERO, Decimal::max);
    let n = rows.len().max(1);
    let left = 90.0;
    let width = 620.0 - left;
    let bar_w = width / n as f64;
    let label_every = (n / 12).max(1);
    let top_label = ui::money(&max.normalize().to_string(), currency);
    let half_label = ui::money(&(max / Decimal::TWO).normalize().to_string(), currency);
    html! {
        figure {
            svg.chart viewBox="0 0 640 240" role="img"
                aria-label={ "Total billed in " (currency) " per " (group) ", up to " (top_label) } {
                line x1=(left) y1="190" x2="630" y2="190" stroke="currentColor" {}
                line x1=(left) y1="20" x2=(left) y2="190" stroke="currentColor" {}
                text x=(left - 4.0) y="24" text-anchor="end" font-size="11" { (top_label) }
                text x=(left - 4.0) y="110" text-anchor="end" font-size="11" { (half_label) }
                text x=(left - 4.0) y="190" text-anchor="end" font-size="11" { "0" }
                @for (i, r) in rows.iter().enumerate() {
                    @let h = 165.0 * share(amount(&r.total), max);
                    @let x = left + bar_w * i as f64 + 2.0;
                    @let w = (bar_w - 4.0).max(1.0);
                    rect x=(format!("{x:.1}")) y=(format!("{:.1}", 190.0 - h)) width=(format!("{w:.1}")) height=(format!("{h:.1}")) fill="#0b63ce" {
                        title { (plain(&r.group)) ": " (ui::money(&r.total, currency)) }
                    }
                    @if n <= 16 {
                        text x=(format!("{:.1}", x + w / 2.0)) y=(format!("{:.1}", 186.0 - h)) text-anchor="middle" font-size="10" { (r.total) }
                    }
                    @if i % label_every == 0 {
                        text x=(format!("{:.1}", x + w / 2.0)) y="204" text-anchor="middle" font-size="10" { (plain(&crate::error::bounded(&r.group, 12))) }
                    }
                }
                text x=(left + width / 2.0) y="228" text-anchor="middle" font-size="11" { (group) }
            }
            figcaption { "Total billed in " (currency) " per " (group) " (tax included)." }
        }
    }
}

fn view(r: &BillingReport, q: &ReportQuery) -> Markup {
    let from = q.from.format("%Y-%m-%d").to_string();
    let to = q.to.format("%Y-%m-%d").to_string();
    let group = r.group_by.clone();
    let csv = format!("/billing.csv?from={from}&to={to}&group_by={group}");
    let mut by_currency: BTreeMap<&str, Vec<&ReportRow>> = BTreeMap::new();
    for row in &r.rows {
        by_currency
            .entry(row.currency.as_str())
            .or_default()
            .push(row);
    }
    html! {
        form.filters method="get" action="/billing" {
            label for="from" { "From" }
            input #from type="date" name="from" value=(from);
            label for="to" { "To (exclusive)" }
            input #to type="date" name="to" value=(to);
            label for="group_by" { "Group by" }
            select #group_by name="group_by" {
                @for g in ["day", "month", "device", "tag"] {
                    option value=(g) selected[group == g] { (g) }
                }
            }
            button type="submit" { "Show" }
        }
        p { a.button href=(csv) download="billing.csv" { "Download CSV" } }
        @if r.rows.is_empty() { p { "No billed session started in this period." } }
        @for (currency, rows) in &by_currency {
            h2 { (currency) }
            (chart(currency, rows, &group))
        }
        div.scroll { table {
            thead { tr { th { (group) } th { "Currency" } th { "Sessions" } th { "Energy" } th { "Net" } th { "Tax" } th { "Total" } } }
            tbody {
                @for row in &r.rows {
                    tr {
                        td { (plain(&row.group)) } td { (row.currency) } td.num { (ui::grouped(i128::from(row.sessions))) }
                        td.num { (ui::kwh(row.energy_wh)) } td.num { (ui::money(&row.net, &row.currency)) }
                        td.num { (ui::money(&row.tax, &row.currency)) } td.num { (ui::money(&row.total, &row.currency)) }
                    }
                }
                @for row in &r.totals {
                    tr.total {
                        th scope="row" { "total" } td { (row.currency) } td.num { (ui::grouped(i128::from(row.sessions))) }
                        td.num { (ui::kwh(row.energy_wh)) } td.num { (ui::money(&row.net, &row.currency)) }
                        td.num { (ui::money(&row.tax, &row.currency)) } td.num { (ui::money(&row.total, &row.currency)) }
                    }
                }
            }
        } }
        p { "Sessions belong to the period of their own start, in UTC; amounts are exact sums of the billed sessions." }
    }
}

async fn billing(
    State(state): State<ApiState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match report_query(&q) {
        Ok(query) => query,
        Err(e) => return v.error(&e),
    };
    match state.service.billing_report(&v.user.who, &query).await {
        Ok(report) => {
            let body = view(&report, &query);
            v.page("Billing".to_owned(), body)
        }
        Err(e) => v.error(&e),
    }
}

async fn billing_csv(
    State(state): State<ApiState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let report = match report_query(&q) {
        Ok(query) => state.service.billing_report(&v.user.who, &query).await,
        Err(e) => Err(e),
    };
    match report.and_then(|r| r.to_csv()) {
        Ok(csv) => (
            [
                (
                    header::CONTENT_TYPE,
                    "text/csv; charset=utf-8; header=present",
                ),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"billing.csv\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            csv,
        )
            .into_response(),
        Err(e) => v.error(&e),
    }
}
