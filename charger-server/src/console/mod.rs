//! The operator console: server-rendered HTML (maud) on the REST listener, for owner
//! tokens and the admin token. It calls the same service methods as the REST API, with
//! the same owner scoping; it has no SQL and no rules of its own.
//!
//! - Sign-in exchanges a token for a server-side session ([`session`]); every form carries
//!   a CSRF token, and is read only once its session checks out ([`AuthedForm`]).
//! - Every form is answered with a redirect to the page it acts on (post/redirect/get), its
//!   outcome carried there once in a sealed cookie ([`flash`]): a reload never sends a form
//!   again.
//! - A page's live part refreshes itself: `console.js` fetches it alone
//!   (`?fragment=live`) every few seconds, with its ETag, so an unchanged page costs a 304
//!   ([`ui::fragment`]).
//! - One file per page in [`pages`]: its handlers and its views; what they share in [`ui`].
//!   Assets are embedded in the binary.

pub mod flash;
mod pages;
mod session;
mod ui;

use std::collections::HashMap;

use axum::extract::{Form, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use crate::api::ApiState;
use crate::error::Error;
use crate::service::Principal;
use flash::Flash;
use ui::Page;

/// The console's routes (merged at the root of the REST listener).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/login",
            get(login_page)
                .post(login)
                // A token and a CSRF field: nothing bigger is read before sign-in.
                .layer(axum::extract::DefaultBodyLimit::max(8 * 1024)),
        )
        .route("/logout", post(logout))
        .merge(pages::routes())
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
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie_value(h, session::COOKIE))
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

/// A signed-in user reading a page: who, the flash the last form left for this page (shown
/// once), and whether only the page's live part is wanted (`?fragment=live`).
pub(crate) struct Viewer {
    pub user: User,
    flash: Option<Flash>,
    clear: Option<HeaderValue>,
    fragment: bool,
    headers: HeaderMap,
}

impl axum::extract::FromRequestParts<ApiState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let user = user(state, &parts.headers).await?;
        let key = state.service.console_key();
        let fragment = parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "fragment=live"));
        let (flash, clear) = match flash::take(&key, &user.cookie, &parts.headers) {
            Some((f, c)) if !fragment => (Some(f), Some(c)),
            _ => (None, None),
        };
        Ok(Viewer {
            user,
            flash,
            clear,
            fragment,
            headers: parts.headers.clone(),
        })
    }
}

impl Viewer {
    /// Answers with a page whose live part is `live` (refreshed by the script), followed by
    /// `rest`; or with the live part alone when that is what was asked.
    pub fn live_page(self, title: String, before: Markup, live: Markup, after: Markup) -> Response {
        if self.fragment {
            return ui::fragment(ui::live(live), &self.headers);
        }
        let body = html! { (before) (ui::live_in_page(live)) (after) };
        self.page_with(title, true, body)
    }

    /// Answers with a page that does not refresh itself.
    pub fn page(self, title: String, body: Markup) -> Response {
        self.page_with(title, false, body)
    }

    fn page_with(self, title: String, live: bool, body: Markup) -> Response {
        let page = Page {
            title,
            user: Some(&self.user),
            live,
            flash: self.flash,
            body,
        };
        ui::respond(page, StatusCode::OK, self.clear)
    }

    /// A domain error as a page.
    pub fn error(self, e: &Error) -> Response {
        let (status, message) = status_of(e);
        let page = Page {
            title: format!("Error {}", status.as_u16()),
            user: Some(&self.user),
            live: false,
            flash: None,
            body: html! {
                p.notice.bad role="alert" { (ui::plain(&message)) }
                p { a href="/" { "Back to the fleet" } }
            },
        };
        ui::respond(page, status, self.clear)
    }
}

/// A form of a signed-in user: the session is checked from the request's headers before
/// the body is read (an anonymous client gets the sign-in redirect and nothing of its body
/// is read), then the form, then its CSRF token.
pub(crate) struct AuthedForm {
    pub user: User,
    pub form: HashMap<String, String>,
    https: bool,
    key: [u8; 32],
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
        let key = state.service.console_key();
        if !session::csrf_ok(&key, &u.cookie, given) {
            return Err(
                (StatusCode::FORBIDDEN, "the form is stale: reload the page").into_response(),
            );
        }
        Ok(AuthedForm {
            user: u,
            form,
            https: state.https,
            key,
        })
    }
}

