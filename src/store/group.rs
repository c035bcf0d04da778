//! Group commit for the server's writes. One connection, kept aside from
//! the pool, does every in-process write. A writer takes it in turn (in
//! process, waiting no longer than its deadline, never in SQLite's busy
//! handler), runs its closure inside a SAVEPOINT of the open transaction,
//! and hands it on: when other writers are already waiting, the transaction
//! stays open for them, and the last writer of the group commits for all.
//! Each writer's work is still all-or-nothing (its savepoint is rolled back
//! on its error or missed deadline, leaving the others' work), and every
//! writer is answered only after the COMMIT that holds its work: a commit
//! that fails fails every writer in it. Under load one commit (one WAL
//! append of the pages the group touched) serves many writes; alone, a
//! writer commits at once, as before.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::error::{Code, Error, Result};

/// Writes joined into one transaction at most; bounds how long the first
/// writer of a group waits for its commit.
const MAX_GROUP: usize = 64;

type Conn = PooledConnection<SqliteConnectionManager>;

pub struct Group {
    st: Mutex<State>,
    /// Writers waiting for the connection: woken one at a time.
    free: Condvar,
    /// Writers waiting for their group's commit: woken all at once.
    ended: Condvar,
}

struct State {
    /// None while a writer runs on it.
    conn: Option<Conn>,
    /// The open transaction's group number, if one is open.
    open: Option<u64>,
    next: u64,
    /// Writers waiting for the connection.
    waiting: usize,
    /// Writers whose work is in the open transaction.
    members: usize,
    /// Groups up to this one are committed or failed.
    ended: u64,
    /// The latest groups that failed to commit, and why (rare: a full
    /// disk, an I/O error), kept so a writer that wakes late still learns
    /// its own group's fate.
    failed: VecDeque<(u64, Code, String)>,
}

impl State {
    fn fail(&mut self, f: (u64, Code, String)) {
        if self.failed.len() == 64 {
            self.failed.pop_front();
        }
        self.failed.push_back(f);
    }
}

static GROUP: OnceLock<Group> = OnceLock::new();

/// Makes every later `store::write` in this process go through one group
/// writer on a connection taken from `pool`. The server does this; the
/// offline commands write as before.
pub fn install(pool: &super::Pool) -> Result<()> {
    GROUP
        .set(Group::new(pool)?)
        .map_err(|_| Error::internal("group writer installed twice"))
}

pub fn installed() -> Option<&'static Group> {
    GROUP.get().filter(|_| !CLOSED.load(Ordering::Acquire))
}

static CLOSED: AtomicBool = AtomicBool::new(false);

/// At shutdown: waits (up to the busy timeout) for the last group to end,
/// then closes the writer connection, so that closing the pool's
/// connections afterwards removes the WAL as before. Later writes in this
/// process (none are expected) take the plain path.
pub fn close() {
    let Some(g) = GROUP.get() else {
        return;
    };
    let until = Instant::now() + super::BUSY_TIMEOUT;
    let mut st = g.st.lock();
    // Polled: the server has stopped serving, so this waits at most for
    // a background writer's last group.
    while (st.conn.is_none() || st.open.is_some()) && Instant::now() < until {
        g.free
            .wait_for(&mut st, std::time::Duration::from_millis(10));
    }
    CLOSED.store(true, Ordering::Release);
    let conn = st.conn.take();
    drop(st);
    drop(conn);
}

/// What a writer's turn ended with.
enum Turn<T> {
    /// Its work is in the open transaction: wait for the group's commit.
    Joined(T, u64),
    /// Committed already (it was the last writer), or failed.
    Done(Result<T>),
}

impl Group {
    fn new(pool: &super::Pool) -> Result<Group> {
        let conn = pool.get()?;
        // 8 MiB of page cache instead of the readers' 32: the writer's
        // cache filled with the pages of every index it touched (the peak
        // RSS under CreateSession load), and writing reads them back from
        // the memory map when needed: 6 MB less at the peak for no
        // measurable CPU (BENCHMARKS.md).
        conn.pragma_update(None, "cache_size", -8192)?;
        Ok(Group {
            st: Mutex::new(State {
                conn: Some(conn),
                open: None,
                next: 1,
                waiting: 0,
                members: 0,
                ended: 0,
                failed: VecDeque::new(),
            }),
            free: Condvar::new(),
            ended: Condvar::new(),
        })
    }

