//! Input validation found lacking by the audit: hosts, account names,
//! duplicate JSON keys, decode errors that name the field in plain words
//! (and never echo the value), gateway templates filled in one pass, and
//! generated Webshare tokens next to very long numeric ones.

use prost::Message;
use serde_json::{json, Value};

use crate::common::{bearer, Reply, Server, SVC};
use crate::inventory::{id_of, merge, Ws};

/// Library phrases a client author should never see in an error message.
const JARGON: &[&str] = &[
    "untagged",
    "Content",
    "Invalid symbol",
    "Invalid last symbol",
    "Invalid padding",
    "invalid type:",
    "invalid value:",
    "invalid digit",
    ", expected",
    "expected one of",
    "expected struct",
    "expected a ",
    "unknown variant",
    "duplicate field",
    "i32",
    "i64",
    "u32",
    "struct proxies",
    "proxies.v1.",
    "Protobuf message",
    "wire type",
    "varint",
    "buffer underflow",
    "UTF-8 encoded",
    "GeneratedField",
];

/// The message of a Connect invalid_argument error, after checking that it
/// names `field` and shows no library phrase and none of `secrets`.
#[track_caller]
fn bad_request(r: &Reply, field: &str, secrets: &[&str]) -> String {
    r.assert_error(400, "invalid_argument");
    let msg = r.json["message"].as_str().unwrap_or("").to_owned();
    assert!(
        msg.contains(field),
        "message does not name {field:?}: {msg}"
    );
    for j in JARGON {
        assert!(!msg.contains(j), "library phrase {j:?} in: {msg}");
    }
    for s in secrets {
        assert!(!r.text().contains(s), "value {s:?} echoed: {}", r.text());
    }
    msg
}

fn post_json(srv: &Server, method: &str, key: &str, body: &str) -> Reply {
    srv.post_raw(
        &format!("{SVC}{method}"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer(key)),
        ],
        body.as_bytes(),
    )
}

fn post_proto(srv: &Server, method: &str, key: &str, body: &[u8]) -> Reply {
    srv.post_raw(
        &format!("{SVC}{method}"),
        &[
            ("Content-Type", "application/proto"),
            ("Authorization", &bearer(key)),
        ],
        body,
    )
}

// -------------------------------------------------------------------- hosts

/// Hosts a URL parser would misread, or that are no host at all.
const BAD_HOSTS: &[&str] = &[
    "203.0.113.7:3128",
    "a:b",
    ":::",
    "[203.0.113.7]",
    "[2001:db8::1",
    "2001:db8::1]",
    "[[2001:db8::1]]",
    "fe80::1%eth0",
    "proxy.example.com:8080",
    "user@proxy.example.com",
    "proxy.example.com/path",
    "proxy example.com",
    "b\u{fc}cher.example",
    "-proxy.example.com",
    "proxy-.example.com",
    "proxy.-example.com",
    "proxy..example.com",
    ".proxy.example.com",
    "proxy.example.com..",
    ".",
    "999.1.1.1",
    "1.2.3",
    "203.0.113.07",
    "0x7f.1",
    "proxy.123",
];

fn long_label() -> String {
    format!("{}.example.com", "a".repeat(64))
}

fn long_name() -> String {
    // 4 labels of 63 and one of 1: 4*64 + 1 = 257 characters.
    format!("{}.a", vec!["b".repeat(63); 4].join("."))
}

