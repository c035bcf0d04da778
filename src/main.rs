//! proxyplane: flags → config → open store → serve (or run an offline
//! command). `main()` → `run()` → exit code.

#![cfg_attr(test, allow(clippy::let_underscore_must_use, clippy::too_many_lines))]

mod api;
mod assign;
mod auth;
mod backup;
mod cli;
mod codec;
mod config;
mod connect;
mod crypto;
mod ctx;
mod cursor;
mod dashboard;
mod error;
mod fastjson;
mod gateway;
mod ids;
mod import;
mod log;
mod metrics;
mod pb;
mod ratelimit;
mod role;
mod rpc;
mod scope;
mod server;
mod stats;
mod store;
mod vendor;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command, KeysCommand, WorkspacesCommand};
use crate::config::{Config, Overrides};
use crate::crypto::{Keyring, MasterKey};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::log::{info, warn};

use crate::role::Role;
use crate::store::IfMissing;

/// mimalloc instead of glibc malloc: ~9k fewer instructions per sticky
/// ResolveProxy (about 50 allocations each), measured with bench/instructions.sh.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            writeln!(std::io::stderr(), "proxyplane: {e}").ok();
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
        Command::Backup { file } => backup::backup(&config, &file),
        Command::Restore { file, force } => backup::restore(&config, master_env, &file, force),
        Command::Keys(k) => keys(&config, master_env, k),
        Command::Workspaces(w) => workspaces(&config, master_env, w),
        Command::Import(a) => import::run(&a, config.max_bulk_items, || {
            open(&config, master_env, IfMissing::Refuse)
        }),
    }
}

/// Opens the database and the master key and checks that the key belongs
/// to the database. Only `serve` (`IfMissing::Create`) makes what a first
/// start needs (data dir, database, master key); every other command
/// refuses a missing one with a sentence.
fn open(
    config: &Config,
    master_env: Option<&str>,
    if_missing: IfMissing,
) -> Result<(store::Pool, Keyring), String> {
    let db = config::db_path(&config.data_dir);
    if if_missing == IfMissing::Create {
        create_data_dir(&config.data_dir)?;
    }
    let pool = store::open(
        &db,
        config.workers as u32 + 2,
        config.synchronous,
        if_missing,
    )?;
    let conn = pool.get().map_err(|e| format!("database: {e}"))?;
    let check = store::meta_get(&conn, "master_check").map_err(|e| format!("database: {e}"))?;
    if check.is_none() && if_missing == IfMissing::Refuse {
        return Err(format!(
            "{} was never fully started (it has no master key check yet); run `proxyplane serve` once",
            db.display()
        ));
    }
    let master = MasterKey::load(&config.master_key_file, master_env, check.is_none())?;
    match check {
        Some(c) if !master.verifies(&c) => {
            return Err(format!(
                "the master key ({}) does not match this database ({}); start with the key it was created with",
                master_env.map_or_else(|| config.master_key_file.display().to_string(), |_| "PROXYPLANE_MASTER_KEY".into()),
                db.display()
            ))
        }
        Some(_) => {}
        None => store::meta_set(&conn, "master_check", &master.check_value().map_err(|e| e.message)?)
            .map_err(|e| format!("database: {e}"))?,
    }
    drop(conn);
    Ok((pool, Keyring::new(master)))
}

/// Writes the first ADMIN key's secret to `path` through a synced temp file
/// and a rename: `path` is whole or absent, never half written.
fn write_admin_key(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    let tmp = path.with_file_name("admin.key.tmp");
    std::fs::remove_file(&tmp).ok();
    crypto::write_private(&tmp, format!("{secret}\n").as_bytes())?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        std::fs::remove_file(&tmp).ok();
        return Err(e);
    }
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::File::open(dir)?.sync_all()
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

