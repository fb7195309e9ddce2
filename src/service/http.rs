//! The HTTP endpoint: `/healthz` (the process is alive), `/readyz` (partitions assigned,
//! state restored, broker reachable), `/metrics`, and the `/v1` API ([`super::api`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::api::Api;
use super::health::Health;
use crate::throttle::Throttle;

/// Renders the Prometheus text exposition.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Makes the `/v1` API once the listener's address is known (its access rule depends on
/// it); `None` serves no `/v1`.
pub type ApiFn = Box<dyn FnOnce(SocketAddr) -> Option<Api> + Send>;

/// Binds `listen` and serves until `shutdown` completes; returns the bound address.
pub async fn serve(
    listen: &str,
    health: Arc<Health>,
    metrics: MetricsFn,
    api: ApiFn,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let api = api(addr).map(Arc::new);
    tokio::spawn(async move {
        tokio::pin!(shutdown);
        let mut failures = Throttle::new(Duration::from_secs(30));
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, typically: wait instead of spinning.
                Err(error) => {
                    if let Some(repeats) = failures.hit(std::time::Instant::now()) {
                        tracing::warn!(%error, repeats, "accepting an HTTP connection");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let health = Arc::clone(&health);
            let metrics = Arc::clone(&metrics);
            let api = api.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let health = Arc::clone(&health);
                    let metrics = Arc::clone(&metrics);
                    let api = api.clone();
                    async move {
                        let path = req.uri().path();
                        if path == "/v1" || path.starts_with("/v1/") {
                            return Ok::<_, Infallible>(match api {
                                Some(api) => api.handle(req).await,
                                None => text_response(
                                    StatusCode::NOT_FOUND,
                                    "no /v1 API here\n".into(),
                                    "text/plain",
                                ),
                            });
                        }
                        Ok(respond(&req, &health, &metrics))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn text_response(status: StatusCode, body: String, content_type: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn respond(req: &Request<Incoming>, health: &Health, metrics: &MetricsFn) -> Response<Full<Bytes>> {
    let text = text_response;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET only\n".into(),
            "text/plain",
        );
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" => match health.not_ready() {
            None => text(StatusCode::OK, "ready\n".into(), "text/plain"),
            Some(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
                "text/plain",
            ),
        },
        "/metrics" => text(
            StatusCode::OK,
            metrics(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz, /readyz or /v1\n".into(),
            "text/plain",
        ),
    }
}
