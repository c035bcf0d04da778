//! Issue 3, the inventory: providers, pools and sessions — their errors, the
//! role matrix, secrets at rest and under key rotation, and pagination under
//! concurrent inserts. Also the small workspace fixture (`Ws`) and JSON
//! helpers that `assignments.rs` and `seeds.rs` share.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{cli_ok, random_id, Launch, Reply, Server, SVC};

// ------------------------------------------------------------------ fixture

/// A workspace and the key the test mainly acts with.
pub struct Ws<'a> {
    pub srv: &'a Server,
    pub id: String,
    pub key: String,
}

impl<'a> Ws<'a> {
    /// A new workspace and a key of `role` ("OWNER", "EDITOR", ...) in it.
    pub fn new(srv: &'a Server, role: &str) -> Ws<'a> {
        let (id, key) = srv.workspace_with_key("ws", role);
        Ws { srv, id, key }
    }

    /// Another key of this workspace.
    pub fn key_of(&self, role: &str) -> String {
        self.srv.create_key(&self.id, role).1
    }

    /// The body with this workspace's id added (unless it names one).
    pub fn body(&self, body: Value) -> Value {
        let mut b = body;
        if b.get("workspaceId").is_none() {
            b["workspaceId"] = json!(self.id);
        }
        b
    }

    pub fn call(&self, method: &str, body: Value) -> Reply {
        self.call_as(&self.key, method, body)
    }

    pub fn call_as(&self, key: &str, method: &str, body: Value) -> Reply {
        self.srv.rpc(method, key, self.body(body))
    }

    /// A call that must succeed; its JSON.
    #[track_caller]
    pub fn ok(&self, method: &str, body: Value) -> Value {
        let r = self.call(method, body);
        assert_eq!(
            r.status,
            200,
            "{method} expected 200, got {}: {}",
            r.status,
            r.text()
        );
        r.json
    }

    /// ConnectProvider of `PROVIDER_TYPE_<ptype>`, merged with `extra`
    /// (gateway, credentials); the provider.
    #[track_caller]
    pub fn provider(&self, ptype: &str, extra: Value) -> Value {
        let body = merge(
            json!({ "type": format!("PROVIDER_TYPE_{ptype}"), "name": format!("{ptype} account") }),
            extra,
        );
        self.ok("ConnectProvider", body)["provider"].clone()
    }

    /// A GENERIC provider without gateway or credentials; its id.
    #[track_caller]
    pub fn generic(&self) -> String {
        id_of(&self.provider("GENERIC", json!({})))
    }

    /// CreatePool merged with `extra`; the pool's id.
    #[track_caller]
    pub fn pool(&self, extra: Value) -> String {
        let body = merge(json!({ "name": "pool" }), extra);
        id_of(&self.ok("CreatePool", body)["pool"])
    }

    /// CreateSession with `spec` (token, scheme, host, ...); the session.
    #[track_caller]
    pub fn session(&self, pool: &str, provider: &str, spec: Value) -> Value {
        let body = merge(json!({ "poolId": pool, "providerId": provider }), spec);
        self.ok("CreateSession", body)["session"].clone()
    }

    /// A static session on 203.0.113.x; its id.
    #[track_caller]
    pub fn static_session(&self, pool: &str, provider: &str, n: u8) -> String {
        id_of(&self.session(
            pool,
            provider,
            json!({ "host": format!("203.0.113.{n}"), "port": 3128 }),
        ))
    }

    #[track_caller]
    pub fn get_session(&self, id: &str) -> Value {
        self.ok("GetSession", json!({ "sessionId": id }))["session"].clone()
    }

    pub fn resolve(&self, pool: &str, account: &str) -> Reply {
        self.call(
            "ResolveProxy",
            json!({ "poolId": pool, "accountName": account }),
        )
    }

    /// A resolve that must succeed: (assignment, proxy).
    #[track_caller]
    pub fn resolve_ok(&self, pool: &str, account: &str) -> (Value, Value) {
        let r = self.resolve(pool, account);
        assert_eq!(
            r.status,
            200,
            "ResolveProxy {account}: {} {}",
            r.status,
            r.text()
        );
        (r.json["assignment"].clone(), r.json["proxy"].clone())
    }
}

/// `a` with the keys of `b` set over it (both objects).
pub fn merge(a: Value, b: Value) -> Value {
    let mut a = a;
    if let (Some(ao), Value::Object(bo)) = (a.as_object_mut(), b) {
        for (k, v) in bo {
            ao.insert(k, v);
        }
    }
    a
}

#[track_caller]
pub fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

/// An int32/int64 protojson value: a number, a decimal string, or absent (0).
#[track_caller]
pub fn int(v: &Value) -> i64 {
    match v {
        Value::Null => 0,
        Value::Number(n) => n.as_i64().expect("integer"),
        Value::String(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("not an integer: {s:?}")),
        other => panic!("not an integer: {other}"),
    }
}

/// A protojson bool: absent is false.
pub fn flag(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

/// Milliseconds since the epoch of an RFC 3339 timestamp that ends in `Z`;
/// panics on anything else.
#[track_caller]
pub fn ts_ms(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> i64 {
        let t = &s[r];
        assert!(t.bytes().all(|c| c.is_ascii_digit()), "bad timestamp {s:?}");
        t.parse().expect("digits")
    };
    assert!(
        b.len() >= 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && s.ends_with('Z'),
        "not RFC 3339 UTC with Z: {s:?}"
    );
    let (y, mo, d) = (digits(0..4), digits(5..7), digits(8..10));
    let (h, mi, se) = (digits(11..13), digits(14..16), digits(17..19));
    let frac = &s[19..s.len() - 1];
    let ms = if frac.is_empty() {
        0
    } else {
        assert!(
            frac.starts_with('.') && frac.len() > 1,
            "bad fraction in {s:?}"
        );
        let f = &frac[1..];
        assert!(f.bytes().all(|c| c.is_ascii_digit()), "bad fraction {s:?}");
        let mut padded = f.to_owned();
        padded.push_str("000");
        padded[..3].parse::<i64>().expect("fraction")
    };
    // Days from civil (Howard Hinnant).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + h * 3600 + mi * 60 + se) * 1000) + ms
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every session id of a pool, following ListSessions' cursors.
pub fn list_all_sessions(ws: &Ws, pool: Option<&str>, page_size: i32) -> Vec<String> {
    let mut conn = ws.srv.conn();
    let mut out = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100_000 {
        let mut body = ws.body(json!({ "pageSize": page_size, "cursor": cursor }));
        if let Some(p) = pool {
            body["poolId"] = json!(p);
        }
        let r = conn.rpc("ListSessions", &ws.key, &body);
        r.ok();
        for id in r.json["sessionIds"].as_array().cloned().unwrap_or_default() {
            out.push(id.as_str().expect("id").to_owned());
        }
        cursor = r.json["nextCursor"].as_str().unwrap_or("").to_owned();
        if cursor.is_empty() {
            return out;
        }
    }
    panic!("ListSessions never ended");
}

/// One row of an error table: what is sent and the Connect error expected.
pub struct Case<'k> {
    pub name: &'static str,
    pub key: Option<&'k str>,
    pub body: Value,
    pub status: u16,
    pub code: &'static str,
}

/// Sends every case of a table to `method` (workspaceId added unless the
/// body names one; `key: None` sends no Authorization header) and checks
/// status and code, collecting every mismatch before failing.
pub fn run_error_table(ws: &Ws, method: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let body = ws.body(c.body.clone());
        let r = match c.key {
            Some(k) => ws.srv.rpc(method, k, body),
            None => ws.srv.post_raw(
                &format!("{SVC}{method}"),
                &[("Content-Type", "application/json")],
                body.to_string().as_bytes(),
            ),
        };
        if r.status != c.status || r.json["code"] != c.code {
            failures.push(format!(
                "{method} / {}: expected {} {}, got {} {}",
                c.name,
                c.status,
                c.code,
                r.status,
                r.text()
            ));
        } else {
            r.assert_error(c.status, c.code);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ------------------------------------------------------------- error tables

/// What every CreateSession error test needs: two workspaces, keys of
/// several roles, providers in each state.
struct Inventory<'a> {
    a: Ws<'a>,
    viewer: String,
    other_owner: String,
    pool: String,
    other_pool: String,
    /// GENERIC, no gateway: static sessions only.
    generic: String,
    /// PROXYLINE, disabled.
    disabled: String,
}

fn inventory(srv: &Server) -> Inventory<'_> {
    let a = Ws::new(srv, "OWNER");
    let viewer = a.key_of("VIEWER");
    let b = Ws::new(srv, "OWNER");
    let pool = a.pool(json!({}));
    let other_pool = b.pool(json!({}));
    let generic = a.generic();
    let disabled = id_of(&a.provider("PROXYLINE", json!({})));
    a.ok(
        "UpdateProvider",
        json!({ "providerId": disabled, "enabled": false }),
    );
    Inventory {
        viewer,
        other_owner: b.key,
        pool,
        other_pool,
        generic,
        disabled,
        a,
    }
}

#[test]
fn create_session_errors_follow_the_seed_page() {
    let srv = Server::start();
    let inv = inventory(&srv);
    let ws = &inv.a;
    ws.session(
        &inv.pool,
        &inv.generic,
        json!({ "token": "taken", "host": "203.0.113.1", "port": 80 }),
    );
    let owner = Some(ws.key.as_str());
    let good = |extra: Value| {
        merge(
            json!({ "poolId": inv.pool, "providerId": inv.generic, "host": "203.0.113.10", "port": 8080 }),
            extra,
        )
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
            "disabled provider",
            owner,
            good(json!({ "providerId": inv.disabled })),
            400,
            "failed_precondition",
        ),
        case(
            "rotation session, provider without gateway",
            owner,
            json!({ "poolId": inv.pool, "providerId": inv.generic, "token": "rot-1" }),
            400,
            "failed_precondition",
        ),
        case(
            "no Authorization header",
            None,
            good(json!({})),
            401,
            "unauthenticated",
        ),
        case(
            "unknown key",
            Some("pp_thisKeyDoesNotExist0000000000000000000000"),
            good(json!({})),
            401,
            "unauthenticated",
        ),
        case(
            "VIEWER key",
            Some(&inv.viewer),
            good(json!({})),
            403,
            "permission_denied",
        ),
        case(
            "key of another workspace",
            Some(&inv.other_owner),
            good(json!({})),
            403,
            "permission_denied",
        ),
        case(
            "unknown pool",
            owner,
            good(json!({ "poolId": random_id() })),
            404,
            "not_found",
        ),
        case(
            "unknown provider",
            owner,
            good(json!({ "providerId": random_id() })),
            404,
            "not_found",
        ),
        case(
            "pool of another workspace",
            owner,
            good(json!({ "poolId": inv.other_pool })),
            404,
            "not_found",
        ),
        case(
            "scheme ftp",
            owner,
            good(json!({ "scheme": "ftp" })),
            400,
            "invalid_argument",
        ),
        case(
            "port 0 with a host",
            owner,
            good(json!({ "port": 0 })),
            400,
            "invalid_argument",
        ),
        case(
            "port 70000",
            owner,
            good(json!({ "port": 70000 })),
            400,
            "invalid_argument",
        ),
        case(
            "port without host",
            owner,
            good(json!({ "host": "" })),
            400,
            "invalid_argument",
        ),
        case(
            "token with a space and a bang",
            owner,
            good(json!({ "token": "bad token!" })),
            400,
            "invalid_argument",
        ),
        case(
            "token with a slash",
            owner,
            good(json!({ "token": "a/b" })),
            400,
            "invalid_argument",
        ),
        case(
            "token of 129 characters",
            owner,
            good(json!({ "token": "t".repeat(129) })),
            400,
            "invalid_argument",
        ),
        case(
            "pool id of 3 bytes",
            owner,
            good(json!({ "poolId": "AAAA" })),
            400,
            "invalid_argument",
        ),
        case(
            "provider id missing",
            owner,
            good(json!({ "providerId": "" })),
            400,
            "invalid_argument",
        ),
        case(
            "workspace id not base64",
            owner,
            good(json!({ "workspaceId": "!!not base64!!" })),
            400,
            "invalid_argument",
        ),
        case(
            "token taken in the pool",
            owner,
            good(json!({ "token": "taken" })),
            409,
            "already_exists",
        ),
    ];
    run_error_table(ws, "CreateSession", &cases);

    // The limits are inclusive: 128 characters and ports 1 and 65535 pass.
    ws.session(
        &inv.pool,
        &inv.generic,
        json!({ "token": "t".repeat(128), "host": "203.0.113.2", "port": 65535 }),
    );
    ws.session(
        &inv.pool,
        &inv.generic,
        json!({ "token": "A-z_0.9", "host": "203.0.113.3", "port": 1 }),
    );
    // Nothing a refused call sent was created.
    assert_eq!(list_all_sessions(ws, Some(&inv.pool), 100).len(), 3);
}

#[test]
fn create_session_is_rate_limited_per_key() {
    let srv = Launch::default()
        .env("PROXYPLANE_RATE_LIMIT_PER_SECOND", "1")
        .env("PROXYPLANE_RATE_LIMIT_BURST", "1")
        .start();
    // Set up offline so each key spends at most its one token.
    let wsid = cli_ok(&srv.dir, &["workspaces", "create", "limited"])
        .trim()
        .to_owned();
    let key = |role: &str| {
        cli_ok(
            &srv.dir,
            &["keys", "create", "--workspace", &wsid, "--role", role],
        )
        .trim()
        .to_owned()
    };
    let ws = Ws {
        srv: &srv,
        id: wsid.clone(),
        key: key("OWNER"),
    };
    let provider = ws.generic();
    let ws = Ws {
        key: key("EDITOR"),
        ..ws
    };
    let pool = ws.pool(json!({}));
    let ws = Ws {
        key: key("EDITOR"),
        ..ws
    };
    let body = |token: &str| json!({ "poolId": pool, "providerId": provider, "token": token, "host": "203.0.113.10", "port": 8080 });
    ws.ok("CreateSession", body("first"));
    let r = ws.call("CreateSession", body("second"));
    r.assert_error(429, "resource_exhausted");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(retry >= 1, "Retry-After {retry}");
    // The refused call created nothing; another key still has its token.
    let viewer = Ws {
        key: key("VIEWER"),
        ..ws
    };
    assert_eq!(list_all_sessions(&viewer, Some(&pool), 100).len(), 1);
}

#[test]
fn update_session_errors_follow_the_seed_page() {
    let srv = Server::start();
    let inv = inventory(&srv);
    let ws = &inv.a;
    let s = ws.session(
        &inv.pool,
        &inv.generic,
        json!({ "token": "s1", "host": "203.0.113.10", "port": 8080, "password": "pw-1" }),
    );
    let sid = id_of(&s);
    let gone = ws.static_session(&inv.pool, &inv.generic, 11);
    ws.ok("DeleteSession", json!({ "sessionId": gone }));
    // A rotation session needs a gateway: give the GENERIC provider one.
    ws.ok(
        "UpdateProvider",
        json!({ "providerId": inv.generic, "gateway": { "host": "gw.example.net", "port": 7000 } }),
    );
    let rot = id_of(&ws.session(&inv.pool, &inv.generic, json!({ "token": "rot" })));
    let b = Ws::new(&srv, "OWNER");
    let b_pool = b.pool(json!({}));
    let b_prov = b.generic();
    let b_sess = b.static_session(&b_pool, &b_prov, 9);

    let owner = Some(ws.key.as_str());
    let on = |id: &str, extra: Value| merge(json!({ "sessionId": id }), extra);
    let case = |name, key, body, status, code| Case {
        name,
        key,
        body,
        status,
        code,
    };
    let cases = [
        case(
            "port 0",
            owner,
            on(&sid, json!({ "port": 0 })),
            400,
            "invalid_argument",
        ),
        case(
            "port 65536",
            owner,
            on(&sid, json!({ "port": 65536 })),
            400,
            "invalid_argument",
        ),
        case(
            "scheme ftp",
            owner,
            on(&sid, json!({ "scheme": "ftp" })),
            400,
            "invalid_argument",
        ),
        case(
            "empty scheme",
            owner,
            on(&sid, json!({ "scheme": "" })),
            400,
            "invalid_argument",
        ),
        case(
            "host with a space",
            owner,
            on(&sid, json!({ "host": "bad host" })),
            400,
            "invalid_argument",
        ),
        case(
            "session id of 3 bytes",
            owner,
            on("AAAA", json!({ "enabled": false })),
            400,
            "invalid_argument",
        ),
        case(
            "session id missing",
            owner,
            json!({ "enabled": false }),
            400,
            "invalid_argument",
        ),
        case(
            "no Authorization header",
            None,
            on(&sid, json!({ "enabled": false })),
            401,
            "unauthenticated",
        ),
        case(
            "VIEWER key",
            Some(&inv.viewer),
            on(&sid, json!({ "enabled": false })),
            403,
            "permission_denied",
        ),
        case(
            "key of another workspace",
            Some(&inv.other_owner),
            on(&sid, json!({ "enabled": false })),
            403,
            "permission_denied",
        ),
        case(
            "unknown session",
            owner,
            on(&random_id(), json!({ "enabled": false })),
            404,
            "not_found",
        ),
        case(
            "deleted session",
            owner,
            on(&gone, json!({ "enabled": false })),
            404,
            "not_found",
        ),
        case(
            "session of another workspace",
            owner,
            on(&b_sess, json!({ "enabled": false })),
            404,
            "not_found",
        ),
        case(
            "expectedVersion behind",
            owner,
            on(
                &sid,
                json!({ "host": "203.0.113.99", "expectedVersion": "2" }),
            ),
            409,
            "aborted",
        ),
        case(
            "expectedVersion 0",
            owner,
            on(&sid, json!({ "enabled": false, "expectedVersion": 0 })),
            409,
            "aborted",
        ),
        case(
            "host on a rotation session",
            owner,
            on(&rot, json!({ "host": "203.0.113.5" })),
            400,
            "failed_precondition",
        ),
        case(
            "port on a rotation session",
            owner,
            on(&rot, json!({ "port": 8080 })),
            400,
            "failed_precondition",
        ),
        case(
            "password on a rotation session",
            owner,
            on(&rot, json!({ "password": "x" })),
            400,
            "failed_precondition",
        ),
        case(
            "username on a rotation session",
            owner,
            on(&rot, json!({ "username": "x" })),
            400,
            "failed_precondition",
        ),
    ];
    run_error_table(ws, "UpdateSession", &cases);

    // Nothing changed: the static session is as created.
    let now = ws.get_session(&sid);
    assert_eq!(now["version"], "1");
    assert_eq!(now["host"], "203.0.113.10");
    assert_eq!(now["port"], 8080);
    assert!(flag(&now["enabled"]));
    // The matching version goes through, and enabled may change on a
    // rotation session.
    let v = ws.ok(
        "UpdateSession",
        json!({ "sessionId": sid, "port": 8081, "expectedVersion": "1" }),
    );
    assert_eq!(v["session"]["version"], "2");
    let r = ws.ok(
        "UpdateSession",
        json!({ "sessionId": rot, "enabled": false }),
    );
    assert_eq!(r["session"]["version"], "2");
    assert!(!flag(&r["session"]["enabled"]));
}

// -------------------------------------------------------------- role matrix

#[test]
fn role_matrix_for_provider_pool_and_session_methods() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let provider = id_of(&ws.provider(
        "GENERIC",
        json!({ "gateway": { "host": "gw.example.net", "port": 7000 } }),
    ));
    let pool = ws.pool(json!({}));
    let session = ws.static_session(&pool, &provider, 1);
    let keys = [
        ("ADMIN", srv.admin.clone()),
        ("OWNER", ws.key.clone()),
        ("EDITOR", ws.key_of("EDITOR")),
        ("RESOLVER", ws.key_of("RESOLVER")),
        ("VIEWER", ws.key_of("VIEWER")),
    ];
    let foreign = Ws::new(&srv, "OWNER").key;

