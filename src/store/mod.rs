//! The SQLite store: opening (pragmas, schema, upgrades), the connection pool,
//! and the transaction helpers every RPC goes through. SQL lives in the
//! per-resource modules; none of them sees HTTP.

pub mod api_keys;
pub mod assignments;
pub mod bindings;
pub mod columns;
pub mod group;
mod migrate;
pub mod pools;
pub mod providers;
pub mod sessions;
pub mod workspaces;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::config::Synchronous;
use crate::error::{Error, Result};

/// The schema version this binary writes: the last step in `migrations/`.
pub const SCHEMA_VERSION: i64 = migrate::LATEST;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;
pub type Conn = r2d2::PooledConnection<SqliteConnectionManager>;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long a statement waits for another connection's lock (the offline
/// CLI, a backup) before the call fails as unavailable.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pragmas for every connection: busy_timeout first (so the next ones wait
/// instead of failing), then WAL, the configured sync level, foreign keys.
fn configure(c: &Connection, sync: Synchronous) -> rusqlite::Result<()> {
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", sync.name())?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    // No memory map, and a 1 MiB page cache per connection (SQLite's
    // default is 2 MiB). A map was the top lever for point reads on a large
    // database before the binding cache, but every pooled connection mapped
    // the file and touched its pages, so the resident set counted the same
    // pages once per connection (26 MB of the 77 MB peak under the resolve
    // load). Now sticky resolves are answered from memory; without the map
    // and with 1 MiB the peak is 54 MB for the same req/s, and 1M sessions
    // still resolve at 0.95 of 1k (BENCHMARKS.md).
    c.pragma_update(None, "mmap_size", 0)?;
    c.pragma_update(None, "cache_size", -1024)?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The `synchronous` level a connection runs with, read back from SQLite
/// (for `check`, so an operator sees what is in effect).
pub fn synchronous_in_effect(c: &Connection) -> rusqlite::Result<&'static str> {
    let level: i64 = c.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    Ok(match level {
        0 => "off",
        1 => "normal",
        2 => "full",
        _ => "extra",
    })
}

/// What `open` does when the database file does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// `serve`: a first start creates it.
    Create,
    /// Every other command: a missing database is a mistake (a typo in
    /// `--data-dir` in a cron job), not a reason to make an empty one.
    Refuse,
}

/// The sentence for a database that is not there.
pub fn missing_database(path: &Path) -> String {
    format!(
        "there is no database at {}; `proxyplane serve` creates one on its first start (is --data-dir / data_dir right?)",
        path.display()
    )
}

fn newer_schema(v: i64) -> String {
    format!(
        "it was written by a newer proxyplane (schema version {v}; this binary knows up to {SCHEMA_VERSION}); upgrade the binary or restore a backup"
    )
}

/// The schema version, read on a read-only connection that sets no pragma,
/// so a refusal leaves the file exactly as it was (journal mode included).
/// None when it cannot be read that way; the full open then reports why.
fn probe_version(path: &Path) -> Option<i64> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    c.pragma_query_value(None, "user_version", |r| r.get(0))
        .ok()
}

/// Opens the database file (creating it only for `IfMissing::Create`) and
/// brings its schema up to date. Refuses a database written by a newer
/// binary before writing anything to it.
pub fn open(
    path: &Path,
    pool_size: u32,
    sync: Synchronous,
    if_missing: IfMissing,
) -> Result<Pool, String> {
    let exists = path
        .try_exists()
        .map_err(|e| format!("cannot look for database {}: {e}", path.display()))?;
    if !exists && if_missing == IfMissing::Refuse {
        return Err(missing_database(path));
    }
    if exists {
        match probe_version(path) {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(format!("database {}: {}", path.display(), newer_schema(v)))
            }
            Some(0) if if_missing == IfMissing::Refuse => {
                return Err(format!(
                "{} holds no proxyplane schema; `proxyplane serve` creates one on its first start",
                path.display()
            ))
            }
            _ => {}
        }
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if if_missing == IfMissing::Create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    {
        let mut c = Connection::open_with_flags(path, flags)
            .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
        // SQLite falls back to read-only without a word when it may not
        // write the file; in WAL mode the next step would then fail with
        // "unable to open database file".
        if c.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            return Err(read_only(path, "SQLite could open it for reading only"));
        }
        configure(&c, sync)
            .map_err(|e| format!("cannot configure database {}: {e}", path.display()))?;
        migrate::run(&mut c).map_err(|e| format!("database {}: {e}", path.display()))?;
    }
    // The file exists now; pooled connections never create one.
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(move |c| configure(c, sync));
    r2d2::Pool::builder()
        .max_size(pool_size)
        .min_idle(Some(1))
        // The default SELECT 1 per checkout cost 20-35% of a point read.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
        .build(manager)
        .map_err(|e| format!("cannot open database pool for {}: {e}", path.display()))
}

fn read_only(path: &Path, why: &str) -> String {
    format!(
        "the database {} is read-only ({why}); proxyplane must write it and the -wal/-shm files beside it: make the data dir writable (mount, permissions, disk space)",
        path.display()
    )
}

