//! Role × method matrix for the workspace and key methods (API.md §2,
//! src/rpc.rs `methods!`, src/auth.rs `Access::allows`), and workspace scope.

use serde_json::{json, Value};

use crate::common::*;

const ROLES: [&str; 5] = ["ADMIN", "OWNER", "EDITOR", "RESOLVER", "VIEWER"];

/// Which roles may call each method, in ROLES order. DeleteWorkspace is last
/// because it removes the workspace the other calls use.
const MATRIX: &[(&str, [bool; 5])] = &[
    ("CreateWorkspace", [true, false, false, false, false]),
    ("GetWorkspace", [true, true, true, false, true]),
    ("ListWorkspaces", [true, true, true, false, true]),
    ("UpdateWorkspace", [true, true, false, false, false]),
    ("CreateApiKey", [true, true, false, false, false]),
    ("ListApiKeys", [true, true, false, false, false]),
    ("RevokeApiKey", [true, true, false, false, false]),
    ("DeleteWorkspace", [true, false, false, false, false]),
];

/// A valid request for `method` on workspace `ws`.
fn request(s: &Server, method: &str, ws: &str) -> Value {
    match method {
        "CreateWorkspace" => json!({ "name": "made by matrix" }),
        "ListWorkspaces" => json!({}),
        "UpdateWorkspace" => json!({ "workspaceId": ws, "name": "renamed by matrix" }),
        "CreateApiKey" => {
            json!({ "workspaceId": ws, "name": "matrix", "role": "API_KEY_ROLE_VIEWER" })
        }
        "RevokeApiKey" => {
            let (victim, _) = s.create_key(ws, "VIEWER");
            json!({ "workspaceId": ws, "apiKeyId": victim })
        }
        _ => json!({ "workspaceId": ws }),
    }
}

