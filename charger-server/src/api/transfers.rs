//! `/api/v1/transfers`: the offers a caller sent or received; the receiver accepts
//! (getting the claim code) or declines; the sender withdraws.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{ApiPath, ApiResult, ApiState};
use crate::devices::{TransferPage, TransferQuery, TransferView};
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/transfers", get(list_transfers))
        .route("/transfers/{id}", get(get_transfer))
        .route("/transfers/{id}/withdraw", post(withdraw_transfer))
        .route("/transfers/{id}/accept", post(accept_transfer))
        .route("/transfers/{id}/decline", post(decline_transfer))
}

async fn list_transfers(
    who: Principal,
    State(state): State<ApiState>,
    q: Result<Query<TransferQuery>, QueryRejection>,
) -> ApiResult<Json<TransferPage>> {
    let q = super::query(q)?;
    Ok(Json(state.service.list_transfers(&who, q).await?))
}

async fn get_transfer(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(state.service.get_transfer(&who, &id).await?))
}

async fn accept_transfer(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(state.service.accept_transfer(&who, &id).await?))
}

async fn decline_transfer(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(state.service.decline_transfer(&who, &id).await?))
}

async fn withdraw_transfer(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(state.service.withdraw_transfer(&who, &id).await?))
}
