//! RotateWorkspaceKey's engine. The key switch is one short transaction (a
//! new data key becomes current, provider credentials are re-sealed under
//! it); session passwords are then re-sealed in short batches, each its own
//! transaction, first by the call itself (a small workspace is done before it
//! returns) and then by one background thread, which also resumes any
//! rotation a stop or crash interrupted.
//!
//! Why batches: one transaction over a million sessions held SQLite's single
//! write lock for seconds, and other tenants' writes timed out (503). Every
//! secret stays readable throughout because a sealed blob names the key
//! version it was sealed under, and the old data key is deleted only by the
//! last step, once nothing is sealed under it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::crypto::Keyring;
use crate::ctx::State;
use crate::error::{Error, Result};
use crate::ids::WorkspaceId;
use crate::log::{error, info};
use crate::store::workspaces::{self, KeyRotation};
use crate::store::{self, providers, sessions};

use super::Sealer;

/// Sessions one batch looks at, at most.
const BATCH_ROWS: usize = 2000;
/// A batch stops re-sealing and commits after this long, so a waiting
/// writer (busy_timeout 5 s) waits tens of milliseconds, not seconds.
pub const BATCH_TIME: Duration = Duration::from_millis(50);
/// How long the background thread waits after a failed pass (say, a busy
/// database) before trying again.
const RETRY: Duration = Duration::from_secs(10);

/// The key switch, in the caller's write transaction: data key `v + 1` is
/// created and made current (every secret written from now on is sealed
/// under it), provider credentials are re-sealed under it (a workspace has a
/// handful), and the progress row is written. `remaining` is the estimate of
/// session passwords to re-seal, counted before the write lock was taken.
pub fn begin(
    tx: &Connection,
    keys: &Keyring,
    ws: WorkspaceId,
    remaining: i64,
) -> Result<(u32, u32)> {
    let previous = workspaces::key_version(tx, ws)?.ok_or_else(|| Error::not_found("workspace"))?;
    if workspaces::rotation(tx, ws)?.is_some() || workspaces::has_older_data_keys(tx, ws)? {
        return Err(Error::precondition(format!(
            "A key rotation of this workspace (to key version {previous}) is still re-sealing secrets; \
             wait until GetWorkspace shows no keyRotation, then rotate again."
        )));
    }
    let new = previous + 1;
    let now = store::now_ms();
    let sealer = Sealer::next(tx, keys, ws, new)?;
    for (id, sealed) in providers::sealed_credentials(tx, ws)? {
        let plain = super::open(tx, keys, ws, &id.0, "credentials", &sealed)?;
        providers::set_credentials(tx, id, &sealer.seal(&id.0, "credentials", &plain)?, new)?;
    }
    providers::set_key_version_all(tx, ws, new, now)?;
    workspaces::set_key_version(tx, ws, new, now)?;
    workspaces::set_rotation(tx, ws, &KeyRotation::new(new, remaining))?;
    Ok((previous, new))
}

/// Whether a rotation has work left after a step.
#[derive(Debug, PartialEq)]
pub enum Step {
    More,
    Done,
}

