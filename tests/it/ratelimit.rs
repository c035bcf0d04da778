//! Token buckets: per API key on every request, per client IP on failed
//! authentications. Both answer resource_exhausted with Retry-After.

use serde_json::json;

use crate::common::*;

#[track_caller]
fn assert_rate_limited(r: &Reply) -> u64 {
    r.assert_error(429, "resource_exhausted");
    let after = r.header("retry-after").expect("Retry-After header");
    let secs: u64 = after
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {after:?} is not whole seconds"));
    assert!(secs >= 1, "Retry-After {secs}");
    secs
}

#[test]
fn per_key_bucket_refuses_the_fourth_quick_request_and_spares_other_keys() {
    let s = Launch::default()
        .env("PROXYPLANE_RATE_LIMIT_PER_SECOND", "1")
        .env("PROXYPLANE_RATE_LIMIT_BURST", "3")
        .start();
    // Keys made offline, so the ADMIN key's bucket is not involved.
    let ws = cli_ok(&s.dir, &["workspaces", "create", "limited"])
        .trim()
        .to_owned();
    let key_a = cli_ok(
        &s.dir,
        &["keys", "create", "--workspace", &ws, "--role", "VIEWER"],
    )
    .trim()
    .to_owned();
    let key_b = cli_ok(
        &s.dir,
        &["keys", "create", "--workspace", &ws, "--role", "VIEWER"],
    )
    .trim()
    .to_owned();

    let body = json!({ "workspaceId": ws });
    let mut conn = s.conn();
    for i in 0..3 {
        let r = conn.rpc("GetWorkspace", &key_a, &body);
        assert_eq!(
            r.status,
            200,
            "request {} of the burst: {}",
            i + 1,
            r.text()
        );
    }
    let r = s.rpc("GetWorkspace", &key_a, body.clone());
    let secs = assert_rate_limited(&r);
    assert!(
        secs <= 2,
        "at 1/s a token is at most a second away, got {secs}"
    );
    // Connect GET draws on the same bucket.
    let r = s.connect_get("GetWorkspace", &key_a, &body);
    assert_rate_limited(&r);
    // Another key has its own bucket.
    for _ in 0..3 {
        s.rpc("GetWorkspace", &key_b, body.clone()).ok();
    }
    // Refusals are counted.
    let m = s.metrics();
    let line = m
        .lines()
        .find(|l| l.starts_with("proxyplane_rate_limited_total"))
        .expect("proxyplane_rate_limited_total");
    let n: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
    assert!(n >= 2.0, "{line}");
    // The bucket refills at the configured rate.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.rpc("GetWorkspace", &key_a, body).ok();
}

#[test]
fn failed_authentications_are_limited_per_ip() {
    let s = Launch::default()
        .env("PROXYPLANE_AUTH_FAILURE_RATE_PER_SECOND", "0.01")
        .env("PROXYPLANE_AUTH_FAILURE_BURST", "2")
        .start();
    let bad = "pp_thisisnotakeythisisnotakeythisisnotakeyxxx";
    let body = json!({ "workspaceId": random_id() });
    s.rpc("GetWorkspace", bad, body.clone())
        .assert_error(401, "unauthenticated");
    s.rpc("GetWorkspace", &format!("{bad}2"), body.clone())
        .assert_error(401, "unauthenticated");
    let r = s.rpc("GetWorkspace", &format!("{bad}3"), body.clone());
    let secs = assert_rate_limited(&r);
    assert!(secs >= 50, "at 0.01/s the wait is long, got {secs}");
    // A request without any key counts as a failure too, and is refused.
    let r = s.post_raw(
        &format!("{SVC}GetWorkspace"),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_rate_limited(&r);
}

#[test]
fn successful_requests_do_not_drain_the_auth_failure_bucket() {
    let s = Launch::default()
        .env("PROXYPLANE_AUTH_FAILURE_RATE_PER_SECOND", "0.01")
        .env("PROXYPLANE_AUTH_FAILURE_BURST", "2")
        .start();
    let ws = s.create_workspace("good");
    let mut conn = s.conn();
    for _ in 0..10 {
        conn.rpc("GetWorkspace", &s.admin, &json!({ "workspaceId": ws }))
            .ok();
    }
    // Denied (403) is not an authentication failure either.
    let (_, viewer) = s.create_key(&ws, "VIEWER");
    for _ in 0..5 {
        s.rpc("CreateWorkspace", &viewer, json!({ "name": "no" }))
            .assert_error(403, "permission_denied");
    }
    s.rpc("GetWorkspace", "pp_wrong", json!({ "workspaceId": ws }))
        .assert_error(401, "unauthenticated");
}

#[test]
fn a_valid_key_is_never_refused_by_the_failed_auth_bucket() {
    // Defaults: ~25 failures from one address used to make every later
    // request from it 429, the ADMIN key too (the per-IP bucket was checked
    // before the key was looked up): one misconfigured bot behind a NAT
    // locked out every valid key.
    let s = Launch::default().start();
    let ws = s.create_workspace("nat");
    let (_, resolver) = s.create_key(&ws, "RESOLVER");
    let body = json!({ "workspaceId": ws });
    let mut limited = 0;
    for i in 0..40 {
        let r = s.rpc("GetWorkspace", &format!("pp_wrong{i}"), body.clone());
        if r.status == 429 {
            limited += 1;
            assert_rate_limited(&r);
        } else {
            r.assert_error(401, "unauthenticated");
        }
    }
    assert!(limited > 0, "the failures themselves are limited");
    s.rpc("GetWorkspace", &s.admin, body.clone()).ok();
    // A valid key of any role goes on to its normal checks.
    s.rpc("GetWorkspace", &resolver, body.clone())
        .assert_error(403, "permission_denied");
    // And failures from the address are still refused.
    assert_rate_limited(&s.rpc("GetWorkspace", "pp_wrong", body));
}
