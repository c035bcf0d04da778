//! Start-up and the offline commands around the database file: `backup`
//! under write load, `restore`, refusals that change nothing (a missing
//! database, a newer schema, a read-only data dir, a loose master key file),
//! the first ADMIN key's crash window, the `synchronous` setting and
//! Litestream's tables.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// `proxyplane --data-dir DIR ARGS...`, not yet run.
fn pp(dir: &Path, args: &[&str]) -> Command {
    let mut c = command();
    c.arg("--data-dir").arg(dir).args(args);
    c
}

/// Runs a command to completion; None (after killing it) if it is still
/// running after `limit`.
fn run_bounded(mut c: Command, limit: Duration) -> Option<Output> {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a failed run with a sentence on stderr containing every needle.
#[track_caller]
fn assert_refused(out: &Output, needles: &[&str]) {
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a refusal, got success; stdout {:?} stderr {err:?}",
        text(&out.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

/// File names in a dir, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn count(db: &Path, table: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn integrity(db: &Path) -> String {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// A workspace with a GENERIC provider, a pool and `n` static sessions with
/// sealed passwords.
struct Seeded {
    ws: String,
    pool: String,
    provider: String,
}

fn seed(s: &Server, n: usize, pad: usize) -> Seeded {
    let ws = s.create_workspace("seeded");
    let r = s.rpc(
        "ConnectProvider",
        &s.admin,
        json!({ "workspaceId": ws, "type": "PROVIDER_TYPE_GENERIC", "name": "vendor" }),
    );
    r.ok();
    let provider = id_of(&r.json["provider"]);
    let r = s.rpc(
        "CreatePool",
        &s.admin,
        json!({ "workspaceId": ws, "name": "pool" }),
    );
    r.ok();
    let pool = id_of(&r.json["pool"]);
    let sessions: Vec<Value> = (0..n)
        .map(|i| {
            // Long logins make a few thousand sessions megabytes of pages.
            json!({ "host": "203.0.113.7", "port": 1000 + i % 50000,
                    "username": format!("user-{i}-{}", "u".repeat(pad)),
                    "password": format!("secret-{i}-{}", "p".repeat(pad)) })
        })
        .collect();
    for chunk in sessions.chunks(1500) {
        s.rpc(
            "BulkCreateSessions",
            &s.admin,
            json!({ "workspaceId": ws, "poolId": pool, "providerId": provider, "sessions": chunk }),
        )
        .ok();
    }
    Seeded { ws, pool, provider }
}

/// A server on a data dir the test owns (so it outlives the server).
fn start_on(dir: &Path) -> Server {
    Launch::default().data_dir(dir).start()
}

/// Stops a server with SIGTERM and asserts a clean exit.
fn stop(mut s: Server) {
    // One answered request first: the server installs its signal handlers
    // only once it serves, after printing its address.
    assert_eq!(s.get("/healthz", &[]).status, 200);
    s.sigterm();
    let status = s.wait_exit(Duration::from_secs(15)).expect("exited");
    assert!(status.success(), "{status:?}\n{}", s.stderr());
}

/// A fresh data dir holding a copy of `from`'s master key (mode 0600).
fn dir_with_key_of(parent: &TempDir, from: &Path) -> PathBuf {
    let dir = parent.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("master.key");
    std::fs::copy(from.join("master.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

fn workspace_names(s: &Server, key: &str) -> Vec<String> {
    let r = s.rpc("ListWorkspaces", key, json!({ "pageSize": 1000 }));
    r.ok();
    let mut v: Vec<String> = r.json["workspaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn backup_finishes_under_continuous_writes_with_a_whole_copy() {
    let s = Server::start();
    let seeded = seed(&s, 6000, 480);
    let stop_flag = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    // Two clients committing back to back: the copy of a few megabytes meets
    // many commits, like a large database under the audit's 10-90 writes/s.
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (addr, admin) = (s.addr, s.admin.clone());
            let (stop_flag, written) = (stop_flag.clone(), written.clone());
            let body = json!({ "workspaceId": seeded.ws, "poolId": seeded.pool,
                               "providerId": seeded.provider, "host": "198.51.100.1",
                               "port": 8080, "password": "load" });
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr).unwrap();
                while !stop_flag.load(Ordering::Relaxed) {
                    conn.rpc("CreateSession", &admin, &body).ok();
                    written.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    while written.load(Ordering::SeqCst) < 20 {
        std::thread::sleep(Duration::from_millis(10));
    }

    let dest = TempDir::new("backup-load");
    let file = dest.join("copy.db");
    let before = written.load(Ordering::SeqCst) as i64;
    let out = run_bounded(
        pp(&s.dir, &["backup", file.to_str().unwrap()]),
        Duration::from_secs(30),
    );
    let after = written.load(Ordering::SeqCst) as i64;
    stop_flag.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("the writers saw only successes");
    }
    let Some(out) = out else {
        panic!(
            "backup did not finish within 30 s under write load; it left {:?} in the destination",
            names(&dest.path)
        );
    };
    assert!(out.status.success(), "backup failed: {}", text(&out.stderr));
    assert!(after > before, "no writes happened while the backup ran");
    // Only the finished file: no temp file, no journal.
    assert_eq!(names(&dest.path), vec!["copy.db".to_string()]);
    assert_eq!(integrity(&file), "ok");
    let copied = count(&file, "sessions");
    assert!(
        copied >= 6000 + before,
        "the copy has {copied} sessions; {} existed when it started",
        6000 + before
    );
    // No progress bar when stderr is not a terminal.
    assert!(!text(&out.stderr).contains('%'), "{}", text(&out.stderr));
}

#[test]
fn offline_commands_refuse_a_missing_database_and_create_nothing() {
    let t = TempDir::new("missing");
    let absent = t.join("no-such-dir");
    let empty = t.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let target = t.join("backup.db");
    let target_s = target.to_str().unwrap().to_owned();
    let commands: Vec<Vec<&str>> = vec![
        vec!["check"],
        vec!["backup", &target_s],
        vec!["keys", "list"],
        vec!["keys", "create", "--admin"],
        vec!["workspaces", "list"],
        vec!["workspaces", "create", "typo"],
    ];
    for dir in [&absent, &empty] {
        let db = dir.join("proxyplane.db");
        for args in &commands {
            let out = cli(dir, args, &[]);
            assert_refused(&out, &[&db.display().to_string(), "proxyplane serve"]);
            assert!(!text(&out.stdout).contains("pp_"), "{args:?}");
        }
    }
    assert!(!absent.exists(), "a command created the data dir");
    assert!(names(&empty).is_empty(), "{:?}", names(&empty));
    assert!(!target.exists(), "backup wrote a file from nothing");
}

#[test]
fn restore_brings_back_a_backup_that_check_and_serve_accept() {
    let s = Server::start();
    let seeded = seed(&s, 20, 0);
    let (ws2, viewer) = s.workspace_with_key("restored", "VIEWER");
    let backups = TempDir::new("restore-src");
    let file = backups.join("pp.db");
    cli_ok(&s.dir, &["backup", file.to_str().unwrap()]);
    s.create_workspace("after the backup");

    let target = TempDir::new("restore-dst");
    let dir = dir_with_key_of(&target, &s.dir);
    let out = cli_ok(&dir, &["restore", file.to_str().unwrap()]);
    assert!(out.contains("proxyplane.db"), "{out}");
    assert_eq!(names(&dir), vec!["master.key", "proxyplane.db"]);
    let check = cli_ok(&dir, &["check"]);
    assert!(check.contains("database: ok"), "{check}");
    assert!(
        check.contains("master key: ok (2 data keys open)"),
        "{check}"
    );

    let s2 = start_on(&dir);
    assert_eq!(workspace_names(&s2, &s.admin), vec!["restored", "seeded"]);
    s2.rpc("GetWorkspace", &viewer, json!({ "workspaceId": ws2 }))
        .ok();
    // A sealed password opens under the restored data keys.
    let r = s2.rpc(
        "ResolveProxy",
        &s.admin,
        json!({ "workspaceId": seeded.ws, "poolId": seeded.pool, "accountName": "bot-1" }),
    );
    r.ok();
    assert!(
        r.json["proxy"]["password"]
            .as_str()
            .unwrap()
            .starts_with("secret-"),
        "{}",
        r.text()
    );
}

#[test]
fn restore_refuses_what_it_cannot_safely_put_in_place() {
    let t = TempDir::new("restore-refusals");
    let live = t.join("live");
    let s = start_on(&live);
    s.create_workspace("live");
    let file = t.join("good.db");
    let file_s = file.to_str().unwrap().to_owned();
    cli_ok(&live, &["backup", &file_s]);
    let live_db = live.join("proxyplane.db");

    // An existing database is replaced only with --force, and never while
    // a server has it open.
    let out = cli(&live, &["restore", &file_s], &[]);
    assert_refused(&out, &["--force"]);
    let out = cli(&live, &["restore", "--force", &file_s], &[]);
    assert_refused(&out, &["in use", "stop"]);
    assert_eq!(workspace_names(&s, &s.admin), vec!["live"]);

    // A missing, damaged or truncated backup, or one the master key does not
    // open, is refused and leaves nothing behind in a fresh data dir.
    let garbage = t.join("garbage.db");
    std::fs::write(&garbage, vec![0x5au8; 8192]).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let truncated = t.join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let fresh_parent = TempDir::new("restore-fresh");
    let fresh = dir_with_key_of(&fresh_parent, &live);
    let other_key_parent = TempDir::new("restore-otherkey");
    let other_key = other_key_parent.join("data");
    std::fs::create_dir_all(&other_key).unwrap();
    let key = other_key.join("master.key");
    std::fs::write(&key, format!("{}\n", b64(&[7u8; 32]))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let missing = t.join("missing.db");
    let cases: Vec<(&Path, &Path, &str)> = vec![
        (&fresh, &missing, "no backup"),
        (&fresh, &garbage, "not a proxyplane database"),
        (&fresh, &truncated, "damaged"),
        (&other_key, &file, "master key"),
    ];
    for (dir, backup, why) in cases {
        let before = names(dir);
        let out = cli(dir, &["restore", backup.to_str().unwrap()], &[]);
        assert_refused(&out, &[why]);
        assert_eq!(names(dir), before, "{why}: the data dir changed");
    }

    // Stopped (uncleanly: its WAL stays), the live dir takes the backup with
    // --force; the stale WAL is not applied to it.
    s.create_workspace("not in the backup");
    drop(s);
    assert!(
        live.join("proxyplane.db-wal").exists(),
        "precondition: a WAL"
    );
    cli_ok(&live, &["restore", "--force", &file_s]);
    assert!(!live.join("proxyplane.db-wal").exists());
    assert!(!live.join("proxyplane.db-shm").exists());
    assert_eq!(integrity(&live_db), "ok");
    let admin = std::fs::read_to_string(live.join("admin.key")).unwrap();
    let s = start_on(&live);
    assert_eq!(workspace_names(&s, admin.trim()), vec!["live"]);
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
    let t = TempDir::new("newer");
    let dir = t.join("data");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("proxyplane.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = DELETE;
             CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);
             CREATE TABLE future (x);
             PRAGMA user_version = 99;",
        )
        .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let (status, err) = Launch::default().data_dir(&dir).run_to_exit();
    assert!(!status.success());
    assert!(err.contains("newer proxyplane"), "{err}");
    for args in [&["check"][..], &["keys", "list"][..]] {
        assert_refused(&cli(&dir, args, &[]), &["newer proxyplane"]);
    }
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the file was rewritten"
    );
    assert_eq!(names(&dir), vec!["proxyplane.db"], "files were added");
    let c = rusqlite::Connection::open(&db).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

#[test]
fn a_read_only_data_dir_is_refused_at_start() {
    // Permission bits do not stop root: a read-only bind mount in a private
    // mount namespace does. Needs root (CI runs the tests as root).
    if !is_root() {
        eprintln!("skipped: a read-only bind mount needs root");
        return;
    }
    let t = TempDir::new("readonly");
    let dir = t.join("data");
    let s = start_on(&dir);
    s.create_workspace("before the crash");
    // An unclean stop: the WAL and its index stay beside the database.
    drop(s);
    assert!(
        dir.join("proxyplane.db-wal").exists(),
        "precondition: a WAL"
    );

    let mut c = Command::new("unshare");
    for (k, _) in std::env::vars() {
        if k.starts_with("PROXYPLANE_") {
            c.env_remove(k);
        }
    }
    c.args([
        "-m",
        "sh",
        "-c",
        r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" || exit 96
           if touch "$0/probe" 2>/dev/null; then exit 97; fi
           exec "$@""#,
    ])
    .arg(&dir)
    .arg(BIN)
    .arg("--data-dir")
    .arg(&dir)
    .args(["serve", "--listen", "127.0.0.1:0"]);
    let out = run_bounded(c, Duration::from_secs(15))
        .expect("the server kept running on a read-only data dir");
    assert_ne!(
        out.status.code(),
        Some(96),
        "mount failed: {}",
        text(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(97), "the bind mount was writable");
    assert!(
        !text(&out.stdout).contains("listening on"),
        "it started: {}",
        text(&out.stdout)
    );
    assert_refused(&out, &["read-only"]);
    // Writable again, it starts and has its data.
    let admin = std::fs::read_to_string(dir.join("admin.key")).unwrap();
    let s = start_on(&dir);
    assert_eq!(workspace_names(&s, admin.trim()), vec!["before the crash"]);
}

#[test]
fn a_master_key_file_open_to_group_or_others_is_refused() {
    let t = TempDir::new("keymode");
    let dir = t.join("data");
    stop(start_on(&dir));
    let key = dir.join("master.key");
    let want = format!("chmod 600 {}", key.display());
    for mode in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let (status, err) = Launch::default().data_dir(&dir).run_to_exit();
        assert!(!status.success(), "started with mode {mode:o}");
        assert!(err.contains(&want), "mode {mode:o}: {err}");
    }
    // The environment variable is not a file: no mode to check.
    let secret = std::fs::read_to_string(&key).unwrap();
    let s = Launch::default()
        .data_dir(&dir)
        .env("PROXYPLANE_MASTER_KEY", secret.trim())
        .start();
    stop(s);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    stop(start_on(&dir));
}

#[test]
fn a_failed_admin_key_write_is_retried_on_the_next_start() {
    let t = TempDir::new("adminkey");
    let dir = t.join("data");
    // A directory where admin.key goes makes writing it fail.
    std::fs::create_dir_all(dir.join("admin.key")).unwrap();
    let (status, err) = Launch::default().data_dir(&dir).run_to_exit();
    assert!(!status.success(), "started without writing admin.key");
    assert!(err.contains("admin.key"), "{err}");
    std::fs::remove_dir(dir.join("admin.key")).unwrap();
    // SQLite's -wal/-shm may outlive a refused start (the pool's helper
    // thread can still hold a connection at exit); no admin.key, nothing else.
    let files: Vec<String> = names(&dir)
        .into_iter()
        .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
        .collect();
    assert_eq!(files, vec!["master.key", "proxyplane.db"]);

    let s = start_on(&dir);
    assert!(s.admin.starts_with("pp_"), "no admin.key after a restart");
    s.create_workspace("a way in");
    let admins = cli_ok(&dir, &["keys", "list"])
        .lines()
        .filter(|l| l.split('\t').nth(2) == Some("ADMIN"))
        .count();
    assert_eq!(admins, 1, "the failed start left a key nobody holds");
}

#[test]
fn synchronous_full_is_applied_and_a_bad_value_is_refused() {
    let t = TempDir::new("sync");
    let dir = t.join("data");
    stop(start_on(&dir));
    let out = cli_ok(&dir, &["check"]);
    assert!(out.contains("synchronous=normal"), "{out}");
    let out = cli(&dir, &["check"], &[("PROXYPLANE_SYNCHRONOUS", "full")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("synchronous=full"), "{out:?}");
    let s = Launch::default()
        .data_dir(&dir)
        .config("synchronous = \"full\"\n")
        .start();
    s.create_workspace("durable");
    stop(s);

    let (status, err) = Launch::default()
        .data_dir(&dir)
        .env("PROXYPLANE_SYNCHRONOUS", "sometimes")
        .run_to_exit();
    assert!(!status.success());
    for needle in [
        "synchronous",
        "PROXYPLANE_SYNCHRONOUS",
        "\"normal\"",
        "\"full\"",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn litestream_tables_are_tolerated() {
    let t = TempDir::new("litestream");
    let dir = t.join("data");
    let s = start_on(&dir);
    s.create_workspace("replicated");
    let admin = s.admin.clone();
    stop(s);
    {
        let c = rusqlite::Connection::open(dir.join("proxyplane.db")).unwrap();
        c.execute_batch(
            "CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
             CREATE TABLE _litestream_lock (id INTEGER);
             INSERT INTO _litestream_seq VALUES (1, 42);",
        )
        .unwrap();
    }
    let s = start_on(&dir);
    assert_eq!(workspace_names(&s, &admin), vec!["replicated"]);
    s.create_workspace("with litestream");
    let out = cli_ok(&dir, &["check"]);
    assert!(out.contains("database: ok"), "{out}");
    let file = t.join("copy.db");
    cli_ok(&dir, &["backup", file.to_str().unwrap()]);
    stop(s);

    let target = TempDir::new("litestream-restore");
    let restored = dir_with_key_of(&target, &dir);
    cli_ok(&restored, &["restore", file.to_str().unwrap()]);
    cli_ok(&restored, &["check"]);
    assert_eq!(count(&restored.join("proxyplane.db"), "_litestream_seq"), 1);
    let s = start_on(&restored);
    assert_eq!(
        workspace_names(&s, &admin),
        vec!["replicated", "with litestream"]
    );
}