#[test]
fn hosts_must_be_a_dns_name_or_an_ip_address_and_errors_name_the_field() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let existing = id_of(&ws.session(&pool, &prov, json!({ "host": "203.0.113.1", "port": 3128 })));
    let mut bad: Vec<String> = BAD_HOSTS.iter().map(|h| h.to_string()).collect();
    bad.push(long_label());
    bad.push(long_name());
    let mut failures = Vec::new();
    for host in &bad {
        let mut check = |what: &str, r: Reply, field: &str| {
            let msg = r.json["message"].as_str().unwrap_or("");
            if r.status != 400 || r.json["code"] != "invalid_argument" || !msg.contains(field) {
                failures.push(format!("{what} {host:?}: {} {}", r.status, r.text()));
            }
        };
        check(
            "CreateSession",
            ws.call(
                "CreateSession",
                json!({ "poolId": pool, "providerId": prov, "host": host, "port": 3128 }),
            ),
            "host",
        );
        check(
            "UpdateSession",
            ws.call(
                "UpdateSession",
                json!({ "sessionId": existing, "host": host }),
            ),
            "host",
        );
        let mut items = vec![json!({ "token": "t0", "host": "203.0.113.2", "port": 1 }); 3];
        items.push(json!({ "token": "t3", "host": host, "port": 3128 }));
        check(
            "BulkCreateSessions",
            ws.call(
                "BulkCreateSessions",
                json!({ "poolId": pool, "providerId": prov, "sessions": items }),
            ),
            "sessions[3].host",
        );
        check(
            "ConnectProvider",
            ws.call(
                "ConnectProvider",
                json!({ "type": "PROVIDER_TYPE_GENERIC", "name": "gw",
                        "gateway": { "host": host, "port": 8000 } }),
            ),
            "gateway.host",
        );
    }
    assert!(failures.is_empty(), "accepted:\n{}", failures.join("\n"));
}

#[test]
fn good_hosts_are_stored_without_brackets_and_resolve_to_parseable_urls() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    // (sent, stored, host part of url and endpoint)
    let cases = [
        (
            "proxy.example.com",
            "proxy.example.com",
            "proxy.example.com",
        ),
        // An absolute DNS name: every URL parser keeps the trailing dot.
        (
            "proxy.example.com.",
            "proxy.example.com.",
            "proxy.example.com.",
        ),
        // Vendors hand out names with underscores.
        ("gate_1.vendor.io", "gate_1.vendor.io", "gate_1.vendor.io"),
        ("localhost", "localhost", "localhost"),
        (
            "xn--bcher-kva.example",
            "xn--bcher-kva.example",
            "xn--bcher-kva.example",
        ),
        ("203.0.113.7", "203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1", "[2001:db8::1]"),
        ("[2001:db8::2]", "2001:db8::2", "[2001:db8::2]"),
        (
            "::ffff:203.0.113.9",
            "::ffff:203.0.113.9",
            "[::ffff:203.0.113.9]",
        ),
    ];
    for (i, (sent, stored, url_host)) in cases.iter().enumerate() {
        let s = ws.session(&pool, &prov, json!({ "host": sent, "port": 3128 }));
        assert_eq!(s["host"], *stored, "{sent}");
        let acct = format!("acct-{i}");
        ws.ok(
            "CreateAssignment",
            json!({ "poolId": pool, "accountName": acct, "sessionId": id_of(&s), "pinned": true }),
        );
        let (_, p) = ws.resolve_ok(&pool, &acct);
        assert_eq!(p["host"], *stored, "{sent}");
        assert_eq!(p["endpoint"], format!("http://{url_host}:3128"), "{sent}");
        assert_eq!(p["url"], format!("http://{url_host}:3128"), "{sent}");
    }
    // UpdateSession and a provider's gateway store the bare address too.
    let s = id_of(&ws.session(&pool, &prov, json!({ "host": "203.0.113.50", "port": 1 })));
    let u = ws.ok(
        "UpdateSession",
        json!({ "sessionId": s, "host": "[2001:db8::50]" }),
    );
    assert_eq!(u["session"]["host"], "2001:db8::50");
    let g = ws.provider(
        "PROXYLINE",
        json!({ "name": "v6 gateway", "gateway": { "host": "[2001:db8::60]", "port": 8000 } }),
    );
    assert_eq!(g["gateway"]["host"], "2001:db8::60");
}

// ------------------------------------------------------------ account names