    const OWNER: &[&str] = &["ADMIN", "OWNER"];
    const EDIT: &[&str] = &["ADMIN", "OWNER", "EDITOR"];
    const READ: &[&str] = &["ADMIN", "OWNER", "EDITOR", "VIEWER"];
    const RESOLVE: &[&str] = &["ADMIN", "OWNER", "EDITOR", "RESOLVER"];
    // (method, body, roles allowed, status an allowed role gets). Bodies that
    // would destroy the fixture name an unknown id, so an allowed role gets
    // not_found and a refused one permission_denied.
    let table: Vec<(&str, Value, &[&str], u16)> = vec![
        (
            "ConnectProvider",
            json!({ "type": "PROVIDER_TYPE_GENERIC", "name": "again" }),
            OWNER,
            409,
        ),
        ("GetProvider", json!({ "providerId": provider }), READ, 200),
        ("ListProviders", json!({}), READ, 200),
        (
            "UpdateProvider",
            json!({ "providerId": provider, "name": "renamed" }),
            OWNER,
            200,
        ),
        (
            "DisconnectProvider",
            json!({ "providerId": random_id() }),
            OWNER,
            404,
        ),
        (
            "SyncProvider",
            json!({ "providerId": random_id(), "poolId": random_id() }),
            EDIT,
            404,
        ),
        ("CreatePool", json!({ "name": "another" }), EDIT, 200),
        ("GetPool", json!({ "poolId": pool }), READ, 200),
        ("ListPools", json!({}), READ, 200),
        (
            "UpdatePool",
            json!({ "poolId": pool, "name": "renamed" }),
            EDIT,
            200,
        ),
        ("DeletePool", json!({ "poolId": random_id() }), EDIT, 404),
        (
            "CreateSession",
            json!({ "poolId": pool, "providerId": provider, "host": "203.0.113.20", "port": 80 }),
            EDIT,
            200,
        ),
        (
            "BulkCreateSessions",
            json!({ "poolId": pool, "providerId": provider, "sessions": [{ "host": "203.0.113.21", "port": 80 }] }),
            EDIT,
            200,
        ),
        ("GetSession", json!({ "sessionId": session }), READ, 200),
        (
            "BatchGetSessions",
            json!({ "sessionIds": [session] }),
            READ,
            200,
        ),
        ("ListSessions", json!({ "poolId": pool }), READ, 200),
        (
            "UpdateSession",
            json!({ "sessionId": session, "username": "u" }),
            EDIT,
            200,
        ),
        (
            "DeleteSession",
            json!({ "sessionId": random_id() }),
            EDIT,
            404,
        ),
        (
            "ReportSessionResult",
            json!({ "sessionId": session, "success": true }),
            RESOLVE,
            200,
        ),
        ("RotateWorkspaceKey", json!({}), OWNER, 200),
    ];
    let mut failures = Vec::new();
    for (method, body, allowed, ok_status) in &table {
        for (role, key) in &keys {
            let r = ws.call_as(key, method, body.clone());
            let want = if allowed.contains(role) {
                *ok_status
            } else {
                403
            };
            if r.status != want {
                failures.push(format!(
                    "{method} as {role}: expected {want}, got {} {}",
                    r.status,
                    r.text()
                ));
            } else if want == 403 {
                r.assert_error(403, "permission_denied");
            }
        }
        // An OWNER key of another workspace may do nothing here.
        let r = ws.call_as(&foreign, method, body.clone());
        if r.status != 403 || r.json["code"] != "permission_denied" {
            failures.push(format!(
                "{method} with another workspace's OWNER key: expected 403, got {} {}",
                r.status,
                r.text()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------- providers

#[test]
fn second_provider_of_a_type_is_already_exists() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let first = id_of(&ws.provider("WEBSHARE", json!({})));
    let r = ws.call(
        "ConnectProvider",
        json!({ "type": "PROVIDER_TYPE_WEBSHARE", "name": "second" }),
    );
    r.assert_error(409, "already_exists");
    // Other types, and the same type in another workspace, are fine.
    ws.provider("PROXYLINE", json!({}));
    ws.provider("GENERIC", json!({}));
    Ws::new(&srv, "OWNER").provider("WEBSHARE", json!({}));
    let list = ws.ok("ListProviders", json!({}));
    assert_eq!(list["providers"].as_array().map(Vec::len), Some(3));
    // Once disconnected, the type can be connected again.
    ws.ok("DisconnectProvider", json!({ "providerId": first }));
    ws.provider("WEBSHARE", json!({ "name": "again" }));
}

#[test]
fn provider_credentials_never_appear_in_any_response() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let viewer = ws.key_of("VIEWER");
    let secrets = [
        "apikey-Zq8fK2mV9x",
        "creduser-Hh3pL0a",
        "credpass-Wy7sN4t",
        "apikey2-Rt5bQ1c",
        "creduser2-Mn6vD8e",
        "credpass2-Ks2jF7g",
    ];
    let mut replies: Vec<(String, Reply)> = Vec::new();
    let r = ws.call(
        "ConnectProvider",
        json!({
            "type": "PROVIDER_TYPE_GENERIC", "name": "g",
            "credentials": { "apiKey": secrets[0], "username": secrets[1], "password": secrets[2] },
            "gateway": { "host": "gw.example.net", "port": 7000 }
        }),
    );
    r.ok();
    let id = id_of(&r.json["provider"]);
    replies.push(("ConnectProvider".into(), r));
    let r = ws.call(
        "ConnectProvider",
        json!({
            "type": "PROVIDER_TYPE_WEBSHARE", "name": "w",
            "credentials": { "apiKey": secrets[3], "username": secrets[4], "password": secrets[5] }
        }),
    );
    r.ok();
    replies.push(("ConnectProvider webshare".into(), r));
    for (label, key) in [("owner", &ws.key), ("viewer", &viewer)] {
        let r = ws.call_as(key, "GetProvider", json!({ "providerId": id }));
        r.ok();
        replies.push((format!("GetProvider ({label})"), r));
        let r = ws.call_as(key, "ListProviders", json!({}));
        r.ok();
        replies.push((format!("ListProviders ({label})"), r));
        let r = srv.connect_get("GetProvider", key, &ws.body(json!({ "providerId": id })));
        r.ok();
        replies.push((format!("GET GetProvider ({label})"), r));
    }
    let r = ws.call(
        "UpdateProvider",
        json!({ "providerId": id, "credentials": { "apiKey": secrets[0], "username": secrets[1], "password": secrets[2] } }),
    );
    r.ok();
    replies.push(("UpdateProvider".into(), r));
    // An invalid credential is refused without being echoed.
    let r = ws.call(
        "UpdateProvider",
        json!({ "providerId": id, "credentials": { "username": format!("{}\u{7}", secrets[1]) } }),
    );
    r.assert_error(400, "invalid_argument");
    replies.push(("UpdateProvider (invalid)".into(), r));
    let mut leaks = Vec::new();
    for (label, r) in &replies {
        for s in secrets {
            if contains(&r.raw, s) || contains(&r.body, s) {
                leaks.push(format!("{label} contains {s}: {}", r.text()));
            }
        }
        if r.status == 200 && (contains(&r.body, "credentials") || contains(&r.body, "apiKey")) {
            leaks.push(format!("{label} has a credentials field: {}", r.text()));
        }
    }
    assert!(leaks.is_empty(), "\n{}", leaks.join("\n"));
}

#[test]
fn update_provider_changes_only_supplied_fields() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let p = ws.provider(
        "GENERIC",
        json!({
            "credentials": { "username": "cust", "password": "pw-one" },
            "gateway": { "scheme": "socks5", "host": "gw.example.net", "port": 7000,
                         "usernameTemplate": "{username}-session-{token}", "passwordTemplate": "{password}" }
        }),
    );
    let id = id_of(&p);
    assert_eq!(p["version"], "1");
    assert_eq!(p["name"], "GENERIC account");
    assert!(flag(&p["enabled"]));
    let pool = ws.pool(json!({}));
    ws.session(&pool, &id, json!({ "token": "abc" }));

    let upd = |body: Value| {
        ws.ok("UpdateProvider", merge(json!({ "providerId": id }), body))["provider"].clone()
    };
    let v2 = upd(json!({ "name": "Bright Data" }));
    assert_eq!(v2["name"], "Bright Data");
    assert_eq!(v2["version"], "2");
    assert_eq!(v2["gateway"], p["gateway"], "gateway unchanged");
    assert!(flag(&v2["enabled"]));
    assert_eq!(v2["createdAt"], p["createdAt"]);
    assert!(ts_ms(&v2["updatedAt"]) >= ts_ms(&p["updatedAt"]));

    // Nothing supplied, nothing changed: the version stays.
    let same = upd(json!({}));
    assert_eq!(same["version"], "2");
    assert_eq!(same["name"], "Bright Data");

    let r = ws.call(
        "UpdateProvider",
        json!({ "providerId": id, "name": "x", "expectedVersion": "1" }),
    );
    r.assert_error(409, "aborted");

    // New credentials: the gateway login follows them, nothing else moves.
    let v3 = upd(
        json!({ "credentials": { "username": "cust2", "password": "pw-two" }, "expectedVersion": "2" }),
    );
    assert_eq!(v3["version"], "3");
    assert_eq!(v3["name"], "Bright Data");
    assert_eq!(v3["gateway"], p["gateway"]);
    let (_, proxy) = ws.resolve_ok(&pool, "bot");
    assert_eq!(proxy["username"], "cust2-session-abc");
    assert_eq!(proxy["password"], "pw-two");
    assert_eq!(proxy["scheme"], "socks5");

    // A gateway replaces the old one as a whole: empty templates take the
    // type's defaults.
    let v4 = upd(json!({ "gateway": { "host": "gw2.example.net", "port": 9000 } }));
    assert_eq!(v4["version"], "4");
    assert_eq!(
        v4["gateway"],
        json!({ "scheme": "http", "host": "gw2.example.net", "port": 9000,
                "usernameTemplate": "{username}", "passwordTemplate": "{password}" })
    );
    let v5 = upd(json!({ "enabled": false }));
    assert_eq!(v5["version"], "5");
    assert!(!flag(&v5["enabled"]));
    assert_eq!(v5["name"], "Bright Data");
    let got = ws.ok("GetProvider", json!({ "providerId": id }))["provider"].clone();
    assert_eq!(got, v5);
}

#[test]
fn disconnect_provider_is_refused_while_a_live_session_uses_it() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let s = ws.static_session(&pool, &prov, 1);
    let r = ws.call("DisconnectProvider", json!({ "providerId": prov }));
    r.assert_error(400, "failed_precondition");
    // Still there.
    ws.ok("GetProvider", json!({ "providerId": prov }));
    ws.ok("DeleteSession", json!({ "sessionId": s }));
    ws.ok("DisconnectProvider", json!({ "providerId": prov }));
    ws.call("GetProvider", json!({ "providerId": prov }))
        .assert_error(404, "not_found");
    let list = ws.ok("ListProviders", json!({}));
    assert_eq!(list["providers"].as_array().map_or(0, Vec::len), 0);
    ws.call("DisconnectProvider", json!({ "providerId": prov }))
        .assert_error(404, "not_found");
    // No new sessions on a disconnected provider.
    ws.call(
        "CreateSession",
        json!({ "poolId": pool, "providerId": prov, "host": "203.0.113.2", "port": 80 }),
    )
    .assert_error(404, "not_found");
}

#[test]
fn webshare_provider_defaults_and_numeric_tokens() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let p = ws.provider(
        "WEBSHARE",
        json!({ "credentials": { "username": "wsuser", "password": "wspass" } }),
    );
    assert_eq!(p["type"], "PROVIDER_TYPE_WEBSHARE");
    assert_eq!(
        p["gateway"],
        json!({ "scheme": "http", "host": "p.webshare.io", "port": 80,
                "usernameTemplate": "{username}-{token}", "passwordTemplate": "{password}" })
    );
    let prov = id_of(&p);
    let pool = ws.pool(json!({}));
    let tokens: Vec<String> = (0..3)
        .map(|_| {
            ws.session(&pool, &prov, json!({}))["token"]
                .as_str()
                .expect("token")
                .to_owned()
        })
        .collect();
    assert_eq!(tokens, ["1", "2", "3"]);
    let bulk = ws.ok(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": prov, "sessions": [{}, {}] }),
    );
    let ids: Vec<String> = bulk["sessionIds"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    let got = ws.ok("BatchGetSessions", json!({ "sessionIds": ids }));
    let bulk_tokens: Vec<&str> = got["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["token"].as_str().expect("token"))
        .collect();
    assert_eq!(bulk_tokens, ["4", "5"]);

    for bad in ["abc", "12a", "sess-1"] {
        ws.call(
            "CreateSession",
            json!({ "poolId": pool, "providerId": prov, "token": bad }),
        )
        .assert_error(400, "invalid_argument");
    }
    let s17 = id_of(&ws.session(&pool, &prov, json!({ "token": "17" })));
    assert_eq!(ws.session(&pool, &prov, json!({}))["token"], "18");

    // The default templates build Webshare's login from the token.
    let a = ws.ok(
        "CreateAssignment",
        json!({ "poolId": pool, "accountName": "bot", "sessionId": s17, "pinned": true }),
    );
    assert_eq!(a["assignment"]["sessionId"], s17);
    let (_, proxy) = ws.resolve_ok(&pool, "bot");
    assert_eq!(
        proxy,
        json!({
            "scheme": "http", "host": "p.webshare.io", "port": 80,
            "username": "wsuser-17", "password": "wspass",
            "url": "http://wsuser-17:wspass@p.webshare.io:80",
            "endpoint": "http://p.webshare.io:80"
        })
    );
}

// ----------------------------------------------------------------- sessions

#[test]
fn create_session_generates_a_token_when_absent() {
    let srv = Server::start();
    let owner = Ws::new(&srv, "OWNER");
    let prov = owner.generic();
    let ws = Ws {
        key: owner.key_of("EDITOR"),
        ..owner
    };
    let pool = ws.pool(json!({}));
    let mut seen = HashSet::new();
    for n in 0..5 {
        let s = ws.session(
            &pool,
            &prov,
            json!({ "host": format!("203.0.113.{n}"), "port": 8080 }),
        );
        let t = s["token"].as_str().expect("token").to_owned();
        assert!(
            !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "generated token {t:?}"
        );
        assert!(seen.insert(t.clone()), "token {t} generated twice");
        assert_eq!(ws.get_session(&id_of(&s))["token"], t);
    }
}

#[test]
fn deleted_session_is_gone_everywhere_and_frees_its_token() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let keep = ws.static_session(&pool, &prov, 1);
    let s = id_of(&ws.session(
        &pool,
        &prov,
        json!({ "token": "reuse-me", "host": "203.0.113.2", "port": 80 }),
    ));
    ws.ok("DeleteSession", json!({ "sessionId": s }));

    ws.call("GetSession", json!({ "sessionId": s }))
        .assert_error(404, "not_found");
    ws.call("BatchGetSessions", json!({ "sessionIds": [keep, s] }))
        .assert_error(404, "not_found");
    ws.call("DeleteSession", json!({ "sessionId": s }))
        .assert_error(404, "not_found");
    ws.call(
        "ReportSessionResult",
        json!({ "sessionId": s, "success": true }),
    )
    .assert_error(404, "not_found");
    assert_eq!(list_all_sessions(&ws, Some(&pool), 100), vec![keep.clone()]);
    assert_eq!(list_all_sessions(&ws, None, 100), vec![keep.clone()]);

    let again = ws.session(
        &pool,
        &prov,
        json!({ "token": "reuse-me", "host": "203.0.113.3", "port": 80 }),
    );
    assert_ne!(id_of(&again), s);
    assert_eq!(again["version"], "1");
    assert_eq!(again["host"], "203.0.113.3");
    // BulkCreateSessions does not resurrect the deleted one either.
    let bulk = ws.ok(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": prov, "sessions": [{ "token": "reuse-me", "host": "203.0.113.4", "port": 80 }] }),
    );
    assert_eq!(bulk["sessionIds"], json!([id_of(&again)]));
    assert_eq!(int(&bulk["existingCount"]), 1);
}

#[test]
fn batch_get_sessions_keeps_request_order() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let ids: Vec<String> = (1..=6)
        .map(|n| ws.static_session(&pool, &prov, n))
        .collect();
    let order = [4usize, 0, 5, 2, 1, 3];
    let asked: Vec<&String> = order.iter().map(|&i| &ids[i]).collect();
    let got = ws.ok("BatchGetSessions", json!({ "sessionIds": asked }));
    let sessions = got["sessions"].as_array().expect("sessions");
    let ids_back: Vec<&str> = sessions
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    let asked_str: Vec<&str> = asked.iter().map(|s| s.as_str()).collect();
    assert_eq!(ids_back, asked_str);
    for (s, &i) in sessions.iter().zip(&order) {
        assert_eq!(s["host"], format!("203.0.113.{}", i + 1));
    }
    // Ids of another workspace count as missing.
    let other = Ws::new(&srv, "OWNER");
    let op = other.pool(json!({}));
    let oprov = other.generic();
    let foreign = other.static_session(&op, &oprov, 9);
    ws.call(
        "BatchGetSessions",
        json!({ "sessionIds": [ids[0], foreign] }),
    )
    .assert_error(404, "not_found");
    ws.call(
        "BatchGetSessions",
        json!({ "sessionIds": [ids[0], "AAAA"] }),
    )
    .assert_error(400, "invalid_argument");
    let too_many: Vec<&String> = std::iter::repeat_n(&ids[0], 1001).collect();
    ws.call("BatchGetSessions", json!({ "sessionIds": too_many }))
        .assert_error(400, "invalid_argument");
}

