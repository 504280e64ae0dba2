//! The operator console: server-rendered HTML (maud) on the REST listener, for owner
//! tokens and the admin token. It calls the same service methods as the REST API, with
//! the same owner scoping; it has no SQL and no rules of its own.
//!
//! Sign-in exchanges a token for a session cookie ([`session`]); every form carries a
//! CSRF token. The fleet, a charger, the sessions and one session refresh their live part
//! every few seconds (`console.js` fetches the page again and swaps `#live`), without a
//! reload. Assets are embedded in the binary.

mod session;
mod views;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use charger_protocol::api::TagStatus;
use maud::Markup;

use crate::api::ApiState;
use crate::charging::history::{GroupBy, ReportQuery, SessionQuery};
use crate::error::Error;
use crate::ids::{DeviceId, OwnerId, TagUid};
use crate::service::Principal;

/// The console's routes (merged at the root of the REST listener).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(fleet))
        .route(
            "/login",
            get(login_page)
                .post(login)
                // A token and a CSRF field: nothing bigger is read before sign-in.
                .layer(axum::extract::DefaultBodyLimit::max(8 * 1024)),
        )
        .route("/logout", post(logout))
        .route("/chargers/{id}", get(charger))
        .route("/chargers/{id}/commands/{command}", post(command))
        .route("/chargers/{id}/credentials", post(rotate))
        .route("/chargers/{id}/transfers", post(offer))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", get(session_page))
        .route("/sessions/{id}/resolution", post(resolve))
        .route("/tokens", get(tokens_page))
        .route("/tokens/{id}/revoke", post(revoke_token))
        .route("/billing", get(billing))
        .route("/billing.csv", get(billing_csv))
        .route("/tags", get(tags))
        .route("/tags/status", post(tag_status))
        // A CSV of tags may be big; every other console form is small.
        .route(
            "/tags/import",
            post(tag_import).layer(axum::extract::DefaultBodyLimit::max(1 << 20)),
        )
        .route("/tags/enroll", post(tag_enroll))
        .route("/transfers", get(transfers))
        .route("/transfers/{id}/{action}", post(transfer_action))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

/// A signed-in user: who, and the CSRF token of their session.
pub(crate) struct User {
    pub who: Principal,
    pub csrf: String,
    cookie: String,
}

impl User {
    pub fn name(&self) -> String {
        match &self.who {
            Principal::Admin => "admin".to_owned(),
            Principal::Owner(o) => o.to_string(),
        }
    }
}

/// The signed-in user, or the answer that sends them to sign in.
async fn user(state: &ApiState, headers: &HeaderMap) -> Result<User, Response> {
    let to_login = || Redirect::to("/login").into_response();
    let key = state.service.console_key();
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| session::cookie_value(h, session::COOKIE))
        .ok_or_else(to_login)?;
    let who = match state
        .service
        .console_session(cookie, state.admin_token_hash.as_deref())
        .await
    {
        Ok(who) => who,
        Err(Error::Unauthorized) => return Err(to_login()),
        Err(e) => return Err(error_page_anonymous(&e)),
    };
    Ok(User {
        who,
        csrf: session::csrf(&key, cookie),
        cookie: cookie.to_owned(),
    })
}

/// A form of a signed-in user: the session is checked from the request's headers before
/// the body is read (an anonymous client gets the sign-in redirect and nothing of its body
/// is read), then the form, then its CSRF token.
pub(crate) struct AuthedForm {
    pub user: User,
    pub form: HashMap<String, String>,
}

impl axum::extract::FromRequest<ApiState> for AuthedForm {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &ApiState) -> Result<Self, Response> {
        let u = user(state, req.headers()).await?;
        if let Some(slot) = req.extensions().get::<crate::api::AuditSlot>() {
            slot.set(&u.who);
        }
        let Form(form) = Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let given = form.get("csrf").map(String::as_str).unwrap_or_default();
        if !session::csrf_ok(&state.service.console_key(), &u.cookie, given) {
            return Err(
                (StatusCode::FORBIDDEN, "the form is stale: reload the page").into_response(),
            );
        }
        Ok(AuthedForm { user: u, form })
    }
}

/// A domain error as a page for someone not signed in (the database is down).
fn error_page_anonymous(e: &Error) -> Response {
    tracing::error!(error = %e, "console request failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        page(views::login(Some(
            "The server cannot check sign-ins right now; try again.",
        ))),
    )
        .into_response()
}

