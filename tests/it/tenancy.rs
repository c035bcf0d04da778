//! Tenant scope, walked over every method of the contract: a key of one
//! workspace naming another workspace is refused, and naming another
//! workspace's resources from its own is not_found (or, where nothing is
//! named, answers about its own workspace only). The method list is read
//! from the proto, so a new RPC is covered the day it is added.

use serde_json::{json, Value};

use crate::common::*;
use crate::inventory::Ws;

fn methods() -> Vec<String> {
    let proto = include_str!("../../proto/proxies/v1/proxies.proto");
    proto
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .map(|l| l.split('(').next().unwrap().trim().to_owned())
        .collect()
}

/// Another workspace with one of everything; its ids.
struct Theirs {
    ws: String,
    ids: Vec<String>,
    body: Value,
}

impl Theirs {
    #[track_caller]
    fn assert_not_in(&self, method: &str, r: &Reply) {
        let text = r.text();
        for id in &self.ids {
            assert!(!text.contains(id.as_str()), "{method} leaked {id}: {text}");
        }
    }
}

fn theirs(srv: &Server) -> Theirs {
    let b = Ws::new(srv, "OWNER");
    let prov = b.generic();
    let pool = b.pool(json!({}));
    let session = b.static_session(&pool, &prov, 7);
    let asg = b.ok(
        "CreateAssignment",
        json!({ "poolId": pool, "accountName": "their-bot" }),
    )["assignment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = b.ok("CreateApiKey", json!({ "role": "API_KEY_ROLE_VIEWER" }))["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({
        "poolId": pool, "providerId": prov, "sessionId": session, "assignmentId": asg,
        "apiKeyId": key, "sessionIds": [session], "accountName": "their-bot",
        "name": "probe", "type": "PROVIDER_TYPE_GENERIC", "role": "API_KEY_ROLE_VIEWER",
        "sessions": [{ "host": "203.0.113.9", "port": 3128 }],
        "host": "203.0.113.8", "port": 3128, "success": false,
    });
    Theirs {
        ids: vec![b.id.clone(), prov, pool, session, asg, key],
        ws: b.id,
        body,
    }
}

#[test]
fn every_method_refuses_another_workspace_and_leaks_none_of_it() {
    let srv = Server::start();
    let mine = Ws::new(&srv, "OWNER");
    let them = theirs(&srv);
    let all = methods();
    assert_eq!(all.len(), 36, "{all:?}");
    for m in &all {
        // Naming their workspace: refused whatever else the body says.
        let mut body = them.body.clone();
        body["workspaceId"] = json!(them.ws);
        let r = srv.rpc(m, &mine.key, body);
        if m == "ListWorkspaces" {
            r.ok();
        } else {
            assert_eq!(
                (r.status, r.json["code"].as_str()),
                (403, Some("permission_denied")),
                "{m} naming another workspace: {}",
                r.text()
            );
        }
        them.assert_not_in(m, &r);

        // Naming our workspace and their resources.
        let mut body = them.body.clone();
        body["workspaceId"] = json!(mine.id);
        let r = srv.rpc(m, &mine.key, body);
        assert!(
            matches!(r.status, 200 | 400 | 403 | 404),
            "{m} with their ids: {} {}",
            r.status,
            r.text()
        );
        them.assert_not_in(m, &r);
    }
    // Their things are all still there, untouched.
    let b = Ws {
        srv: &srv,
        id: them.ws.clone(),
        key: srv.admin.clone(),
    };
    b.ok("GetSession", json!({ "sessionId": them.ids[3] }));
    b.ok("GetAssignment", json!({ "assignmentId": them.ids[4] }));
}

#[test]
fn naming_another_workspaces_resources_is_not_found() {
    let srv = Server::start();
    let mine = Ws::new(&srv, "OWNER");
    let them = theirs(&srv);
    // Every method that reads or changes a resource by id.
    let by_id = [
        "GetProvider",
        "UpdateProvider",
        "DisconnectProvider",
        "SyncProvider",
        "GetPool",
        "UpdatePool",
        "DeletePool",
        "GetSession",
        "BatchGetSessions",
        "UpdateSession",
        "DeleteSession",
        "ReportSessionResult",
        "CreateSession",
        "BulkCreateSessions",
        "ListSessions",
        "CreateAssignment",
        "GetAssignment",
        "ListAssignments",
        "UpdateAssignment",
        "RebindAssignment",
        "DeleteAssignment",
        "ResolveProxy",
        "RevokeApiKey",
    ];
    for m in by_id {
        let mut body = them.body.clone();
        body["workspaceId"] = json!(mine.id);
        let r = srv.rpc(m, &mine.key, body);
        assert_eq!(
            (r.status, r.json["code"].as_str()),
            (404, Some("not_found")),
            "{m}: {}",
            r.text()
        );
    }
}