impl AuthedForm {
    /// A field, trimmed ("" when absent).
    pub fn field(&self, name: &str) -> &str {
        self.form.get(name).map(|s| s.trim()).unwrap_or_default()
    }

    /// The answer to this form: 303 to `to`, with `flash` shown there once.
    pub fn done(&self, to: &str, flash: Flash) -> Response {
        flash::redirect(&self.key, &self.user.cookie, self.https, to, flash)
    }

    /// The answer to this form when it failed: back to `to`, the error shown there.
    pub fn failed(&self, to: &str, e: &Error) -> Response {
        let (_, message) = status_of(e);
        self.done(to, Flash::bad(message))
    }
}

/// A domain error's status and the message to show (5xx opaque, logged).
fn status_of(e: &Error) -> (StatusCode, String) {
    match e {
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, e.to_string()),
        Error::Forbidden { .. } => (StatusCode::FORBIDDEN, e.to_string()),
        Error::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Error::Conflict { .. } => (StatusCode::CONFLICT, e.to_string()),
        Error::Unauthorized => (StatusCode::UNAUTHORIZED, e.to_string()),
        Error::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "the charger did not answer in time".to_owned(),
        ),
        Error::BadAnswer(_) => (StatusCode::BAD_GATEWAY, e.to_string()),
        _ => {
            tracing::error!(error = %e, "console request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server could not complete the request".to_owned(),
            )
        }
    }
}

/// A domain error as a page for someone not signed in (the database is down).
fn error_page_anonymous(e: &Error) -> Response {
    tracing::error!(error = %e, "console request failed");
    login_page_with(
        StatusCode::SERVICE_UNAVAILABLE,
        Some("The server cannot check sign-ins right now; try again."),
    )
}

fn login_page_with(status: StatusCode, error: Option<&str>) -> Response {
    let page = Page {
        title: "Sign in".to_owned(),
        user: None,
        live: false,
        flash: None,
        body: html! {
            @if let Some(e) = error { p.notice.bad role="alert" { (e) } }
            form.card method="post" action="/login" {
                p { "Sign in with an owner token or the platform admin token." }
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    };
    ui::respond(page, status, None)
}

async fn login_page() -> Response {
    login_page_with(StatusCode::OK, None)
}

/// Sign-in is throttled per source address before its form is read: every attempt takes a
/// token of the source's budget (`CHARGER_LOGIN_ATTEMPTS_PER_MINUTE`), a success gives it
/// back; with none left, 429. A form from another site is refused (login CSRF).
struct LoginAttempt(Option<crate::limits::Source>);

impl axum::extract::FromRequestParts<ApiState> for LoginAttempt {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        if !session::same_origin(&parts.headers) {
            tracing::warn!("console sign-in from another site refused");
            return Err(login_page_with(
                StatusCode::FORBIDDEN,
                Some("Sign in from this console's own page."),
            ));
        }
        let crate::api::Peer(ip) = crate::api::Peer::from_request_parts(parts, state)
            .await
            .unwrap_or(crate::api::Peer(None));
        let source = ip.map(crate::limits::Source::wide);
        if let (Some(source), Some(ip)) = (source, ip) {
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
                let mut res = login_page_with(
                    StatusCode::TOO_MANY_REQUESTS,
                    Some("Too many failed sign-ins from your address; wait a minute."),
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
                return Err(res);
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
    let token = form.get("token").map(|s| s.trim()).unwrap_or_default();
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
            return login_page_with(StatusCode::UNAUTHORIZED, Some("That token is not valid."));
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

async fn logout(State(state): State<ApiState>, f: AuthedForm) -> Response {
    // The session ends on the server: a copy of the cookie is worth nothing from now on.
    if let Err(e) = state.service.end_console_session(&f.user.cookie).await {
        return f.failed("/", &e);
    }
    tracing::info!(target: "charger_server::audit", principal = %f.user.who.audit_name(), "console sign-out");
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        session::COOKIE
    );
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
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