/// A domain error as a page.
fn error_page(u: &User, e: &Error) -> Response {
    let (status, message) = match e {
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, e.to_string()),
        Error::Forbidden { .. } => (StatusCode::FORBIDDEN, e.to_string()),
        Error::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Error::Conflict { .. } => (StatusCode::CONFLICT, e.to_string()),
        Error::Unauthorized => (StatusCode::UNAUTHORIZED, e.to_string()),
        _ => {
            tracing::error!(error = %e, "console request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server could not complete the request".to_owned(),
            )
        }
    };
    (status, page(views::error(u, status.as_u16(), &message))).into_response()
}

/// What every page may load and do: only this server's own script, style and forms.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(m: Markup) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "same-origin"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        m,
    )
        .into_response()
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(|s| s.trim()).unwrap_or_default()
}

async fn login_page() -> Response {
    page(views::login(None))
}

fn login_failed() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        page(views::login(Some("That token is not valid."))),
    )
        .into_response()
}

/// Sign-in is throttled per source address before its form is read: failed attempts
/// spend the source's budget (`CHARGER_LOGIN_ATTEMPTS_PER_MINUTE`); with none left, 429.
struct LoginAttempt(Option<crate::limits::Source>);

impl axum::extract::FromRequestParts<ApiState> for LoginAttempt {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ApiState,
    ) -> Result<Self, Response> {
        if !session::same_origin(&parts.headers) {
            tracing::warn!("console sign-in from another site refused");
            return Err((
                StatusCode::FORBIDDEN,
                page(views::login(Some("Sign in from this console's own page."))),
            )
                .into_response());
        }
        let crate::api::Peer(ip) = crate::api::Peer::from_request_parts(parts, state)
            .await
            .unwrap_or(crate::api::Peer(None));
        let source = ip.map(crate::limits::Source::wide);
        if let (Some(source), Some(ip)) = (source, ip) {
            // Every attempt takes a token first (so that concurrent attempts cannot all pass
            // on one); a successful one gives it back.
            if !state
                .login_attempts
                .try_take(&source, std::time::Instant::now())
            {
                crate::metrics::limit_hit_logged(
                    crate::metrics::Limit::LoginAttempts,
                    "console sign-in refused: too many failed attempts from one source \
                     (CHARGER_LOGIN_ATTEMPTS_PER_MINUTE)",
                );
                tracing::info!(source = %ip, "console sign-in throttled");
                return Err((
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "60")],
                    page(views::login(Some(
                        "Too many failed sign-ins from your address; wait a minute.",
                    ))),
                )
                    .into_response());
            }
        }
        Ok(LoginAttempt(source))
    }
}

/// An attempt that counted for nothing (it succeeded, or the server failed) gives its token
/// back.
fn give_back(state: &ApiState, attempt: &LoginAttempt) {
    if let Some(source) = attempt.0 {
        state
            .login_attempts
            .give_back(&source, std::time::Instant::now());
    }
}

async fn login(
    State(state): State<ApiState>,
    attempt: LoginAttempt,
    crate::api::Peer(ip): crate::api::Peer,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = field(&form, "token");
    let started = state
        .service
        .start_console_session(
            token,
            state.admin_token_hash.as_deref(),
            session::SESSION_HOURS,
        )
        .await;
    let (who, cookie) = match started {
        Ok(s) => s,
        Err(Error::Unauthorized) => {
            tracing::info!(source = ?ip, "console sign-in failed");
            return login_failed();
        }
        Err(e) => {
            give_back(&state, &attempt);
            return error_page_anonymous(&e);
        }
    };
    give_back(&state, &attempt);
    tracing::info!(target: "charger_server::audit", principal = %who.audit_name(), source = ?ip, "console sign-in");
    let secure = if state.https { "; Secure" } else { "" };
    let set = format!(
        "{}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session::COOKIE,
        session::SESSION_HOURS * 3600
    );
    ([(header::SET_COOKIE, set)], Redirect::to("/")).into_response()
}

async fn logout(
    State(state): State<ApiState>,
    AuthedForm { user: u, form: _ }: AuthedForm,
) -> Response {
    // The session ends on the server: a copy of the cookie is worth nothing from now on.
    if let Err(e) = state.service.end_console_session(&u.cookie).await {
        return error_page(&u, &e);
    }
    tracing::info!(target: "charger_server::audit", principal = %u.who.audit_name(), "console sign-out");
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        session::COOKIE
    );
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