#[test]
fn bulk_create_is_idempotent_on_pool_and_token() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let items: Vec<Value> = (0..40)
        .map(|i| {
            json!({ "token": format!("bulk-{i}"), "host": format!("198.51.100.{i}"), "port": 1000 + i, "password": format!("pw-{i}") })
        })
        .collect();
    let body = json!({ "poolId": pool, "providerId": prov, "sessions": items });
    let first = ws.ok("BulkCreateSessions", body.clone());
    assert_eq!(int(&first["createdCount"]), 40);
    assert_eq!(int(&first["existingCount"]), 0);
    let ids = first["sessionIds"].as_array().expect("ids").clone();
    assert_eq!(ids.len(), 40);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 40, "distinct ids");

    let again = ws.ok("BulkCreateSessions", body);
    assert_eq!(again["sessionIds"], json!(ids));
    assert_eq!(int(&again["createdCount"]), 0);
    assert_eq!(int(&again["existingCount"]), 40);
    assert_eq!(list_all_sessions(&ws, Some(&pool), 1000).len(), 40);

    // In request order, tokens mapped to their ids, new ones created.
    let mixed = ws.ok(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": prov, "sessions": [
            { "token": "bulk-7", "host": "198.51.100.7", "port": 1007 },
            { "token": "new-1", "host": "198.51.100.200", "port": 80 },
            { "token": "bulk-3", "host": "198.51.100.3", "port": 1003 },
        ] }),
    );
    let m = mixed["sessionIds"].as_array().expect("ids");
    assert_eq!(m[0], ids[7]);
    assert_eq!(m[2], ids[3]);
    assert!(!ids.contains(&m[1]));
    assert_eq!(int(&mixed["createdCount"]), 1);
    assert_eq!(int(&mixed["existingCount"]), 2);
    // Each session got its own item's fields.
    let s = ws.get_session(ids[12].as_str().expect("id"));
    assert_eq!(s["token"], "bulk-12");
    assert_eq!(s["host"], "198.51.100.12");
    assert_eq!(s["port"], 1012);
}

