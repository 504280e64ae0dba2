//! A charger (`/chargers/{id}`): its facts, connectors with their error codes, the sessions
//! charging now with their running cost (live), its commands with the outcome the charger
//! and the server reached, its tariff, credentials and transfer; recent sessions and
//! actions. Its history (`/chargers/{id}/history`): connections, status changes, answered
//! requests, commands, with filters.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::device_id;
use crate::api::ApiState;
use crate::audit::AuditEntry;
use crate::charging::history::{SessionQuery, SessionView};
use crate::console::flash::Flash;
use crate::console::ui::{self, connector_state, csrf, online, plain, time, time_or};
use crate::console::{AuthedForm, User, Viewer};
use crate::devices::HistoryKind;
use crate::error::Error;
use crate::ids::{DeviceId, OwnerId};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/chargers/{id}", get(charger))
        .route("/chargers/{id}/history", get(history))
        .route("/chargers/{id}/commands/{command}", post(command))
        .route("/chargers/{id}/credentials", post(rotate))
        .route("/chargers/{id}/transfers", post(offer))
        .route("/chargers/{id}/tariff", post(assign_tariff))
        .route("/chargers/{id}/registration", post(registration))
}

/// An OCPP charger's registration: rejected (its socket closes, its boots are Rejected)
/// or accepted again.
async fn registration(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    f: AuthedForm,
) -> Response {
    use crate::records::devices::Registration;
    let Ok(id) = DeviceId::parse(&id) else {
        return f.failed("/", &Error::not_found("device"));
    };
    let registration = match f.field("registration") {
        "accepted" => Registration::Accepted,
        "rejected" => Registration::Rejected,
        _ => {
            return f.failed(
                &page_of(&id),
                &Error::invalid("registration", "must be accepted or rejected"),
            )
        }
    };
    let req = crate::devices::UpdateDeviceRequest {
        max_power_w: None,
        require_v2: None,
        registration: Some(registration),
    };
    match state.service.update_device(&f.user.who, &id, req).await {
        Ok(_) => f.done(
            &page_of(&id),
            Flash::ok(match registration {
                Registration::Rejected => {
                    "The charger is rejected: its connection was closed, and its boots are refused."
                }
                _ => "The charger is accepted: its next boot is Accepted.",
            }),
        ),
        Err(e) => f.failed(&page_of(&id), &e),
    }
}

fn page_of(id: &DeviceId) -> String {
    format!("/chargers/{id}")
}

