//! Issue 4, assignments: Create/Get/List/Update/Rebind/DeleteAssignment,
//! ResolveProxy (stickiness, the rotation policy, the endpoint it hands out),
//! the health rule, and the concurrency guarantees of the hot path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{random_id, Conn, Server};
use crate::inventory::{flag, id_of, int, merge, run_error_table, ts_ms, Case, Ws};

/// A workspace with a GENERIC provider (no gateway) and one pool.
struct Fx<'a> {
    ws: Ws<'a>,
    prov: String,
    pool: String,
}

fn fx(srv: &Server, pool: Value) -> Fx<'_> {
    let ws = Ws::new(srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(pool);
    Fx { ws, prov, pool }
}

impl Fx<'_> {
    /// `n` static sessions 203.0.113.1..=n in the pool.
    fn sessions(&self, n: u8) -> Vec<String> {
        (1..=n)
            .map(|i| self.ws.static_session(&self.pool, &self.prov, i))
            .collect()
    }

    fn create(&self, account: &str, extra: Value) -> crate::common::Reply {
        self.ws.call(
            "CreateAssignment",
            merge(
                json!({ "poolId": self.pool, "accountName": account }),
                extra,
            ),
        )
    }

    #[track_caller]
    fn create_ok(&self, account: &str, extra: Value) -> Value {
        let r = self.create(account, extra);
        assert_eq!(r.status, 200, "CreateAssignment {account}: {}", r.text());
        r.json["assignment"].clone()
    }

    #[track_caller]
    fn update_ok(&self, id: &str, extra: Value) -> Value {
        self.ws.ok(
            "UpdateAssignment",
            merge(json!({ "assignmentId": id }), extra),
        )["assignment"]
            .clone()
    }

    fn resolve_ok(&self, account: &str) -> (Value, Value) {
        self.ws.resolve_ok(&self.pool, account)
    }

    fn count(&self, session: &str) -> i64 {
        int(&self.ws.get_session(session)["assignmentCount"])
    }

    fn disable(&self, session: &str) {
        self.ws.ok(
            "UpdateSession",
            json!({ "sessionId": session, "enabled": false }),
        );
    }

    fn report(&self, session: &str, success: bool) -> Value {
        self.ws.ok(
            "ReportSessionResult",
            json!({ "sessionId": session, "success": success, "reason": "test" }),
        )["session"]
            .clone()
    }
}

fn short_sleep(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

// ------------------------------------------------- CreateAssignment and reads

#[test]
fn create_assignment_with_and_without_session_id() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let s = f.sessions(3);

    let chosen = f.create_ok("bot-1", json!({}));
    assert!(s.contains(&chosen["sessionId"].as_str().unwrap_or("").to_owned()));
    assert_eq!(chosen["accountName"], "bot-1");
    assert_eq!(chosen["poolId"], f.pool);
    assert_eq!(chosen["workspaceId"], f.ws.id);
    assert_eq!(chosen["version"], "1");
    assert!(!flag(&chosen["pinned"]));
    assert_eq!(int(&chosen["rotations"]), 0);
    assert_eq!(chosen["boundAt"], chosen["createdAt"]);
    ts_ms(&chosen["boundAt"]);

    let target = s
        .iter()
        .find(|x| chosen["sessionId"] != **x)
        .expect("another");
    let explicit = f.create_ok("bot-2", json!({ "sessionId": target, "pinned": true }));
    assert_eq!(explicit["sessionId"], *target);
    assert!(flag(&explicit["pinned"]));
    // Without a session id the least loaded one is chosen: bot-3 takes the
    // one session still empty.
    let third = f.create_ok("bot-3", json!({}));
    let used: HashSet<&str> = [&chosen, &explicit, &third]
        .iter()
        .map(|a| a["sessionId"].as_str().expect("sid"))
        .collect();
    assert_eq!(used.len(), 3, "fewest assignments first");

    // accountName is unique per pool, whatever else is asked.
    f.create("bot-1", json!({}))
        .assert_error(409, "already_exists");
    f.create("bot-1", json!({ "sessionId": s[2] }))
        .assert_error(409, "already_exists");
    // ...but not across pools.
    let pool2 = f.ws.pool(json!({ "name": "second" }));
    let s2 = f.ws.static_session(&pool2, &f.prov, 50);
    let other = f.ws.ok(
        "CreateAssignment",
        json!({ "poolId": pool2, "accountName": "bot-1" }),
    )["assignment"]
        .clone();
    assert_eq!(other["sessionId"], s2);

    let got =
        f.ws.ok("GetAssignment", json!({ "assignmentId": id_of(&chosen) }));
    assert_eq!(got["assignment"], chosen);
    for sid in &s {
        assert_eq!(f.count(sid), 1, "assignmentCount of {sid}");
    }
}

