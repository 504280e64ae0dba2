//! The REST listener: HTTP/1.1 (over TLS when a certificate is configured) with the limits
//! a public listener needs, on hyper directly rather than `axum::serve`, which has none of
//! them:
//!
//! - a bound on open connections (`CHARGER_HTTP_MAX_CONNECTIONS`), and a share of it per
//!   source address (`CHARGER_HTTP_MAX_CONNECTIONS_PER_SOURCE`): beyond either, a new
//!   connection is closed at once and counted, never queued, so one source cannot take
//!   the listener from the others;
//! - every request carries its peer's address (`ConnectInfo`), for the limits keyed by
//!   source (console sign-in attempts);
//! - request headers must arrive within `CHARGER_HTTP_HEADER_TIMEOUT_MS` (a total deadline
//!   from the first byte, hyper's; an idle keep-alive connection is closed after it too) and fit in
//!   `CHARGER_HTTP_MAX_HEADER_BYTES`, else the connection is closed (a client that opens a
//!   socket and never finishes its headers holds nothing for long);
//! - a TLS handshake must finish within the same time;
//! - request bodies are bounded in size and read time by layers on the router
//!   ([`super::router`]).
//!
//! Stopping stops accepting and lets requests in flight finish (up to a grace time).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::metrics::{limit_hit, Limit};

/// How long requests in flight may take to finish once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The REST listener's limits (settings in `config.rs`).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
}

/// Serves `router` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let sources = crate::limits::PerSource::new(limits.max_connections_per_source);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(source) = sources.try_acquire(peer.ip()) else {
            crate::metrics::limit_hit_logged(
                Limit::HttpConnectionsPerSource,
                "HTTP connection refused: its source holds CHARGER_HTTP_MAX_CONNECTIONS_PER_SOURCE",
            );
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            limit_hit(Limit::HttpConnections);
            tracing::debug!(%peer, "HTTP connection refused: CHARGER_HTTP_MAX_CONNECTIONS reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, tls, limits) = (router.clone(), tls.clone(), limits.clone());
        let watcher = stop.clone();
        tokio::spawn(async move {
            let _slots = (permit, source);
            match tls {
                None => connection(stream, peer, router, &limits, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => connection(stream, peer, router, &limits, watcher).await,
                        _ => {
                            limit_hit(Limit::HttpTlsHandshake);
                            tracing::debug!(%peer, "TLS handshake failed or timed out");
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    // Every connection holds a slot until it ends: all back, all done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still running after the shutdown grace time");
    }
    Ok(())
}

async fn connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    router: Router,
    limits: &HttpLimits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let router = router.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req
    });
    let service = TowerToHyperService::new(router);
    // With upgrades: an OCPP charger's WebSocket, which then lives on in its own task,
    // outside this connection's slot.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    // Stopping: the request in flight finishes, then the connection closes.
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            limit_hit(Limit::HttpHeaderTimeout);
        }
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}
