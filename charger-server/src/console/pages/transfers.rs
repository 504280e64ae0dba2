//! Transfers (`/transfers`): the offers the user sent or received, paged; the receiver
//! accepts (the claim code shown once) or declines, the sender withdraws.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use crate::api::ApiState;
use crate::console::flash::Flash;
use crate::console::ui::{self, csrf, time_text};
use crate::console::{AuthedForm, Viewer};
use crate::devices::{TransferQuery, TransferStatus};
use crate::error::Error;
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/transfers", get(transfers))
        .route("/transfers/{id}/{action}", post(action))
}

async fn transfers(
    State(state): State<ApiState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let cursor = q.get("cursor").filter(|c| !c.is_empty()).cloned();
    let query = TransferQuery {
        cursor,
        limit: Some(100),
    };
    let page = match state.service.list_transfers(&v.user.who, query).await {
        Ok(p) => p,
        Err(e) => return v.error(&e),
    };
    let me = match &v.user.who {
        Principal::Admin => None,
        Principal::Owner(o) => Some(o.clone()),
    };
    let u = &v.user;
    let body = html! {
        @if page.transfers.is_empty() { p { "No transfer offers." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Offer" } th { "Charger" } th { "From" } th { "To" } th { "Status" } th { "Expires" } th { "" } } }
                tbody {
                    @for t in &page.transfers {
                        tr {
                            td { (t.id) } td { (t.device) } td { (t.from) } td { (t.to) }
                            td { (t.status.as_str()) } td { (time_text(&t.expires_at)) }
                            td {
                                @if t.status == TransferStatus::Offered && me.as_ref() == Some(&t.to) {
                                    form.inline method="post" action={ "/transfers/" (t.id) "/accept" } {
                                        (csrf(u))
                                        button type="submit" data-confirm={ "Accept charger " (t.device) "? You get its claim code, to enter at the charger." } { "Accept" }
                                    }
                                    form.inline method="post" action={ "/transfers/" (t.id) "/decline" } {
                                        (csrf(u)) button.danger type="submit" data-confirm="Decline this offer?" { "Decline" }
                                    }
                                }
                                @if matches!(t.status, TransferStatus::Offered | TransferStatus::Accepted) && me.as_ref() != Some(&t.to) {
                                    form.inline method="post" action={ "/transfers/" (t.id) "/withdraw" } {
                                        (csrf(u)) button.danger type="submit" data-confirm="Withdraw this offer?" { "Withdraw" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
        @if let Some(next) = &page.next_cursor {
            p { a href={ "/transfers?cursor=" (ui::query_value(next)) } { "Older offers" } }
        }
    };
    v.page("Transfers".to_owned(), body)
}

async fn action(
    State(state): State<ApiState>,
    Path((id, action)): Path<(String, String)>,
    f: AuthedForm,
) -> Response {
    let s = &state.service;
    let result = match action.as_str() {
        "accept" => s.accept_transfer(&f.user.who, &id).await,
        "decline" => s.decline_transfer(&f.user.who, &id).await,
        "withdraw" => s.withdraw_transfer(&f.user.who, &id).await,
        _ => Err(Error::not_found("action")),
    };
    match result {
        Ok(t) => {
            let mut flash = Flash::ok(format!("Offer {} is now {}.", t.id, t.status.as_str()));
            if let Some(code) = t.code {
                flash.code = Some((t.device.to_string(), code));
            }
            f.done("/transfers", flash)
        }
        Err(e) => f.failed("/transfers", &e),
    }
}
