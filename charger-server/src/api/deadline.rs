//! A total deadline on request bodies.
//!
//! tower-http's `RequestBodyTimeoutLayer` restarts its timer on every frame, so a client
//! that sends a byte a second holds its connection for as long as it likes. Here the whole
//! body must arrive by one deadline, set when the request's headers have been read
//! (`CHARGER_HTTP_BODY_TIMEOUT_MS`); past it, reading the body fails, the handler answers
//! 408 and the connection closes (the rest of the body is never read).

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// The error a body past its deadline fails with.
#[derive(Debug)]
pub struct BodyDeadlinePassed;

impl std::fmt::Display for BodyDeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time (CHARGER_HTTP_BODY_TIMEOUT_MS)")
    }
}

impl std::error::Error for BodyDeadlinePassed {}

/// Whether `e`, or an error it was caused by, is [`BodyDeadlinePassed`].
pub fn is_deadline(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<BodyDeadlinePassed>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// A body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            crate::metrics::limit_hit(crate::metrics::Limit::HttpBodyTimeout);
            return Poll::Ready(Some(Err(Box::new(BodyDeadlinePassed))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|e| Box::new(e) as axum::BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: gives the request's body a total deadline of `timeout` from now. A request
/// that says it has no body keeps its empty one.
pub async fn body_deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let empty = req.body().is_end_stream() || !has_body(req.headers());
    let req = if empty {
        req
    } else {
        let deadline = Box::pin(tokio::time::sleep(timeout));
        req.map(|inner| Body::new(DeadlineBody { inner, deadline }))
    };
    next.run(req).await
}

/// HTTP/1.1: a request has a body when it says so (a length or a transfer coding).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}
