//! The Connect codecs and framings: JSON and binary proto, Connect GET (plain,
//! base64, gzip), gzip request and response bodies, chunked request bodies,
//! and protojson details.

use prost::Message;
use serde_json::{json, Value};

use crate::common::*;
use crate::pb::v1::{
    GetWorkspaceRequest, GetWorkspaceResponse, ListWorkspacesRequest, ListWorkspacesResponse,
};

fn json_headers(auth: &str) -> Vec<(&str, &str)> {
    vec![
        ("Content-Type", "application/json"),
        ("Authorization", auth),
    ]
}

/// The workspace of a GetWorkspace JSON reply.
fn ws_of(r: &Reply) -> Value {
    r.ok();
    r.json["workspace"].clone()
}

#[test]
fn get_workspace_over_json_and_proto_agree() {
    let s = Server::start();
    let ws = s.create_workspace("both codecs");
    let via_json = ws_of(&s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": ws })));

    let auth = bearer(&s.admin);
    let body = GetWorkspaceRequest {
        workspace_id: unb64(&ws),
    }
    .encode_to_vec();
    let r = s.post_raw(
        &format!("{SVC}GetWorkspace"),
        &[
            ("Content-Type", "application/proto"),
            ("Authorization", &auth),
            ("Connect-Protocol-Version", "1"),
        ],
        &body,
    );
    r.ok();
    assert_eq!(r.header("content-type"), Some("application/proto"));
    let got = GetWorkspaceResponse::decode(r.body.as_slice())
        .expect("a GetWorkspaceResponse")
        .workspace
        .unwrap();
    assert_eq!(b64(&got.id), ws);
    assert_eq!(got.name, "both codecs");
    assert_eq!(
        got.version.to_string(),
        via_json["version"].as_str().unwrap()
    );
    assert_eq!(
        got.key_version as i64,
        via_json["keyVersion"].as_i64().unwrap_or(0)
    );
    let created = got.created_at.unwrap();
    assert!(created.seconds > 1_600_000_000, "{created:?}");

    // Unknown fields in a binary message are skipped.
    let mut with_unknown = body.clone();
    with_unknown.extend_from_slice(&[0xf8, 0x06, 0x01]); // field 111, varint 1
    let r = s.post_raw(
        &format!("{SVC}GetWorkspace"),
        &[
            ("Content-Type", "application/proto"),
            ("Authorization", &auth),
        ],
        &with_unknown,
    );
    r.ok();
    assert_eq!(
        GetWorkspaceResponse::decode(r.body.as_slice())
            .unwrap()
            .workspace
            .unwrap()
            .name,
        "both codecs"
    );

    // A proto body that is not a valid message is invalid_argument (the
    // error itself is JSON).
    let r = s.post_raw(
        &format!("{SVC}GetWorkspace"),
        &[
            ("Content-Type", "application/proto"),
            ("Authorization", &auth),
        ],
        &[0x0a, 0xff, 0xff],
    );
    r.assert_error(400, "invalid_argument");
}

#[test]
fn connect_get_with_json_base64_gzip_and_proto() {
    let s = Server::start();
    let ws = s.create_workspace("over get");
    let want = ws_of(&s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": ws })));
    let auth = bearer(&s.admin);
    let msg = json!({ "workspaceId": ws }).to_string();
    let path = format!("{SVC}GetWorkspace");

    let plain = format!(
        "{path}?encoding=json&message={}&connect=v1",
        percent_encode(msg.as_bytes())
    );
    let b64 = format!(
        "{path}?encoding=json&base64=1&message={}&connect=v1",
        b64url(msg.as_bytes())
    );
    let gz = format!(
        "{path}?encoding=json&base64=1&compression=gzip&message={}&connect=v1",
        b64url(&gzip(msg.as_bytes()))
    );
    // Query parameters in another order, without connect=v1, padded base64.
    let padded = format!(
        "{path}?message={}&base64=1&encoding=json",
        percent_encode(
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, msg.as_bytes())
                .as_bytes()
        )
    );
    for q in [plain, b64, gz, padded] {
        let r = s.get(&q, &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        assert!(
            r.header("content-type")
                .unwrap_or("")
                .starts_with("application/json"),
            "{q}"
        );
        assert_eq!(r.json["workspace"], want, "{q}");
    }

    // encoding=proto with a base64 binary message.
    let bin = GetWorkspaceRequest {
        workspace_id: unb64(&ws),
    }
    .encode_to_vec();
    let r = s.get(
        &format!(
            "{path}?encoding=proto&base64=1&message={}&connect=v1",
            b64url(&bin)
        ),
        &[("Authorization", &auth)],
    );
    r.ok();
    assert_eq!(r.header("content-type"), Some("application/proto"));
    let got = GetWorkspaceResponse::decode(r.body.as_slice())
        .unwrap()
        .workspace
        .unwrap();
    assert_eq!(got.name, "over get");

    // A bad GET is refused like a bad POST.
    let r = s.get(
        &format!("{path}?encoding=json&message=%7B&connect=v1"),
        &[("Authorization", &auth)],
    );
    r.assert_error(400, "invalid_argument");
    let r = s.get(
        &format!("{path}?encoding=json&message=%7B%7D&connect=v2"),
        &[("Authorization", &auth)],
    );
    r.assert_error(400, "invalid_argument");
    let r = s.get(
        &format!("{path}?encoding=json&base64=1&message=***&connect=v1"),
        &[("Authorization", &auth)],
    );
    r.assert_error(400, "invalid_argument");
    let r = s.get(
        &format!("{path}?encoding=json&compression=br&message=%7B%7D"),
        &[("Authorization", &auth)],
    );
    r.assert_error(501, "unimplemented");
    let r = s.get(
        &format!(
            "{path}?encoding=json&message={}",
            percent_encode(msg.as_bytes())
        ),
        &[],
    );
    r.assert_error(401, "unauthenticated");
}

#[test]
fn gzip_request_bodies_are_inflated() {
    let s = Server::start();
    let auth = bearer(&s.admin);
    let mut h = json_headers(&auth);
    h.push(("Content-Encoding", "gzip"));
    let r = s.post_raw(
        &format!("{SVC}CreateWorkspace"),
        &h,
        &gzip(br#"{"name":"zipped"}"#),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["name"], "zipped");
    // identity is the same as no encoding.
    let mut h = json_headers(&auth);
    h.push(("Content-Encoding", "identity"));
    s.post_raw(&format!("{SVC}CreateWorkspace"), &h, br#"{"name":"plain"}"#)
        .ok();
    // A body that claims gzip but is not is invalid_argument.
    let mut h = json_headers(&auth);
    h.push(("Content-Encoding", "gzip"));
    let r = s.post_raw(&format!("{SVC}CreateWorkspace"), &h, br#"{"name":"liar"}"#);
    r.assert_error(400, "invalid_argument");
}

#[test]
fn large_responses_are_gzipped_when_accepted() {
    let s = Server::start();
    let mut conn = s.conn();
    for i in 0..30 {
        conn.rpc(
            "CreateWorkspace",
            &s.admin,
            &json!({ "name": format!("a workspace with a longish name {i}") }),
        )
        .ok();
    }
    let auth = bearer(&s.admin);
    let mut h = json_headers(&auth);
    h.push(("Accept-Encoding", "gzip"));
    let r = conn
        .request("POST", &format!("{SVC}ListWorkspaces"), &h, b"{}")
        .unwrap();
    r.ok();
    assert_eq!(
        r.header("content-encoding"),
        Some("gzip"),
        "a {}-byte body was not gzipped",
        r.body.len()
    );
    assert!(r.body.len() >= 1024);
    assert!(r.raw.len() < r.body.len());
    assert_eq!(r.json["workspaces"].as_array().unwrap().len(), 30);

    // The same over binary proto.
    let mut h = vec![
        ("Content-Type", "application/proto"),
        ("Authorization", auth.as_str()),
    ];
    h.push(("Accept-Encoding", "br, gzip;q=0.8"));
    let body = ListWorkspacesRequest::default().encode_to_vec();
    let r = conn
        .request("POST", &format!("{SVC}ListWorkspaces"), &h, &body)
        .unwrap();
    r.ok();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        ListWorkspacesResponse::decode(r.body.as_slice())
            .unwrap()
            .workspaces
            .len(),
        30
    );

    // Over Connect GET too.
    let r = conn
        .request(
            "GET",
            &format!("{SVC}ListWorkspaces?encoding=json&message=%7B%7D"),
            &[("Authorization", &auth), ("Accept-Encoding", "gzip")],
            b"",
        )
        .unwrap();
    r.ok();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.json["workspaces"].as_array().unwrap().len(), 30);

    // Without Accept-Encoding (or with gzip;q=0) the body is plain.
    for accept in [None, Some("gzip;q=0"), Some("identity")] {
        let mut h = json_headers(&auth);
        if let Some(a) = accept {
            h.push(("Accept-Encoding", a));
        }
        let r = conn
            .request("POST", &format!("{SVC}ListWorkspaces"), &h, b"{}")
            .unwrap();
        r.ok();
        assert_eq!(r.header("content-encoding"), None, "{accept:?}");
        assert_eq!(r.json["workspaces"].as_array().unwrap().len(), 30);
    }
}

#[test]
fn chunked_request_bodies_are_read() {
    let s = Server::start();
    let auth = bearer(&s.admin);
    let mut conn = s.conn();
    let mut h = json_headers(&auth);
    h.push(("Transfer-Encoding", "chunked"));
    let head = conn.head("POST", &format!("{SVC}CreateWorkspace"), &h, 0);
    assert!(!String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("content-length"));
    let mut bytes = head;
    for part in [&b"{\"na"[..], b"me\":", b"\"chun", b"ked\"}"] {
        bytes.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        bytes.extend_from_slice(part);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    conn.send(&bytes).unwrap();
    let r = conn.read_reply(false).unwrap();
    r.ok();
    assert_eq!(r.json["workspace"]["name"], "chunked");
    // The connection is still good for the next request (keep-alive).
    let r = conn.rpc(
        "GetWorkspace",
        &s.admin,
        &json!({ "workspaceId": r.json["workspace"]["id"] }),
    );
    r.ok();

    // Chunked and gzipped together, as connect-node + compression sends.
    let z = gzip(br#"{"name":"chunked and zipped"}"#);
    let mut h = json_headers(&auth);
    h.push(("Transfer-Encoding", "chunked"));
    h.push(("Content-Encoding", "gzip"));
    let mut bytes = conn.head("POST", &format!("{SVC}CreateWorkspace"), &h, 0);
    for part in z.chunks(7) {
        bytes.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        bytes.extend_from_slice(part);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    conn.send(&bytes).unwrap();
    let r = conn.read_reply(false).unwrap();
    r.ok();
    assert_eq!(r.json["workspace"]["name"], "chunked and zipped");
}

#[test]
fn protojson_output_int64_as_string_and_timestamps_in_utc() {
    let s = Server::start();
    let r = s.rpc("CreateWorkspace", &s.admin, json!({ "name": "shapes" }));
    r.ok();
    assert_eq!(r.header("content-type"), Some("application/json"));
    let w = &r.json["workspace"];
    assert_eq!(w["version"], "1", "int64 version is a decimal string: {w}");
    assert!(w["keyVersion"].is_number(), "int32 is a JSON number: {w}");
    let id = w["id"].as_str().unwrap();
    assert_eq!(
        unb64(id).len(),
        16,
        "ids are standard padded base64 of 16 bytes: {id}"
    );
    assert!(id.ends_with("=="));
    for field in ["createdAt", "updatedAt"] {
        let t = w[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing: {w}"));
        assert!(t.ends_with('Z'), "{field} {t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "T");
        assert!(t.starts_with("20"), "{t}");
    }
    // lowerCamelCase names on output, never snake_case.
    assert!(
        w.get("created_at").is_none() && w.get("key_version").is_none(),
        "{w}"
    );
}

#[test]
fn protojson_input_snake_case_and_int64_as_string_or_number() {
    let s = Server::start();
    let ws = s.create_workspace("inputs");
    let r = s.rpc("GetWorkspace", &s.admin, json!({ "workspace_id": ws }));
    r.ok();
    assert_eq!(r.json["workspace"]["name"], "inputs");
    // URL-safe unpadded ids are accepted too.
    let urlsafe = b64url(&unb64(&ws));
    s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": urlsafe }))
        .ok();

    let r = s.rpc(
        "UpdateWorkspace",
        &s.admin,
        json!({ "workspaceId": ws, "name": "two", "expectedVersion": "1" }),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["version"], "2");
    let r = s.rpc(
        "UpdateWorkspace",
        &s.admin,
        json!({ "workspaceId": ws, "name": "three", "expectedVersion": 2 }),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["version"], "3");
    let r = s.rpc(
        "UpdateWorkspace",
        &s.admin,
        json!({ "workspace_id": ws, "name": "four", "expected_version": "3" }),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["version"], "4");
    // null means "not set": no version check.
    let r = s.rpc(
        "UpdateWorkspace",
        &s.admin,
        json!({ "workspaceId": ws, "name": "five", "expectedVersion": null }),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["version"], "5");
    // Enums by number are accepted on input.
    let r = s.rpc(
        "CreateApiKey",
        &s.admin,
        json!({ "workspaceId": ws, "role": 5 }),
    );
    r.ok();
    assert_eq!(r.json["apiKey"]["role"], "API_KEY_ROLE_VIEWER");
    // An empty body is the empty message.
    let r = s.post_raw(
        &format!("{SVC}ListWorkspaces"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer(&s.admin)),
        ],
        b"",
    );
    r.ok();
}

#[test]
fn protojson_input_ignores_unknown_fields() {
    let s = Server::start();
    let ws = s.create_workspace("unknowns");
    // API.md §1: unknown fields are ignored (pbjson's
    // `ignore_unknown_fields()` in build.rs); once they were a 400.
    let cases = [
        (
            "GetWorkspace",
            json!({ "workspaceId": ws, "futureField": 1 }),
        ),
        (
            "CreateWorkspace",
            json!({ "name": "with extras", "labels": { "a": "b" } }),
        ),
        ("ListWorkspaces", json!({ "pageSize": 5, "filter": "x" })),
    ];
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(method, body)| {
            let r = s.rpc(method, &s.admin, body.clone());
            (r.status != 200).then(|| format!("{method} {body}: {} {}", r.status, r.text()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "unknown fields were refused:\n{}",
        failed.join("\n")
    );
}

#[test]
fn protojson_input_null_means_not_set() {
    let s = Server::start();
    let ws = s.create_workspace("nulls");
    // Optional (proto3 `optional`) fields take null as unset.
    let r = s.rpc(
        "UpdateWorkspace",
        &s.admin,
        json!({ "workspaceId": ws, "name": null, "expectedVersion": null }),
    );
    r.ok();
    assert_eq!(r.json["workspace"]["name"], "nulls");
    // API.md §1: `null` means not set for every field, as protojson says;
    // pbjson accepts it only on `optional` and message fields, so
    // connect::decode drops nulls before a second parse.
    let cases = [
        ("ListWorkspaces", json!({ "cursor": null })),
        ("ListWorkspaces", json!({ "pageSize": null })),
        ("ListApiKeys", json!({ "workspaceId": null })),
        (
            "CreateApiKey",
            json!({ "workspaceId": ws, "name": null, "role": "API_KEY_ROLE_VIEWER" }),
        ),
    ];
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(method, body)| {
            let r = s.rpc(method, &s.admin, body.clone());
            (r.status != 200).then(|| format!("{method} {body}: {} {}", r.status, r.text()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "null was refused:\n{}",
        failed.join("\n")
    );
}

#[test]
fn protojson_input_bytes_in_every_base64_flavour() {
    let s = Server::start();
    let ws = s.create_workspace("flavours");
    let raw = unb64(&ws);
    let flavours = [
        b64(&raw),
        b64(&raw).trim_end_matches('=').to_owned(),
        b64url(&raw),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, &raw),
    ];
    for id in flavours {
        let r = s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": id }));
        assert_eq!(r.status, 200, "{id}: {}", r.text());
        assert_eq!(
            r.json["workspace"]["id"],
            ws.as_str(),
            "output is standard padded base64"
        );
    }
}

#[test]
fn expect_100_continue_is_honoured() {
    let s = Server::start();
    let auth = bearer(&s.admin);
    let body = br#"{"name":"after continue"}"#;
    let mut conn = s.conn();
    let head = conn.head(
        "POST",
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Expect", "100-continue"),
        ],
        body.len(),
    );
    conn.send(&head).unwrap();
    let r = conn.read_reply(false).expect("an interim answer");
    assert_eq!(r.status, 100);
    conn.send(body).unwrap();
    let r = conn.read_reply(false).unwrap();
    r.ok();
    assert_eq!(r.json["workspace"]["name"], "after continue");
}
