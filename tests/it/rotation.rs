//! Keys at rest over time: RotateWorkspaceKey re-seals in short batches while
//! the workspace keeps resolving, resumes after a crash, bumps provider
//! versions; DeleteSession wipes the sealed password. The database file is
//! read directly to see what is at rest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{unb64, Conn, Launch, Server};
use crate::inventory::{id_of, int, Ws};

/// A read-only look at the server's database file (WAL lets it read while
/// the server writes).
fn db(srv: &Server) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        srv.dir.join("proxyplane.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open database")
}

/// The workspace's data key versions at rest.
fn data_keys(c: &rusqlite::Connection, ws: &str) -> Vec<u32> {
    c.prepare("SELECT key_version FROM data_keys WHERE workspace_id = ?1 ORDER BY key_version")
        .expect("prepare")
        .query_map([unb64(ws)], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("rows")
}

/// How many of the workspace's sealed secrets (session passwords and
/// provider credentials) name each key version.
fn sealed_by_version(c: &rusqlite::Connection, ws: &str) -> BTreeMap<u32, usize> {
    let mut out = BTreeMap::new();
    for sql in [
        "SELECT password FROM sessions WHERE workspace_id = ?1 AND password IS NOT NULL",
        "SELECT credentials FROM providers WHERE workspace_id = ?1 AND credentials IS NOT NULL",
    ] {
        let mut st = c.prepare(sql).expect("prepare");
        let blobs = st
            .query_map([unb64(ws)], |r| r.get::<_, Vec<u8>>(0))
            .expect("query");
        for b in blobs {
            let b = b.expect("row");
            let v = u32::from_be_bytes(b[..4].try_into().expect("4 bytes"));
            *out.entry(v).or_default() += 1;
        }
    }
    out
}

/// `n` static sessions with distinct passwords in one BulkCreateSessions;
/// session id → password.
fn bulk_sessions(ws: &Ws, pool: &str, provider: &str, n: usize) -> HashMap<String, String> {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "token": format!("s{i}"),
                "host": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                "port": 3128,
                "username": format!("u{i}"),
                "password": format!("pw-{i}-secret"),
            })
        })
        .collect();
    let r = ws.ok(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": provider, "sessions": items }),
    );
    assert_eq!(int(&r["createdCount"]), n as i64);
    r["sessionIds"]
        .as_array()
        .expect("sessionIds")
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                id.as_str().expect("id").to_owned(),
                format!("pw-{i}-secret"),
            )
        })
        .collect()
}

/// Resolves accounts `a0..a<n>` on one keep-alive connection and checks each
/// gets its session's original password; the sessions they landed on.
fn resolve_accounts(
    ws: &Ws,
    pool: &str,
    n: usize,
    expect: &HashMap<String, String>,
) -> HashSet<String> {
    let mut conn = ws.srv.conn();
    let mut seen = HashSet::new();
    for i in 0..n {
        let body = ws.body(json!({ "poolId": pool, "accountName": format!("a{i}") }));
        let r = conn.rpc("ResolveProxy", &ws.key, &body);
        assert_eq!(r.status, 200, "ResolveProxy a{i}: {}", r.text());
        let session = r.json["assignment"]["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        assert_eq!(
            r.json["proxy"]["password"].as_str(),
            Some(expect[&session].as_str()),
            "a{i} on {session}"
        );
        seen.insert(session);
    }
    seen
}