async fn fleet(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let u = match user(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match state.service.list_devices(&u.who).await {
        Ok(devices) => {
            let search = field(&q, "q").to_lowercase();
            let status = field(&q, "status");
            let shown: Vec<_> = devices
                .into_iter()
                .filter(|d| {
                    search.is_empty()
                        || d.id.as_str().to_lowercase().contains(&search)
                        || d.model
                            .as_deref()
                            .unwrap_or("")
                            .to_lowercase()
                            .contains(&search)
                        || d.firmware
                            .as_deref()
                            .unwrap_or("")
                            .to_lowercase()
                            .contains(&search)
                })
                .filter(|d| match status {
                    "online" => d.online,
                    "offline" => !d.online,
                    _ => true,
                })
                .collect();
            page(views::fleet(&u, &shown, &search, status))
        }
        Err(e) => error_page(&u, &e),
    }
}

async fn charger_view(
    state: &ApiState,
    u: &User,
    id: &DeviceId,
    notice: Option<Markup>,
) -> Response {
    let device = match state.service.get_device(&u.who, id).await {
        Ok(d) => d,
        Err(e) => return error_page(u, &e),
    };
    let q = SessionQuery {
        device: Some(id.clone()),
        limit: Some(20),
        ..SessionQuery::default()
    };
    let sessions = match state.service.list_sessions(&u.who, q).await {
        Ok(p) => p.sessions,
        Err(e) => return error_page(u, &e),
    };
    match state.service.device_audit(&u.who, id).await {
        Ok(actions) => page(views::charger(u, &device, &sessions, &actions, notice)),
        Err(e) => error_page(u, &e),
    }
}

// The error is the page to answer with (axum's Response), as in the handlers.
#[allow(clippy::result_large_err)]
fn device_id(u: &User, id: &str) -> Result<DeviceId, Response> {
    DeviceId::parse(id).map_err(|_| error_page(u, &Error::not_found("device")))
}

async fn charger(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let u = match user(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match device_id(&u, &id) {
        Ok(id) => charger_view(&state, &u, &id, None).await,
        Err(r) => r,
    }
}

async fn command(
    State(state): State<ApiState>,
    Path((id, command)): Path<(String, String)>,
    AuthedForm { user: u, form }: AuthedForm,
) -> Response {
    let id = match device_id(&u, &id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let number = |name: &str| field(&form, name).parse::<i64>().unwrap_or(0);
    let data = match command.as_str() {
        "remote-stop" => serde_json::json!({"session_id": number("session_id")}),
        "remote-start" => {
            serde_json::json!({"tag": field(&form, "tag"), "connector": number("connector")})
        }
        _ => serde_json::json!({"connector": number("connector")}),
    };
    let notice = match state
        .service
        .send_command(&u.who, &id, &command, &data, None)
        .await
    {
        Ok(result) => views::command_answer(&command, &result.answer),
        Err(e) => views::notice_error(&e.to_string()),
    };
    charger_view(&state, &u, &id, Some(notice)).await
}

async fn rotate(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    AuthedForm { user: u, form: _ }: AuthedForm,
) -> Response {
    let id = match device_id(&u, &id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let notice = match state.service.rotate_credentials(&u.who, &id).await {
        Ok(bundle) => views::bundle_once(&bundle),
        Err(e) => views::notice_error(&e.to_string()),
    };
    charger_view(&state, &u, &id, Some(notice)).await
}

async fn offer(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    AuthedForm { user: u, form }: AuthedForm,
) -> Response {
    let id = match device_id(&u, &id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let notice = match OwnerId::parse(field(&form, "to")) {
        Err(e) => views::notice_error(&e.to_string()),
        Ok(to) => {
            let req = crate::devices::TransferRequest { to };
            match state.service.create_transfer(&u.who, &id, req).await {
                Ok(t) => views::notice_ok(&format!(
                    "Offered. The offer expires at {}; the receiving owner accepts it under Transfers.",
                    t.expires_at
                )),
                Err(e) => views::notice_error(&e.to_string()),
            }
        }
    };
    charger_view(&state, &u, &id, Some(notice)).await
}

async fn sessions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let u = match user(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let device = field(&q, "device");
    let status = field(&q, "status");
    let cursor = field(&q, "cursor");
    let query = SessionQuery {
        device: (!device.is_empty())
            .then(|| DeviceId::parse(device).ok())
            .flatten(),
        status: (!status.is_empty()).then(|| status.to_owned()),
        cursor: (!cursor.is_empty()).then(|| cursor.to_owned()),
        limit: Some(100),
        ..SessionQuery::default()
    };
    match state.service.list_sessions(&u.who, query).await {
        Ok(p) => page(views::sessions(
            &u,
            &p.sessions,
            device,
            status,
            p.next_cursor.as_deref(),
        )),
        Err(e) => error_page(&u, &e),
    }
}

async fn session_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let u = match user(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return error_page(&u, &Error::not_found("session"));
    };
    match state.service.get_session(&u.who, id).await {
        Ok(s) => page(views::session(&u, &s)),
        Err(e) => error_page(&u, &e),
    }
}

async fn resolve(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    AuthedForm { user: u, form }: AuthedForm,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error_page(&u, &Error::not_found("session"));
    };
    let optional = |name: &str| Some(field(&form, name)).filter(|v| !v.is_empty());
    let req = serde_json::json!({
        "action": field(&form, "action"),
        "meter_start_wh": optional("meter_start_wh").and_then(|v| v.parse::<i64>().ok()),
        "meter_stop_wh": optional("meter_stop_wh").and_then(|v| v.parse::<i64>().ok()),
        "started_at": optional("started_at"),
        "stopped_at": optional("stopped_at"),
        "note": optional("note"),
    });
    // Absent fields are left out (the recorded values stand).
    let req = match req {
        serde_json::Value::Object(m) => {
            serde_json::Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    };
    let result = match serde_json::from_value(req) {
        Ok(req) => state.service.resolve_session(&u.who, id, req).await,
        Err(e) => Err(Error::invalid("action", e.to_string())),
    };
    match result {
        Ok(s) => page(views::session(&u, &s)),
        Err(e) => error_page(&u, &e),
    }
}

/// The owner whose tokens a page shows: an owner's own; the admin names one (`?owner=`).
fn tokens_owner(u: &User, requested: &str) -> Option<OwnerId> {
    match &u.who {
        Principal::Owner(o) => Some(o.clone()),
        Principal::Admin => OwnerId::parse(requested).ok(),
    }
}

async fn tokens_view(
    state: &ApiState,
    u: &User,
    owner: Option<OwnerId>,
    notice: Option<Markup>,
) -> Response {
    let Some(owner) = owner else {
        let e = Error::invalid(
            "owner",
            "name the owner whose tokens to show: /tokens?owner=<id>",
        );
        return error_page(u, &e);
    };
    match state.service.list_owner_tokens(&u.who, &owner).await {
        Ok(list) => page(views::tokens(u, &owner, &list, notice)),
        Err(e) => error_page(u, &e),
    }
}

async fn tokens_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let u = match user(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let owner = tokens_owner(&u, field(&q, "owner"));
    tokens_view(&state, &u, owner, None).await
}

async fn revoke_token(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    AuthedForm { user: u, form }: AuthedForm,
) -> Response {
    let owner = tokens_owner(&u, field(&form, "owner"));
    let notice = match &owner {
        Some(o) => match state.service.revoke_owner_token(&u.who, o, &id).await {
            Ok(()) => views::notice_ok(&format!("Token {} revoked.", views::plain(&id))),
            Err(e) => views::notice_error(&e.to_string()),
        },
        None => views::notice_error("owner: name the owner"),
    };
    tokens_view(&state, &u, owner, Some(notice)).await
}

/// The report's query from the form (this month by day when empty).
fn report_query(q: &HashMap<String, String>) -> Result<ReportQuery, Error> {
    use chrono::{Datelike as _, NaiveDate, TimeZone as _, Utc};
    let today = Utc::now().date_naive();
    let day = |name: &str, default: NaiveDate| -> Result<NaiveDate, Error> {
        match q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| Error::invalid(name, "must be a date, YYYY-MM-DD")),
        }
    };
    let first = today.with_day(1).unwrap_or(today);
    let from = day("from", first)?;
    let to = day("to", today.succ_opt().unwrap_or(today))?;
    let group_by = match q.get("group_by").map(String::as_str) {
        Some("month") => GroupBy::Month,
        Some("device") => GroupBy::Device,
        Some("tag") => GroupBy::Tag,
        _ => GroupBy::Day,
    };
    let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
    Ok(ReportQuery {
        from: at(from),
        to: at(to),
        group_by,
        format: None,
    })
}

async fn billing(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let u = match user(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let query = match report_query(&q) {
        Ok(query) => query,
        Err(e) => return error_page(&u, &e),
    };
    match state.service.billing_report(&u.who, &query).await {
        Ok(report) => page(views::billing(&u, &report, &query)),
        Err(e) => error_page(&u, &e),
    }
}

async fn billing_csv(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let u = match user(&state, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let report = match report_query(&q) {
        Ok(query) => state.service.billing_report(&u.who, &query).await,
        Err(e) => Err(e),
    };
    match report.and_then(|r| r.to_csv()) {
        Ok(csv) => (
            [
                (
                    header::CONTENT_TYPE,
                    "text/csv; charset=utf-8; header=present",
                ),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"billing.csv\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            csv,
        )
            .into_response(),
        Err(e) => error_page(&u, &e),
    }
}

async fn tags_view(state: &ApiState, u: &User, notice: Option<Markup>) -> Response {
    let tags = match state.service.list_tags(&u.who).await {
        Ok(t) => t,
        Err(e) => return error_page(u, &e),
    };
    match state.service.list_unknown_tags(&u.who).await {
        Ok(unknown) => page(views::tags(u, &tags, &unknown, notice)),
        Err(e) => error_page(u, &e),
    }
}

async fn tags(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match user(&state, &headers).await {
        Ok(u) => tags_view(&state, &u, None).await,
        Err(r) => r,
    }
}

async fn tag_status(
    State(state): State<ApiState>,
    AuthedForm { user: u, form }: AuthedForm,
) -> Response {
    let status = if field(&form, "status") == "blocked" {
        TagStatus::Blocked
    } else {
        TagStatus::Active
    };
    let result = match (
        TagUid::parse(field(&form, "uid")),
        OwnerId::parse(field(&form, "owner")),
    ) {
        (Ok(uid), Ok(owner)) => {
            let req = crate::tags::PatchTagRequest {
                status: Some(status),
                ..Default::default()
            };
            state
                .service
                .patch_tag(&u.who, &uid, Some(owner), req)
                .await
                .map(|t| format!("Tag {} is now {}.", t.uid, t.status.as_str()))
        }
        _ => Err(Error::not_found("tag")),
    };
    let notice = match result {
        Ok(text) => views::notice_ok(&text),
        Err(e) => views::notice_error(&e.to_string()),
    };
    tags_view(&state, &u, Some(notice)).await
}

async fn tag_import(
    State(state): State<ApiState>,
    AuthedForm { user: u, form }: AuthedForm,
) -> Response {
    let notice = match state.service.import_tags(&u.who, field(&form, "csv")).await {
        Ok(n) => views::notice_ok(&format!("{n} tags imported.")),
        Err(e) => views::notice_error(&e.to_string()),
    };
    tags_view(&state, &u, Some(notice)).await
}

async fn tag_enroll(
    State(state): State<ApiState>,
    AuthedForm { user: u, form }: AuthedForm,
) -> Response {
    let req = serde_json::json!({
        "uid": field(&form, "uid"),
        "owner": field(&form, "owner"),
        "role": "driver",
    });
    let created = match serde_json::from_value::<crate::tags::CreateTagRequest>(req) {
        Ok(req) => state.service.create_tag(&u.who, req).await,
        Err(e) => Err(Error::invalid("uid", e.to_string())),
    };
    let notice = match created {
        Ok(t) => views::notice_ok(&format!("Tag {} enrolled as a driver card.", t.uid)),
        Err(e) => views::notice_error(&e.to_string()),
    };
    tags_view(&state, &u, Some(notice)).await
}

async fn transfers_view(state: &ApiState, u: &User, notice: Option<Markup>) -> Response {
    let q = crate::devices::TransferQuery {
        limit: Some(crate::charging::history::PAGE_MAX),
        ..Default::default()
    };
    match state.service.list_transfers(&u.who, q).await {
        Ok(list) => page(views::transfers(u, &list.transfers, notice)),
        Err(e) => error_page(u, &e),
    }
}

async fn transfers(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match user(&state, &headers).await {
        Ok(u) => transfers_view(&state, &u, None).await,
        Err(r) => r,
    }
}

async fn transfer_action(
    State(state): State<ApiState>,
    Path((id, action)): Path<(String, String)>,
    AuthedForm { user: u, form: _ }: AuthedForm,
) -> Response {
    let result = match action.as_str() {
        "accept" => state.service.accept_transfer(&u.who, &id).await,
        "decline" => state.service.decline_transfer(&u.who, &id).await,
        "withdraw" => state.service.withdraw_transfer(&u.who, &id).await,
        _ => Err(Error::not_found("action")),
    };
    let notice = match result {
        Ok(t) => match &t.code {
            Some(code) => views::claim_code(&t.device, code),
            None => views::notice_ok(&format!("Offer {} is now {}.", t.id, t.status.as_str())),
        },
        Err(e) => views::notice_error(&e.to_string()),
    };
    transfers_view(&state, &u, Some(notice)).await
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("console.js"),
    )
        .into_response()
}