#[test]
fn create_assignment_errors() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let s = f.sessions(2);
    f.disable(&s[1]);
    let gone = f.ws.static_session(&f.pool, &f.prov, 9);
    f.ws.ok("DeleteSession", json!({ "sessionId": gone }));
    let empty_pool = f.ws.pool(json!({ "name": "empty" }));
    let pool2 = f.ws.pool(json!({ "name": "other" }));
    let elsewhere = f.ws.static_session(&pool2, &f.prov, 20);
    let viewer = f.ws.key_of("VIEWER");
    let resolver = f.ws.key_of("RESOLVER");
    let owner = Some(f.ws.key.as_str());
    let b = |account: &str, extra: Value| {
        merge(json!({ "poolId": f.pool, "accountName": account }), extra)
    };
    let case = |name, key, body, status, code| Case {
        name,
        key,
        body,
        status,
        code,
    };
    let cases = [
        case(
            "empty accountName",
            owner,
            b("", json!({})),
            400,
            "invalid_argument",
        ),
        case(
            "accountName of 129 characters",
            owner,
            b(&"a".repeat(129), json!({})),
            400,
            "invalid_argument",
        ),
        case(
            "accountName with a newline",
            owner,
            b("bot\n1", json!({})),
            400,
            "invalid_argument",
        ),
        case(
            "session id of 3 bytes",
            owner,
            b("x", json!({ "sessionId": "AAAA" })),
            400,
            "invalid_argument",
        ),
        case(
            "pool id missing",
            owner,
            json!({ "accountName": "x" }),
            400,
            "invalid_argument",
        ),
        case(
            "unknown pool",
            owner,
            b("x", json!({ "poolId": random_id() })),
            404,
            "not_found",
        ),
        case(
            "session of another pool",
            owner,
            b("x", json!({ "sessionId": elsewhere })),
            400,
            "failed_precondition",
        ),
        case(
            "disabled session",
            owner,
            b("x", json!({ "sessionId": s[1] })),
            400,
            "failed_precondition",
        ),
        case(
            "deleted session",
            owner,
            b("x", json!({ "sessionId": gone })),
            400,
            "failed_precondition",
        ),
        case(
            "no session in the pool",
            owner,
            json!({ "poolId": empty_pool, "accountName": "x" }),
            400,
            "failed_precondition",
        ),
        case("no key", None, b("x", json!({})), 401, "unauthenticated"),
        case(
            "VIEWER",
            Some(&viewer),
            b("x", json!({})),
            403,
            "permission_denied",
        ),
        case(
            "RESOLVER",
            Some(&resolver),
            b("x", json!({})),
            403,
            "permission_denied",
        ),
    ];
    run_error_table(&f.ws, "CreateAssignment", &cases);
    // None of them created anything.
    let list = f.ws.ok("ListAssignments", json!({}));
    assert_eq!(list["assignments"].as_array().map_or(0, Vec::len), 0);
    // 128 characters and any printable text are fine.
    f.create_ok(&"a".repeat(128), json!({}));
    f.create_ok("Bot #1 — ünï 🚀", json!({}));
}

#[test]
fn list_assignments_filters_and_pages() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let s = f.sessions(2);
    let pool2 = f.ws.pool(json!({ "name": "two" }));
    let s3 = f.ws.static_session(&pool2, &f.prov, 30);
    let mut on_s0 = Vec::new();
    for i in 0..5 {
        on_s0.push(id_of(
            &f.create_ok(&format!("a{i}"), json!({ "sessionId": s[0] })),
        ));
    }
    let on_s1: Vec<String> = (0..3)
        .map(|i| id_of(&f.create_ok(&format!("b{i}"), json!({ "sessionId": s[1] }))))
        .collect();
    let in_pool2 = id_of(
        &f.ws.ok(
            "CreateAssignment",
            json!({ "poolId": pool2, "accountName": "a0", "sessionId": s3 }),
        )["assignment"],
    );

    let list = |filter: Value, page: i32| -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..100 {
            let r = f.ws.ok(
                "ListAssignments",
                merge(
                    filter.clone(),
                    json!({ "pageSize": page, "cursor": cursor }),
                ),
            );
            let items = r["assignments"].as_array().cloned().unwrap_or_default();
            assert!(items.len() <= page as usize);
            out.extend(items.iter().map(id_of));
            cursor = r["nextCursor"].as_str().unwrap_or("").to_owned();
            if cursor.is_empty() {
                return out;
            }
        }
        panic!("ListAssignments never ended");
    };
    let set = |v: Vec<String>| -> HashSet<String> {
        let n = v.len();
        let s: HashSet<String> = v.into_iter().collect();
        assert_eq!(s.len(), n, "an assignment listed twice");
        s
    };
    let all: HashSet<String> = on_s0
        .iter()
        .chain(&on_s1)
        .chain([&in_pool2])
        .cloned()
        .collect();
    assert_eq!(set(list(json!({}), 2)), all);
    let pool1: HashSet<String> = on_s0.iter().chain(&on_s1).cloned().collect();
    assert_eq!(set(list(json!({ "poolId": f.pool }), 3)), pool1);
    assert_eq!(
        set(list(json!({ "sessionId": s[0] }), 2)),
        on_s0.iter().cloned().collect()
    );
    assert_eq!(
        set(list(json!({ "accountName": "a0" }), 1)),
        [on_s0[0].clone(), in_pool2.clone()].into_iter().collect()
    );
    assert_eq!(
        set(list(json!({ "accountName": "a0", "poolId": pool2 }), 10)),
        [in_pool2.clone()].into_iter().collect()
    );
    assert_eq!(
        set(list(json!({ "sessionId": s[1], "accountName": "a1" }), 10)),
        HashSet::new()
    );
    f.ws.call("ListAssignments", json!({ "cursor": "%%%" }))
        .assert_error(400, "invalid_argument");
    f.ws.call("ListAssignments", json!({ "poolId": "AAAA" }))
        .assert_error(400, "invalid_argument");
    f.ws.call("ListAssignments", json!({ "pageSize": -1 }))
        .assert_error(400, "invalid_argument");
}

