//! The REST edge (axum, `/api/v1`): parse, call one service method, map the result.
//!
//! Bearer tokens: the admin token sees everything; an owner token sees only its owner's
//! rows, and another owner's id is a 404. Every error is `{"error", "message"}` JSON with
//! the status of [`crate::error::Error`]; 5xx details are logged, never returned.

mod broker_auth;
pub mod deadline;
mod devices;
mod owners;
pub mod serve;
mod sessions;
mod sites;
mod tags;
mod tariffs;
mod transfers;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::Query;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use charger_protocol::ErrorBody;

use crate::error::Error;
use crate::secrets::hash_secret;
use crate::service::{Principal, Service};

/// A query string that does not parse is 422, naming the parameter when serde does.
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| {
        let text = e.body_text();
        let field = text
            .split('`')
            .nth(1)
            .filter(|f| !f.is_empty())
            .unwrap_or("query")
            .to_owned();
        ApiError::from(Error::invalid(field, text))
    })
}

/// `?owner=`: the owner namespace of a tag uid or tariff id (for the admin, when several
/// owners use the same id).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OwnerQuery {
    pub owner: Option<crate::ids::OwnerId>,
}

/// State shared by every handler.
#[derive(Clone)]
pub struct ApiState {
    pub service: Service,
    /// The embedded broker's counters, for `/metrics`.
    pub broker_metrics: Option<std::sync::Arc<crate::broker::BrokerMetrics>>,
    /// SHA-256 of `CHARGER_ADMIN_TOKEN`, when it is set.
    pub admin_token_hash: Option<String>,
    /// SHA-256 of `CHARGER_BROKER_AUTH_SECRET`, when it is set (the external broker's
    /// calls to `/broker/emqx/...`).
    pub broker_secret_hash: Option<String>,
    /// Largest request body, in bytes (`CHARGER_HTTP_MAX_BODY`).
    pub max_body: usize,
    /// Time to send a request body (`CHARGER_HTTP_BODY_TIMEOUT_MS`).
    pub body_timeout: std::time::Duration,
    /// The listener speaks HTTPS (the console's cookie is then `Secure`, and answers
    /// carry HSTS).
    pub https: bool,
    /// Console sign-in attempts per source address (`CHARGER_LOGIN_ATTEMPTS_PER_MINUTE`).
    pub login_attempts: std::sync::Arc<crate::limits::Buckets<crate::limits::Source>>,
}

impl ApiState {
    pub fn new(service: Service, admin_token: Option<&str>) -> Self {
        Self {
            service,
            broker_metrics: None,
            admin_token_hash: admin_token.map(hash_secret),
            broker_secret_hash: None,
            max_body: 4 << 20,
            body_timeout: std::time::Duration::from_secs(30),
            https: false,
            login_attempts: std::sync::Arc::new(crate::limits::Buckets::new(10.0 / 60.0, 10.0)),
        }
    }

    /// Allows `per_minute` console sign-in attempts per source a minute.
    pub fn with_login_attempts(mut self, per_minute: u32) -> Self {
        let n = f64::from(per_minute.max(1));
        self.login_attempts = std::sync::Arc::new(crate::limits::Buckets::new(n / 60.0, n));
        self
    }
}

/// Where the authenticated caller of a request is noted, for the audit line the request
/// ends with ([`audit_line`]).
#[derive(Clone, Default)]
pub struct AuditSlot(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl AuditSlot {
    /// Notes the caller.
    pub fn set(&self, who: &Principal) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some(who.audit_name());
        }
    }

    /// Notes the caller of the request `parts` belongs to.
    pub fn note(parts: &Parts, who: &Principal) {
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            if let Ok(mut s) = slot.0.lock() {
                *s = Some(who.audit_name());
            }
        }
    }
}

/// Middleware: every state-changing request (not GET or HEAD) ends with one log line
/// (target `charger_server::audit`) naming its caller, its route and its status.
async fn audit_line(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unrouted".to_owned(), |m| m.as_str().to_owned());
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let res = next.run(req).await;
    let principal = slot
        .0
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .unwrap_or_else(|| "anonymous".to_owned());
    tracing::info!(target: "charger_server::audit", %principal, %method, route, status = res.status().as_u16(), "request");
    res
}