/// Proves at start-up that the database takes writes. On a read-only file
/// system (or file) SQLite opens the database read-only without a word, and
/// the server would answer /healthz and fail every write with a 500. The
/// probe commits a real write: the start time in `meta`.
pub fn check_writable(c: &mut Connection, path: &Path) -> Result<(), String> {
    let refuse = |why: String| read_only(path, &why);
    if c.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(refuse("SQLite could open it for reading only".into()));
    }
    let mut probe = || -> rusqlite::Result<()> {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('last_start_ms', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [now_ms().to_string().into_bytes()],
        )?;
        tx.commit()
    };
    probe().map_err(|e| refuse(format!("a test write failed: {e}")))
}

/// Copies the database at `src` into the new file `dest` with SQLite's
/// online backup. The whole copy runs inside one read transaction on the
/// source: commits from other connections neither block it nor restart it
/// (stepping without one restarts the copy after every foreign commit, so a
/// large database under steady writes never finished). `progress` gets
/// (pages done, pages in all) after each step. The copy is left in rollback
/// journal mode, a single file that opens anywhere, read-only too.
pub fn copy_database(
    src: &Path,
    dest: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<(), String> {
    use rusqlite::backup::{Backup, StepResult};
    let source = Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open database {}: {e}", src.display()))?;
    let read_err = |e: rusqlite::Error| format!("cannot read database {}: {e}", src.display());
    source
        .busy_timeout(Duration::from_secs(5))
        .map_err(read_err)?;
    // BEGIN is deferred: the first read takes the snapshot the copy is of.
    source.execute_batch("BEGIN").map_err(read_err)?;
    source
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(read_err)?;
    let write_err = |e: rusqlite::Error| format!("cannot write {}: {e}", dest.display());
    let mut target = Connection::open(dest).map_err(write_err)?;
    {
        let backup = Backup::new(&source, &mut target).map_err(write_err)?;
        let mut stalls = 0;
        loop {
            // 1024 pages (4 MiB) per step: few steps, and progress to show.
            match backup.step(1024).map_err(read_err)? {
                StepResult::Done => break,
                StepResult::More => stalls = 0,
                // A lock on either side; brief unless something is stuck.
                _ => {
                    stalls += 1;
                    if stalls > 100 {
                        return Err(format!(
                            "backup of {} stalled on a lock for 10 s",
                            src.display()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let p = backup.progress();
            let total = p.pagecount.max(0) as u64;
            progress(total.saturating_sub(p.remaining.max(0) as u64), total);
        }
        let p = backup.progress();
        progress(p.pagecount.max(0) as u64, p.pagecount.max(0) as u64);
    }
    source.execute_batch("COMMIT").map_err(read_err)?;
    drop(source);
    target
        .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0))
        .map_err(write_err)?;
    target.close().map_err(|(_, e)| write_err(e))
}

/// Whether another connection (a server, a backup, Litestream) has the
/// database open now. A connection in WAL mode holds a shared lock on the
/// file for as long as it is open, so an exclusive lock, taken without
/// waiting and given back at once, fails exactly then. Writes nothing.
/// None when it cannot tell (the file is not a database, say).
pub fn in_use(path: &Path) -> Option<bool> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    c.pragma_update(None, "locking_mode", "EXCLUSIVE").ok()?;
    match c.execute_batch("BEGIN EXCLUSIVE; COMMIT;") {
        Ok(()) => Some(false),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => Some(true),
        Err(_) => None,
    }
}

/// Opens a copy of a database that `restore` is about to put in place and
/// checks it: an SQLite file, whole (`integrity_check`), with a proxyplane
/// schema this binary can run. `shown` names it in messages (the user's
/// backup file rather than the temp copy). Sets no pragma.
pub fn open_checked_copy(path: &Path, shown: &Path) -> Result<Connection, String> {
    let shown = shown.display();
    let classify = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            format!("{shown} is not a proxyplane database (not an SQLite file)")
        }
        _ => format!("{shown} is damaged: {e}"),
    };
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(classify)?;
    let problems: Vec<String> = {
        let mut stmt = c.prepare("PRAGMA integrity_check(20)").map_err(classify)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(classify)?;
        rows.collect::<rusqlite::Result<_>>().map_err(classify)?
    };
    if problems != ["ok"] {
        return Err(format!(
            "{shown} is damaged (integrity check: {})",
            problems.join("; ")
        ));
    }
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(classify)?;
    let has_meta: bool = c
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )
        .map_err(classify)?;
    if v == 0 || !has_meta {
        return Err(format!(
            "{shown} is not a proxyplane database (it has no proxyplane schema)"
        ));
    }
    if v > SCHEMA_VERSION {
        return Err(format!("{shown}: {}", newer_schema(v)));
    }
    Ok(c)
}

