//! proxyplane: flags → config → open store → serve (or run an offline
//! command). `main()` → `run()` → exit code.

mod api;
mod assign;
mod auth;
mod cli;
mod config;
mod connect;
mod crypto;
mod error;
mod ids;
mod log;
mod metrics;
mod pb;
mod ratelimit;
mod rpc;
mod server;
mod store;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;

use crate::auth::Role;
use crate::cli::{Cli, Command, KeysCommand, WorkspacesCommand};
use crate::config::{Config, Overrides};
use crate::crypto::{Keyring, MasterKey};
use crate::ids::{ApiKeyId, WorkspaceId};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "proxyplane: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let mut overrides = Overrides {
        config_file: cli.config.clone(),
        flags: Vec::new(),
    };
    if let Some(d) = &cli.data_dir {
        overrides.flags.push(("data_dir", d.clone()));
    }
    if let Command::Serve { listen: Some(l) } = &cli.command {
        overrides.flags.push(("listen", l.clone()));
    }
    let config = config::load(&overrides, &env)?;
    log::init(config.log_level, config.log_format);
    let master_env = env.get("PROXYPLANE_MASTER_KEY").map(String::as_str);

    match cli.command {
        Command::Serve { .. } => serve(config, master_env),
        Command::Check => check(&config, master_env),
        Command::Backup { file } => {
            let (pool, _) = open(&config, master_env)?;
            let conn = pool.get().map_err(|e| e.to_string())?;
            if file.exists() {
                return Err(format!(
                    "{} exists already; choose a new file",
                    file.display()
                ));
            }
            conn.backup(rusqlite::MAIN_DB, &file, None)
                .map_err(|e| format!("backup to {} failed: {e}", file.display()))?;
            println!("{}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(k) => keys(&config, master_env, k),
        Command::Workspaces(w) => workspaces(&config, master_env, w),
    }
}

/// Opens the data dir, the database and the master key (creating what a
/// first start needs) and checks that the key belongs to the database.
fn open(config: &Config, master_env: Option<&str>) -> Result<(store::Pool, Keyring), String> {
    create_data_dir(&config.data_dir)?;
    let pool = store::open(
        &config::db_path(&config.data_dir),
        config.workers as u32 + 2,
    )?;
    let conn = pool.get().map_err(|e| format!("database: {e}"))?;
    let check = store::meta_get(&conn, "master_check").map_err(|e| format!("database: {e}"))?;
    let master = MasterKey::load(&config.master_key_file, master_env, check.is_none())?;
    match check {
        Some(c) if !master.verifies(&c) => {
            return Err(format!(
                "the master key ({}) does not match this database ({}); start with the key it was created with",
                master_env.map_or_else(|| config.master_key_file.display().to_string(), |_| "PROXYPLANE_MASTER_KEY".into()),
                config::db_path(&config.data_dir).display()
            ))
        }
        Some(_) => {}
        None => store::meta_set(&conn, "master_check", &master.check_value().map_err(|e| e.message)?)
            .map_err(|e| format!("database: {e}"))?,
    }
    drop(conn);
    Ok((pool, Keyring::new(master)))
}

fn create_data_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", dir.display()))
}

