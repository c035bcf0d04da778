//! The request body limit (default 4 MiB): declared, streamed (chunked) and
//! inflated (gzip bomb) bodies over it are resource_exhausted, and the server
//! keeps serving afterwards.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

const MIB: usize = 1 << 20;

/// GetWorkspace still works on a new connection.
#[track_caller]
fn still_serving(s: &Server, ws: &str) {
    s.rpc("GetWorkspace", &s.admin, json!({ "workspaceId": ws }))
        .ok();
}

#[test]
fn huge_declared_content_length_is_refused_without_reading() {
    let s = Server::start();
    let ws = s.create_workspace("limits");
    let auth = bearer(&s.admin);
    let started = Instant::now();
    let mut conn = s.conn();
    let head = conn.head(
        "POST",
        &format!("{SVC}GetWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Content-Length", "1000000000000"),
        ],
        0,
    );
    conn.send(&head).unwrap();
    // Only the head was sent: an answer can only come without reading the body.
    let r = conn.read_reply(false).expect("an answer before the body");
    r.assert_error(429, "resource_exhausted");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        conn.wait_closed(Duration::from_secs(3)).is_some(),
        "the connection was left open"
    );
    still_serving(&s, &ws);

    // Also when the client has started sending the body.
    let mut conn = s.conn();
    let mut bytes = conn.head(
        "POST",
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Content-Length", "4194305"),
        ],
        0,
    );
    bytes.extend_from_slice(br#"{"name":""#);
    conn.send(&bytes).unwrap();
    conn.read_reply(false)
        .unwrap()
        .assert_error(429, "resource_exhausted");
    still_serving(&s, &ws);
}

/// Sends `head` and then `body` from another thread (the server may stop
/// reading and close early), while this thread reads the answer.
fn send_and_answer(s: &Server, head: Vec<u8>, body: Vec<u8>) -> Option<Reply> {
    let mut conn = s.conn();
    let mut writer = conn.stream.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = writer.write_all(&head);
        for chunk in body.chunks(64 * 1024) {
            if writer.write_all(chunk).is_err() {
                break;
            }
        }
    });
    let r = conn.read_reply(false).ok();
    drop(conn);
    t.join().unwrap();
    r
}

fn chunked(data: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / piece * 10 + 16);
    for part in data.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn chunked_body_over_the_limit_is_refused() {
    let s = Server::start();
    let ws = s.create_workspace("limits");
    let auth = bearer(&s.admin);
    // A 5 MiB JSON string value: valid JSON, only too big.
    let mut json_body = br#"{"name":""#.to_vec();
    json_body.resize(5 * MIB, b'a');
    json_body.extend_from_slice(br#""}"#);
    let conn = s.conn();
    let head = conn.head(
        "POST",
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Transfer-Encoding", "chunked"),
        ],
        0,
    );
    drop(conn);
    let r = send_and_answer(&s, head, chunked(&json_body, 256 * 1024));
    let r = r.expect("the server answered (rather than resetting) a body over the limit");
    r.assert_error(429, "resource_exhausted");
    still_serving(&s, &ws);

    // Just under the limit is read in full (and then judged on its content).
    let limit = 4 * MIB;
    let mut ok_body = br#"{"name":"x","#.to_vec();
    let pad = br#""pad":""#;
    ok_body.extend_from_slice(pad);
    let filler = limit - ok_body.len() - 2;
    ok_body.extend(std::iter::repeat_n(b'b', filler));
    ok_body.extend_from_slice(br#""}"#);
    assert_eq!(ok_body.len(), limit);
    let conn = s.conn();
    let head = conn.head(
        "POST",
        &format!("{SVC}GetWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Transfer-Encoding", "chunked"),
        ],
        0,
    );
    drop(conn);
    let r = send_and_answer(&s, head, chunked(&ok_body, 256 * 1024)).expect("an answer");
    assert_ne!(
        r.status,
        429,
        "a body of exactly the limit was refused: {}",
        r.text()
    );
    still_serving(&s, &ws);
}

#[test]
fn content_length_body_over_a_configured_limit_is_refused() {
    let s = Server::start_with(&[("PROXYPLANE_MAX_BODY_BYTES", "2048")], &[], None);
    let ws = s.create_workspace("small limit");
    let auth = bearer(&s.admin);
    let name = "n".repeat(3000);
    let body = json!({ "name": name }).to_string().into_bytes();
    let r = s.post_raw(
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        &body,
    );
    r.assert_error(429, "resource_exhausted");
    let r = s.post_raw(
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        json!({ "name": "n".repeat(150) }).to_string().as_bytes(),
    );
    r.ok();
    still_serving(&s, &ws);
}