/// One step of the workspace's rotation, each write its own short
/// transaction: a batch of live sessions; once those are done, a batch of
/// deleted sessions whose passwords predate wiping on delete (they are
/// wiped, not re-sealed); once none is left, the old data keys and the
/// progress row go. All state is in the database, so steps are safe to run
/// after a crash and even from two threads at once (a row already under the
/// target key is skipped).
pub fn step(c: &mut Connection, keys: &Keyring, ws: WorkspaceId) -> Result<Step> {
    let until = Instant::now() + BATCH_TIME;
    let state = store::write(c, None, |tx| {
        let mut r = match workspaces::rotation(tx, ws)? {
            Some(r) => r,
            // Finished, or the workspace was deleted.
            None if !workspaces::has_older_data_keys(tx, ws)? => return Ok(None),
            // Old keys but no progress row: go over every session again;
            // those already re-sealed are skipped by their key version.
            None => KeyRotation::new(
                workspaces::key_version(tx, ws)?
                    .ok_or_else(|| Error::internal("workspace vanished"))?,
                0,
            ),
        };
        if r.live_done {
            return Ok(Some(r));
        }
        let sealer = Sealer::new(tx, keys, ws)?;
        if sealer.version != r.target {
            return Err(Error::internal(format!(
                "workspace {ws}: rotating to key version {} but the current one is {}",
                r.target, sealer.version
            )));
        }
        let batch = sessions::reseal_passwords(
            tx,
            ws,
            r.target,
            r.after(),
            BATCH_ROWS,
            until,
            |id, sealed| {
                let plain = super::open(tx, keys, ws, &id.0, "password", sealed)?;
                sealer.seal(&id.0, "password", &plain)
            },
        )?;
        r.resealed += batch.resealed;
        r.remaining = (r.remaining - batch.resealed).max(0);
        r.after = batch.last.map(|s| s.0);
        r.live_done = batch.exhausted;
        workspaces::set_rotation(tx, ws, &r)?;
        Ok(Some(r))
    })?;
    let Some(r) = state else {
        return Ok(Step::Done);
    };
    if !r.live_done {
        return Ok(Step::More);
    }
    // Found outside the write lock: the query scans the table.
    let deleted = store::read(c, |tx| sessions::deleted_with_password(tx, ws, BATCH_ROWS))?;
    if !deleted.is_empty() {
        store::write(c, None, |tx| sessions::wipe_deleted_passwords(tx, &deleted))?;
        return Ok(Step::More);
    }
    store::write(c, None, |tx| match workspaces::rotation(tx, ws)? {
        // Every live session is past the pass and new secrets are sealed
        // under the target key, so nothing needs an older key any more.
        Some(cur) if cur.target == r.target && cur.live_done => {
            workspaces::finish_rotation(tx, ws, r.target)
        }
        _ => Ok(()),
    })?;
    keys.forget_before(ws, r.target);
    Ok(Step::Done)
}

/// Steps until the rotation is done (true), `budget` is spent or `stop`
/// says so (false). Between batches it sleeps as long as the batch took, so
/// other writers get the lock at least half of the time.
pub fn run(
    c: &mut Connection,
    keys: &Keyring,
    ws: WorkspaceId,
    budget: Option<Duration>,
    stop: &dyn Fn() -> bool,
) -> Result<bool> {
    let started = Instant::now();
    loop {
        let t = Instant::now();
        if step(c, keys, ws)? == Step::Done {
            return Ok(true);
        }
        if stop() || budget.is_some_and(|b| started.elapsed() >= b) {
            return Ok(false);
        }
        std::thread::sleep(t.elapsed());
    }
}

/// The progress of the workspace's rotation, if one is running.
pub fn progress(tx: &Connection, ws: WorkspaceId) -> Result<Option<KeyRotation>> {
    workspaces::rotation(tx, ws)
}

/// The estimate of session passwords a rotation of `ws` will re-seal.
pub fn to_reseal(tx: &Connection, ws: WorkspaceId) -> Result<i64> {
    let current = workspaces::key_version(tx, ws)?.ok_or_else(|| Error::not_found("workspace"))?;
    sessions::count_to_reseal(tx, ws, current + 1, None)
}

static WAKE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Tells the background thread there is work (or that the server stops).
pub fn wake() {
    let (flag, cv) = &WAKE;
    *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
    cv.notify_all();
}

fn wait(timeout: Duration) {
    let (flag, cv) = &WAKE;
    let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
    let (mut guard, _) = cv
        .wait_timeout_while(guard, timeout, |woken| !*woken)
        .unwrap_or_else(|p| p.into_inner());
    *guard = false;
}

/// Starts the thread that finishes rotations in the background: at once for
/// any a stop or crash left unfinished, then whenever `wake` is called. It
/// returns once the server is shutting down (call `wake` to hurry it).
pub fn spawn(state: Arc<State>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("key-rotation".into())
        .spawn(move || {
            let stopping = || state.shutting_down.load(Ordering::SeqCst);
            while !stopping() {
                // After a failure (say, a busy database) try again soon;
                // otherwise the timeout is a safety net only, since
                // RotateWorkspaceKey wakes the thread.
                let pause = if pass(&state, &stopping) {
                    Duration::from_secs(60)
                } else {
                    RETRY
                };
                if !stopping() {
                    wait(pause);
                }
            }
        })
}