/// The peer's address (the listener puts it in every request), when known.
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The whole HTTP router: the REST API, with `pages` merged at the root (the console,
/// which the caller brings, so that this edge does not depend on it).
pub fn router(state: ApiState, pages: Router<ApiState>) -> Router {
    let (max_body, body_timeout, https) = (state.max_body, state.body_timeout, state.https);
    let v1 = Router::new()
        .merge(owners::routes())
        .merge(devices::routes())
        .merge(tags::routes())
        .merge(tariffs::routes())
        .merge(transfers::routes())
        .merge(sessions::routes())
        .merge(sites::routes());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(broker_auth::routes())
        .merge(pages)
        .nest("/api/v1", v1)
        .fallback(not_found)
        .with_state(state)
        .route_layer(axum::middleware::from_fn(audit_line))
        .layer(axum::middleware::map_response(move |mut res: Response| async move {
            // Under HTTPS, browsers are told to come back only over HTTPS.
            if https {
                res.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    header::HeaderValue::from_static("max-age=31536000"),
                );
            }
            res
        }))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            body_timeout,
            deadline::body_deadline,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::http::Request<_>| {
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                },
            ),
        )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Prometheus text; unauthenticated like `/healthz` (counts only, no owner's data).
async fn metrics(axum::extract::State(state): axum::extract::State<ApiState>) -> Response {
    let active = match state.service.count_active_sessions().await {
        Ok(n) => Some(n),
        Err(e) => {
            crate::metrics::db_error();
            tracing::error!(error = %e, "cannot count active sessions");
            None
        }
    };
    if let Some(broker) = &state.broker_metrics {
        broker.publish(state.service.metrics());
    }
    let text = state.service.metrics().render(active);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// An error answer: status and JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: code.to_owned(),
                message: crate::error::bounded(message, crate::error::MAX_MESSAGE_CHARS),
            },
        }
    }
}

impl ApiError {
    pub(crate) fn unsupported_media_type(message: &str) -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Error::BadAnswer(_) => StatusCode::BAD_GATEWAY,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() && !matches!(e, Error::Timeout | Error::BadAnswer(_)) {
            tracing::error!(error = %e, "request failed");
            return ApiError::new(
                status,
                e.code(),
                "the server could not complete the request",
            );
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl ApiError {
    /// 413, as JSON.
    fn too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is over CHARGER_HTTP_MAX_BODY",
        )
    }

    /// 408: the body did not arrive within its deadline.
    fn body_timeout() -> Self {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive within CHARGER_HTTP_BODY_TIMEOUT_MS",
        )
    }
}

impl From<axum::extract::rejection::StringRejection> for ApiError {
    fn from(r: axum::extract::rejection::StringRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large();
        }
        if deadline::is_deadline(&r) {
            return ApiError::body_timeout();
        }
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", r.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large();
        }
        if deadline::is_deadline(&r) {
            return ApiError::body_timeout();
        }
        match r {
            JsonRejection::JsonDataError(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                e.body_text(),
            ),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            other => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

/// A JSON body whose rejections are our JSON errors (400 malformed, 422 wrong shape). A
/// body is an object (or `null` where nothing is needed): an array is refused, though serde
/// would read a struct from one.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if value.is_array() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "the body must be a JSON object, not an array",
            ));
        }
        // The path of the field at fault leads the message, as axum's own extractor does.
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input",
                    format!("Failed to deserialize the JSON body into the target type: {e}"),
                )
            })
    }
}

/// A text body (a CSV import) whose rejections are our JSON errors (413, 408, 400).
pub struct ApiText(pub String);

impl<S: Send + Sync> FromRequest<S> for ApiText {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Ok(ApiText(String::from_request(req, state).await?))
    }
}

/// A path parameter whose rejections are our JSON errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send a valid token as Authorization: Bearer <token>",
            )
        };
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(unauthorized)?;
        match state
            .service
            .authenticate(token, state.admin_token_hash.as_deref())
            .await
        {
            Ok(p) => {
                AuditSlot::note(parts, &p);
                Ok(p)
            }
            Err(Error::Unauthorized) => Err(unauthorized()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
