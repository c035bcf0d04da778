//! Key revocation over the API and the offline CLI (`keys`, `workspaces`)
//! used while the server runs.

use serde_json::json;

use crate::common::*;

#[test]
fn revoked_key_is_refused_on_the_next_request() {
    let s = Server::start();
    let (ws, owner) = s.workspace_with_key("revocation", "OWNER");
    let (key_id, viewer) = s.create_key(&ws, "VIEWER");
    let mut conn = s.conn();
    let body = json!({ "workspaceId": ws });
    // The viewer's connection stays open across the revocation.
    conn.rpc("GetWorkspace", &viewer, &body).ok();
    let r = s.rpc(
        "RevokeApiKey",
        &owner,
        json!({ "workspaceId": ws, "apiKeyId": key_id }),
    );
    r.ok();
    assert_eq!(r.json["apiKey"]["revoked"], true);
    assert_eq!(r.json["apiKey"]["id"], key_id.as_str());
    conn.rpc("GetWorkspace", &viewer, &body)
        .assert_error(401, "unauthenticated");
    s.rpc("GetWorkspace", &viewer, body.clone())
        .assert_error(401, "unauthenticated");
    // Listed as revoked; the owner still works.
    let r = s.rpc("ListApiKeys", &owner, json!({ "workspaceId": ws }));
    let k = r.json["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(k["revoked"], true);
    // An OWNER may revoke itself; from then on it is refused too.
    let own_id = r.json["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "API_KEY_ROLE_OWNER")
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .unwrap();
    s.rpc(
        "RevokeApiKey",
        &owner,
        json!({ "workspaceId": ws, "apiKeyId": own_id }),
    )
    .ok();
    s.rpc("GetWorkspace", &owner, body)
        .assert_error(401, "unauthenticated");
}

#[test]
fn deleting_a_workspace_removes_its_keys() {
    let s = Server::start();
    let (ws, viewer) = s.workspace_with_key("doomed", "VIEWER");
    s.rpc("GetWorkspace", &viewer, json!({ "workspaceId": ws }))
        .ok();
    s.rpc("DeleteWorkspace", &s.admin, json!({ "workspaceId": ws }))
        .ok();
    s.rpc("GetWorkspace", &viewer, json!({ "workspaceId": ws }))
        .assert_error(401, "unauthenticated");
    s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": ws }))
        .assert_error(404, "not_found");
    s.rpc("DeleteWorkspace", &s.admin, json!({ "workspaceId": ws }))
        .assert_error(404, "not_found");
}

/// The `keys list` row whose prefix starts the secret: its fields.
fn key_row(dir: &std::path::Path, secret: &str) -> Vec<String> {
    let list = cli_ok(dir, &["keys", "list"]);
    let rows: Vec<Vec<String>> = list
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .filter(|f: &Vec<String>| f.len() >= 6 && secret.starts_with(f[3].as_str()))
        .collect();
    assert_eq!(rows.len(), 1, "one `keys list` row per key prefix:\n{list}");
    rows[0].clone()
}

#[test]
fn cli_keys_and_workspaces_work_while_the_server_runs() {
    let s = Server::start();
    // workspaces create prints the id; the API sees it.
    let out = cli_ok(&s.dir, &["workspaces", "create", "from the cli"]);
    let ws = out.trim().to_owned();
    assert_eq!(out.lines().count(), 1, "{out:?}");
    assert_eq!(unb64(&ws).len(), 16, "{ws}");
    let r = s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": ws }));
    r.ok();
    assert_eq!(r.json["workspace"]["name"], "from the cli");
    // workspaces list shows id and name; API-made workspaces too.
    let api_ws = s.create_workspace("from the api");
    let list = cli_ok(&s.dir, &["workspaces", "list"]);
    assert!(
        list.lines().any(|l| l == format!("{ws}\tfrom the cli")),
        "{list}"
    );
    assert!(
        list.lines().any(|l| l == format!("{api_ws}\tfrom the api")),
        "{list}"
    );

    // keys create --workspace prints only a working secret.
    let out = cli_ok(
        &s.dir,
        &[
            "keys",
            "create",
            "--workspace",
            &ws,
            "--role",
            "VIEWER",
            "--name",
            "cli viewer",
        ],
    );
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let viewer = out.trim().to_owned();
    assert!(viewer.starts_with("pp_"), "{viewer}");
    s.rpc("GetWorkspace", &viewer, json!({ "workspaceId": ws }))
        .ok();
    s.rpc("CreateWorkspace", &viewer, json!({ "name": "no" }))
        .assert_error(403, "permission_denied");

    // keys list: id, workspace, role, prefix, state, name (tab-separated).
    let row = key_row(&s.dir, &viewer);
    assert_eq!(row[1], ws);
    assert_eq!(row[2], "VIEWER");
    assert_eq!(row[4], "active");
    assert_eq!(row[5], "cli viewer");
    assert!(
        !cli_ok(&s.dir, &["keys", "list"]).contains(&viewer),
        "keys list printed a secret"
    );

    // keys revoke ID: the running server refuses the key from the next request.
    let out = cli_ok(&s.dir, &["keys", "revoke", &row[0]]);
    assert!(out.contains(&row[0]), "{out}");
    s.rpc("GetWorkspace", &viewer, json!({ "workspaceId": ws }))
        .assert_error(401, "unauthenticated");
    assert_eq!(key_row(&s.dir, &viewer)[4], "revoked");

    // keys create --admin makes a working ADMIN key.
    let admin2 = cli_ok(
        &s.dir,
        &["keys", "create", "--admin", "--name", "cli admin"],
    )
    .trim()
    .to_owned();
    s.rpc(
        "CreateWorkspace",
        &admin2,
        json!({ "name": "by cli admin" }),
    )
    .ok();
    let row = key_row(&s.dir, &admin2);
    assert_eq!(row[1], "-");
    assert_eq!(row[2], "ADMIN");

    // The first-start ADMIN key is listed as well.
    assert_eq!(key_row(&s.dir, &s.admin)[2], "ADMIN");
}

#[test]
fn cli_refuses_bad_arguments() {
    let s = Server::start();
    let ws = s.create_workspace("args");
    let cases: Vec<Vec<&str>> = vec![
        vec!["keys", "create", "--workspace", &ws, "--role", "ADMIN"],
        vec!["keys", "create", "--workspace", &ws, "--role", "SUPERUSER"],
        vec![
            "keys",
            "create",
            "--workspace",
            "not-an-id",
            "--role",
            "VIEWER",
        ],
        vec![
            "keys",
            "create",
            "--workspace",
            "AAAAAAAAAAAAAAAAAAAAAA==",
            "--role",
            "VIEWER",
        ],
        vec!["keys", "create"],
        vec!["keys", "revoke", "AAAAAAAAAAAAAAAAAAAAAA=="],
        vec!["keys", "revoke", "nope"],
    ];
    for args in cases {
        let out = cli(&s.dir, &args, &[]);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!out.stderr.is_empty(), "{args:?} failed silently");
        assert!(
            out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains("pp_"),
            "{args:?}"
        );
    }
}

#[test]
fn backup_copies_the_database_while_the_server_runs() {
    let s = Server::start();
    for i in 0..3 {
        s.create_workspace(&format!("backed up {i}"));
    }
    let dest = TempDir::new("backup");
    let file = dest.join("copy.db");
    let out = cli_ok(&s.dir, &["backup", file.to_str().unwrap()]);
    assert!(out.contains("copy.db"), "{out}");
    let c = rusqlite::Connection::open(&file).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM workspaces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // It never overwrites.
    let again = cli(&s.dir, &["backup", file.to_str().unwrap()], &[]);
    assert!(!again.status.success(), "backup overwrote an existing file");
    // The server is undisturbed.
    s.create_workspace("after backup");
}

#[test]
fn a_key_the_server_has_seen_is_refused_right_after_an_offline_revoke() {
    // The server keeps keys it found valid in memory; a revocation by the
    // offline CLI (another process) must still apply on the next request,
    // to RPCs and to /metrics alike.
    let s = Server::start_with(&[("PROXYPLANE_METRICS_REQUIRE_KEY", "true")], &[], None);
    let ws = s.create_workspace("cached");
    let (key_id, viewer) = s.create_key(&ws, "VIEWER");
    let body = json!({ "workspaceId": ws });
    let mut conn = s.conn();
    for _ in 0..3 {
        conn.rpc("GetWorkspace", &viewer, &body).ok();
    }
    let admin2 = cli_ok(&s.dir, &["keys", "create", "--admin"])
        .trim()
        .to_owned();
    let metrics = |key: &str| s.get("/metrics", &[("Authorization", &bearer(key))]);
    assert_eq!(metrics(&admin2).status, 200);
    let admin2_id = key_row(&s.dir, &admin2)[0].clone();

    cli_ok(&s.dir, &["keys", "revoke", &key_id]);
    conn.rpc("GetWorkspace", &viewer, &body)
        .assert_error(401, "unauthenticated");
    cli_ok(&s.dir, &["keys", "revoke", &admin2_id]);
    metrics(&admin2).assert_error(401, "unauthenticated");
    // Other keys go on working after the epoch moved.
    s.rpc("GetWorkspace", &s.admin, body).ok();
    assert_eq!(metrics(&s.admin).status, 200);
}