async fn charger(State(state): State<ApiState>, v: Viewer, Path(id): Path<String>) -> Response {
    let (v, id) = match device_id(v, &id) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let s = &state.service;
    let device = match s.get_device(&v.user.who, &id).await {
        Ok(d) => d,
        Err(e) => return v.error(&e),
    };
    let q = SessionQuery {
        device: Some(id.clone()),
        limit: Some(20),
        ..SessionQuery::default()
    };
    let sessions = match s.list_sessions(&v.user.who, q).await {
        Ok(p) => p.sessions,
        Err(e) => return v.error(&e),
    };
    let actions = match s.device_audit(&v.user.who, &id).await {
        Ok(a) => a,
        Err(e) => return v.error(&e),
    };
    let variables = if device.protocol == crate::devices::Protocol::Ocpp201 {
        match s.station_variables(&v.user.who, &id).await {
            Ok(vars) => Some(vars),
            Err(e) => return v.error(&e),
        }
    } else {
        None
    };
    let tariffs = match s.list_tariffs(&v.user.who).await {
        Ok(t) => t
            .into_iter()
            .filter(|t| t.owner == device.owner)
            .collect::<Vec<_>>(),
        Err(e) => return v.error(&e),
    };
    let tariff_text = match &device.tariff {
        Some(t) => t.to_string(),
        None => match tariffs.iter().find(|t| t.default) {
            Some(t) => format!("{} (the owner's default)", t.id),
            None => "none: sessions are free".to_owned(),
        },
    };
    let active: Vec<&SessionView> = sessions
        .iter()
        .filter(|s| s.status.as_str() == "active")
        .collect();
    let live = html! {
        dl.facts {
            dt { "Status" } dd { (online(device.online)) }
            dt { "Last seen" } dd { (time_or(device.last_seen, "never")) }
            dt { "Owner" } dd { (device.owner) }
            dt { "Protocol" } dd {
                @if device.protocol == crate::devices::Protocol::Ocpp201 { "OCPP 2.0.1 (WebSocket at /ocpp/" (device.id) ")" }
                @else if device.protocol.is_ocpp() { "OCPP 1.6J (WebSocket at /ocpp/" (device.id) ")" }
                @else { "MyBox (MQTT)" @if device.require_v2 { ", envelope v2 required" } }
            }
            @if let Some(r) = device.registration {
                dt { "Registration" } dd { (match r {
                    crate::records::devices::Registration::Pending => "pending (its next boot: its configuration is read)",
                    crate::records::devices::Registration::Accepted => "accepted",
                    crate::records::devices::Registration::Rejected => "rejected: its boots are refused, nothing is sent to it",
                }) }
            }
            dt { "Tariff" } dd { (plain(&tariff_text)) }
            dt { "Firmware" } dd.text { (plain(device.firmware.as_deref().unwrap_or("—"))) }
            dt { "Model" } dd.text { (plain(device.model.as_deref().unwrap_or("—"))) }
            dt { "Rated power" } dd { (ui::grouped(i128::from(device.max_power_w))) " W per connector" }
        }
        h2 { "Connectors" }
        div.scroll { table {
            thead { tr {
                th { "Connector" }
                th { @if device.online { "State" } @else { "State (last reported: the charger is offline)" } }
                th { "Since" }
            } }
            tbody {
                @for c in &device.connectors {
                    tr { td { (c.id) } td { (connector_state(&c.state, c.error.as_deref())) } td { (time(c.updated_at)) } }
                }
            }
        } }
        h2 { "Charging now" }
        @if active.is_empty() { p { "No session in progress." } }
        @for s in &active {
            form.inline.session method="post" action={ "/chargers/" (device.id) "/commands/remote-stop" } {
                (csrf(&v.user))
                input type="hidden" name="session_id" value=(s.id);
                span {
                    "Session " a href={ "/sessions/" (s.id) } { "#" (s.id) } " on connector " (s.connector)
                    ", tag " (s.tag) ", since " (ui::time_text(&s.started_at)) ": "
                    span.energy { (ui::kwh(i128::from(s.last_meter_wh - s.meter_start_wh))) }
                    @if let Some(net) = &s.running_net { ", " span.cost { (ui::money(net, &s.currency)) } " so far" }
                }
                " "
                button.danger type="submit" data-confirm={ "Stop session #" (s.id) " now?" } { "Stop session #" (s.id) }
            }
        }
    };
    let after = html! {
        h2 { "Commands" }
        div.grid {
            form.card method="post" action={ "/chargers/" (device.id) "/commands/remote-start" } {
                (csrf(&v.user))
                h3 { "Remote start" }
                label for="start-tag" { "Tag uid" }
                input #start-tag name="tag" required pattern="[0-9A-Fa-f]{8,20}";
                label for="start-connector" { "Connector" }
                input #start-connector name="connector" type="number" min="1" max=(device.connector_count) value="1" required;
                button type="submit" { "Start" }
            }
            form.card method="post" action={ "/chargers/" (device.id) "/commands/unlock" } {
                (csrf(&v.user))
                h3 { "Unlock a connector" }
                label for="unlock-connector" { "Connector" }
                input #unlock-connector name="connector" type="number" min="1" max=(device.connector_count) value="1" required;
                button type="submit" { "Unlock" }
            }
            @if device.protocol.is_ocpp() { (ocpp_forms(&v.user, &device)) }
            form.card method="post" action={ "/chargers/" (device.id) "/tariff" } {
                (csrf(&v.user))
                h3 { "Tariff" }
                label for="tariff" { "Bill its sessions by" }
                select #tariff name="tariff" {
                    option value="" selected[device.tariff.is_none()] { "the owner's default" }
                    @for t in &tariffs {
                        option value=(t.id) selected[device.tariff.as_ref() == Some(&t.id)] {
                            (t.id) " (" (t.currency.code()) ")"
                        }
                    }
                }
                button type="submit" { "Assign" }
            }
            form.card.danger-zone method="post" action={ "/chargers/" (device.id) "/credentials" } {
                (csrf(&v.user))
                h3 { "Credentials" }
                @if device.protocol.is_ocpp() {
                    p { "For a lost or leaked password: a connected charger is sent the new one first (AuthorizationKey); the old one stops working at once." }
                } @else {
                    p { "For a lost or leaked bundle: the old password and key stop working at once, and the charger needs the new bundle." }
                }
                button.danger type="submit" data-confirm="Rotate the credentials? The charger's current bundle stops working at once, and the new one is shown only once." { "Rotate credentials" }
            }
            @if device.registration == Some(crate::records::devices::Registration::Rejected) {
                form.card method="post" action={ "/chargers/" (device.id) "/registration" } {
                    (csrf(&v.user))
                    h3 { "Registration" }
                    p { "Rejected: its boots are refused." }
                    input type="hidden" name="registration" value="accepted";
                    button type="submit" { "Accept the charger" }
                }
            } @else if device.registration.is_some() {
                form.card.danger-zone method="post" action={ "/chargers/" (device.id) "/registration" } {
                    (csrf(&v.user))
                    h3 { "Registration" }
                    p { "To keep a charger off the network: its connection closes, and its boots are Rejected until it is accepted again." }
                    input type="hidden" name="registration" value="rejected";
                    button.danger type="submit" data-confirm="Reject the charger? It is disconnected and cannot charge online until accepted again." { "Reject the charger" }
                }
            }
            form.card.danger-zone method="post" action={ "/chargers/" (device.id) "/transfers" } {
                (csrf(&v.user))
                h3 { "Transfer" }
                label for="to" { "To owner" }
                input #to name="to" required pattern="[A-Za-z0-9_-]{1,64}";
                button.danger type="submit" data-confirm="Offer this charger to another owner? If they accept and claim it, it leaves your fleet." { "Offer the charger" }
            }
        }
        @if let Some(vars) = &variables { (station_variables(vars)) }
        h2 { "Recent sessions" }
        (super::sessions::table(&sessions))
        h2 { "Recent actions" }
        (actions_table(&actions))
        p { a href={ "/chargers/" (device.id) "/history" } { "The charger's history: connections, status changes, requests, commands" } }
    };
    v.live_page(format!("Charger {}", device.id), html! {}, live, after)
}

