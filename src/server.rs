//! The HTTP edge: a hyper 1 listener on a small tokio runtime with limits on
//! connections, header size and time, body size and time, idle keep-alive,
//! and graceful shutdown. Handlers are plain synchronous functions, run under
//! `block_in_place` with at most one async worker per core plus `workers`
//! blocking threads; only this file is async.
//!
//! Connections: at start-up the open-file limit is raised to its hard limit
//! and the connection cap sized from it (`max_connections = 0`). At the cap
//! the server keeps accepting and closes the least recently used connection
//! that is at rest (idle keep-alive, or never sent a byte) to make room;
//! only when every connection has a request in flight does a new one wait
//! (in the kernel's backlog) until a request finishes. A body refused
//! unread is drained for a bounded time after the refusal, so clients that
//! write their whole request before reading still get the error.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method as Verb, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::connect::{self, Call, Headers, Reject};
use crate::ctx::State;
use crate::error::{Code, Error};
use crate::log::{info, warn};
use crate::metrics::Metrics;
use crate::rpc::{self, METHODS};
use crate::store;

type Resp = Response<Full<Bytes>>;

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// Builds the runtime and serves until SIGTERM/SIGINT, then drains.
/// `ready` runs once the server would shut down gracefully on SIGTERM or
/// SIGINT (handlers installed, limits raised): `serve` prints its
/// "listening on" line there, so a supervisor that stops the server right
/// after that line never kills it mid-start.
pub fn run(
    state: Arc<State>,
    listener: std::net::TcpListener,
    gateway: Option<std::net::TcpListener>,
    ready: impl FnOnce(),
) -> Result<(), String> {
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
    let nofile = raise_open_file_limit();
    let cap = connection_cap(state.config.max_connections, nofile, state.config.workers);
    let nofile_text = nofile.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    let spare = nofile.map(|n| n.saturating_sub(fd_reserve(state.config.workers) as u64));
    if state.config.max_connections > 0 && spare.is_some_and(|f| cap as u64 > f) {
        warn!(
            "max_connections {cap} is more than the open-file limit ({nofile_text}) leaves room for; \
             accepting may fail with \"too many open files\" (raise LimitNOFILE, or set max_connections = 0)"
        );
    }
    info!("serving at most {cap} connections at once (open-file limit {nofile_text})");
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        let _runtime = rt.enter();
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => {
                warn!("cannot install signal handlers; SIGTERM will not drain requests");
                None
            }
        }
    };
    ready();
    let result = rt.block_on(serve(state.clone(), listener, gateway, cap, signals));
    rt.shutdown_timeout(Duration::from_secs(
        state.config.shutdown_timeout_seconds.max(1),
    ));
    result
}

type Signals = (tokio::signal::unix::Signal, tokio::signal::unix::Signal);

async fn shutdown_signal(signals: Option<Signals>) {
    let Some((mut term, mut int)) = signals else {
        // Without signal handlers we cannot shut down gracefully; serve on.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Raises the soft open-file limit to the hard limit, as Go's runtime does:
/// the soft default (often 1024) is a relic of `select(2)`, and every
/// connection is a file. Returns the limit now in force (None: unlimited).
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    match (lim.current, lim.maximum) {
        (Some(cur), max) if max.is_none_or(|m| m > cur) => {
            let want = Rlimit {
                current: max,
                maximum: max,
            };
            match setrlimit(Resource::Nofile, want) {
                Ok(()) => max,
                Err(e) => {
                    warn!("cannot raise the open-file limit from {cur}: {e}");
                    Some(cur)
                }
            }
        }
        (cur, _) => cur,
    }
}

/// The most connections `max_connections = 0` allows: three quarters of the
/// open files left after a reserve for the database pool (a database, WAL
/// and shared-memory file per pooled connection), the listener, stdio and
/// logs. The quarter kept back covers connections still closing after
/// being shed, the one held while the server is full, and accept itself.
/// At most 65,536: past that, memory (a read buffer of up to
/// `max_header_bytes` each) matters more than files.
fn auto_cap(nofile: Option<u64>, workers: usize) -> usize {
    const MOST: usize = 65_536;
    const LEAST: usize = 16;
    let files = nofile.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    (files.saturating_sub(fd_reserve(workers)) / 4 * 3).clamp(LEAST, MOST)
}

/// Files kept for other than connections: three per pooled database
/// connection (`workers + 2` of them) and 64 for the rest.
fn fd_reserve(workers: usize) -> usize {
    64 + 3 * (workers + 2)
}

/// The connection cap: `max_connections` when set, else sized from the
/// open-file limit (see `auto_cap`).
fn connection_cap(configured: usize, nofile: Option<u64>, workers: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        auto_cap(nofile, workers)
    }
}