#[test]
fn delete_assignment_frees_the_account_and_the_slot() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let s = f.sessions(1);
    let a = id_of(&f.create_ok("bot", json!({})));
    assert_eq!(f.count(&s[0]), 1);
    f.ws.ok("DeleteAssignment", json!({ "assignmentId": a }));
    assert_eq!(f.count(&s[0]), 0);
    f.ws.call("GetAssignment", json!({ "assignmentId": a }))
        .assert_error(404, "not_found");
    f.ws.call("DeleteAssignment", json!({ "assignmentId": a }))
        .assert_error(404, "not_found");
    f.ws.call("DeleteAssignment", json!({ "assignmentId": "AAAA" }))
        .assert_error(400, "invalid_argument");
    let again = f.create_ok("bot", json!({}));
    assert_ne!(id_of(&again), a);
    // Another workspace's key cannot see or delete it.
    let other = Ws::new(&srv, "OWNER");
    other
        .call(
            "GetAssignment",
            json!({ "workspaceId": f.ws.id, "assignmentId": id_of(&again) }),
        )
        .assert_error(403, "permission_denied");
    other
        .call("GetAssignment", json!({ "assignmentId": id_of(&again) }))
        .assert_error(404, "not_found");
}

#[test]
fn automatic_choice_respects_max_accounts_per_session() {
    let srv = Server::start();
    let f = fx(&srv, json!({ "maxAccountsPerSession": 1 }));
    let s = f.sessions(2);
    let a = f.create_ok("a", json!({}));
    let b = f.create_ok("b", json!({}));
    assert_ne!(a["sessionId"], b["sessionId"], "one account per session");
    f.create("c", json!({}))
        .assert_error(400, "failed_precondition");
    f.ws.resolve(&f.pool, "c")
        .assert_error(400, "failed_precondition");
    f.ws.call("RebindAssignment", json!({ "assignmentId": id_of(&a) }))
        .assert_error(400, "failed_precondition");
    // Explicit placement is not capped, and frees a slot when it moves.
    let moved = f.update_ok(&id_of(&a), json!({ "sessionId": b["sessionId"] }));
    assert_eq!(moved["sessionId"], b["sessionId"]);
    let c = f.create_ok("c", json!({}));
    assert_eq!(c["sessionId"], a["sessionId"]);
    assert_eq!(f.count(&s[0]) + f.count(&s[1]), 3);
}

// --------------------------------------------------------- UpdateAssignment

#[test]
fn update_assignment_moves_pinned_assignments_and_counts_rotations() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let s = f.sessions(3);
    let a = f.create_ok("bot", json!({ "sessionId": s[0], "pinned": true }));
    let id = id_of(&a);
    short_sleep(5);

    let moved = f.update_ok(&id, json!({ "sessionId": s[1] }));
    assert_eq!(moved["sessionId"], s[1]);
    assert!(flag(&moved["pinned"]), "pinned is kept");
    assert_eq!(moved["version"], "2");
    assert_eq!(int(&moved["rotations"]), 1);
    assert!(ts_ms(&moved["boundAt"]) > ts_ms(&a["boundAt"]));
    assert_eq!(moved["createdAt"], a["createdAt"]);
    assert_eq!((f.count(&s[0]), f.count(&s[1])), (0, 1));

    // Unpinning changes only pinned.
    let unpinned = f.update_ok(&id, json!({ "pinned": false }));
    assert!(!flag(&unpinned["pinned"]));
    assert_eq!(unpinned["sessionId"], s[1]);
    assert_eq!(unpinned["version"], "3");
    assert_eq!(unpinned["rotations"], moved["rotations"]);
    assert_eq!(unpinned["boundAt"], moved["boundAt"]);

    // The same session again is no move; nothing supplied is no change.
    let same = f.update_ok(&id, json!({ "sessionId": s[1] }));
    assert_eq!(same["version"], "3");
    assert_eq!(int(&same["rotations"]), 1);
    let none = f.update_ok(&id, json!({}));
    assert_eq!(none["version"], "3");

    // Both at once, with the right expectedVersion.
    short_sleep(5);
    let both = f.update_ok(
        &id,
        json!({ "sessionId": s[2], "pinned": true, "expectedVersion": "3" }),
    );
    assert_eq!(both["sessionId"], s[2]);
    assert!(flag(&both["pinned"]));
    assert_eq!(both["version"], "4");
    assert_eq!(int(&both["rotations"]), 2);
    assert!(ts_ms(&both["boundAt"]) > ts_ms(&moved["boundAt"]));
    let got = f.ws.ok("GetAssignment", json!({ "assignmentId": id }));
    assert_eq!(got["assignment"], both);
    assert_eq!((f.count(&s[0]), f.count(&s[1]), f.count(&s[2])), (0, 0, 1));
}

