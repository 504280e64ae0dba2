//! `/api/v1/devices`: provisioning (bundle shown once), bulk provisioning, listing,
//! tariff assignment.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{ApiJson, ApiPath, ApiResult, ApiState};
use crate::devices::{
    AssignTariffRequest, BulkCreateDevicesRequest, CreateDeviceRequest, Device, FirmwareBundle,
};
use crate::ids::DeviceId;
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/devices", post(create_device).get(list_devices))
        .route("/devices/bulk", post(create_devices_bulk))
        .route("/devices/{id}", get(get_device))
        .route("/devices/{id}/tariff", put(assign_tariff))
}

async fn create_device(
    who: Principal,
    State(state): State<ApiState>,
    ApiJson(req): ApiJson<CreateDeviceRequest>,
) -> ApiResult<(StatusCode, Json<FirmwareBundle>)> {
    let bundle = state.service.create_device(&who, req).await?;
    Ok((StatusCode::CREATED, Json(bundle)))
}

async fn create_devices_bulk(
    who: Principal,
    State(state): State<ApiState>,
    ApiJson(req): ApiJson<BulkCreateDevicesRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let bundles = state.service.create_devices_bulk(&who, req).await?;
    Ok((StatusCode::CREATED, Json(json!({"devices": bundles}))))
}

async fn list_devices(
    who: Principal,
    State(state): State<ApiState>,
) -> ApiResult<Json<Vec<Device>>> {
    Ok(Json(state.service.list_devices(&who).await?))
}

async fn get_device(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<Json<Device>> {
    Ok(Json(state.service.get_device(&who, &id).await?))
}

async fn assign_tariff(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(req): ApiJson<AssignTariffRequest>,
) -> ApiResult<Json<Device>> {
    Ok(Json(state.service.assign_tariff(&who, &id, req).await?))
}