/// Before serving: a real write proves the database is writable (a
/// read-only data dir refuses to start), and an empty database gets its
/// first ADMIN key, written to `admin.key`.
fn first_start(pool: &store::Pool, keyring: &Keyring, config: &Config) -> Result<(), String> {
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    store::check_writable(&mut conn, &config::db_path(&config.data_dir))?;
    let empty = store::api_keys::count(&conn).map_err(|e| e.to_string())? == 0;
    if empty {
        let path = config.data_dir.join("admin.key");
        let mut file_error = None;
        store::write(&mut conn, None, |tx| {
            let (_, secret) =
                api::api_keys::create_key(tx, keyring, None, "admin (first start)", Role::Admin)?;
            // The file is on disk before the key's row commits: a crash
            // or a failed write in between leaves no key at all, and the
            // next start makes one again. Committing first left an
            // instance whose only key nobody had.
            write_admin_key(&path, &secret).map_err(|e| {
                let m = format!("cannot write {}: {e}", path.display());
                file_error = Some(m.clone());
                error::Error::internal(m)
            })
        })
        .map_err(|e| {
            file_error
                .take()
                .unwrap_or_else(|| format!("creating the first admin key: {e}"))
        })?;
        info!(
            "empty database: created an ADMIN key and wrote it to {}",
            path.display()
        );
    }
    Ok(())
}

fn serve(config: Config, master_env: Option<&str>) -> Result<ExitCode, String> {
    let (pool, keyring) = open(&config, master_env, IfMissing::Create)?;
    first_start(&pool, &keyring, &config)?;
    store::group::install(&pool).map_err(|e| format!("database: {}", e.message))?;
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let gateway = match config.gateway_listen {
        None => None,
        Some(g) => {
            let l = std::net::TcpListener::bind(g)
                .map_err(|e| format!("cannot listen on {g} (gateway_listen): {e}"))?;
            let a = l.local_addr().map_err(|e| e.to_string())?;
            Some((l, a))
        }
    };
    let gateway_addr = gateway.as_ref().map(|(_, a)| *a);
    let ready = {
        let (db, workers) = (config::db_path(&config.data_dir), config.workers);
        move || {
            let mut out = std::io::stdout().lock();
            // `listening on` stays the first line (scripts and tests wait
            // for it); the gateway's address follows when it is on.
            writeln!(out, "listening on {addr}").ok();
            if let Some(g) = gateway_addr {
                writeln!(out, "gateway listening on {g}").ok();
            }
            out.flush().ok();
            info!(
                "proxyplane {} serving {} on {addr} with {workers} workers",
                env!("CARGO_PKG_VERSION"),
                db.display(),
            );
        }
    };
    let state = Arc::new(ctx::State {
        key_limiter: ratelimit::Limiter::new(config.rate_limit_per_second, config.rate_limit_burst),
        ip_limiter: ratelimit::Limiter::new(
            config.auth_failure_rate_per_second,
            config.auth_failure_burst,
        ),
        metrics: metrics::Metrics::new(rpc::METHODS.iter().map(|m| m.name).collect()),
        pool_stats: stats::PoolStats::default(),
        last_used: auth::LastUsed::default(),
        key_cache: auth::KeyCache::default(),
        bindings: store::bindings::Bindings::default(),
        shutting_down: AtomicBool::new(false),
        db: pool,
        keys: keyring,
        config,
    });
    let background = Background::start(&state)?;
    let served = server::run(state.clone(), listener, gateway.map(|(l, _)| l), ready);
    background.stop(&state);
    served?;
    if let Err(e) = state.last_used.flush(&state.db, store::BUSY_TIMEOUT) {
        warn!("could not record API keys' last use at shutdown: {e}");
    }
    store::group::close();
    // Copy the WAL into the database file, but never wait: another process
    // may hold a read transaction for good (Litestream does), and a
    // TRUNCATE checkpoint waited out the 5 s busy timeout for it. PASSIVE
    // copies what no reader needs; closing the pool's connections then
    // removes the WAL when no other process has the database open.
    if let Ok(c) = state.db.get() {
        let busy = c
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0))
            .unwrap_or(1);
        if busy != 0 {
            info!("another connection is using the database; the WAL stays until it is done");
        }
    }
    drop(state);
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Work beside the server: keys' last use written in batches, and key
/// rotations finished (and resumed after a stop or crash). It stops before
/// `serve` drops its State, which holds the connection pool: the WAL is
/// removed when the last connection closes.
struct Background {
    flusher: std::thread::JoinHandle<()>,
    stop_flusher: std::sync::mpsc::Sender<()>,
    rotations: std::thread::JoinHandle<()>,
    syncs: std::thread::JoinHandle<()>,
}

