//! `/api/v1/tags`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{query, ApiJson, ApiPath, ApiResult, ApiState, ApiText, OwnerQuery};
use crate::ids::TagUid;
use crate::service::Principal;
use crate::tags::{CreateTagRequest, PatchTagRequest, Tag, UnknownTag};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/tags", post(create_tag).get(list_tags))
        .route("/tags/unknown", get(list_unknown_tags))
        .route("/tags/import", post(import_tags))
        .route(
            "/tags/{uid}",
            get(get_tag).patch(patch_tag).delete(delete_tag),
        )
}

async fn create_tag(
    who: Principal,
    State(state): State<ApiState>,
    ApiJson(req): ApiJson<CreateTagRequest>,
) -> ApiResult<(StatusCode, Json<Tag>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.create_tag(&who, req).await?),
    ))
}

async fn list_tags(who: Principal, State(state): State<ApiState>) -> ApiResult<Json<Vec<Tag>>> {
    Ok(Json(state.service.list_tags(&who).await?))
}

async fn get_tag(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(uid): ApiPath<TagUid>,
    q: Result<Query<OwnerQuery>, QueryRejection>,
) -> ApiResult<Json<Tag>> {
    let owner = query(q)?.owner;
    Ok(Json(state.service.get_tag(&who, &uid, owner).await?))
}

async fn patch_tag(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(uid): ApiPath<TagUid>,
    q: Result<Query<OwnerQuery>, QueryRejection>,
    ApiJson(req): ApiJson<PatchTagRequest>,
) -> ApiResult<Json<Tag>> {
    let owner = query(q)?.owner;
    Ok(Json(state.service.patch_tag(&who, &uid, owner, req).await?))
}

async fn delete_tag(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(uid): ApiPath<TagUid>,
    q: Result<Query<OwnerQuery>, QueryRejection>,
) -> ApiResult<StatusCode> {
    let owner = query(q)?.owner;
    state.service.delete_tag(&who, &uid, owner).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_unknown_tags(
    who: Principal,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<UnknownTag>>> {
    Ok(Json(state.service.list_unknown_tags(&who).await?))
}

/// `Content-Type: text/csv` body; all rows or none.
async fn import_tags(
    who: Principal,
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    ApiText(body): ApiText,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let csv = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    if !csv {
        return Err(super::ApiError::unsupported_media_type(
            "send the tags as Content-Type: text/csv",
        ));
    }
    let n = state.service.import_tags(&who, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "imported": n })),
    ))
}
