//! The three reference pages in `shared/seeds/` replayed against the server:
//! each page's request body, verbatim but for the ids (ours replace theirs),
//! and its response compared with the page field by field. Ids must be the
//! ones we created, timestamps are RFC 3339 ending in `Z`, `version` is a JSON
//! string, `port` a number, and no password comes back.

use serde_json::{json, Value};

use crate::common::Server;
use crate::inventory::{contains, id_of, ts_ms, Ws};

// The seed pages' ids, replaced by ours in requests and expected responses.
const SEED_WORKSPACE: &str = "AY+MHnorfD2eTxorPE1ebw==";
const SEED_POOL: &str = "AY+MISIifMyN3T09PT09PQ==";
const SEED_PROVIDER: &str = "AY+MIBEReqqLuywsLCwsLA==";
const SEED_SESSION: &str = "AY+MIjMzfu6P/05OTk5OTg==";
const SEED_ASSIGNMENT: &str = "AY+MI0REf/+Kql9fX19fXw==";
const SEED_TARGET_SESSION: &str = "AY+MIkREeqqLu19fX19fXw==";

// seeds/002: CreateSession.
const CREATE_SESSION_REQUEST: &str = r#"{ "workspaceId": "AY+MHnorfD2eTxorPE1ebw==", "poolId": "AY+MISIifMyN3T09PT09PQ==", "providerId": "AY+MIBEReqqLuywsLCwsLA==", "token": "sess-abc123", "scheme": "http", "host": "203.0.113.10", "port": 8080, "username": "user-018f", "password": "s3cr3t-pass" }"#;
const CREATE_SESSION_RESPONSE: &str = r#"{
"session": {
"id": "AY+MIjMzfu6P/05OTk5OTg==",
"workspaceId": "AY+MHnorfD2eTxorPE1ebw==",
"poolId": "AY+MISIifMyN3T09PT09PQ==",
"providerId": "AY+MIBEReqqLuywsLCwsLA==",
"token": "sess-abc123",
"scheme": "http",
"host": "203.0.113.10",
"port": 8080,
"username": "user-018f",
"enabled": true,
"version": "1",
"createdAt": "2026-06-29T10:15:00Z",
"updatedAt": "2026-06-29T10:15:00Z"
}
}"#;

// seeds/001: UpdateSession.
const UPDATE_SESSION_REQUEST: &str = r#"{ "workspaceId": "AY+MHnorfD2eTxorPE1ebw==", "sessionId": "AY+MIjMzfu6P/05OTk5OTg==", "host": "203.0.113.99", "port": 8080, "username": "user-rotated" }"#;
const UPDATE_SESSION_RESPONSE: &str = r#"{
"session": {
"id": "AY+MIjMzfu6P/05OTk5OTg==",
"workspaceId": "AY+MHnorfD2eTxorPE1ebw==",
"poolId": "AY+MISIifMyN3T09PT09PQ==",
"providerId": "AY+MIBEReqqLuywsLCwsLA==",
"token": "sess-abc123",
"scheme": "http",
"host": "203.0.113.99",
"port": 8080,
"username": "user-rotated",
"enabled": true,
"version": "3",
"createdAt": "2026-06-20T12:00:00Z",
"updatedAt": "2026-06-29T11:00:00Z"
}
}"#;

// seeds/000: UpdateAssignment.
const UPDATE_ASSIGNMENT_REQUEST: &str = r#"{ "workspaceId": "AY+MHnorfD2eTxorPE1ebw==", "assignmentId": "AY+MI0REf/+Kql9fX19fXw==", "sessionId": "AY+MIkREeqqLu19fX19fXw==" }"#;
const UPDATE_ASSIGNMENT_RESPONSE: &str = r#"{
"assignment": {
"id": "AY+MI0REf/+Kql9fX19fXw==",
"workspaceId": "AY+MHnorfD2eTxorPE1ebw==",
"poolId": "AY+MISIifMyN3T09PT09PQ==",
"sessionId": "AY+MIkREeqqLu19fX19fXw==",
"accountName": "steam_bot_01",
"pinned": true,
"version": "2",
"createdAt": "2026-06-20T12:00:00Z",
"updatedAt": "2026-06-29T11:00:00Z"
}
}"#;

