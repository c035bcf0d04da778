//! Keyset pagination: ListWorkspaces stable under concurrent inserts, page
//! size defaults and clamping; cursors of every List method bound to their
//! list (method, workspace, filters) and tamper-proof; List filters that name
//! something unknown are not_found.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::common::*;
use crate::inventory::{id_of, merge, Ws};

/// Creates `n` workspaces over one keep-alive connection; their ids.
fn create_many(s: &Server, prefix: &str, n: usize) -> Vec<String> {
    let mut conn = s.conn();
    (0..n)
        .map(|i| {
            let r = conn.rpc(
                "CreateWorkspace",
                &s.admin,
                &json!({ "name": format!("{prefix} {i}") }),
            );
            r.ok();
            r.json["workspace"]["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn pages_of_seven_under_concurrent_inserts_miss_nothing_and_repeat_nothing() {
    let s = Arc::new(Server::start());
    let before: Vec<String> = create_many(&s, "before", 50);

    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (s, stop, made) = (s.clone(), stop.clone(), made.clone());
        std::thread::spawn(move || {
            let mut conn = s.conn();
            // Bounded, so the reader (which follows new rows at the end)
            // always catches up.
            for i in 0..80 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                conn.rpc(
                    "CreateWorkspace",
                    &s.admin,
                    &json!({ "name": format!("during {i}") }),
                )
                .ok();
                made.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while made.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }

    let mut conn = s.conn();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    let made_at_start = made.load(Ordering::Relaxed);
    loop {
        pages += 1;
        assert!(pages < 200, "pagination did not end");
        let r = conn.rpc(
            "ListWorkspaces",
            &s.admin,
            &json!({ "pageSize": 7, "cursor": cursor }),
        );
        r.ok();
        let items = r.json["workspaces"].as_array().unwrap();
        assert!(items.len() <= 7, "page of {}", items.len());
        seen.extend(items.iter().map(|w| w["id"].as_str().unwrap().to_owned()));
        cursor = r.json["nextCursor"].as_str().unwrap_or("").to_owned();
        if cursor.is_empty() {
            break;
        }
        assert!(!items.is_empty(), "an empty page with a next cursor");
        if pages == 1 {
            // Make sure at least one insert lands between two pages.
            let t = std::time::Instant::now();
            while made.load(Ordering::Relaxed) == made_at_start {
                assert!(t.elapsed() < IO_TIMEOUT, "the writer stalled");
                std::thread::yield_now();
            }
        }
    }
    let made_at_end = made.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an id came back twice");
    for id in &before {
        assert!(
            unique.contains(id),
            "pre-existing workspace {id} was missed"
        );
    }
    assert!(
        made_at_end > made_at_start,
        "the writer made no workspace while pages were read; the test proved nothing"
    );
}

#[test]
fn last_page_has_an_empty_next_cursor_and_pages_cover_all() {
    let s = Server::start();
    let ids = create_many(&s, "exact", 14);
    let mut conn = s.conn();
    let r1 = conn.rpc("ListWorkspaces", &s.admin, &json!({ "pageSize": 7 }));
    r1.ok();
    let c1 = r1.json["nextCursor"].as_str().unwrap().to_owned();
    assert!(!c1.is_empty());
    let r2 = conn.rpc(
        "ListWorkspaces",
        &s.admin,
        &json!({ "pageSize": 7, "cursor": c1 }),
    );
    r2.ok();
    let got: Vec<&str> = r1.json["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .chain(r2.json["workspaces"].as_array().unwrap())
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "creation order, all of them"
    );
    // Exactly 14 rows in pages of 7: the second page is the last.
    assert_eq!(
        r2.json["nextCursor"].as_str().unwrap_or(""),
        "",
        "{}",
        r2.text()
    );
    // pageSize 0 means the default (100).
    let r = conn.rpc("ListWorkspaces", &s.admin, &json!({ "pageSize": 0 }));
    assert_eq!(r.json["workspaces"].as_array().unwrap().len(), 14);
    assert_eq!(r.json["nextCursor"].as_str().unwrap_or(""), "");
}

#[test]
fn page_size_above_1000_is_clamped_and_default_is_100() {
    let s = Server::start();
    // Two writers share the work; SQLite serialises them anyway.
    let s = Arc::new(s);
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || create_many(&s, &format!("bulk{t}"), 501))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut conn = s.conn();
    let r = conn.rpc("ListWorkspaces", &s.admin, &json!({ "pageSize": 5000 }));
    r.ok();
    assert_eq!(
        r.json["workspaces"].as_array().unwrap().len(),
        1000,
        "pageSize 5000 is clamped to 1000"
    );
    let next = r.json["nextCursor"].as_str().unwrap_or("").to_owned();
    assert!(!next.is_empty());
    let r = conn.rpc(
        "ListWorkspaces",
        &s.admin,
        &json!({ "pageSize": 5000, "cursor": next }),
    );
    assert_eq!(r.json["workspaces"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["nextCursor"].as_str().unwrap_or(""), "");
    let r = conn.rpc("ListWorkspaces", &s.admin, &json!({ "pageSize": i32::MAX }));
    assert_eq!(r.json["workspaces"].as_array().unwrap().len(), 1000);
    let r = conn.rpc("ListWorkspaces", &s.admin, &json!({}));
    assert_eq!(
        r.json["workspaces"].as_array().unwrap().len(),
        100,
        "default page size"
    );
    // `proxyplane workspaces list` reads pages of 1000 itself: all of them.
    assert_eq!(
        cli_ok(&s.dir, &["workspaces", "list"]).lines().count(),
        1002
    );
}

#[test]
fn bad_page_size_and_cursors_are_invalid_argument() {
    let s = Server::start();
    create_many(&s, "c", 3);
    let cases = [
        json!({ "pageSize": -1 }),
        json!({ "pageSize": i32::MIN }),
        json!({ "cursor": "garbage" }),
        json!({ "cursor": "%%%" }),
        json!({ "cursor": b64url(&[2u8; 17]) }),
        json!({ "cursor": b64url(&[1u8; 16]) }),
        json!({ "cursor": b64url(&[1u8; 18]) }),
    ];
    for body in cases {
        let r = s.rpc("ListWorkspaces", &s.admin, body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        r.assert_error(400, "invalid_argument");
    }
    // The same checks apply to ListApiKeys.
    let ws = s.create_workspace("keys");
    let r = s.rpc(
        "ListApiKeys",
        &s.admin,
        json!({ "workspaceId": ws, "cursor": "garbage" }),
    );
    r.assert_error(400, "invalid_argument");
    let r = s.rpc(
        "ListApiKeys",
        &s.admin,
        json!({ "workspaceId": ws, "pageSize": -3 }),
    );
    r.assert_error(400, "invalid_argument");
}

#[test]
fn api_keys_paginate_without_repeats() {
    let s = Server::start();
    let ws = s.create_workspace("many keys");
    let mut made = HashSet::new();
    for _ in 0..12 {
        made.insert(s.create_key(&ws, "VIEWER").0);
    }
    let mut conn = s.conn();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..20 {
        let r = conn.rpc(
            "ListApiKeys",
            &s.admin,
            &json!({ "workspaceId": ws, "pageSize": 5, "cursor": cursor }),
        );
        r.ok();
        seen.extend(
            r.json["apiKeys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_owned()),
        );
        cursor = r.json["nextCursor"].as_str().unwrap_or("").to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert!(cursor.is_empty());
    assert_eq!(seen.len(), 12);
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), made);
}

/// One List method as the cursor table exercises it: where it lists, with
/// which key, and what it returns.
struct Listing<'k> {
    method: &'static str,
    key: &'k str,
    body: Value,
    /// The JSON field holding the items.
    items: &'static str,
}

impl Listing<'_> {
    fn call(&self, s: &Server, extra: Value) -> Reply {
        s.rpc(self.method, self.key, merge(self.body.clone(), extra))
    }

    /// An item's identity: ListSessions returns bare ids.
    fn ids(&self, r: &Reply) -> Vec<String> {
        r.json[self.items]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|v| v.as_str().map_or_else(|| id_of(v), str::to_owned))
            .collect()
    }

    /// Every page of size 1, following next_cursor: the ids in order, and
    /// the cursors seen.
    fn walk(&self, s: &Server) -> (Vec<String>, Vec<String>) {
        let (mut ids, mut cursors) = (Vec::new(), Vec::new());
        let mut cursor = String::new();
        for _ in 0..50 {
            let r = self.call(s, json!({ "pageSize": 1, "cursor": cursor }));
            assert_eq!(r.status, 200, "{} page: {}", self.method, r.text());
            let page = self.ids(&r);
            assert!(page.len() <= 1, "{}: page of {}", self.method, page.len());
            ids.extend(page);
            cursor = r.json["nextCursor"].as_str().unwrap_or("").to_owned();
            if cursor.is_empty() {
                return (ids, cursors);
            }
            cursors.push(cursor.clone());
        }
        panic!("{} never ended", self.method);
    }
}

/// One character of `c` changed (to another base64url character).
fn flip(c: &str, at: usize) -> String {
    let mut b = c.as_bytes().to_vec();
    b[at] = if b[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[test]
fn cursors_page_only_the_list_they_came_from() {
    let s = Server::start();
    // Two workspaces with the same shape: two providers, two pools (the first
    // with two sessions and two assignments, the second with one of each),
    // three keys.
    let a = Ws::new(&s, "OWNER");
    let b = Ws::new(&s, "OWNER");
    let mut pools = Vec::new();
    for ws in [&a, &b] {
        let prov = ws.generic();
        ws.provider("WEBSHARE", json!({}));
        let p1 = ws.pool(json!({ "name": "one" }));
        let p2 = ws.pool(json!({ "name": "two" }));
        let s1 = ws.static_session(&p1, &prov, 1);
        let s2 = ws.static_session(&p1, &prov, 2);
        let s3 = ws.static_session(&p2, &prov, 3);
        for (pool, session, account) in [(&p1, &s1, "x"), (&p1, &s2, "y"), (&p2, &s3, "x")] {
            ws.ok(
                "CreateAssignment",
                json!({ "poolId": pool, "sessionId": session, "accountName": account }),
            );
        }
        ws.key_of("VIEWER");
        ws.key_of("EDITOR");
        pools.push((p1, p2, s1));
    }
    let (p1, p2, s1) = &pools[0];
    let (b_p1, _, _) = &pools[1];
    let admin = s.admin.as_str();
    let on = |ws: &Ws, body: Value| merge(json!({ "workspaceId": ws.id }), body);

    // Each List method in workspace A (or the ADMIN scope) with a filter
    // where it has one, so that it has at least two pages of one item.
    let lists = [
        Listing {
            method: "ListWorkspaces",
            key: admin,
            body: json!({}),
            items: "workspaces",
        },
        Listing {
            method: "ListApiKeys",
            key: &a.key,
            body: on(&a, json!({})),
            items: "apiKeys",
        },
        Listing {
            method: "ListProviders",
            key: &a.key,
            body: on(&a, json!({})),
            items: "providers",
        },
        Listing {
            method: "ListPools",
            key: &a.key,
            body: on(&a, json!({})),
            items: "pools",
        },
        Listing {
            method: "ListSessions",
            key: &a.key,
            body: on(&a, json!({ "poolId": p1 })),
            items: "sessionIds",
        },
        Listing {
            method: "ListAssignments",
            key: &a.key,
            body: on(&a, json!({ "poolId": p1 })),
            items: "assignments",
        },
    ];
    // Where each list's cursor must not work: (what, method, key, body).
    // The key is always one that may list there, so only the cursor is wrong.
    let elsewhere = |l: &Listing| -> Vec<(String, &'static str, String, Value)> {
        let mut v = Vec::new();
        let in_b = |body: Value| merge(body, json!({ "workspaceId": b.id }));
        match l.method {
            // The ADMIN-wide list vs one workspace's own list.
            "ListWorkspaces" => v.push((
                "a workspace key's scope".into(),
                l.method,
                a.key.clone(),
                json!({}),
            )),
            "ListApiKeys" => {
                v.push((
                    "another workspace".into(),
                    l.method,
                    b.key.clone(),
                    in_b(json!({})),
                ));
                v.push((
                    "the ADMIN keys".into(),
                    l.method,
                    admin.to_owned(),
                    json!({}),
                ));
            }
            "ListSessions" => {
                v.push((
                    "another workspace".into(),
                    l.method,
                    b.key.clone(),
                    in_b(json!({ "poolId": b_p1 })),
                ));
                v.push((
                    "another pool".into(),
                    l.method,
                    a.key.clone(),
                    on(&a, json!({ "poolId": p2 })),
                ));
                v.push((
                    "no pool filter".into(),
                    l.method,
                    a.key.clone(),
                    on(&a, json!({})),
                ));
            }
            "ListAssignments" => {
                v.push((
                    "another workspace".into(),
                    l.method,
                    b.key.clone(),
                    in_b(json!({ "poolId": b_p1 })),
                ));
                v.push((
                    "another pool".into(),
                    l.method,
                    a.key.clone(),
                    on(&a, json!({ "poolId": p2 })),
                ));
                v.push((
                    "no filter".into(),
                    l.method,
                    a.key.clone(),
                    on(&a, json!({})),
                ));
                v.push((
                    "an added session filter".into(),
                    l.method,
                    a.key.clone(),
                    on(&a, json!({ "poolId": p1, "sessionId": s1 })),
                ));
                v.push((
                    "an added account filter".into(),
                    l.method,
                    a.key.clone(),
                    on(&a, json!({ "poolId": p1, "accountName": "x" })),
                ));
            }
            _ => v.push((
                "another workspace".into(),
                l.method,
                b.key.clone(),
                in_b(json!({})),
            )),
        }
        // Every other List method, each on a body that is valid for it.
        for other in &lists {
            if other.method != l.method {
                v.push((
                    other.method.to_string(),
                    other.method,
                    other.key.to_owned(),
                    other.body.clone(),
                ));
            }
        }
        v
    };

    let mut failures = Vec::new();
    for l in &lists {
        // A valid cursor pages correctly: pages of one, in order, are the
        // whole list.
        let whole = l.call(&s, json!({}));
        assert_eq!(whole.status, 200, "{}: {}", l.method, whole.text());
        let all = l.ids(&whole);
        assert!(
            all.len() >= 2,
            "{}: the fixture has {} items",
            l.method,
            all.len()
        );
        let (paged, cursors) = l.walk(&s);
        assert_eq!(
            paged, all,
            "{}: pages of one differ from the whole list",
            l.method
        );
        let cursor = &cursors[0];
        assert!(
            cursor
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{}: cursor {cursor} is not URL-safe",
            l.method
        );

        let mut wrong: Vec<(String, &str, String, Value)> = elsewhere(l);
        for at in [0, cursor.len() / 2, cursor.len() - 1] {
            wrong.push((
                format!("character {at} changed"),
                l.method,
                l.key.to_owned(),
                merge(l.body.clone(), json!({ "cursor": flip(cursor, at) })),
            ));
        }
        wrong.push((
            "truncated".into(),
            l.method,
            l.key.to_owned(),
            merge(
                l.body.clone(),
                json!({ "cursor": &cursor[..cursor.len() - 2] }),
            ),
        ));
        for (what, method, key, body) in wrong {
            let body = if body.get("cursor").is_some() {
                body
            } else {
                merge(body, json!({ "cursor": cursor }))
            };
            let r = s.rpc(method, &key, body.clone());
            let ok = r.status == 400
                && r.json["code"] == "invalid_argument"
                && r.json["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("cursor"));
            if !ok {
                failures.push(format!(
                    "{} cursor used with {what} ({method} {body}): got {} {}",
                    l.method,
                    r.status,
                    r.text()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "cursors accepted where they do not belong:\n{}",
        failures.join("\n")
    );

    // The message tells the caller what to do.
    let r = lists[3].call(&s, json!({ "cursor": lists[2].walk(&s).1[0] }));
    r.assert_error(400, "invalid_argument");
    let msg = r.json["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("next_cursor") && msg.contains("empty cursor"),
        "{msg}"
    );
}

#[test]
fn cursors_stay_valid_across_a_restart() {
    // Keyed by the master key, not by the process: a client paging through a
    // long list is not cut off by a restart.
    let dir = TempDir::new("cursor-restart");
    let s = Launch::default().data_dir(&dir.path).start();
    for i in 0..3 {
        s.create_workspace(&format!("w{i}"));
    }
    let r = s.rpc("ListWorkspaces", &s.admin, json!({ "pageSize": 2 }));
    r.ok();
    let cursor = r.json["nextCursor"].as_str().unwrap().to_owned();
    let admin = s.admin.clone();
    drop(s);
    let s = Launch::default().data_dir(&dir.path).start();
    let r = s.rpc(
        "ListWorkspaces",
        &admin,
        json!({ "pageSize": 2, "cursor": cursor }),
    );
    r.ok();
    assert_eq!(
        r.json["workspaces"].as_array().unwrap().len(),
        1,
        "{}",
        r.text()
    );
}

#[test]
fn list_filters_naming_unknown_things_are_not_found() {
    let s = Server::start();
    let a = Ws::new(&s, "OWNER");
    let b = Ws::new(&s, "OWNER");
    let prov = a.generic();
    let pool = a.pool(json!({}));
    let session = a.static_session(&pool, &prov, 1);
    a.ok(
        "CreateAssignment",
        json!({ "poolId": pool, "sessionId": session, "accountName": "x" }),
    );
    let b_prov = b.generic();
    let b_pool = b.pool(json!({}));
    let b_session = b.static_session(&b_pool, &b_prov, 1);

    let cases = [
        ("ListAssignments", json!({ "poolId": random_id() }), "pool"),
        ("ListAssignments", json!({ "poolId": b_pool }), "pool"),
        (
            "ListAssignments",
            json!({ "sessionId": random_id() }),
            "session",
        ),
        (
            "ListAssignments",
            json!({ "sessionId": b_session }),
            "session",
        ),
        (
            "ListAssignments",
            json!({ "poolId": pool, "sessionId": b_session }),
            "session",
        ),
        // The behaviour ListAssignments now shares.
        ("ListSessions", json!({ "poolId": random_id() }), "pool"),
        ("ListSessions", json!({ "poolId": b_pool }), "pool"),
    ];
    for (method, body, what) in cases {
        let r = a.call(method, body.clone());
        assert_eq!(r.status, 404, "{method} {body}: {}", r.text());
        r.assert_error(404, "not_found");
        assert!(
            r.json["message"].as_str().unwrap_or("").contains(what),
            "{method} {body}: {}",
            r.text()
        );
    }
    // A known filter still lists, and ADMIN naming a workspace that does not
    // exist is not_found on every workspace list.
    let r = a.ok(
        "ListAssignments",
        json!({ "poolId": pool, "sessionId": session }),
    );
    assert_eq!(r["assignments"].as_array().map_or(0, Vec::len), 1);
    // A deleted session still finds the assignments left on it.
    a.ok("DeleteSession", json!({ "sessionId": session }));
    let r = a.ok("ListAssignments", json!({ "sessionId": session }));
    assert_eq!(r["assignments"].as_array().map_or(0, Vec::len), 1, "{r}");
    for method in [
        "ListAssignments",
        "ListSessions",
        "ListPools",
        "ListProviders",
        "ListApiKeys",
    ] {
        let r = s.rpc(method, &s.admin, json!({ "workspaceId": random_id() }));
        r.assert_error(404, "not_found");
    }
}

/// ListSessions' `state` filter: each live session in exactly one state
/// (as GetPoolStats counts them), paged with the filter bound into the
/// cursor; an unknown state is refused naming the field.
#[test]
fn list_sessions_filters_by_state_and_the_cursor_keeps_the_filter() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let provider = id_of(&ws.provider("GENERIC", json!({})));
    let pool = ws.pool(json!({}));
    let ids: Vec<String> = (0..8)
        .map(|i| {
            id_of(&ws.session(
                &pool,
                &provider,
                json!({ "scheme": "http", "host": "10.0.0.9", "port": 9000 + i, "token": format!("s{i}") }),
            ))
        })
        .collect();
    let report = |id: &str, n: usize| {
        for _ in 0..n {
            ws.ok(
                "ReportSessionResult",
                json!({ "sessionId": id, "success": false }),
            );
        }
    };
    // 0, 1: disabled (1 also failing: disabled comes first); 2, 3: cooling
    // down (the default threshold of 3 failures); 4: unhealthy (1 failure);
    // 5, 6, 7: healthy; 8 more deleted sessions never show.
    for id in &ids[0..2] {
        ws.ok(
            "UpdateSession",
            json!({ "sessionId": id, "enabled": false }),
        );
    }
    report(&ids[1], 3);
    report(&ids[2], 3);
    report(&ids[3], 4);
    report(&ids[4], 1);
    let gone = id_of(&ws.session(
        &pool,
        &provider,
        json!({ "scheme": "http", "host": "10.0.0.9", "port": 9100, "token": "gone" }),
    ));
    ws.ok("DeleteSession", json!({ "sessionId": gone }));

    let list = |state: &str| {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let r = ws.call(
                "ListSessions",
                json!({ "poolId": pool, "state": state, "pageSize": 1, "cursor": cursor }),
            );
            assert_eq!(r.status, 200, "{} {}", r.text(), srv.stderr());
            let r = r.json;
            for id in r["sessionIds"].as_array().cloned().unwrap_or_default() {
                out.push(id.as_str().unwrap().to_owned());
            }
            cursor = r["nextCursor"].as_str().unwrap_or("").to_owned();
            if cursor.is_empty() {
                let mut sorted = out.clone();
                sorted.sort();
                return sorted;
            }
        }
    };
    let set = |idx: &[usize]| {
        let mut v: Vec<String> = idx.iter().map(|&i| ids[i].clone()).collect();
        v.sort();
        v
    };
    assert_eq!(list("SESSION_STATE_DISABLED"), set(&[0, 1]));
    assert_eq!(list("SESSION_STATE_COOLING_DOWN"), set(&[2, 3]));
    assert_eq!(list("SESSION_STATE_UNHEALTHY"), set(&[4]));
    assert_eq!(list("SESSION_STATE_HEALTHY"), set(&[5, 6, 7]));
    assert_eq!(
        list("SESSION_STATE_UNSPECIFIED"),
        set(&[0, 1, 2, 3, 4, 5, 6, 7])
    );
    // The same counts as GetPoolStats.
    let stats = ws.ok("GetPoolStats", json!({ "poolId": pool }));
    let counts = &stats["sessions"];
    assert_eq!(counts["disabled"], "2", "{stats}");
    assert_eq!(counts["coolingDown"], "2", "{stats}");
    assert_eq!(counts["unhealthy"], "1", "{stats}");
    assert_eq!(counts["healthy"], "3", "{stats}");

    // A cursor made for one state does not page another.
    let first = ws.ok(
        "ListSessions",
        json!({ "poolId": pool, "state": "SESSION_STATE_HEALTHY", "pageSize": 1 }),
    );
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    ws.call(
        "ListSessions",
        json!({ "poolId": pool, "state": "SESSION_STATE_DISABLED", "pageSize": 1, "cursor": cursor }),
    )
    .assert_error(400, "invalid_argument");
    ws.call(
        "ListSessions",
        json!({ "poolId": pool, "pageSize": 1, "cursor": cursor }),
    )
    .assert_error(400, "invalid_argument");
    let bad = ws.call("ListSessions", json!({ "poolId": pool, "state": 9 }));
    bad.assert_error(400, "invalid_argument");
    assert!(bad.text().contains("state"), "{}", bad.text());
}
