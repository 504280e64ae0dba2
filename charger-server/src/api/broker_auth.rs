//! `/broker/emqx/authn` and `/broker/emqx/authz`: the HTTP authentication and
//! authorization an external broker of the EMQX 5 family calls, so that the broker
//! enforces the same logins and topic ACL as the embedded one (docs/operations.md,
//! "EMQX"). The broker proves itself with `Authorization: Bearer <CHARGER_BROKER_AUTH_SECRET>`;
//! without that setting every call is 401.
//!
//! - authn: `{"clientid", "username", "password"}` → 200 `{"result": "allow",
//!   "is_superuser": false, "acl": [...]}` with the charger's whole ACL (EMQX 5.8+ checks it
//!   before any authorizer), or 200 `{"result": "deny"}`.
//! - authz: `{"clientid", "username", "topic", "action"}` → 200 `{"result": "allow" | "deny"}`,
//!   for brokers without the ACL in the authentication answer.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, ApiState};
use crate::broker::acl;
use crate::error::Error;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/broker/emqx/authn", post(authn))
        .route("/broker/emqx/authz", post(authz))
}

/// The external broker, authenticated by its secret from the request's headers alone.
struct BrokerCaller;

impl axum::extract::FromRequestParts<ApiState> for BrokerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ApiState,
    ) -> Result<Self, ApiError> {
        check_broker(state, &parts.headers).map(|()| BrokerCaller)
    }
}

/// The broker's secret, checked in constant time (401 also when none is configured).
fn check_broker(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.broker_secret_hash else {
        return Err(ApiError::from(Error::Unauthorized));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if crate::secrets::verify_secret(presented, expected) {
        Ok(())
    } else {
        Err(ApiError::from(Error::Unauthorized))
    }
}

#[derive(Debug, Deserialize)]
struct AuthnRequest {
    clientid: String,
    username: String,
    password: String,
}

async fn authn(
    _broker: BrokerCaller,
    State(state): State<ApiState>,
    ApiJson(req): ApiJson<AuthnRequest>,
) -> ApiResult<Json<Value>> {
    let login = match state
        .service
        .authenticate_device(&req.clientid, &req.username, &req.password)
        .await
    {
        Ok(login) => login,
        Err(Error::Unauthorized) => {
            crate::metrics::limit_hit(crate::metrics::Limit::BrokerLoginRefused);
            return Ok(Json(json!({"result": "deny"})));
        }
        Err(e) => return Err(e.into()),
    };
    // Superseded credentials never displace a charger connected with its current ones (the
    // broker would hand the client id over to them).
    if login.only.is_some() {
        let online = match crate::ids::DeviceId::parse(&req.clientid) {
            Ok(id) => state.service.device_online(&id).await?,
            Err(_) => true,
        };
        if online {
            crate::metrics::limit_hit(crate::metrics::Limit::BrokerLoginRefused);
            return Ok(Json(json!({"result": "deny"})));
        }
    }
    let (owner, device) = (login.owner.as_str(), req.clientid.as_str());
    // Superseded credentials (a claim's or rekey's, within the grace window) may only
    // repeat that exchange and read its answer.
    let (publish, subscribe) = match &login.only {
        None => (
            acl::publish_topics(owner, device),
            acl::subscribe_filters(owner, device),
        ),
        Some(only) => (
            vec![format!("{owner}/req/{device}/{only}")],
            vec![format!("{owner}/res/{device}/{only}")],
        ),
    };
    let mut rules: Vec<Value> = publish
        .into_iter()
        .map(|topic| json!({"permission": "allow", "action": "publish", "topic": topic}))
        .collect();
    rules.extend(
        subscribe
            .into_iter()
            .map(|topic| json!({"permission": "allow", "action": "subscribe", "topic": format!("eq {topic}")})),
    );
    // Nothing else, whatever other authorizers say.
    rules.push(json!({"permission": "deny", "action": "all", "topic": "#"}));
    Ok(Json(json!({
        "result": "allow",
        "is_superuser": false,
        "acl": rules,
    })))
}

#[derive(Debug, Deserialize)]
struct AuthzRequest {
    clientid: String,
    username: String,
    topic: String,
    action: String,
}

async fn authz(
    _broker: BrokerCaller,
    State(state): State<ApiState>,
    ApiJson(req): ApiJson<AuthzRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let deny = || (StatusCode::OK, Json(json!({"result": "deny"})));
    if req.clientid != req.username {
        return Ok(deny());
    }
    let Some(owner) = state.service.device_owner(&req.clientid).await? else {
        return Ok(deny());
    };
    let allowed = match req.action.as_str() {
        "publish" => acl::may_publish(owner.as_str(), &req.clientid, &req.topic),
        "subscribe" => acl::may_subscribe(owner.as_str(), &req.clientid, &req.topic),
        _ => false,
    };
    if !allowed {
        return Ok(deny());
    }
    Ok((StatusCode::OK, Json(json!({"result": "allow"}))))
}
