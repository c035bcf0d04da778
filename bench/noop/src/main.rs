//! A no-op HTTP server: the ceiling proxyplane is compared against in
//! bench/peer.sh. It has proxyplane's edge (hyper 1 http1 over tokio, a
//! multi-thread runtime with one worker per core, TCP_NODELAY, keep-alive)
//! and does no work: every request's body is read in full (as proxyplane
//! must before decoding) and answered 200 with a fixed JSON body about the
//! size of a ResolveProxy answer.
//!
//!   noop-server [ADDR]      (default 127.0.0.1:0)
//!
//! Prints "listening on HOST:PORT" on stdout once bound, like proxyplane.
//! Stops on SIGTERM/SIGINT.

use std::convert::Infallible;
use std::io::Write;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Shaped like a ResolveProxy answer (an assignment plus a proxy) so the
/// bytes on the wire are comparable; the contents are fixed.
static BODY: &[u8] = br#"{"assignment":{"id":"AZq7y3nDcmKfV0m1Zb2kRg==","workspaceId":"AZq7y3m2dQyqN0m1Zb2kRg==","poolId":"AZq7y3m4eFCvS1m1Zb2kRg==","accountName":"acct-4242","sessionId":"AZq7y3nAc3mVf0m1Zb2kRg==","version":"1","createdAt":"2026-11-23T13:46:00.123456Z","updatedAt":"2026-11-23T13:46:00.123456Z"},"proxy":{"sessionId":"AZq7y3nAc3mVf0m1Zb2kRg==","scheme":"http","host":"gw.example.net","port":8000,"username":"gwuser-session-s0-4242","password":"gwpass","url":"http://gwuser-session-s0-4242:gwpass@gw.example.net:8000"}}"#;

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole body, as a real handler has to; a broken body is the
    // client's problem and still gets the fixed answer.
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .thread_name("noop-worker")
        .build()
        .expect("start-up: tokio runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .expect("start-up: bind");
        let local = listener.local_addr().expect("start-up: local_addr");
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {local}");
            let _ = out.flush();
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("start-up: SIGTERM handler");
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    // Out of descriptors and the like: keep serving.
                    Err(_) => continue,
                },
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    });
}