    pub fn write<T>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let until = deadline.unwrap_or_else(|| Instant::now() + super::BUSY_TIMEOUT);
        let mut st = self.st.lock();
        st.waiting += 1;
        while st.conn.is_none() {
            if self.free.wait_until(&mut st, until).timed_out() && st.conn.is_none() {
                st.waiting -= 1;
                return Err(match deadline {
                    Some(_) => Error::deadline(),
                    None => Error::unavailable("The database is busy; retry in a moment."),
                });
            }
        }
        st.waiting -= 1;
        let Some(conn) = st.conn.take() else {
            return Err(Error::internal("group writer lost its connection"));
        };
        let open = st.open;
        drop(st);
        let mut turn = Holder {
            g: self,
            conn: Some(conn),
        };
        match self.turn(&mut turn, open, deadline, f) {
            Turn::Done(r) => r,
            Turn::Joined(out, group) => {
                let mut st = self.st.lock();
                while st.ended < group {
                    self.ended.wait(&mut st);
                }
                match st.failed.iter().find(|f| f.0 == group) {
                    Some((_, code, msg)) => Err(Error::new(*code, msg.clone())),
                    None => Ok(out),
                }
            }
        }
    }

    /// The writer's turn on the connection: begin a group if none is open,
    /// run `f` in a savepoint, then hand the connection on or commit.
    fn turn<T>(
        &self,
        h: &mut Holder<'_>,
        open: Option<u64>,
        deadline: Option<Instant>,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Turn<T> {
        let Some(c) = h.conn.as_deref() else {
            return Turn::Done(Err(Error::internal("group writer lost its connection")));
        };
        let group = match open {
            Some(g) => g,
            None => {
                if let Err(e) = super::begin_immediate(c, deadline).map(super::Tx::keep_open) {
                    h.give_back(None);
                    return Turn::Done(Err(e));
                }
                let mut st = self.st.lock();
                let g = st.next;
                st.next += 1;
                st.open = Some(g);
                g
            }
        };
        let out = if open.is_some() {
            run_in_savepoint(c, deadline, f)
        } else {
            // The first of a group has the transaction to itself: no
            // savepoint; on its error the whole (so far only its own)
            // transaction is rolled back below, before anyone joins.
            within_deadline(f(c), deadline)
        };
        if out.is_err() && open.is_none() {
            rollback(c);
            self.st.lock().open = None;
            h.give_back(None);
            return Turn::Done(out);
        }
        let mut st = self.st.lock();
        if out.is_ok() {
            st.members += 1;
        }
        let members = st.members;
        // Others are waiting to add theirs: leave the transaction open.
        if st.waiting > 0 && st.members < MAX_GROUP {
            drop(st);
            h.give_back(Some(group));
            return match out {
                Ok(v) => Turn::Joined(v, group),
                Err(e) => Turn::Done(Err(e)),
            };
        }
        // The last of the group commits for all of them.
        drop(st);
        let committed = if members > 0 {
            commit(c)
        } else {
            rollback(c);
            Ok(())
        };
        let failed = committed
            .as_ref()
            .err()
            .map(|e| (group, e.code, e.message.clone()));
        {
            let mut st = self.st.lock();
            st.open = None;
            st.members = 0;
            st.ended = group;
            if let Some(f) = failed {
                st.fail(f);
            }
        }
        h.give_back(None);
        self.ended.notify_all();
        Turn::Done(committed.and(out))
    }
}

fn run_in_savepoint<T>(
    c: &Connection,
    deadline: Option<Instant>,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    c.prepare_cached("SAVEPOINT w")?.execute([])?;
    let out = within_deadline(f(c), deadline);
    if out.is_err() {
        c.prepare_cached("ROLLBACK TO w")?.execute([])?;
    }
    c.prepare_cached("RELEASE w")?.execute([])?;
    out
}

/// A result that came too late is a missed deadline, and its work undone.
fn within_deadline<T>(out: Result<T>, deadline: Option<Instant>) -> Result<T> {
    out.and_then(|v| match deadline {
        Some(d) if Instant::now() >= d => Err(Error::deadline()),
        _ => Ok(v),
    })
}

fn commit(c: &Connection) -> Result<()> {
    match c.prepare_cached("COMMIT").and_then(|mut s| s.execute([])) {
        Ok(_) => Ok(()),
        Err(e) => {
            rollback(c);
            Err(e.into())
        }
    }
}

fn rollback(c: &Connection) {
    if !c.is_autocommit() {
        c.execute_batch("ROLLBACK").ok();
    }
}

/// The connection while a writer has it. Dropped without `give_back` (a
/// panic in a writer's closure), it rolls the open transaction back, fails
/// the group and returns the connection, so no writer waits forever and
/// none is told its rolled-back work was committed.
struct Holder<'g> {
    g: &'g Group,
    conn: Option<Conn>,
}

