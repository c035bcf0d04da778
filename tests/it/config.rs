//! Configuration layers (defaults < file < env < flags), validation messages
//! that name the key, `check`, and refusing a wrong master key or a database
//! from a newer binary.

use std::path::Path;
use std::process::Output;

use crate::common::*;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `proxyplane --data-dir DIR [--config FILE] check` with extra env.
fn check(dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut args: Vec<&str> = Vec::new();
    let cfg;
    if let Some(c) = config {
        cfg = c.to_string_lossy().into_owned();
        args.extend(["--config", cfg.as_str()]);
    }
    args.push("check");
    cli(dir, &args, env)
}

#[test]
fn listen_precedence_is_file_then_env_then_flag() {
    let (p_file, p_env) = (free_port(), free_port());
    let file = format!("listen = \"127.0.0.1:{p_file}\"\n");

    let s = Launch::default().config(&file).listen(None).start();
    assert_eq!(
        s.listening_line,
        format!("listening on 127.0.0.1:{p_file}"),
        "the file beats the default"
    );
    drop(s);

    let env_addr = format!("127.0.0.1:{p_env}");
    let s = Launch::default()
        .config(&file)
        .listen(None)
        .env("PROXYPLANE_LISTEN", &env_addr)
        .start();
    assert_eq!(
        s.listening_line,
        format!("listening on {env_addr}"),
        "env beats the file"
    );
    drop(s);

    let s = Launch::default()
        .config(&file)
        .env("PROXYPLANE_LISTEN", &env_addr)
        .listen(Some("127.0.0.1:0"))
        .start();
    let port = s.addr.port();
    assert!(
        port != p_file && port != p_env && port != 0,
        "the flag beats env: {}",
        s.listening_line
    );
    assert_eq!(s.addr.ip().to_string(), "127.0.0.1");
}

#[test]
fn other_keys_follow_the_same_layers() {
    // The file sets a tiny body limit; env raises it; both visible through
    // what the server accepts.
    let small = "max_body_bytes = 1024\n";
    let s = Launch::default().config(small).start();
    let big = serde_json::json!({ "name": "x".repeat(150), "pad": "p".repeat(1500) }).to_string();
    let auth = bearer(&s.admin);
    let h = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    s.post_raw(&format!("{SVC}CreateWorkspace"), &h, big.as_bytes())
        .assert_error(429, "resource_exhausted");
    drop(s);
    let s = Launch::default()
        .config(small)
        .env("PROXYPLANE_MAX_BODY_BYTES", "65536")
        .start();
    let auth = bearer(&s.admin);
    let h = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let r = s.post_raw(&format!("{SVC}CreateWorkspace"), &h, big.as_bytes());
    assert_ne!(r.status, 429, "env did not override the file: {}", r.text());
}