#[test]
fn role_method_matrix_for_workspaces_and_keys() {
    let s = Server::start();
    let mut failures = Vec::new();
    for (ri, role) in ROLES.iter().enumerate() {
        let ws = s.create_workspace(&format!("matrix {role}"));
        let key = if *role == "ADMIN" {
            s.admin.clone()
        } else {
            s.create_key(&ws, role).1
        };
        for (method, allowed) in MATRIX {
            let body = request(&s, method, &ws);
            let r = s.rpc(method, &key, body.clone());
            let ok = if allowed[ri] {
                r.status == 200
            } else {
                r.status == 403 && r.json["code"] == "permission_denied"
            };
            if !ok {
                failures.push(format!(
                    "{role} {method} {body}: want {}, got {} {}",
                    if allowed[ri] {
                        "200"
                    } else {
                        "403 permission_denied"
                    },
                    r.status,
                    r.text()
                ));
            }
        }
        // A denied DeleteWorkspace left the workspace in place.
        let still = s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": ws }));
        let want = if *role == "ADMIN" { 404 } else { 200 };
        if still.status != want {
            failures.push(format!(
                "{role}: after DeleteWorkspace, GetWorkspace gave {}",
                still.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "matrix cells that failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn workspace_keys_cannot_touch_another_workspace() {
    let s = Server::start();
    let (mine, owner) = s.workspace_with_key("mine", "OWNER");
    let theirs = s.create_workspace("theirs");
    let (their_key, their_secret) = s.create_key(&theirs, "VIEWER");
    let cases = [
        ("GetWorkspace", json!({ "workspaceId": theirs })),
        (
            "UpdateWorkspace",
            json!({ "workspaceId": theirs, "name": "hijacked" }),
        ),
        (
            "CreateApiKey",
            json!({ "workspaceId": theirs, "role": "API_KEY_ROLE_OWNER" }),
        ),
        ("ListApiKeys", json!({ "workspaceId": theirs })),
        (
            "RevokeApiKey",
            json!({ "workspaceId": theirs, "apiKeyId": their_key }),
        ),
        // Naming its own workspace does not reach another's key either.
        (
            "RevokeApiKey",
            json!({ "workspaceId": mine, "apiKeyId": their_key }),
        ),
    ];
    for (method, body) in cases {
        let r = s.rpc(method, &owner, body.clone());
        assert!(
            r.status == 403 || r.status == 404,
            "{method} {body}: got {} {}",
            r.status,
            r.text()
        );
        if body["workspaceId"] == theirs.as_str() {
            r.assert_error(403, "permission_denied");
        }
    }
    // Nothing happened to the other workspace.
    let r = s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": theirs }));
    assert_eq!(r.json["workspace"]["name"], "theirs");
    s.rpc(
        "GetWorkspace",
        &their_secret,
        json!({ "workspaceId": theirs }),
    )
    .ok();
}

#[test]
fn list_workspaces_shows_a_workspace_key_only_its_own() {
    let s = Server::start();
    for i in 0..5 {
        s.create_workspace(&format!("noise {i}"));
    }
    for role in ["OWNER", "EDITOR", "VIEWER"] {
        let (ws, key) = s.workspace_with_key(&format!("own {role}"), role);
        let r = s.rpc("ListWorkspaces", &key, json!({}));
        r.ok();
        let ids: Vec<&str> = r.json["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![ws.as_str()], "{role}");
        assert_eq!(r.json["nextCursor"].as_str().unwrap_or(""), "");
    }
    let all = s.rpc("ListWorkspaces", &s.admin, json!({}));
    assert_eq!(
        all.json["workspaces"].as_array().unwrap().len(),
        8,
        "ADMIN sees every workspace"
    );
}

#[test]
fn owner_cannot_create_an_admin_key_but_admin_can() {
    let s = Server::start();
    let (ws, owner) = s.workspace_with_key("owners", "OWNER");
    let r = s.rpc(
        "CreateApiKey",
        &owner,
        json!({ "name": "escalate", "role": "API_KEY_ROLE_ADMIN" }),
    );
    r.assert_error(403, "permission_denied");
    let r = s.rpc(
        "CreateApiKey",
        &owner,
        json!({ "workspaceId": ws, "role": "API_KEY_ROLE_ADMIN" }),
    );
    assert!(
        r.status == 400 || r.status == 403,
        "OWNER got {} {}",
        r.status,
        r.text()
    );
    // OWNER may make any workspace role in its own workspace.
    for role in ["OWNER", "EDITOR", "RESOLVER", "VIEWER"] {
        let r = s.rpc(
            "CreateApiKey",
            &owner,
            json!({ "workspaceId": ws, "role": format!("API_KEY_ROLE_{role}") }),
        );
        r.ok();
        assert_eq!(r.json["apiKey"]["role"], format!("API_KEY_ROLE_{role}"));
    }
    // ADMIN makes ADMIN keys with no workspace; the new key works as ADMIN.
    let r = s.rpc(
        "CreateApiKey",
        &s.admin,
        json!({ "name": "second admin", "role": "API_KEY_ROLE_ADMIN" }),
    );
    r.ok();
    let secret = r.json["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pp_"), "{secret}");
    assert!(r.json["apiKey"]["workspaceId"]
        .as_str()
        .unwrap_or("")
        .is_empty());
    s.rpc(
        "CreateWorkspace",
        &secret,
        json!({ "name": "by second admin" }),
    )
    .ok();
}

#[test]
fn key_listing_never_shows_secrets() {
    let s = Server::start();
    let (ws, owner) = s.workspace_with_key("listing", "OWNER");
    let (_, viewer) = s.create_key(&ws, "VIEWER");
    let r = s.rpc("ListApiKeys", &owner, json!({ "workspaceId": ws }));
    r.ok();
    let keys = r.json["apiKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let text = r.text();
    assert!(
        !text.contains(&owner) && !text.contains(&viewer),
        "a secret in ListApiKeys: {text}"
    );
    // Only the key that has been used has a lastUsedAt.
    let owner_row = keys
        .iter()
        .find(|k| k["role"] == "API_KEY_ROLE_OWNER")
        .unwrap();
    let viewer_row = keys
        .iter()
        .find(|k| k["role"] == "API_KEY_ROLE_VIEWER")
        .unwrap();
    assert!(
        owner_row["lastUsedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{owner_row}"
    );
    assert!(
        viewer_row.get("lastUsedAt").is_none_or(|v| v.is_null()),
        "{viewer_row}"
    );
    assert_eq!(owner_row["workspaceId"], ws.as_str());
    assert!(!owner_row["revoked"].as_bool().unwrap_or(false));
    for k in keys {
        assert!(k.get("secret").is_none());
        let prefix = k["prefix"].as_str().unwrap();
        assert!(prefix.starts_with("pp_") && prefix.len() < 20, "{prefix}");
    }
}

#[test]
fn empty_workspace_id_means_the_admin_keys_which_only_admin_may_list_or_revoke() {
    let s = Server::start();
    let (ws, owner) = s.workspace_with_key("owners", "OWNER");
    let admin_keys = s.rpc("ListApiKeys", &s.admin, json!({}));
    admin_keys.ok();
    let admin_key_id = admin_keys.json["apiKeys"][0]["id"]
        .as_str()
        .expect("the ADMIN key is listed")
        .to_owned();
    let cases = [
        ("ListApiKeys", json!({})),
        ("ListApiKeys", json!({ "workspaceId": "" })),
        ("RevokeApiKey", json!({ "apiKeyId": admin_key_id })),
        (
            "RevokeApiKey",
            json!({ "workspaceId": "", "apiKeyId": admin_key_id }),
        ),
    ];
    for (method, body) in cases {
        let r = s.rpc(method, &owner, body.clone());
        assert_eq!(r.status, 403, "OWNER {method} {body}: {}", r.text());
        r.assert_error(403, "permission_denied");
        let text = r.text();
        assert!(
            !text.contains(&admin_key_id),
            "an ADMIN key id leaked: {text}"
        );
    }
    // The ADMIN key was not revoked and still works; the OWNER still lists
    // its own workspace's keys.
    s.rpc(
        "CreateWorkspace",
        &s.admin,
        json!({ "name": "still admin" }),
    )
    .ok();
    s.rpc("ListApiKeys", &owner, json!({ "workspaceId": ws }))
        .ok();
}
