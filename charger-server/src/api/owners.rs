//! `/api/v1/owners` and owner tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{ApiJson, ApiPath, ApiResult, ApiState};
use crate::ids::OwnerId;
use crate::owners::{CreateOwnerRequest, Owner};
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/owners", post(create_owner).get(list_owners))
        .route("/owners/{owner}", get(get_owner))
        .route("/owners/{owner}/tokens", post(create_owner_token))
}

async fn create_owner(
    who: Principal,
    State(state): State<ApiState>,
    ApiJson(req): ApiJson<CreateOwnerRequest>,
) -> ApiResult<(StatusCode, Json<Owner>)> {
    let owner = state.service.create_owner(&who, req).await?;
    Ok((StatusCode::CREATED, Json(owner)))
}

async fn list_owners(who: Principal, State(state): State<ApiState>) -> ApiResult<Json<Vec<Owner>>> {
    Ok(Json(state.service.list_owners(&who).await?))
}

async fn get_owner(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<OwnerId>,
) -> ApiResult<Json<Owner>> {
    Ok(Json(state.service.get_owner(&who, &id).await?))
}

async fn create_owner_token(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<OwnerId>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let token = state.service.create_owner_token(&who, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token.expose(), "owner": id})),
    ))
}