/// Works through every unfinished rotation (old data keys still present);
/// false when one failed. A failing workspace is logged and skipped, so it
/// does not hold up the others.
fn pass(state: &State, stopping: &dyn Fn() -> bool) -> bool {
    let log = |what: &str, e: &Error| {
        error!(
            "key rotation{what}: {}; retrying in {}s",
            e.cause.as_deref().unwrap_or(&e.message),
            RETRY.as_secs()
        )
    };
    let pending = state
        .db
        .get()
        .map_err(Error::from)
        .and_then(|mut c| store::read(&mut c, workspaces::unfinished_rotations));
    let pending = match pending {
        Ok(p) => p,
        Err(e) => {
            log("", &e);
            return false;
        }
    };
    let mut ok = true;
    for ws in pending {
        if stopping() {
            break;
        }
        let done = state
            .db
            .get()
            .map_err(Error::from)
            .and_then(|mut c| run(&mut c, &state.keys, ws, None, stopping));
        match done {
            Ok(true) => info!("key rotation of workspace {ws}: done"),
            Ok(false) => {}
            Err(e) => {
                log(&format!(" of workspace {ws}"), &e);
                ok = false;
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key version a sealed blob names.
    fn version_of(blob: &[u8]) -> u32 {
        crate::crypto::sealed_version(blob).unwrap()
    }
    use crate::crypto::MasterKey;
    use crate::ids::{PoolId, ProviderId, SessionId};
    use crate::store::sessions::SessionRow;

    struct Db {
        path: std::path::PathBuf,
        pool: store::Pool,
        keys: Keyring,
    }

    impl Drop for Db {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
            }
        }
    }

    /// The same master key each time (env form: no key file is written).
    fn master() -> MasterKey {
        let unused = std::env::temp_dir().join("pp-rot-no-key-file");
        MasterKey::load(
            &unused,
            Some("CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="),
            false,
        )
        .unwrap()
    }

    fn db() -> Db {
        let path = std::env::temp_dir().join(format!("pp-rot-{}.db", uuid::Uuid::now_v7()));
        let pool = store::open(
            &path,
            2,
            crate::config::Synchronous::Normal,
            store::IfMissing::Create,
        )
        .unwrap();
        Db {
            path,
            pool,
            keys: Keyring::new(master()),
        }
    }

    /// A workspace with a provider and `n` static sessions whose passwords
    /// are `pw-<i>`, all sealed under key version 1.
    fn workspace(db: &Db, n: usize) -> (WorkspaceId, Vec<SessionId>) {
        let mut c = db.pool.get().unwrap();
        store::write(&mut c, None, |tx| {
            let ws = WorkspaceId::parse(&super::super::workspaces::create_workspace(tx, &db.keys, "w")?.id)?;
            let provider = ProviderId::generate();
            let sealer = Sealer::new(tx, &db.keys, ws)?;
            providers::insert(
                tx,
                &providers::ProviderRow {
                    id: provider,
                    workspace_id: ws,
                    ptype: 3,
                    name: "p".into(),
                    gateway: None,
                    enabled: true,
                    credentials: Some(sealer.seal(&provider.0, "credentials", b"{}")?),
                    key_version: 1,
                    sync_interval_seconds: 0,
                    sync_pool_id: None,
                    api_base_url: None,
                    last_sync: None,
                    sync_mode: None,
                    version: 1,
                    created_at: 0,
                    updated_at: 0,
                },
            )?;
            let pool = PoolId::generate();
            tx.execute(
                "INSERT INTO pools(id, workspace_id, name, rotation_interval, rotate_on_unhealthy, \
                 max_accounts_per_session, failure_threshold, cooldown_seconds, version, created_at, updated_at) \
                 VALUES (?1, ?2, 'p', 0, 1, 0, 3, 60, 1, 0, 0)",
                rusqlite::params![pool, ws],
            )?;
            let mut ids = Vec::new();
            for i in 0..n {
                let id = SessionId::generate();
                let session = SessionRow {
                    scheme: Some("http".into()),
                    host: Some("203.0.113.1".into()),
                    port: Some(3128),
                    password: Some(sealer.seal(&id.0, "password", format!("pw-{i}").as_bytes())?),
                    ..SessionRow::new(id, ws, pool, provider, format!("t{i}"), 0)
                };
                sessions::insert(tx, &session)?;
                ids.push(id);
            }
            Ok((ws, ids))
        })
        .unwrap()
    }

    fn passwords(c: &Connection, ws: WorkspaceId) -> Vec<(SessionId, Vec<u8>)> {
        c.prepare("SELECT id, password FROM sessions WHERE workspace_id = ?1 AND password IS NOT NULL ORDER BY id")
            .unwrap()
            .query_map([ws], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    }

    fn data_key_versions(c: &Connection, ws: WorkspaceId) -> Vec<u32> {
        c.prepare("SELECT key_version FROM data_keys WHERE workspace_id = ?1 ORDER BY key_version")
            .unwrap()
            .query_map([ws], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn an_interrupted_rotation_resumes_from_its_progress_row_and_finishes() {
        let n = 5000;
        let db = db();
        let (ws, ids) = workspace(&db, n);
        let mut c = db.pool.get().unwrap();
        let remaining = store::read(&mut c, |tx| to_reseal(tx, ws)).unwrap();
        assert_eq!(remaining, n as i64);
        store::write(&mut c, None, |tx| begin(tx, &db.keys, ws, remaining)).unwrap();
        // One batch, then the "process" dies: a fresh keyring (nothing
        // cached) and a fresh connection are all a restart has.
        assert_eq!(step(&mut c, &db.keys, ws).unwrap(), Step::More);
        let mid = store::read(&mut c, |tx| progress(tx, ws)).unwrap().unwrap();
        assert_eq!(mid.target, 2);
        assert!(
            !mid.live_done && mid.resealed > 0 && (mid.resealed as usize) < n,
            "{mid:?}"
        );
        assert_eq!(mid.remaining, n as i64 - mid.resealed);
        let under = |v: u32| {
            passwords(&c, ws)
                .iter()
                .filter(|(_, b)| version_of(b) == v)
                .count()
        };
        assert_eq!(under(2) as i64, mid.resealed);
        assert_eq!(under(1), n - mid.resealed as usize);
        assert_eq!(
            data_key_versions(&c, ws),
            vec![1, 2],
            "both keys while unfinished"
        );
        // Mid-way, every password opens (under whichever key it names).
        for (id, blob) in passwords(&c, ws) {
            super::super::open(&c, &db.keys, ws, &id.0, "password", &blob).unwrap();
        }
        // A second rotation is refused while this one runs.
        let e = store::write(&mut c, None, |tx| begin(tx, &db.keys, ws, 0)).unwrap_err();
        assert_eq!(e.code.as_str(), "failed_precondition");
        drop(c);

        let keys = Keyring::new(master());
        let mut c = db.pool.get().unwrap();
        let pending = store::read(&mut c, workspaces::unfinished_rotations).unwrap();
        assert_eq!(pending, vec![ws], "a restart finds the unfinished rotation");
        assert!(run(&mut c, &keys, ws, None, &|| false).unwrap());
        assert!(store::read(&mut c, |tx| progress(tx, ws))
            .unwrap()
            .is_none());
        assert!(store::read(&mut c, workspaces::unfinished_rotations)
            .unwrap()
            .is_empty());
        assert_eq!(data_key_versions(&c, ws), vec![2], "the old key is gone");
        let all = passwords(&c, ws);
        assert_eq!(all.len(), n);
        for (i, id) in ids.iter().enumerate() {
            let (_, blob) = all.iter().find(|(s, _)| s == id).unwrap();
            assert_eq!(version_of(blob), 2);
            let plain = super::super::open(&c, &keys, ws, &id.0, "password", blob).unwrap();
            assert_eq!(plain, format!("pw-{i}").as_bytes());
        }
    }

    #[test]
    fn a_batch_stops_at_its_time_limit_and_the_next_starts_where_it_stopped() {
        let db = db();
        let (ws, _) = workspace(&db, 50);
        let mut c = db.pool.get().unwrap();
        store::write(&mut c, None, |tx| begin(tx, &db.keys, ws, 50)).unwrap();
        // A deadline already past: the batch handles one row and commits.
        let b = store::write(&mut c, None, |tx| {
            sessions::reseal_passwords(tx, ws, 2, None, 2000, Instant::now(), |_, b| Ok(b.to_vec()))
        })
        .unwrap();
        assert_eq!((b.resealed, b.exhausted), (1, false));
        let b2 = store::write(&mut c, None, |tx| {
            sessions::reseal_passwords(
                tx,
                ws,
                2,
                b.last,
                2000,
                Instant::now() + Duration::from_secs(60),
                |_, b| Ok(b.to_vec()),
            )
        })
        .unwrap();
        assert_eq!((b2.resealed, b2.exhausted), (49, true));
    }
}
