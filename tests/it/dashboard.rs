//! The web dashboard as the binary serves it: its files, the security
//! headers on every one of them, the `dashboard` switch, and GetPoolStats
//! (the RPC its charts draw from). The pages themselves are tested in a
//! real browser by tests/browser/run.sh.

use serde_json::{json, Value};

use crate::common::*;

const PAGES: &[(&str, &str)] = &[
    ("/", "text/html"),
    ("/index.html", "text/html"),
    ("/assets/app.js", "text/javascript"),
    ("/assets/api.js", "text/javascript"),
    ("/assets/style.css", "text/css"),
    ("/assets/icon.svg", "image/svg+xml"),
];

#[track_caller]
fn assert_security_headers(r: &Reply, path: &str) {
    let csp = r.header("content-security-policy").unwrap_or("");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{path}: CSP {csp:?} lacks {part}");
    }
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
}

#[test]
fn the_dashboard_and_its_assets_are_served_with_security_headers() {
    let s = Server::start();
    for (path, ty) in PAGES {
        let r = s.get(path, &[]);
        r.ok();
        assert!(
            r.header("content-type").unwrap_or("").starts_with(ty),
            "{path}: {:?}",
            r.header("content-type")
        );
        assert_security_headers(&r, path);
        assert!(!r.body.is_empty(), "{path} is empty");
    }
    let page = s.get("/", &[]).text();
    assert!(page.contains("<script type=\"module\" src=\"/assets/app.js\">"));
    // No inline script or style for the CSP to refuse.
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "{page}"
    );
    // Compressed for browsers that ask, and the same bytes once inflated.
    let plain = s.get("/assets/views.js", &[]);
    let gz = s.get("/assets/views.js", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(gz.raw.len() < plain.body.len() / 2);
    assert_eq!(gz.body, plain.body);
}

