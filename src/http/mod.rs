//! The operations endpoint (`[http] listen`): `/metrics`, `/healthz`, `/readyz`, the line view (`/`) and its event
//! stream (`/events`).
//!
//! It reads state and never drives it: every handler copies what the benches, the engine and the HSM expose (atomics
//! and locks held for a copy) and nothing here is on a device's path. It runs on its own thread with a one-thread
//! tokio runtime (axum), so however busy it gets it takes one thread's time; the page's stream is capped at
//! [`MAX_STREAMS`] clients and coalesced to one update per [`STREAM_EVERY`]. On a loopback address, requests naming
//! another host are refused (a web page elsewhere cannot read the endpoint through DNS rebinding).

mod page;

use crate::Result;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::supervise::Live;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Page streams served at once; more get 503.
pub const MAX_STREAMS: usize = 32;
/// How often a stream looks for a change.
pub const STREAM_EVERY: Duration = Duration::from_millis(500);
/// A stream sends the view at least this often, changed or not (the page shows a stale view as such).
const STREAM_AT_LEAST: Duration = Duration::from_secs(5);
/// `/healthz` fails once the supervisor has not gone round its loop for this long.
const SUPERVISOR_LATE: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct App {
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    streams: Arc<AtomicUsize>,
    loopback: bool,
}

/// Binds `listen` (an error here is the caller's: `http-bind-failed`) and serves on a thread of its own.
pub fn start(listen: SocketAddr, live: Arc<Live>, metrics: Arc<Metrics>) -> Result<JoinHandle<()>> {
    let bind_failed = |e: std::io::Error| {
        Error::io(
            "http-bind-failed",
            format!("cannot listen on {listen} for [http]: {e}"),
            "another program holds the port, or the address is not this host's: change [http] listen",
            e,
        )
    };
    let listener = std::net::TcpListener::bind(listen).map_err(bind_failed)?;
    listener.set_nonblocking(true).map_err(bind_failed)?;
    let app = App { live, metrics, streams: Arc::new(AtomicUsize::new(0)), loopback: listen.ip().is_loopback() };
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || serve(listener, app))
        .map_err(|e| Error::io("serve-thread-failed", "cannot start the HTTP thread", "check system limits", e))
}

fn serve(listener: std::net::TcpListener, app: App) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let result = runtime.and_then(|rt| {
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, router(app)).await
        })
    });
    if let Err(e) = result {
        // The supervisor sees the thread end and starts it again.
        panic!("the HTTP endpoint stopped: {e}");
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { page::html() }))
        .route("/line.css", get(|| async { page::css() }))
        .route("/line.js", get(|| async { page::js() }))
        .route("/line.json", get(line_json))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string_pretty(body).unwrap_or_else(|_| "{}".into());
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], text).into_response()
}

/// Refuses foreign host names on a loopback endpoint, and adds the headers every answer carries.
async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    if app.loopback && !loopback_host(req.headers()) {
        let body = serde_json::json!({
            "error": "this endpoint listens on loopback and answers loopback names only (localhost, 127.0.0.1, [::1])",
        });
        return json(StatusCode::MISDIRECTED_REQUEST, &body);
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    );
    resp
}

/// A Host header naming a loopback address or `localhost` (with or without a port), or none at all (HTTP/1.0).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else { return true };
    let Ok(host) = host.to_str() else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, port)| if port.parse::<u16>().is_ok() { h } else { host }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let body = app.metrics.encode(openmetrics);
    let kind = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

async fn healthz(State(app): State<App>) -> Response {
    let late = app.live.since_supervisor_beat();
    let uptime_secs = app.live.board.uptime().as_secs();
    if late > SUPERVISOR_LATE {
        let body = serde_json::json!({
            "status": "stuck",
            "problem": format!("the supervisor has not run for {} s", late.as_secs()),
            "uptime_secs": uptime_secs,
        });
        return json(StatusCode::SERVICE_UNAVAILABLE, &body);
    }
    json(StatusCode::OK, &serde_json::json!({ "status": "alive", "uptime_secs": uptime_secs }))
}

async fn readyz(State(app): State<App>) -> Response {
    let r = app.live.readiness();
    json(if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &r)
}

async fn line_json(State(app): State<App>) -> Response {
    json(StatusCode::OK, &app.live.view())
}

/// One client of the page's stream, counted while it is connected.
struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Stream {
    live: Arc<Live>,
    _slot: StreamSlot,
    last: Option<(String, Instant)>,
}

/// The line view as server-sent events: the whole view (`event: line`) at once, then whenever it changes (looked
/// at every [`STREAM_EVERY`]) and at least every few seconds.
async fn events(State(app): State<App>) -> Response {
    if app.streams.fetch_add(1, Ordering::Relaxed) >= MAX_STREAMS {
        app.streams.fetch_sub(1, Ordering::Relaxed);
        let body = serde_json::json!({ "error": format!("{MAX_STREAMS} line views are open already") });
        return json(StatusCode::SERVICE_UNAVAILABLE, &body);
    }
    let start = Stream { live: app.live.clone(), _slot: StreamSlot(app.streams.clone()), last: None };
    let stream = futures_util::stream::unfold(start, |mut s| async move {
        loop {
            if s.last.is_some() {
                tokio::time::sleep(STREAM_EVERY).await;
            }
            let view = s.live.view();
            // The clock in the view always moves: compare without it.
            let body = serde_json::to_string(&(&view.benches, &view.gate, &view.problems, &view.hsm, &view.ledger))
                .unwrap_or_default();
            let due = match &s.last {
                None => true,
                Some((last, at)) => *last != body || at.elapsed() >= STREAM_AT_LEAST,
            };
            if due {
                s.last = Some((body, Instant::now()));
                let data = serde_json::to_string(&view).unwrap_or_else(|_| "{}".into());
                return Some((Ok::<_, Infallible>(Event::default().event("line").data(data)), s));
            }
        }
    });
    let mut resp = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn only_loopback_host_names_reach_a_loopback_endpoint() {
        for ok in ["127.0.0.1:9464", "localhost:9464", "LOCALHOST", "[::1]:9464", "127.0.0.2", "[::1]"] {
            assert!(loopback_host(&host(ok)), "{ok}");
        }
        for bad in ["attacker.example:9464", "10.0.0.1:9464", "example.com", "localhost.example.com:80", "[::2]:1"] {
            assert!(!loopback_host(&host(bad)), "{bad}");
        }
        assert!(loopback_host(&HeaderMap::new()), "HTTP/1.0 without Host");
    }
}
