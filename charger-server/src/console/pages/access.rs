//! Owners and their tokens: an owner lists and revokes its own tokens (`/tokens`); the
//! admin lists owners, creates one, and issues, lists and revokes any owner's tokens
//! (`/owners`, `/tokens?owner=`). A new token is shown once.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use crate::api::ApiState;
use crate::console::flash::Flash;
use crate::console::ui::{self, csrf, plain, time, time_or};
use crate::console::{AuthedForm, User, Viewer};
use crate::error::Error;
use crate::ids::OwnerId;
use crate::owners::{CreateOwnerRequest, CreateTokenRequest};
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/tokens", get(tokens))
        .route("/tokens/{id}/revoke", post(revoke))
        .route("/owners", get(owners).post(create_owner))
        .route("/owners/{owner}/tokens", post(issue))
}

/// The owner whose tokens a page shows: an owner's own; the admin names one.
fn owner_of(u: &User, requested: &str) -> Option<OwnerId> {
    match &u.who {
        Principal::Owner(o) => Some(o.clone()),
        Principal::Admin => OwnerId::parse(requested).ok(),
    }
}

async fn tokens(
    State(state): State<ApiState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let requested = q.get("owner").map(String::as_str).unwrap_or_default();
    let Some(owner) = owner_of(&v.user, requested) else {
        let e = Error::invalid(
            "owner",
            "name the owner whose tokens to show: /tokens?owner=<id>",
        );
        return v.error(&e);
    };
    let list = match state.service.list_owner_tokens(&v.user.who, &owner).await {
        Ok(l) => l,
        Err(e) => return v.error(&e),
    };
    let u = &v.user;
    let admin = matches!(u.who, Principal::Admin);
    let body = html! {
        p { "API tokens of " strong { (owner) } ". A revoked token is refused at once, and the console sessions signed in with it end." }
        @if list.is_empty() { p { "No tokens." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Id" } th { "Name" } th { "Created" } th { "Last used" } th { "" } } }
                tbody {
                    @for t in &list {
                        tr {
                            td { (t.id) } td.text { (plain(t.name.as_deref().unwrap_or(""))) }
                            td { (time(t.created_at)) } td { (time_or(t.last_used_at, "never")) }
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
        }
        @if admin {
            h2 { "Issue a token" }
            form.card method="post" action={ "/owners/" (owner) "/tokens" } {
                (csrf(u))
                label for="token-name" { "Name (what it is for)" }
                input #token-name name="name" maxlength="200" required;
                button type="submit" { "Issue" }
            }
        }
    };
    v.page(format!("Tokens of {owner}"), body)
}

async fn revoke(State(state): State<ApiState>, Path(id): Path<String>, f: AuthedForm) -> Response {
    let Some(owner) = owner_of(&f.user, f.field("owner")) else {
        return f.failed("/", &Error::invalid("owner", "name the owner"));
    };
    let back = format!("/tokens?owner={}", ui::query_value(owner.as_str()));
    match state
        .service
        .revoke_owner_token(&f.user.who, &owner, &id)
        .await
    {
        Ok(()) => f.done(&back, Flash::ok(format!("Token {} revoked.", plain(&id)))),
        Err(e) => f.failed(&back, &e),
    }
}

async fn owners(State(state): State<ApiState>, v: Viewer) -> Response {
    let list = match state.service.list_owners(&v.user.who).await {
        Ok(l) => l,
        Err(e) => return v.error(&e),
    };
    if !matches!(v.user.who, Principal::Admin) {
        return v.error(&Error::forbidden(
            "admin_only",
            "this page is the platform admin's",
        ));
    }
    let u = &v.user;
    let body = html! {
        div.scroll { table {
            thead { tr { th { "Owner" } th { "Name" } th { "Created" } th { "" } } }
            tbody {
                @for o in &list {
                    tr {
                        td { (o.id) } td.text { (plain(&o.name)) } td { (time(o.created_at)) }
                        td { a href={ "/tokens?owner=" (o.id) } { "Tokens" } " · " a href={ "/?q=" } { "Fleet" } }
                    }
                }
            }
        } }
        h2 { "New owner" }
        form.card method="post" action="/owners" {
            (csrf(u))
            label for="owner-id" { "Id (the `<user>` of its chargers' topics)" }
            input #owner-id name="id" required pattern="[A-Za-z0-9_-]{1,64}";
            label for="owner-name" { "Name" }
            input #owner-name name="name" required maxlength="200";
            button type="submit" { "Create" }
        }
    };
    v.page("Owners".to_owned(), body)
}

async fn create_owner(State(state): State<ApiState>, f: AuthedForm) -> Response {
    let req = serde_json::json!({"id": f.field("id"), "name": f.field("name")});
    let created = match serde_json::from_value::<CreateOwnerRequest>(req) {
        Ok(req) => state.service.create_owner(&f.user.who, req).await,
        Err(e) => Err(Error::invalid("id", e.to_string())),
    };
    match created {
        Ok(o) => f.done("/owners", Flash::ok(format!("Owner {} created.", o.id))),
        Err(e) => f.failed("/owners", &e),
    }
}

async fn issue(
    State(state): State<ApiState>,
    Path(owner): Path<String>,
    f: AuthedForm,
) -> Response {
    let Ok(owner) = OwnerId::parse(&owner) else {
        return f.failed("/owners", &Error::not_found("owner"));
    };
    let back = format!("/tokens?owner={owner}");
    let name = Some(f.field("name").to_owned()).filter(|n| !n.is_empty());
    let req = CreateTokenRequest { name };
    match state
        .service
        .create_owner_token(&f.user.who, &owner, req)
        .await
    {
        Ok(t) => {
            let flash = Flash {
                token: Some(t.token),
                ..Flash::ok(format!("Token {} issued for {}.", t.id, t.owner))
            };
            f.done(&back, flash)
        }
        Err(e) => f.failed(&back, &e),
    }
}
