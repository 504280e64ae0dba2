//! Tags (`/tags`): searched and paged on the server, blocked and unblocked (a block asks
//! first), imported from CSV; the unknown cards seen at chargers, each with "Enroll".

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use charger_protocol::api::TagStatus;
use maud::html;

use crate::api::ApiState;
use crate::console::flash::Flash;
use crate::console::ui::{self, csrf, plain, time, time_or};
use crate::console::{AuthedForm, Viewer};
use crate::error::Error;
use crate::ids::{OwnerId, TagUid};

const PAGE: i64 = 100;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/tags", get(tags))
        .route("/tags/status", post(tag_status))
        // A CSV of tags may be big; every other console form is small.
        .route(
            "/tags/import",
            post(tag_import).layer(axum::extract::DefaultBodyLimit::max(1 << 20)),
        )
        .route("/tags/enroll", post(tag_enroll))
}

async fn tags(
    State(state): State<ApiState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let text = |k: &str| q.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let search = text("q");
    let after = match (
        TagUid::parse(&text("after")),
        OwnerId::parse(&text("after_owner")),
    ) {
        (Ok(uid), Ok(owner)) => Some((uid, owner)),
        _ => None,
    };
    let s = &state.service;
    let (tags, next) = match s.tags_page(&v.user.who, Some(&search), after, PAGE).await {
        Ok(found) => found,
        Err(e) => return v.error(&e),
    };
    let unknown = match s.list_unknown_tags(&v.user.who).await {
        Ok(u) => u,
        Err(e) => return v.error(&e),
    };
    let u = &v.user;
    let body = html! {
        form.filters method="get" action="/tags" role="search" {
            label for="q" { "Search" }
            input #q type="search" name="q" value=(search) placeholder="uid or label" maxlength="64";
            button type="submit" { "Search" }
        }
        @if tags.is_empty() { p { "No tag matches." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Uid" } th { "Owner" } th { "Role" } th { "Label" } th { "Status" } th { "Expires" } th { "Chargers" } th { "" } } }
                tbody {
                    @for t in &tags {
                        tr {
                            td { (t.uid) } td { (t.owner) } td { (t.role.as_str()) }
                            td.text { (plain(t.label.as_deref().unwrap_or(""))) }
                            td { (t.status.as_str()) }
                            td { (time_or(t.expires_at, "never")) }
                            td { @if t.devices.is_empty() { "all" } @else { (t.devices.len()) } }
                            td {
                                form.inline method="post" action="/tags/status" {
                                    (csrf(u))
                                    input type="hidden" name="uid" value=(t.uid);
                                    input type="hidden" name="owner" value=(t.owner);
                                    input type="hidden" name="back" value=(search);
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
        }
        @if let Some((uid, owner)) = &next {
            p { a href={ "/tags?q=" (ui::query_value(&search)) "&after=" (uid) "&after_owner=" (owner) } { "Next " (PAGE) " tags" } }
        }
        h2 { "Import from CSV" }
        form.card method="post" action="/tags/import" {
            (csrf(u))
            label for="csv" { "CSV (a header row; uid required, owner, role, label, ... optional; all rows or none)" }
            textarea #csv name="csv" rows="6" required { "uid,label\n" }
            button type="submit" { "Import" }
        }
        h2 { "Unknown cards seen at chargers" }
        @if unknown.is_empty() { p { "None." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Uid" } th { "Charger" } th { "Attempts" } th { "Last seen" } th { "" } } }
                tbody {
                    @for t in &unknown {
                        tr {
                            td { (t.uid) } td { a href={ "/chargers/" (t.device) } { (t.device) } }
                            td.num { (ui::grouped(i128::from(t.attempts))) } td { (time(t.last_seen)) }
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
        }
    };
    v.page("Tags".to_owned(), body)
}

async fn tag_status(State(state): State<ApiState>, f: AuthedForm) -> Response {
    let status = if f.field("status") == "blocked" {
        TagStatus::Blocked
    } else {
        TagStatus::Active
    };
    let back = format!("/tags?q={}", ui::query_value(f.field("back")));
    let result = match (
        TagUid::parse(f.field("uid")),
        OwnerId::parse(f.field("owner")),
    ) {
        (Ok(uid), Ok(owner)) => {
            let req = crate::tags::PatchTagRequest {
                status: Some(status),
                ..Default::default()
            };
            state
                .service
                .patch_tag(&f.user.who, &uid, Some(owner), req)
                .await
                .map(|t| format!("Tag {} is now {}.", t.uid, t.status.as_str()))
        }
        _ => Err(Error::not_found("tag")),
    };
    match result {
        Ok(text) => f.done(&back, Flash::ok(text)),
        Err(e) => f.failed(&back, &e),
    }
}

async fn tag_import(State(state): State<ApiState>, f: AuthedForm) -> Response {
    match state.service.import_tags(&f.user.who, f.field("csv")).await {
        Ok(n) => f.done("/tags", Flash::ok(format!("{n} tags imported."))),
        Err(e) => f.failed("/tags", &e),
    }
}

async fn tag_enroll(State(state): State<ApiState>, f: AuthedForm) -> Response {
    let req = serde_json::json!({
        "uid": f.field("uid"),
        "owner": f.field("owner"),
        "role": "driver",
    });
    let created = match serde_json::from_value::<crate::tags::CreateTagRequest>(req) {
        Ok(req) => state.service.create_tag(&f.user.who, req).await,
        Err(e) => Err(Error::invalid("uid", e.to_string())),
    };
    match created {
        Ok(t) => f.done(
            "/tags",
            Flash::ok(format!("Tag {} enrolled as a driver card.", t.uid)),
        ),
        Err(e) => f.failed("/tags", &e),
    }
}
