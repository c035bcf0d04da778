//! `proxyplane import`: a vendor's proxy list into a pool, offline on the
//! data dir while the server runs, through BulkCreateSessions' insert.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::json;

use crate::common::{cli, cli_ok, command, random_id, Server, TempDir};
use crate::inventory::Ws;

/// A workspace with a GENERIC provider and a pool: (ws, pool, provider).
fn target(srv: &Server) -> (Ws<'_>, String, String) {
    let ws = Ws::new(srv, "OWNER");
    let provider = ws.generic();
    let pool = ws.pool(json!({}));
    (ws, pool, provider)
}

fn args<'a>(ws: &'a Ws, pool: &'a str, provider: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "import",
        "--workspace",
        &ws.id,
        "--pool",
        pool,
        "--provider",
        provider,
    ];
    a.extend_from_slice(rest);
    a
}

fn write_list(dir: &TempDir, text: &str) -> String {
    let path = dir.join("list.txt");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `proxyplane import ...` with `input` on stdin.
fn import_stdin(data_dir: &Path, args: &[&str], input: &str) -> Output {
    import_stdin_with(data_dir, args, input, &[])
}

fn import_stdin_with(data_dir: &Path, args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
    let mut c = command();
    c.envs(env.iter().copied());
    c.arg("--data-dir").arg(data_dir).args(args);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn session_count(ws: &Ws, pool: &str) -> usize {
    let r = ws.ok("ListSessions", json!({ "poolId": pool, "pageSize": 1000 }));
    r["sessionIds"].as_array().map_or(0, Vec::len)
}

/// What ResolveProxy gives `n` accounts of the pool: (scheme, host, port,
/// username, password) each. The pool balances, so n accounts over n
/// sessions reach every one.
fn resolved(ws: &Ws, pool: &str, n: usize) -> BTreeSet<(String, String, i64, String, String)> {
    (0..n)
        .map(|i| {
            let (_, p) = ws.resolve_ok(pool, &format!("acct{i}"));
            let s = |k: &str| p[k].as_str().unwrap_or("").to_owned();
            (
                s("scheme"),
                s("host"),
                p["port"].as_i64().unwrap(),
                s("username"),
                s("password"),
            )
        })
        .collect()
}

fn set(v: &[(&str, &str, i64, &str, &str)]) -> BTreeSet<(String, String, i64, String, String)> {
    v.iter()
        .map(|(a, b, c, d, e)| {
            (
                a.to_string(),
                b.to_string(),
                *c,
                d.to_string(),
                e.to_string(),
            )
        })
        .collect()
}

#[test]
fn import_reads_every_vendor_format_and_the_sessions_resolve_and_a_rerun_adds_nothing() {
    let srv = Server::start();
    let (ws, pool, provider) = target(&srv);
    let dir = TempDir::new("import");
    let list = "\u{feff}# exported 2026-11-23\r\n\
                \r\n\
                203.0.113.1:8080\r\n\
                  203.0.113.2:3128:alice:pa:ss:word  \r\n\
                bob:b@b-pass@gw.example.com:3129\n\
                http://carol:c%40rol%3Apw@203.0.113.4:80\n\
                https://h5.example.com:443/\n\
                socks4://203.0.113.6:1080\n\
                socks5://d%C3%A9d:x@[2001:db8::7]:1081\n\
                socks5h://eve:pw@s.example.com:1082\n\
                [2001:db8::9]:8080:frank:fpw\n\
                # trailing comment\n";
    let file = write_list(&dir, list);
    let out = cli_ok(&srv.dir, &args(&ws, &pool, &provider, &[&file]));
    assert_eq!(out.trim(), "imported 9, already there 0, lines 9");
    // Counted for /metrics like sessions created over the API.
    assert_eq!(crate::metrics::session_gauges(&srv), (9, 0, 0));
    let expected = set(&[
        ("http", "203.0.113.1", 8080, "", ""),
        ("http", "203.0.113.2", 3128, "alice", "pa:ss:word"),
        ("http", "gw.example.com", 3129, "bob", "b@b-pass"),
        ("http", "203.0.113.4", 80, "carol", "c@rol:pw"),
        ("https", "h5.example.com", 443, "", ""),
        ("socks4", "203.0.113.6", 1080, "", ""),
        ("socks5", "2001:db8::7", 1081, "d\u{e9}d", "x"),
        ("socks5h", "s.example.com", 1082, "eve", "pw"),
        ("http", "2001:db8::9", 8080, "frank", "fpw"),
    ]);
    assert_eq!(resolved(&ws, &pool, 9), expected);

    // The same list again, and with a changed password: nothing new.
    let out = cli_ok(&srv.dir, &args(&ws, &pool, &provider, &[&file]));
    assert_eq!(out.trim(), "imported 0, already there 9, lines 9");
    let file = write_list(&dir, "203.0.113.2:3128:alice:new-password\n");
    let out = cli_ok(&srv.dir, &args(&ws, &pool, &provider, &[&file]));
    assert_eq!(out.trim(), "imported 0, already there 1, lines 1");
    assert_eq!(session_count(&ws, &pool), 9);
}

#[test]
fn import_with_a_bad_line_imports_nothing_and_never_echoes_a_password() {
    let srv = Server::start();
    let (ws, pool, provider) = target(&srv);
    let dir = TempDir::new("import");
    let list = "203.0.113.1:8080:u:Secret-One\n\
                \n\
                203.0.113.2:70000:u:Secret-Two\n\
                ftp://u:Secret-Three@203.0.113.3:21\n\
                bad host:80:u:Secret-Four\n\
                203.0.113.5\n\
                203.0.113.6:81:u:Secret\u{1}Five\n";
    let file = write_list(&dir, list);
    let out = cli(&srv.dir, &args(&ws, &pool, &provider, &[&file]), &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "line 3: port must be from 1 to 65535",
        "line 4: scheme must be one of",
        "line 5: host must be a DNS name",
        "line 6: expected host:port",
        "line 7: password must be at most 512 characters without control characters",
        "5 bad line(s); nothing was imported",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing from {stderr}");
    }
    assert!(!stderr.contains("line 1:"), "{stderr}");
    assert!(
        !stderr.contains("Secret"),
        "a password was echoed: {stderr}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(session_count(&ws, &pool), 0);
}

#[test]
fn import_dry_run_writes_nothing_and_stdin_is_read() {
    let srv = Server::start();
    let (ws, pool, provider) = target(&srv);
    let list = "203.0.113.1:8080:u:SecretPw\n203.0.113.1:8080:u:SecretPw\nh.example.com:80\n";
    let out = import_stdin(&srv.dir, &args(&ws, &pool, &provider, &["--dry-run"]), list);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("\thttp://u@203.0.113.1:8080\tnew\n")
            && stdout.contains("\thttp://u@203.0.113.1:8080\talready there\n")
            && stdout.contains("\thttp://h.example.com:80\tnew\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("would import 2, already there 1, lines 3\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("SecretPw"));
    assert_eq!(session_count(&ws, &pool), 0);

    let out = import_stdin(&srv.dir, &args(&ws, &pool, &provider, &["-"]), list);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "imported 2, already there 1, lines 3\n"
    );
    assert_eq!(session_count(&ws, &pool), 2);
}

#[test]
fn import_runs_in_batches_of_max_bulk_items() {
    let srv = Server::start();
    let (ws, pool, provider) = target(&srv);
    let list: String = (1..=7).map(|i| format!("203.0.113.{i}:8080\n")).collect();
    let a = args(&ws, &pool, &provider, &[]);
    let first_three: String = list.lines().take(3).map(|l| format!("{l}\n")).collect();
    let out = import_stdin(&srv.dir, &a, &first_three);
    assert!(out.status.success());
    let mut with_stdin = a.clone();
    with_stdin.push("-");
    let out = import_stdin_with(
        &srv.dir,
        &with_stdin,
        &list,
        &[("PROXYPLANE_MAX_BULK_ITEMS", "2")],
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "imported 4, already there 3, lines 7\n"
    );
    assert_eq!(session_count(&ws, &pool), 7);
}

#[test]
fn import_names_an_unknown_workspace_pool_or_provider() {
    let srv = Server::start();
    let (ws, pool, provider) = target(&srv);
    let dir = TempDir::new("import");
    let file = write_list(&dir, "203.0.113.1:8080\n");
    let other = random_id();
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec![
                "import",
                "--workspace",
                &other,
                "--pool",
                &pool,
                "--provider",
                &provider,
                &file,
            ],
            "no workspace with id",
        ),
        (
            args(&ws, &other, &provider, &[&file]),
            "pool does not exist",
        ),
        (
            args(&ws, &pool, &other, &[&file]),
            "provider does not exist",
        ),
        (
            args(&ws, &pool, &other, &["--dry-run", &file]),
            "provider does not exist",
        ),
        (
            vec![
                "import",
                "--workspace",
                "nope",
                "--pool",
                &pool,
                "--provider",
                &provider,
                &file,
            ],
            "--workspace \"nope\" is not an id",
        ),
    ];
    for (a, needle) in cases {
        let out = cli(&srv.dir, &a, &[]);
        assert!(!out.status.success(), "{a:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{a:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(session_count(&ws, &pool), 0);

    // A data dir without a database is refused, as the other offline
    // commands refuse it.
    let empty = TempDir::new("import-empty");
    let out = cli(&empty.path, &args(&ws, &pool, &provider, &[&file]), &[]);
    assert!(!out.status.success());
    assert!(!empty.join("proxyplane.db").exists());
}
