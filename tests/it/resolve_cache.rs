//! Issue 10, the sticky-binding cache: a repeated ResolveProxy of a standing
//! binding is answered from memory (`proxyplane_resolve_cache_total`), and
//! every way the rows behind it can change (each write RPC, the clock, and
//! a writer in another process) shows on the very next resolve.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{unb64, Server};
use crate::inventory::{id_of, Ws};

/// (hits, misses) so far.
fn counts(srv: &Server) -> (u64, u64) {
    let m = srv.metrics();
    let get = |result: &str| {
        let name = format!("proxyplane_resolve_cache_total{{result=\"{result}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    (get("hit"), get("miss"))
}

/// Resolves `account` until its binding is in the cache, and checks that
/// the next resolve is a hit with the same answer; returns that answer.
#[track_caller]
fn warm(ws: &Ws, pool: &str, account: &str) -> (Value, Value) {
    let first = ws.resolve_ok(pool, account); // may create the binding (a write)
    let second = ws.resolve_ok(pool, account); // read from SQL, kept
    assert_eq!(first, second);
    let before = counts(ws.srv);
    let third = ws.resolve_ok(pool, account);
    let after = counts(ws.srv);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 0),
        "a repeated resolve with no write in between is a cache hit"
    );
    assert_eq!(third, second, "a hit answers what SQL answered");
    third
}