#[test]
fn unknown_paths_stay_404_and_only_get_and_head_reach_the_dashboard() {
    let s = Server::start();
    for path in [
        "/assets/nope.js",
        "/assets/../web/app.js",
        "/assets/",
        "/app.js",
        "/favicon.ico",
        "/proxies.v1.Proxies/NoSuchMethod",
    ] {
        let r = s.get(path, &[]);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let r = s.get("/assets/nope.js", &[]);
    assert_security_headers(&r, "/assets/nope.js");
    // Only GET and HEAD reach the dashboard; a POST to / is an unknown
    // method, as it was before there was a dashboard.
    let r = s.post_raw("/", &[("Content-Type", "application/json")], b"{}");
    r.assert_error(404, "unimplemented");
    let head = s.conn().request("HEAD", "/", &[], b"").unwrap();
    head.ok();
    let full = s.get("/", &[]);
    assert_eq!(head.header("content-length"), full.header("content-length"));
    assert_security_headers(&head, "HEAD /");
    // The API and the plain endpoints are unchanged beside it.
    s.get("/healthz", &[]).ok();
    s.rpc("ListWorkspaces", &s.admin, json!({})).ok();
}

#[test]
fn dashboard_false_turns_it_off_from_the_file_or_the_environment() {
    for s in [
        Launch::default().config("dashboard = false\n").start(),
        Launch::default()
            .env("PROXYPLANE_DASHBOARD", "false")
            .start(),
    ] {
        for (path, _) in PAGES {
            let r = s.get(path, &[]);
            assert_eq!(r.status, 404, "{path} with the dashboard off");
            assert_eq!(r.header("x-frame-options"), None);
        }
        s.get("/healthz", &[]).ok();
        s.rpc("ListWorkspaces", &s.admin, json!({})).ok();
    }
    let (status, err) = Launch::default()
        .env("PROXYPLANE_DASHBOARD", "maybe")
        .run_to_exit();
    assert!(!status.success());
    assert!(
        err.contains("dashboard") && err.contains("true or false"),
        "{err}"
    );
}

#[test]
fn list_workspaces_tells_the_caller_its_role() {
    let s = Server::start();
    let r = s.rpc("ListWorkspaces", &s.admin, json!({}));
    assert_eq!(r.ok().json["callerRole"], "API_KEY_ROLE_ADMIN");
    for role in ["OWNER", "EDITOR", "VIEWER"] {
        let (_, key) = s.workspace_with_key(&format!("w-{role}"), role);
        let r = s.rpc("ListWorkspaces", &key, json!({}));
        assert_eq!(
            r.ok().json["callerRole"],
            format!("API_KEY_ROLE_{role}").as_str()
        );
    }
    let (_, resolver) = s.workspace_with_key("w-resolver", "RESOLVER");
    s.rpc("ListWorkspaces", &resolver, json!({}))
        .assert_error(403, "permission_denied");
}

/// A workspace with a GENERIC provider, a pool and `n` static sessions:
/// (workspace, pool, session ids).
fn pool_with_sessions(s: &Server, n: usize) -> (String, String, Vec<String>) {
    let ws = s.create_workspace("stats");
    let provider = s
        .rpc(
            "ConnectProvider",
            &s.admin,
            json!({"workspaceId": ws, "type": "PROVIDER_TYPE_GENERIC", "name": "list"}),
        )
        .ok()
        .json["provider"]["id"]
        .clone();
    let pool = s
        .rpc(
            "CreatePool",
            &s.admin,
            json!({"workspaceId": ws, "name": "bots", "failureThreshold": 2}),
        )
        .ok()
        .json["pool"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let specs: Vec<Value> = (0..n)
        .map(|i| json!({"token": format!("t{i}"), "scheme": "http", "host": format!("10.0.0.{i}"), "port": 8080}))
        .collect();
    let ids = s
        .rpc(
            "BulkCreateSessions",
            &s.admin,
            json!({"workspaceId": ws, "poolId": pool, "providerId": provider, "sessions": specs}),
        )
        .ok()
        .json["sessionIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    (ws, pool, ids)
}

fn totals(stats: &Value) -> (i64, i64, i64) {
    let n = |m: &Value, k: &str| m[k].as_str().map_or(0, |v| v.parse::<i64>().unwrap());
    stats["minutes"]
        .as_array()
        .unwrap()
        .iter()
        .fold((0, 0, 0), |t, m| {
            (
                t.0 + n(m, "resolves"),
                t.1 + n(m, "moves"),
                t.2 + n(m, "failures"),
            )
        })
}

#[test]
fn pool_stats_count_resolves_moves_and_failures_per_minute_and_split_sessions_by_state() {
    let s = Server::start();
    let (ws, pool, ids) = pool_with_sessions(&s, 5);
    let (_, viewer) = s.create_key(&ws, "VIEWER");
    let stats = || {
        s.rpc(
            "GetPoolStats",
            &viewer,
            json!({"workspaceId": ws, "poolId": pool}),
        )
        .ok()
        .json
        .clone()
    };
    let empty = stats();
    assert_eq!(empty["minutes"].as_array().unwrap().len(), 60);
    assert_eq!(totals(&empty), (0, 0, 0));
    assert_eq!(empty["sessions"]["healthy"], "5");

    for account in ["a", "b", "a"] {
        s.rpc(
            "ResolveProxy",
            &s.admin,
            json!({"workspaceId": ws, "poolId": pool, "accountName": account}),
        )
        .ok();
    }
    let a = s.rpc(
        "ListAssignments",
        &s.admin,
        json!({"workspaceId": ws, "accountName": "a"}),
    );
    let a_id = a.ok().json["assignments"][0]["id"].clone();
    s.rpc(
        "RebindAssignment",
        &s.admin,
        json!({"workspaceId": ws, "assignmentId": a_id}),
    )
    .ok();
    // Two failures reach the threshold: a cooldown. One failure elsewhere:
    // unhealthy but still eligible. One session disabled.
    for id in [&ids[0], &ids[0], &ids[1]] {
        s.rpc(
            "ReportSessionResult",
            &s.admin,
            json!({"workspaceId": ws, "sessionId": id, "success": false}),
        )
        .ok();
    }
    s.rpc(
        "UpdateSession",
        &s.admin,
        json!({"workspaceId": ws, "sessionId": ids[2], "enabled": false}),
    )
    .ok();
    // A refused call counts nothing.
    s.rpc(
        "RebindAssignment",
        &s.admin,
        json!({"workspaceId": ws, "assignmentId": random_id()}),
    )
    .assert_error(404, "not_found");

    let st = stats();
    assert_eq!(totals(&st), (3, 1, 3), "{st}");
    let minutes = st["minutes"].as_array().unwrap();
    // The calls took well under a minute: they are all in the last two.
    let recent = totals(&json!({"minutes": minutes[58..].to_vec()}));
    assert_eq!(recent, (3, 1, 3), "{st}");
    let last = &minutes[59];
    let start = |m: &Value| m["start"].as_str().unwrap().to_owned();
    assert!(start(&minutes[0]) < start(last));
    assert!(start(last).ends_with(":00Z"), "{}", start(last));
    assert_eq!(
        st["sessions"],
        json!({"healthy": "2", "unhealthy": "1", "coolingDown": "1", "disabled": "1"})
    );
}

#[test]
fn pool_stats_are_scoped_and_validated_like_every_read() {
    let s = Server::start();
    let (ws, pool, _) = pool_with_sessions(&s, 1);
    let (_, other) = s.workspace_with_key("other", "OWNER");
    s.rpc(
        "GetPoolStats",
        &other,
        json!({"workspaceId": ws, "poolId": pool}),
    )
    .assert_error(403, "permission_denied");
    let (_, resolver) = s.create_key(&ws, "RESOLVER");
    s.rpc(
        "GetPoolStats",
        &resolver,
        json!({"workspaceId": ws, "poolId": pool}),
    )
    .assert_error(403, "permission_denied");
    let r = s.rpc(
        "GetPoolStats",
        &s.admin,
        json!({"workspaceId": ws, "poolId": random_id()}),
    );
    r.assert_error(404, "not_found");
    let r = s.rpc(
        "GetPoolStats",
        &s.admin,
        json!({"workspaceId": ws, "poolId": "xx"}),
    );
    r.assert_error(400, "invalid_argument");
    assert!(
        r.json["message"].as_str().unwrap().contains("pool"),
        "{}",
        r.text()
    );
    // A read: Connect GET answers it too.
    s.connect_get(
        "GetPoolStats",
        &s.admin,
        &json!({"workspaceId": ws, "poolId": pool}),
    )
    .ok();
}

#[test]
fn pool_stats_count_a_rotation_at_resolve_and_a_move_by_update_as_moves() {
    let s = Server::start();
    let (ws, pool, ids) = pool_with_sessions(&s, 3);
    s.rpc(
        "UpdatePool",
        &s.admin,
        json!({"workspaceId": ws, "poolId": pool, "failureThreshold": 1}),
    )
    .ok();
    let resolve = || {
        s.rpc(
            "ResolveProxy",
            &s.admin,
            json!({"workspaceId": ws, "poolId": pool, "accountName": "a"}),
        )
        .ok()
        .json["assignment"]
            .clone()
    };
    let first = resolve();
    s.rpc(
        "ReportSessionResult",
        &s.admin,
        json!({"workspaceId": ws, "sessionId": first["sessionId"], "success": false}),
    )
    .ok();
    // The session cools down: the next resolve moves the account.
    let second = resolve();
    assert_ne!(second["sessionId"], first["sessionId"]);
    let elsewhere = ids
        .iter()
        .find(|id| **id != second["sessionId"] && **id != first["sessionId"])
        .unwrap();
    s.rpc(
        "UpdateAssignment",
        &s.admin,
        json!({"workspaceId": ws, "assignmentId": second["id"], "sessionId": elsewhere}),
    )
    .ok();
    // Pinning alone moves nothing.
    s.rpc(
        "UpdateAssignment",
        &s.admin,
        json!({"workspaceId": ws, "assignmentId": second["id"], "pinned": true}),
    )
    .ok();
    let st = s
        .rpc(
            "GetPoolStats",
            &s.admin,
            json!({"workspaceId": ws, "poolId": pool}),
        )
        .ok()
        .json
        .clone();
    assert_eq!(totals(&st), (2, 2, 1), "{st}");
}