#[test]
fn bulk_create_with_an_invalid_item_creates_nothing_and_names_its_index() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let webshare = id_of(&ws.provider("WEBSHARE", json!({})));
    let pool = ws.pool(json!({}));
    let ok = |n: u8| json!({ "host": format!("203.0.113.{n}"), "port": 80 });
    let table: Vec<(&str, &str, Vec<Value>, usize)> = vec![
        (
            "port 0",
            &prov,
            vec![
                ok(1),
                ok(2),
                json!({ "host": "203.0.113.3", "port": 0 }),
                ok(4),
            ],
            2,
        ),
        (
            "scheme ftp",
            &prov,
            vec![
                json!({ "scheme": "ftp", "host": "203.0.113.3", "port": 80 }),
                ok(2),
            ],
            0,
        ),
        (
            "bad token",
            &prov,
            vec![
                ok(1),
                ok(2),
                ok(3),
                ok(4),
                json!({ "token": "no spaces", "host": "203.0.113.5", "port": 80 }),
            ],
            4,
        ),
        (
            "port without host",
            &prov,
            vec![ok(1), json!({ "port": 80 })],
            1,
        ),
        (
            "non-numeric Webshare rotation token",
            &webshare,
            vec![json!({}), json!({}), json!({ "token": "abc" })],
            2,
        ),
    ];
    for (name, provider, items, index) in table {
        let r = ws.call(
            "BulkCreateSessions",
            json!({ "poolId": pool, "providerId": provider, "sessions": items }),
        );
        r.assert_error(400, "invalid_argument");
        let msg = r.json["message"].as_str().unwrap_or("");
        assert!(
            msg.contains(&format!("sessions[{index}]")),
            "{name}: message should name sessions[{index}]: {msg:?}"
        );
        assert_eq!(
            list_all_sessions(&ws, Some(&pool), 100),
            Vec::<String>::new(),
            "{name}: nothing may be created"
        );
    }
    // A rotation item on a provider without a gateway fails the whole call.
    let r = ws.call(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": prov, "sessions": [ok(1), { "token": "rot" }] }),
    );
    assert_eq!(r.json["code"], "failed_precondition", "{}", r.text());
    assert!(list_all_sessions(&ws, Some(&pool), 100).is_empty());
}