/// The page's text with its ids replaced by ours.
fn substitute(text: &str, ids: &[(&str, &str)]) -> String {
    let mut t = text.to_owned();
    for (theirs, ours) in ids {
        t = t.replace(theirs, ours);
    }
    t
}

/// Posts the (substituted) request text as it is.
fn replay(srv: &Server, method: &str, key: &str, body: &str) -> crate::common::Reply {
    srv.post_raw(
        &format!("{}{method}", crate::common::SVC),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &crate::common::bearer(key)),
        ],
        body.as_bytes(),
    )
}

/// Compares the resource `got` with the page's `want`: every key of the
/// page is there with the same JSON value (timestamps only in form), and
/// any extra key is one of `extras` (fields the contract adds to the seed's).
fn compare(got: &Value, want: &Value, extras: &[&str]) {
    let (g, w) = (
        got.as_object().expect("response object"),
        want.as_object().expect("seed object"),
    );
    let mut diffs = Vec::new();
    for (k, wv) in w {
        let Some(gv) = g.get(k) else {
            diffs.push(format!("missing {k}"));
            continue;
        };
        if k.ends_with("At") {
            ts_ms(gv);
        } else if gv != wv {
            diffs.push(format!("{k}: got {gv}, page says {wv}"));
        }
    }
    for k in g.keys() {
        if !w.contains_key(k) && !extras.contains(&k.as_str()) {
            diffs.push(format!("unexpected field {k}: {}", g[k]));
        }
    }
    assert!(diffs.is_empty(), "{}\nresponse: {got}", diffs.join("\n"));
    // Types the page shows: int64 as a string, int32 as a number.
    if let Some(v) = g.get("version") {
        assert!(v.is_string(), "version must be a JSON string: {v}");
    }
    if let Some(p) = g.get("port") {
        assert!(p.is_u64(), "port must be a JSON number: {p}");
    }
}

struct Setup<'a> {
    ws: Ws<'a>,
    pool: String,
    provider: String,
}

fn setup(srv: &Server) -> Setup<'_> {
    let ws = Ws::new(srv, "OWNER");
    let provider = ws.generic();
    let pool = ws.pool(json!({ "name": "steam bots" }));
    Setup { ws, pool, provider }
}

/// Replays seed 002; returns the created session's id and the response.
fn create_seed_session(s: &Setup) -> (String, crate::common::Reply) {
    let ids = [
        (SEED_WORKSPACE, s.ws.id.as_str()),
        (SEED_POOL, s.pool.as_str()),
        (SEED_PROVIDER, s.provider.as_str()),
    ];
    let r = replay(
        s.ws.srv,
        "CreateSession",
        &s.ws.key,
        &substitute(CREATE_SESSION_REQUEST, &ids),
    );
    r.ok();
    (id_of(&r.json["session"]), r)
}

#[test]
fn seed_002_create_session_response_matches_the_page() {
    let srv = Server::start();
    let s = setup(&srv);
    let (id, r) = create_seed_session(&s);
    let want: Value = serde_json::from_str(&substitute(
        CREATE_SESSION_RESPONSE,
        &[
            (SEED_WORKSPACE, &s.ws.id),
            (SEED_POOL, &s.pool),
            (SEED_PROVIDER, &s.provider),
            (SEED_SESSION, &id),
        ],
    ))
    .expect("seed JSON");
    assert_eq!(
        r.json.as_object().map(|o| o.keys().collect::<Vec<_>>()),
        Some(vec![&"session".to_owned()])
    );
    compare(
        &r.json["session"],
        &want["session"],
        &["health", "assignmentCount"],
    );
    let got = &r.json["session"];
    assert_eq!(got["createdAt"], got["updatedAt"], "a new session");
    assert!(!contains(&r.body, "s3cr3t-pass"), "password returned");
    assert!(
        !contains(&r.body, "\"password\""),
        "password field returned"
    );
    // The id is a real one: the session reads back the same.
    let back = s.ws.get_session(&id);
    compare(&back, &want["session"], &["health", "assignmentCount"]);
}