/// Logs at most once per period, counting what it did not log.
struct Every {
    period: Duration,
    last: Option<Instant>,
    count: u64,
}

impl Every {
    fn new(period: Duration) -> Every {
        Every {
            period,
            last: None,
            count: 0,
        }
    }
    /// Counts an event; Some(events since the last log) when it is time to log.
    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        if self.last.is_some_and(|t| t.elapsed() < self.period) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.count))
    }
}

/// Rate-limited log lines of the accept loop.
struct AcceptLogs {
    shed: Every,
    full: Every,
    failed: Every,
}

async fn serve(
    state: Arc<State>,
    listener: std::net::TcpListener,
    gateway: Option<std::net::TcpListener>,
    cap: usize,
    signals: Option<Signals>,
) -> Result<(), String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?;
    let registry = Arc::new(Registry::new(cap));
    let (stop_tx, stop_rx) = watch::channel(false);
    // The proxy gateway shares the runtime, the workers and the shutdown.
    let gateway =
        gateway.map(|l| tokio::spawn(crate::gateway::serve(state.clone(), l, stop_rx.clone())));
    let mut conns = JoinSet::new();
    let mut signal = pin!(shutdown_signal(signals));
    let every = || Every::new(Duration::from_secs(10));
    let mut logs = AcceptLogs {
        shed: every(),
        full: every(),
        failed: every(),
    };
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    accept_failed(&e, &registry, &mut logs, &state.metrics).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        if !make_room(&registry, &mut logs, &state.metrics, &mut signal).await {
            break;
        }
        let slot = registry.register();
        conns.spawn(connection(
            state.clone(),
            stream,
            peer,
            stop_rx.clone(),
            registry.clone(),
            slot,
        ));
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    drain(&state, conns, stop_tx).await;
    if let Some(g) = gateway {
        g.await.ok();
    }
    Ok(())
}