#[test]
fn bulk_create_refuses_more_than_max_bulk_items() {
    let srv = Launch::default()
        .env("PROXYPLANE_MAX_BULK_ITEMS", "5")
        .start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let items = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({ "token": format!("t{i}"), "host": "203.0.113.1", "port": 80 }))
            .collect()
    };
    let r = ws.call(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": prov, "sessions": items(6) }),
    );
    r.assert_error(400, "invalid_argument");
    assert!(list_all_sessions(&ws, Some(&pool), 100).is_empty());
    let r = ws.ok(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": prov, "sessions": items(5) }),
    );
    assert_eq!(int(&r["createdCount"]), 5);
}

// ---------------------------------------------------------- secrets at rest

/// Files of the data dir that hold the database (main file, -wal, -shm).
fn database_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("data dir") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("proxyplane.db") {
            out.push((name, std::fs::read(e.path()).expect("read db file")));
        }
    }
    assert!(
        out.iter().any(|(n, _)| n == "proxyplane.db"),
        "no database file in {}",
        dir.display()
    );
    out
}

fn scan_for(files: &[(String, Vec<u8>)], secrets: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, bytes) in files {
        for s in secrets {
            if contains(bytes, s) {
                found.push(format!("{s} in {name}"));
            }
        }
    }
    found
}