#[test]
fn account_names_refuse_invisible_control_and_separator_characters() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    ws.session(&pool, &prov, json!({ "host": "203.0.113.1", "port": 3128 }));
    let bad = [
        "bot\u{2028}1",  // line separator (Zl)
        "bot\u{2029}1",  // paragraph separator (Zp)
        "bot\u{00AD}1",  // soft hyphen (Cf)
        "bot\u{200B}1",  // zero width space (Cf)
        "bot\u{200D}1",  // zero width joiner (Cf)
        "bot\u{202E}1",  // right-to-left override (Cf)
        "bot\u{2066}1",  // left-to-right isolate (Cf)
        "\u{FEFF}bot1",  // byte order mark (Cf)
        "bot\u{E0041}1", // tag latin capital A (Cf)
        "bot\u{0085}1",  // next line (Cc)
        "bot\u{007F}1",  // delete (Cc)
        "bot\u{E000}1",  // private use (Co)
        "bot\u{F0000}1", // supplementary private use (Co)
        "bot\u{0378}1",  // unassigned (Cn)
        "bot\u{FFFF}1",  // noncharacter (Cn)
        " bot1",         // leading space
        "bot1 ",         // trailing space
        "bot1\u{3000}",  // trailing ideographic space
        "",
    ];
    let mut failures = Vec::new();
    for name in bad {
        for method in ["CreateAssignment", "ResolveProxy"] {
            let r = ws.call(method, json!({ "poolId": pool, "accountName": name }));
            let msg = r.json["message"].as_str().unwrap_or("");
            if r.status != 400
                || r.json["code"] != "invalid_argument"
                || !msg.contains("account_name")
            {
                failures.push(format!("{method} {name:?}: {} {}", r.status, r.text()));
            }
        }
    }
    assert!(failures.is_empty(), "accepted:\n{}", failures.join("\n"));
    // Printable names, inner spaces, any script, emoji and combining marks
    // are fine, up to 128 characters.
    for name in [
        "bot 1",
        "\u{431}\u{43e}\u{442}-1",
        "\u{30dc}\u{30c3}\u{30c8}",
        "e\u{301}t\u{e9}",
        "\u{1F916}bot",
        "a\u{a0}b",
        &"x".repeat(128),
    ] {
        let r = ws.resolve(&pool, name);
        assert_eq!(r.status, 200, "{name:?}: {}", r.text());
        assert_eq!(r.json["assignment"]["accountName"], name);
    }
    bad_request(&ws.resolve(&pool, &"x".repeat(129)), "account_name", &[]);
}

// ------------------------------------------------------- duplicate JSON keys