#[test]
fn update_assignment_errors() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let s = f.sessions(3);
    let a = id_of(&f.create_ok("bot", json!({ "sessionId": s[0] })));
    f.disable(&s[1]);
    f.ws.ok("DeleteSession", json!({ "sessionId": s[2] }));
    let pool2 = f.ws.pool(json!({ "name": "other" }));
    let elsewhere = f.ws.static_session(&pool2, &f.prov, 40);
    let b = Ws::new(&srv, "OWNER");
    let bpool = b.pool(json!({}));
    let bprov = b.generic();
    let bs = b.static_session(&bpool, &bprov, 1);
    let b_asg = id_of(
        &b.ok(
            "CreateAssignment",
            json!({ "poolId": bpool, "accountName": "x" }),
        )["assignment"],
    );
    let viewer = f.ws.key_of("VIEWER");
    let resolver = f.ws.key_of("RESOLVER");
    let owner = Some(f.ws.key.as_str());
    let on = |extra: Value| merge(json!({ "assignmentId": a }), extra);
    let case = |name, key, body, status, code| Case {
        name,
        key,
        body,
        status,
        code,
    };
    let cases = [
        case(
            "assignment id of 3 bytes",
            owner,
            json!({ "assignmentId": "AAAA", "pinned": true }),
            400,
            "invalid_argument",
        ),
        case(
            "assignment id missing",
            owner,
            json!({ "pinned": true }),
            400,
            "invalid_argument",
        ),
        case(
            "session id of 3 bytes",
            owner,
            on(json!({ "sessionId": "AAAA" })),
            400,
            "invalid_argument",
        ),
        case(
            "unknown assignment",
            owner,
            json!({ "assignmentId": random_id(), "pinned": true }),
            404,
            "not_found",
        ),
        case(
            "assignment of another workspace",
            owner,
            json!({ "assignmentId": b_asg, "pinned": true }),
            404,
            "not_found",
        ),
        case(
            "target in another pool",
            owner,
            on(json!({ "sessionId": elsewhere })),
            400,
            "failed_precondition",
        ),
        case(
            "target disabled",
            owner,
            on(json!({ "sessionId": s[1] })),
            400,
            "failed_precondition",
        ),
        case(
            "target deleted",
            owner,
            on(json!({ "sessionId": s[2] })),
            400,
            "failed_precondition",
        ),
        case(
            "target unknown",
            owner,
            on(json!({ "sessionId": random_id() })),
            400,
            "failed_precondition",
        ),
        case(
            "target of another workspace",
            owner,
            on(json!({ "sessionId": bs })),
            400,
            "failed_precondition",
        ),
        case(
            "expectedVersion behind",
            owner,
            on(json!({ "pinned": true, "expectedVersion": "7" })),
            409,
            "aborted",
        ),
        case(
            "no key",
            None,
            on(json!({ "pinned": true })),
            401,
            "unauthenticated",
        ),
        case(
            "VIEWER",
            Some(&viewer),
            on(json!({ "pinned": true })),
            403,
            "permission_denied",
        ),
        case(
            "RESOLVER",
            Some(&resolver),
            on(json!({ "pinned": true })),
            403,
            "permission_denied",
        ),
        case(
            "key of another workspace",
            Some(&b.key),
            on(json!({ "pinned": true })),
            403,
            "permission_denied",
        ),
    ];
    run_error_table(&f.ws, "UpdateAssignment", &cases);
    let got = f.ws.ok("GetAssignment", json!({ "assignmentId": a }));
    assert_eq!(got["assignment"]["version"], "1", "nothing changed");
    assert_eq!(got["assignment"]["sessionId"], s[0]);
    // The version that matches goes through.
    let ok = f.update_ok(&a, json!({ "pinned": true, "expectedVersion": 1 }));
    assert_eq!(ok["version"], "2");
}

// --------------------------------------------------------- RebindAssignment

#[test]
fn rebind_assignment_rules() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let s = f.sessions(1);
    let a = f.create_ok("bot", json!({ "pinned": true }));
    let id = id_of(&a);
    let rebind = |id: &str| f.ws.call("RebindAssignment", json!({ "assignmentId": id }));

    let r = rebind(&id);
    r.assert_error(400, "failed_precondition");
    let msg = r.json["message"].as_str().unwrap_or("").to_lowercase();
    assert!(msg.contains("unpin"), "message should say to unpin: {msg}");

    f.update_ok(&id, json!({ "pinned": false }));
    rebind(&id).assert_error(400, "failed_precondition");
    // A disabled second session is no candidate either.
    let second = f.ws.static_session(&f.pool, &f.prov, 2);
    f.disable(&second);
    rebind(&id).assert_error(400, "failed_precondition");
    let third = f.ws.static_session(&f.pool, &f.prov, 3);
    short_sleep(5);
    let moved = rebind(&id);
    moved.ok();
    let m = &moved.json["assignment"];
    assert_eq!(m["sessionId"], third);
    assert_eq!(int(&m["rotations"]), 1);
    assert_eq!(m["version"], "3");
    assert!(ts_ms(&m["boundAt"]) > ts_ms(&a["boundAt"]));
    assert_eq!((f.count(&s[0]), f.count(&third)), (0, 1));
    // Back again: it always leaves its current session.
    let back = rebind(&id);
    back.ok();
    assert_eq!(back.json["assignment"]["sessionId"], s[0]);
    rebind(&random_id()).assert_error(404, "not_found");
}

// -------------------------------------------------------------- ResolveProxy

#[test]
fn resolve_creates_on_first_use_and_then_sticks() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    f.sessions(5);
    let (first, _) = f.resolve_ok("bot-1");
    assert_eq!(first["version"], "1");
    assert_eq!(first["accountName"], "bot-1");
    assert!(!flag(&first["pinned"]));
    let mut conn = srv.conn();
    let body =
        f.ws.body(json!({ "poolId": f.pool, "accountName": "bot-1" }));
    for _ in 0..20 {
        let r = conn.rpc("ResolveProxy", &f.ws.key, &body);
        r.ok();
        assert_eq!(r.json["assignment"], first, "sticky");
    }
    let list =
        f.ws.ok("ListAssignments", json!({ "accountName": "bot-1" }));
    assert_eq!(list["assignments"], json!([first]));
    // An existing assignment (made by CreateAssignment) is used as it is.
    let s = f.ws.static_session(&f.pool, &f.prov, 77);
    let made = f.create_ok("bot-2", json!({ "sessionId": s }));
    assert_eq!(f.resolve_ok("bot-2").0, made);
    // Errors on the way in.
    f.ws.resolve(&f.pool, "")
        .assert_error(400, "invalid_argument");
    f.ws.resolve(&random_id(), "bot-1")
        .assert_error(404, "not_found");
}