#[test]
fn no_plaintext_secret_reaches_the_database_files() {
    let mut srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let mut secrets: Vec<String> = vec![srv.admin.clone(), ws.key.clone()];
    for role in ["EDITOR", "RESOLVER", "VIEWER"] {
        secrets.push(ws.key_of(role));
    }
    let cred = |tag: &str| format!("{tag}-Kx81pQz{tag}");
    for (ptype, tag) in [("GENERIC", "gen"), ("WEBSHARE", "ws"), ("PROXYLINE", "pl")] {
        let creds = json!({ "apiKey": cred(&format!("{tag}api")), "username": cred(&format!("{tag}user")), "password": cred(&format!("{tag}pass")) });
        ws.provider(
            ptype,
            json!({ "credentials": creds, "gateway": { "host": "gw.example.net", "port": 7000 } }),
        );
        for f in ["api", "user", "pass"] {
            secrets.push(cred(&format!("{tag}{f}")));
        }
    }
    let providers = ws.ok("ListProviders", json!({}))["providers"]
        .as_array()
        .expect("providers")
        .clone();
    let generic = providers
        .iter()
        .find(|p| p["type"] == "PROVIDER_TYPE_GENERIC")
        .map(id_of)
        .expect("generic");
    let proxyline = providers
        .iter()
        .find(|p| p["type"] == "PROVIDER_TYPE_PROXYLINE")
        .map(id_of)
        .expect("proxyline");
    // Credentials replaced by UpdateProvider must not linger either.
    let updated = cred("updatedpass");
    ws.ok(
        "UpdateProvider",
        json!({ "providerId": proxyline, "credentials": { "username": "pluser", "password": updated } }),
    );
    secrets.push(updated);

    let pool = ws.pool(json!({}));
    let pw = |i: usize| format!("sessionpw-Jf3{i}-Vb9q");
    for i in 0..5 {
        ws.session(
            &pool,
            &generic,
            json!({ "host": format!("203.0.113.{i}"), "port": 8080, "username": "u", "password": pw(i) }),
        );
        secrets.push(pw(i));
    }
    let items: Vec<Value> = (5..25)
        .map(|i| json!({ "host": format!("203.0.113.{i}"), "port": 8080, "password": pw(i) }))
        .collect();
    secrets.extend((5..25).map(pw));
    ws.ok(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": generic, "sessions": items }),
    );
    let s = ws.static_session(&pool, &generic, 200);
    let changed = pw(999);
    ws.ok(
        "UpdateSession",
        json!({ "sessionId": s, "password": changed }),
    );
    secrets.push(changed.clone());
    // Use them: resolution decrypts, and the key is rotated once.
    for i in 0..10 {
        ws.resolve_ok(&pool, &format!("acct-{i}"));
    }
    ws.ok("RotateWorkspaceKey", json!({}));
    ws.resolve_ok(&pool, "acct-after-rotation");

    let running = scan_for(&database_files(&srv.dir), &secrets);
    assert!(running.is_empty(), "while running: {running:?}");
    srv.sigterm();
    assert!(
        srv.wait_exit(Duration::from_secs(10)).is_some(),
        "server did not stop"
    );
    let stopped = scan_for(&database_files(&srv.dir), &secrets);
    assert!(stopped.is_empty(), "after stop: {stopped:?}");
    let log = srv.stderr();
    let logged: Vec<&String> = secrets
        .iter()
        .filter(|s| log.contains(s.as_str()))
        .collect();
    assert!(logged.is_empty(), "secrets in the log: {logged:?}");
}

