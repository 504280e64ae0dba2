//! The fleet (`/`): counts at a glance, today's energy and revenue, the latest faults, and
//! a page of chargers searched and filtered on the server (50 at a time, however big the
//! fleet); the live part refreshes as a fragment with an ETag.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{Duration, Utc};
use maud::{html, Markup};

use crate::api::ApiState;
use crate::charging::history::{GroupBy, ReportQuery};
use crate::console::ui::{self, connector_state, grouped, online, plain, time_or};
use crate::console::Viewer;
use crate::devices::fleet::FLEET_PAGE;
use crate::devices::DeviceState;
use crate::ids::DeviceId;
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/", get(fleet))
}

async fn fleet(
    State(state): State<ApiState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let text = |k: &str| q.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let search = text("q");
    let status = DeviceState::parse(&text("status")).unwrap_or_default();
    let after = DeviceId::parse(&text("after")).ok();
    let s = &state.service;
    let page = match s
        .fleet_page(&v.user.who, Some(&search), status, after, FLEET_PAGE)
        .await
    {
        Ok(p) => p,
        Err(e) => return v.error(&e),
    };
    let overview = match s.fleet_overview(&v.user.who).await {
        Ok(o) => o,
        Err(e) => return v.error(&e),
    };
    let today = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let report = s
        .billing_report(
            &v.user.who,
            &ReportQuery {
                from: today,
                to: today + Duration::days(1),
                group_by: GroupBy::Day,
                format: None,
            },
        )
        .await;
    let today = match report {
        Ok(r) => r.totals,
        Err(e) => return v.error(&e),
    };
    let admin = matches!(v.user.who, Principal::Admin);
    let filters = html! {
        form.filters method="get" action="/" role="search" {
            label for="q" { "Search" }
            input #q type="search" name="q" value=(search) placeholder="id, model, firmware" maxlength="64";
            label for="status" { "Status" }
            select #status name="status" {
                @for s in ["all", "online", "offline", "charging", "faulted"] {
                    option value=(s) selected[status.as_str() == s] { (s) }
                }
            }
            button type="submit" { "Filter" }
        }
    };
    let c = overview.counts;
    let live = html! {
        dl.overview {
            div { dt { "Chargers" } dd { (grouped(i128::from(c.chargers))) } }
            div { dt { "Online" } dd { (grouped(i128::from(c.online))) } }
            div { dt { "Offline" } dd { (grouped(i128::from(c.chargers - c.online))) } }
            div { dt { "Charging" } dd { (grouped(i128::from(c.charging))) } }
            div { dt { "Faulted" } dd.bad[c.faulted > 0] { (grouped(i128::from(c.faulted))) } }
            div {
                dt { "Today" }
                dd {
                    @if today.is_empty() { "no sessions billed yet" }
                    @for t in &today {
                        span.today { (ui::kwh(t.energy_wh)) ", " (ui::money(&t.total, &t.currency)) }
                        " "
                    }
                }
            }
        }
        @if !overview.faults.is_empty() {
            details.faults {
                summary { "Latest faults (" (overview.faults.len()) ")" }
                ul {
                    @for f in &overview.faults {
                        li {
                            a href={ "/chargers/" (f.device) } { (f.device) } ", connector " (f.connector) ": "
                            (connector_state(&f.state, Some(&f.error))) " " (ui::time(f.at))
                        }
                    }
                }
            }
        }
        (table(&page.devices, admin))
        @if let Some(next) = &page.next {
            p { a href={ "/?q=" (ui::query_value(&search)) "&status=" (status.as_str()) "&after=" (next) } { "Next " (FLEET_PAGE) " chargers" } }
        }
    };
    v.live_page("Fleet".to_owned(), filters, live, html! {})
}

fn table(devices: &[crate::devices::Device], admin: bool) -> Markup {
    html! {
        @if devices.is_empty() { p { "No charger matches." } }
        @else {
            div.scroll { table.fleet {
                thead { tr {
                    th { "Charger" } th { "Status" } th { "Last seen" } th { "Connectors" }
                    th { "Firmware" } th { "Model" } @if admin { th { "Owner" } }
                } }
                tbody {
                    @for d in devices {
                        tr {
                            td { a href={ "/chargers/" (d.id) } { (d.id) } }
                            td { (online(d.online)) }
                            td { (time_or(d.last_seen, "never")) }
                            td {
                                @for c in &d.connectors {
                                    span.connector { (c.id) ": " (connector_state(&c.state, c.error.as_deref())) } " "
                                }
                            }
                            td.text { (plain(d.firmware.as_deref().unwrap_or("—"))) }
                            td.text { (plain(d.model.as_deref().unwrap_or("—"))) }
                            @if admin { td { (d.owner) } }
                        }
                    }
                }
            } }
        }
    }
}
