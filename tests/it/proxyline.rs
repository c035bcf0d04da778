//! SyncProvider for Proxyline against a fake of the shape written down in
//! src/vendor/proxyline.rs (`GET /api/proxies/?api_key=…&status=active&page=N`,
//! `count`/`next`/`results`, results with `ip`, `port_http`, `port_socks5`,
//! `user`, `password`, `date_end`): sessions carry the vendor's expiry and
//! are handed out no more from that moment, without waiting for a sync.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::common::Server;
use crate::inventory::{id_of, Ws};

const KEY: &str = "pl-key&with=odd chars";

/// Serves `results` (all on one page) to the right `api_key`.
fn fake(results: Arc<Mutex<Vec<Value>>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap_or(0);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let target = line.split(' ').nth(1).unwrap_or("").to_string();
            let (status, body) = if !target.starts_with("/api/proxies/?")
                || !target.contains("status=active")
            {
                (404, json!({ "detail": "Not found." }))
            } else if !target.contains("api_key=pl-key%26with%3Dodd%20chars&") {
                (403, json!({ "detail": "Invalid api key." }))
            } else {
                let res = results.lock().unwrap().clone();
                (
                    200,
                    json!({ "count": res.len(), "next": null, "previous": null, "results": res }),
                )
            };
            let body = body.to_string();
            let mut s = s;
            let out = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(out.as_bytes()).ok();
        }
    });
    url
}

