//! `/api/v1/devices`: provisioning (bundle shown once), bulk provisioning, listing,
//! tariff assignment, transfer offers, credential rotation.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{ApiJson, ApiPath, ApiResult, ApiState};
use crate::charging::CommandResult;
use crate::devices::{
    AssignTariffRequest, BulkCreateDevicesRequest, Bundle, CreateDeviceRequest, Device,
    TransferRequest, TransferView, UpdateDeviceRequest,
};
use crate::ids::DeviceId;
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/devices", post(create_device).get(list_devices))
        .route("/devices/bulk", post(create_devices_bulk))
        .route("/devices/{id}", get(get_device).patch(update_device))
        .route("/devices/{id}/tariff", put(assign_tariff))
        .route("/devices/{id}/transfers", post(create_transfer))
        .route("/devices/{id}/credentials", post(rotate_credentials))
        .route("/devices/{id}/commands/{command}", post(send_command))
}

async fn create_transfer(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> ApiResult<(StatusCode, Json<TransferView>)> {
    let transfer = state.service.create_transfer(&who, &id, req).await?;
    Ok((StatusCode::CREATED, Json(transfer)))
}

async fn rotate_credentials(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> ApiResult<(StatusCode, Json<Bundle>)> {
    let bundle = state.service.rotate_credentials(&who, &id).await?;
    Ok((StatusCode::CREATED, Json(bundle)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandQuery {
    timeout_ms: Option<u64>,
}

async fn send_command(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath((id, command)): ApiPath<(DeviceId, String)>,
    query: Result<Query<CommandQuery>, axum::extract::rejection::QueryRejection>,
    ApiJson(data): ApiJson<Value>,
) -> ApiResult<Json<CommandResult>> {
    let Query(query) = query.map_err(|e| {
        super::ApiError::from(crate::error::Error::invalid("timeout_ms", e.body_text()))
    })?;
    let result = state
        .service
        .send_command(&who, &id, &command, &data, query.timeout_ms)
        .await?;
    Ok(Json(result))
}

async fn create_device(
    who: Principal,
    State(state): State<ApiState>,
    ApiJson(req): ApiJson<CreateDeviceRequest>,
) -> ApiResult<(StatusCode, Json<Bundle>)> {
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

async fn update_device(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(req): ApiJson<UpdateDeviceRequest>,
) -> ApiResult<Json<Device>> {
    Ok(Json(state.service.update_device(&who, &id, req).await?))
}