/// An OCPP 2.0.1 station's configuration as its base report gave it.
fn station_variables(vars: &[crate::records::devices::StationVariable]) -> Markup {
    html! {
        h2 { "Station configuration" }
        @if vars.is_empty() {
            p { "Not reported yet: the station reports it after its first boot (GetBaseReport)." }
        } @else {
            div.scroll { table.variables {
                thead { tr { th { "Component" } th { "EVSE" } th { "Variable" } th { "Value" } th { "Reported" } } }
                tbody {
                    @for var in vars {
                        tr {
                            td { (plain(&var.component)) }
                            td { @if var.evse == 0 { "station" } @else { (var.evse) } }
                            td { (plain(&var.variable)) }
                            td.text { (plain(&var.value)) }
                            td { (time(var.updated_at)) }
                        }
                    }
                }
            } }
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
                            td { (time(a.at)) } td { (a.principal) } td { (a.action) }
                            td.text { (plain(a.detail.as_deref().unwrap_or(""))) } td { (plain(&a.outcome)) }
                        }
                    }
                }
            } }
        }
    }
}

/// History filters: what kinds of line to show, and how they read.
fn kind_label(kind: HistoryKind) -> &'static str {
    match kind {
        HistoryKind::All => "everything",
        HistoryKind::Requests => "requests and answers",
        HistoryKind::Commands => "commands and actions",
        HistoryKind::Connections => "connections",
        HistoryKind::Status => "status changes",
    }
}