fn serve(config: Config, master_env: Option<&str>) -> Result<ExitCode, String> {
    let (pool, keyring) = open(&config, master_env)?;
    {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        let empty = store::api_keys::count(&conn).map_err(|e| e.to_string())? == 0;
        if empty {
            let (_, secret) = store::write(&mut conn, None, |tx| {
                api::api_keys::create_key(tx, &keyring, None, "admin (first start)", Role::Admin)
            })
            .map_err(|e| format!("creating the first admin key: {e}"))?;
            let path = config.data_dir.join("admin.key");
            let _ = std::fs::remove_file(&path);
            crypto::write_private(&path, format!("{secret}\n").as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            info!(
                "empty database: created an ADMIN key and wrote it to {}",
                path.display()
            );
        }
    }
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {addr}");
        let _ = out.flush();
    }
    info!(
        "proxyplane {} serving {} on {addr} with {} workers",
        env!("CARGO_PKG_VERSION"),
        config::db_path(&config.data_dir).display(),
        config.workers
    );
    let state = Arc::new(rpc::State {
        key_limiter: ratelimit::Limiter::new(config.rate_limit_per_second, config.rate_limit_burst),
        ip_limiter: ratelimit::Limiter::new(
            config.auth_failure_rate_per_second,
            config.auth_failure_burst,
        ),
        metrics: metrics::Metrics::default(),
        shutting_down: AtomicBool::new(false),
        db: pool,
        keys: keyring,
        config,
    });
    // Finishes key rotations in the background, and resumes any a stop or
    // crash interrupted.
    let rotations = api::key_rotation::spawn(state.clone())
        .map_err(|e| format!("cannot start the key rotation thread: {e}"))?;
    server::run(state.clone(), listener)?;
    api::key_rotation::wake();
    let _ = rotations.join();
    // Checkpoint the WAL so the file is whole on its own after a clean stop.
    if let Ok(c) = state.db.get() {
        let _ = c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn check(config: &Config, master_env: Option<&str>) -> Result<ExitCode, String> {
    println!("config: ok");
    let (pool, keyring) = open(config, master_env)?;
    let conn = pool.get().map_err(|e| e.to_string())?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if integrity != "ok" {
        return Err(format!("database integrity check failed: {integrity}"));
    }
    println!("database: ok");
    let n = api::providers::verify_all_data_keys(&conn, &keyring)
        .map_err(|e| format!("master key: {e}"))?;
    println!("master key: ok ({n} data keys open)");
    Ok(ExitCode::SUCCESS)
}

fn keys(config: &Config, master_env: Option<&str>, cmd: KeysCommand) -> Result<ExitCode, String> {
    let (pool, keyring) = open(config, master_env)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    match cmd {
        KeysCommand::Create(k) => {
            let (ws, role) = if k.admin {
                (None, Role::Admin)
            } else {
                let ws = k
                    .workspace
                    .as_deref()
                    .ok_or("give --admin, or --workspace ID --role ROLE")?;
                let ws = WorkspaceId::from_base64(ws).ok_or_else(|| {
                    format!("--workspace {ws:?} is not a workspace id (base64 of 16 bytes)")
                })?;
                let role = k.role.as_deref().and_then(Role::parse).filter(|r| *r != Role::Admin).ok_or(
                    "--role must be one of OWNER, EDITOR, RESOLVER, VIEWER (use --admin for an ADMIN key)",
                )?;
                (Some(ws), role)
            };
            let name = k
                .name
                .unwrap_or_else(|| format!("{} key (cli)", role.name().to_lowercase()));
            let (_, secret) = store::write(&mut conn, None, |tx| {
                if let Some(w) = ws {
                    if !store::workspaces::exists(tx, w)? {
                        return Err(error::Error::not_found("workspace"));
                    }
                }
                api::api_keys::create_key(tx, &keyring, ws, &name, role)
            })
            .map_err(|e| e.message)?;
            println!("{secret}");
        }
        KeysCommand::List => {
            let rows =
                store::read(&mut conn, |tx| api::api_keys::list_all(tx)).map_err(|e| e.message)?;
            for k in rows {
                println!("{k}");
            }
        }
        KeysCommand::Revoke { id } => {
            let key =
                ApiKeyId::from_base64(&id).ok_or_else(|| format!("{id:?} is not a key id"))?;
            let found = store::write(&mut conn, None, |tx| {
                let found = store::api_keys::get(tx, key)?.is_some();
                store::api_keys::revoke(tx, key, store::now_ms())?;
                Ok(found)
            })
            .map_err(|e| e.message)?;
            if !found {
                return Err(format!("no key with id {id}"));
            }
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn workspaces(
    config: &Config,
    master_env: Option<&str>,
    cmd: WorkspacesCommand,
) -> Result<ExitCode, String> {
    let (pool, keyring) = open(config, master_env)?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    match cmd {
        WorkspacesCommand::Create { name } => {
            let ws = store::write(&mut conn, None, |tx| {
                api::workspaces::create_workspace(tx, &keyring, &name)
            })
            .map_err(|e| e.message)?;
            println!("{}", WorkspaceId::parse(&ws.id).map_err(|e| e.message)?);
        }
        WorkspacesCommand::List => {
            let mut cursor = None;
            loop {
                let page = store::read(&mut conn, |tx| {
                    store::workspaces::list(tx, None, cursor, 1000)
                })
                .map_err(|e| e.message)?;
                for w in &page.items {
                    let id = WorkspaceId::parse(&w.id).map_err(|e| e.message)?;
                    println!("{id}\t{}", w.name);
                }
                if page.next_cursor.is_empty() {
                    break;
                }
                cursor = ids::decode_cursor(&page.next_cursor).map_err(|e| e.message)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