/// An open transaction: committed by `commit`, rolled back when dropped
/// without it (an error, a missed deadline, a panic). BEGIN, COMMIT and
/// ROLLBACK are cached prepared statements: rusqlite's `Transaction` parses
/// them anew each time, ~5% of a sticky ResolveProxy's instructions.
struct Tx<'a> {
    c: &'a Connection,
    open: bool,
}

impl<'a> Tx<'a> {
    fn begin(c: &'a Connection, sql: &'static str) -> rusqlite::Result<Tx<'a>> {
        c.prepare_cached(sql)?.execute([])?;
        Ok(Tx { c, open: true })
    }
    /// Leaves the transaction open for the group writer, which ends it.
    fn keep_open(mut self) {
        self.open = false;
    }
    fn commit(mut self) -> rusqlite::Result<()> {
        self.c.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let rolled_back = self
                .c
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
            if rolled_back.is_err() {
                // Not left half-open for the connection's next user.
                self.c.execute_batch("ROLLBACK").ok();
            }
        }
    }
}

/// A read-only RPC: one deferred transaction, a consistent snapshot.
pub fn read<T>(c: &mut Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let tx = Tx::begin(c, "BEGIN DEFERRED")?;
    let out = f(c)?;
    tx.commit()?;
    Ok(out)
}

/// A writing RPC: the write lock is taken up front (IMMEDIATE); commit on Ok,
/// rollback on Err or when the deadline has passed, so a request that runs
/// out of time changes nothing. The wait for the lock is bounded by the
/// deadline too: a call never sits in SQLite's busy handler past it.
pub fn write<T>(
    c: &mut Connection,
    deadline: Option<Instant>,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    // The server's writes: group commit on the writer connection.
    if let Some(g) = group::installed() {
        return g.write(deadline, f);
    }
    let _turn = writer_turn(deadline)?;
    let tx = begin_immediate(c, deadline)?;
    let out = f(c)?;
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(Error::deadline());
    }
    tx.commit()?;
    Ok(out)
}

/// The process's writers take turns here, in-process and (eventually)
/// fair, instead of sleeping in SQLite's busy handler while another holds
/// the write lock: its backoff (1, 2, 5, 10 ... 100 ms) made CreateSession's
/// p99 222 ms under load, all of it waiting, not work. Only other processes
/// (the offline CLI, a backup, Litestream) still meet the busy handler.
static WRITER: parking_lot::Mutex<()> = parking_lot::const_mutex(());

fn writer_turn(deadline: Option<Instant>) -> Result<parking_lot::MutexGuard<'static, ()>> {
    // Without a deadline a writer still gives up after BUSY_TIMEOUT, as it
    // did in SQLite's busy handler.
    let until = deadline.unwrap_or_else(|| Instant::now() + BUSY_TIMEOUT);
    WRITER.try_lock_until(until).ok_or_else(|| {
        if deadline.is_some() {
            Error::deadline()
        } else {
            Error::unavailable("The database is busy; retry in a moment.")
        }
    })
}

fn begin_immediate(c: &Connection, deadline: Option<Instant>) -> Result<Tx<'_>> {
    let now = Instant::now();
    let wait = match deadline {
        Some(d) if d <= now => return Err(Error::deadline()),
        Some(d) => (d - now).min(BUSY_TIMEOUT),
        None => BUSY_TIMEOUT,
    };
    // Set on every write (a cheap call): a call that gave up early must not
    // leave its short wait on the pooled connection for the next one.
    c.busy_timeout(wait)?;
    Tx::begin(c, "BEGIN IMMEDIATE").map_err(|e| match deadline {
        Some(d) if Instant::now() >= d => Error::deadline(),
        _ => e.into(),
    })
}

pub fn meta_get(c: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(
        c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?,
    )
}

pub fn meta_set(c: &Connection, key: &str, value: &[u8]) -> Result<()> {
    c.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        rusqlite::params![key, value],
    )?;
    Ok(())
}

/// `version` rules for every Update: the stored version must match
/// `expected_version` when one is given.
pub fn check_version(expected: Option<i64>, stored: i64) -> Result<()> {
    match expected {
        Some(e) if e != stored => Err(Error::version_mismatch(e, stored)),
        _ => Ok(()),
    }
}

/// Keyset pagination shared by every List query: rows after the cursor id,
/// one more than the page to learn whether there is a next page. The store
/// hands back the raw position; handlers turn it into a cursor bound to
/// their list (src/cursor.rs), and internal loops (the CLI) use it as is.
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id of the last item when more rows follow; `None` on the last page.
    pub next_after: Option<[u8; 16]>,
}

pub fn page<T>(mut rows: Vec<T>, size: usize, id_of: impl Fn(&T) -> [u8; 16]) -> Page<T> {
    let next_after = if rows.len() > size {
        rows.truncate(size);
        rows.last().map(id_of)
    } else {
        None
    };
    Page {
        items: rows,
        next_after,
    }
}

/// The lower bound for `id > ?` when no cursor was given.
pub fn after(cursor: Option<[u8; 16]>) -> Vec<u8> {
    cursor.map(|c| c.to_vec()).unwrap_or_default()
}
