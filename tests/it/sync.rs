//! SyncProvider against a fake Webshare (API v2 proxy list) the test runs
//! in-process on 127.0.0.1: its documented shapes (`count`/`next`/`results`,
//! `Authorization: Token …`, 401 `{"detail": "Invalid token."}`, 429 with
//! `Retry-After`), and its faults: 500, slow answers, malformed JSON.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::Server;
use crate::inventory::{id_of, Ws};

const KEY: &str = "ws-secret-key-0123456789abcdef";

#[derive(Clone)]
struct Proxy {
    id: String,
    ip: String,
    port: u16,
    user: String,
    pass: String,
    valid: bool,
}

fn proxy(i: usize) -> Proxy {
    Proxy {
        id: format!("d-{i}"),
        ip: format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256),
        port: 8000 + (i % 1000) as u16,
        user: format!("user{i}"),
        pass: format!("pw{i}"),
        valid: true,
    }
}

/// A scripted answer that replaces the next normal one.
struct Canned {
    status: u16,
    headers: String,
    body: String,
}

#[derive(Default)]
struct State {
    proxies: Vec<Proxy>,
    key: String,
    canned: Vec<Canned>,
    /// Every answer is delayed by this much.
    delay: Duration,
    requests: usize,
}

#[derive(Clone)]
struct Fake {
    url: String,
    state: Arc<Mutex<State>>,
}

impl Fake {
    fn start(n: usize) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            proxies: (0..n).map(proxy).collect(),
            key: KEY.into(),
            ..Default::default()
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || serve(s, &st));
            }
        });
        Fake { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

fn serve(s: std::net::TcpStream, st: &Mutex<State>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap_or(0);
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut auth = String::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h
            .strip_prefix("Authorization: ")
            .or(h.strip_prefix("authorization: "))
        {
            auth = v.trim().to_string();
        }
    }
    let (delay, (status, headers, body)) = {
        let mut g = st.lock().unwrap();
        g.requests += 1;
        (g.delay, answer(&mut g, &target, &auth))
    };
    std::thread::sleep(delay);
    let mut s = s;
    let out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    s.write_all(out.as_bytes()).ok();
}

