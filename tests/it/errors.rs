//! The error table of API.md §1, row by row, as the foundation produces it:
//! HTTP status, Connect code, and a JSON `{code, message}` body.

use serde_json::json;

use crate::common::*;

/// One request sent as raw bytes on a fresh connection, and what must come back.
struct Row {
    name: &'static str,
    verb: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn post(
    name: &'static str,
    method: &str,
    key: &str,
    body: &str,
    status: u16,
    code: &'static str,
) -> Row {
    Row {
        name,
        verb: "POST",
        path: format!("{SVC}{method}"),
        headers: vec![
            ("Content-Type", "application/json".into()),
            ("Authorization", bearer(key)),
        ],
        body: body.as_bytes().to_vec(),
        status,
        code,
    }
}

fn with_header(mut r: Row, k: &'static str, v: &str) -> Row {
    r.headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
    r.headers.push((k, v.to_owned()));
    r
}

fn run(server: &Server, rows: Vec<Row>) {
    let mut failures = Vec::new();
    for row in rows {
        let headers: Vec<(&str, &str)> =
            row.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = server
            .conn()
            .request(row.verb, &row.path, &headers, &row.body)
            .unwrap_or_else(|e| panic!("{}: {e}", row.name));
        let outcome = std::panic::catch_unwind(|| reply.assert_error(row.status, row.code));
        if outcome.is_err() {
            failures.push(format!(
                "{}: got {} {}",
                row.name,
                reply.status,
                reply.text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "rows that failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_foundation_error_row_has_its_status_code_and_json_body() {
    let s = Server::start();
    let admin = s.admin.clone();
    let (ws, viewer) = s.workspace_with_key("errors", "VIEWER");
    let (other_ws, _) = s.workspace_with_key("errors-other", "VIEWER");
    let (revoked_id, revoked) = s.create_key(&ws, "EDITOR");
    s.rpc(
        "RevokeApiKey",
        &admin,
        json!({ "workspaceId": ws, "apiKeyId": revoked_id }),
    )
    .ok();
    let get_ws = json!({ "workspaceId": ws }).to_string();
    let get_other = json!({ "workspaceId": other_ws }).to_string();

    let rows = vec![
        // invalid_argument
        post(
            "malformed JSON",
            "GetWorkspace",
            &admin,
            "{\"workspaceId\":",
            400,
            "invalid_argument",
        ),
        post(
            "JSON of the wrong type",
            "GetWorkspace",
            &admin,
            "[1,2]",
            400,
            "invalid_argument",
        ),
        post(
            "id of 3 bytes",
            "GetWorkspace",
            &admin,
            r#"{"workspaceId":"AAAA"}"#,
            400,
            "invalid_argument",
        ),
        post(
            "id of 17 bytes",
            "GetWorkspace",
            &admin,
            &json!({ "workspaceId": b64(&[1u8; 17]) }).to_string(),
            400,
            "invalid_argument",
        ),
        post(
            "id that is not base64",
            "GetWorkspace",
            &admin,
            r#"{"workspaceId":"!!not base64!!"}"#,
            400,
            "invalid_argument",
        ),
        post(
            "missing workspaceId",
            "GetWorkspace",
            &admin,
            "{}",
            400,
            "invalid_argument",
        ),
        post(
            "missing name",
            "CreateWorkspace",
            &admin,
            "{}",
            400,
            "invalid_argument",
        ),
        post(
            "name of 201 characters",
            "CreateWorkspace",
            &admin,
            &json!({ "name": "n".repeat(201) }).to_string(),
            400,
            "invalid_argument",
        ),
        post(
            "name with a control character",
            "CreateWorkspace",
            &admin,
            r#"{"name":"a\u0007b"}"#,
            400,
            "invalid_argument",
        ),
        post(
            "empty new name",
            "UpdateWorkspace",
            &admin,
            &json!({ "workspaceId": ws, "name": "" }).to_string(),
            400,
            "invalid_argument",
        ),
        post(
            "CreateApiKey without a role",
            "CreateApiKey",
            &admin,
            &json!({ "workspaceId": ws }).to_string(),
            400,
            "invalid_argument",
        ),
        post(
            "CreateApiKey with an unknown role",
            "CreateApiKey",
            &admin,
            &json!({ "workspaceId": ws, "role": "API_KEY_ROLE_GOD" }).to_string(),
            400,
            "invalid_argument",
        ),
        post(
            "CreateApiKey ADMIN with a workspace",
            "CreateApiKey",
            &admin,
            &json!({ "workspaceId": ws, "role": "API_KEY_ROLE_ADMIN" }).to_string(),
            400,
            "invalid_argument",
        ),
        post(
            "CreateApiKey in a random workspace",
            "CreateApiKey",
            &admin,
            &json!({ "workspaceId": random_id(), "role": "API_KEY_ROLE_VIEWER" }).to_string(),
            404,
            "not_found",
        ),
        post(
            "wrong JSON type for pageSize",
            "ListWorkspaces",
            &admin,
            r#"{"pageSize":"lots"}"#,
            400,
            "invalid_argument",
        ),
        post(
            "garbage cursor",
            "ListWorkspaces",
            &admin,
            r#"{"cursor":"not a cursor!"}"#,
            400,
            "invalid_argument",
        ),
        post(
            "well-formed base64 that is no cursor",
            "ListWorkspaces",
            &admin,
            r#"{"cursor":"AAAA"}"#,
            400,
            "invalid_argument",
        ),
        post(
            "negative pageSize",
            "ListWorkspaces",
            &admin,
            r#"{"pageSize":-1}"#,
            400,
            "invalid_argument",
        ),
        with_header(
            post(
                "Connect-Timeout-Ms not a number",
                "GetWorkspace",
                &admin,
                &get_ws,
                400,
                "invalid_argument",
            ),
            "Connect-Timeout-Ms",
            "soon",
        ),
        with_header(
            post(
                "Connect-Timeout-Ms negative",
                "GetWorkspace",
                &admin,
                &get_ws,
                400,
                "invalid_argument",
            ),
            "Connect-Timeout-Ms",
            "-5",
        ),
        with_header(
            post(
                "Connect-Timeout-Ms of 11 digits",
                "GetWorkspace",
                &admin,
                &get_ws,
                400,
                "invalid_argument",
            ),
            "Connect-Timeout-Ms",
            "12345678901",
        ),
        with_header(
            post(
                "Connect-Protocol-Version 2",
                "GetWorkspace",
                &admin,
                &get_ws,
                400,
                "invalid_argument",
            ),
            "Connect-Protocol-Version",
            "2",
        ),
        // unauthenticated
        Row {
            name: "no Authorization header",
            verb: "POST",
            path: format!("{SVC}GetWorkspace"),
            headers: vec![("Content-Type", "application/json".into())],
            body: get_ws.clone().into_bytes(),
            status: 401,
            code: "unauthenticated",
        },
        with_header(
            post(
                "Basic instead of Bearer",
                "GetWorkspace",
                &admin,
                &get_ws,
                401,
                "unauthenticated",
            ),
            "Authorization",
            "Basic dXNlcjpwYXNz",
        ),
        post(
            "unknown key",
            "GetWorkspace",
            "pp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &get_ws,
            401,
            "unauthenticated",
        ),
        post(
            "key without the pp_ prefix",
            "GetWorkspace",
            "not-a-key",
            &get_ws,
            401,
            "unauthenticated",
        ),
        post(
            "revoked key",
            "GetWorkspace",
            &revoked,
            &get_ws,
            401,
            "unauthenticated",
        ),
        // permission_denied
        post(
            "VIEWER calls CreateWorkspace",
            "CreateWorkspace",
            &viewer,
            r#"{"name":"x"}"#,
            403,
            "permission_denied",
        ),
        post(
            "VIEWER calls UpdateWorkspace",
            "UpdateWorkspace",
            &viewer,
            &get_ws,
            403,
            "permission_denied",
        ),
        post(
            "key of another workspace",
            "GetWorkspace",
            &viewer,
            &get_other,
            403,
            "permission_denied",
        ),
        // not_found
        post(
            "GetWorkspace of a random id",
            "GetWorkspace",
            &admin,
            &json!({ "workspaceId": random_id() }).to_string(),
            404,
            "not_found",
        ),
        post(
            "UpdateWorkspace of a random id",
            "UpdateWorkspace",
            &admin,
            &json!({ "workspaceId": random_id(), "name": "x" }).to_string(),
            404,
            "not_found",
        ),
        post(
            "DeleteWorkspace of a random id",
            "DeleteWorkspace",
            &admin,
            &json!({ "workspaceId": random_id() }).to_string(),
            404,
            "not_found",
        ),
        post(
            "RevokeApiKey of a random id",
            "RevokeApiKey",
            &admin,
            &json!({ "workspaceId": ws, "apiKeyId": random_id() }).to_string(),
            404,
            "not_found",
        ),
        // aborted
        post(
            "UpdateWorkspace with a stale expectedVersion",
            "UpdateWorkspace",
            &admin,
            &json!({ "workspaceId": ws, "name": "renamed", "expectedVersion": "7" }).to_string(),
            409,
            "aborted",
        ),
        // resource_exhausted (body over the limit; rate limits are in ratelimit.rs)
        with_header(
            post(
                "declared body over 4 MiB",
                "GetWorkspace",
                &admin,
                "",
                429,
                "resource_exhausted",
            ),
            "Content-Length",
            "4194305",
        ),
        // unimplemented
        with_header(
            post(
                "Content-Encoding br",
                "GetWorkspace",
                &admin,
                &get_ws,
                501,
                "unimplemented",
            ),
            "Content-Encoding",
            "br",
        ),
        with_header(
            post(
                "Content-Encoding deflate",
                "GetWorkspace",
                &admin,
                &get_ws,
                501,
                "unimplemented",
            ),
            "Content-Encoding",
            "deflate",
        ),
        // deadline_exceeded
        with_header(
            post(
                "Connect-Timeout-Ms 0",
                "GetWorkspace",
                &admin,
                &get_ws,
                504,
                "deadline_exceeded",
            ),
            "Connect-Timeout-Ms",
            "0",
        ),
    ];
    run(&s, rows);
}

#[test]
fn unknown_paths_are_plain_404() {
    let s = Server::start();
    let auth = bearer(&s.admin);
    for path in [
        format!("{SVC}NoSuchMethod"),
        "/proxies.v1.Other/GetWorkspace".to_string(),
        "/".to_string(),
        format!("{SVC}getworkspace"),
    ] {
        let r = s.post_raw(
            &path,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            b"{}",
        );
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        // Connect clients read a 404 as unimplemented.
        r.assert_error(404, "unimplemented");
    }
}

#[test]
fn wrong_verbs_get_405_with_allow() {
    let s = Server::start();
    let auth = bearer(&s.admin);
    let msg = percent_encode(br#"{"name":"via-get"}"#);
    let cases: Vec<(&str, String, &str)> = vec![
        ("PUT", format!("{SVC}GetWorkspace"), "GET, POST"),
        ("DELETE", format!("{SVC}GetWorkspace"), "GET, POST"),
        ("PATCH", format!("{SVC}CreateWorkspace"), "POST"),
        // A write method answers POST only, even to a well-formed Connect GET.
        (
            "GET",
            format!("{SVC}CreateWorkspace?encoding=json&message={msg}"),
            "POST",
        ),
        (
            "GET",
            format!("{SVC}UpdateWorkspace?encoding=json&message=%7B%7D"),
            "POST",
        ),
        (
            "GET",
            format!("{SVC}RevokeApiKey?encoding=json&message=%7B%7D"),
            "POST",
        ),
    ];
    for (verb, path, allow) in cases {
        let r = s
            .conn()
            .request(
                verb,
                &path,
                &[
                    ("Content-Type", "application/json"),
                    ("Authorization", &auth),
                ],
                b"{}",
            )
            .unwrap();
        assert_eq!(r.status, 405, "{verb} {path}: {}", r.text());
        assert!(
            r.json["code"].is_string() && r.json["message"].is_string(),
            "{verb} {path}: {}",
            r.text()
        );
        assert_eq!(r.header("allow"), Some(allow), "{verb} {path}");
    }
    // Nothing was created by the refused GET.
    assert!(s.all_workspaces().iter().all(|w| w["name"] != "via-get"));
}

#[test]
fn unknown_content_types_get_415() {
    let s = Server::start();
    let auth = bearer(&s.admin);
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/grpc"),
        Some("application/connect+json"),
        None,
    ] {
        let mut h = vec![("Authorization", auth.as_str())];
        if let Some(ct) = ct {
            h.push(("Content-Type", ct));
        }
        let r = s.post_raw(&format!("{SVC}CreateWorkspace"), &h, br#"{"name":"typed"}"#);
        assert_eq!(r.status, 415, "{ct:?}: {}", r.text());
        assert!(
            r.json["code"].is_string() && r.json["message"].is_string(),
            "{ct:?}: {}",
            r.text()
        );
    }
    // application/json with a charset is fine.
    let r = s.post_raw(
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Authorization", &auth),
        ],
        br#"{"name":"typed"}"#,
    );
    r.ok();
    assert_eq!(
        s.all_workspaces()
            .iter()
            .filter(|w| w["name"] == "typed")
            .count(),
        1
    );
}

#[test]
fn deadline_zero_commits_nothing() {
    let s = Server::start();
    let auth = bearer(&s.admin);
    let r = s.post_raw(
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Connect-Timeout-Ms", "0"),
        ],
        br#"{"name":"too-late"}"#,
    );
    r.assert_error(504, "deadline_exceeded");
    assert!(
        s.all_workspaces().iter().all(|w| w["name"] != "too-late"),
        "a request past its deadline created a workspace"
    );
    // The deadline runs from the request head: a body that arrives after it
    // is refused without running the call.
    let mut conn = s.conn();
    let body = br#"{"name":"slow and late"}"#;
    let head = conn.head(
        "POST",
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Connect-Timeout-Ms", "100"),
        ],
        body.len(),
    );
    conn.send(&head).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    conn.send(body).unwrap();
    conn.read_reply(false)
        .unwrap()
        .assert_error(504, "deadline_exceeded");
    assert!(s
        .all_workspaces()
        .iter()
        .all(|w| w["name"] != "slow and late"));
    // A generous deadline is no obstacle.
    let r = s.post_raw(
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Connect-Timeout-Ms", "10000"),
        ],
        br#"{"name":"in-time"}"#,
    );
    r.ok();
}

#[test]
fn update_workspace_checks_expected_version_and_bumps_version() {
    let s = Server::start();
    let ws = s.create_workspace("versions");
    // Timestamps have millisecond resolution; make the update visibly later.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = s.rpc(
        "UpdateWorkspace",
        &s.admin,
        json!({ "workspaceId": ws, "name": "v2", "expectedVersion": "1" }),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["version"], "2");
    let r = s.rpc(
        "UpdateWorkspace",
        &s.admin,
        json!({ "workspaceId": ws, "name": "v3", "expectedVersion": "1" }),
    );
    r.assert_error(409, "aborted");
    let r = s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": ws }));
    let w = &r.json["workspace"];
    assert_eq!(w["name"], "v2", "an aborted update changed nothing");
    assert_eq!(w["version"], "2");
    assert_ne!(
        w["updatedAt"], w["createdAt"],
        "updatedAt moves on a change: {w}"
    );
    // An update that changes nothing keeps the version.
    let r = s.rpc(
        "UpdateWorkspace",
        &s.admin,
        json!({ "workspaceId": ws, "name": "v2" }),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["version"], "2");
    let r = s.rpc(
        "UpdateWorkspace",
        &s.admin,
        json!({ "workspaceId": ws, "expectedVersion": 2 }),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["version"], "2");
}

#[test]
fn error_messages_do_not_echo_secrets() {
    let s = Server::start();
    let (ws, viewer) = s.workspace_with_key("quiet", "VIEWER");
    let probes = [
        s.rpc("CreateWorkspace", &viewer, json!({ "name": "x" })),
        s.rpc(
            "GetWorkspace",
            &viewer,
            json!({ "workspaceId": random_id() }),
        ),
        s.rpc(
            "GetWorkspace",
            &format!("{viewer}x"),
            json!({ "workspaceId": ws }),
        ),
    ];
    for r in probes {
        assert!(r.status >= 400);
        assert!(!r.text().contains(&viewer), "secret echoed: {}", r.text());
        assert!(!r.text().contains(&s.admin), "secret echoed: {}", r.text());
    }
}
