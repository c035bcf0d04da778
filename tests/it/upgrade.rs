//! A database written by an older proxyplane (tests/fixtures/v1, schema
//! version 1) is upgraded in place on start and serves everything it held:
//! rows, sealed secrets, the ADMIN key, and the counters later versions add.

use std::path::Path;

use serde_json::json;

use crate::common::*;

fn copy_fixture(name: &str, to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::create_dir_all(to).expect("mkdir");
    for f in ["proxyplane.db", "master.key", "admin.key"] {
        std::fs::copy(from.join(f), to.join(f)).expect("copy fixture");
    }
    use std::os::unix::fs::PermissionsExt;
    for f in ["master.key", "admin.key"] {
        std::fs::set_permissions(to.join(f), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
}

#[test]
fn a_version_1_database_is_upgraded_and_serves_what_it_held() {
    let dir = TempDir::new("upgrade");
    let data = dir.join("data");
    copy_fixture("v1", &data);
    let s = Launch::default().data_dir(&data).start();
    let ws = "AaIKGh0LdPufw6Qo2gqDbg==";
    let pool = "AaIKGh0Qd52sxth9z1IpMg==";
    let sessions = [
        "AaIKGh0SdMmCyWM0Skcazw==",
        "AaIKGh0SdMmCysBnEHxz9g==",
        "AaIKGh0SdMmCy38IqXZmkg==",
        "AaIKGh0SdMmCzN5Iq0tY+A==",
    ];
    let r = s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": ws }));
    assert_eq!(r.ok().json["workspace"]["name"], "fixture v1");
    let listed = s.rpc(
        "ListSessions",
        &s.admin,
        json!({ "workspaceId": ws, "poolId": pool }),
    );
    assert_eq!(listed.ok().json["sessionIds"], json!(sessions));

    // A sealed session password opens: bot-1 is pinned to s1.
    let r = s.rpc(
        "ResolveProxy",
        &s.admin,
        json!({ "workspaceId": ws, "poolId": pool, "accountName": "bot-1" }),
    );
    let p = &r.ok().json["proxy"];
    assert_eq!(p["host"], "203.0.113.1");
    assert_eq!(p["password"], "static-pass-1");

    // Sealed provider credentials open: a rotation session through the
    // gateway (healed first: the fixture left it in a failure cooldown).
    s.rpc(
        "ReportSessionResult",
        &s.admin,
        json!({ "workspaceId": ws, "sessionId": sessions[3], "success": true }),
    )
    .ok();
    s.rpc(
        "CreateAssignment",
        &s.admin,
        json!({ "workspaceId": ws, "poolId": pool, "accountName": "rot", "sessionId": sessions[3] }),
    )
    .ok();
    let r = s.rpc(
        "ResolveProxy",
        &s.admin,
        json!({ "workspaceId": ws, "poolId": pool, "accountName": "rot" }),
    );
    let p = &r.ok().json["proxy"];
    assert_eq!(p["host"], "gw.example.net");
    assert_eq!(p["username"], "gen-user-s-r1");
    assert_eq!(p["password"], "gen-pass");

    // The session counters of version 2 start from what was there: three
    // live enabled sessions, one disabled.
    assert_eq!(crate::metrics::session_gauges(&s), (3, 0, 1));

    let c = rusqlite::Connection::open(data.join("proxyplane.db")).expect("open db");
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert!(v >= 2, "upgraded to the current version, got {v}");
}
