//! Sessions (`/sessions`, paged, filtered, live) and one session (`/sessions/{id}`): its
//! facts with duration and stop reason, the running cost while it charges, the energy over
//! its samples, its cost lines with units and currency, and, when it is disputed, the
//! operator's resolution.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use crate::api::ApiState;
use crate::charging::history::{SessionDetail, SessionQuery, SessionView};
use crate::console::flash::Flash;
use crate::console::ui::{self, csrf, plain, time_text};
use crate::console::{AuthedForm, Viewer};
use crate::error::Error;
use crate::ids::DeviceId;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", get(session))
        .route("/sessions/{id}/resolution", post(resolve))
}

/// Energy a session delivered: its bill's, or so far.
fn delivered(s: &SessionView) -> i128 {
    i128::from(s.energy_wh.unwrap_or(s.last_meter_wh - s.meter_start_wh))
}

/// Seconds between two RFC 3339 times, when both are there.
fn seconds_between(from: &str, to: Option<&str>) -> Option<i64> {
    let from = chrono::DateTime::parse_from_rfc3339(from).ok()?;
    let to = match to {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t).ok()?,
        None => chrono::Utc::now().fixed_offset(),
    };
    Some((to - from).num_seconds())
}

/// The status as words: `stopped`, `charging`, `disputed: why`, `void`.
fn status(s: &SessionView) -> Markup {
    html! {
        @match s.status.as_str() {
            "active" => span.state.charging { "charging" },
            "disputed" => span.state.faulted title=(plain(s.dispute.as_deref().unwrap_or(""))) { "disputed" },
            other => span.state { (other) },
        }
    }
}

/// A table of sessions (shared with the charger's page).
pub(super) fn table(sessions: &[SessionView]) -> Markup {
    html! {
        @if sessions.is_empty() { p { "No sessions." } }
        @else {
            div.scroll { table.sessions {
                thead { tr {
                    th { "Session" } th { "Charger" } th { "Tag" } th { "Status" } th { "Started" }
                    th { "Duration" } th { "Energy" } th { "Total" } th { "Stop reason" }
                } }
                tbody {
                    @for s in sessions {
                        tr {
                            td { a href={ "/sessions/" (s.id) } { "#" (s.id) } }
                            td { a href={ "/chargers/" (s.device) } { (s.device) } " · " (s.connector) }
                            td { (s.tag) }
                            td { (status(s)) }
                            td { (time_text(&s.started_at)) }
                            td.num { (seconds_between(&s.started_at, s.stopped_at.as_deref()).map(ui::duration).unwrap_or_default()) }
                            td.num { (ui::kwh(delivered(s))) }
                            td.num {
                                @match (&s.total, &s.running_net) {
                                    (Some(t), _) => (ui::money(t, &s.currency)),
                                    (None, Some(r)) => { (ui::money(r, &s.currency)) " so far" },
                                    _ => "—",
                                }
                            }
                            td { (plain(s.stop_reason.as_deref().unwrap_or("—"))) }
                        }
                    }
                }
            } }
        }
    }
}

async fn sessions(
    State(state): State<ApiState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let text = |k: &str| q.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let (device, status, cursor) = (text("device"), text("status"), text("cursor"));
    let query = SessionQuery {
        device: (!device.is_empty())
            .then(|| DeviceId::parse(&device).ok())
            .flatten(),
        status: (!status.is_empty()).then(|| status.clone()),
        cursor: (!cursor.is_empty()).then(|| cursor.clone()),
        limit: Some(100),
        ..SessionQuery::default()
    };
    let page = match state.service.list_sessions(&v.user.who, query).await {
        Ok(p) => p,
        Err(e) => return v.error(&e),
    };
    let title = if status == "disputed" {
        "Disputed sessions".to_owned()
    } else {
        "Sessions".to_owned()
    };
    let filters = html! {
        @if status == "disputed" {
            p { "Sessions replayed with readings no meter can produce, or started before their charger moved: billed nothing until you resolve them (open one to bill it with corrected readings, or void it)." }
        }
        form.filters method="get" action="/sessions" {
            label for="device" { "Charger" }
            input #device name="device" value=(device) maxlength="64";
            label for="status" { "Status" }
            select #status name="status" {
                option value="" selected[status.is_empty()] { "all" }
                @for s in ["active", "stopped", "disputed", "void"] {
                    option value=(s) selected[status == s] { (s) }
                }
            }
            button type="submit" { "Filter" }
        }
    };
    let after = html! {
        @if let Some(next) = &page.next_cursor {
            p { a href={ "/sessions?device=" (ui::query_value(&device)) "&status=" (ui::query_value(&status)) "&cursor=" (ui::query_value(next)) } { "Older sessions" } }
        }
    };
    v.live_page(title, filters, table(&page.sessions), after)
}

