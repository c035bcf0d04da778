//! Keyset pagination of ListWorkspaces: stable under concurrent inserts,
//! page size defaults and clamping, cursor validation.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;

use crate::common::*;

/// Creates `n` workspaces over one keep-alive connection; their ids.
fn create_many(s: &Server, prefix: &str, n: usize) -> Vec<String> {
    let mut conn = s.conn();
    (0..n)
        .map(|i| {
            let r = conn.rpc(
                "CreateWorkspace",
                &s.admin,
                &json!({ "name": format!("{prefix} {i}") }),
            );
            r.ok();
            r.json["workspace"]["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn pages_of_seven_under_concurrent_inserts_miss_nothing_and_repeat_nothing() {
    let s = Arc::new(Server::start());
    let before: Vec<String> = create_many(&s, "before", 50);

    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (s, stop, made) = (s.clone(), stop.clone(), made.clone());
        std::thread::spawn(move || {
            let mut conn = s.conn();
            // Bounded, so the reader (which follows new rows at the end)
            // always catches up.
            for i in 0..80 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                conn.rpc(
                    "CreateWorkspace",
                    &s.admin,
                    &json!({ "name": format!("during {i}") }),
                )
                .ok();
                made.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while made.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }

    let mut conn = s.conn();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    let made_at_start = made.load(Ordering::Relaxed);
    loop {
        pages += 1;
        assert!(pages < 200, "pagination did not end");
        let r = conn.rpc(
            "ListWorkspaces",
            &s.admin,
            &json!({ "pageSize": 7, "cursor": cursor }),
        );
        r.ok();
        let items = r.json["workspaces"].as_array().unwrap();
        assert!(items.len() <= 7, "page of {}", items.len());
        seen.extend(items.iter().map(|w| w["id"].as_str().unwrap().to_owned()));
        cursor = r.json["nextCursor"].as_str().unwrap_or("").to_owned();
        if cursor.is_empty() {
            break;
        }
        assert!(!items.is_empty(), "an empty page with a next cursor");
        if pages == 1 {
            // Make sure at least one insert lands between two pages.
            let t = std::time::Instant::now();
            while made.load(Ordering::Relaxed) == made_at_start {
                assert!(t.elapsed() < IO_TIMEOUT, "the writer stalled");
                std::thread::yield_now();
            }
        }
    }
    let made_at_end = made.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an id came back twice");
    for id in &before {
        assert!(
            unique.contains(id),
            "pre-existing workspace {id} was missed"
        );
    }
    assert!(
        made_at_end > made_at_start,
        "the writer made no workspace while pages were read; the test proved nothing"
    );
}

#[test]
fn last_page_has_an_empty_next_cursor_and_pages_cover_all() {
    let s = Server::start();
    let ids = create_many(&s, "exact", 14);
    let mut conn = s.conn();
    let r1 = conn.rpc("ListWorkspaces", &s.admin, &json!({ "pageSize": 7 }));
    r1.ok();
    let c1 = r1.json["nextCursor"].as_str().unwrap().to_owned();
    assert!(!c1.is_empty());
    let r2 = conn.rpc(
        "ListWorkspaces",
        &s.admin,
        &json!({ "pageSize": 7, "cursor": c1 }),
    );
    r2.ok();
    let got: Vec<&str> = r1.json["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .chain(r2.json["workspaces"].as_array().unwrap())
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "creation order, all of them"
    );
    // Exactly 14 rows in pages of 7: the second page is the last.
    assert_eq!(
        r2.json["nextCursor"].as_str().unwrap_or(""),
        "",
        "{}",
        r2.text()
    );
    // pageSize 0 means the default (100).
    let r = conn.rpc("ListWorkspaces", &s.admin, &json!({ "pageSize": 0 }));
    assert_eq!(r.json["workspaces"].as_array().unwrap().len(), 14);
    assert_eq!(r.json["nextCursor"].as_str().unwrap_or(""), "");
}

#[test]
fn page_size_above_1000_is_clamped_and_default_is_100() {
    let s = Server::start();
    // Two writers share the work; SQLite serialises them anyway.
    let s = Arc::new(s);
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || create_many(&s, &format!("bulk{t}"), 501))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut conn = s.conn();
    let r = conn.rpc("ListWorkspaces", &s.admin, &json!({ "pageSize": 5000 }));
    r.ok();
    assert_eq!(
        r.json["workspaces"].as_array().unwrap().len(),
        1000,
        "pageSize 5000 is clamped to 1000"
    );
    let next = r.json["nextCursor"].as_str().unwrap_or("").to_owned();
    assert!(!next.is_empty());
    let r = conn.rpc(
        "ListWorkspaces",
        &s.admin,
        &json!({ "pageSize": 5000, "cursor": next }),
    );
    assert_eq!(r.json["workspaces"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["nextCursor"].as_str().unwrap_or(""), "");
    let r = conn.rpc("ListWorkspaces", &s.admin, &json!({ "pageSize": i32::MAX }));
    assert_eq!(r.json["workspaces"].as_array().unwrap().len(), 1000);
    let r = conn.rpc("ListWorkspaces", &s.admin, &json!({}));
    assert_eq!(
        r.json["workspaces"].as_array().unwrap().len(),
        100,
        "default page size"
    );
}

#[test]
fn bad_page_size_and_cursors_are_invalid_argument() {
    let s = Server::start();
    create_many(&s, "c", 3);
    let cases = [
        json!({ "pageSize": -1 }),
        json!({ "pageSize": i32::MIN }),
        json!({ "cursor": "garbage" }),
        json!({ "cursor": "%%%" }),
        json!({ "cursor": b64url(&[2u8; 17]) }),
        json!({ "cursor": b64url(&[1u8; 16]) }),
        json!({ "cursor": b64url(&[1u8; 18]) }),
    ];
    for body in cases {
        let r = s.rpc("ListWorkspaces", &s.admin, body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        r.assert_error(400, "invalid_argument");
    }
    // The same checks apply to ListApiKeys.
    let ws = s.create_workspace("keys");
    let r = s.rpc(
        "ListApiKeys",
        &s.admin,
        json!({ "workspaceId": ws, "cursor": "garbage" }),
    );
    r.assert_error(400, "invalid_argument");
    let r = s.rpc(
        "ListApiKeys",
        &s.admin,
        json!({ "workspaceId": ws, "pageSize": -3 }),
    );
    r.assert_error(400, "invalid_argument");
}

#[test]
fn api_keys_paginate_without_repeats() {
    let s = Server::start();
    let ws = s.create_workspace("many keys");
    let mut made = HashSet::new();
    for _ in 0..12 {
        made.insert(s.create_key(&ws, "VIEWER").0);
    }
    let mut conn = s.conn();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..20 {
        let r = conn.rpc(
            "ListApiKeys",
            &s.admin,
            &json!({ "workspaceId": ws, "pageSize": 5, "cursor": cursor }),
        );
        r.ok();
        seen.extend(
            r.json["apiKeys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_owned()),
        );
        cursor = r.json["nextCursor"].as_str().unwrap_or("").to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert!(cursor.is_empty());
    assert_eq!(seen.len(), 12);
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), made);
}
