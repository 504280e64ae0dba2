//! Sites (`/sites`, `/sites/{id}`): load management. The list, a new site; a site's tree
//! with each node's limit and what its sessions are given per phase (a bar each), its
//! chargers, and each running session's allocation, paused or not and why (live); nodes
//! added and chargers placed here.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use crate::api::ApiState;
use crate::console::flash::Flash;
use crate::console::ui::{self, csrf};
use crate::console::{AuthedForm, Viewer};
use crate::error::Error;
use crate::ids::DeviceId;
use crate::service::Principal;
use crate::sites::{CreateSiteRequest, NodeRequest, NodeView, PlaceRequest, SiteView};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/sites", get(sites).post(create))
        .route("/sites/{id}", get(site))
        .route("/sites/{id}/nodes", post(add_node))
        .route("/sites/{id}/place", post(place))
}

/// Amperes of a current in dA, with one decimal when it has one.
fn amps(da: i64) -> String {
    if da % 10 == 0 {
        format!("{} A", da / 10)
    } else {
        format!("{}.{} A", da / 10, (da % 10).abs())
    }
}

async fn sites(State(state): State<ApiState>, v: Viewer) -> Response {
    let list = match state.service.list_sites(&v.user.who).await {
        Ok(l) => l,
        Err(e) => return v.error(&e),
    };
    let admin = matches!(v.user.who, Principal::Admin);
    let u = &v.user;
    let body = html! {
        @if list.is_empty() { p { "No sites yet: chargers charge at their own rating." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Site" } @if admin { th { "Owner" } } th { "Failsafe" } th { "Lease" } } }
                tbody {
                    @for s in &list {
                        tr {
                            td { a href={ "/sites/" (s.id) } { (s.name) } }
                            @if admin { td { (s.owner) } }
                            td { @if s.failsafe == crate::sites::Failsafe::Zero { "0 A" } @else { "reserved" } }
                            td.num { (ui::duration(s.lease_s)) }
                        }
                    }
                }
            } }
        }
        h2 { "New site" }
        form.card method="post" action="/sites" {
            (csrf(u))
            label for="site-name" { "Name" }
            input #site-name name="name" required maxlength="100";
            @if admin {
                label for="site-owner" { "Owner" }
                input #site-owner name="owner" required pattern="[A-Za-z0-9_-]{1,64}";
            }
            (limit_fields("site"))
            label for="site-failsafe" { "Without the server, idle connectors charge at" }
            select #site-failsafe name="failsafe" {
                option value="zero" { "0 A (nothing starts)" }
                option value="reserve" { "their failsafe current (kept free for them)" }
            }
            label for="site-lease" { "Lease, in seconds (10 to 3600)" }
            input #site-lease name="lease_s" type="number" min="10" max="3600" value="300" required;
            button type="submit" { "Create" }
        }
    };
    v.page("Sites".to_owned(), body)
}

fn limit_fields(key: &str) -> Markup {
    html! {
        fieldset {
            legend { "Limit per phase, in A (after derating)" }
            @for p in ["L1", "L2", "L3"] {
                label for={ (key) "-" (p) } { (p) }
                input id={ (key) "-" (p) } name={ "limit_" (p) } type="number" min="0" max="6300" required;
            }
        }
        label for={ (key) "-derating" } { "Derating, % of the limit that may be used" }
        input id={ (key) "-derating" } name="derating_percent" type="number" min="1" max="100" value="100" required;
    }
}

/// The form's limits as the API takes them.
fn limits_of(f: &AuthedForm) -> serde_json::Value {
    let n = |name: &str| f.field(name).trim().parse::<u32>().ok();
    serde_json::json!({
        "limits_a": [n("limit_L1"), n("limit_L2"), n("limit_L3")],
        "derating_percent": n("derating_percent"),
    })
}