async fn history(
    State(state): State<ApiState>,
    v: Viewer,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (v, id) = match device_id(v, &id) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let kind = q
        .get("kind")
        .and_then(|k| HistoryKind::parse(k))
        .unwrap_or_default();
    let through = q
        .get("through")
        .and_then(|b| DateTime::parse_from_rfc3339(b).ok())
        .map(|t| t.with_timezone(&Utc));
    let page = match state
        .service
        .device_history(&v.user.who, &id, kind, through)
        .await
    {
        Ok(p) => p,
        Err(e) => return v.error(&e),
    };
    let filters = html! {
        p { a href={ "/chargers/" (id) } { "Back to the charger" } }
        form.filters method="get" action={ "/chargers/" (id) "/history" } {
            label for="kind" { "Show" }
            select #kind name="kind" {
                @for k in HistoryKind::ALL { option value=(k.as_str()) selected[k == kind] { (kind_label(k)) } }
            }
            button type="submit" { "Filter" }
        }
    };
    let body = html! {
        @if page.lines.is_empty() { p { "Nothing to show." } }
        @else {
            div.scroll { table.history {
                thead { tr { th { "When" } th { "What" } th { "Code" } th { "Detail" } } }
                tbody {
                    @for l in &page.lines {
                        tr {
                            td { (time(l.at)) }
                            td { (plain(&l.kind)) }
                            td { @if let Some(c) = l.code { span.code class=(if c < 300 { "ok" } else { "bad" }) { (c) } } }
                            td.text { (plain(&crate::error::bounded(&l.detail, 300))) }
                        }
                    }
                }
            } }
        }
        @if let Some(next) = page.next {
            @let cursor = next.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            p { a href={ "/chargers/" (id) "/history?kind=" (kind.as_str()) "&through=" (ui::query_value(&cursor)) } { "Older" } }
        }
    };
    v.live_page(format!("History of {id}"), filters, body, html! {})
}

/// The OCPP commands' forms (an OCPP charger's page only), in its version's terms.
fn ocpp_forms(user: &User, device: &crate::devices::Device) -> Markup {
    let action = |command: &str| format!("/chargers/{}/commands/{command}", device.id);
    let v201 = device.protocol == crate::devices::Protocol::Ocpp201;
    let version = if v201 { "2.0.1" } else { "1.6" };
    let resets: &[&str] = if v201 {
        &["Immediate", "OnIdle"]
    } else {
        &["Soft", "Hard"]
    };
    let triggers: &[&str] = if v201 {
        &[
            "StatusNotification",
            "Heartbeat",
            "MeterValues",
            "BootNotification",
            "TransactionEvent",
            "FirmwareStatusNotification",
        ]
    } else {
        &[
            "StatusNotification",
            "Heartbeat",
            "MeterValues",
            "BootNotification",
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
        ]
    };
    html! {
        form.card.danger-zone method="post" action=(action("reset")) {
            (csrf(user))
            input type="hidden" name="ocpp" value=(version);
            h3 { "Reset" }
            label for="reset-type" { "Kind" }
            select #reset-type name="type" { @for r in resets { option value=(r) { (r) } } }
            button.danger type="submit" data-confirm="Reset the charger? Sessions in progress stop." { "Reset" }
        }
        form.card method="post" action=(action("change-availability")) {
            (csrf(user))
            input type="hidden" name="ocpp" value=(version);
            h3 { "Availability" }
            label for="avail-connector" { @if v201 { "EVSE (0: the whole station)" } @else { "Connector (0: the whole charger)" } }
            input #avail-connector name="connector" type="number" min="0" max=(device.connector_count) value="0" required;
            label for="avail-type" { "Make it" }
            select #avail-type name="type" { option value="Operative" { "Operative" } option value="Inoperative" { "Inoperative" } }
            button type="submit" { "Change" }
        }
        form.card method="post" action=(action("trigger-message")) {
            (csrf(user))
            input type="hidden" name="ocpp" value=(version);
            h3 { "Ask for a message" }
            label for="trigger-message" { "Message" }
            select #trigger-message name="message" {
                @for m in triggers { option value=(m) { (m) } }
            }
            label for="trigger-connector" { @if v201 { "EVSE (0: none)" } @else { "Connector (0: none)" } }
            input #trigger-connector name="connector" type="number" min="0" max=(device.connector_count) value="0";
            button type="submit" { "Ask" }
        }
        form.card method="post" action=(action("send-local-list")) {
            (csrf(user))
            h3 { "Local list" }
            p { "Brings the charger's list of the owner's tags up to date (the changes since its version)." }
            button type="submit" { "Send the local list" }
        }
        @if !v201 {
            form.card method="post" action=(action("get-configuration")) {
                (csrf(user))
                h3 { "Configuration" }
                label for="config-key" { "Key (empty: all)" }
                input #config-key name="key" maxlength="50";
                button type="submit" { "Read" }
            }
            form.card method="post" action=(action("change-configuration")) {
                (csrf(user))
                h3 { "Change a configuration key" }
                label for="set-key" { "Key" }
                input #set-key name="key" required maxlength="50";
                label for="set-value" { "Value" }
                input #set-value name="value" required maxlength="500";
                button type="submit" { "Change" }
            }
        }
        form.card method="post" action=(action("clear-cache")) {
            (csrf(user))
            h3 { "Authorization cache" }
            button type="submit" { "Clear the cache" }
        }
    }
}