#[test]
fn gzip_bomb_is_refused() {
    let s = Server::start();
    let ws = s.create_workspace("bombs");
    let auth = bearer(&s.admin);
    // 8 MiB of spaces around a valid message: inflates past 4 MiB.
    let mut plain = vec![b' '; 8 * MIB];
    let msg = json!({ "workspaceId": ws }).to_string();
    plain[..msg.len()].copy_from_slice(msg.as_bytes());
    let bomb = gzip(&plain);
    assert!(
        bomb.len() < 64 * 1024,
        "the bomb is small on the wire ({} bytes)",
        bomb.len()
    );
    let started = Instant::now();
    let r = s.post_raw(
        &format!("{SVC}GetWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("Content-Encoding", "gzip"),
        ],
        &bomb,
    );
    r.assert_error(429, "resource_exhausted");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Over Connect GET as well.
    let r = s.get(
        &format!(
            "{SVC}GetWorkspace?encoding=json&base64=1&compression=gzip&message={}",
            b64url(&bomb)
        ),
        &[("Authorization", &auth)],
    );
    r.assert_error(429, "resource_exhausted");
    still_serving(&s, &ws);
}

/// A client that writes its whole request before it reads (as Python's
/// urllib does): the write must succeed and the 429 must be readable. The
/// body goes out in 16 KiB pieces 20 ms apart, as over a real network
/// (on loopback the kernel's buffers would otherwise take it all at once).
fn write_all_then_read(s: &Server, framing: (&str, &str), body: &[u8]) -> Reply {
    let mut conn = s.conn();
    let auth = bearer(&s.admin);
    let bytes = conn.head(
        "POST",
        &format!("{SVC}CreateWorkspace"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            framing,
        ],
        0,
    );
    conn.send(&bytes).unwrap();
    for (i, piece) in body.chunks(16 * 1024).enumerate() {
        std::thread::sleep(Duration::from_millis(20));
        conn.send(piece).unwrap_or_else(|e| {
            panic!("the server cut off the body at piece {i} instead of letting the client finish: {e}")
        });
    }
    conn.read_reply(false)
        .expect("the refusal was readable after the body was written")
}

/// A 256 KiB JSON body: a valid message, only too large for a 64 KiB limit.
fn quarter_mib_message() -> Vec<u8> {
    let mut body = br#"{"name":""#.to_vec();
    body.resize(256 * 1024 - 2, b'a');
    body.extend_from_slice(br#""}"#);
    body
}

#[test]
fn a_client_that_writes_a_too_large_body_before_reading_gets_the_refusal() {
    let s = Launch::default()
        .env("PROXYPLANE_MAX_BODY_BYTES", "65536")
        .start();
    let ws = s.create_workspace("writers");
    let body = quarter_mib_message();
    let len = body.len().to_string();
    write_all_then_read(&s, ("Content-Length", &len), &body)
        .assert_error(429, "resource_exhausted");
    write_all_then_read(
        &s,
        ("Transfer-Encoding", "chunked"),
        &chunked(&body, 16 * 1024),
    )
    .assert_error(429, "resource_exhausted");
    still_serving(&s, &ws);
}

/// urllib sends the whole body before it reads; 8 MiB is more than the
/// loopback buffers hold, so the server must read (and discard) it.
#[test]
fn python_urllib_gets_the_refusal_of_a_too_large_body() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("python3 is not installed; skipped");
        return;
    }
    let s = Launch::default()
        .env("PROXYPLANE_MAX_BODY_BYTES", "65536")
        .start();
    let script = r#"
import sys, urllib.request, urllib.error
url, key = sys.argv[1], sys.argv[2]
body = b'{"name":"' + b'a' * (8 << 20) + b'"}'
req = urllib.request.Request(url, data=body, headers={
    "Content-Type": "application/json", "Authorization": "Bearer " + key})
try:
    urllib.request.urlopen(req, timeout=10)
    print("no error")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &format!("http://{}{SVC}CreateWorkspace", s.addr),
            &s.admin,
        ])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("429 ") && stdout.contains("resource_exhausted"),
        "urllib saw: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