impl Background {
    fn start(state: &Arc<ctx::State>) -> Result<Background, String> {
        let (stop_flusher, stopped) = std::sync::mpsc::channel::<()>();
        let st = state.clone();
        let flusher = std::thread::Builder::new()
            .name("proxyplane-last-used".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(auth::FLUSH_EVERY)
                {
                    if let Err(e) = st.last_used.flush(&st.db, Duration::from_secs(1)) {
                        warn!("could not record API keys' last use (will retry): {e}");
                    }
                }
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let rotations = api::key_rotation::spawn(state.clone())
            .map_err(|e| format!("cannot start the key rotation thread: {e}"))?;
        let syncs = api::sync::spawn(state.clone())
            .map_err(|e| format!("cannot start the provider sync thread: {e}"))?;
        Ok(Background {
            flusher,
            stop_flusher,
            rotations,
            syncs,
        })
    }

    fn stop(self, state: &ctx::State) {
        state
            .shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        api::key_rotation::wake();
        if self.rotations.join().is_err() {
            warn!("the key rotation thread stopped with a panic");
        }
        if self.syncs.join().is_err() {
            warn!("the provider sync thread stopped with a panic");
        }
        drop(self.stop_flusher);
        if self.flusher.join().is_err() {
            warn!("the last-use writer stopped with a panic");
        }
    }
}

fn check(config: &Config, master_env: Option<&str>) -> Result<ExitCode, String> {
    println!("config: ok");
    let (pool, keyring) = open(config, master_env, IfMissing::Refuse)?;
    let conn = pool.get().map_err(|e| e.to_string())?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if integrity != "ok" {
        return Err(format!("database integrity check failed: {integrity}"));
    }
    let sync = store::synchronous_in_effect(&conn).map_err(|e| e.to_string())?;
    println!("database: ok (synchronous={sync})");
    let n = api::providers::verify_all_data_keys(&conn, &keyring)
        .map_err(|e| format!("master key: {e}"))?;
    println!("master key: ok ({n} data keys open)");
    Ok(ExitCode::SUCCESS)
}

fn keys(config: &Config, master_env: Option<&str>, cmd: KeysCommand) -> Result<ExitCode, String> {
    let (pool, keyring) = open(config, master_env, IfMissing::Refuse)?;
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
            let rows = store::read(&mut conn, api::api_keys::list_all).map_err(|e| e.message)?;
            for k in rows {
                println!("{k}");
            }
        }
        KeysCommand::Revoke { id } => {
            let key =
                ApiKeyId::from_base64(&id).ok_or_else(|| format!("{id:?} is not a key id"))?;
            let found = store::write(&mut conn, None, |tx| {
                // The CLI is the instance's operator: any key, by id.
                let Some(row) = store::api_keys::get(tx, key)? else {
                    return Ok(false);
                };
                store::api_keys::revoke(tx, &row, store::now_ms())?;
                Ok(true)
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
    let (pool, keyring) = open(config, master_env, IfMissing::Refuse)?;
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
                    println!("{}\t{}", w.id, w.name);
                }
                match page.next_after {
                    Some(last) => cursor = Some(last),
                    None => break,
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