#[test]
fn duplicate_json_keys_are_refused_at_any_depth_naming_the_key() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let w = &ws.id;
    let k = &ws.key;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "GetWorkspace",
            format!(r#"{{"workspaceId":"{w}","workspaceId":"{w}"}}"#),
            "workspaceId",
        ),
        (
            "GetWorkspace",
            format!(r#"{{"workspace_id":"{w}","workspaceId":"{w}"}}"#),
            "workspaceId",
        ),
        (
            "UpdateWorkspace",
            format!(r#"{{"workspaceId":"{w}","name":"a","name":"b"}}"#),
            "name",
        ),
        (
            "UpdateWorkspace",
            format!(r#"{{"workspaceId":"{w}","name":null,"name":"b"}}"#),
            "name",
        ),
        (
            "ListWorkspaces",
            r#"{"pageSize":5,"page_size":5}"#.to_owned(),
            "pageSize",
        ),
        (
            "CreatePool",
            format!(
                r#"{{"workspaceId":"{w}","name":"p","rotation":{{"intervalSeconds":1,"interval_seconds":2}}}}"#
            ),
            "rotation.intervalSeconds",
        ),
        (
            "BulkCreateSessions",
            format!(
                r#"{{"workspaceId":"{w}","poolId":"{pool}","providerId":"{prov}","sessions":[{{"token":"a"}},{{"token":"b","token":"c"}}]}}"#
            ),
            "sessions[1].token",
        ),
        (
            "ConnectProvider",
            format!(
                r#"{{"workspaceId":"{w}","type":"PROVIDER_TYPE_GENERIC","name":"n","credentials":{{"password":"x","password":"y"}}}}"#
            ),
            "credentials.password",
        ),
        // Unknown fields are ignored, but not when they come twice.
        (
            "GetWorkspace",
            format!(r#"{{"workspaceId":"{w}","extra":{{"a":1,"a":2}}}}"#),
            "extra.a",
        ),
        (
            "GetWorkspace",
            format!(r#"{{"workspaceId":"{w}","future":1,"future":1}}"#),
            "future",
        ),
    ];
    for (method, body, field) in &cases {
        let r = post_json(&srv, method, k, body);
        let msg = bad_request(&r, field, &[]);
        assert!(msg.contains("more than once"), "{method} {body}: {msg}");
    }
    // The same field once, or in two different objects, is fine.
    post_json(
        &srv,
        "GetWorkspace",
        k,
        &format!(r#"{{"workspaceId":"{w}","x":{{"workspaceId":1}}}}"#),
    )
    .ok();
}

// ------------------------------------------------------------ decode errors

#[test]
fn json_decode_errors_name_the_field_in_plain_words_and_never_echo_the_value() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let item = json!({ "token": "ok", "host": "203.0.113.2", "port": 3128 });
    let bulk = |bad: Value| {
        let mut items = vec![item.clone(); 3];
        items.push(merge(item.clone(), bad));
        json!({ "poolId": pool, "providerId": prov, "sessions": items })
    };
    // (method, body, field named, words expected, values never echoed)
    let cases: Vec<(&str, Value, &str, &str, Vec<&str>)> = vec![
        (
            "BulkCreateSessions",
            bulk(json!({ "port": "zqport771" })),
            "sessions[3].port",
            "number",
            vec!["zqport771"],
        ),
        (
            "BulkCreateSessions",
            bulk(json!({ "port": true })),
            "sessions[3].port",
            "number",
            vec![],
        ),
        (
            "BulkCreateSessions",
            bulk(json!({ "port": 99999999999u64 })),
            "sessions[3].port",
            "number",
            vec!["99999999999"],
        ),
        (
            "BulkCreateSessions",
            bulk(json!({ "password": 918273645 })),
            "sessions[3].password",
            "string",
            vec!["918273645"],
        ),
        (
            "BulkCreateSessions",
            bulk(json!({ "password": { "zqsecretkey": "zqsecretval" } })),
            "sessions[3].password",
            "string",
            vec!["zqsecretkey", "zqsecretval"],
        ),
        (
            "CreateSession",
            json!({ "poolId": pool, "providerId": prov, "host": "h", "port": 1, "password": 55501234 }),
            "password",
            "string",
            vec!["55501234"],
        ),
        (
            "CreateSession",
            json!({ "poolId": pool, "providerId": prov, "host": "h", "port": 1, "username": ["zqarrayuser"] }),
            "username",
            "string",
            vec!["zqarrayuser"],
        ),
        (
            "BulkCreateSessions",
            json!({ "poolId": pool, "providerId": prov, "sessions": "zqnotalist" }),
            "sessions",
            "array",
            vec!["zqnotalist"],
        ),
        (
            "BulkCreateSessions",
            json!({ "poolId": pool, "providerId": prov, "sessions": [item, 7777123] }),
            "sessions[1]",
            "object",
            vec!["7777123"],
        ),
        (
            "GetWorkspace",
            json!({ "workspaceId": "!!zqbadid!!" }),
            "workspaceId",
            "base64",
            vec!["zqbadid"],
        ),
        (
            "GetWorkspace",
            json!({ "workspaceId": 31415926 }),
            "workspaceId",
            "base64",
            vec!["31415926"],
        ),
        (
            "ListPools",
            json!({ "page_size": "12zqsnake" }),
            "page_size",
            "number",
            vec!["12zqsnake"],
        ),
        (
            "BatchGetSessions",
            json!({ "sessionIds": ["AAAAAAAAAAAAAAAAAAAAAA==", "*zqbadelem*"] }),
            "sessionIds[1]",
            "base64",
            vec!["zqbadelem"],
        ),
        (
            "ConnectProvider",
            json!({ "type": "PROVIDER_TYPE_ZQMARKER", "name": "n" }),
            "type",
            "PROVIDER_TYPE_GENERIC",
            vec!["ZQMARKER"],
        ),
        (
            "ConnectProvider",
            json!({ "type": 4242, "name": "n" }),
            "type",
            "PROVIDER_TYPE_WEBSHARE",
            vec!["4242"],
        ),
        (
            "ConnectProvider",
            json!({ "type": "PROVIDER_TYPE_GENERIC", "name": "n", "credentials": { "password": 60606060 } }),
            "credentials.password",
            "string",
            vec!["60606060"],
        ),
        (
            "ConnectProvider",
            json!({ "type": "PROVIDER_TYPE_GENERIC", "name": "n", "credentials": "zqcredstring" }),
            "credentials",
            "object",
            vec!["zqcredstring"],
        ),
        (
            "ConnectProvider",
            json!({ "type": "PROVIDER_TYPE_GENERIC", "name": "n", "gateway": { "host": "h", "port": "zqgwport" } }),
            "gateway.port",
            "number",
            vec!["zqgwport"],
        ),
        (
            "CreatePool",
            json!({ "name": "p", "rotation": { "intervalSeconds": "12zq" } }),
            "rotation.intervalSeconds",
            "number",
            vec!["12zq"],
        ),
        (
            "CreatePool",
            json!({ "name": "p", "rotation": { "onUnhealthy": "zqyes" } }),
            "rotation.onUnhealthy",
            "true or false",
            vec!["zqyes"],
        ),
        (
            "ListPools",
            json!({ "pageSize": 1.5 }),
            "pageSize",
            "number",
            vec!["1.5"],
        ),
        (
            "UpdateWorkspace",
            json!({ "expectedVersion": "zqver" }),
            "expectedVersion",
            "number",
            vec!["zqver"],
        ),
        (
            "CreateAssignment",
            json!({ "poolId": pool, "accountName": "a", "pinned": "zqtrue" }),
            "pinned",
            "true or false",
            vec!["zqtrue"],
        ),
        (
            "ResolveProxy",
            json!({ "poolId": pool, "accountName": 123454321 }),
            "accountName",
            "string",
            vec!["123454321"],
        ),
    ];
    let mut failures = Vec::new();
    for (method, body, field, words, secrets) in &cases {
        let r = ws.call(method, body.clone());
        let outcome = std::panic::catch_unwind(|| {
            let msg = bad_request(&r, field, secrets);
            assert!(msg.contains(words), "{msg} lacks {words:?}");
        });
        if outcome.is_err() {
            failures.push(format!("{method} {body}: {} {}", r.status, r.text()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn json_that_is_not_an_object_or_not_json_is_explained_without_jargon() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let cases = [
        ("[1,2]", "JSON object"),
        ("\"zqstring\"", "JSON object"),
        ("42", "JSON object"),
        ("{\"name\":", "not valid JSON"),
        ("{\"name\": \"zqtrail\",}", "not valid JSON"),
        ("{\"name\" \"zqcolon\"}", "not valid JSON"),
        ("{'name': 'zqquote'}", "not valid JSON"),
        ("{\"name\":\"a\"} trailing", "not valid JSON"),
    ];
    for (body, words) in cases {
        let r = post_json(&srv, "CreateWorkspace", &srv.admin, body);
        r.assert_error(400, "invalid_argument");
        let msg = r.json["message"].as_str().unwrap_or("");
        assert!(msg.contains(words), "{body}: {msg}");
        if words == "not valid JSON" {
            assert!(msg.contains("line 1 column"), "{body}: {msg}");
        }
        for j in JARGON {
            assert!(!msg.contains(j), "{body}: library phrase {j:?} in {msg}");
        }
        assert!(!msg.contains("zq"), "{body}: value echoed in {msg}");
    }
    // Within a workspace too (the key scoping runs after decoding).
    bad_request(
        &post_json(&srv, "ListPools", &ws.key, "{\"pageSize\": {}}"),
        "pageSize",
        &[],
    );
}

#[test]
fn proto_decode_errors_are_plain_words_naming_the_field() {
    use crate::pb::v1 as pb;
    let srv = Server::start();
    // name (field 1) as a length-delimited value that is not UTF-8.
    let bad_utf8 = [0x0a, 0x03, b'a', 0xff, b'b'];
    let r = post_proto(&srv, "CreateWorkspace", &srv.admin, &bad_utf8);
    let msg = bad_request(&r, "name", &[]);
    assert!(msg.contains("UTF-8 text"), "{msg}");
    // name with a varint wire type where a string is declared.
    let r = post_proto(&srv, "CreateWorkspace", &srv.admin, &[0x08, 0x01]);
    let msg = bad_request(&r, "name", &[]);
    assert!(msg.contains("wrong protobuf type"), "{msg}");
    // A length running past the end of the body.
    let r = post_proto(&srv, "CreateWorkspace", &srv.admin, &[0x0a, 0x7f, b'a']);
    let msg = bad_request(&r, "protobuf", &[]);
    assert!(
        msg.contains("ends early") || msg.contains("not a valid"),
        "{msg}"
    );
    // A nested message: BulkCreateSessions.sessions[].port as a string.
    let mut body = pb::BulkCreateSessionsRequest::default().encode_to_vec();
    // sessions (4) = { port (4) as length-delimited "x" }
    body.extend_from_slice(&[0x22, 0x03, 0x22, 0x01, b'x']);
    let r = post_proto(&srv, "BulkCreateSessions", &srv.admin, &body);
    bad_request(&r, "sessions.port", &[]);
    // Invalid varint garbage.
    let r = post_proto(&srv, "CreateWorkspace", &srv.admin, &[0xff; 12]);
    r.assert_error(400, "invalid_argument");
    let msg = r.json["message"].as_str().unwrap_or("");
    for j in JARGON {
        assert!(!msg.contains(j), "library phrase {j:?} in {msg}");
    }
}

// -------------------------------------------------------- gateway templates

#[test]
fn gateway_templates_fill_placeholders_in_one_pass() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = id_of(&ws.provider(
        "GENERIC",
        json!({
            "credentials": { "username": "u{token}x", "password": "p{username}" },
            "gateway": { "host": "gw.example.org", "port": 1080,
                         "usernameTemplate": "{username}-s-{token}", "passwordTemplate": "{password}:{token}" }
        }),
    ));
    let pool = ws.pool(json!({}));
    ws.session(&pool, &prov, json!({ "token": "tk" }));
    let (_, p) = ws.resolve_ok(&pool, "bot");
    assert_eq!(p["username"], "u{token}x-s-tk");
    assert_eq!(p["password"], "p{username}:tk");
}

// ---------------------------------------------------------- webshare tokens

#[test]
fn generated_webshare_tokens_never_collide_with_very_long_numeric_tokens() {
    let srv = Server::start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = id_of(&ws.provider(
        "WEBSHARE",
        json!({ "credentials": { "username": "u", "password": "p" } }),
    ));
    let pool = ws.pool(json!({}));
    let long = "1234567890123456789012";
    ws.session(&pool, &prov, json!({ "token": long }));
    let a = ws.session(&pool, &prov, json!({}))["token"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let b = ws.session(&pool, &prov, json!({}))["token"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        a.bytes().all(|c| c.is_ascii_digit()) && !a.is_empty(),
        "{a}"
    );
    assert!(
        b.bytes().all(|c| c.is_ascii_digit()) && !b.is_empty(),
        "{b}"
    );
    let tokens = [long.to_owned(), a, b];
    assert_ne!(tokens[1], tokens[0]);
    assert_ne!(tokens[2], tokens[0]);
    assert_ne!(tokens[1], tokens[2]);
    // A bulk call next to it numbers past it too.
    let r = ws.ok(
        "BulkCreateSessions",
        json!({ "poolId": pool, "providerId": prov, "sessions": [{}, {}, { "token": "99999999999999999999999999" }, {}] }),
    );
    assert_eq!(r["createdCount"], 4, "{r}");
    // The index after 999999999999999999 has 19 digits: it must count when
    // the next one is chosen (it once did not, and was generated twice).
    let pool2 = ws.pool(json!({ "name": "second" }));
    ws.session(&pool2, &prov, json!({ "token": "999999999999999999" }));
    let mut seen = std::collections::HashSet::new();
    for want in [
        "1000000000000000000",
        "1000000000000000001",
        "1000000000000000002",
    ] {
        let r = ws.call(
            "CreateSession",
            json!({ "poolId": pool2, "providerId": prov }),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json["session"]["token"], want);
        assert!(seen.insert(want));
    }
    // Past i64: counted as digits, never wrapped.
    let pool3 = ws.pool(json!({ "name": "third" }));
    ws.session(
        &pool3,
        &prov,
        json!({ "token": "00099999999999999999999999999" }),
    );
    let r = ws.ok(
        "CreateSession",
        json!({ "poolId": pool3, "providerId": prov }),
    );
    assert_eq!(r["session"]["token"], "100000000000000000000000000");
    // 128 nines leave no longer index: a clear error, not a clash.
    let pool4 = ws.pool(json!({ "name": "fourth" }));
    ws.session(&pool4, &prov, json!({ "token": "9".repeat(128) }));
    let r = ws.call(
        "CreateSession",
        json!({ "poolId": pool4, "providerId": prov }),
    );
    r.assert_error(400, "failed_precondition");
    assert!(r.text().contains("token"), "{}", r.text());
}
