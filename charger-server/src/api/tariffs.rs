//! `/api/v1/tariffs`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{query, ApiJson, ApiPath, ApiResult, ApiState, OwnerQuery};
use crate::billing::{CreateTariffRequest, Tariff, UpdateTariffRequest};
use crate::ids::TariffId;
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/tariffs", post(create_tariff).get(list_tariffs))
        .route("/tariffs/{id}", get(get_tariff).patch(update_tariff))
}

async fn create_tariff(
    who: Principal,
    State(state): State<ApiState>,
    ApiJson(req): ApiJson<CreateTariffRequest>,
) -> ApiResult<(StatusCode, Json<Tariff>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.create_tariff(&who, req).await?),
    ))
}

async fn list_tariffs(
    who: Principal,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<Tariff>>> {
    Ok(Json(state.service.list_tariffs(&who).await?))
}

async fn get_tariff(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<TariffId>,
    q: Result<Query<OwnerQuery>, QueryRejection>,
) -> ApiResult<Json<Tariff>> {
    let owner = query(q)?.owner;
    Ok(Json(state.service.get_tariff(&who, &id, owner).await?))
}

async fn update_tariff(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<TariffId>,
    q: Result<Query<OwnerQuery>, QueryRejection>,
    ApiJson(req): ApiJson<UpdateTariffRequest>,
) -> ApiResult<Json<Tariff>> {
    let owner = query(q)?.owner;
    Ok(Json(
        state.service.update_tariff(&who, &id, owner, req).await?,
    ))
}
