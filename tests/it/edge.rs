//! The HTTP edge apart from the Connect methods: /healthz, /metrics, header
//! limits and timeouts, many keep-alive connections, and secrets at rest.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[test]
fn healthz_answers_ok_without_auth() {
    let s = Server::start();
    let r = s.get("/healthz", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text().trim(), "ok");
}

#[test]
fn metrics_count_requests_latency_rate_limits_and_connections() {
    let s = Server::start();
    let ws = s.create_workspace("metered");
    s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": ws }))
        .ok();
    s.rpc(
        "GetWorkspace",
        &s.admin,
        json!({ "workspaceId": random_id() }),
    )
    .assert_error(404, "not_found");
    s.rpc("GetWorkspace", "pp_nope", json!({ "workspaceId": ws }))
        .assert_error(401, "unauthenticated");
    let r = s.get("/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{:?}",
        r.header("content-type")
    );
    let m = r.text();
    for want in [
        "proxyplane_requests_total{method=\"GetWorkspace\",code=\"ok\"} 1\n",
        "proxyplane_requests_total{method=\"GetWorkspace\",code=\"not_found\"} 1\n",
        "proxyplane_requests_total{method=\"GetWorkspace\",code=\"unauthenticated\"} 1\n",
        "proxyplane_requests_total{method=\"CreateWorkspace\",code=\"ok\"} 1\n",
        "# TYPE proxyplane_request_duration_seconds histogram",
        "proxyplane_request_duration_seconds_bucket{method=\"GetWorkspace\",le=\"+Inf\"} 3\n",
        "proxyplane_request_duration_seconds_count{method=\"GetWorkspace\"} 3\n",
        "proxyplane_request_duration_seconds_sum{method=\"GetWorkspace\"}",
        "proxyplane_rate_limited_total ",
        "proxyplane_open_connections ",
    ] {
        assert!(m.contains(want), "metrics lack {want:?}:\n{m}");
    }
    // The open-connection gauge counts a connection we hold.
    let mut held = s.conn();
    held.request("GET", "/healthz", &[], b"").unwrap();
    let open: i64 = s
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix("proxyplane_open_connections "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        open >= 2,
        "open connections {open} with one held and one asking"
    );
    // No secret reaches the metrics.
    assert!(!m.contains(&s.admin));
}

#[test]
fn metrics_can_require_an_admin_key() {
    let s = Launch::default()
        .env("PROXYPLANE_METRICS_REQUIRE_KEY", "true")
        .start();
    s.get("/metrics", &[]).assert_error(401, "unauthenticated");
    let (_, owner) = s.workspace_with_key("m", "OWNER");
    s.get("/metrics", &[("Authorization", &bearer(&owner))])
        .assert_error(403, "permission_denied");
    let r = s.get("/metrics", &[("Authorization", &bearer(&s.admin))]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("proxyplane_open_connections"));
    // /healthz stays open.
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

#[test]
fn a_64_kib_header_is_refused_and_the_server_keeps_serving() {
    let s = Server::start();
    let mut conn = s.conn();
    let big = "a".repeat(64 * 1024);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may close before reading it all; a failed write is fine.
    let _ = conn.stream.write_all(req.as_bytes());
    match conn.read_reply(false) {
        Ok(r) => assert_eq!(r.status, 431, "{}", r.text()),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ),
            "neither 431 nor a closed connection: {e}"
        ),
    }
    assert!(
        conn.wait_closed(Duration::from_secs(3)).is_some(),
        "the connection stayed open"
    );
    assert_eq!(s.get("/healthz", &[]).status, 200);
    // Many small headers that add up past the limit are refused as well.
    let mut conn = s.conn();
    let mut req = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..2000 {
        req.push_str(&format!("X-H{i}: {}\r\n", "v".repeat(20)));
    }
    req.push_str("\r\n");
    let _ = conn.stream.write_all(req.as_bytes());
    if let Ok(r) = conn.read_reply(false) {
        assert_eq!(r.status, 431);
    }
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

