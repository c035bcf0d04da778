//! Group commit (src/store/group.rs) seen from outside: many writers at
//! once, each answered only after the COMMIT that holds its write, each
//! all-or-nothing however the group was formed, and nothing acknowledged
//! lost when the process is killed in the middle of a stream of groups.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::common::{bearer, Conn, Launch, Server};
use crate::inventory::{id_of, Ws};

/// One writer thread: CreateSession in a loop, every `dup_every`-th with
/// a token an earlier call already used (already_exists: its write must
/// leave nothing). With `verify`, reads each acknowledged session back on
/// a second connection. Returns the ids acknowledged.
fn creator(
    srv: &Server,
    ws: &Ws,
    pool: &str,
    provider: &str,
    t: usize,
    stop: Arc<AtomicBool>,
    verify: bool,
) -> std::thread::JoinHandle<Vec<String>> {
    let (addr, key, wsid) = (srv.addr, ws.key.clone(), ws.id.clone());
    let (pool, provider) = (pool.to_owned(), provider.to_owned());
    std::thread::spawn(move || {
        let mut conn = Conn::open(addr).expect("connect");
        let mut reader = Conn::open(addr).expect("connect");
        let mut acked = Vec::new();
        for i in 0..400 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let token = if i % 5 == 4 {
                format!("t{t}-{}", i - 1)
            } else {
                format!("t{t}-{i}")
            };
            let body = json!({
                "workspaceId": wsid, "poolId": pool, "providerId": provider,
                "scheme": "http", "host": "10.0.0.1", "port": 8000 + i,
                "token": token, "password": format!("pw-{t}-{i}"),
            });
            let auth = bearer(&key);
            let sent = conn.request(
                "POST",
                "/proxies.v1.Proxies/CreateSession",
                &[
                    ("Content-Type", "application/json"),
                    ("Authorization", &auth),
                ],
                body.to_string().as_bytes(),
            );
            // No answer: the server is gone (the kill test); this call is
            // not acknowledged, and the writer stops.
            let Ok(r) = sent else { break };
            match r.status {
                200 => {
                    let id = id_of(&r.json["session"]);
                    // Readable at once through another connection: the
                    // answer came after its group's COMMIT.
                    if verify {
                        let got = reader.rpc(
                            "GetSession",
                            &key,
                            &json!({ "workspaceId": wsid, "sessionId": id }),
                        );
                        assert_eq!(got.status, 200, "{token}: {}", got.text());
                    }
                    acked.push(id);
                }
                409 if i % 5 == 4 => {}
                s => panic!("CreateSession {token}: {s} {}", r.text()),
            }
        }
        acked
    })
}

#[test]
fn concurrent_writes_are_each_committed_before_their_answer_and_all_or_nothing() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let provider = id_of(&ws.provider("GENERIC", json!({})));
    let pool = ws.pool(json!({}));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..12)
        .map(|t| creator(&srv, &ws, &pool, &provider, t, stop.clone(), true))
        .collect();
    let mut all = Vec::new();
    for t in threads {
        let ids = t.join().expect("writer thread");
        assert_eq!(ids.len(), 320, "each writer: 400 calls, 80 duplicates");
        all.extend(ids);
    }
    let mut listed = crate::inventory::list_all_sessions(&ws, Some(&pool), 1000);
    assert_eq!(
        listed.len(),
        all.len(),
        "the refused duplicates left nothing"
    );
    listed.sort();
    all.sort();
    assert_eq!(listed, all);
}

#[test]
fn sigkill_under_group_commits_loses_no_acknowledged_write() {
    let mut srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let provider = id_of(&ws.provider("GENERIC", json!({})));
    let pool = ws.pool(json!({}));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|t| creator(&srv, &ws, &pool, &provider, t, stop.clone(), false))
        .collect();
    // Kill once writes are flowing, mid-stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while crate::inventory::list_all_sessions(&ws, Some(&pool), 1000).len() < 300 {
        assert!(std::time::Instant::now() < deadline, "writes never flowed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (wsid, key) = (ws.id.clone(), ws.key.clone());
    let killed = std::process::Command::new("kill")
        .args(["-9", &srv.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some());
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        acked
            .lock()
            .unwrap()
            .extend(t.join().expect("writer thread"));
    }
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());

    let srv2 = Launch::default().data_dir(&srv.dir).start();
    let ws2 = Ws {
        srv: &srv2,
        id: wsid.clone(),
        key: key.clone(),
    };
    let listed: std::collections::HashSet<String> =
        crate::inventory::list_all_sessions(&ws2, Some(&pool), 1000)
            .into_iter()
            .collect();
    let lost: Vec<_> = acked.iter().filter(|id| !listed.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(3)]
    );
    assert_eq!(
        srv2.rpc("GetWorkspace", &key, json!({ "workspaceId": wsid }))
            .status,
        200
    );
}
