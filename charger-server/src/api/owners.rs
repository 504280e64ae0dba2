//! `/api/v1/owners` and owner tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use super::{ApiJson, ApiPath, ApiResult, ApiState};
use crate::ids::OwnerId;
use crate::owners::{CreateOwnerRequest, CreateTokenRequest, IssuedToken, Owner, TokenInfo};
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/owners", post(create_owner).get(list_owners))
        .route("/owners/{owner}", get(get_owner))
        .route(
            "/owners/{owner}/tokens",
            get(list_owner_tokens).post(create_owner_token),
        )
        .route("/owners/{owner}/tokens/{id}", delete(revoke_owner_token))
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

/// The body is optional: none, `null`, or `{"name": "..."}`.
async fn create_owner_token(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<OwnerId>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        CreateTokenRequest::default()
    } else {
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            super::ApiError::from(crate::error::Error::invalid("body", "is not JSON"))
        })?;
        match value {
            serde_json::Value::Null => CreateTokenRequest::default(),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map_err(|e| crate::error::Error::invalid("body", e.to_string()))?,
            _ => return Err(crate::error::Error::invalid("body", "is an object or null").into()),
        }
    };
    let token = state.service.create_owner_token(&who, &id, req).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

async fn list_owner_tokens(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<OwnerId>,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    Ok(Json(state.service.list_owner_tokens(&who, &id).await?))
}

async fn revoke_owner_token(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath((owner, token)): ApiPath<(OwnerId, String)>,
) -> ApiResult<StatusCode> {
    state
        .service
        .revoke_owner_token(&who, &owner, &token)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