#[test]
fn slowloris_headers_are_cut_off() {
    let s = Launch::default()
        .env("PROXYPLANE_HEADER_READ_TIMEOUT_SECONDS", "1")
        .start();
    let mut conn = s.conn();
    conn.send(b"POST /proxies.v1.Proxies/GetWorkspace HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .unwrap();
    let closed = conn
        .wait_closed(Duration::from_secs(5))
        .expect("the server never closed a slow header");
    assert!(
        closed >= Duration::from_millis(800),
        "closed too early: {closed:?}"
    );
    assert!(closed < Duration::from_secs(4), "closed late: {closed:?}");
    // Dripping bytes does not extend the deadline.
    let mut conn = s.conn();
    let start = std::time::Instant::now();
    let mut closed = false;
    for b in
        b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
    {
        if conn.stream.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        closed || conn.wait_closed(Duration::from_millis(500)).is_some(),
        "a dripping header kept the connection"
    );
    assert!(start.elapsed() < Duration::from_secs(4));
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

#[test]
fn slow_bodies_are_cut_off() {
    let s = Launch::default()
        .env("PROXYPLANE_BODY_READ_TIMEOUT_SECONDS", "1")
        .start();
    let auth = bearer(&s.admin);
    let mut conn = s.conn();
    let mut bytes = conn.head(
        "POST",
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        100,
    );
    bytes.extend_from_slice(b"{\"name\":");
    conn.send(&bytes).unwrap();
    let started = std::time::Instant::now();
    match conn.read_reply(false) {
        Ok(r) => assert!(r.status >= 400, "{}", r.text()),
        Err(e) => panic!("no answer to a stalled body: {e}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.get("/healthz", &[]).status, 200);
}

#[test]
fn sixty_four_keep_alive_connections_are_all_served() {
    let s = Server::start();
    let ws = s.create_workspace("busy");
    let mut conns: Vec<Conn> = (0..64).map(|_| s.conn()).collect();
    let auth = bearer(&s.admin);
    let body = json!({ "workspaceId": ws }).to_string();
    for round in 0..3 {
        // Every connection has a request in flight before any is read.
        for c in conns.iter_mut() {
            let mut req = c.head(
                "POST",
                &format!("{SVC}GetWorkspace"),
                &[
                    ("Content-Type", "application/json"),
                    ("Authorization", &auth),
                ],
                body.len(),
            );
            req.extend_from_slice(body.as_bytes());
            c.send(&req).unwrap();
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let r = c
                .read_reply(false)
                .unwrap_or_else(|e| panic!("round {round}, connection {i}: {e}"));
            r.ok();
            assert_eq!(r.json["workspace"]["id"], ws.as_str());
            assert_ne!(
                r.header("connection"),
                Some("close"),
                "round {round}, connection {i}"
            );
        }
    }
    // Pipelined requests on one connection are answered in order.
    let c = &mut conns[0];
    let mut req = Vec::new();
    for _ in 0..3 {
        req.extend(c.head("GET", "/healthz", &[], 0));
    }
    c.send(&req).unwrap();
    for _ in 0..3 {
        assert_eq!(c.read_reply(false).unwrap().status, 200);
    }
}

#[test]
fn no_api_key_secret_is_stored_in_plaintext() {
    let s = Server::start();
    let (ws, owner) = s.workspace_with_key("at rest", "OWNER");
    let (_, viewer) = s.create_key(&ws, "VIEWER");
    let cli_key = cli_ok(
        &s.dir,
        &["keys", "create", "--workspace", &ws, "--role", "EDITOR"],
    )
    .trim()
    .to_owned();
    for k in [&owner, &viewer, &cli_key, &s.admin] {
        s.rpc("GetWorkspace", k, json!({ "workspaceId": ws })).ok();
    }
    let secrets = [&s.admin, &owner, &viewer, &cli_key];
    let mut scanned = 0;
    for entry in std::fs::read_dir(&s.dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "admin.key" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        scanned += bytes.len();
        for secret in secrets {
            // The stored prefix (`pp_` + 7 characters) is fine; the rest is not.
            let tail = &secret.as_bytes()[10..];
            assert!(
                !bytes.windows(tail.len()).any(|w| w == tail),
                "{name} holds an API key secret in plaintext"
            );
        }
    }
    assert!(scanned > 4096, "nothing was scanned");
    let db = rusqlite::Connection::open(s.dir.join("proxyplane.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4, "the scan looked at the live database");
    // Nor in the log.
    let log = s.stderr();
    for secret in secrets {
        assert!(!log.contains(secret.as_str()), "a secret was logged");
    }
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let s = Launch::default()
        .env("PROXYPLANE_IDLE_TIMEOUT_SECONDS", "1")
        .start();
    let mut conn = s.conn();
    conn.request("GET", "/healthz", &[], b"").unwrap();
    let closed = conn
        .wait_closed(Duration::from_secs(5))
        .expect("an idle connection stayed open");
    assert!(
        closed >= Duration::from_millis(700),
        "closed after only {closed:?}"
    );
    // A connection in use is not idle: requests every 400 ms keep it open
    // well past the timeout.
    let mut conn = s.conn();
    for _ in 0..6 {
        assert_eq!(
            conn.request("GET", "/healthz", &[], b"").unwrap().status,
            200
        );
        std::thread::sleep(Duration::from_millis(400));
    }
}

/// A server with a small connection cap; header and idle timeouts far past
/// the harness's IO_TIMEOUT, so only shedding (not a timeout) can free a slot
/// in time.
fn capped(cap: &str) -> Server {
    Launch::default()
        .env("PROXYPLANE_MAX_CONNECTIONS", cap)
        .env("PROXYPLANE_HEADER_READ_TIMEOUT_SECONDS", "120")
        .env("PROXYPLANE_IDLE_TIMEOUT_SECONDS", "120")
        .env("PROXYPLANE_BODY_READ_TIMEOUT_SECONDS", "120")
        .start()
}

#[test]
fn silent_connections_at_the_cap_are_shed_for_a_new_client() {
    let s = capped("8");
    // Twelve connections that never send a byte: eight fill the cap, the
    // rest would sit in the kernel's backlog.
    let mut silent: Vec<Conn> = (0..12).map(|_| s.conn()).collect();
    // A normal client is served (within IO_TIMEOUT; the header timeout that
    // would otherwise free a slot is 120 s).
    let r = s.get("/healthz", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // Making room closed the oldest silent connections: the four beyond the
    // cap plus one for the client.
    for (i, c) in silent.iter_mut().take(5).enumerate() {
        assert!(
            c.wait_closed(IO_TIMEOUT).is_some(),
            "silent connection {i} (among the oldest) was not closed"
        );
    }
    // The newest are still served.
    let last = silent.last_mut().unwrap();
    let r = last.request("GET", "/healthz", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(
        s.wait_log("connection cap", Duration::from_secs(5)),
        "shedding was not logged:\n{}",
        s.stderr()
    );
    let shed: u64 = s
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix("proxyplane_shed_connections_total "))
        .expect("the shed counter")
        .parse()
        .expect("a number");
    assert!(shed >= 5, "{shed} connections counted as shed");
}

#[test]
fn idle_keep_alive_connections_at_the_cap_are_shed_for_a_new_client() {
    let s = capped("8");
    let mut idle: Vec<Conn> = (0..8).map(|_| s.conn()).collect();
    for c in idle.iter_mut() {
        assert_eq!(c.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    }
    // A new client is served at once: the least recently used idle
    // connection was closed (EOF) to make room, the others kept.
    assert_eq!(s.get("/healthz", &[]).status, 200);
    assert!(
        idle[0].wait_closed(IO_TIMEOUT).is_some(),
        "the least recently used idle connection was not closed"
    );
    let r = idle[7].request("GET", "/healthz", &[], b"").unwrap();
    assert_eq!(r.status, 200);
}

/// Starts a CreateWorkspace upload of `len` declared bytes and sends only
/// part of it: a request in flight.
fn slow_upload(s: &Server, len: usize) -> Conn {
    let mut c = s.conn();
    let auth = bearer(&s.admin);
    let mut bytes = c.head(
        "POST",
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        len,
    );
    bytes.extend_from_slice(b"{\"name\":\"");
    c.send(&bytes).unwrap();
    c
}

/// Finishes an upload begun by `slow_upload`.
fn finish_upload(c: &mut Conn, len: usize) -> Reply {
    let sent = "{\"name\":\"".len();
    let mut rest = vec![b'u'; len - sent - 2];
    rest.extend_from_slice(b"\"}");
    c.send(&rest).unwrap();
    c.read_reply(false).expect("the upload was answered")
}

#[test]
fn connections_with_a_request_in_flight_are_never_shed() {
    let s = capped("2");
    let len = 60;
    let mut upload = slow_upload(&s, len);
    let mut idle = s.conn();
    assert_eq!(
        idle.request("GET", "/healthz", &[], b"").unwrap().status,
        200
    );
    // Let the server read the upload's head (bytes still in the kernel
    // buffer look like a silent connection).
    std::thread::sleep(Duration::from_millis(200));
    // The cap is full: the newcomer takes the idle connection's slot, not
    // the upload's.
    let mut newcomer = s.conn();
    let r = newcomer.request("GET", "/healthz", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(
        idle.wait_closed(IO_TIMEOUT).is_some(),
        "the idle connection was kept"
    );
    finish_upload(&mut upload, len).ok();
}

#[test]
fn when_every_connection_is_busy_new_ones_wait_for_a_request_to_finish() {
    let s = capped("2");
    let len = 60;
    let mut a = slow_upload(&s, len);
    let mut b = slow_upload(&s, len);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = s.conn();
    c.send(&c.head("GET", "/healthz", &[], 0)).unwrap();
    c.stream
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    match c.read_reply(false) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => {
            panic!("a third connection was answered while two uploads were in flight: {other:?}")
        }
    }
    // An upload that finishes gets its answer (it was not shed) ...
    finish_upload(&mut a, len).ok();
    // ... and its now idle connection makes room for the waiting client.
    c.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let r = c.read_reply(false).expect("served once a request finished");
    assert_eq!(r.status, 200);
    finish_upload(&mut b, len).ok();
}

/// Starts the server under `sh` with `ulimit` run first (the harness
/// spawns the binary directly); returns the child and its address.
fn start_under_ulimit(
    ulimit: &str,
    dir: &TempDir,
    env: &[(&str, &str)],
) -> (std::process::Child, std::net::SocketAddr) {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit {ulimit} && exec \"$0\" --data-dir \"$1\" serve --listen 127.0.0.1:0"
        ))
        .arg(BIN)
        .arg(dir.join("data"))
        .env("PROXYPLANE_RATE_LIMIT_PER_SECOND", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sh");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not start: {line:?}");
    };
    (child, addr)
}

/// The soft open-file limit (often 1024) is raised to the hard limit at
/// start-up, as Go's runtime does: every connection is a file.
#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some(hard) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|h| h.parse::<u64>().ok())
    else {
        eprintln!("no /proc/self/limits or no finite hard limit; skipped");
        return;
    };
    let soft = (hard / 2).max(64);
    if soft >= hard {
        eprintln!("hard open-file limit {hard} leaves nothing to raise; skipped");
        return;
    }
    let dir = TempDir::new("nofile");
    let (mut child, addr) = start_under_ulimit(&format!("-Sn {soft}"), &dir, &[]);
    // Once it answers, start-up (which raises the limit) is over.
    let served = Conn::open(addr)
        .and_then(|mut c| c.request("GET", "/healthz", &[], b""))
        .map(|r| r.status);
    let server_limits =
        std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(served.ok(), Some(200));
    let row = server_limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("the server's limits");
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        fields[3],
        hard.to_string(),
        "soft limit not raised from {soft}: {row}"
    );
}

/// With `max_connections` set above what the open-file limit allows, accept
/// runs out of files before the cap: an idle connection is closed to free
/// one rather than leaving new clients in the backlog.
#[test]
fn out_of_files_below_the_cap_sheds_an_idle_connection() {
    let dir = TempDir::new("emfile");
    let (mut child, addr) = start_under_ulimit(
        "-n 128",
        &dir,
        &[
            ("PROXYPLANE_MAX_CONNECTIONS", "1000"),
            ("PROXYPLANE_WORKERS", "2"),
            ("PROXYPLANE_HEADER_READ_TIMEOUT_SECONDS", "120"),
            ("PROXYPLANE_IDLE_TIMEOUT_SECONDS", "120"),
        ],
    );
    // More silent connections than the server has files for.
    let silent: Vec<Conn> = (0..160).map(|_| Conn::open(addr).unwrap()).collect();
    let mut c = Conn::open(addr).unwrap();
    let r = c.request("GET", "/healthz", &[], b"");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.expect("served within IO_TIMEOUT").status, 200);
    drop(silent);
}
