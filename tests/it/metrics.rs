//! /metrics: sessions by state from counters the database keeps (no scan
//! of every live session per scrape), and what counts as a rate limit.

use serde_json::json;

use crate::common::*;
use crate::inventory::Ws;

/// The `proxyplane_sessions{state=…}` gauges as (healthy, unhealthy, disabled).
pub fn session_gauges(s: &Server) -> (i64, i64, i64) {
    let m = s.metrics();
    let get = |state: &str| -> i64 {
        let prefix = format!("proxyplane_sessions{{state=\"{state}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{m}"))
            .parse()
            .expect("a number")
    };
    (get("healthy"), get("unhealthy"), get("disabled"))
}

fn counter(s: &Server, name: &str) -> f64 {
    let m = s.metrics();
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{m}"))
        .parse()
        .expect("a number")
}

#[test]
fn session_gauges_follow_every_write_path() {
    let srv = Server::start();
    assert_eq!(session_gauges(&srv), (0, 0, 0));
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({ "failureThreshold": 1, "cooldownSeconds": 600 }));
    let ids: Vec<String> = (1..=5)
        .map(|n| ws.static_session(&pool, &prov, n))
        .collect();
    let bulk = json!({ "poolId": pool, "providerId": prov, "sessions": [
        { "host": "198.51.100.1", "port": 80 }, { "host": "198.51.100.2", "port": 80 },
        { "host": "198.51.100.1", "port": 80, "token": "same" }, { "host": "198.51.100.9", "port": 80, "token": "same" },
    ]});
    ws.ok("BulkCreateSessions", bulk);
    assert_eq!(
        session_gauges(&srv),
        (8, 0, 0),
        "5 + 3 new (one token repeats)"
    );

    ws.ok(
        "UpdateSession",
        json!({ "sessionId": ids[0], "enabled": false }),
    );
    ws.ok(
        "UpdateSession",
        json!({ "sessionId": ids[0], "enabled": false }),
    );
    ws.ok(
        "UpdateSession",
        json!({ "sessionId": ids[1], "host": "203.0.113.77" }),
    );
    assert_eq!(session_gauges(&srv), (7, 0, 1));

    ws.ok(
        "ReportSessionResult",
        json!({ "sessionId": ids[2], "success": false }),
    );
    assert_eq!(
        session_gauges(&srv),
        (6, 1, 1),
        "one failure trips threshold 1"
    );
    ws.ok(
        "ReportSessionResult",
        json!({ "sessionId": ids[2], "success": true }),
    );
    assert_eq!(session_gauges(&srv), (7, 0, 1));

    ws.ok("DeleteSession", json!({ "sessionId": ids[0] }));
    ws.ok("DeleteSession", json!({ "sessionId": ids[3] }));
    assert_eq!(session_gauges(&srv), (6, 0, 0));

    // A second workspace, then deleting it removes its sessions (cascade).
    let other = Ws::new(&srv, "OWNER");
    let op = other.generic();
    let opool = other.pool(json!({}));
    other.static_session(&opool, &op, 1);
    other.static_session(&opool, &op, 2);
    assert_eq!(session_gauges(&srv), (8, 0, 0));
    srv.rpc(
        "DeleteWorkspace",
        &srv.admin,
        json!({ "workspaceId": other.id }),
    )
    .ok();
    assert_eq!(session_gauges(&srv), (6, 0, 0));
}

#[test]
fn an_upgraded_database_starts_with_the_right_counts() {
    // A version-1 database (no counters): made by taking the version-2
    // objects away from a populated one, as the upgrade adds them.
    let mut srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let ids: Vec<String> = (1..=4)
        .map(|n| ws.static_session(&pool, &prov, n))
        .collect();
    ws.ok(
        "UpdateSession",
        json!({ "sessionId": ids[0], "enabled": false }),
    );
    ws.ok("DeleteSession", json!({ "sessionId": ids[1] }));
    let dir = srv.dir.clone();
    srv.sigterm();
    assert!(srv.wait_exit(IO_TIMEOUT).is_some_and(|s| s.success()));
    {
        let c = rusqlite::Connection::open(dir.join("proxyplane.db")).expect("open db");
        c.execute_batch(
            "DROP TRIGGER data_epoch_assignments_update; DROP TRIGGER data_epoch_assignments_delete;
             DROP TRIGGER data_epoch_sessions_update; DROP TRIGGER data_epoch_sessions_delete;
             DROP TRIGGER data_epoch_pools_update; DROP TRIGGER data_epoch_pools_delete;
             DROP TRIGGER data_epoch_providers_update; DROP TRIGGER data_epoch_providers_delete;
             DROP TRIGGER IF EXISTS session_counts_insert; DROP TRIGGER session_counts_delete;
             DROP TRIGGER session_counts_update; DROP INDEX sessions_cooling;
             DROP TABLE session_counts; DROP TRIGGER auth_epoch_revoke;
             DROP TRIGGER auth_epoch_delete; DROP TABLE auth_epoch;
             ALTER TABLE providers DROP COLUMN sync_interval_seconds;
             ALTER TABLE providers DROP COLUMN sync_pool_id;
             ALTER TABLE providers DROP COLUMN api_base_url;
             ALTER TABLE providers DROP COLUMN last_sync;
             ALTER TABLE providers DROP COLUMN sync_mode;
             ALTER TABLE sessions DROP COLUMN expires_at;
             PRAGMA user_version = 1;",
        )
        .expect("make a v1 database");
    }
    let srv = Launch::default().data_dir(&dir).start();
    assert_eq!(session_gauges(&srv), (2, 0, 1));
    let c = rusqlite::Connection::open(dir.join("proxyplane.db")).expect("open db");
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert!(v >= 2, "upgraded, got version {v}");
}

#[test]
fn a_body_over_the_limit_is_not_counted_as_a_rate_limit() {
    let s = Server::start_with(&[("PROXYPLANE_MAX_BODY_BYTES", "2048")], &[], None);
    let r = s.post_raw(
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer(&s.admin)),
        ],
        json!({ "name": "n".repeat(3000) }).to_string().as_bytes(),
    );
    r.assert_error(429, "resource_exhausted");
    assert_eq!(counter(&s, "proxyplane_rate_limited_total"), 0.0);
}
