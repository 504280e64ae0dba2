//! Tariffs (`/tariffs`): every tariff with its prices, created and changed here (a change
//! applies to sessions that start after it: a session keeps the prices it started with);
//! chargers are given a tariff on their own page.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use crate::api::ApiState;
use crate::billing::{CreateTariffRequest, UpdateTariffRequest};
use crate::console::flash::Flash;
use crate::console::ui::{self, csrf};
use crate::console::{AuthedForm, Viewer};
use crate::error::Error;
use crate::ids::{OwnerId, TariffId};
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/tariffs", get(tariffs).post(create))
        .route("/tariffs/{id}", post(update))
}

async fn tariffs(State(state): State<ApiState>, v: Viewer) -> Response {
    let list = match state.service.list_tariffs(&v.user.who).await {
        Ok(l) => l,
        Err(e) => return v.error(&e),
    };
    let admin = matches!(v.user.who, Principal::Admin);
    let u = &v.user;
    let body = html! {
        @if list.is_empty() { p { "No tariffs yet: sessions are free until one applies." } }
        @else {
            div.scroll { table {
                thead { tr {
                    th { "Tariff" } @if admin { th { "Owner" } } th { "Energy" } th { "Time" }
                    th { "Session fee" } th { "Tax" } th { "Default" } th { "Change" }
                } }
                tbody {
                    @for t in &list {
                        @let c = t.currency.code();
                        tr {
                            td { (t.id) } @if admin { td { (t.owner) } }
                            td.num { (ui::money(&t.energy_per_kwh.to_string(), c)) " / kWh" }
                            td.num { (ui::money(&t.time_per_hour.to_string(), c)) " / h" }
                            td.num { (ui::money(&t.session_fee.to_string(), c)) }
                            td.num { (t.tax_rate * rust_decimal::Decimal::from(100)) " %" }
                            td { @if t.default { "yes" } @else { "no" } }
                            td {
                                details {
                                    summary { "Change " (t.id) }
                                    form.card method="post" action={ "/tariffs/" (t.id) } {
                                        (csrf(u))
                                        input type="hidden" name="owner" value=(t.owner);
                                        (price_fields(&t.energy_per_kwh.to_string(), &t.time_per_hour.to_string(),
                                                      &t.session_fee.to_string(), &t.tax_rate.to_string(), &t.id.to_string()))
                                        label { input type="checkbox" name="default" value="true" checked[t.default]; " the owner's default" }
                                        button type="submit" { "Save" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
        h2 { "New tariff" }
        form.card method="post" action="/tariffs" {
            (csrf(u))
            label for="new-id" { "Id" }
            input #new-id name="id" required pattern="[A-Za-z0-9_-]{1,64}";
            @if admin {
                label for="new-owner" { "Owner" }
                input #new-owner name="owner" required pattern="[A-Za-z0-9_-]{1,64}";
            }
            label for="new-currency" { "Currency (ISO 4217)" }
            input #new-currency name="currency" required pattern="[A-Z]{3}" value="EUR";
            (price_fields("0.30", "0", "0", "0.21", "new"))
            label { input type="checkbox" name="default" value="true"; " the owner's default (its chargers without a tariff of their own)" }
            button type="submit" { "Create" }
        }
        p { "Prices are decimal numbers with at most 6 decimals; the tax rate is a fraction (0.21 is 21 %)." }
    };
    v.page("Tariffs".to_owned(), body)
}

fn price_fields(energy: &str, time: &str, fee: &str, tax: &str, key: &str) -> maud::Markup {
    html! {
        label for={ "e-" (key) } { "Energy, per kWh" }
        input id={ "e-" (key) } name="energy_per_kwh" value=(energy) required inputmode="decimal" pattern="[0-9]+(\\.[0-9]{1,6})?";
        label for={ "t-" (key) } { "Time, per hour" }
        input id={ "t-" (key) } name="time_per_hour" value=(time) required inputmode="decimal" pattern="[0-9]+(\\.[0-9]{1,6})?";
        label for={ "f-" (key) } { "Session fee" }
        input id={ "f-" (key) } name="session_fee" value=(fee) required inputmode="decimal" pattern="[0-9]+(\\.[0-9]{1,6})?";
        label for={ "x-" (key) } { "Tax rate" }
        input id={ "x-" (key) } name="tax_rate" value=(tax) required inputmode="decimal" pattern="[0-9]+(\\.[0-9]{1,6})?";
    }
}

async fn create(State(state): State<ApiState>, f: AuthedForm) -> Response {
    let mut req = serde_json::json!({
        "id": f.field("id"),
        "currency": f.field("currency"),
        "energy_per_kwh": f.field("energy_per_kwh"),
        "time_per_hour": f.field("time_per_hour"),
        "session_fee": f.field("session_fee"),
        "tax_rate": f.field("tax_rate"),
        "default": f.field("default") == "true",
    });
    if !f.field("owner").is_empty() {
        req["owner"] = f.field("owner").into();
    }
    let created = match serde_json::from_value::<CreateTariffRequest>(req) {
        Ok(req) => state.service.create_tariff(&f.user.who, req).await,
        Err(e) => Err(Error::invalid("tariff", e.to_string())),
    };
    match created {
        Ok(t) => f.done("/tariffs", Flash::ok(format!("Tariff {} created.", t.id))),
        Err(e) => f.failed("/tariffs", &e),
    }
}

async fn update(State(state): State<ApiState>, Path(id): Path<String>, f: AuthedForm) -> Response {
    let Ok(id) = TariffId::parse(&id) else {
        return f.failed("/tariffs", &Error::not_found("tariff"));
    };
    let owner = OwnerId::parse(f.field("owner")).ok();
    let req = serde_json::json!({
        "energy_per_kwh": f.field("energy_per_kwh"),
        "time_per_hour": f.field("time_per_hour"),
        "session_fee": f.field("session_fee"),
        "tax_rate": f.field("tax_rate"),
        "default": f.field("default") == "true",
    });
    let changed = match serde_json::from_value::<UpdateTariffRequest>(req) {
        Ok(req) => {
            state
                .service
                .update_tariff(&f.user.who, &id, owner, req)
                .await
        }
        Err(e) => Err(Error::invalid("tariff", e.to_string())),
    };
    match changed {
        Ok(t) => f.done(
            "/tariffs",
            Flash::ok(format!(
                "Tariff {} changed: sessions that start from now on are billed by it.",
                t.id
            )),
        ),
        Err(e) => f.failed("/tariffs", &e),
    }
}