/// `connector` and the command's data from a command form.
fn command_data(f: &AuthedForm, command: &str) -> (serde_json::Value, i64) {
    let number = |name: &str| f.field(name).parse::<i64>().unwrap_or(0);
    let text = |name: &str| f.field(name).trim().to_owned();
    let v201 = f.field("ocpp") == "2.0.1";
    match command {
        "reset" => (serde_json::json!({"type": text("type")}), 0),
        "change-availability" if v201 => {
            let mut data = serde_json::json!({"operationalStatus": text("type")});
            if number("connector") > 0 {
                data["evse"] = serde_json::json!({"id": number("connector")});
            }
            (data, 0)
        }
        "change-availability" => (
            serde_json::json!({"connectorId": number("connector"), "type": text("type")}),
            0,
        ),
        "trigger-message" => {
            let mut data = serde_json::json!({"requestedMessage": text("message")});
            if number("connector") > 0 {
                if v201 {
                    data["evse"] = serde_json::json!({"id": number("connector")});
                } else {
                    data["connectorId"] = number("connector").into();
                }
            }
            (data, 0)
        }
        "get-configuration" => match text("key") {
            k if k.is_empty() => (serde_json::json!({}), 0),
            k => (serde_json::json!({"key": [k]}), 0),
        },
        "change-configuration" => (
            serde_json::json!({"key": text("key"), "value": f.field("value")}),
            0,
        ),
        "send-local-list" | "clear-cache" => (serde_json::json!({}), 0),
        "remote-stop" => (serde_json::json!({"session_id": number("session_id")}), 0),
        "remote-start" => (
            serde_json::json!({"tag": f.field("tag"), "connector": number("connector")}),
            number("connector"),
        ),
        _ => (
            serde_json::json!({"connector": number("connector")}),
            number("connector"),
        ),
    }
}