#[test]
fn resolve_url_percent_encodes_the_login_and_endpoint_has_none() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let cases = [
        (
            json!({ "scheme": "http", "host": "203.0.113.7", "port": 3128, "username": "us er@x", "password": "p@ss:w/rd" }),
            "http://us%20er%40x:p%40ss%3Aw%2Frd@203.0.113.7:3128",
            "http://203.0.113.7:3128",
        ),
        (
            json!({ "scheme": "socks5", "host": "proxy.example.com", "port": 1080, "username": "plain", "password": "100%#?&=" }),
            // WHATWG userinfo set: `&` stays, `#?=` are encoded; `%` is
            // encoded too so that the login decodes back to what was sent.
            "socks5://plain:100%25%23%3F&%3D@proxy.example.com:1080",
            "socks5://proxy.example.com:1080",
        ),
        (
            json!({ "host": "203.0.113.8", "port": 8080 }),
            "http://203.0.113.8:8080",
            "http://203.0.113.8:8080",
        ),
        (
            json!({ "scheme": "https", "host": "203.0.113.9", "port": 443, "username": "only-user" }),
            "https://only-user@203.0.113.9:443",
            "https://203.0.113.9:443",
        ),
        (
            json!({ "host": "2001:db8::1", "port": 8080, "username": "u", "password": "p" }),
            "http://u:p@[2001:db8::1]:8080",
            "http://[2001:db8::1]:8080",
        ),
    ];
    for (i, (spec, url, endpoint)) in cases.iter().enumerate() {
        let s = id_of(&f.ws.session(&f.pool, &f.prov, spec.clone()));
        let acct = format!("acct-{i}");
        f.create_ok(&acct, json!({ "sessionId": s, "pinned": true }));
        let (_, p) = f.resolve_ok(&acct);
        assert_eq!(p["url"], *url, "{spec}");
        assert_eq!(p["endpoint"], *endpoint, "{spec}");
        assert_eq!(p["host"], spec["host"]);
        assert_eq!(p["port"], spec["port"]);
        assert_eq!(
            p["scheme"],
            spec.get("scheme").cloned().unwrap_or(json!("http"))
        );
        assert_eq!(
            p["username"].as_str().unwrap_or(""),
            spec["username"].as_str().unwrap_or(""),
            "username is given raw"
        );
        assert_eq!(
            p["password"].as_str().unwrap_or(""),
            spec["password"].as_str().unwrap_or(""),
            "password is given raw"
        );
    }
}

/// Percent-decodes a URL component (`%XX` only; `+` is literal in a URL).
fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// (username, password) from `scheme://user:pass@host:port`, decoded: the
/// login ends at the last `@`, the username at its first `:`.
fn login_of(url: &str) -> (String, String) {
    let rest = url.split_once("://").expect("scheme").1;
    let (login, _) = rest.rsplit_once('@').expect("login");
    match login.split_once(':') {
        Some((u, p)) => (pct_decode(u), pct_decode(p)),
        None => (pct_decode(login), String::new()),
    }
}

#[test]
fn resolve_url_encodes_the_login_with_the_whatwg_userinfo_set() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    // (username, password, the url's login part)
    let cases = [
        // node-steam-user sends the login undecoded: RFC 3986 sub-delims
        // must stay literal.
        ("steam", "Pa$$!&'()*+,", "steam:Pa$$!&'()*+,"),
        ("us:er", "p@ss", "us%3Aer:p%40ss"),
        ("a@b", "c:d@e", "a%40b:c%3Ad%40e"),
        ("100%", "%41%", "100%25:%2541%25"),
        (
            "sp ace",
            "t\u{e9}st \u{1F600}",
            "sp%20ace:t%C3%A9st%20%F0%9F%98%80",
        ),
        ("slash/q?h#", "semi;eq=", "slash%2Fq%3Fh%23:semi%3Beq%3D"),
        (
            "br[a]c{e}<>\"`^|\\",
            "-._~AZaz09",
            "br%5Ba%5Dc%7Be%7D%3C%3E%22%60%5E%7C%5C:-._~AZaz09",
        ),
    ];
    for (i, (user, pass, login)) in cases.iter().enumerate() {
        let s = id_of(&f.ws.session(
            &f.pool,
            &f.prov,
            json!({ "host": "203.0.113.7", "port": 3128, "username": user, "password": pass }),
        ));
        let acct = format!("acct-{i}");
        f.create_ok(&acct, json!({ "sessionId": s, "pinned": true }));
        let (_, p) = f.resolve_ok(&acct);
        let url = p["url"].as_str().expect("url");
        assert_eq!(
            url,
            format!("http://{login}@203.0.113.7:3128"),
            "{user} / {pass}"
        );
        assert_eq!(
            login_of(url),
            (user.to_string(), pass.to_string()),
            "{url} decodes back"
        );
        assert_eq!(p["username"], *user);
        assert_eq!(p["password"], *pass);
    }
}

#[test]
fn resolve_rotation_session_goes_through_the_gateway_templates() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = id_of(&ws.provider(
        "GENERIC",
        json!({
            "credentials": { "username": "cust", "password": "pw" },
            "gateway": { "scheme": "socks5h", "host": "gw.example.org", "port": 1080,
                         "usernameTemplate": "{username}-session-{token}", "passwordTemplate": "{password}_x" }
        }),
    ));
    let pool = ws.pool(json!({}));
    let s = ws.session(&pool, &prov, json!({ "token": "abc" }));
    assert_eq!(s["token"], "abc");
    assert_eq!(
        s["host"].as_str().unwrap_or(""),
        "",
        "no endpoint of its own"
    );
    let (_, p) = ws.resolve_ok(&pool, "bot");
    assert_eq!(
        p,
        json!({
            "scheme": "socks5h", "host": "gw.example.org", "port": 1080,
            "username": "cust-session-abc", "password": "pw_x",
            "url": "socks5h://cust-session-abc:pw_x@gw.example.org:1080",
            "endpoint": "socks5h://gw.example.org:1080"
        })
    );
}