/// RFC 3339 (UTC, whole seconds) `secs` from now.
fn in_secs(secs: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + secs;
    let (days, rem) = (now.div_euclid(86_400), now.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn item(id: i64, port_http: Option<u16>, port_socks5: Option<u16>, date_end: &str) -> Value {
    json!({
        "id": id, "ip": format!("10.9.0.{id}"), "internal_ip": null,
        "port_http": port_http, "port_socks5": port_socks5,
        "user": format!("u{id}"), "password": format!("p{id}:@/"),
        "order_id": 1, "type": "dedicated", "ip_version": 4, "country": "de",
        "date": "2026-01-01T00:00:00Z", "date_end": date_end, "tags": []
    })
}

fn setup<'a>(srv: &'a Server, url: &str, key: &str) -> (Ws<'a>, String, String) {
    let ws = Ws::new(srv, "OWNER");
    let pool = ws.pool(json!({}));
    let prov = id_of(&ws.provider(
        "PROXYLINE",
        json!({ "credentials": { "apiKey": key }, "apiBaseUrl": url, "sync": { "poolId": pool } }),
    ));
    (ws, prov, pool)
}

fn by_token(ws: &Ws, pool: &str) -> std::collections::HashMap<String, Value> {
    let ids =
        ws.ok("ListSessions", json!({ "poolId": pool, "pageSize": 100 }))["sessionIds"].clone();
    ws.ok("BatchGetSessions", json!({ "sessionIds": ids }))["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["token"].as_str().unwrap().to_owned(), s.clone()))
        .collect()
}

#[test]
fn proxyline_proxies_become_sessions_with_their_expiry_and_a_refused_key_is_named() {
    let results = Arc::new(Mutex::new(vec![
        item(1, Some(8001), Some(9001), &in_secs(86_400)),
        item(2, None, Some(9002), "2030-01-01 00:00:00"),
        item(3, Some(8003), None, "2020-01-01T00:00:00Z"),
    ]));
    let url = fake(results.clone());
    let srv = Server::start();
    let (ws, prov, pool) = setup(&srv, &url, KEY);
    let r = ws.ok("SyncProvider", json!({ "providerId": prov }))["result"].clone();
    assert_eq!(r["created"], "3", "{r}");
    let s = by_token(&ws, &pool);
    assert_eq!(
        (s["1"]["scheme"].as_str(), s["1"]["port"].as_i64()),
        (Some("http"), Some(8001))
    );
    assert_eq!(
        (s["2"]["scheme"].as_str(), s["2"]["port"].as_i64()),
        (Some("socks5"), Some(9002))
    );
    assert_eq!(s["2"]["expiresAt"], "2030-01-01T00:00:00Z");
    // Already expired when synced: stored disabled, and listed as disabled.
    assert_eq!(s["3"].get("enabled"), None, "false is left out");
    assert_eq!(s["1"]["enabled"], true);
    let disabled = ws.ok(
        "ListSessions",
        json!({ "poolId": pool, "state": "SESSION_STATE_DISABLED" }),
    );
    assert_eq!(disabled["sessionIds"], json!([s["3"]["id"]]));
    // The login resolves with its hard characters intact.
    let proxy = ws.ok(
        "ResolveProxy",
        json!({ "poolId": pool, "accountName": "bot" }),
    )["proxy"]
        .clone();
    assert!(
        proxy["password"].as_str().unwrap().ends_with(":@/"),
        "{proxy}"
    );
    // Unchanged at the vendor: nothing written.
    let again = ws.ok("SyncProvider", json!({ "providerId": prov }))["result"].clone();
    assert_eq!(again["unchanged"], "3", "{again}");
    // A renewal enables the expired one again.
    results.lock().unwrap()[2] = item(3, Some(8003), None, &in_secs(86_400));
    let renewed = ws.ok("SyncProvider", json!({ "providerId": prov }))["result"].clone();
    assert_eq!(renewed["updated"], "1", "{renewed}");
    assert_eq!(by_token(&ws, &pool)["3"]["enabled"], true);

    // A key Proxyline refuses: failed_precondition naming the provider, and
    // the key in no answer.
    let (ws2, prov2, _) = setup(&srv, &url, "wrong-key-4f1e");
    let e = ws2.call("SyncProvider", json!({ "providerId": prov2 }));
    e.assert_error(400, "failed_precondition");
    assert!(
        e.text().contains("Proxyline refused the API key"),
        "{}",
        e.text()
    );
    assert!(!e.text().contains("wrong-key-4f1e"));
    assert!(!srv.stderr().contains("wrong-key-4f1e") && !srv.stderr().contains("pl-key"));
}

#[test]
fn an_expired_proxy_is_not_handed_out_from_its_expiry_without_a_sync() {
    let results = Arc::new(Mutex::new(vec![item(1, Some(8001), None, &in_secs(3))]));
    let url = fake(results.clone());
    let srv = Server::start();
    let (ws, prov, pool) = setup(&srv, &url, KEY);
    ws.ok("SyncProvider", json!({ "providerId": prov }));
    let first = ws.ok(
        "ResolveProxy",
        json!({ "poolId": pool, "accountName": "bot" }),
    );
    assert_eq!(first["proxy"]["port"], 8001);
    // A second proxy arrives; the first is still current, so the account
    // stays.
    results
        .lock()
        .unwrap()
        .push(item(2, Some(8002), None, &in_secs(86_400)));
    ws.ok("SyncProvider", json!({ "providerId": prov }));
    let kept = ws.ok(
        "ResolveProxy",
        json!({ "poolId": pool, "accountName": "bot" }),
    );
    assert_eq!(kept["proxy"]["port"], 8001);
    // Past the first one's date_end, with no sync in between: the account
    // moves to the other one, and the expired one counts as disabled.
    std::thread::sleep(Duration::from_millis(4_100));
    let moved = ws.ok(
        "ResolveProxy",
        json!({ "poolId": pool, "accountName": "bot" }),
    );
    assert_eq!(moved["proxy"]["port"], 8002, "{moved}");
    let stats = ws.ok("GetPoolStats", json!({ "poolId": pool }));
    assert_eq!(stats["sessions"]["disabled"], "1", "{stats}");
    // Pinned to an expired session: refused until moved or unpinned.
    let a = moved["assignment"]["id"].clone();
    let expired_id = by_token(&ws, &pool)["1"]["id"].clone();
    ws.ok(
        "UpdateAssignment",
        json!({ "assignmentId": a, "sessionId": expired_id, "pinned": true }),
    );
    ws.call(
        "ResolveProxy",
        json!({ "poolId": pool, "accountName": "bot" }),
    )
    .assert_error(400, "failed_precondition");
}