/// Out of file descriptors and the like: back off, keep serving; when out
/// of files, close an idle connection so the next accept can succeed.
async fn accept_failed(
    e: &std::io::Error,
    registry: &Registry,
    logs: &mut AcceptLogs,
    metrics: &Metrics,
) {
    let out_of_files = [rustix::io::Errno::MFILE, rustix::io::Errno::NFILE]
        .iter()
        .any(|n| e.raw_os_error() == Some(n.raw_os_error()));
    let shed = out_of_files && registry.shed_for_a_file();
    if shed {
        metrics.shed_connections.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(n) = logs.failed.note() {
        warn!(
            "accept failed ({n} time(s) since the last report): {e}{}",
            if shed {
                "; closed an idle connection"
            } else {
                ""
            }
        );
    }
    // Once the shed connection has closed (its file is free), or after a
    // pause.
    let pause = Duration::from_millis(50);
    if shed {
        tokio::time::timeout(pause, registry.changed.notified())
            .await
            .ok();
    } else {
        tokio::time::sleep(pause).await;
    }
}

/// Accepting never stops at the cap (that would leave new clients in the
/// kernel's backlog behind connections that do nothing): make room by
/// closing a connection at rest, or, when every connection has a request in
/// flight, hold this one until a request finishes. False when a shutdown
/// signal came first.
async fn make_room(
    registry: &Registry,
    logs: &mut AcceptLogs,
    metrics: &Metrics,
    signal: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> bool {
    let cap = registry.cap;
    loop {
        match registry.admit() {
            Admit::Room => return true,
            Admit::Shed => {
                metrics.shed_connections.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = logs.shed.note() {
                    warn!(
                        "connection cap ({cap}) reached: closed {n} idle connection(s) to admit new ones"
                    );
                }
                return true;
            }
            Admit::Full => {
                if logs.full.note().is_some() {
                    warn!(
                        "connection cap ({cap}) reached with a request in flight on every connection; \
                         new connections wait until one finishes"
                    );
                }
                tokio::select! {
                    _ = registry.changed.notified() => {}
                    // Belt and braces: look again even without a wake-up.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = &mut *signal => return false,
                }
            }
        }
    }
}

/// Graceful shutdown: no new requests on open connections, those in flight
/// finish within the grace period, the rest are closed.
async fn drain(state: &State, mut conns: JoinSet<()>, stop_tx: watch::Sender<bool>) {
    info!(
        "shutting down: no new connections; finishing {} open ones",
        conns.len()
    );
    state.shutting_down.store(true, Ordering::SeqCst);
    stop_tx.send(true).ok();
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
}

/// What the accept loop may do with a new connection.
enum Admit {
    /// Under the cap.
    Room,
    /// At the cap; a connection at rest was told to close to make room.
    Shed,
    /// At the cap and every connection has a request in flight.
    Full,
}

/// The open connections, for the cap and for choosing one to shed.
struct Registry {
    cap: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<Open>,
    /// Signalled when a connection closes or a request finishes: the accept
    /// loop, when full, waits for it.
    changed: Notify,
}

#[derive(Default)]
struct Open {
    slots: HashMap<u64, Arc<Slot>>,
    /// How many of `slots` were told to close and have not yet: they no
    /// longer count against the cap.
    shedding: usize,
}

impl Registry {
    fn new(cap: usize) -> Registry {
        Registry {
            cap,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(Open::default()),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // A panic while holding this lock leaves the map consistent (every
        // change is one insert or remove); keep serving.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(&self) -> Admit {
        let mut open = self.lock();
        if open.slots.len() - open.shedding < self.cap {
            Admit::Room
        } else if Self::shed_one(&mut open) {
            Admit::Shed
        } else {
            Admit::Full
        }
    }

    /// Out of files below the cap (an explicit `max_connections` above
    /// what the open-file limit allows): free one by shedding, if any
    /// connection is at rest.
    fn shed_for_a_file(&self) -> bool {
        Self::shed_one(&mut self.lock())
    }

    /// Tells the least recently used connection at rest (the one idle
    /// longest; a silent connection is idle since it was accepted) to close.
    fn shed_one(open: &mut Open) -> bool {
        let victim = open
            .slots
            .values()
            .filter(|s| !s.shedding.load(Ordering::Acquire) && s.at_rest())
            .min_by_key(|s| (s.rest_since_ms.load(Ordering::Acquire), s.id))
            .cloned();
        let Some(v) = victim else { return false };
        v.shedding.store(true, Ordering::Release);
        v.shed.notify_one();
        open.shedding += 1;
        true
    }

    fn register(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            reads: AtomicU64::new(0),
            reads_at_rest: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            rest_since_ms: AtomicU64::new(self.now_ms()),
            shedding: AtomicBool::new(false),
            shed: Notify::new(),
            linger: AtomicBool::new(false),
        });
        self.lock().slots.insert(slot.id, slot.clone());
        slot
    }

    fn unregister(&self, slot: &Slot) {
        {
            let mut open = self.lock();
            if open.slots.remove(&slot.id).is_some() && slot.shedding.load(Ordering::Acquire) {
                open.shedding -= 1;
            }
        }
        self.changed.notify_one();
    }

    /// A request's response is ready: the connection is at rest again.
    fn came_to_rest(&self, slot: &Slot) {
        slot.rest_since_ms.store(self.now_ms(), Ordering::Release);
        slot.reads_at_rest
            .store(slot.reads.load(Ordering::Acquire), Ordering::Release);
        slot.inflight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// How long the connection has been at rest; None while it is not.
    fn idle_for(&self, slot: &Slot) -> Option<Duration> {
        slot.at_rest().then(|| {
            Duration::from_millis(
                self.now_ms()
                    .saturating_sub(slot.rest_since_ms.load(Ordering::Acquire)),
            )
        })
    }
}

/// One connection's state, shared by its task, its reads and the registry.
struct Slot {
    id: u64,
    /// Reads that brought bytes, and how many of them there had been when
    /// the last response was ready: equal means no request is arriving.
    reads: AtomicU64,
    reads_at_rest: AtomicU64,
    /// Requests whose handler is running (hyper serves one at a time).
    inflight: AtomicUsize,
    /// When the connection was accepted or last answered (registry ms).
    rest_since_ms: AtomicU64,
    shedding: AtomicBool,
    /// Tells the connection's task to close once it is at rest.
    shed: Notify,
    /// A request was refused before its body was read: drain what the
    /// client still sends before closing.
    linger: AtomicBool,
}

impl Slot {
    /// At rest: no request in flight and no byte of a next one read, i.e.
    /// an idle keep-alive connection or one that never sent a byte.
    fn at_rest(&self) -> bool {
        self.inflight.load(Ordering::Acquire) == 0
            && self.reads.load(Ordering::Acquire) == self.reads_at_rest.load(Ordering::Acquire)
    }
}

/// The socket, counting the reads that bring bytes (so a connection whose
/// request head is arriving is never taken for an idle one).
struct Tracked {
    stream: tokio::net::TcpStream,
    slot: Arc<Slot>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.slot.reads.fetch_add(1, Ordering::AcqRel);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// After refusing a body unread, how long and how much of it to drain so a
/// client that writes its whole request before reading (Python's urllib,
/// many scripts) can finish writing and read the refusal. Closing at once
/// would reset the connection under its write (EPIPE/ECONNRESET) and the
/// error would never be read.
const LINGER_TIME: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 16 << 20;

/// Closes the write side (the client reads the answer, then EOF) and
/// discards what the client still sends, until it closes or the time or
/// byte budget is spent.
async fn linger(stream: &mut Tracked) {
    close_write(stream).await;
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut buf = vec![0u8; 64 * 1024];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        let read = std::future::poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut buf);
            Pin::new(&mut stream.stream)
                .poll_read(cx, &mut rb)
                .map_ok(|()| rb.filled().len())
        });
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// Sends FIN (hyper was told not to: the socket may still be drained).
async fn close_write(stream: &mut Tracked) {
    std::future::poll_fn(|cx| Pin::new(&mut stream.stream).poll_shutdown(cx))
        .await
        .ok();
}

type Handled = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

async fn connection(
    state: Arc<State>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    registry: Arc<Registry>,
    slot: Arc<Slot>,
) {
    stream.set_nodelay(true).ok();
    state
        .metrics
        .open_connections
        .fetch_add(1, Ordering::Relaxed);
    let cfg = &state.config;
    let idle = Duration::from_secs(cfg.idle_timeout_seconds);
    let svc = {
        let (state, registry, slot) = (state.clone(), registry.clone(), slot.clone());
        service_fn(move |req: Request<Incoming>| -> Handled {
            let (state, registry, slot) = (state.clone(), registry.clone(), slot.clone());
            // Boxed so the connection can be run without hyper shutting the
            // socket (poll_without_shutdown needs an Unpin future): after a
            // refusal the socket is wanted back to drain it.
            Box::pin(async move {
                slot.inflight.fetch_add(1, Ordering::AcqRel);
                let has_body = !req.body().is_end_stream();
                let resp = route(&state, req, peer.ip()).await;
                if has_body
                    && resp
                        .headers()
                        .get(header::CONNECTION)
                        .is_some_and(|v| v == "close")
                {
                    slot.linger.store(true, Ordering::Release);
                }
                registry.came_to_rest(&slot);
                Ok::<_, Infallible>(resp)
            })
        })
    };
    let io = Tracked {
        stream,
        slot: slot.clone(),
    };
    let mut conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(Duration::from_secs(cfg.header_read_timeout_seconds)))
        .max_buf_size(cfg.max_header_bytes)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    let mut tick = tokio::time::interval(Duration::from_millis(500).min(idle));
    let mut closing = *stop.borrow();
    if closing {
        Pin::new(&mut conn).graceful_shutdown();
    }
    loop {
        tokio::select! {
            _ = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break,
            r = stop.changed(), if !closing => {
                if r.is_err() || *stop.borrow() {
                    closing = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
            // Shed to make room for a new connection. hyper closes at once
            // if the connection is at rest, or after the response if a
            // request slipped in meanwhile.
            _ = slot.shed.notified(), if !closing => {
                closing = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            _ = tick.tick(), if !closing => {
                if registry.idle_for(&slot).is_some_and(|d| d >= idle) {
                    closing = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        }
    }
    let mut io = conn.into_parts().io.into_inner();
    if slot.linger.load(Ordering::Acquire) {
        // Draining counts as a request in flight: never shed, and it holds
        // its place under the cap (it is bounded by LINGER_TIME).
        slot.inflight.fetch_add(1, Ordering::AcqRel);
        linger(&mut io).await;
    } else {
        close_write(&mut io).await;
    }
    drop(io);
    registry.unregister(&slot);
    state
        .metrics
        .open_connections
        .fetch_sub(1, Ordering::Relaxed);
}

fn header(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The headers the Connect layer reads, in one pass over the map (the first
/// value of each, as `HeaderMap::get` gives): six lookups by name hashed
/// each name, ~1.5k instructions of every request.
fn headers(h: &HeaderMap) -> Headers<'_> {
    let mut out = Found::default();
    for (name, value) in h {
        let slot = if name == header::CONTENT_TYPE {
            &mut out.content_type
        } else if name == header::AUTHORIZATION {
            &mut out.authorization
        } else if name == header::CONTENT_ENCODING {
            &mut out.content_encoding
        } else if name == header::ACCEPT_ENCODING {
            &mut out.accept_encoding
        } else if name.as_str() == "connect-timeout-ms" {
            &mut out.timeout_ms
        } else if name.as_str() == "connect-protocol-version" {
            &mut out.protocol_version
        } else {
            continue;
        };
        if slot.is_none() {
            *slot = Some(value.to_str().ok());
        }
    }
    Headers {
        content_type: out.content_type.flatten(),
        content_encoding: out.content_encoding.flatten(),
        accept_encoding: out.accept_encoding.flatten(),
        timeout_ms: out.timeout_ms.flatten(),
        protocol_version: out.protocol_version.flatten(),
        authorization: out.authorization.flatten(),
    }
}

/// `Headers` while it is being filled: Some(None) is a first value that is
/// not text, which hides later ones as `HeaderMap::get` does.
#[derive(Default)]
struct Found<'a> {
    content_type: Option<Option<&'a str>>,
    content_encoding: Option<Option<&'a str>>,
    accept_encoding: Option<Option<&'a str>>,
    timeout_ms: Option<Option<&'a str>>,
    protocol_version: Option<Option<&'a str>>,
    authorization: Option<Option<&'a str>>,
}

fn response(status: u16, content_type: &'static str, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
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
    let path = req.uri().path();
    match path {
        "/healthz" => return healthz(state).await,
        "/metrics" => return metrics(state, &req, peer).await,
        // Other verbs fall through: a POST to / is an unknown method (404),
        // as for any path that is no method.
        p if state.config.dashboard
            && matches!(*req.method(), Verb::GET | Verb::HEAD)
            && crate::dashboard::owns(p) =>
        {
            return dashboard(&req)
        }
        _ => {}
    }
    if state.shutting_down.load(Ordering::Relaxed) {
        // A request that arrives on a kept-alive connection after SIGTERM.
        let e = Error::unavailable("The server is shutting down; retry on a new connection.");
        return closing(error_response(503, &e));
    }
    let Some(index) = rpc::lookup(path) else {
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
    let (call, body) = match read_call(state, method, req).await {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let st = state.clone();
    let codec = call.codec;
    let result = tokio::task::block_in_place(move || {
        // A panicking handler is a 500 for its request, not a dropped
        // connection or a dead worker.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            connect::unary(&st, method, &call, &body, peer)
        }))
        .unwrap_or_else(|_| Err(Error::internal("handler panicked")))
    });
    answer(method, codec.content_type(), result)
}

/// The call's protocol parameters and its (still compressed) body, or the
/// refusal to send (the connection is closed after it: an unread body must
/// not be taken for the next request).
async fn read_call(
    state: &State,
    method: &rpc::Method,
    req: Request<Incoming>,
) -> Result<(Call, Vec<u8>), (Resp, Option<Code>)> {
    let reject = |r: Reject| {
        let code = r.error.code;
        (closing(error_response(r.status, &r.error)), Some(code))
    };
    let now = Instant::now();
    match *req.method() {
        Verb::POST => read_post(state, req, now).await.map_err(reject),
        Verb::GET if method.read_only => {
            let query = req.uri().query().unwrap_or("");
            connect::parse_get(query, &headers(req.headers()), now).map_err(reject)
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
            Err((r, Some(Code::Unimplemented)))
        }
    }
}

/// A POST's body, within the size limit and the body timeout.
async fn read_post(
    state: &State,
    req: Request<Incoming>,
    now: Instant,
) -> Result<(Call, Vec<u8>), Reject> {
    let call = connect::parse_post(&headers(req.headers()), now)?;
    let limit = state.config.max_body_bytes;
    let declared =
        header(req.headers(), header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(connect::too_large(limit).into());
    }
    let read = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(
        Duration::from_secs(state.config.body_read_timeout_seconds),
        read,
    )
    .await
    {
        Ok(Ok(b)) => Ok((call, Vec::from(b.to_bytes()))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(connect::too_large(limit).into())
        }
        Ok(Err(_)) => Err(Error::invalid("The request body could not be read.").into()),
        Err(_) => Err(Error::new(
            Code::DeadlineExceeded,
            "The request body did not arrive in time.",
        )
        .into()),
    }
}

/// The HTTP response for a call's outcome; causes of errors are logged
/// with a request id, never sent.
fn answer(
    method: &rpc::Method,
    content_type: &'static str,
    result: Result<connect::Reply, Error>,
) -> (Resp, Option<Code>) {
    match result {
        Ok(reply) => {
            let mut r = response(200, content_type, reply.body);
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
                    crate::log::error!("request {id} {}: {cause}", method.name);
                } else {
                    warn!("request {id} {}: {cause}", method.name);
                }
            }
            (error_response(e.code.http_status(), &e), Some(e.code))
        }
    }
}

/// A file of the web dashboard (GET or HEAD), with its security headers;
/// a path under /assets/ that is no file is a plain 404.
fn dashboard(req: &Request<Incoming>) -> Resp {
    use crate::dashboard::{find, gzipped, SECURITY_HEADERS};
    // hyper sends a HEAD answer's headers (with the GET's length) only.
    let mut r = if let Some(asset) = find(req.uri().path()) {
        let gz = gzipped(asset)
            .filter(|_| connect::accepts_gzip(header(req.headers(), header::ACCEPT_ENCODING)));
        let mut r = response(200, asset.content_type, gz.unwrap_or(asset.body).to_vec());
        if gz.is_some() {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        r
    } else {
        response(404, "text/plain; charset=utf-8", b"Not found.\n".to_vec())
    };
    for (name, value) in SECURITY_HEADERS {
        r.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    r
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

async fn metrics(state: &Arc<State>, req: &Request<Incoming>, peer: IpAddr) -> Resp {
    let authz = header(req.headers(), header::AUTHORIZATION).map(str::to_owned);
    let st = state.clone();
    let out = tokio::task::spawn_blocking(move || -> Result<String, Error> {
        if st.config.metrics_require_key {
            // The same checks and limits as every RPC; ADMIN keys only.
            let p = rpc::authenticate(&st, authz.as_deref(), peer)?;
            // No transaction of its own to confirm a cached key in.
            crate::auth::still_valid(&*st.db.get()?, &p, &st.key_cache)?;
            st.last_used.record(p.key_id, store::now_ms());
            if !p.is_admin() {
                return Err(Error::denied());
            }
        }
        let conn = st.db.get()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_in_one_pass_with_get_s_first_value_semantics() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/proto"),
        );
        h.append("Connect-Protocol-Version", HeaderValue::from_static("1"));
        h.append("connect-timeout-ms", HeaderValue::from_static("250"));
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer pp_x"),
        );
        // A first value that is not text hides a later one, as with get().
        h.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_bytes(b"gzip\xff").unwrap(),
        );
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let got = headers(&h);
        let by_get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(got.content_type, by_get("content-type"));
        assert_eq!(got.content_type, Some("application/json"));
        assert_eq!(got.protocol_version, Some("1"));
        assert_eq!(got.timeout_ms, Some("250"));
        assert_eq!(got.authorization, Some("Bearer pp_x"));
        assert_eq!(got.accept_encoding, by_get("accept-encoding"));
        assert_eq!(got.accept_encoding, None);
        assert_eq!(got.content_encoding, None);
    }

    #[test]
    fn an_explicit_connection_cap_is_kept() {
        assert_eq!(connection_cap(2, Some(1024), 8), 2);
        assert_eq!(connection_cap(500_000, Some(1024), 8), 500_000);
    }

    #[test]
    fn the_automatic_cap_leaves_room_for_the_database_and_a_margin() {
        // 1024 files, 8 workers: 64 + 3 * 10 reserved, three quarters of the rest.
        assert_eq!(connection_cap(0, Some(1024), 8), (1024 - 94) / 4 * 3);
        let cap = connection_cap(0, Some(20_000), 8);
        assert!(cap < 20_000 - 94 && cap > 10_000, "{cap}");
        // Bounded by memory when files are plentiful, and never zero.
        assert_eq!(connection_cap(0, Some(1 << 20), 8), 65_536);
        assert_eq!(connection_cap(0, None, 8), 65_536);
        assert_eq!(connection_cap(0, Some(50), 8), 16);
    }

    #[test]
    fn rate_limited_logs_count_what_they_skipped() {
        let mut every = Every::new(Duration::from_secs(3600));
        assert_eq!(every.note(), Some(1));
        assert_eq!(every.note(), None);
        assert_eq!(every.note(), None);
        every.last = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(every.note(), Some(3));
    }

    #[test]
    fn at_the_cap_the_least_recently_used_connection_at_rest_is_shed() {
        let reg = Registry::new(3);
        let busy = reg.register();
        let recent = reg.register();
        let stale = reg.register();
        // A request head is arriving on the oldest connection: not at rest.
        busy.reads.fetch_add(1, Ordering::AcqRel);
        recent.rest_since_ms.store(2_000, Ordering::Release);
        stale.rest_since_ms.store(1_000, Ordering::Release);
        assert!(matches!(reg.admit(), Admit::Shed));
        assert!(stale.shedding.load(Ordering::Acquire));
        assert!(!recent.shedding.load(Ordering::Acquire));
        assert!(!busy.shedding.load(Ordering::Acquire));
        // The shed one no longer counts against the cap.
        let new = reg.register();
        new.inflight.fetch_add(1, Ordering::AcqRel);
        assert!(matches!(reg.admit(), Admit::Shed));
        assert!(recent.shedding.load(Ordering::Acquire));
        let newer = reg.register();
        newer.reads.fetch_add(1, Ordering::AcqRel);
        assert!(
            matches!(reg.admit(), Admit::Full),
            "every connection left has a request in flight"
        );
        // A request that finishes puts its connection at rest: sheddable.
        reg.came_to_rest(&new);
        assert!(matches!(reg.admit(), Admit::Shed));
        for s in [&stale, &recent, &new] {
            reg.unregister(s);
        }
        assert!(matches!(reg.admit(), Admit::Room));
    }
}
