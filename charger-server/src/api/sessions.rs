//! `/api/v1/sessions` and `/api/v1/reports/billing`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{query, ApiJson, ApiPath, ApiResult, ApiState};
use crate::charging::history::{ReportQuery, SessionDetail, SessionPage, SessionQuery};
use crate::error::Error;
use crate::service::Principal;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", get(get_session))
        .route("/sessions/{id}/resolution", post(resolve_session))
        .route("/reports/billing", get(billing_report))
}

async fn list_sessions(
    who: Principal,
    State(state): State<ApiState>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> ApiResult<Json<SessionPage>> {
    let q = query(q)?;
    Ok(Json(state.service.list_sessions(&who, q).await?))
}

async fn get_session(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<SessionDetail>> {
    Ok(Json(state.service.get_session(&who, id).await?))
}

async fn resolve_session(
    who: Principal,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<crate::charging::resolution::ResolveRequest>,
) -> ApiResult<Json<SessionDetail>> {
    Ok(Json(state.service.resolve_session(&who, id, req).await?))
}

async fn billing_report(
    who: Principal,
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let csv = match q.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(_) => return Err(Error::invalid("format", "is csv or json").into()),
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv")),
    };
    let report = state.service.billing_report(&who, &q).await?;
    if csv {
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "text/csv; charset=utf-8; header=present",
                ),
                // Billing data is not for shared caches or the browser's disk.
                (header::CACHE_CONTROL, "no-store"),
            ],
            report.to_csv()?,
        )
            .into_response())
    } else {
        Ok(Json(report).into_response())
    }
}
