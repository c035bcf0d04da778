//! The SQLite store: opening (pragmas, schema, upgrades), the connection pool,
//! and the transaction helpers every RPC goes through. SQL lives in the
//! per-resource modules; none of them sees HTTP.

pub mod api_keys;
pub mod assignments;
pub mod pools;
pub mod providers;
pub mod sessions;
pub mod workspaces;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = 2;
const SCHEMA: &str = include_str!("../../schema.sql");
/// Version 2: session counters for /metrics (also in schema.sql).
const V2_SESSION_COUNTS: &str = include_str!("v2_session_counts.sql");

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
/// instead of failing), then WAL, NORMAL sync, foreign keys.
fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    // Reads straight from the OS page cache instead of a pread and a copy
    // per page: point reads on a large database were the top of the
    // ResolveProxy profile. Address space only; the OS decides residency.
    c.pragma_update(None, "mmap_size", 1i64 << 30)?;
    // Up to 32 MiB of page headers and written pages per connection (the
    // default is 2 MiB): at 1M sessions it cut ResolveProxy CPU by ~15 %.
    c.pragma_update(None, "cache_size", -32768)?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Opens (creating if needed) the database file and brings its schema up to
/// date. Refuses a database written by a newer binary.
pub fn open(path: &Path, pool_size: u32) -> Result<Pool, String> {
    {
        let mut c = Connection::open(path)
            .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
        configure(&c).map_err(|e| format!("cannot configure database {}: {e}", path.display()))?;
        migrate(&mut c).map_err(|e| format!("database {}: {e}", path.display()))?;
    }
    let manager = SqliteConnectionManager::file(path).with_init(|c| configure(c));
    r2d2::Pool::builder()
        .max_size(pool_size)
        .min_idle(Some(1))
        // The default SELECT 1 per checkout cost 20-35% of a point read.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
        .build(manager)
        .map_err(|e| format!("cannot open database pool for {}: {e}", path.display()))
}

fn migrate(c: &mut Connection) -> Result<(), String> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    let v: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if v > SCHEMA_VERSION {
        return Err(format!(
            "it was written by a newer proxyplane (schema version {v}; this binary knows up to {SCHEMA_VERSION}); upgrade the binary or restore a backup"
        ));
    }
    if v == 0 {
        tx.execute_batch(SCHEMA)
            .map_err(|e| format!("applying schema: {e}"))?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| e.to_string())?;
    }
    if v == 1 {
        tx.execute_batch(V2_SESSION_COUNTS)
            .map_err(|e| format!("upgrading to schema version 2: {e}"))?;
        tx.execute(
            "INSERT INTO session_counts SELECT 1, coalesce(sum(enabled <> 0), 0), coalesce(sum(enabled = 0), 0) \
             FROM sessions WHERE deleted_at IS NULL",
            [],
        )
        .map_err(|e| format!("upgrading to schema version 2: {e}"))?;
        tx.pragma_update(None, "user_version", 2)
            .map_err(|e| e.to_string())?;
    }
    // Later versions add `if v < N { ... }` steps here, each in this transaction.
    tx.commit().map_err(|e| e.to_string())
}

/// A read-only RPC: one deferred transaction, a consistent snapshot.
pub fn read<T>(c: &mut Connection, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let out = f(&tx)?;
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
    f: impl FnOnce(&Transaction) -> Result<T>,
) -> Result<T> {
    let tx = begin_immediate(c, deadline)?;
    let out = f(&tx)?;
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(Error::deadline());
    }
    tx.commit()?;
    Ok(out)
}

fn begin_immediate(c: &mut Connection, deadline: Option<Instant>) -> Result<Transaction<'_>> {
    let now = Instant::now();
    let wait = match deadline {
        Some(d) if d <= now => return Err(Error::deadline()),
        Some(d) => (d - now).min(BUSY_TIMEOUT),
        None => BUSY_TIMEOUT,
    };
    // Set on every write (a cheap call): a call that gave up early must not
    // leave its short wait on the pooled connection for the next one.
    c.busy_timeout(wait)?;
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| match deadline {
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