async fn create(State(state): State<ApiState>, f: AuthedForm) -> Response {
    let mut req = limits_of(&f);
    req["name"] = f.field("name").into();
    req["failsafe"] = f.field("failsafe").into();
    req["lease_s"] = f.field("lease_s").trim().parse::<i64>().ok().into();
    if !f.field("owner").is_empty() {
        req["owner"] = f.field("owner").into();
    }
    let created = match serde_json::from_value::<CreateSiteRequest>(req) {
        Ok(req) => state.service.create_site(&f.user.who, req).await,
        Err(_) => Err(Error::invalid(
            "site",
            "every field is needed: a name, three limits, a derating, the failsafe and the lease",
        )),
    };
    match created {
        Ok(s) => f.done(
            &format!("/sites/{}", s.id),
            Flash::ok(format!("Site {} created.", s.name)),
        ),
        Err(e) => f.failed("/sites", &e),
    }
}

/// A bar per phase: the node's limit, and what its sessions are given.
fn bars(n: &NodeView) -> Markup {
    html! {
        @for (i, p) in ["L1", "L2", "L3"].iter().enumerate() {
            @let limit = n.node.limit_da[i];
            @let given = n.given_da[i];
            @let width = if limit > 0 { (given.min(limit) * 200 / limit).max(0) } else { 0 };
            div.bar {
                span { (p) " " (amps(given)) " of " (amps(limit)) }
                svg width="200" height="10" role="img" aria-label={ (p) ": " (amps(given)) " of " (amps(limit)) } {
                    rect x="0" y="0" width="200" height="10" fill="#e4e4ee" {}
                    rect x="0" y="0" width=(width) height="10" fill=(if given > limit { "#a00000" } else { "#1a1a8c" }) {}
                }
            }
        }
    }
}

fn tree(view: &SiteView, parent: Option<i64>) -> Markup {
    html! {
        ul {
            @for n in view.nodes.iter().filter(|n| n.node.parent == parent) {
                li {
                    strong { (n.node.name) } " (node " (n.node.id) ")"
                    @if let Some(cap) = n.node.power_cap_w { " · cap " (ui::grouped(i128::from(cap))) " W" }
                    (bars(n))
                    @let here: Vec<_> = view.chargers.iter().filter(|c| c.node == n.node.id).collect();
                    @if !here.is_empty() {
                        p { "Chargers: "
                            @for (i, c) in here.iter().enumerate() {
                                @if i > 0 { ", " }
                                a href={ "/chargers/" (c.device) } { (c.device) }
                            }
                        }
                    }
                    (tree(view, Some(n.node.id)))
                }
            }
        }
    }
}

