//! SIGTERM: stop accepting, finish the requests in flight, exit 0.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

/// Polls until a new connection is refused; false if it never is.
fn refuses_connections(addr: std::net::SocketAddr, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(_) => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_zero() {
    let mut s = Launch::default()
        .env("PROXYPLANE_SHUTDOWN_TIMEOUT_SECONDS", "10")
        .start();
    let dir = s.dir.clone();
    let auth = bearer(&s.admin);
    let body = json!({ "name": "finished during shutdown" })
        .to_string()
        .into_bytes();
    let half = body.len() / 2;

    let mut conn = s.conn();
    let mut bytes = conn.head(
        "POST",
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        body.len(),
    );
    bytes.extend_from_slice(&body[..half]);
    conn.send(&bytes).unwrap();
    // Let the server read the head and start waiting for the rest.
    std::thread::sleep(Duration::from_millis(300));

    s.sigterm();
    assert!(
        refuses_connections(s.addr, Duration::from_secs(5)),
        "new connections were still accepted after SIGTERM"
    );
    assert!(
        s.wait_exit(Duration::from_millis(200)).is_none(),
        "exited with a request in flight"
    );

    conn.send(&body[half..]).unwrap();
    let r = conn
        .read_reply(false)
        .expect("the in-flight request was answered");
    r.ok();
    assert_eq!(r.json["workspace"]["name"], "finished during shutdown");

    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("the server exited after its last request");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        s.stderr()
    );

    // The write was committed: a new server on the same data dir sees it.
    let s2 = Launch::default().data_dir(&dir).start();
    let admin = std::fs::read_to_string(dir.join("admin.key")).unwrap();
    let names: Vec<String> = {
        let r = s2.rpc("ListWorkspaces", admin.trim(), json!({}));
        r.ok();
        r.json["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names, vec!["finished during shutdown".to_string()]);
    // A clean stop checkpoints the WAL.
    drop(s2);
}

#[test]
fn sigint_closes_idle_keep_alive_connections_and_exits_zero() {
    let mut s = Server::start();
    let mut idle = s.conn();
    idle.rpc("ListWorkspaces", &s.admin, &json!({})).ok();
    let started = Instant::now();
    s.sigint();
    let status = s.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an idle keep-alive connection held up shutdown for {:?}",
        started.elapsed()
    );
    assert!(idle.wait_closed(Duration::from_secs(2)).is_some());
    assert!(s.wait_log("shutting down", IO_TIMEOUT), "{}", s.stderr());
}

#[test]
fn shutdown_leaves_a_whole_database_file() {
    let mut s = Server::start();
    let dir = s.dir.clone();
    for i in 0..5 {
        s.create_workspace(&format!("kept {i}"));
    }
    s.sigterm();
    assert!(s
        .wait_exit(Duration::from_secs(10))
        .expect("exited")
        .success());
    let wal = dir.join("proxyplane.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the WAL was not checkpointed on a clean stop");
    let c = rusqlite::Connection::open(dir.join("proxyplane.db")).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM workspaces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
}

#[test]
fn shutdown_waits_at_most_the_shutdown_timeout_for_a_stuck_request() {
    let mut s = Launch::default()
        .env("PROXYPLANE_SHUTDOWN_TIMEOUT_SECONDS", "1")
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
        1000,
    );
    bytes.extend_from_slice(b"{\"name\":");
    conn.send(&bytes).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    s.sigterm();
    let status = s
        .wait_exit(Duration::from_secs(8))
        .expect("a stuck request held the server past its shutdown timeout");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(conn.wait_closed(Duration::from_secs(2)).is_some());
}

#[test]
fn shutdown_does_not_wait_for_another_process_holding_a_read_transaction() {
    // Litestream holds a read transaction on the database all the time; a
    // checkpoint that waits for readers would sit out the 5 s busy timeout.
    let mut s = Server::start();
    let dir = s.dir.clone();
    for i in 0..3 {
        s.create_workspace(&format!("kept {i}"));
    }
    let reader = rusqlite::Connection::open(dir.join("proxyplane.db")).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM workspaces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 3);
    // A commit after the reader's snapshot: WAL frames it still needs.
    s.create_workspace("after the snapshot");

    let started = Instant::now();
    s.sigterm();
    let status = s.wait_exit(Duration::from_secs(15)).expect("exited");
    let took = started.elapsed();
    assert!(status.success(), "{status:?}\n{}", s.stderr());
    assert!(
        took < Duration::from_secs(2),
        "shutdown waited {took:?} for the other process's read lock"
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let c = rusqlite::Connection::open(dir.join("proxyplane.db")).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM workspaces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn sigterm_right_after_the_listening_line_is_a_clean_stop() {
    // The line used to be printed before the signal handlers were
    // installed: a supervisor stopping the server at once killed it by the
    // signal instead of a clean exit.
    for _ in 0..10 {
        let mut s = Server::start();
        s.sigterm();
        let status = s.wait_exit(Duration::from_secs(10)).expect("exited");
        assert!(status.success(), "{status:?}\n{}", s.stderr());
    }
}