/// An inline SVG line chart of the energy delivered over the session's samples, with its
/// axes labelled.
fn energy_chart(s: &SessionDetail) -> Markup {
    let start = s.session.meter_start_wh;
    let points: Vec<i64> = s.samples.iter().map(|p| p.energy_wh - start).collect();
    let max = points.iter().copied().max().unwrap_or(0).max(1);
    let n = points.len().max(2) - 1;
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, wh)| {
            let x = 60.0 + 330.0 * i as f64 / n as f64;
            let y = 150.0 - 130.0 * *wh as f64 / max as f64;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    html! {
        figure {
            svg.chart viewBox="0 0 400 180" role="img" aria-label={ "Energy delivered over the session, up to " (ui::kwh(i128::from(max))) } {
                line x1="60" y1="150" x2="390" y2="150" stroke="currentColor" {}
                line x1="60" y1="20" x2="60" y2="150" stroke="currentColor" {}
                text x="55" y="24" text-anchor="end" font-size="10" { (ui::kwh(i128::from(max))) }
                text x="55" y="150" text-anchor="end" font-size="10" { "0" }
                text x="225" y="172" text-anchor="middle" font-size="10" { "meter samples, in time order" }
                polyline fill="none" stroke="#0b63ce" stroke-width="3" points=(coords.join(" ")) {}
            }
            figcaption { "Energy delivered over the session's meter samples (up to " (ui::kwh(i128::from(max))) ")." }
        }
    }
}

/// A cost line's quantity with its unit: kWh, hours, or a session.
fn quantity(kind: &str, quantity: &str) -> String {
    match kind {
        "energy" => format!("{quantity} kWh"),
        "time" => format!("{quantity} h"),
        _ => quantity.to_owned(),
    }
}