/// The outcome of a command, as the charger and the server reached it.
async fn command_outcome(
    state: &ApiState,
    u: &User,
    id: &DeviceId,
    command: &str,
    data: &serde_json::Value,
    connector: i64,
) -> Flash {
    let s = &state.service;
    let result = match s.send_command(&u.who, id, command, data, None).await {
        Ok(r) => r,
        Err(e) => return Flash::bad(format!("{command} was not done: {e}")),
    };
    // An OCPP answer (other than the three MyBox commands'), shown as the charger gave it.
    if !matches!(command, "remote-start" | "remote-stop" | "unlock") {
        let text: String = result.answer.to_string().chars().take(600).collect();
        let accepted = matches!(result.answer["status"].as_str(), None | Some("Accepted"));
        let message = format!("The charger answered {command}: {text}");
        return if accepted {
            Flash::ok(message)
        } else {
            Flash::bad(message)
        };
    }
    let status = result.answer["status"].as_str().unwrap_or("?");
    // OCPP's "Accepted" and "Unlocked" are MyBox's "accepted".
    let status = match status {
        "Accepted" | "Unlocked" => "accepted",
        other => other,
    };
    if status != "accepted" {
        let reason = result.answer["reason"]
            .as_str()
            .unwrap_or("no reason given");
        return Flash::bad(format!(
            "The charger refused {command}: {status} ({reason})."
        ));
    }
    match command {
        // Accepted by the charger is not a session yet: wait for it to start one.
        "remote-start" => {
            let wait = std::time::Duration::from_secs(10);
            let tag = data["tag"].as_str().unwrap_or_default();
            match s.session_started(&u.who, id, connector, tag, wait).await {
                Ok(Some(session)) => Flash::ok(format!(
                    "The charger accepted remote-start, and session #{session} started on connector {connector}."
                )),
                Ok(None) => Flash::bad(format!(
                    "The charger accepted remote-start, but no session started on connector {connector} within 10 s (is a car plugged in?)."
                )),
                Err(e) => Flash::bad(format!("remote-start: {e}")),
            }
        }
        _ => Flash::ok(format!("The charger accepted {command}.")),
    }
}

async fn command(
    State(state): State<ApiState>,
    Path((id, command)): Path<(String, String)>,
    f: AuthedForm,
) -> Response {
    let Ok(id) = DeviceId::parse(&id) else {
        return f.failed("/", &Error::not_found("device"));
    };
    let (data, connector) = command_data(&f, &command);
    let flash = command_outcome(&state, &f.user, &id, &command, &data, connector).await;
    f.done(&page_of(&id), flash)
}

async fn rotate(State(state): State<ApiState>, Path(id): Path<String>, f: AuthedForm) -> Response {
    let Ok(id) = DeviceId::parse(&id) else {
        return f.failed("/", &Error::not_found("device"));
    };
    match state.service.rotate_credentials(&f.user.who, &id).await {
        Ok(bundle) => {
            let flash = Flash {
                bundle: Some(bundle),
                ..Flash::ok("New credentials. The old password and key are refused from now on.")
            };
            f.done(&page_of(&id), flash)
        }
        Err(e) => f.failed(&page_of(&id), &e),
    }
}

async fn offer(State(state): State<ApiState>, Path(id): Path<String>, f: AuthedForm) -> Response {
    let Ok(id) = DeviceId::parse(&id) else {
        return f.failed("/", &Error::not_found("device"));
    };
    let to = match OwnerId::parse(f.field("to")) {
        Ok(to) => to,
        Err(e) => return f.failed(&page_of(&id), &Error::invalid("to", e.to_string())),
    };
    let req = crate::devices::TransferRequest { to };
    match state.service.create_transfer(&f.user.who, &id, req).await {
        Ok(t) => f.done(
            &page_of(&id),
            Flash::ok(format!(
                "Offered to {}. The offer expires at {}; the receiving owner accepts it under Transfers.",
                t.to, t.expires_at
            )),
        ),
        Err(e) => f.failed(&page_of(&id), &e),
    }
}

async fn assign_tariff(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    f: AuthedForm,
) -> Response {
    let Ok(id) = DeviceId::parse(&id) else {
        return f.failed("/", &Error::not_found("device"));
    };
    let tariff = match f.field("tariff") {
        "" => None,
        t => match crate::ids::TariffId::parse(t) {
            Ok(t) => Some(t),
            Err(e) => return f.failed(&page_of(&id), &Error::invalid("tariff", e.to_string())),
        },
    };
    let req = crate::devices::AssignTariffRequest { tariff };
    match state.service.assign_tariff(&f.user.who, &id, req).await {
        Ok(d) => f.done(
            &page_of(&id),
            Flash::ok(match d.tariff {
                Some(t) => format!("Its sessions are billed by tariff {t} from now on."),
                None => {
                    "Its sessions are billed by the owner's default tariff from now on.".to_owned()
                }
            }),
        ),
        Err(e) => f.failed(&page_of(&id), &e),
    }
}