#[test]
fn resolve_moves_after_the_rotation_interval_unless_pinned() {
    let srv = Server::start();
    let f = fx(&srv, json!({ "rotation": { "intervalSeconds": 1 } }));
    let s = f.sessions(3);
    let pinned = f.create_ok("pinned", json!({ "sessionId": s[2], "pinned": true }));
    let (a, _) = f.resolve_ok("roamer");
    assert_eq!(f.resolve_ok("roamer").0, a, "sticky within the interval");
    std::thread::sleep(Duration::from_millis(1100));
    let (b, _) = f.resolve_ok("roamer");
    assert_ne!(b["sessionId"], a["sessionId"], "moved after the interval");
    assert_eq!(int(&b["rotations"]), 1);
    assert_eq!(b["version"], "2");
    assert!(ts_ms(&b["boundAt"]) >= ts_ms(&a["boundAt"]) + 1000);
    assert_eq!(id_of(&b), id_of(&a), "same assignment");
    assert_eq!(f.resolve_ok("roamer").0, b, "sticky again");
    let (p, _) = f.resolve_ok("pinned");
    assert_eq!(p, pinned, "pinned never rotates on time");
    // With no other session to go to, the interval keeps the current one.
    let lonely =
        f.ws.pool(json!({ "name": "lonely", "rotation": { "intervalSeconds": 1 } }));
    f.ws.static_session(&lonely, &f.prov, 60);
    let (l, _) = f.ws.resolve_ok(&lonely, "alone");
    std::thread::sleep(Duration::from_millis(1100));
    let (l2, _) = f.ws.resolve_ok(&lonely, "alone");
    assert_eq!(l2["sessionId"], l["sessionId"]);
    assert_eq!(int(&l2["rotations"]), 0);
}

#[test]
fn resolve_never_hands_out_a_disabled_session_whatever_on_unhealthy_says() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    f.sessions(2);
    let (a, _) = f.resolve_ok("bot");
    let old = a["sessionId"].as_str().expect("sid").to_owned();
    f.disable(&old);
    let (b, p) = f.resolve_ok("bot");
    assert_ne!(b["sessionId"], a["sessionId"]);
    assert_eq!(int(&b["rotations"]), 1);
    assert_eq!(b["version"], "2");
    assert_ne!(p["host"], "");
    assert_eq!(f.count(&old), 0);

    // A pinned account on a disabled session cannot be served.
    let now = b["sessionId"].as_str().expect("sid").to_owned();
    f.create_ok("pinned", json!({ "sessionId": now, "pinned": true }));
    f.disable(&now);
    let r = f.ws.resolve(&f.pool, "pinned");
    r.assert_error(400, "failed_precondition");
    // With nowhere to go, an unpinned one fails too.
    let r = f.ws.resolve(&f.pool, "bot");
    r.assert_error(400, "failed_precondition");

    // onUnhealthy false governs health only: a disabled session still
    // moves its accounts, and a pinned one on it is refused (seed 001:
    // disabling trims a pool).
    let g = fx(&srv, json!({ "rotation": { "onUnhealthy": false } }));
    g.sessions(2);
    let (a, _) = g.resolve_ok("bot");
    let old = a["sessionId"].as_str().expect("sid").to_owned();
    let pinned = g.create_ok("pinned", json!({ "sessionId": old, "pinned": true }));
    g.disable(&old);
    let (b, _) = g.resolve_ok("bot");
    assert_ne!(b["sessionId"], a["sessionId"]);
    assert_eq!(int(&b["rotations"]), 1);
    g.ws.resolve(&g.pool, "pinned")
        .assert_error(400, "failed_precondition");
    assert_eq!(
        g.ws.ok("GetAssignment", json!({ "assignmentId": id_of(&pinned) }))["assignment"],
        pinned,
        "a refused resolve changes nothing"
    );
}

#[test]
fn resolve_moves_off_a_deleted_session_whatever_the_policy() {
    let srv = Server::start();
    for policy in [json!({}), json!({ "rotation": { "onUnhealthy": false } })] {
        let f = fx(&srv, policy.clone());
        f.sessions(2);
        let (a, _) = f.resolve_ok("bot");
        let old = a["sessionId"].as_str().expect("sid").to_owned();
        let pinned = f.create_ok("pinned", json!({ "sessionId": old, "pinned": true }));
        f.ws.ok("DeleteSession", json!({ "sessionId": old }));
        let (b, _) = f.resolve_ok("bot");
        assert_ne!(b["sessionId"], a["sessionId"], "{policy}");
        assert_eq!(int(&b["rotations"]), 1);
        f.ws.resolve(&f.pool, "pinned")
            .assert_error(400, "failed_precondition");
        assert_eq!(
            f.ws.ok("GetAssignment", json!({ "assignmentId": id_of(&pinned) }))["assignment"],
            pinned,
            "a refused resolve changes nothing"
        );
    }
}

#[test]
fn resolve_without_a_healthy_session_is_failed_precondition() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    f.ws.resolve(&f.pool, "bot")
        .assert_error(400, "failed_precondition");
    let s = f.sessions(1);
    f.disable(&s[0]);
    f.ws.resolve(&f.pool, "bot")
        .assert_error(400, "failed_precondition");
    let list = f.ws.ok("ListAssignments", json!({}));
    assert_eq!(list["assignments"].as_array().map_or(0, Vec::len), 0);
    f.ws.ok(
        "UpdateSession",
        json!({ "sessionId": s[0], "enabled": true }),
    );
    f.resolve_ok("bot");
}