/// A workspace with a GENERIC provider, one pool (`pool` merged in) and
/// three static sessions; (ws, pool, [s1, s2, s3]).
fn setup<'a>(srv: &'a Server, pool: Value) -> (Ws<'a>, String, Vec<String>) {
    let ws = Ws::new(srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(pool);
    let sessions = (1..=3)
        .map(|i| ws.static_session(&pool, &prov, i))
        .collect();
    (ws, pool, sessions)
}

fn session_of(assignment: &Value) -> String {
    assignment["sessionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A session of `sessions` that is none of `not`.
fn other(sessions: &[String], not: &[&str]) -> String {
    sessions
        .iter()
        .find(|x| !not.contains(&x.as_str()))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn cached_binding_sees_session_endpoint_changes_and_disabling() {
    let srv = Server::start();
    let (ws, pool, sessions) = setup(&srv, json!({}));
    let (a, _) = warm(&ws, &pool, "bot");
    let s = session_of(&a);

    ws.ok(
        "UpdateSession",
        json!({ "sessionId": s, "host": "198.51.100.77", "port": 8000,
                "username": "new-user", "password": "new-pass" }),
    );
    let (a2, p2) = ws.resolve_ok(&pool, "bot");
    assert_eq!(session_of(&a2), s);
    assert_eq!(p2["host"], "198.51.100.77");
    assert_eq!(p2["port"], 8000);
    assert_eq!(p2["username"], "new-user");
    assert_eq!(p2["password"], "new-pass");

    warm(&ws, &pool, "bot");
    ws.ok("UpdateSession", json!({ "sessionId": s, "enabled": false }));
    let (a3, _) = ws.resolve_ok(&pool, "bot");
    assert_ne!(session_of(&a3), s, "moved off the disabled session");
    assert!(sessions.contains(&session_of(&a3)));
}

#[test]
fn cached_binding_sees_reported_failures_deletes_and_moves() {
    let srv = Server::start();
    let (ws, pool, sessions) = setup(&srv, json!({ "failureThreshold": 1 }));

    // ReportSessionResult: one failure makes the session unhealthy.
    let (a, _) = warm(&ws, &pool, "bot");
    let s = session_of(&a);
    ws.ok(
        "ReportSessionResult",
        json!({ "sessionId": s, "success": false, "reason": "test" }),
    );
    let (a, _) = ws.resolve_ok(&pool, "bot");
    assert_ne!(session_of(&a), s, "moved off the failed session");

    // UpdateAssignment: moved (and pinned) by hand.
    let (a, _) = warm(&ws, &pool, "bot-2");
    // Not the failed session: pinning to an unhealthy one is refused.
    let target = other(&sessions, &[&session_of(&a), &s]);
    ws.ok(
        "UpdateAssignment",
        json!({ "assignmentId": a["id"], "sessionId": target, "pinned": true }),
    );
    let (a, _) = ws.resolve_ok(&pool, "bot-2");
    assert_eq!(session_of(&a), target);
    assert_eq!(a["pinned"], true);

    // A pinned assignment's session deleted: refused, not served stale.
    warm(&ws, &pool, "bot-2");
    ws.ok("DeleteSession", json!({ "sessionId": target }));
    ws.resolve(&pool, "bot-2")
        .assert_error(400, "failed_precondition");

    // DeleteAssignment: the next resolve makes a new one.
    let (a, _) = warm(&ws, &pool, "bot-3");
    ws.ok("DeleteAssignment", json!({ "assignmentId": a["id"] }));
    let (b, _) = ws.resolve_ok(&pool, "bot-3");
    assert_ne!(b["id"], a["id"], "a new assignment");
}

#[test]
fn cached_binding_is_judged_against_the_clock_and_sees_pool_policy_changes() {
    let srv = Server::start();
    let (ws, pool, sessions) = setup(&srv, json!({}));
    let (a, _) = warm(&ws, &pool, "bot");
    // A one-second rotation interval: the rows cached before the change are
    // not used (the pool changed), and once the interval has passed the
    // binding moves although nothing else was written.
    ws.ok(
        "UpdatePool",
        json!({ "poolId": pool, "rotation": { "intervalSeconds": 1 } }),
    );
    let (b, _) = ws.resolve_ok(&pool, "bot");
    assert_eq!(b["id"], a["id"]);
    assert_eq!(session_of(&b), session_of(&a), "inside the interval");
    let (c, _) = ws.resolve_ok(&pool, "bot");
    assert_eq!(session_of(&c), session_of(&a));
    std::thread::sleep(Duration::from_millis(1100));
    let (d, _) = ws.resolve_ok(&pool, "bot");
    assert_ne!(session_of(&d), session_of(&a), "the interval has passed");
    assert!(sessions.contains(&session_of(&d)));
}

#[test]
fn cached_rotation_binding_sees_provider_gateway_and_credential_changes() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = id_of(&ws.provider(
        "GENERIC",
        json!({
            "credentials": { "username": "cust", "password": "pw" },
            "gateway": { "scheme": "http", "host": "gw.example.org", "port": 8000,
                         "usernameTemplate": "{username}-s-{token}", "passwordTemplate": "{password}" }
        }),
    ));
    let pool = ws.pool(json!({}));
    ws.session(&pool, &prov, json!({ "token": "t1" }));
    let (_, p) = warm(&ws, &pool, "bot");
    assert_eq!(
        (&p["host"], &p["username"], &p["password"]),
        (&json!("gw.example.org"), &json!("cust-s-t1"), &json!("pw"))
    );

    ws.ok(
        "UpdateProvider",
        json!({ "providerId": prov, "credentials": { "username": "cust2", "password": "pw2" } }),
    );
    let (_, p) = ws.resolve_ok(&pool, "bot");
    assert_eq!(
        (&p["username"], &p["password"]),
        (&json!("cust2-s-t1"), &json!("pw2"))
    );

    warm(&ws, &pool, "bot");
    ws.ok(
        "UpdateProvider",
        json!({ "providerId": prov, "gateway": { "scheme": "socks5", "host": "gw2.example.org", "port": 1080,
                "usernameTemplate": "{username}", "passwordTemplate": "{password}" } }),
    );
    let (_, p) = ws.resolve_ok(&pool, "bot");
    assert_eq!(p["url"], "socks5://cust2:pw2@gw2.example.org:1080");
}

#[test]
fn cached_binding_sees_a_write_from_another_process() {
    // A writer outside the server (here a plain SQLite connection to the
    // same file, as the offline CLI or an operator's sqlite3 would be): the
    // triggers bump the data epoch, so the next resolve reads again.
    let srv = Server::start();
    let (ws, pool, _) = setup(&srv, json!({}));
    let (a, _) = warm(&ws, &pool, "bot");
    let id = unb64(&session_of(&a));
    let db = rusqlite::Connection::open(srv.dir.join("proxyplane.db")).expect("open db");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let n = db
        .execute(
            "UPDATE sessions SET host = '192.0.2.200' WHERE id = ?1",
            [&id],
        )
        .expect("update");
    assert_eq!(n, 1);
    let (_, p) = ws.resolve_ok(&pool, "bot");
    assert_eq!(p["host"], "192.0.2.200");
}

#[test]
fn cached_binding_never_outlives_the_key() {
    let srv = Server::start();
    let (ws, pool, _) = setup(&srv, json!({}));
    let (key_id, secret) = srv.create_key(&ws.id, "RESOLVER");
    let resolve = || {
        ws.call_as(
            &secret,
            "ResolveProxy",
            json!({ "poolId": pool, "accountName": "bot" }),
        )
    };
    for _ in 0..3 {
        assert_eq!(resolve().status, 200);
    }
    ws.ok("RevokeApiKey", json!({ "apiKeyId": key_id }));
    resolve().assert_error(401, "unauthenticated");
}

#[test]
fn cached_binding_is_gone_with_its_workspace() {
    // The ADMIN key outlives the workspace; the cascade deletes the rows
    // (and bumps the data epoch through the DELETE triggers).
    let srv = Server::start();
    let (ws, pool, _) = setup(&srv, json!({}));
    warm(&ws, &pool, "bot");
    srv.rpc(
        "DeleteWorkspace",
        &srv.admin,
        json!({ "workspaceId": ws.id }),
    )
    .ok();
    let r = srv.rpc(
        "ResolveProxy",
        &srv.admin,
        json!({ "workspaceId": ws.id, "poolId": pool, "accountName": "bot" }),
    );
    r.assert_error(404, "not_found");
}