fn answer(g: &mut State, target: &str, auth: &str) -> (u16, String, String) {
    if auth != format!("Token {}", g.key) {
        return (401, String::new(), r#"{"detail": "Invalid token."}"#.into());
    }
    if !g.canned.is_empty() {
        let c = g.canned.remove(0);
        return (c.status, c.headers, c.body);
    }
    assert!(target.starts_with("/api/v2/proxy/list/?"), "{target}");
    let backbone = target.contains("mode=backbone");
    assert!(backbone || target.contains("mode=direct"), "{target}");
    let q = |k: &str| -> usize {
        target
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let (page, size) = (q("page"), q("page_size"));
    let start = (page - 1) * size;
    let results: Vec<Value> = g
        .proxies
        .iter()
        .skip(start)
        .take(size)
        .map(|p| {
            json!({
                "id": p.id, "username": p.user, "password": p.pass,
                // Backbone mode: no address of its own (p.webshare.io).
                "proxy_address": if backbone { Value::Null } else { json!(p.ip) },
                "port": p.port, "valid": p.valid,
                "last_verification": "2022-06-14T11:58:10.246406-07:00",
                "country_code": "US", "city_name": "New York",
                "created_at": "2022-06-14T11:58:10.246406-07:00"
            })
        })
        .collect();
    let more = start + size < g.proxies.len();
    let next = more.then(|| {
        format!(
            "https://proxy.webshare.io/api/v2/proxy/list/?mode=direct&page={}&page_size={size}",
            page + 1
        )
    });
    let body =
        json!({ "count": g.proxies.len(), "next": next, "previous": null, "results": results });
    (200, String::new(), body.to_string())
}

/// A Webshare provider pointed at the fake, and a pool set as its sync pool.
fn setup<'a>(srv: &'a Server, fake: &Fake) -> (Ws<'a>, String, String) {
    let ws = Ws::new(srv, "OWNER");
    let pool = ws.pool(json!({}));
    let prov = id_of(&ws.provider(
        "WEBSHARE",
        json!({
            "credentials": { "apiKey": KEY },
            "apiBaseUrl": fake.url,
            "sync": { "poolId": pool },
        }),
    ));
    (ws, prov, pool)
}

fn sync(ws: &Ws, prov: &str) -> Value {
    ws.ok("SyncProvider", json!({ "providerId": prov }))["result"].clone()
}

fn counts(r: &Value) -> [i64; 5] {
    ["created", "updated", "disabled", "removed", "unchanged"]
        .map(|k| r[k].as_str().map_or(0, |s| s.parse().unwrap()))
}

/// Every live session of the pool: token → session JSON.
fn sessions(ws: &Ws, pool: &str) -> std::collections::HashMap<String, Value> {
    let mut out = std::collections::HashMap::new();
    let mut cursor = String::new();
    loop {
        let r = ws.ok(
            "ListSessions",
            json!({ "poolId": pool, "pageSize": 100, "cursor": cursor }),
        );
        let ids = r["sessionIds"].clone();
        if ids.as_array().is_some_and(|a| !a.is_empty()) {
            let got = ws.ok("BatchGetSessions", json!({ "sessionIds": ids }));
            for s in got["sessions"].as_array().into_iter().flatten() {
                out.insert(s["token"].as_str().unwrap().to_string(), s.clone());
            }
        }
        match r["nextCursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = c.into(),
            _ => return out,
        }
    }
}

#[test]
fn first_sync_creates_every_page_and_a_resync_without_change_writes_nothing() {
    let srv = Server::start();
    let fake = Fake::start(250);
    let (ws, prov, pool) = setup(&srv, &fake);
    let r = sync(&ws, &prov);
    assert_eq!(counts(&r), [250, 0, 0, 0, 0], "{r}");
    assert_eq!(r["error"].as_str().unwrap_or(""), "");
    let before = sessions(&ws, &pool);
    assert_eq!(before.len(), 250);
    let s = &before["d-7"];
    assert_eq!(s["host"], "10.0.0.7");
    assert_eq!(s["port"], 8007);
    assert_eq!(s["username"], "user7");

    let r = sync(&ws, &prov);
    assert_eq!(counts(&r), [0, 0, 0, 0, 250], "{r}");
    let after = sessions(&ws, &pool);
    for (t, s) in &before {
        assert_eq!(s["version"], after[t]["version"], "{t}");
        assert_eq!(s["updatedAt"], after[t]["updatedAt"], "{t}");
    }
    let p = ws.ok("GetProvider", json!({ "providerId": prov }))["provider"].clone();
    assert_eq!(counts(&p["lastSync"]), [0, 0, 0, 0, 250], "{p}");
    assert_eq!(p["sync"]["poolId"], pool);
    assert!(!p.to_string().contains(KEY));
    assert!(!srv.stderr().contains(KEY));
}

#[test]
fn vendor_replacing_ten_percent_marking_invalid_and_changing_a_password_is_reconciled() {
    let srv = Server::start();
    let fake = Fake::start(100);
    let (ws, prov, pool) = setup(&srv, &fake);
    sync(&ws, &prov);
    let before = sessions(&ws, &pool);
    fake.with(|g| {
        for i in 0..10 {
            g.proxies[i] = proxy(1000 + i);
        }
        for i in 10..15 {
            g.proxies[i].valid = false;
        }
        g.proxies[20].pass = "new-password".into();
        g.proxies[21].port = 9999;
    });
    let r = sync(&ws, &prov);
    assert_eq!(counts(&r), [10, 2, 5, 10, 83], "{r}");
    let after = sessions(&ws, &pool);
    assert_eq!(after.len(), 100);
    assert!(!after.contains_key("d-0") && after.contains_key("d-1000"));
    assert!(
        !after["d-10"]["enabled"].as_bool().unwrap_or(false),
        "invalid is disabled"
    );
    assert_eq!(after["d-21"]["port"], 9999);
    assert_eq!(after["d-20"]["version"], "2");
    assert_eq!(before["d-30"]["version"], after["d-30"]["version"]);

    // Valid again: enabled again, counted as updated.
    fake.with(|g| g.proxies[10].valid = true);
    let r = sync(&ws, &prov);
    assert_eq!(counts(&r), [0, 1, 0, 0, 99], "{r}");
}

#[test]
fn vendor_faults_are_clear_errors_that_change_nothing_and_never_show_the_key() {
    let srv = Server::start_with(&[("PROXYPLANE_VENDOR_TIMEOUT_SECONDS", "1")], &[], None);
    let fake = Fake::start(30);
    let (ws, prov, pool) = setup(&srv, &fake);
    sync(&ws, &prov);
    let before = sessions(&ws, &pool);
    fake.with(|g| g.proxies.truncate(10));

    let canned = |status: u16, headers: &str, body: &str, times: usize| {
        fake.with(|g| {
            for _ in 0..times {
                g.canned.push(Canned {
                    status,
                    headers: headers.into(),
                    body: body.into(),
                });
            }
        })
    };
    // 500 on every attempt: unavailable.
    canned(500, "", "{}", 10);
    let r = ws.call("SyncProvider", json!({ "providerId": prov }));
    r.assert_error(503, "unavailable");
    assert!(r.text().contains("HTTP 500"), "{}", r.text());
    fake.with(|g| g.canned.clear());
    // Malformed JSON.
    canned(200, "", "{\"count\": 3, \"results\": [", 1);
    let r = ws.call("SyncProvider", json!({ "providerId": prov }));
    r.assert_error(503, "unavailable");
    assert!(
        r.text().contains("not valid JSON") || r.text().contains("cut short"),
        "{}",
        r.text()
    );
    // Slow: past the timeout on every attempt.
    fake.with(|g| g.delay = Duration::from_millis(1500));
    let r = ws.call("SyncProvider", json!({ "providerId": prov }));
    r.assert_error(503, "unavailable");
    assert!(r.text().contains("in time"), "{}", r.text());
    fake.with(|g| g.delay = Duration::ZERO);
    // Key revoked at the vendor: failed_precondition naming the provider.
    fake.with(|g| g.key = "another".into());
    let r = ws.call("SyncProvider", json!({ "providerId": prov }));
    r.assert_error(400, "failed_precondition");
    assert!(r.text().contains("WEBSHARE account"), "{}", r.text());
    let p = ws.ok("GetProvider", json!({ "providerId": prov }))["provider"].clone();
    assert!(
        p["lastSync"]["error"].as_str().unwrap().contains("refused"),
        "{p}"
    );
    // Nothing changed through all of it.
    let after = sessions(&ws, &pool);
    assert_eq!(after.len(), before.len());
    for (t, s) in &before {
        assert_eq!(s["version"], after[t]["version"], "{t}");
    }
    assert!(!srv.stderr().contains(KEY), "the key is in the log");
    assert!(!p.to_string().contains(KEY));

    // 429 with Retry-After once, then served: the sync succeeds.
    fake.with(|g| g.key = KEY.into());
    canned(
        429,
        "Retry-After: 1\r\n",
        r#"{"detail": "Request was throttled."}"#,
        1,
    );
    let n0 = fake.with(|g| g.requests);
    let r = sync(&ws, &prov);
    assert_eq!(counts(&r), [0, 0, 0, 20, 10], "{r}");
    assert_eq!(
        fake.with(|g| g.requests) - n0,
        2,
        "one throttled request, one served"
    );
}

#[test]
fn a_generic_or_disabled_provider_and_a_missing_pool_are_refused_by_name() {
    let srv = Server::start();
    let fake = Fake::start(1);
    let (ws, _prov, _pool) = setup(&srv, &fake);
    let generic = ws.generic();
    let r = ws.call(
        "SyncProvider",
        json!({ "providerId": generic, "poolId": ws.pool(json!({})) }),
    );
    r.assert_error(400, "failed_precondition");
    assert!(r.text().contains("PROVIDER_TYPE_GENERIC"), "{}", r.text());
    let ws2 = Ws::new(&srv, "OWNER");
    let p = id_of(&ws2.provider(
        "WEBSHARE",
        json!({ "credentials": { "apiKey": KEY }, "apiBaseUrl": fake.url }),
    ));
    let r = ws2.call("SyncProvider", json!({ "providerId": p }));
    r.assert_error(400, "invalid_argument");
    assert!(r.text().contains("pool_id"), "{}", r.text());
    let r = ws2.call(
        "ConnectProvider",
        json!({ "type": "PROVIDER_TYPE_PROXYLINE", "name": "x", "apiBaseUrl": "ftp://x" }),
    );
    r.assert_error(400, "invalid_argument");
    assert!(r.text().contains("api_base_url"), "{}", r.text());
    // A disabled provider takes no new sessions, so it is not synced.
    ws2.ok(
        "UpdateProvider",
        json!({ "providerId": p, "enabled": false }),
    );
    let r = ws2.call(
        "SyncProvider",
        json!({ "providerId": p, "poolId": ws2.pool(json!({})) }),
    );
    r.assert_error(400, "failed_precondition");
    assert!(r.text().contains("disabled"), "{}", r.text());
}

#[test]
fn a_ten_thousand_proxy_account_syncs_and_resyncs_unchanged() {
    let srv = Server::start();
    let fake = Fake::start(10_000);
    let (ws, prov, _pool) = setup(&srv, &fake);
    assert_eq!(counts(&sync(&ws, &prov)), [10_000, 0, 0, 0, 0]);
    assert_eq!(counts(&sync(&ws, &prov)), [0, 0, 0, 0, 10_000]);
}

#[test]
fn sync_under_resolve_load_moves_assignments_off_removed_proxies_without_errors() {
    let srv = Server::start();
    let fake = Fake::start(20);
    let (ws, prov, pool) = setup(&srv, &fake);
    sync(&ws, &prov);
    let accounts: Vec<String> = (0..20).map(|i| format!("bot{i}")).collect();
    for a in &accounts {
        ws.resolve_ok(&pool, a);
    }
    // The vendor drops half the list, replaced by new proxies.
    fake.with(|g| {
        for i in 0..10 {
            g.proxies[i] = proxy(500 + i);
        }
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, key, id, pool, accounts) = (
            stop.clone(),
            ws.key.clone(),
            ws.id.clone(),
            pool.clone(),
            accounts.clone(),
        );
        let srv = &srv;
        std::thread::scope(|sc| {
            let stop2 = stop.clone();
            let h = sc.spawn(move || {
                let stop = stop2;
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n == 0 {
                    for a in &accounts {
                        let r = srv.rpc(
                            "ResolveProxy",
                            &key,
                            json!({ "workspaceId": id, "poolId": pool, "accountName": a }),
                        );
                        assert_eq!(r.status, 200, "resolve during sync: {}", r.text());
                        n += 1;
                    }
                }
                n
            });
            let r = sync(&ws, &prov);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(counts(&r), [10, 0, 0, 10, 10], "{r}");
            h.join().unwrap()
        })
    };
    assert!(load > 0);
    let live = sessions(&ws, &pool);
    for a in &accounts {
        let (asg, proxy) = ws.resolve_ok(&pool, a);
        let sid = asg["sessionId"].as_str().unwrap();
        assert!(
            live.values().any(|s| s["id"] == sid),
            "{a} still on a removed session: {asg}"
        );
        assert!(proxy.to_string().contains("10.0."), "{proxy}");
    }
}

#[test]
fn a_provider_with_a_schedule_is_synced_by_the_server_itself() {
    let srv = Server::start();
    let fake = Fake::start(5);
    let ws = Ws::new(&srv, "OWNER");
    let pool = ws.pool(json!({}));
    let prov = id_of(&ws.provider(
        "WEBSHARE",
        json!({
            "credentials": { "apiKey": KEY },
            "apiBaseUrl": fake.url,
            "sync": { "poolId": pool, "intervalSeconds": 60 },
        }),
    ));
    // Never synced: due at once (the schedule thread looks every 2 s).
    let mut last = Value::Null;
    for _ in 0..150 {
        last = ws.ok("GetProvider", json!({ "providerId": prov }))["provider"]["lastSync"].clone();
        if !last.is_null() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(counts(&last), [5, 0, 0, 0, 0], "{last}");
    assert_eq!(sessions(&ws, &pool).len(), 5);
    // A scheduled provider that cannot sync records why (and waits its
    // interval rather than retrying at every tick).
    // (Proxyline's API at a port where nothing listens.)
    let pl = id_of(&ws.provider(
        "PROXYLINE",
        json!({
            "credentials": { "apiKey": KEY },
            "apiBaseUrl": "http://127.0.0.1:9",
            "sync": { "poolId": pool, "intervalSeconds": 60 },
        }),
    ));
    let mut err = String::new();
    for _ in 0..150 {
        let p = ws.ok("GetProvider", json!({ "providerId": pl }))["provider"].clone();
        err = p["lastSync"]["error"].as_str().unwrap_or("").to_string();
        if !err.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(err.contains("Proxyline is unavailable"), "{err}");
    let r = ws.call(
        "UpdateProvider",
        json!({ "providerId": prov, "sync": { "poolId": pool, "intervalSeconds": 5 } }),
    );
    r.assert_error(400, "invalid_argument");
    assert!(r.text().contains("sync.interval_seconds"), "{}", r.text());
}

#[test]
fn a_second_sync_of_the_same_provider_while_one_runs_is_aborted() {
    let srv = Server::start();
    let fake = Fake::start(3);
    let (ws, prov, _pool) = setup(&srv, &fake);
    // The first sync's page is held back until the second call is answered.
    fake.with(|g| g.delay = Duration::from_millis(1500));
    std::thread::scope(|sc| {
        let first = sc.spawn(|| ws.call("SyncProvider", json!({ "providerId": prov })));
        // Wait until the fake has the first sync's request.
        while fake.with(|g| g.requests) == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let r = ws.call("SyncProvider", json!({ "providerId": prov }));
        r.assert_error(409, "aborted");
        assert!(r.text().contains("already running"), "{}", r.text());
        let r = first.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(counts(&r.json["result"]), [3, 0, 0, 0, 0]);
    });
}

#[test]
fn backbone_mode_reaches_each_proxy_through_p_webshare_io_and_is_for_webshare_only() {
    let fake = Fake::start(3);
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let pool = ws.pool(json!({}));
    let prov = id_of(&ws.provider(
        "WEBSHARE",
        json!({
            "credentials": { "apiKey": KEY },
            "apiBaseUrl": fake.url,
            "sync": { "poolId": pool, "webshareMode": "backbone" },
        }),
    ));
    let got = ws.ok("GetProvider", json!({ "providerId": prov }));
    assert_eq!(got["provider"]["sync"]["webshareMode"], "backbone");
    assert_eq!(counts(&sync(&ws, &prov)), [3, 0, 0, 0, 0]);
    let s = sessions(&ws, &pool);
    assert_eq!(s["d-1"]["host"], "p.webshare.io", "{:?}", s["d-1"]);
    assert_eq!(s["d-1"]["port"], 8001);
    // Back to direct: the same proxies, now at their own addresses.
    ws.ok(
        "UpdateProvider",
        json!({ "providerId": prov, "sync": { "poolId": pool, "webshareMode": "direct" } }),
    );
    assert_eq!(counts(&sync(&ws, &prov)), [0, 3, 0, 0, 0]);
    assert_eq!(sessions(&ws, &pool)["d-1"]["host"], "10.0.0.1");
    // Refused by name: an unknown mode, or a mode on another vendor.
    for (ptype, mode) in [("WEBSHARE", "residential"), ("PROXYLINE", "backbone")] {
        let ws2 = Ws::new(&srv, "OWNER");
        let r = ws2.call(
            "ConnectProvider",
            json!({
                "type": format!("PROVIDER_TYPE_{ptype}"), "name": "x",
                "credentials": { "apiKey": KEY }, "sync": { "webshareMode": mode },
            }),
        );
        r.assert_error(400, "invalid_argument");
        assert!(r.text().contains("sync.webshare_mode"), "{}", r.text());
    }
}