async fn site(State(state): State<ApiState>, Path(id): Path<String>, v: Viewer) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return v.error(&Error::not_found("site"));
    };
    let view = match state.service.get_site(&v.user.who, id).await {
        Ok(s) => s,
        Err(e) => return v.error(&e),
    };
    let u = &v.user;
    let live = html! {
        h2 { "Load" }
        (tree(&view, None))
        h2 { "Sessions" }
        @if view.sessions.is_empty() { p { "No session is running on this site." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Session" } th { "Charger" } th { "Given" } th { "Draws" } th { "State" } th { "Lease until" } } }
                tbody {
                    @for s in &view.sessions {
                        tr {
                            td { a href={ "/sessions/" (s.session) } { (s.session) } }
                            td { a href={ "/chargers/" (s.device) } { (s.device) } " #" (s.connector) }
                            td.num { @match s.current_da { Some(c) => (amps(c)), None => "not yet" } }
                            td.num { @match s.drawn_da { Some(d) => (amps(d)), None => "" } }
                            td {
                                @if s.paused { "paused: " (s.why.unwrap_or("")) }
                                @else if s.current_da.is_some() && !s.acked { "sent, not acknowledged" }
                                @else if s.current_da.is_some() { "charging" }
                                @else { "waiting for its first limit" }
                            }
                            td { (ui::time_or(s.lease_until, "")) }
                        }
                    }
                }
            } }
        }
    };
    let before = html! {
        p { "Without the server, idle connectors charge at "
            @if view.site.failsafe == crate::sites::Failsafe::Zero { "0 A" } @else { "their failsafe current" }
            "; a running session keeps its limit for " (ui::duration(view.site.lease_s))
            " after the server was last heard, then its failsafe." }
    };
    let after = html! {
        h2 { "Chargers" }
        @if view.chargers.is_empty() { p { "No charger is on this site yet." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Charger" } th { "Node" } th { "Phases" } th { "Maximum" } th { "Priority" } th { "Failsafe" } th { "Online" } } }
                tbody {
                    @for c in &view.chargers {
                        tr {
                            td { a href={ "/chargers/" (c.device) } { (c.device) } }
                            td.num { (c.node) }
                            td { (c.rotation.join(" ")) }
                            td.num { (amps(c.max_current_da)) }
                            td.num { (c.priority) }
                            td.num { (amps(c.failsafe_da)) }
                            td { (ui::online(c.online)) }
                        }
                    }
                }
            } }
        }
        h2 { "Add a board or circuit" }
        form.card method="post" action={ "/sites/" (id) "/nodes" } {
            (csrf(u))
            label for="node-parent" { "Under" }
            select #node-parent name="parent" {
                @for n in &view.nodes { option value=(n.node.id) { (n.node.name) " (node " (n.node.id) ")" } }
            }
            label for="node-name" { "Name" }
            input #node-name name="name" required maxlength="100";
            (limit_fields("node"))
            button type="submit" { "Add" }
        }
        h2 { "Place a charger" }
        form.card method="post" action={ "/sites/" (id) "/place" } {
            (csrf(u))
            label for="place-device" { "Charger id" }
            input #place-device name="device" required pattern="[A-Za-z0-9_-]{1,64}";
            label for="place-node" { "On" }
            select #place-node name="node" {
                @for n in &view.nodes { option value=(n.node.id) { (n.node.name) " (node " (n.node.id) ")" } }
            }
            label for="place-rotation" { "Its phases wired to (in its order)" }
            select #place-rotation name="rotation" {
                @for r in ["L1 L2 L3", "L2 L3 L1", "L3 L1 L2", "L1", "L2", "L3"] { option value=(r) { (r) } }
            }
            label for="place-max" { "Its maximum per connector, in A" }
            input #place-max name="max_current_a" type="number" min="6" max="500" value="32" required;
            label for="place-priority" { "Priority (higher first)" }
            input #place-priority name="priority" type="number" min="-1000" max="1000" value="0" required;
            button type="submit" { "Place" }
        }
    };
    v.live_page(format!("Site {}", view.site.name), before, live, after)
}

async fn add_node(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    f: AuthedForm,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return f.failed("/sites", &Error::not_found("site"));
    };
    let back = format!("/sites/{id}");
    let mut req = limits_of(&f);
    req["name"] = f.field("name").into();
    req["parent"] = f.field("parent").trim().parse::<i64>().ok().into();
    let added = match serde_json::from_value::<NodeRequest>(req) {
        Ok(req) => state.service.add_site_node(&f.user.who, id, req).await,
        Err(_) => Err(Error::invalid(
            "node",
            "a name, a parent and three limits are needed",
        )),
    };
    match added {
        Ok(n) => f.done(&back, Flash::ok(format!("{} added.", n.name))),
        Err(e) => f.failed(&back, &e),
    }
}

async fn place(State(state): State<ApiState>, Path(id): Path<String>, f: AuthedForm) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return f.failed("/sites", &Error::not_found("site"));
    };
    let back = format!("/sites/{id}");
    let Ok(device) = DeviceId::parse(f.field("device").trim()) else {
        return f.failed(&back, &Error::not_found("device"));
    };
    let req = serde_json::json!({
        "site": id,
        "node": f.field("node").trim().parse::<i64>().ok(),
        "rotation": f.field("rotation").split_whitespace().collect::<Vec<_>>(),
        "max_current_a": f.field("max_current_a").trim().parse::<u32>().ok(),
        "priority": f.field("priority").trim().parse::<i32>().ok(),
    });
    let placed = match serde_json::from_value::<PlaceRequest>(req) {
        Ok(req) => state.service.place_charger(&f.user.who, &device, req).await,
        Err(_) => Err(Error::invalid(
            "placement",
            "a node, the phases, a maximum and a priority are needed",
        )),
    };
    match placed {
        Ok(_) => f.done(&back, Flash::ok(format!("{device} placed."))),
        Err(e) => f.failed(&back, &e),
    }
}
