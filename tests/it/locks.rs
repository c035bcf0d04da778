//! No hidden writes or long stalls on the request path: reads never write,
//! a write waits for the lock no longer than its deadline, and keys' last
//! use is recorded in batches.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

/// Another process holding the database's write lock, as the offline CLI,
/// a backup or a long migration would.
fn hold_write_lock(s: &Server) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(s.dir.join("proxyplane.db")).expect("open db");
    c.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    c.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    c
}

fn call_with_timeout(
    s: &Server,
    method: &str,
    key: &str,
    ms: u32,
    body: &serde_json::Value,
) -> Reply {
    s.post_raw(
        &format!("{SVC}{method}"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer(key)),
            ("Connect-Timeout-Ms", &ms.to_string()),
        ],
        body.to_string().as_bytes(),
    )
}

#[test]
fn a_read_with_a_fresh_key_does_not_wait_behind_another_writer() {
    // Authentication used to write last_used_at (once a minute per key)
    // outside the RPC's transaction: a GetWorkspace with a key not used
    // for a minute sat in SQLite's busy handler behind any writer.
    let s = Server::start();
    let ws = cli_ok(&s.dir, &["workspaces", "create", "quiet"])
        .trim()
        .to_owned();
    let viewer = cli_ok(
        &s.dir,
        &["keys", "create", "--workspace", &ws, "--role", "VIEWER"],
    )
    .trim()
    .to_owned();
    let lock = hold_write_lock(&s);
    let r = call_with_timeout(
        &s,
        "GetWorkspace",
        &viewer,
        3000,
        &json!({ "workspaceId": ws }),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["name"], "quiet");
    drop(lock);
}

#[test]
fn a_write_waits_for_the_lock_no_longer_than_its_deadline_and_changes_nothing() {
    let s = Server::start();
    let ws = s.create_workspace("busy");
    let lock = hold_write_lock(&s);
    // Before: the call sat the whole 5 s busy timeout and answered 503.
    let r = call_with_timeout(
        &s,
        "CreatePool",
        &s.admin,
        300,
        &json!({ "workspaceId": ws, "name": "late" }),
    );
    r.assert_error(504, "deadline_exceeded");
    drop(lock);
    s.rpc(
        "CreatePool",
        &s.admin,
        json!({ "workspaceId": ws, "name": "on time" }),
    )
    .ok();
    let pools = s.rpc("ListPools", &s.admin, json!({ "workspaceId": ws }));
    let names: Vec<&str> = pools.ok().json["pools"]
        .as_array()
        .expect("pools")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["on time"]);
}

#[test]
fn last_use_shows_at_once_in_the_api_and_reaches_the_database_by_shutdown() {
    let mut s = Server::start();
    let ws = s.create_workspace("used");
    let (_, owner) = s.create_key(&ws, "OWNER");
    s.rpc("GetWorkspace", &owner, json!({ "workspaceId": ws }))
        .ok();
    let r = s.rpc("ListApiKeys", &owner, json!({ "workspaceId": ws }));
    let keys = r.ok().json["apiKeys"].as_array().expect("keys").clone();
    assert!(
        keys[0]["lastUsedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{keys:?}"
    );
    s.sigterm();
    assert!(s.wait_exit(IO_TIMEOUT).is_some_and(|st| st.success()));
    let c = rusqlite::Connection::open(s.dir.join("proxyplane.db")).expect("open db");
    let used: i64 = c
        .query_row(
            "SELECT count(*) FROM api_keys WHERE last_used_at IS NOT NULL AND workspace_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(used, 1, "the OWNER key's use was written at shutdown");
}