#[test]
fn a_secret_copied_onto_another_row_does_not_open() {
    let mut srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let (pa, pb) = ("password-of-A-7Gx2", "password-of-B-Q9w4");
    let a = id_of(&ws.session(
        &pool,
        &prov,
        json!({ "host": "203.0.113.1", "port": 8080, "username": "ua", "password": pa }),
    ));
    let b = id_of(&ws.session(
        &pool,
        &prov,
        json!({ "host": "203.0.113.2", "port": 8080, "username": "ub", "password": pb }),
    ));
    // The same for provider credentials: two gateways, one rotation
    // session each.
    let (ca, cb) = ("cred-pass-of-P1-h5Jd", "cred-pass-of-P2-w2Lp");
    let p1 = id_of(&ws.provider(
        "PROXYLINE",
        json!({ "credentials": { "username": "p1user", "password": ca },
                "gateway": { "host": "gw1.example.net", "port": 7001 } }),
    ));
    let p2 = id_of(&ws.provider(
        "WEBSHARE",
        json!({ "credentials": { "username": "p2user", "password": cb } }),
    ));
    let r1 = id_of(&ws.session(&pool, &p1, json!({ "token": "r1" })));
    let r2 = id_of(&ws.session(&pool, &p2, json!({ "token": "2" })));
    for (acct, sess) in [
        ("acct-a", &a),
        ("acct-b", &b),
        ("acct-r1", &r1),
        ("acct-r2", &r2),
    ] {
        ws.ok(
            "CreateAssignment",
            json!({ "poolId": pool, "accountName": acct, "sessionId": sess, "pinned": true }),
        );
    }
    assert_eq!(ws.resolve_ok(&pool, "acct-b").1["password"], pb);
    assert_eq!(ws.resolve_ok(&pool, "acct-r2").1["password"], cb);
    let (ws_id, key) = (ws.id.clone(), ws.key.clone());

    srv.sigterm();
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some());
    {
        let c = rusqlite::Connection::open(srv.dir.join("proxyplane.db")).expect("open db");
        let blob = |s: &str| crate::common::unb64(s);
        let n = c
            .execute(
                "UPDATE sessions SET password = (SELECT password FROM sessions WHERE id = ?1) WHERE id = ?2",
                rusqlite::params![blob(&a), blob(&b)],
            )
            .expect("swap");
        assert_eq!(n, 1, "one row updated");
        let n = c
            .execute(
                "UPDATE providers SET credentials = (SELECT credentials FROM providers WHERE id = ?1) WHERE id = ?2",
                rusqlite::params![blob(&p1), blob(&p2)],
            )
            .expect("swap");
        assert_eq!(n, 1, "one row updated");
    }
    let srv2 = Launch::default().data_dir(&srv.dir).start();
    let ws2 = Ws {
        srv: &srv2,
        id: ws_id,
        key,
    };
    for acct in ["acct-b", "acct-r2"] {
        let r = ws2.resolve(&pool, acct);
        r.assert_error(500, "internal");
        let msg = r.json["message"].as_str().unwrap_or("");
        for leak in [
            pa,
            pb,
            ca,
            cb,
            "p1user",
            "sqlite",
            "SQL",
            "sealed",
            "credentials",
            "proxyplane.db",
            "/",
            "does not open",
        ] {
            assert!(
                !msg.contains(leak),
                "{acct}: internal message leaks {leak:?}: {msg}"
            );
        }
        for secret in [pa, pb, ca, cb] {
            assert!(!contains(&r.body, secret), "{acct}: {}", r.text());
        }
    }
    // A and P1 themselves still resolve, with their own secrets.
    let (asg, proxy) = ws2.resolve_ok(&pool, "acct-a");
    assert_eq!(asg["sessionId"], a);
    assert_eq!(proxy["password"], pa);
    assert_eq!(proxy["username"], "ua");
    let (asg, proxy) = ws2.resolve_ok(&pool, "acct-r1");
    assert_eq!(asg["sessionId"], r1);
    assert_eq!(proxy["password"], ca);
    assert_eq!(proxy["username"], "p1user");
    // The log names no secret either.
    let log = srv2.stderr();
    for secret in [pa, pb, ca, cb] {
        assert!(!log.contains(secret), "log leaks {secret}");
    }
    drop(srv2);
    drop(srv);
}

#[test]
fn rotate_workspace_key_reseals_every_secret() {
    let mut srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let generic = id_of(&ws.provider(
        "GENERIC",
        json!({
            "credentials": { "apiKey": "bd-api", "username": "bd-user", "password": "bd-pass" },
            "gateway": { "host": "brd.example.net", "port": 22225, "usernameTemplate": "{username}-session-{token}" }
        }),
    ));
    let webshare = id_of(&ws.provider(
        "WEBSHARE",
        json!({ "credentials": { "username": "wsuser", "password": "ws:pass@1" } }),
    ));
    let iproyal = id_of(&ws.provider(
        "PROXYLINE",
        json!({
            "credentials": { "username": "ipr", "password": "iprpass" },
            "gateway": { "host": "geo.example.org", "port": 12321, "passwordTemplate": "{password}_session-{token}" }
        }),
    ));
    let pool = ws.pool(json!({}));
    // (account, session, expected username, expected password)
    let mut expect: Vec<(String, String, String, String)> = Vec::new();
    let passwords = ["plain-1", "p@ss:w/rd", "ünïcødé-☃", "with space", ""];
    for (i, p) in passwords.iter().enumerate() {
        let mut spec = json!({ "host": format!("203.0.113.{i}"), "port": 3128, "username": format!("user{i}") });
        if !p.is_empty() {
            spec["password"] = json!(p);
        }
        let s = id_of(&ws.session(&pool, &generic, spec));
        expect.push((format!("static-{i}"), s, format!("user{i}"), p.to_string()));
    }
    let s = id_of(&ws.session(&pool, &generic, json!({ "token": "tok1" })));
    expect.push((
        "rot-generic".into(),
        s,
        "bd-user-session-tok1".into(),
        "bd-pass".into(),
    ));
    let s = id_of(&ws.session(&pool, &webshare, json!({ "token": "42" })));
    expect.push((
        "rot-webshare".into(),
        s,
        "wsuser-42".into(),
        "ws:pass@1".into(),
    ));
    let s = id_of(&ws.session(&pool, &iproyal, json!({ "token": "xyz" })));
    expect.push((
        "rot-iproyal".into(),
        s,
        "ipr".into(),
        "iprpass_session-xyz".into(),
    ));
    // A deleted session (its password wiped on delete) must not break the
    // rotation.
    let gone = id_of(&ws.session(
        &pool,
        &generic,
        json!({ "host": "203.0.113.99", "port": 1, "password": "gone-pw" }),
    ));
    ws.ok("DeleteSession", json!({ "sessionId": gone }));
    for (acct, s, _, _) in &expect {
        ws.ok(
            "CreateAssignment",
            json!({ "poolId": pool, "accountName": acct, "sessionId": s, "pinned": true }),
        );
    }
    let check_all = |ws: &Ws| {
        for (acct, s, user, pass) in &expect {
            let (a, proxy) = ws.resolve_ok(&pool, acct);
            assert_eq!(&a["sessionId"], s, "{acct}");
            assert_eq!(proxy["username"].as_str().unwrap_or(""), user, "{acct}");
            assert_eq!(proxy["password"].as_str().unwrap_or(""), pass, "{acct}");
        }
    };
    check_all(&ws);
    let ws_before = ws.ok("GetWorkspace", json!({}))["workspace"].clone();
    assert_eq!(int(&ws_before["keyVersion"]), 1);

    for (prev, new) in [(1, 2), (2, 3)] {
        let r = ws.ok("RotateWorkspaceKey", json!({}));
        assert_eq!(int(&r["previousKeyVersion"]), prev);
        assert_eq!(int(&r["newKeyVersion"]), new);
    }
    let w = ws.ok("GetWorkspace", json!({}))["workspace"].clone();
    assert_eq!(int(&w["keyVersion"]), 3);
    for p in [&generic, &webshare, &iproyal] {
        let got = ws.ok("GetProvider", json!({ "providerId": p }))["provider"].clone();
        assert_eq!(int(&got["keyVersion"]), 3, "{got}");
    }
    for p in ws.ok("ListProviders", json!({}))["providers"]
        .as_array()
        .expect("providers")
    {
        assert_eq!(int(&p["keyVersion"]), 3, "{p}");
    }
    check_all(&ws);
    // Another workspace is untouched.
    let other = Ws::new(&srv, "OWNER");
    assert_eq!(
        int(&other.ok("GetWorkspace", json!({}))["workspace"]["keyVersion"]),
        1
    );

    // And after a restart, with no key cached in memory.
    let (id, key) = (ws.id.clone(), ws.key.clone());
    srv.sigterm();
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some());
    // At rest, every sealed secret of the workspace names key version 3 in
    // its first four bytes; the deleted session holds none.
    {
        let c = rusqlite::Connection::open(srv.dir.join("proxyplane.db")).expect("open db");
        let ws_blob = crate::common::unb64(&id);
        let mut blobs: Vec<Vec<u8>> = Vec::new();
        for sql in [
            "SELECT password FROM sessions WHERE workspace_id = ?1 AND password IS NOT NULL",
            "SELECT credentials FROM providers WHERE workspace_id = ?1 AND credentials IS NOT NULL",
        ] {
            let mut st = c.prepare(sql).expect("prepare");
            let rows = st
                .query_map([&ws_blob], |r| r.get::<_, Vec<u8>>(0))
                .expect("query");
            blobs.extend(rows.map(|r| r.expect("row")));
        }
        assert_eq!(
            blobs.len(),
            4 + 3,
            "4 live passwords (the deleted one is wiped), 3 providers"
        );
        for b in &blobs {
            assert_eq!(b.get(..4), Some(&[0u8, 0, 0, 3][..]), "sealed under v3");
        }
    }
    let srv2 = Launch::default().data_dir(&srv.dir).start();
    let ws2 = Ws {
        srv: &srv2,
        id,
        key,
    };
    check_all(&ws2);
    // New secrets are sealed under the new key and open too.
    let s = id_of(&ws2.session(
        &pool,
        &generic,
        json!({ "host": "203.0.113.50", "port": 3128, "password": "after-rotation" }),
    ));
    ws2.ok(
        "CreateAssignment",
        json!({ "poolId": pool, "accountName": "late", "sessionId": s, "pinned": true }),
    );
    assert_eq!(
        ws2.resolve_ok(&pool, "late").1["password"],
        "after-rotation"
    );
    drop(srv2);
    drop(srv);
}

