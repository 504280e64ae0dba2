//! The console's pages (maud: HTML built in Rust, escaped by default).

use charger_protocol::FirmwareBundle;
use maud::{html, Markup, DOCTYPE};

use super::User;
use crate::audit::AuditEntry;
use crate::charging::history::{BillingReport, ReportQuery, SessionDetail, SessionView};
use crate::devices::Device;
use crate::devices::{TransferStatus, TransferView};
use crate::ids::DeviceId;
use crate::service::Principal;
use crate::tags::{Tag, UnknownTag};

/// The page around `body`; `live` marks a page whose `#live` part refreshes itself.
fn layout(title: &str, user: Option<&User>, live: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · MyBox console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body data-live=(if live { "on" } else { "off" }) {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "MyBox" }
                    @if let Some(u) = user {
                        nav aria-label="Main" {
                            a href="/" { "Fleet" }
                            a href="/sessions" { "Sessions" }
                            a href="/billing" { "Billing" }
                            a href="/tags" { "Tags" }
                            a href="/transfers" { "Transfers" }
                            a href="/tokens" { "Tokens" }
                        }
                        form.signout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(u.csrf);
                            span.who { "Signed in as " strong { (u.name()) } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// Text from chargers, cards or operators with the Unicode controls that reorder or hide
/// what follows (bidirectional overrides and isolates, zero-width marks) made visible as
/// U+FFFD, so a label cannot disguise itself or the text after it. Everything is escaped
/// by maud besides.
pub fn plain(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{061C}'
            | '\u{FEFF}' => '\u{FFFD}',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn csrf(u: &User) -> Markup {
    html! { input type="hidden" name="csrf" value=(u.csrf); }
}

pub fn login(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        false,
        html! {
            @if let Some(e) = error { p.notice.bad role="alert" { (e) } }
            form.card method="post" action="/login" {
                p { "Sign in with an owner token or the platform admin token." }
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn error(u: &User, status: u16, message: &str) -> Markup {
    layout(
        &format!("Error {status}"),
        Some(u),
        false,
        html! { p.notice.bad role="alert" { (message) } p { a href="/" { "Back to the fleet" } } },
    )
}

pub fn notice_ok(text: &str) -> Markup {
    html! { p.notice.ok role="status" { (text) } }
}

pub fn notice_error(text: &str) -> Markup {
    html! { p.notice.bad role="alert" { (text) } }
}

pub fn command_answer(command: &str, answer: &serde_json::Value) -> Markup {
    let status = answer["status"].as_str().unwrap_or("?");
    let reason = answer["reason"].as_str();
    let text = match reason {
        Some(r) => format!("The charger answered {command}: {status} ({r})."),
        None => format!("The charger answered {command}: {status}."),
    };
    if status == "accepted" {
        notice_ok(&text)
    } else {
        notice_error(&text)
    }
}

pub fn bundle_once(bundle: &FirmwareBundle) -> Markup {
    let json = serde_json::to_string_pretty(bundle).unwrap_or_default();
    html! {
        div.notice.ok role="status" {
            p { "New credentials. The old password and key are refused from now on. "
                strong { "This bundle is shown once:" } " give it to the charger." }
            pre { (json) }
        }
    }
}

pub fn claim_code(device: &DeviceId, code: &str) -> Markup {
    html! {
        div.notice.ok role="status" {
            p { "Accepted. Enter this code at charger " strong { (device) } " (shown once):" }
            p.code { code { (code) } }
        }
    }
}

fn online(on: bool) -> Markup {
    html! {
        @if on { span.badge.on { "online" } } @else { span.badge.off { "offline" } }
    }
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

pub fn fleet(u: &User, devices: &[Device], search: &str, status: &str) -> Markup {
    let online_count = devices.iter().filter(|d| d.online).count();
    layout(
        "Fleet",
        Some(u),
        true,
        html! {
            form.filters method="get" action="/" role="search" {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(search) placeholder="id, model, firmware";
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" selected[status.is_empty()] { "all" }
                    option value="online" selected[status == "online"] { "online" }
                    option value="offline" selected[status == "offline"] { "offline" }
                }
                button type="submit" { "Filter" }
            }
            div #live aria-live="polite" {
                p { (devices.len()) " chargers, " (online_count) " online." }
                div.scroll {
                    table {
                        thead { tr { th { "Charger" } th { "Status" } th { "Last seen" } th { "Connectors" } th { "Firmware" } th { "Model" } th { "Owner" } } }
                        tbody {
                            @for d in devices {
                                tr {
                                    td { a href={ "/chargers/" (d.id) } { (d.id) } }
                                    td { (online(d.online)) }
                                    td { (when(d.last_seen)) }
                                    td {
                                        @if d.connectors.is_empty() { "—" }
                                        @for c in &d.connectors { span.connector { (c.id) ": " (c.state) } " " }
                                    }
                                    td { (plain(d.firmware.as_deref().unwrap_or("—"))) }
                                    td { (plain(d.model.as_deref().unwrap_or("—"))) }
                                    td { (d.owner) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn sessions_table(sessions: &[SessionView]) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr { th { "Session" } th { "Charger" } th { "Tag" } th { "Status" } th { "Started" } th { "Energy" } th { "Total" } } }
                tbody {
                    @for s in sessions {
                        tr {
                            td { a href={ "/sessions/" (s.id) } { "#" (s.id) } }
                            td { a href={ "/chargers/" (s.device) } { (s.device) } }
                            td { (s.tag) }
                            td { (s.status.as_str()) @if s.dispute.is_some() { " (disputed)" } }
                            td { (s.started_at) }
                            td.num { (s.energy_wh.unwrap_or(s.last_meter_wh - s.meter_start_wh)) " Wh" }
                            td.num { (s.total.as_deref().unwrap_or("—")) " " (s.currency) }
                        }
                    }
                }
            }
        }
    }
}

/// A charger's recent actions (commands and their results, rotations, offers, settings).
fn actions_table(actions: &[AuditEntry]) -> Markup {
    html! {
        @if actions.is_empty() { p { "No actions yet." } }
        @else {
            div.scroll { table {
                thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Detail" } th { "Outcome" } } }
                tbody {
                    @for a in actions {
                        tr {
                            td { (when(Some(a.at))) } td { (a.principal) } td { (a.action) }
                            td { (plain(a.detail.as_deref().unwrap_or(""))) } td { (plain(&a.outcome)) }
                        }
                    }
                }
            } }
        }
    }
}

pub fn charger(
    u: &User,
    d: &Device,
    sessions: &[SessionView],
    actions: &[AuditEntry],
    notice: Option<Markup>,
) -> Markup {
    let active: Vec<&SessionView> = sessions
        .iter()
        .filter(|s| s.status.as_str() == "active")
        .collect();
    layout(
        &format!("Charger {}", d.id),
        Some(u),
        true,
        html! {
            @if let Some(n) = notice { (n) }
            div #live aria-live="polite" {
                dl.facts {
                    dt { "Status" } dd { (online(d.online)) }
                    dt { "Last seen" } dd { (when(d.last_seen)) }
                    dt { "Owner" } dd { (d.owner) }
                    dt { "Tariff" } dd { (d.tariff.as_ref().map_or("owner's default".to_owned(), |t| t.to_string())) }
                    dt { "Firmware / model" } dd { (plain(d.firmware.as_deref().unwrap_or("—"))) " / " (plain(d.model.as_deref().unwrap_or("—"))) }
                    dt { "Connectors" } dd {
                        (d.connector_count) " ("
                        @for c in &d.connectors { (c.id) ": " (c.state) " " }
                        ")"
                    }
                }
                h2 { "Charging now" }
                @if active.is_empty() { p { "No session in progress." } }
                @for s in &active {
                    form.inline method="post" action={ "/chargers/" (d.id) "/commands/remote-stop" } {
                        (csrf(u))
                        input type="hidden" name="session_id" value=(s.id);
                        span { "Session " a href={ "/sessions/" (s.id) } { "#" (s.id) } " on connector " (s.connector) ", "
                            span.energy { (s.last_meter_wh - s.meter_start_wh) " Wh" } " so far " }
                        button.danger type="submit" data-confirm={ "Stop session #" (s.id) " now?" } { "Stop session #" (s.id) }
                    }
                }
            }
            h2 { "Commands" }
            div.grid {
                form.card method="post" action={ "/chargers/" (d.id) "/commands/remote-start" } {
                    (csrf(u))
                    h3 { "Remote start" }
                    label for="start-tag" { "Tag uid" }
                    input #start-tag name="tag" required pattern="[0-9A-Fa-f]{8,20}";
                    label for="start-connector" { "Connector" }
                    input #start-connector name="connector" type="number" min="1" max=(d.connector_count) value="1" required;
                    button type="submit" { "Start" }
                }
                form.card method="post" action={ "/chargers/" (d.id) "/commands/unlock" } {
                    (csrf(u))
                    h3 { "Unlock a connector" }
                    label for="unlock-connector" { "Connector" }
                    input #unlock-connector name="connector" type="number" min="1" max=(d.connector_count) value="1" required;
                    button type="submit" { "Unlock" }
                }
                form.card method="post" action={ "/chargers/" (d.id) "/credentials" } {
                    (csrf(u))
                    h3 { "Credentials" }
                    p { "For a lost or leaked bundle: the old password and key stop working at once." }
                    button.danger type="submit" data-confirm="Rotate the credentials? The charger's current bundle stops working at once, and the new one is shown only once." { "Rotate credentials" }
                }
                form.card method="post" action={ "/chargers/" (d.id) "/transfers" } {
                    (csrf(u))
                    h3 { "Transfer" }
                    label for="to" { "To owner" }
                    input #to name="to" required;
                    button.danger type="submit" data-confirm="Offer this charger to another owner? If they accept and claim it, it leaves your fleet." { "Offer the charger" }
                }
            }
            h2 { "Recent sessions" }
            (sessions_table(sessions))
            h2 { "Recent actions" }
            (actions_table(actions))
        },
    )
}

pub fn sessions(
    u: &User,
    sessions: &[SessionView],
    device: &str,
    status: &str,
    next: Option<&str>,
) -> Markup {
    layout(
        "Sessions",
        Some(u),
        true,
        html! {
            form.filters method="get" action="/sessions" {
                label for="device" { "Charger" }
                input #device name="device" value=(device);
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" selected[status.is_empty()] { "all" }
                    option value="active" selected[status == "active"] { "active" }
                    option value="stopped" selected[status == "stopped"] { "stopped" }
                    option value="disputed" selected[status == "disputed"] { "disputed" }
                }
                button type="submit" { "Filter" }
            }
            div #live aria-live="polite" { (sessions_table(sessions)) }
            @if let Some(cursor) = next {
                // Only values that need no URL escaping go into the link.
                @let device = if DeviceId::parse(device).is_ok() { device } else { "" };
                @let status = if ["active", "stopped", "disputed"].contains(&status) { status } else { "" };
                @let cursor = if cursor.bytes().all(|b| b.is_ascii_digit()) { cursor } else { "" };
                p { a href={ "/sessions?device=" (device) "&status=" (status) "&cursor=" (cursor) } { "Older sessions" } }
            }
        },
    )
}

/// An inline SVG line chart of energy over the session's samples.
fn energy_chart(s: &SessionDetail) -> Markup {
    let start = s.session.meter_start_wh;
    let points: Vec<i64> = s.samples.iter().map(|p| p.energy_wh - start).collect();
    let max = points.iter().copied().max().unwrap_or(0).max(1);
    let n = points.len().max(2) - 1;
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, wh)| {
            let x = 10.0 + 380.0 * i as f64 / n as f64;
            let y = 150.0 - 140.0 * *wh as f64 / max as f64;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    html! {
        figure {
            svg.chart viewBox="0 0 400 160" role="img" aria-label={ "Energy over time, up to " (max) " Wh" } {
                line x1="10" y1="150" x2="390" y2="150" stroke="currentColor" {}
                polyline fill="none" stroke="#0b63ce" stroke-width="3" points=(coords.join(" ")) {}
            }
            figcaption { "Energy delivered over the session's meter samples (max " (max) " Wh)." }
        }
    }
}

pub fn session(u: &User, s: &SessionDetail) -> Markup {
    let v = &s.session;
    layout(
        &format!("Session #{}", v.id),
        Some(u),
        v.status.as_str() == "active",
        html! {
            div #live aria-live="polite" {
                dl.facts {
                    dt { "Charger" } dd { a href={ "/chargers/" (v.device) } { (v.device) } ", connector " (v.connector) }
                    dt { "Tag" } dd { (v.tag) }
                    dt { "Status" } dd { (v.status.as_str()) @if let Some(d) = &v.dispute { " — disputed: " (d) } }
                    dt { "Started" } dd { (v.started_at) }
                    dt { "Stopped" } dd { (v.stopped_at.as_deref().unwrap_or("—")) }
                    dt { "Energy" } dd.energy { (v.energy_wh.unwrap_or(v.last_meter_wh - v.meter_start_wh)) " Wh" }
                    dt { "Net / tax / total" } dd { (v.net.as_deref().unwrap_or("—")) " / " (v.tax.as_deref().unwrap_or("—")) " / " (v.total.as_deref().unwrap_or("—")) " " (v.currency) }
                }
                @if let Some(r) = &v.resolution {
                    p { "Resolved (" (r.action) ") by " (r.by) " at " (when(Some(r.at))) "." }
                }
                (energy_chart(s))
                h2 { "Cost lines" }
                @if s.cost_lines.is_empty() { p { "Priced when the session stops." } }
                @else {
                    div.scroll { table {
                        thead { tr { th { "Kind" } th { "Quantity" } th { "Unit price" } th { "Amount" } } }
                        tbody { @for c in &s.cost_lines { tr { td { (c.kind) } td.num { (c.quantity) } td.num { (c.unit_price) } td.num { (c.amount) } } } }
                    } }
                }
                h2 { "Meter samples" }
                div.scroll { table {
                    thead { tr { th { "At" } th { "Energy (Wh)" } th { "Power (W)" } } }
                    tbody { @for p in &s.samples { tr { td { (p.at) } td.num { (p.energy_wh) } td.num { (p.power_w.map_or("—".to_owned(), |w| w.to_string())) } } } }
                } }
            }
            @if v.status.as_str() == "disputed" {
                h2 { "Resolve the dispute" }
                div.grid {
                    form.card method="post" action={ "/sessions/" (v.id) "/resolution" } {
                        (csrf(u))
                        input type="hidden" name="action" value="bill";
                        h3 { "Bill with corrected readings" }
                        label for="r-start" { "Meter start (Wh)" }
                        input #r-start name="meter_start_wh" type="number" min="0" value=(v.meter_start_wh) required;
                        label for="r-stop" { "Meter stop (Wh)" }
                        input #r-stop name="meter_stop_wh" type="number" min="0" value=(v.meter_stop_wh.unwrap_or(v.last_meter_wh)) required;
                        label for="r-started" { "Started (RFC 3339, UTC)" }
                        input #r-started name="started_at" value=(v.started_at) required;
                        label for="r-stopped" { "Stopped (RFC 3339, UTC)" }
                        input #r-stopped name="stopped_at" value=(v.stopped_at.as_deref().unwrap_or("")) required;
                        label for="r-note" { "Note" }
                        input #r-note name="note" maxlength="100";
                        button type="submit" { "Bill the session" }
                    }
                    form.card method="post" action={ "/sessions/" (v.id) "/resolution" } {
                        (csrf(u))
                        input type="hidden" name="action" value="void";
                        h3 { "Void" }
                        p { "Billed nothing, for good." }
                        label for="v-note" { "Note" }
                        input #v-note name="note" maxlength="100";
                        button.danger type="submit" data-confirm="Void this session? It will never be billed." { "Void the session" }
                    }
                }
            }
        },
    )
}

/// An owner's API tokens, with revocation.
pub fn tokens(
    u: &User,
    owner: &crate::ids::OwnerId,
    tokens: &[crate::owners::TokenInfo],
    notice: Option<Markup>,
) -> Markup {
    layout(
        "Tokens",
        Some(u),
        false,
        html! {
            @if let Some(n) = notice { (n) }
            p { "API tokens of " strong { (owner) } ". A revoked token is refused at once, and the console sessions signed in with it end." }
            @if tokens.is_empty() { p { "No tokens." } }
            div.scroll { table {
                thead { tr { th { "Id" } th { "Name" } th { "Created" } th { "Last used" } th { "" } } }
                tbody {
                    @for t in tokens {
                        tr {
                            td { (t.id) } td { (plain(t.name.as_deref().unwrap_or(""))) }
                            td { (when(Some(t.created_at))) } td { (when(t.last_used_at)) }
                            td {
                                form.inline method="post" action={ "/tokens/" (t.id) "/revoke" } {
                                    (csrf(u))
                                    input type="hidden" name="owner" value=(owner);
                                    button.danger type="submit" data-confirm="Revoke this token? Whatever uses it stops working at once." { "Revoke " (t.id) }
                                }
                            }
                        }
                    }
                }
            } }
        },
    )
}

pub fn billing(u: &User, r: &BillingReport, q: &ReportQuery) -> Markup {
    let from = q.from.format("%Y-%m-%d").to_string();
    let to = q.to.format("%Y-%m-%d").to_string();
    let group = r.group_by.clone();
    let csv = format!("/billing.csv?from={from}&to={to}&group_by={group}");
    // Bars: each row's total, scaled to the largest.
    let totals: Vec<f64> = r
        .rows
        .iter()
        .map(|row| row.total.parse::<f64>().unwrap_or(0.0))
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max).max(0.01);
    let bar_w = 380.0 / totals.len().max(1) as f64;
    layout(
        "Billing",
        Some(u),
        false,
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
            figure {
                svg.chart viewBox="0 0 400 160" role="img" aria-label="Total billed per group" {
                    @for (i, t) in totals.iter().enumerate() {
                        @let h = 140.0 * t / max;
                        rect x=(format!("{:.1}", 10.0 + bar_w * i as f64 + 2.0)) y=(format!("{:.1}", 150.0 - h))
                             width=(format!("{:.1}", (bar_w - 4.0).max(1.0))) height=(format!("{:.1}", h)) fill="#0b63ce" {}
                    }
                    line x1="10" y1="150" x2="390" y2="150" stroke="currentColor" {}
                }
                figcaption { "Total billed per " (group) " (tax included)." }
            }
            div.scroll { table {
                thead { tr { th { (group) } th { "Currency" } th { "Sessions" } th { "Energy (Wh)" } th { "Net" } th { "Tax" } th { "Total" } } }
                tbody {
                    @for row in &r.rows { tr { td { (row.group) } td { (row.currency) } td.num { (row.sessions) } td.num { (row.energy_wh) } td.num { (row.net) } td.num { (row.tax) } td.num { (row.total) } } }
                    @for row in &r.totals { tr.total { th scope="row" { "total" } td { (row.currency) } td.num { (row.sessions) } td.num { (row.energy_wh) } td.num { (row.net) } td.num { (row.tax) } td.num { (row.total) } } }
                }
            } }
        },
    )
}

pub fn tags(u: &User, tags: &[Tag], unknown: &[UnknownTag], notice: Option<Markup>) -> Markup {
    layout(
        "Tags",
        Some(u),
        false,
        html! {
            @if let Some(n) = notice { (n) }
            div.scroll { table {
                thead { tr { th { "Uid" } th { "Owner" } th { "Role" } th { "Label" } th { "Status" } th { "" } } }
                tbody {
                    @for t in tags {
                        tr {
                            td { (t.uid) } td { (t.owner) } td { (t.role.as_str()) }
                            td { (plain(t.label.as_deref().unwrap_or(""))) } td { (t.status.as_str()) }
                            td {
                                form.inline method="post" action="/tags/status" {
                                    (csrf(u))
                                    input type="hidden" name="uid" value=(t.uid);
                                    input type="hidden" name="owner" value=(t.owner);
                                    @if t.status.as_str() == "active" {
                                        input type="hidden" name="status" value="blocked";
                                        button.danger type="submit" data-confirm={ "Block card " (t.uid) "? It stops charging at once." } { "Block " (t.uid) }
                                    } @else {
                                        input type="hidden" name="status" value="active";
                                        button type="submit" { "Unblock " (t.uid) }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
            h2 { "Import from CSV" }
            form.card method="post" action="/tags/import" {
                (csrf(u))
                label for="csv" { "CSV (a header row; uid required, owner, role, label, ... optional)" }
                textarea #csv name="csv" rows="6" required { "uid,label\n" }
                button type="submit" { "Import" }
            }
            h2 { "Unknown cards seen at chargers" }
            @if unknown.is_empty() { p { "None." } }
            div.scroll { table {
                thead { tr { th { "Uid" } th { "Charger" } th { "Attempts" } th { "Last seen" } th { "" } } }
                tbody {
                    @for t in unknown {
                        tr {
                            td { (t.uid) } td { (t.device) } td.num { (t.attempts) } td { (when(Some(t.last_seen))) }
                            td {
                                form.inline method="post" action="/tags/enroll" {
                                    (csrf(u))
                                    input type="hidden" name="uid" value=(t.uid);
                                    input type="hidden" name="owner" value=(t.owner);
                                    button type="submit" { "Enroll " (t.uid) }
                                }
                            }
                        }
                    }
                }
            } }
        },
    )
}

pub fn transfers(u: &User, list: &[TransferView], notice: Option<Markup>) -> Markup {
    let me = match &u.who {
        Principal::Admin => None,
        Principal::Owner(o) => Some(o.clone()),
    };
    layout(
        "Transfers",
        Some(u),
        false,
        html! {
            @if let Some(n) = notice { (n) }
            @if list.is_empty() { p { "No transfer offers." } }
            div.scroll { table {
                thead { tr { th { "Offer" } th { "Charger" } th { "From" } th { "To" } th { "Status" } th { "Expires" } th { "" } } }
                tbody {
                    @for t in list {
                        tr {
                            td { (t.id) } td { (t.device) } td { (t.from) } td { (t.to) }
                            td { (t.status.as_str()) } td { (t.expires_at) }
                            td {
                                @if t.status == TransferStatus::Offered && me.as_ref() == Some(&t.to) {
                                    form.inline method="post" action={ "/transfers/" (t.id) "/accept" } {
                                        (csrf(u)) button type="submit" { "Accept" }
                                    }
                                    form.inline method="post" action={ "/transfers/" (t.id) "/decline" } {
                                        (csrf(u)) button type="submit" { "Decline" }
                                    }
                                }
                                @if t.status == TransferStatus::Offered && me.as_ref() != Some(&t.to) {
                                    form.inline method="post" action={ "/transfers/" (t.id) "/withdraw" } {
                                        (csrf(u)) button type="submit" { "Withdraw" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        },
    )
}
