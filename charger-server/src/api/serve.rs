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
use hyper_util::server::graceful::GracefulShutdown;
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
    let graceful = GracefulShutdown::new();
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
        let watcher = graceful.watcher();
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
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
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
    watcher: hyper_util::server::graceful::Watcher,
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
    // HTTP/1.1 only, with upgrades (an OCPP charger's WebSocket, which then lives on in
    // its own task, outside this connection's slot).
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
            .http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn).await {
        if e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
        {
            limit_hit(Limit::HttpHeaderTimeout);
        }
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}
