//! The gateway's HTTP edge: the accept loop, its connection cap and timeouts.
//!
//! `axum::serve` has no header-read timeout and no connection limit, so a client holding
//! half-sent requests could take every file descriptor and make the gateway unreachable
//! (`accept: Too many open files`). This loop serves each connection with hyper's HTTP/1 server
//! instead and bounds what a client can hold:
//!
//! - **header timeout**: a request's head must arrive within it. hyper starts the timer
//!   whenever a connection waits for a request, so it is also the idle timeout of keep-alive
//!   connections: a silent connection is closed after it either way.
//! - **body timeout**: a request body must arrive within it (a stalled upload is a 408).
//! - **connection cap**: at most `max_connections` are open; at the cap the loop stops
//!   accepting, says so once in the log, and new connections wait in the kernel's listen
//!   backlog until one closes. The cap stays below the open-file limit, so `accept` itself
//!   never fails for want of descriptors.
//!
//! Long polls (`/result?wait=`) hold a connection each; [`super::Waiters`] bounds how many may
//! wait at once, so they cannot fill the cap either.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tracing::{debug, info, warn};

/// Limits of the HTTP edge (see the module docs).
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish for at most
/// `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cfg: &EdgeConfig,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let router = router.layer(RequestBodyTimeoutLayer::new(cfg.body_timeout));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let at_cap = AtomicBool::new(false);
    info!(
        event = "edge_limits",
        max_connections = cfg.max_connections,
        header_timeout_ms = cfg.header_timeout.as_millis() as u64,
        body_timeout_ms = cfg.body_timeout.as_millis() as u64,
        "gateway edge limits"
    );
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !at_cap.swap(true, Ordering::Relaxed) {
                    warn!(
                        event = "connection_limit",
                        max_connections = cfg.max_connections,
                        "connection limit reached: new connections wait in the listen backlog until one closes (raise --max-connections)"
                    );
                }
                tokio::select! {
                    p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Per-connection errors (the peer reset before accept) need nothing; running
                    // out of descriptors passes when connections close.
                    warn!(event = "accept_failed", error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        if at_cap.swap(false, Ordering::Relaxed) {
            info!(
                event = "connection_limit_cleared",
                "below the connection limit again"
            );
        }
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone().map_request(
            |req: axum::http::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
        ));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // The drain is bounded: a long poll (`?wait=`) must not hold a stopping gateway for minutes.
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => warn!(event = "drain_grace_exceeded", ?grace, "in-flight requests still running after the shutdown grace; closing them"),
    }
}
