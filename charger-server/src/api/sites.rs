//! `/api/v1/sites` and `/api/v1/devices/{id}/site`: load management.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};

use super::{ApiJson, ApiPath, ApiResult, ApiState};
use crate::ids::DeviceId;
use crate::service::Principal;
use crate::sites::{
    CreateSiteRequest, NodeRequest, PlaceRequest, Placement, Site, SiteNode, SiteView,
};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/sites", post(create_site).get(list_sites))
        .route("/sites/{id}", get(get_site))
        .route("/sites/{id}/nodes", post(add_node))
        .route("/sites/{id}/nodes/{node}", patch(update_node))
        .route("/devices/{id}/site", put(place).delete(unplace))
}

async fn create_site(
    who: Principal,
    State(state): State<ApiState>,
    ApiJson(req): ApiJson<CreateSiteRequest>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.create_site(&who, req).await?),
    ))
}

async fn list_sites(who: Principal, State(state): State<ApiState>) -> ApiResult<Json<Vec<Site>>> {
    Ok(Json(state.service.list_sites(&who).await?))
}

async fn get_site(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<SiteView>> {
    Ok(Json(state.service.get_site(&who, id).await?))
}

async fn add_node(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NodeRequest>,
) -> ApiResult<(StatusCode, Json<SiteNode>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.add_site_node(&who, id, req).await?),
    ))
}

async fn update_node(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath((id, node)): ApiPath<(i64, i64)>,
    ApiJson(req): ApiJson<NodeRequest>,
) -> ApiResult<Json<SiteNode>> {
    Ok(Json(
        state.service.update_site_node(&who, id, node, req).await?,
    ))
}

async fn place(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(req): ApiJson<PlaceRequest>,
) -> ApiResult<Json<Placement>> {
    Ok(Json(state.service.place_charger(&who, &id, req).await?))
}

async fn unplace(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<StatusCode> {
    state.service.unplace_charger(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
