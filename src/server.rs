//! The HTTP edge: a hyper 1 listener on a small tokio runtime with limits on
//! connections, header size and time, body size and time, idle keep-alive,
//! and graceful shutdown. Handlers are plain synchronous functions, run under
//! `block_in_place` with at most one async worker per core plus `workers`
//! blocking threads; only this file is async.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method as Verb, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::connect::{self, Call, Headers, Reject};
use crate::error::{Code, Error};
use crate::rpc::{self, State, METHODS};
use crate::{auth, info, store, warn};

type Resp = Response<Full<Bytes>>;

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// Builds the runtime and serves until SIGTERM/SIGINT, then drains.
pub fn run(state: Arc<State>, listener: std::net::TcpListener) -> Result<(), String> {
    // One async worker per core for the edge. A handler runs on the worker
    // that received its request, inside block_in_place: tokio hands that
    // worker's other tasks to a replacement thread from the blocking pool
    // (at most `workers`), so handlers stay synchronous and bounded. Measured
    // against spawn_blocking: 1.45 -> 0.35 context switches per request.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .max_blocking_threads(state.config.workers)
        .thread_name("proxyplane-worker")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = rt.block_on(serve(state.clone(), listener));
    rt.shutdown_timeout(Duration::from_secs(
        state.config.shutdown_timeout_seconds.max(1),
    ));
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers we cannot shut down gracefully; serve on.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

async fn serve(state: Arc<State>, listener: std::net::TcpListener) -> Result<(), String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?;
    let slots = Arc::new(Semaphore::new(state.config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut signal = pin!(shutdown_signal());
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut signal => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        conns.spawn(connection(
            state.clone(),
            stream,
            peer,
            stop_rx.clone(),
            permit,
        ));
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    info!(
        "shutting down: no new connections; finishing {} open ones",
        conns.len()
    );
    state.shutting_down.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(state.config.shutdown_timeout_seconds);
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(
            "shutdown: {} connections still open after {grace:?}; closing them",
            conns.len()
        );
        conns.abort_all();
    }
    Ok(())
}

/// Per-connection bookkeeping for the idle keep-alive timeout.
struct Activity {
    inflight: AtomicUsize,
    last_ms: AtomicU64,
    epoch: Instant,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Option<Duration> {
        if self.inflight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }
}

async fn connection(
    state: Arc<State>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    state
        .metrics
        .open_connections
        .fetch_add(1, Ordering::Relaxed);
    let activity = Arc::new(Activity {
        inflight: AtomicUsize::new(0),
        last_ms: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let cfg = &state.config;
    let idle = Duration::from_secs(cfg.idle_timeout_seconds);
    let svc = {
        let (state, activity) = (state.clone(), activity.clone());
        service_fn(move |req| {
            let (state, activity) = (state.clone(), activity.clone());
            async move {
                activity.inflight.fetch_add(1, Ordering::Relaxed);
                let resp = route(&state, req, peer.ip()).await;
                activity.inflight.fetch_sub(1, Ordering::Relaxed);
                activity.touch();
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let mut conn = pin!(http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(Duration::from_secs(cfg.header_read_timeout_seconds)))
        .max_buf_size(cfg.max_header_bytes)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc));
    let mut tick = tokio::time::interval(Duration::from_millis(500).min(idle));
    let mut closing = *stop.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            r = stop.changed(), if !closing => {
                if r.is_err() || *stop.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = tick.tick(), if !closing => {
                if activity.idle_for().is_some_and(|d| d >= idle) {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    state
        .metrics
        .open_connections
        .fetch_sub(1, Ordering::Relaxed);
    drop(permit);
}

fn header(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn headers(h: &HeaderMap) -> Headers<'_> {
    Headers {
        content_type: header(h, header::CONTENT_TYPE),
        content_encoding: header(h, header::CONTENT_ENCODING),
        accept_encoding: header(h, header::ACCEPT_ENCODING),
        timeout_ms: h.get("connect-timeout-ms").and_then(|v| v.to_str().ok()),
        protocol_version: h
            .get("connect-protocol-version")
            .and_then(|v| v.to_str().ok()),
        authorization: header(h, header::AUTHORIZATION),
    }
}

fn response(status: u16, content_type: &str, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    r
}

fn error_response(status: u16, e: &Error) -> Resp {
    let mut r = response(status, "application/json", e.to_json());
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// An error sent before the body was read: the connection is closed after
/// it, so an unread body never desynchronises the next request.
fn closing(mut r: Resp) -> Resp {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn route(state: &Arc<State>, req: Request<Incoming>, peer: IpAddr) -> Resp {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/healthz" => return healthz(state).await,
        "/metrics" => return metrics(state, &req).await,
        _ => {}
    }
    if state.shutting_down.load(Ordering::Relaxed) {
        // A request that arrives on a kept-alive connection after SIGTERM.
        let e = Error::unavailable("The server is shutting down; retry on a new connection.");
        return closing(error_response(503, &e));
    }
    let Some(index) = rpc::lookup(&path) else {
        state
            .metrics
            .record(None, Some(Code::NotFound), started.elapsed());
        let e = Error::new(Code::Unimplemented, format!("No such method: {path}"));
        return error_response(404, &e);
    };
    let (resp, code) = call(state, index, req, peer).await;
    state.metrics.record(Some(index), code, started.elapsed());
    resp
}

async fn call(
    state: &Arc<State>,
    index: usize,
    req: Request<Incoming>,
    peer: IpAddr,
) -> (Resp, Option<Code>) {
    let method = &METHODS[index];
    let reject = |r: Reject| {
        let code = r.error.code;
        (closing(error_response(r.status, &r.error)), Some(code))
    };
    let now = Instant::now();
    let limit = state.config.max_body_bytes;
    let (call, body): (Call, Vec<u8>) = match *req.method() {
        Verb::POST => {
            let call = match connect::parse_post(&headers(req.headers()), now) {
                Ok(c) => c,
                Err(r) => return reject(r),
            };
            let declared =
                header(req.headers(), header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit as u64) {
                return reject(connect::too_large(limit).into());
            }
            let read = Limited::new(req.into_body(), limit).collect();
            match tokio::time::timeout(
                Duration::from_secs(state.config.body_read_timeout_seconds),
                read,
            )
            .await
            {
                Ok(Ok(b)) => (call, b.to_bytes().to_vec()),
                Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                    return reject(connect::too_large(limit).into())
                }
                Ok(Err(_)) => {
                    return reject(Error::invalid("The request body could not be read.").into())
                }
                Err(_) => {
                    return reject(
                        Error::new(
                            Code::DeadlineExceeded,
                            "The request body did not arrive in time.",
                        )
                        .into(),
                    )
                }
            }
        }
        Verb::GET if method.read_only => {
            let query = req.uri().query().unwrap_or("");
            match connect::parse_get(query, &headers(req.headers()), now) {
                Ok(x) => x,
                Err(r) => return reject(r),
            }
        }
        _ => {
            let allow = if method.read_only {
                "GET, POST"
            } else {
                "POST"
            };
            let e = Error::new(
                Code::Unimplemented,
                format!(
                    "{} does not answer {}; use {allow}.",
                    method.name,
                    req.method()
                ),
            );
            let mut r = closing(error_response(405, &e));
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return (r, Some(Code::Unimplemented));
        }
    };
    let st = state.clone();
    let codec = call.codec;
    let result = tokio::task::block_in_place(move || {
        // A panicking handler is a 500 for its request, not a dropped
        // connection or a dead worker.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rpc::handle(&st, method, &call, &body, peer)
        }))
        .unwrap_or_else(|_| Err(Error::internal("handler panicked")))
    });
    match result {
        Ok(reply) => {
            let mut r = response(200, codec.content_type(), reply.body);
            if reply.gzipped {
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            (r, None)
        }
        Err(e) => {
            if let Some(cause) = &e.cause {
                let id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
                if e.code == Code::Internal {
                    crate::error!("request {id} {}: {cause}", method.name);
                } else {
                    warn!("request {id} {}: {cause}", method.name);
                }
            }
            (error_response(e.code.http_status(), &e), Some(e.code))
        }
    }
}

async fn healthz(state: &Arc<State>) -> Resp {
    let st = state.clone();
    let ok = tokio::task::spawn_blocking(move || -> bool {
        st.db
            .get()
            .ok()
            .and_then(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).ok())
            == Some(1)
    })
    .await
    .unwrap_or(false);
    if ok {
        response(200, "text/plain; charset=utf-8", b"ok\n".to_vec())
    } else {
        response(
            503,
            "text/plain; charset=utf-8",
            b"database unavailable\n".to_vec(),
        )
    }
}

async fn metrics(state: &Arc<State>, req: &Request<Incoming>) -> Resp {
    let authz = header(req.headers(), header::AUTHORIZATION).map(str::to_owned);
    let st = state.clone();
    let out = tokio::task::spawn_blocking(move || -> Result<String, Error> {
        let conn = st.db.get()?;
        if st.config.metrics_require_key {
            let secret = auth::bearer(authz.as_deref()).ok_or_else(Error::unauthenticated)?;
            let p = auth::authenticate(&conn, st.keys.master(), secret)?;
            if !p.is_admin() {
                return Err(Error::denied());
            }
        }
        let counts = store::sessions::count_by_state(&conn, store::now_ms())?;
        Ok(st.metrics.render(&counts))
    })
    .await
    .unwrap_or_else(|e| Err(Error::internal(e)));
    match out {
        Ok(text) => response(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            text.into_bytes(),
        ),
        Err(e) => error_response(e.code.http_status(), &e),
    }
}