#[test]
fn resolver_key_resolves_and_reports_but_cannot_read_and_viewer_cannot_resolve() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let s = f.sessions(1);
    let resolver = f.ws.key_of("RESOLVER");
    let viewer = f.ws.key_of("VIEWER");
    let resolve = json!({ "poolId": f.pool, "accountName": "bot" });
    let report = json!({ "sessionId": s[0], "success": false });

    let r = f.ws.call_as(&resolver, "ResolveProxy", resolve.clone());
    r.ok();
    assert_eq!(r.json["assignment"]["sessionId"], s[0]);
    let r =
        f.ws.call_as(&resolver, "ReportSessionResult", report.clone());
    r.ok();
    assert_eq!(int(&r.json["session"]["health"]["consecutiveFailures"]), 1);
    for (method, body) in [
        ("GetSession", json!({ "sessionId": s[0] })),
        ("ListSessions", json!({})),
        ("GetPool", json!({ "poolId": f.pool })),
        ("ListAssignments", json!({})),
        (
            "CreateAssignment",
            json!({ "poolId": f.pool, "accountName": "x" }),
        ),
    ] {
        f.ws.call_as(&resolver, method, body)
            .assert_error(403, "permission_denied");
    }
    f.ws.call_as(&viewer, "ResolveProxy", resolve)
        .assert_error(403, "permission_denied");
    f.ws.call_as(&viewer, "ReportSessionResult", report)
        .assert_error(403, "permission_denied");
    assert_eq!(
        int(&f.ws.get_session(&s[0])["health"]["consecutiveFailures"]),
        1,
        "the VIEWER's report was not counted"
    );
    // A RESOLVER key of another workspace may not resolve here.
    let other = Ws::new(&srv, "RESOLVER");
    other
        .call_as(
            &other.key,
            "ResolveProxy",
            json!({ "workspaceId": f.ws.id, "poolId": f.pool, "accountName": "bot" }),
        )
        .assert_error(403, "permission_denied");
}

// ------------------------------------------------------------------- health

#[test]
fn health_rule_threshold_cooldown_and_success() {
    let srv = Server::start();
    let f = fx(&srv, json!({ "failureThreshold": 2, "cooldownSeconds": 1 }));
    let s = f.sessions(2);
    let a = f.create_ok("bot", json!({ "sessionId": s[0] }));
    f.create_ok("pin", json!({ "sessionId": s[0], "pinned": true }));
    let fresh = f.ws.get_session(&s[0]);
    assert!(flag(&fresh["health"]["healthy"]));
    assert_eq!(int(&fresh["assignmentCount"]), 2);

    let one = f.report(&s[0], false);
    assert!(flag(&one["health"]["healthy"]), "one failure of two");
    assert_eq!(int(&one["health"]["consecutiveFailures"]), 1);
    let failed_at = ts_ms(&one["health"]["lastFailureAt"]);
    assert!(one["health"]
        .get("unhealthyUntil")
        .is_none_or(Value::is_null));

    let two = f.report(&s[0], false);
    assert!(!flag(&two["health"]["healthy"]), "threshold reached");
    assert_eq!(int(&two["health"]["consecutiveFailures"]), 2);
    let until = ts_ms(&two["health"]["unhealthyUntil"]);
    let last = ts_ms(&two["health"]["lastFailureAt"]);
    assert!(last >= failed_at);
    assert!(
        (last + 900..=last + 1100).contains(&until),
        "unhealthyUntil {until} is not lastFailureAt {last} + 1 s"
    );
    assert!(!flag(&f.ws.get_session(&s[0])["health"]["healthy"]));

    // The account moves off it, new accounts avoid it, a pinned one fails.
    let (moved, _) = f.resolve_ok("bot");
    assert_eq!(moved["sessionId"], s[1]);
    assert_eq!(id_of(&moved), id_of(&a));
    assert_eq!(int(&moved["rotations"]), 1);
    let (newer, _) = f.resolve_ok("newcomer");
    assert_eq!(
        newer["sessionId"], s[1],
        "unhealthy sessions are not chosen"
    );
    f.ws.resolve(&f.pool, "pin")
        .assert_error(400, "failed_precondition");
    assert_eq!((f.count(&s[0]), f.count(&s[1])), (1, 2));

    // After the cooldown it is eligible again (and least loaded).
    std::thread::sleep(Duration::from_millis(1100));
    let healed = f.ws.get_session(&s[0]);
    assert!(flag(&healed["health"]["healthy"]), "{healed}");
    assert_eq!(f.resolve_ok("pin").0["sessionId"], s[0]);
    let (third, _) = f.resolve_ok("third");
    assert_eq!(third["sessionId"], s[0]);
    assert_eq!((f.count(&s[0]), f.count(&s[1])), (2, 2));

    // Half-open: one more failure sends it straight back.
    let tripped = f.report(&s[0], false);
    assert!(!flag(&tripped["health"]["healthy"]), "{tripped}");

    // One success heals it fully.
    let ok = f.report(&s[0], true);
    assert!(flag(&ok["health"]["healthy"]));
    assert_eq!(int(&ok["health"]["consecutiveFailures"]), 0);
    ts_ms(&ok["health"]["lastSuccessAt"]);
    assert_eq!(
        ok["health"]["lastFailureAt"], tripped["health"]["lastFailureAt"],
        "the last failure is remembered"
    );
    assert_eq!(f.resolve_ok("pin").0["sessionId"], s[0]);
    // Counting starts over: one failure does not trip it now.
    let again = f.report(&s[0], false);
    assert!(flag(&again["health"]["healthy"]));
    assert_eq!(int(&again["health"]["consecutiveFailures"]), 1);

    f.ws.call(
        "ReportSessionResult",
        json!({ "sessionId": s[0], "success": true, "reason": "x".repeat(501) }),
    )
    .assert_error(400, "invalid_argument");
}