impl Holder<'_> {
    fn give_back(&mut self, open: Option<u64>) {
        if let Some(c) = self.conn.take() {
            let mut st = self.g.st.lock();
            st.conn = Some(c);
            st.open = open;
            drop(st);
            self.g.free.notify_one();
        }
    }
}

impl Drop for Holder<'_> {
    fn drop(&mut self) {
        let Some(c) = self.conn.take() else {
            return;
        };
        rollback(&c);
        let mut st = self.g.st.lock();
        if let Some(g) = st.open.take() {
            st.ended = g;
            st.fail((g, Code::Internal, "An internal error occurred.".to_string()));
        }
        st.members = 0;
        st.conn = Some(c);
        drop(st);
        self.g.free.notify_one();
        self.g.ended.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::config::Synchronous;
    use crate::store::IfMissing;

    fn pool() -> (super::super::Pool, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let pool = super::super::open(
            &dir.0.join("t.db"),
            4,
            Synchronous::Normal,
            IfMissing::Create,
        )
        .unwrap();
        pool.get()
            .unwrap()
            .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, by INTEGER NOT NULL)")
            .unwrap();
        (pool, dir)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "pp-group-{}-{}",
                    std::process::id(),
                    uuid::Uuid::now_v7()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                std::fs::remove_dir_all(&self.0).ok();
            }
        }
    }

    fn count(pool: &super::super::Pool) -> i64 {
        pool.get()
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    /// Many writers at once: every Ok write is committed (visible on
    /// another connection as soon as it returns), every failed one left
    /// nothing, whatever group it shared.
    #[test]
    fn concurrent_writers_each_commit_all_or_nothing_and_share_commits() {
        let (pool, _dir) = pool();
        let g = Arc::new(Group::new(&pool).unwrap());
        let oks = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (g, oks, pool) = (g.clone(), oks.clone(), pool.clone());
                std::thread::spawn(move || {
                    for i in 0..200i64 {
                        let k = t * 1000 + i;
                        let r = g.write(None, |c| {
                            c.execute("INSERT INTO t (k, by) VALUES (?1, ?2)", [k, t])?;
                            // Every 7th writer fails after writing: its row must go.
                            if i % 7 == 3 {
                                return Err(Error::invalid("no"));
                            }
                            Ok(())
                        });
                        let seen: i64 = pool
                            .get()
                            .unwrap()
                            .query_row("SELECT count(*) FROM t WHERE k = ?1", [k], |r| r.get(0))
                            .unwrap();
                        match r {
                            Ok(()) => {
                                assert_eq!(seen, 1, "an acknowledged write is visible");
                                oks.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                assert_eq!(e.message, "no");
                                assert_eq!(seen, 0, "a failed write left nothing");
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let oks = oks.load(Ordering::Relaxed);
        assert_eq!(count(&pool), oks as i64);
        assert_eq!(oks, 16 * (200 - 200 / 7 - 1));
    }

    /// A writer whose closure panics takes its group down with it (nobody
    /// is told a rolled-back write was committed), and the writer goes on
    /// serving the next ones.
    #[test]
    fn a_panicking_writer_fails_its_group_and_the_writer_recovers() {
        let (pool, _dir) = pool();
        let g = Group::new(&pool).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            g.write(None, |c| -> Result<()> {
                c.execute("INSERT INTO t (k, by) VALUES (1, 1)", [])?;
                panic!("boom");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(count(&pool), 0);
        g.write(None, |c| {
            c.execute("INSERT INTO t (k, by) VALUES (2, 2)", [])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(count(&pool), 1);
    }

    /// A writer that cannot get its turn before its deadline gives up with
    /// deadline_exceeded, and one past its deadline after running changes
    /// nothing.
    #[test]
    fn deadlines_bound_the_wait_and_undo_late_work() {
        let (pool, _dir) = pool();
        let g = Group::new(&pool).unwrap();
        let e = g
            .write(Some(Instant::now()), |c| {
                c.execute("INSERT INTO t (k, by) VALUES (1, 1)", [])?;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(e.code, Code::DeadlineExceeded);
        let e = g
            .write(
                Some(Instant::now() + std::time::Duration::from_millis(50)),
                |c| {
                    c.execute("INSERT INTO t (k, by) VALUES (2, 2)", [])?;
                    std::thread::sleep(std::time::Duration::from_millis(80));
                    Ok(())
                },
            )
            .unwrap_err();
        assert_eq!(e.code, Code::DeadlineExceeded);
        assert_eq!(count(&pool), 0);
    }
}