/// Polls GetWorkspace until no rotation is reported; every keyRotation seen
/// on the way.
fn wait_rotation_done(ws: &Ws, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let w = ws.ok("GetWorkspace", json!({}))["workspace"].clone();
        match w.get("keyRotation") {
            None => return seen,
            Some(r) => seen.push(r.clone()),
        }
        assert!(
            Instant::now() < deadline,
            "rotation not done after {limit:?}: {w}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill9(srv: &mut Server) {
    let st = std::process::Command::new("kill")
        .args(["-9", &srv.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -9 failed");
    assert!(
        srv.wait_exit(Duration::from_secs(10)).is_some(),
        "server survived SIGKILL"
    );
}

#[test]
fn rotation_reseals_in_batches_while_resolves_keep_working() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let provider = id_of(&ws.provider(
        "GENERIC",
        json!({
            "credentials": { "username": "gw-user", "password": "gw-pass" },
            "gateway": { "host": "gw.example.net", "port": 7000 }
        }),
    ));
    let pool = ws.pool(json!({}));
    let n = 4000;
    let expect = bulk_sessions(&ws, &pool, &provider, n);
    // A rotation session (its login is the provider's sealed credentials),
    // in a pool of its own so the static pool's choice stays one per session.
    let gw_pool = ws.pool(json!({}));
    ws.session(&gw_pool, &provider, json!({ "token": "t1" }));
    let gw_pass = |ws: &Ws| {
        let (_, proxy) = ws.resolve_ok(&gw_pool, "gw-account");
        assert_eq!(proxy["password"], "gw-pass");
    };
    gw_pass(&ws);
    // Least-loaded choice puts each new account on its own session, so
    // these accounts cover every session.
    assert_eq!(resolve_accounts(&ws, &pool, n, &expect).len(), n);
    assert!(ws.ok("GetWorkspace", json!({}))["workspace"]
        .get("keyRotation")
        .is_none());

    // Bots keep resolving throughout: known accounts (sticky reads) and new
    // ones (each a write that needs the lock the rotation takes in turns).
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let bots: Vec<_> = (0..3)
        .map(|t| {
            let (stop, calls, failures) = (stop.clone(), calls.clone(), failures.clone());
            let (addr, key) = (srv.addr, ws.key.clone());
            let (wsid, pool) = (ws.id.clone(), pool.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr).expect("connect");
                let mut k = 0usize;
                while !stop.load(Ordering::Relaxed) && k < 20_000 {
                    let account = if k % 4 == 0 {
                        format!("bot{t}-{k}")
                    } else {
                        format!("a{}", (k * 7 + t) % 4000)
                    };
                    let body =
                        json!({ "workspaceId": wsid, "poolId": pool, "accountName": account });
                    let r = conn.rpc("ResolveProxy", &key, &body);
                    if r.status != 200 {
                        failures.lock().unwrap().push(format!(
                            "{account}: {} {}",
                            r.status,
                            r.text()
                        ));
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                    k += 1;
                }
            })
        })
        .collect();

    let r = ws.ok("RotateWorkspaceKey", json!({}));
    let calls_at_start = calls.load(Ordering::Relaxed);
    assert_eq!(int(&r["previousKeyVersion"]), 1);
    assert_eq!(int(&r["newKeyVersion"]), 2);
    let progress = r.get("keyRotation").unwrap_or_else(|| {
        panic!("{n} sessions were re-sealed within the call; the test needs a rotation that outlasts it: {r}")
    });
    assert_eq!(int(&progress["targetKeyVersion"]), 2);
    // The new key is current at once; providers are already re-sealed.
    assert_eq!(
        int(&ws.ok("GetWorkspace", json!({}))["workspace"]["keyVersion"]),
        2
    );
    // One rotation at a time.
    let again = ws.call("RotateWorkspaceKey", json!({}));
    again.assert_error(400, "failed_precondition");
    assert!(
        again.json["message"]
            .as_str()
            .unwrap_or("")
            .contains("still re-sealing"),
        "{}",
        again.text()
    );

    // Progress as the call answered it, then as GetWorkspace shows it until
    // done (on a fast machine the rest may finish before the first poll).
    let mut seen = vec![progress.clone()];
    seen.extend(wait_rotation_done(&ws, Duration::from_secs(180)));
    let calls_during = calls.load(Ordering::Relaxed) - calls_at_start;
    stop.store(true, Ordering::Relaxed);
    for b in bots {
        b.join().expect("bot thread");
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} resolves failed during the rotation, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(calls_during > 0, "no resolve ran while the rotation did");
    // Progress was visible and moved forward in batches.

    let resealed: Vec<i64> = seen.iter().map(|p| int(&p["resealed"])).collect();
    assert!(resealed.windows(2).all(|w| w[0] <= w[1]), "{resealed:?}");
    // Every live password may be re-sealed while the rotation still shows:
    // it then wipes deleted sessions' passwords and drops the old key, and
    // is finished only when keyRotation is gone (as the proto says).
    assert!(
        seen.iter()
            .all(|p| int(&p["targetKeyVersion"]) == 2 && int(&p["resealed"]) <= n as i64),
        "{seen:?}"
    );
    assert!(int(&seen[0]["resealed"]) < n as i64, "{seen:?}");

    // Every session still resolves with its original password, and the
    // rotation session with its provider's.
    let again = resolve_accounts(&ws, &pool, n, &expect);
    assert_eq!(again.len(), n);
    gw_pass(&ws);
    // At rest: only key version 2 is left, and everything names it.
    let c = db(&srv);
    assert_eq!(data_keys(&c, &ws.id), vec![2], "the old data key is gone");
    assert_eq!(
        sealed_by_version(&c, &ws.id),
        BTreeMap::from([(2, n + 1)]),
        "{n} passwords and 1 provider's credentials, all under v2"
    );
    let check = crate::common::cli_ok(&srv.dir, &["check"]);
    assert!(check.contains("data keys open"), "{check}");
    // Rotating again works once the first is done.
    let r = ws.ok("RotateWorkspaceKey", json!({}));
    assert_eq!(int(&r["newKeyVersion"]), 3);
}

#[test]
fn a_rotation_killed_midway_resumes_after_restart() {
    let mut srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let provider = id_of(&ws.provider(
        "GENERIC",
        json!({ "credentials": { "password": "cred-pw" } }),
    ));
    let pool = ws.pool(json!({}));
    let n = 6000;
    let expect = bulk_sessions(&ws, &pool, &provider, n);
    let r = ws.ok("RotateWorkspaceKey", json!({}));
    assert!(
        r.get("keyRotation").is_some(),
        "finished within the call; the test needs more sessions: {r}"
    );
    let (wsid, key) = (ws.id.clone(), ws.key.clone());
    kill9(&mut srv);

    // Killed mid-way: both keys at rest, secrets under both.
    {
        let c = db(&srv);
        assert_eq!(data_keys(&c, &wsid), vec![1, 2]);
        let by = sealed_by_version(&c, &wsid);
        assert!(
            by.get(&1).copied().unwrap_or(0) > 0 && by.get(&2).copied().unwrap_or(0) > 1,
            "not mid-way: {by:?}"
        );
        assert_eq!(by.values().sum::<usize>(), n + 1);
    }

    let srv2 = Launch::default().data_dir(&srv.dir).start();
    let ws2 = Ws {
        srv: &srv2,
        id: wsid.clone(),
        key,
    };
    // Readable at once, before the resumed rotation is through.
    let (a, proxy) = ws2.resolve_ok(&pool, "a0");
    assert_eq!(
        proxy["password"].as_str(),
        Some(expect[a["sessionId"].as_str().expect("sessionId")].as_str())
    );
    wait_rotation_done(&ws2, Duration::from_secs(180));
    assert!(
        srv2.wait_log("key rotation of workspace", Duration::from_secs(5)),
        "{}",
        srv2.stderr()
    );
    let c = db(&srv2);
    assert_eq!(data_keys(&c, &wsid), vec![2], "the old data key is gone");
    assert_eq!(sealed_by_version(&c, &wsid), BTreeMap::from([(2, n + 1)]));
    drop(c);
    assert_eq!(resolve_accounts(&ws2, &pool, n, &expect).len(), n);
    drop(srv2);
    drop(srv);
}

#[test]
fn key_rotation_bumps_each_providers_version() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let p = id_of(&ws.provider("GENERIC", json!({ "credentials": { "apiKey": "k-1" } })));
    let before = ws.ok("GetProvider", json!({ "providerId": p }))["provider"].clone();
    assert_eq!(int(&before["version"]), 1);
    ws.ok("RotateWorkspaceKey", json!({}));
    let after = ws.ok("GetProvider", json!({ "providerId": p }))["provider"].clone();
    assert_eq!(int(&after["keyVersion"]), 2);
    assert_eq!(int(&after["version"]), 2, "its stored credentials changed");
    // An update holding the version from before the rotation is refused.
    ws.call(
        "UpdateProvider",
        json!({ "providerId": p, "name": "renamed", "expectedVersion": 1 }),
    )
    .assert_error(409, "aborted");
    ws.ok(
        "UpdateProvider",
        json!({ "providerId": p, "name": "renamed", "expectedVersion": 2 }),
    );
}

#[test]
fn deleting_a_session_wipes_its_sealed_password() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let provider = ws.generic();
    let pool = ws.pool(json!({}));
    let s = id_of(&ws.session(
        &pool,
        &provider,
        json!({ "host": "203.0.113.7", "port": 3128, "password": "delete-me" }),
    ));
    let password = |c: &rusqlite::Connection| -> (Option<Vec<u8>>, Option<i64>) {
        c.query_row(
            "SELECT password, deleted_at FROM sessions WHERE id = ?1",
            [unb64(&s)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the row is there")
    };
    assert!(password(&db(&srv)).0.is_some());
    ws.ok("DeleteSession", json!({ "sessionId": s }));
    let (pw, deleted_at) = password(&db(&srv));
    assert!(deleted_at.is_some(), "soft delete keeps the row");
    assert_eq!(pw, None, "the sealed password is wiped");
}