// -------------------------------------------------------------- concurrency

/// `n` threads, each on its own connection, released together; returns the
/// replies in thread order.
fn in_parallel(
    srv: &Server,
    n: usize,
    make: impl Fn(usize) -> (String, String, Value),
) -> Vec<crate::common::Reply> {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (method, key, body) = make(i);
            let (addr, barrier) = (srv.addr, barrier.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr).expect("connect");
                barrier.wait();
                conn.rpc(&method, &key, &body)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}

#[test]
fn parallel_first_resolves_of_one_account_create_one_assignment() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    f.sessions(8);
    let body =
        f.ws.body(json!({ "poolId": f.pool, "accountName": "popular" }));
    let replies = in_parallel(&srv, 64, |_| {
        ("ResolveProxy".into(), f.ws.key.clone(), body.clone())
    });
    let mut ids = HashSet::new();
    let mut sessions = HashSet::new();
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text());
        ids.insert(id_of(&r.json["assignment"]));
        sessions.insert(r.json["assignment"]["sessionId"].clone());
    }
    assert_eq!(ids.len(), 1, "one assignment for all 64: {ids:?}");
    assert_eq!(sessions.len(), 1);
    let list =
        f.ws.ok("ListAssignments", json!({ "accountName": "popular" }));
    assert_eq!(list["assignments"].as_array().map_or(0, Vec::len), 1);
    let sid = sessions.into_iter().next().expect("sid");
    assert_eq!(f.count(sid.as_str().expect("sid")), 1);
}

#[test]
fn parallel_resolves_respect_max_accounts_per_session() {
    let srv = Server::start();
    let f = fx(&srv, json!({ "maxAccountsPerSession": 30 }));
    let s = f.sessions(10);
    let replies = in_parallel(&srv, 300, |i| {
        (
            "ResolveProxy".into(),
            f.ws.key.clone(),
            f.ws.body(json!({ "poolId": f.pool, "accountName": format!("acct-{i}") })),
        )
    });
    let mut per_session: HashMap<String, i64> = HashMap::new();
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.status, 200, "acct-{i}: {}", r.text());
        let sid = r.json["assignment"]["sessionId"]
            .as_str()
            .expect("sid")
            .to_owned();
        *per_session.entry(sid).or_default() += 1;
    }
    let got = f.ws.ok("BatchGetSessions", json!({ "sessionIds": s }));
    let mut sum = 0;
    for sess in got["sessions"].as_array().expect("sessions") {
        let n = int(&sess["assignmentCount"]);
        assert!(n <= 30, "session {} has {n} accounts", sess["id"]);
        assert_eq!(
            n,
            per_session.get(&id_of(sess)).copied().unwrap_or(0),
            "assignmentCount matches the bindings handed out"
        );
        sum += n;
    }
    assert_eq!(sum, 300);
    f.ws.resolve(&f.pool, "acct-300")
        .assert_error(400, "failed_precondition");
    // Explicit placement is not capped.
    f.create_ok("explicit", json!({ "sessionId": s[0] }));
    assert_eq!(f.count(&s[0]), 31);
}

#[test]
fn deleting_sessions_while_resolving_never_hands_out_a_deleted_session() {
    let srv = Server::start();
    let f = fx(&srv, json!({}));
    let s = f.sessions(6);
    let accounts: Vec<String> = (0..48).map(|i| format!("bot-{i}")).collect();
    for a in &accounts {
        f.resolve_ok(a);
    }
    let doomed: Vec<String> = s[..3].to_vec();
    let n = 16;
    let barrier = Arc::new(Barrier::new(n + 1));
    let workers: Vec<_> = (0..n)
        .map(|t| {
            let (addr, barrier) = (srv.addr, barrier.clone());
            let key = f.ws.key.clone();
            let bodies: Vec<Value> = accounts
                .iter()
                .skip(t % 3)
                .step_by(3)
                .map(|a| f.ws.body(json!({ "poolId": f.pool, "accountName": a })))
                .collect();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr).expect("connect");
                barrier.wait();
                let mut statuses = Vec::new();
                for _ in 0..3 {
                    for b in &bodies {
                        statuses.push(conn.rpc("ResolveProxy", &key, b).status);
                    }
                }
                statuses
            })
        })
        .collect();
    let deleter = {
        let (addr, barrier) = (srv.addr, barrier.clone());
        let key = f.ws.key.clone();
        let bodies: Vec<Value> = doomed
            .iter()
            .map(|d| f.ws.body(json!({ "sessionId": d })))
            .collect();
        std::thread::spawn(move || {
            let mut conn = Conn::open(addr).expect("connect");
            barrier.wait();
            for b in &bodies {
                std::thread::sleep(Duration::from_millis(5));
                conn.rpc("DeleteSession", &key, b).ok();
            }
        })
    };
    deleter.join().expect("deleter");
    for w in workers {
        for status in w.join().expect("worker") {
            assert_eq!(status, 200, "a resolve failed while sessions were deleted");
        }
    }
    let doomed_set: HashSet<&str> = doomed.iter().map(String::as_str).collect();
    for a in &accounts {
        let (asg, _) = f.resolve_ok(a);
        let sid = asg["sessionId"].as_str().expect("sid");
        assert!(!doomed_set.contains(sid), "{a} resolved to deleted {sid}");
    }
    let live = f.ws.ok("BatchGetSessions", json!({ "sessionIds": s[3..] }));
    let sum: i64 = live["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|x| int(&x["assignmentCount"]))
        .sum();
    assert_eq!(
        sum,
        accounts.len() as i64,
        "every account on a live session"
    );
}
