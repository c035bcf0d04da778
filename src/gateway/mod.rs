//! The built-in proxy gateway (`gateway_listen`, off by default): bots point
//! at proxyplane as their proxy and get their account's sticky upstream.
//! HTTP `CONNECT`, absolute-form plain HTTP and SOCKS5 (RFC 1928 with
//! RFC 1929 username/password) share one port, told apart by the first
//! byte (`wire::sniff`). The login is `<pool>.<account>` with an API key as
//! the password (`wire::parse_login`); the key is checked and the account
//! resolved by `engine` on the API's bounded workers, and the tunnel opened
//! through the upstream by `upstream`. Nothing reaches a target before the
//! login is checked, and nothing reaches it except through the upstream.
//!
//! Plain HTTP to an HTTP upstream is forwarded in absolute form with the
//! upstream's credentials (`upstream::forward`); everything else goes
//! through a tunnel the upstream opens (`upstream::tunnel`).
//!
//! Health from traffic: an upstream that cannot be reached, times out, or
//! answers a tunnel with 407/5xx (a forwarded request: 407, or closes before
//! answering) is reported failed, an established tunnel succeeded, both
//! through ReportSessionResult's rule. When an attempt fails before the bot
//! has any answer, the account is resolved again and, if policy moved it
//! (pinned accounts never move), the new session is tried once.

mod engine;
mod upstream;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::ctx::State;
use crate::error::{Code, Error};
use crate::log::{info, warn};

use engine::{Caller, Upstream};
use upstream::Fail;
use wire::Protocol;

/// Resolves once `stop` is true (or its sender is gone); holds no borrow
/// of the channel across an await, so the accept loop stays `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        // The sender is gone: the server is stopping anyway.
    }
}