async fn session(State(state): State<ApiState>, v: Viewer, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return v.error(&Error::not_found("session"));
    };
    let s = match state.service.get_session(&v.user.who, id).await {
        Ok(s) => s,
        Err(e) => return v.error(&e),
    };
    let x = &s.session;
    let live = html! {
        dl.facts {
            dt { "Charger" } dd { a href={ "/chargers/" (x.device) } { (x.device) } ", connector " (x.connector) }
            dt { "Tag" } dd { (x.tag) }
            dt { "Status" } dd {
                (status(x))
                @if let Some(d) = &x.dispute { " — " (plain(d)) }
            }
            dt { "Started" } dd { (time_text(&x.started_at)) }
            dt { "Stopped" } dd { @match &x.stopped_at { Some(t) => (time_text(t)), None => "—" } }
            dt { "Duration" } dd { (seconds_between(&x.started_at, x.stopped_at.as_deref()).map(ui::duration).unwrap_or_default()) }
            dt { "Stop reason" } dd { (plain(x.stop_reason.as_deref().unwrap_or("—"))) }
            dt { "Energy" } dd.energy { (ui::kwh(delivered(x))) }
            dt { "Meter" } dd { (ui::grouped(i128::from(x.meter_start_wh))) " Wh at the start"
                @if let Some(stop) = x.meter_stop_wh { ", " (ui::grouped(i128::from(stop))) " Wh at the stop" } }
            @if let Some(net) = &x.running_net {
                dt { "Running cost" } dd.cost { (ui::money(net, &x.currency)) " so far (net)" }
            }
            dt { "Net / tax / total" } dd {
                @match (&x.net, &x.tax, &x.total) {
                    (Some(n), Some(t), Some(total)) => {
                        (ui::money(n, &x.currency)) " / " (ui::money(t, &x.currency)) " / " strong { (ui::money(total, &x.currency)) }
                    }
                    _ => "billed when the session stops",
                }
            }
            dt { "Tariff" } dd {
                (x.tariff["id"].as_str().unwrap_or("none (free)")) ": "
                (ui::money(x.tariff["energy_per_kwh"].as_str().unwrap_or("0"), &x.currency)) " per kWh, "
                (ui::money(x.tariff["time_per_hour"].as_str().unwrap_or("0"), &x.currency)) " per hour, "
                (ui::money(x.tariff["session_fee"].as_str().unwrap_or("0"), &x.currency)) " per session, tax "
                (x.tariff["tax_rate"].as_str().unwrap_or("0"))
            }
        }
        @if let Some(r) = &x.resolution {
            p { "Resolved (" (r.action) ") by " (r.by) " at " (ui::time(r.at)) "." }
        }
        (energy_chart(&s))
        h2 { "Cost lines" }
        @if s.cost_lines.is_empty() { p { "Priced when the session stops." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Kind" } th { "Quantity" } th { "Unit price" } th { "Amount" } } }
                tbody { @for c in &s.cost_lines {
                    tr {
                        td { (c.kind) }
                        td.num { (quantity(&c.kind, &c.quantity)) }
                        td.num { (ui::money(&c.unit_price, &x.currency)) }
                        td.num { (ui::money(&c.amount, &x.currency)) }
                    }
                } }
            } }
            p { "Exact amounts, before the one rounding of net and tax (half away from zero, to the currency's minor unit)." }
        }
        h2 { "Meter samples" }
        @if s.samples_total > s.samples.len() as i64 {
            p { (ui::grouped(i128::from(s.samples_total))) " samples: " (ui::grouped(s.samples.len() as i128)) " of them are shown, evenly spread, with the first and the last." }
        }
        div.scroll { table {
            thead { tr { th { "At" } th { "Delivered" } th { "Meter register (Wh)" } th { "Power (W)" } } }
            tbody { @for p in &s.samples {
                tr {
                    td { (time_text(&p.at)) }
                    td.num { (ui::kwh(i128::from(p.energy_wh - x.meter_start_wh))) }
                    td.num { (ui::grouped(i128::from(p.energy_wh))) }
                    td.num { (p.power_w.map_or("—".to_owned(), |w| ui::grouped(i128::from(w)))) }
                }
            } }
        } }
    };
    let after = html! {
        @if x.status.as_str() == "disputed" {
            h2 { "Resolve the dispute" }
            div.grid {
                form.card method="post" action={ "/sessions/" (x.id) "/resolution" } {
                    (csrf(&v.user))
                    input type="hidden" name="action" value="bill";
                    h3 { "Bill with corrected readings" }
                    label for="r-start" { "Meter start (Wh)" }
                    input #r-start name="meter_start_wh" type="number" min="0" value=(x.meter_start_wh) required;
                    label for="r-stop" { "Meter stop (Wh)" }
                    input #r-stop name="meter_stop_wh" type="number" min="0" value=(x.meter_stop_wh.unwrap_or(x.last_meter_wh)) required;
                    label for="r-started" { "Started (RFC 3339, UTC)" }
                    input #r-started name="started_at" value=(x.started_at) required;
                    label for="r-stopped" { "Stopped (RFC 3339, UTC)" }
                    input #r-stopped name="stopped_at" value=(x.stopped_at.as_deref().unwrap_or("")) required;
                    label for="r-note" { "Note" }
                    input #r-note name="note" maxlength="200";
                    button type="submit" data-confirm="Bill this session with these readings?" { "Bill the session" }
                }
                form.card.danger-zone method="post" action={ "/sessions/" (x.id) "/resolution" } {
                    (csrf(&v.user))
                    input type="hidden" name="action" value="void";
                    h3 { "Void" }
                    p { "Billed nothing, for good." }
                    label for="v-note" { "Note" }
                    input #v-note name="note" maxlength="200";
                    button.danger type="submit" data-confirm="Void this session? It will never be billed." { "Void the session" }
                }
            }
        }
    };
    let live_page = x.status.as_str() == "active";
    if live_page {
        v.live_page(format!("Session #{}", x.id), html! {}, live, after)
    } else {
        v.page(format!("Session #{}", x.id), html! { (live) (after) })
    }
}

async fn resolve(State(state): State<ApiState>, Path(id): Path<String>, f: AuthedForm) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return f.failed("/sessions", &Error::not_found("session"));
    };
    let to = format!("/sessions/{id}");
    let optional = |name: &str| Some(f.field(name)).filter(|v| !v.is_empty());
    let mut req = serde_json::Map::new();
    req.insert("action".into(), f.field("action").into());
    for name in ["meter_start_wh", "meter_stop_wh"] {
        if let Some(v) = optional(name) {
            match v.parse::<i64>() {
                Ok(n) => {
                    req.insert(name.into(), n.into());
                }
                Err(_) => {
                    return f.failed(&to, &Error::invalid(name, "must be a whole number of Wh"))
                }
            }
        }
    }
    for name in ["started_at", "stopped_at", "note"] {
        if let Some(v) = optional(name) {
            req.insert(name.into(), v.into());
        }
    }
    let result = match serde_json::from_value(serde_json::Value::Object(req)) {
        Ok(req) => state.service.resolve_session(&f.user.who, id, req).await,
        Err(e) => Err(Error::invalid("action", e.to_string())),
    };
    match result {
        Ok(s) => f.done(
            &to,
            Flash::ok(format!(
                "Session #{id} is {} now.",
                s.session.status.as_str()
            )),
        ),
        Err(e) => f.failed(&to, &e),
    }
}