#[test]
fn config_errors_name_the_key_and_fail() {
    let dir = TempDir::new("cfg");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown key",
            "listen = \"127.0.0.1:0\"\nbogus_setting = 1\n",
            &["bogus_setting"],
        ),
        ("string for a number", "workers = \"many\"\n", &["workers"]),
        (
            "negative number",
            "max_body_bytes = -1\n",
            &["max_body_bytes"],
        ),
        ("bad address", "listen = \"nowhere\"\n", &["listen"]),
        ("bad log level", "log_level = \"loud\"\n", &["log_level"]),
        (
            "number for a bool",
            "metrics_require_key = 1\n",
            &["metrics_require_key"],
        ),
        ("not TOML", "listen = \n", &["TOML"]),
    ];
    for (i, (what, toml, needles)) in cases.iter().enumerate() {
        let file = dir.join(&format!("config-{i}.toml"));
        std::fs::write(&file, toml).unwrap();
        let out = check(&dir.join(&format!("data-{i}")), Some(&file), &[]);
        assert!(!out.status.success(), "{what}: check succeeded");
        let err = stderr(&out);
        // No --listen flag: it would override a bad `listen` in the file.
        let (status, serve_err) = Launch::default().config(toml).listen(None).run_to_exit();
        assert!(!status.success(), "{what}: serve succeeded");
        for n in *needles {
            assert!(
                err.contains(n),
                "{what}: check's stderr does not name {n}: {err}"
            );
            assert!(
                serve_err.contains(n),
                "{what}: serve's stderr does not name {n}: {serve_err}"
            );
        }
    }
    let missing = dir.join("no-such-file.toml");
    let out = check(&dir.join("d"), Some(&missing), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no-such-file.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn env_errors_name_the_variable_and_fail() {
    let dir = TempDir::new("env");
    let cases: &[(&str, &str, &str)] = &[
        ("PROXYPLANE_FOO", "1", "PROXYPLANE_FOO"),
        ("PROXYPLANE_LISTN", "127.0.0.1:0", "PROXYPLANE_LISTN"),
        ("PROXYPLANE_WORKERS", "many", "PROXYPLANE_WORKERS"),
        (
            "PROXYPLANE_RATE_LIMIT_PER_SECOND",
            "-3",
            "rate_limit_per_second",
        ),
        ("PROXYPLANE_LOG_FORMAT", "xml", "log_format"),
    ];
    for (k, v, needle) in cases {
        let out = check(&dir.path, None, &[(k, v)]);
        assert!(!out.status.success(), "{k}={v}: check succeeded");
        assert!(stderr(&out).contains(needle), "{k}={v}: {}", stderr(&out));
        let (status, err) = Launch::default().env(k, v).run_to_exit();
        assert!(!status.success(), "{k}={v}: serve succeeded");
        assert!(err.contains(needle), "{k}={v}: {err}");
    }
}

#[test]
fn check_passes_on_a_good_setup() {
    let dir = TempDir::new("check");
    let data = dir.join("data");
    // A fresh dir has no database to check: only `serve` makes one.
    let out = check(&data, None, &[]);
    assert!(!out.status.success(), "check created a database");
    // After a server has used the data dir.
    let s = Launch::default().data_dir(&data).start();
    s.create_workspace("something");
    let out = check(&data, None, &[]);
    assert!(out.status.success(), "while serving: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok"), "{text}");
    // With a config file that sets every documented key.
    let file = dir.join("full.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nmaster_key_file = \"\"\nworkers = 2\nrate_limit_per_second = 10.5\n\
             rate_limit_burst = 20\nmax_body_bytes = 1048576\nmax_bulk_items = 100\nmetrics_require_key = true\n\
             log_level = \"debug\"\nlog_format = \"json\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = cli(&data, &["--config", file.to_str().unwrap(), "check"], &[]);
    assert!(out.status.success(), "full config: {}", stderr(&out));
}

#[test]
fn a_wrong_master_key_is_refused() {
    let dir = TempDir::new("mk");
    let data = dir.join("data");
    {
        let s = Launch::default().data_dir(&data).start();
        s.create_workspace("sealed");
    }
    let other = b64(&[7u8; 32]);
    let env = [("PROXYPLANE_MASTER_KEY", other.as_str())];
    let out = check(&data, None, &env);
    assert!(!out.status.success(), "check accepted a wrong master key");
    let err = stderr(&out);
    assert!(
        err.contains("master key") && err.contains("does not match"),
        "{err}"
    );
    assert!(!err.contains(&other), "the message echoes the key: {err}");
    let (status, err) = Launch::default()
        .data_dir(&data)
        .env("PROXYPLANE_MASTER_KEY", &other)
        .run_to_exit();
    assert!(!status.success());
    assert!(err.contains("master key"), "{err}");
    // A malformed one is refused with a clear message as well.
    let out = check(&data, None, &[("PROXYPLANE_MASTER_KEY", "short")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("PROXYPLANE_MASTER_KEY"),
        "{}",
        stderr(&out)
    );
    // The right key from the environment works.
    let file_key = std::fs::read_to_string(data.join("master.key")).unwrap();
    let out = check(&data, None, &[("PROXYPLANE_MASTER_KEY", file_key.trim())]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A missing master.key on a database that needs it is refused.
    std::fs::rename(data.join("master.key"), dir.join("saved.key")).unwrap();
    let out = check(&data, None, &[]);
    assert!(
        !out.status.success(),
        "check made up a new master key for an existing database"
    );
    assert!(stderr(&out).contains("master"), "{}", stderr(&out));
}

#[test]
fn a_database_from_a_newer_binary_is_refused() {
    let dir = TempDir::new("newer");
    let data = dir.join("data");
    drop(Launch::default().data_dir(&data).start());
    {
        let c = rusqlite::Connection::open(data.join("proxyplane.db")).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let out = check(&data, None, &[]);
    assert!(!out.status.success(), "check accepted user_version 99");
    let err = stderr(&out);
    assert!(err.contains("99") && err.contains("newer"), "{err}");
    let (status, err) = Launch::default().data_dir(&data).run_to_exit();
    assert!(!status.success());
    assert!(err.contains("newer"), "{err}");
    // Nothing was changed: the version is still 99.
    let c = rusqlite::Connection::open(data.join("proxyplane.db")).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
}

#[test]
fn data_dir_and_key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.dir.join("admin.key")), 0o600, "admin.key");
    assert_eq!(mode(&s.dir.join("master.key")), 0o600, "master.key");
    assert_eq!(
        mode(&s.dir) & 0o077,
        0,
        "data dir is open to others: {:o}",
        mode(&s.dir)
    );
    // admin.key holds exactly the secret, one line, and it is not logged.
    let text = std::fs::read_to_string(s.dir.join("admin.key")).unwrap();
    assert_eq!(text, format!("{}\n", s.admin));
    assert!(
        s.admin.starts_with("pp_") && s.admin.len() >= 46,
        "{}",
        s.admin
    );
    assert!(
        s.wait_log("admin.key", IO_TIMEOUT),
        "the path of admin.key is logged: {}",
        s.stderr()
    );
    assert!(
        !s.stderr().contains(&s.admin),
        "the ADMIN secret was logged"
    );
}

#[test]
fn admin_key_is_written_on_first_start_only() {
    let dir = TempDir::new("first");
    let data = dir.join("data");
    let first = {
        let s = Launch::default().data_dir(&data).start();
        s.admin.clone()
    };
    std::fs::remove_file(data.join("admin.key")).unwrap();
    let s = Launch::default().data_dir(&data).start();
    assert!(
        !data.join("admin.key").exists(),
        "a second ADMIN key was made on a used database"
    );
    s.rpc(
        "CreateWorkspace",
        &first,
        serde_json::json!({ "name": "still admin" }),
    )
    .ok();
}

#[test]
fn data_dir_follows_the_layers_and_config_may_come_from_the_environment() {
    let dir = TempDir::new("layers");
    let (d_file, d_env, d_flag) = (
        dir.join("from-file"),
        dir.join("from-env"),
        dir.join("from-flag"),
    );
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, format!("data_dir = {:?}\n", d_file.to_str().unwrap())).unwrap();
    let run = |env: &[(&str, &str)], flag: Option<&Path>| {
        let mut c = command();
        if let Some(f) = flag {
            c.arg("--data-dir").arg(f);
        }
        c.args(["workspaces", "create", "layered"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let cfg_s = cfg.to_str().unwrap();
    // Only `serve` creates a database; the counts below tell the dirs apart.
    for d in [&d_file, &d_env, &d_flag] {
        drop(Launch::default().data_dir(d).start());
    }
    // The file named by PROXYPLANE_CONFIG sets data_dir...
    run(&[("PROXYPLANE_CONFIG", cfg_s)], None);
    assert!(
        d_file.join("proxyplane.db").exists(),
        "file's data_dir unused"
    );
    // ...PROXYPLANE_DATA_DIR overrides it...
    run(
        &[
            ("PROXYPLANE_CONFIG", cfg_s),
            ("PROXYPLANE_DATA_DIR", d_env.to_str().unwrap()),
        ],
        None,
    );
    assert!(
        d_env.join("proxyplane.db").exists(),
        "env's data_dir unused"
    );
    // ...and --data-dir overrides both.
    run(
        &[
            ("PROXYPLANE_CONFIG", cfg_s),
            ("PROXYPLANE_DATA_DIR", d_env.to_str().unwrap()),
        ],
        Some(&d_flag),
    );
    assert!(
        d_flag.join("proxyplane.db").exists(),
        "flag's data_dir unused"
    );
    let count = |d: &Path| cli_ok(d, &["workspaces", "list"]).lines().count();
    assert_eq!((count(&d_file), count(&d_env), count(&d_flag)), (1, 1, 1));
}

#[test]
fn master_key_file_may_live_outside_the_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mkf");
    let key = dir.join("keys").join("master.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let toml = format!("master_key_file = {:?}\n", key.to_str().unwrap());
    let data = dir.join("data");
    let s = Launch::default().data_dir(&data).config(&toml).start();
    s.create_workspace("keyed elsewhere");
    assert!(key.exists(), "master_key_file was not created");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !data.join("master.key").exists(),
        "a master.key was made in the data dir as well"
    );
    drop(s);
    // Without the setting the database is refused (its key is elsewhere).
    let out = check(&data, None, &[]);
    assert!(!out.status.success(), "check made up a new master key");
}