/// Accepts gateway connections until `stop` turns true, then lets open
/// tunnels drain for `shutdown_timeout_seconds` and closes the rest.
pub async fn serve(
    state: Arc<State>,
    listener: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => {
            warn!("gateway: cannot use its listener: {e}");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(state.config.gateway_max_tunnels));
    let mut conns = JoinSet::new();
    loop {
        // At the cap, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let st = state.clone();
        conns.spawn(async move {
            st.metrics.gateway.open.fetch_add(1, Relaxed);
            connection(&st, stream, peer).await;
            st.metrics.gateway.open.fetch_sub(1, Relaxed);
            drop(permit);
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let grace = Duration::from_secs(state.config.shutdown_timeout_seconds);
    info!(
        "gateway: no new connections; letting {} open tunnels drain",
        conns.len()
    );
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(
            "gateway: {} tunnels still open after {grace:?}; closing them",
            conns.len()
        );
        conns.abort_all();
    }
}

async fn connection(state: &Arc<State>, stream: TcpStream, peer: SocketAddr) {
    stream.set_nodelay(true).ok();
    let header_timeout = Duration::from_secs(state.config.header_read_timeout_seconds);
    let mut first = [0u8; 1];
    match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    match wire::sniff(first[0]) {
        Protocol::Socks5 => socks5(state, stream, peer.ip()).await,
        Protocol::Http => http(state, stream, peer.ip()).await,
        Protocol::Unknown => state.metrics.gateway.failed("bad_request"),
    }
}

/// Runs a synchronous step on the API's bounded workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Where a bot's connection goes: a tunnel to `host:port`, or (`plain`)
/// its plain-HTTP request and the body bytes read with the head.
struct Target<'a> {
    host: &'a str,
    port: u16,
    plain: Option<(&'a wire::Head<'a>, &'a [u8])>,
}

/// What an attempt through one upstream gave.
enum Opened {
    /// A tunnel to the target, and bytes the upstream sent after its answer.
    Tunnel(TcpStream, Vec<u8>),
    /// A plain-HTTP request forwarded to an HTTP upstream (already sent),
    /// and the upstream's answer so far, for the bot.
    Forwarded(TcpStream, Vec<u8>),
}

/// One attempt through `up`: plain HTTP to an HTTP upstream is forwarded
/// in absolute form; everything else goes through a tunnel.
async fn attempt(state: &State, up: &Upstream, t: &Target<'_>) -> Result<Opened, Fail> {
    let connect = Duration::from_secs(state.config.gateway_connect_timeout_seconds);
    match t.plain {
        Some((head, body)) if up.scheme == "http" => {
            let answer = (!wire::body_remains(head, body.len()))
                .then(|| Duration::from_secs(state.config.gateway_idle_timeout_seconds));
            let request = upstream::forward_request(head, up, body);
            let (s, a) = upstream::forward(up, &request, connect, answer).await?;
            Ok(Opened::Forwarded(s, a))
        }
        _ => {
            let (s, early) = upstream::tunnel(up, t.host, t.port, connect).await?;
            Ok(Opened::Tunnel(s, early))
        }
    }
}

/// Resolves the account, tries its upstream, and on a failure that counts
/// against the session reports it and tries once more if policy moved the
/// account; reports the success of an established tunnel (or a forwarded
/// request the upstream took).
async fn open(
    state: &Arc<State>,
    caller: Caller,
    account: &str,
    target: &Target<'_>,
) -> Result<(Opened, Upstream), Refusal> {
    let mut tried: Option<Vec<u8>> = None;
    loop {
        let up = blocking(|| engine::resolve(state, caller, account)).map_err(Refusal::Resolve)?;
        if tried.as_ref() == Some(&up.session_id) {
            // Policy kept the account where it was (pinned, or nowhere to go).
            return Err(Refusal::Upstream(Fail::Upstream(
                "the account's upstream proxy failed and policy keeps the account on it".into(),
            )));
        }
        match attempt(state, &up, target).await {
            Ok(opened) => {
                state.metrics.gateway.established.fetch_add(1, Relaxed);
                let ok = blocking(|| {
                    engine::report(state, caller, &up.session_id, true, "gateway tunnel")
                });
                if let Err(e) = ok {
                    warn!(
                        "gateway: could not record a tunnel's success: {}",
                        e.message
                    );
                }
                return Ok((opened, up));
            }
            Err(f) => {
                state.metrics.gateway.failed(f.reason());
                if !f.counts_against_session() {
                    return Err(Refusal::Upstream(f));
                }
                let reason = f.message();
                let r = blocking(|| engine::report(state, caller, &up.session_id, false, &reason));
                if let Err(e) = r {
                    warn!(
                        "gateway: could not record a tunnel's failure: {}",
                        e.message
                    );
                }
                if tried.is_some() {
                    return Err(Refusal::Upstream(f));
                }
                tried = Some(up.session_id);
            }
        }
    }
}

/// Why a bot gets no tunnel.
enum Refusal {
    Login(Error),
    Resolve(Error),
    Upstream(Fail),
}

impl Refusal {
    /// The HTTP status and a sentence for the bot.
    fn http(&self) -> (u16, String) {
        match self {
            Refusal::Login(e) | Refusal::Resolve(e) => (status_of(e.code), e.message.clone()),
            Refusal::Upstream(Fail::Timeout) => (504, Fail::Timeout.message()),
            Refusal::Upstream(f) => (502, f.message()),
        }
    }
}

fn status_of(code: Code) -> u16 {
    match code {
        Code::Unauthenticated => 407,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::InvalidArgument => 400,
        Code::NotFound => 404,
        Code::FailedPrecondition | Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        _ => 500,
    }
}

/// Checks the login on the workers; a failure is counted.
fn check_login(
    state: &State,
    username: &str,
    key: &str,
    peer: IpAddr,
) -> Result<(Caller, String), Refusal> {
    let login = wire::parse_login(username).map_err(|m| {
        // A malformed login is a failed authentication for the IP bucket.
        match state.ip_limiter.take(peer) {
            Ok(()) => Refusal::Login(Error::new(
                Code::Unauthenticated,
                format!("Gateway login: {m}."),
            )),
            Err(secs) => Refusal::Login(state.metrics.rate_limited(secs)),
        }
    })?;
    let caller = engine::login(state, &login, key, peer).map_err(Refusal::Login)?;
    Ok((caller, login.account))
}

/// The bot's request head within the API's header limits (size, time),
/// and where it ends in `buf`; None once a refusal is sent.
async fn head_bytes(state: &State, stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let limit = state.config.max_header_bytes;
    let header_timeout = Duration::from_secs(state.config.header_read_timeout_seconds);
    let refusal =
        match tokio::time::timeout(header_timeout, read_request_head(stream, buf, limit)).await {
            Ok(Ok(end)) => return Some(end),
            Ok(Err(status)) => (status, "The request head is too large or malformed."),
            Err(_) => (408, "The request head did not arrive in time."),
        };
    state.metrics.gateway.failed("bad_request");
    reply(stream, refusal.0, refusal.1).await;
    None
}

async fn http(state: &Arc<State>, mut stream: TcpStream, peer: IpAddr) {
    let mut buf = Vec::with_capacity(1024);
    // The handshake's futures are boxed: their buffers and state are freed
    // once the tunnel is up, instead of being part of every connection's
    // task for its whole life (3 KB of each idle tunnel, BENCHMARKS.md).
    let Some(end) = Box::pin(head_bytes(state, &mut stream, &mut buf)).await else {
        return;
    };
    let rest = buf.split_off(end);
    let head = match wire::parse_head(&buf) {
        Ok(h) => h,
        Err(m) => {
            state.metrics.gateway.failed("bad_request");
            return reply(&mut stream, 400, m).await;
        }
    };
    let Some((user, key)) = head
        .header("proxy-authorization")
        .and_then(wire::basic_credentials)
    else {
        // No login: not counted as a failed one (clients send it after a 407).
        state.metrics.gateway.failed("login");
        return reply(
            &mut stream,
            407,
            "Proxy authentication required: <pool>.<account> and an API key.",
        )
        .await;
    };
    let connect = head.method.eq_ignore_ascii_case("CONNECT");
    let target = if connect {
        wire::authority(head.target, None).map(|(h, p)| (h, p, String::new()))
    } else {
        wire::absolute_http(head.target)
    };
    let Some((host, port, path)) = target else {
        state.metrics.gateway.failed("bad_request");
        return reply(
            &mut stream,
            400,
            "The request target must be host:port (CONNECT) or an absolute http:// URL.",
        )
        .await;
    };
    let (caller, account) = match blocking(|| check_login(state, &user, &key, peer)) {
        Ok(x) => x,
        Err(r) => {
            state.metrics.gateway.failed("login");
            let (code, msg) = r.http();
            return reply(&mut stream, code, &msg).await;
        }
    };
    let target = Target {
        host: &host,
        port,
        plain: (!connect).then_some((&head, rest.as_slice())),
    };
    let (opened, upstream) = match Box::pin(open(state, caller, &account, &target)).await {
        Ok(x) => x,
        Err(r) => {
            if matches!(r, Refusal::Resolve(_)) {
                state.metrics.gateway.failed("resolve");
            }
            let (code, msg) = r.http();
            return reply(&mut stream, code, &msg).await;
        }
    };
    let first = (!connect).then_some((&head, path.as_str()));
    let Some((stream, up)) = start(stream, opened, first, &rest).await else {
        return;
    };
    // Nothing of the request is needed any more: an idle tunnel keeps only
    // its two sockets (~2 KB less per tunnel held open).
    drop((head, rest, path, host, account));
    drop(buf);
    pipe(state, stream, up, upstream.pool_id.to_base64()).await;
}

/// The first bytes once an upstream took the connection: the CONNECT
/// answer or the plain request through a tunnel (`begin`), or a forwarded
/// request's answer so far. The two streams to pipe, or None once a side
/// is gone.
async fn start(
    mut stream: TcpStream,
    opened: Opened,
    first: Option<(&wire::Head<'_>, &str)>,
    rest: &[u8],
) -> Option<(TcpStream, TcpStream)> {
    let ok = match opened {
        Opened::Tunnel(mut up, early) => begin(&mut stream, &mut up, first, rest, &early)
            .await
            .then_some(up),
        // The request (and the body read with it) went out with the
        // attempt; the rest of a body, and the answer, are piped.
        Opened::Forwarded(up, answer) => {
            (answer.is_empty() || stream.write_all(&answer).await.is_ok()).then_some(up)
        }
    };
    ok.map(|up| (stream, up))
}

/// The first bytes once the tunnel is up: the CONNECT answer to the bot, or
/// (`plain`) the bot's plain-HTTP request rewritten into the tunnel; then
/// whatever either side sent early. False when a side is gone.
async fn begin(
    stream: &mut TcpStream,
    up: &mut TcpStream,
    plain: Option<(&wire::Head<'_>, &str)>,
    rest: &[u8],
    early: &[u8],
) -> bool {
    let first = match plain {
        None => {
            stream
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
        }
        Some((head, path)) => {
            // Plain HTTP through the tunnel: origin-form, the bot's login
            // and hop-by-hop headers dropped, one request per connection.
            let mut out = format!("{} {path} {}\r\n", head.method, head.version);
            for (n, v) in &head.headers {
                if !wire::hop_by_hop(n) {
                    out.push_str(&format!("{n}: {v}\r\n"));
                }
            }
            out.push_str("Connection: close\r\n\r\n");
            up.write_all(out.as_bytes()).await
        }
    };
    first.is_ok()
        && (rest.is_empty() || up.write_all(rest).await.is_ok())
        && (early.is_empty() || stream.write_all(early).await.is_ok())
}

/// Reads until the end of the head; Err(status) when too large.
async fn read_request_head(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, u16> {
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = wire::head_end(buf) {
            if end > limit {
                return Err(431);
            }
            return Ok(end);
        }
        if buf.len() > limit {
            return Err(431);
        }
    }
}

async fn reply(s: &mut TcpStream, status: u16, message: &str) {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Internal Server Error",
    };
    let challenge = if status == 407 {
        "Proxy-Authenticate: Basic realm=\"proxyplane\"\r\n"
    } else {
        ""
    };
    let body = format!("{message}\n");
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\n{challenge}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(text.as_bytes()).await.ok();
    s.shutdown().await.ok();
}

async fn socks5(state: &Arc<State>, mut stream: TcpStream, peer: IpAddr) {
    let header_timeout = Duration::from_secs(state.config.header_read_timeout_seconds);
    let login = match tokio::time::timeout(header_timeout, socks5_login(&mut stream)).await {
        Ok(Ok(x)) => x,
        _ => {
            state.metrics.gateway.failed("bad_request");
            return;
        }
    };
    let (user, key) = login;
    let (caller, account) = match blocking(|| check_login(state, &user, &key, peer)) {
        Ok(x) => x,
        Err(_) => {
            state.metrics.gateway.failed("login");
            stream.write_all(&[1, 1]).await.ok();
            return;
        }
    };
    if stream.write_all(&[1, 0]).await.is_err() {
        return;
    }
    let target = match tokio::time::timeout(header_timeout, socks5_request(&mut stream)).await {
        Ok(Ok(Some(t))) => t,
        Ok(Ok(None)) => {
            state.metrics.gateway.failed("bad_request");
            // Command not supported: only CONNECT is.
            stream.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await.ok();
            return;
        }
        _ => {
            state.metrics.gateway.failed("bad_request");
            return;
        }
    };
    let (host, port) = target;
    let target = Target {
        host: &host,
        port,
        plain: None,
    };
    match Box::pin(open(state, caller, &account, &target)).await {
        // Without `plain`, every attempt is a tunnel.
        Ok((Opened::Tunnel(up, early), upstream))
        | Ok((Opened::Forwarded(up, early), upstream)) => {
            if stream
                .write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
                .await
                .is_err()
            {
                return;
            }
            if !early.is_empty() && stream.write_all(&early).await.is_err() {
                return;
            }
            pipe(state, stream, up, upstream.pool_id.to_base64()).await;
        }
        Err(r) => {
            let rep = match &r {
                Refusal::Login(_) => 2,
                Refusal::Resolve(e) if e.code == Code::PermissionDenied => 2,
                Refusal::Resolve(_) => 1,
                Refusal::Upstream(Fail::Timeout) => 6,
                Refusal::Upstream(_) => 4,
            };
            if matches!(r, Refusal::Resolve(_)) {
                state.metrics.gateway.failed("resolve");
            }
            stream
                .write_all(&[5, rep, 0, 1, 0, 0, 0, 0, 0, 0])
                .await
                .ok();
        }
    }
}

/// The SOCKS5 greeting and RFC 1929 sub-negotiation: (username, password).
/// Only username/password is offered: never an open proxy.
async fn socks5_login(s: &mut TcpStream) -> std::io::Result<(String, String)> {
    let mut two = [0u8; 2];
    s.read_exact(&mut two).await?;
    let mut methods = vec![0u8; two[1] as usize];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&2) {
        s.write_all(&[5, 0xff]).await?;
        return Err(std::io::ErrorKind::PermissionDenied.into());
    }
    s.write_all(&[5, 2]).await?;
    s.read_exact(&mut two).await?;
    if two[0] != 1 {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let mut user = vec![0u8; two[1] as usize];
    s.read_exact(&mut user).await?;
    let mut len = [0u8; 1];
    s.read_exact(&mut len).await?;
    let mut pass = vec![0u8; len[0] as usize];
    s.read_exact(&mut pass).await?;
    Ok((
        String::from_utf8_lossy(&user).into_owned(),
        String::from_utf8_lossy(&pass).into_owned(),
    ))
}

/// The SOCKS5 request: Some((host, port)) for CONNECT, None for others.
async fn socks5_request(s: &mut TcpStream) -> std::io::Result<Option<(String, u16)>> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    let host = match head[3] {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        4 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await?;
            std::net::Ipv6Addr::from(a).to_string()
        }
        3 => {
            let mut l = [0u8; 1];
            s.read_exact(&mut l).await?;
            let mut h = vec![0u8; l[0] as usize];
            s.read_exact(&mut h).await?;
            String::from_utf8(h).map_err(|_| std::io::ErrorKind::InvalidData)?
        }
        _ => return Err(std::io::ErrorKind::InvalidData.into()),
    };
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await?;
    if head[0] != 5 || head[1] != 1 {
        return Ok(None);
    }
    Ok(Some((host, u16::from_be_bytes(port))))
}

/// Copies both ways until both sides are done or nothing moved for the
/// idle timeout; the bytes are added to the pool's counters at the end.
/// Buffers are taken only while data is in hand, so an idle tunnel holds
/// no copy buffer.
async fn pipe(state: &Arc<State>, a: TcpStream, b: TcpStream, pool: String) {
    let idle = Duration::from_secs(state.config.gateway_idle_timeout_seconds);
    let last = std::sync::Mutex::new(Instant::now());
    let (sent, received) = (AtomicU64::new(0), AtomicU64::new(0));
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let up = copy(ar, bw, &last, &sent);
    let down = copy(br, aw, &last, &received);
    let both = async { tokio::join!(up, down) };
    tokio::pin!(both);
    loop {
        tokio::select! {
            _ = &mut both => break,
            _ = tokio::time::sleep(idle / 4 + Duration::from_millis(1)) => {
                let quiet = last.lock().map(|t| t.elapsed()).unwrap_or_default();
                if quiet >= idle {
                    break;
                }
            }
        }
    }
    state
        .metrics
        .gateway
        .add_bytes(pool, sent.load(Relaxed), received.load(Relaxed));
}

async fn copy(
    from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    last: &std::sync::Mutex<Instant>,
    total: &AtomicU64,
) {
    loop {
        if from.readable().await.is_err() {
            break;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let n = match from.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total.fetch_add(n as u64, Relaxed);
        if let Ok(mut t) = last.lock() {
            *t = Instant::now();
        }
    }
    to.shutdown().await.ok();
}