// --------------------------------------------------------------- pagination

#[test]
fn list_sessions_pages_are_stable_under_concurrent_inserts() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let items: Vec<Value> = (0..2500)
        .map(|i| json!({ "token": format!("p{i}"), "host": format!("10.{}.{}.1", i / 250, i % 250), "port": 8000 }))
        .collect();
    let bulk = ws.ok(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": prov, "sessions": items }),
    );
    assert_eq!(int(&bulk["createdCount"]), 2500);
    let original: Vec<String> = bulk["sessionIds"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    let deleted: HashSet<String> = original.iter().step_by(97).cloned().collect();
    for d in &deleted {
        ws.ok("DeleteSession", json!({ "sessionId": d }));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicUsize::new(0));
    let inserter = {
        let (stop, inserted) = (stop.clone(), inserted.clone());
        let (addr, key) = (srv.addr, ws.key.clone());
        let body = ws
            .body(json!({ "poolId": pool, "providerId": prov, "host": "203.0.113.1", "port": 80 }));
        std::thread::spawn(move || {
            let mut conn = crate::common::Conn::open(addr).expect("connect");
            let mut ids = Vec::new();
            // Bounded: at most 2,000 inserts.
            for _ in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = conn.rpc("CreateSession", &key, &body);
                r.ok();
                ids.push(r.json["session"]["id"].as_str().expect("id").to_owned());
                inserted.fetch_add(1, Ordering::Relaxed);
            }
            ids
        })
    };
    // Let the inserter get going before the first page.
    while inserted.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = inserted.load(Ordering::Relaxed);
    let listed = list_all_sessions(&ws, Some(&pool), 100);
    let during = inserted.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let new_ids: HashSet<String> = inserter.join().expect("inserter").into_iter().collect();
    assert!(during > 0, "no insert happened while paging");

    let mut seen = HashSet::new();
    for id in &listed {
        assert!(seen.insert(id), "{id} listed twice");
    }
    let missed: Vec<&String> = original
        .iter()
        .filter(|id| !deleted.contains(*id) && !seen.contains(id))
        .collect();
    assert!(missed.is_empty(), "{} originals missed", missed.len());
    let resurrected: Vec<&String> = deleted.iter().filter(|d| seen.contains(d)).collect();
    assert!(
        resurrected.is_empty(),
        "deleted sessions listed: {resurrected:?}"
    );
    // Pages follow creation order: the originals come in request order.
    let originals_listed: Vec<&String> = listed.iter().filter(|id| original.contains(id)).collect();
    let originals_live: Vec<&String> = original
        .iter()
        .filter(|id| !deleted.contains(*id))
        .collect();
    assert!(
        originals_listed == originals_live,
        "sessions are not listed in creation order"
    );
    let strangers: Vec<&&String> = seen
        .iter()
        .filter(|id| !original.contains(id) && !new_ids.contains(id.as_str()))
        .collect();
    assert!(strangers.is_empty(), "unknown ids listed: {strangers:?}");

    // A pool of another workspace is not_found.
    let other = Ws::new(&srv, "OWNER");
    let other_pool = other.pool(json!({}));
    ws.call("ListSessions", json!({ "poolId": other_pool }))
        .assert_error(404, "not_found");
    // pageSize above 1000 is clamped, and a cursor that does not parse is
    // invalid_argument.
    let r = ws.ok("ListSessions", json!({ "poolId": pool, "pageSize": 5000 }));
    assert_eq!(r["sessionIds"].as_array().map(Vec::len), Some(1000));
    ws.call(
        "ListSessions",
        json!({ "poolId": pool, "cursor": "definitely not a cursor" }),
    )
    .assert_error(400, "invalid_argument");
}

#[test]
fn timestamps_move_forward_on_update() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let t0 = now_ms();
    let s = ws.session(&pool, &prov, json!({ "host": "203.0.113.1", "port": 80 }));
    let created = ts_ms(&s["createdAt"]);
    assert!(
        (t0 - 5_000..=now_ms() + 5_000).contains(&created),
        "createdAt {} is not now",
        s["createdAt"]
    );
    assert_eq!(s["createdAt"], s["updatedAt"]);
    std::thread::sleep(Duration::from_millis(20));
    let u = ws.ok(
        "UpdateSession",
        json!({ "sessionId": id_of(&s), "enabled": false }),
    )["session"]
        .clone();
    assert_eq!(u["createdAt"], s["createdAt"]);
    assert!(ts_ms(&u["updatedAt"]) > created, "updatedAt did not move");
}

// Generated Webshare tokens skip the tokens named later in the same request:
// `[{}, {}, {"token": "2"}]` on an empty pool once generated "1" and "2" and
// then handed the third item the second item's session. "Existing" means a
// session that was there before the call.
#[test]
fn bulk_create_generated_webshare_tokens_skip_tokens_named_in_the_request() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = id_of(&ws.provider("WEBSHARE", json!({})));
    let pool = ws.pool(json!({}));
    let r = ws.ok(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": prov, "sessions": [{}, {}, { "token": "2" }] }),
    );
    let ids: Vec<&str> = r["sessionIds"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id"))
        .collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        3,
        "three items, three sessions: {r}"
    );
    assert_eq!(int(&r["createdCount"]), 3, "{r}");
    assert_eq!(int(&r["existingCount"]), 0, "{r}");
    let got = ws.ok("BatchGetSessions", json!({ "sessionIds": ids }));
    assert_eq!(got["sessions"][2]["token"], "2");
}