#[test]
fn seed_001_update_session_response_matches_the_page() {
    let srv = Server::start();
    let s = setup(&srv);
    let (id, created) = create_seed_session(&s);
    // The page shows version 3: its session had one change before this one.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let before = s.ws.ok(
        "UpdateSession",
        json!({ "sessionId": id, "host": "203.0.113.50" }),
    );
    assert_eq!(before["session"]["version"], "2");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = replay(
        &srv,
        "UpdateSession",
        &s.ws.key,
        &substitute(
            UPDATE_SESSION_REQUEST,
            &[(SEED_WORKSPACE, &s.ws.id), (SEED_SESSION, &id)],
        ),
    );
    r.ok();
    let want: Value = serde_json::from_str(&substitute(
        UPDATE_SESSION_RESPONSE,
        &[
            (SEED_WORKSPACE, &s.ws.id),
            (SEED_POOL, &s.pool),
            (SEED_PROVIDER, &s.provider),
            (SEED_SESSION, &id),
        ],
    ))
    .expect("seed JSON");
    compare(
        &r.json["session"],
        &want["session"],
        &["health", "assignmentCount"],
    );
    let got = &r.json["session"];
    assert_eq!(got["createdAt"], created.json["session"]["createdAt"]);
    assert!(
        ts_ms(&got["updatedAt"]) > ts_ms(&before["session"]["updatedAt"]),
        "updatedAt moves on a change"
    );
    assert!(!contains(&r.body, "s3cr3t-pass") && !contains(&r.body, "\"password\""));
    // Fields not supplied kept their values, the password among them.
    s.ws.ok(
        "CreateAssignment",
        json!({ "poolId": s.pool, "accountName": "steam_bot_01", "sessionId": id, "pinned": true }),
    );
    let (_, proxy) = s.ws.resolve_ok(&s.pool, "steam_bot_01");
    assert_eq!(proxy["password"], "s3cr3t-pass");
    assert_eq!(
        proxy["url"],
        "http://user-rotated:s3cr3t-pass@203.0.113.99:8080"
    );
}

#[test]
fn seed_000_update_assignment_response_matches_the_page() {
    let srv = Server::start();
    let s = setup(&srv);
    let (first, _) = create_seed_session(&s);
    let target = s.ws.static_session(&s.pool, &s.provider, 11);
    let a = s.ws.ok(
        "CreateAssignment",
        json!({ "poolId": s.pool, "accountName": "steam_bot_01", "sessionId": first, "pinned": true }),
    )["assignment"]
        .clone();
    assert_eq!(a["version"], "1");
    let aid = id_of(&a);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = replay(
        &srv,
        "UpdateAssignment",
        &s.ws.key,
        &substitute(
            UPDATE_ASSIGNMENT_REQUEST,
            &[
                (SEED_WORKSPACE, &s.ws.id),
                (SEED_ASSIGNMENT, &aid),
                (SEED_TARGET_SESSION, &target),
            ],
        ),
    );
    r.ok();
    let want: Value = serde_json::from_str(&substitute(
        UPDATE_ASSIGNMENT_RESPONSE,
        &[
            (SEED_WORKSPACE, &s.ws.id),
            (SEED_POOL, &s.pool),
            (SEED_ASSIGNMENT, &aid),
            (SEED_TARGET_SESSION, &target),
        ],
    ))
    .expect("seed JSON");
    compare(
        &r.json["assignment"],
        &want["assignment"],
        &["boundAt", "rotations"],
    );
    let got = &r.json["assignment"];
    assert_eq!(got["createdAt"], a["createdAt"]);
    assert!(ts_ms(&got["updatedAt"]) > ts_ms(&a["updatedAt"]));
    assert!(
        ts_ms(&got["boundAt"]) > ts_ms(&a["boundAt"]),
        "boundAt moves"
    );
    assert_eq!(got["rotations"], 1);
    // And it sticks: the pinned account now resolves to the target.
    let (asg, _) = s.ws.resolve_ok(&s.pool, "steam_bot_01");
    assert_eq!(asg["sessionId"], target);
}
