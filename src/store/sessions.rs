//! Proxy sessions: static endpoints or rotation tokens, soft-deleted, with
//! health counters and an assignment count kept by triggers.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::assign::{self, Candidate};
use crate::error::Result;
use crate::ids::{PoolId, ProviderId, SessionId, WorkspaceId};

use super::columns::{table, update_fields};
use super::{after, page, Page};

table! {
    #[derive(Debug, Clone)]
    pub struct SessionRow in "sessions" {
        pub id: SessionId,
        pub workspace_id: WorkspaceId,
        pub pool_id: PoolId,
        pub provider_id: ProviderId,
        pub token: String,
        pub scheme: Option<String>,
        pub host: Option<String>,
        pub port: Option<i32>,
        pub username: Option<String>,
        /// Sealed.
        pub password: Option<Vec<u8>>,
        pub enabled: bool,
        pub consecutive_failures: i32,
        pub last_success_at: Option<i64>,
        pub last_failure_at: Option<i64>,
        pub unhealthy_until: Option<i64>,
        /// Kept by triggers on `assignments`; 0 for a new session.
        pub assignment_count: i32,
        pub version: i64,
        pub created_at: i64,
        pub updated_at: i64,
        /// The vendor's expiry (SyncProvider); not handed out from then on.
        pub expires_at: Option<i64>,
    }
    read_only {
        /// Sessions are soft-deleted; DeleteSession sets `deleted_at`.
        pub deleted: bool = "deleted_at IS NOT NULL",
    }
}

impl SessionRow {
    /// A new rotation session as CreateSession makes it: enabled, healthy,
    /// without assignments, at version 1. A static one sets its endpoint
    /// fields on top.
    pub fn new(
        id: SessionId,
        workspace_id: WorkspaceId,
        pool_id: PoolId,
        provider_id: ProviderId,
        token: String,
        now: i64,
    ) -> Self {
        SessionRow {
            id,
            workspace_id,
            pool_id,
            provider_id,
            token,
            scheme: None,
            host: None,
            port: None,
            username: None,
            password: None,
            enabled: true,
            consecutive_failures: 0,
            last_success_at: None,
            last_failure_at: None,
            unhealthy_until: None,
            assignment_count: 0,
            version: 1,
            created_at: now,
            updated_at: now,
            expires_at: None,
            deleted: false,
        }
    }

    /// A rotation session has no endpoint of its own.
    pub fn is_static(&self) -> bool {
        self.host.is_some()
    }

    /// What session choice's rule looks at (`assign::eligible`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn state(&self) -> assign::SessionState {
        assign::SessionState {
            id: self.id,
            enabled: self.enabled,
            deleted: self.deleted,
            unhealthy_until: self.unhealthy_until,
            expires_at: self.expires_at,
            assignments: self.assignment_count as i64,
        }
    }
}

/// Inserts a session unless its token is taken by a live session of the
/// pool: false then (one index probe instead of a lookup and an insert).
/// The caller adds what it created to the session counters once per call
/// (`count_created`): a per-row trigger cut BulkCreateSessions from ~92k to
/// ~35k sessions/s. Updates and deletes keep their triggers.
pub fn insert(c: &Connection, s: &SessionRow) -> Result<bool> {
    let n = c
        .prepare_cached(&format!(
            "{} ON CONFLICT(pool_id, token) WHERE deleted_at IS NULL DO NOTHING",
            SessionRow::INSERT
        ))?
        .execute(params_from_iter(s.values()?))?;
    Ok(n == 1)
}

/// Counts new live sessions, enabled and disabled, into the /metrics
/// counters.
pub fn count_created(c: &Connection, enabled: i64, disabled: i64) -> Result<()> {
    if enabled != 0 || disabled != 0 {
        c.prepare_cached(
            "UPDATE session_counts SET live_enabled = live_enabled + ?1, \
             live_disabled = live_disabled + ?2 WHERE id = 1",
        )?
        .execute([enabled, disabled])?;
    }
    Ok(())
}

/// Writes the user-editable fields back.
pub fn update(c: &Connection, s: &SessionRow) -> Result<()> {
    update_fields!(c, "sessions", s; scheme, host, port, username, password, enabled, version, updated_at, expires_at)?;
    Ok(())
}

/// A live session of the workspace.
pub fn get(c: &Connection, ws: WorkspaceId, id: SessionId) -> Result<Option<SessionRow>> {
    Ok(SessionRow::one(
        c,
        "WHERE id = ?1 AND workspace_id = ?2 AND deleted_at IS NULL",
        params![id, ws],
    )?)
}

/// A session by id whatever its state (for resolution of an assignment).
pub fn get_any(c: &Connection, id: SessionId) -> Result<Option<SessionRow>> {
    Ok(SessionRow::one(c, "WHERE id = ?1", [id])?)
}

/// Ids of live sessions, of one pool or the whole workspace.
/// A live session's state, as `pools::session_states` counts them: the
/// first of disabled, cooling down, unhealthy, healthy that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Healthy,
    Unhealthy,
    CoolingDown,
    Disabled,
}

impl State {
    /// The SQL condition, `?4` being now (ms); every one names `?4`, so the
    /// statement always takes the same four parameters.
    fn condition(self) -> &'static str {
        match self {
            // An expired session counts as disabled.
            State::Disabled => "(enabled = 0 OR expires_at <= ?4)",
            State::CoolingDown => {
                "enabled = 1 AND coalesce(expires_at > ?4, 1) AND unhealthy_until > ?4"
            }
            State::Unhealthy => {
                "enabled = 1 AND coalesce(expires_at > ?4, 1) \
                 AND coalesce(unhealthy_until <= ?4, 1) AND consecutive_failures > 0"
            }
            State::Healthy => {
                "enabled = 1 AND coalesce(expires_at > ?4, 1) \
                 AND coalesce(unhealthy_until <= ?4, 1) AND consecutive_failures = 0"
            }
        }
    }
}

/// Ids of live sessions of a pool (or of the workspace), in id order, in
/// `state` (at `now`) when one is given.
pub fn list_ids(
    c: &Connection,
    ws: WorkspaceId,
    pool: Option<PoolId>,
    state: Option<(State, i64)>,
    cursor: Option<[u8; 16]>,
    size: usize,
) -> Result<Page<SessionId>> {
    let lim = size as i64 + 1;
    let scope = match pool {
        Some(_) => "pool_id = ?1",
        None => "workspace_id = ?1",
    };
    let (cond, now) = match state {
        Some((st, now)) => (st.condition(), now),
        None => ("?4 IS NOT NULL", 0),
    };
    let sql = format!(
        "SELECT id FROM sessions WHERE {scope} AND deleted_at IS NULL AND {cond} \
         AND id > ?2 ORDER BY id LIMIT ?3"
    );
    let key: [u8; 16] = match pool {
        Some(p) => p.0,
        None => ws.0,
    };
    let rows = c
        .prepare_cached(&sql)?
        .query_map(params![&key[..], after(cursor), lim, now], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<SessionId>>>()?;
    Ok(page(rows, size, |s| s.0))
}

/// The live sessions a provider has in a pool (SyncProvider's side of
/// the reconcile).
pub fn live_of_provider(
    c: &Connection,
    pool: PoolId,
    provider: ProviderId,
) -> Result<Vec<SessionRow>> {
    Ok(SessionRow::all(
        c,
        "WHERE pool_id = ?1 AND provider_id = ?2 AND deleted_at IS NULL",
        params![pool, provider],
    )?)
}

/// The live session holding a token in a pool.
pub fn live_by_token(c: &Connection, pool: PoolId, token: &str) -> Result<Option<SessionId>> {
    Ok(c.prepare_cached(
        "SELECT id FROM sessions WHERE pool_id = ?1 AND token = ?2 AND deleted_at IS NULL",
    )?
    .query_row(params![pool, token], |r| r.get(0))
    .optional()?)
}

/// The highest all-digit token among the pool's live sessions (Webshare
/// tokens are list indexes), as digits without leading zeros; "0" when
/// there is none. Compared as text by length, then digit by digit, so a
/// token of any length counts: an integer cast would overflow past 18
/// digits, and leaving those out let the index generated after
/// 999999999999999999 be generated again.
pub fn max_numeric_token(c: &Connection, pool: PoolId) -> Result<String> {
    let max: Option<String> = c
        .prepare_cached(
            "SELECT ltrim(token, '0') AS t FROM sessions WHERE pool_id = ?1 AND deleted_at IS NULL \
             AND token <> '' AND token NOT GLOB '*[^0-9]*' ORDER BY length(t) DESC, t DESC LIMIT 1",
        )?
        .query_row([pool], |r| r.get(0))
        .optional()?;
    Ok(max.filter(|t| !t.is_empty()).unwrap_or_else(|| "0".into()))
}

/// The row stays (assignments and history name it) but its sealed password
/// goes: a deleted session never resolves again, so nothing needs it.
/// Soft-deletes a session a scoped read returned, wiping its password.
pub fn soft_delete(c: &Connection, s: &SessionRow, now: i64) -> Result<()> {
    c.execute(
        "UPDATE sessions SET deleted_at = ?2, updated_at = ?2, password = NULL WHERE id = ?1",
        params![s.id, now],
    )?;
    Ok(())
}

pub fn set_health(c: &Connection, s: &SessionRow) -> Result<()> {
    update_fields!(c, "sessions", s; consecutive_failures, last_success_at, last_failure_at, unhealthy_until)?;
    Ok(())
}

/// What one batch of a key rotation's session pass did.
#[derive(Debug, Default)]
pub struct ResealBatch {
    pub resealed: i64,
    /// The last session looked at: the next batch starts after it.
    pub last: Option<SessionId>,
    /// No live session of the workspace is left after `last`.
    pub exhausted: bool,
}

/// One batch of a key rotation: the workspace's live sessions after `after`
/// in id order, at most `limit` of them, re-sealing with `f` the passwords
/// sealed under a data key older than `target`. Stops early once `until`
/// has passed, so the caller's write lock is held briefly. The rows are
/// filtered here rather than in SQL so a batch reads at most `limit` index
/// entries even when few sessions have a password.
pub fn reseal_passwords(
    c: &Connection,
    ws: WorkspaceId,
    target: u32,
    after: Option<SessionId>,
    limit: usize,
    until: std::time::Instant,
    mut f: impl FnMut(SessionId, &[u8]) -> Result<Vec<u8>>,
) -> Result<ResealBatch> {
    let rows = c
        .prepare_cached(
            "SELECT id, password FROM sessions INDEXED BY sessions_live_by_workspace \
             WHERE workspace_id = ?1 AND deleted_at IS NULL AND id > ?2 ORDER BY id LIMIT ?3",
        )?
        .query_map(
            params![
                ws,
                after.map(|a| a.to_vec()).unwrap_or_default(),
                limit as i64
            ],
            |r| Ok((r.get::<_, SessionId>(0)?, r.get::<_, Option<Vec<u8>>>(1)?)),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = ResealBatch {
        last: after,
        exhausted: rows.len() < limit,
        ..Default::default()
    };
    let mut stmt = c.prepare_cached("UPDATE sessions SET password = ?2 WHERE id = ?1")?;
    let n = rows.len();
    for (i, (id, sealed)) in rows.into_iter().enumerate() {
        if let Some(sealed) = sealed {
            if crate::crypto::sealed_version(&sealed)? < target {
                stmt.execute(params![id, f(id, &sealed)?])?;
                out.resealed += 1;
            }
        }
        out.last = Some(id);
        if i + 1 < n && std::time::Instant::now() >= until {
            out.exhausted = false;
            break;
        }
    }
    Ok(out)
}

/// Live sessions of the workspace after `after` whose password is sealed
/// under a data key older than `target`: what a rotation has left to do.
pub fn count_to_reseal(
    c: &Connection,
    ws: WorkspaceId,
    target: u32,
    after: Option<SessionId>,
) -> Result<i64> {
    Ok(c.prepare_cached(
        "SELECT count(*) FROM sessions INDEXED BY sessions_live_by_workspace \
         WHERE workspace_id = ?1 AND deleted_at IS NULL AND id > ?2 \
         AND password IS NOT NULL AND substr(password, 1, 4) < ?3",
    )?
    .query_row(
        params![
            ws,
            after.map(|a| a.to_vec()).unwrap_or_default(),
            target.to_be_bytes().to_vec()
        ],
        |r| r.get(0),
    )?)
}

/// Deleted sessions of the workspace that still hold a sealed password
/// (deleted before DeleteSession wiped it). A full scan, so a rotation runs
/// it in a read transaction and wipes what it finds in a short write one.
pub fn deleted_with_password(
    c: &Connection,
    ws: WorkspaceId,
    limit: usize,
) -> Result<Vec<SessionId>> {
    Ok(c.prepare_cached(
        "SELECT id FROM sessions WHERE workspace_id = ?1 AND deleted_at IS NOT NULL \
         AND password IS NOT NULL LIMIT ?2",
    )?
    .query_map(params![ws, limit as i64], |r| r.get(0))?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Wipes the passwords of deleted sessions (a rotation's clean-up of rows
/// deleted before deletion wiped them).
pub fn wipe_deleted_passwords(c: &Connection, ids: &[SessionId]) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "UPDATE sessions SET password = NULL WHERE id = ?1 AND deleted_at IS NOT NULL",
    )?;
    for id in ids {
        stmt.execute([id])?;
    }
    Ok(())
}

/// How many least-loaded sessions session choice looks at. Ties are broken
/// at random among these (index order decides which of a larger tie make the
/// window); since each choice raises the chosen session's count, load still
/// spreads evenly, and the query stays an index range of 64 rows even at a
/// million sessions.
pub const CHOICE_WINDOW: i64 = 64;

/// The least-loaded sessions of a pool that `assign::eligible` allows
/// (live, enabled, healthy, below the cap, not `exclude`), fewest
/// assignments first (index `sessions_choice`). The WHERE clause is that
/// predicate in SQL: `assign::eligible` is the authority, and the test
/// `candidates_are_exactly_the_eligible_sessions` holds this query to it.
pub fn candidates(
    c: &Connection,
    pool: PoolId,
    max_per_session: i32,
    exclude: Option<SessionId>,
    now: i64,
) -> Result<Vec<Candidate>> {
    let cap = if max_per_session > 0 {
        max_per_session as i64
    } else {
        i64::MAX
    };
    Ok(c.prepare_cached(
        "SELECT id, assignment_count FROM sessions INDEXED BY sessions_choice \
             WHERE pool_id = ?1 AND deleted_at IS NULL AND enabled = 1 AND assignment_count < ?2 \
             AND (unhealthy_until IS NULL OR unhealthy_until <= ?3) AND id IS NOT ?4 \
             AND (expires_at IS NULL OR expires_at > ?3) \
             ORDER BY assignment_count LIMIT ?5",
    )?
    .query_map(params![pool, cap, now, exclude, CHOICE_WINDOW], |r| {
        Ok(Candidate {
            id: r.get(0)?,
            assignments: r.get(1)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Live sessions by state, for /metrics: the counters the triggers keep,
/// and the sessions in a cooldown now through their index, so a scrape
/// costs the number of unhealthy sessions, not of all sessions. "Unhealthy"
/// is `!assign::is_healthy` (checked by the same test as `candidates`).
pub fn count_by_state(c: &Connection, now: i64) -> Result<Vec<(&'static str, i64)>> {
    let (enabled, disabled): (i64, i64) = c.query_row(
        "SELECT live_enabled, live_disabled FROM session_counts WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let unhealthy: i64 = c
        .prepare_cached(
            "SELECT count(*) FROM sessions INDEXED BY sessions_cooling \
             WHERE unhealthy_until > ?1 AND deleted_at IS NULL AND enabled = 1",
        )?
        .query_row([now], |r| r.get(0))?;
    Ok(vec![
        ("healthy", enabled - unhealthy),
        ("unhealthy", unhealthy),
        ("disabled", disabled),
    ])
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::store::pools::{self, PoolRow};
    use crate::store::providers::{self, ProviderRow};
    use crate::store::workspaces::{self, WorkspaceRow};

    /// A fresh database file, removed when dropped.
    struct Db(std::path::PathBuf, crate::store::Pool);

    impl Drop for Db {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }

    fn db() -> Db {
        let path = std::env::temp_dir().join(format!("pp-cand-{}.db", uuid::Uuid::now_v7()));
        let pool = crate::store::open(
            &path,
            1,
            crate::config::Synchronous::Normal,
            crate::store::IfMissing::Create,
        )
        .unwrap();
        Db(path, pool)
    }

    /// A workspace with one provider, in `tx`.
    fn fixture(tx: &Connection) -> (WorkspaceId, ProviderId) {
        let ws = WorkspaceId::generate();
        let w = WorkspaceRow {
            id: ws,
            name: "w".into(),
            key_version: 1,
            version: 1,
            created_at: 0,
            updated_at: 0,
            key_rotation: None,
        };
        workspaces::insert(tx, &w, b"not a real wrapped key").unwrap();
        let provider = ProviderId::generate();
        let p = ProviderRow {
            id: provider,
            workspace_id: ws,
            ptype: 3,
            name: "p".into(),
            enabled: true,
            credentials: None,
            key_version: 1,
            version: 1,
            created_at: 0,
            updated_at: 0,
            gateway: None,
            sync_interval_seconds: 0,
            sync_pool_id: None,
            api_base_url: None,
            last_sync: None,
            sync_mode: None,
        };
        providers::insert(tx, &p).unwrap();
        (ws, provider)
    }

    /// An enabled, healthy rotation session without assignments.
    fn session(ws: WorkspaceId, pool: PoolId, provider: ProviderId, i: usize) -> SessionRow {
        let id = SessionId::generate();
        SessionRow::new(id, ws, pool, provider, format!("t{i}"), 0)
    }

    fn pool_row(ws: WorkspaceId, cap: i32) -> PoolRow {
        PoolRow {
            id: PoolId::generate(),
            workspace_id: ws,
            name: format!("cap {cap}"),
            rotation_interval: 0,
            rotate_on_unhealthy: true,
            max_accounts_per_session: cap,
            failure_threshold: 3,
            cooldown_seconds: 60,
            version: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Over generated sessions (enabled or not, deleted or not, a cooldown
    /// in the past, at `now`, in the future or none, loads around the cap)
    /// and every exclusion, the SQL of `candidates` returns exactly the
    /// sessions `assign::eligible` allows, and `count_by_state` counts
    /// health the way `assign::is_healthy` does. `assign::eligible` is the
    /// authority: a change to either query that departs from it fails here.
    #[test]
    fn candidates_are_exactly_the_eligible_sessions() {
        let db = db();
        let mut c = db.1.get().unwrap();
        let tx = c.transaction().unwrap();
        let mut rng = StdRng::seed_from_u64(20);
        let now = 1_000_000;
        let (ws, provider) = fixture(&tx);
        // Each pool stays below CHOICE_WINDOW sessions, so the window cuts
        // nothing and the sets must be equal.
        let mut all: Vec<(PoolId, i32, Vec<SessionRow>)> = Vec::new();
        for cap in [0, 1, 2, 3, 5] {
            let p = pool_row(ws, cap);
            pools::insert(&tx, &p).unwrap();
            let mut rows = Vec::new();
            for i in 0..50 {
                let s = SessionRow {
                    enabled: rng.random_bool(0.8),
                    unhealthy_until: [
                        None,
                        Some(now - 1000),
                        Some(now - 1),
                        Some(now),
                        Some(now + 1),
                        Some(now + 1000),
                    ][rng.random_range(0..6)],
                    expires_at: [None, None, Some(now - 1), Some(now), Some(now + 1)]
                        [rng.random_range(0..5)],
                    assignment_count: rng.random_range(0..7),
                    ..session(ws, p.id, provider, i)
                };
                assert!(insert(&tx, &s).unwrap());
                count_created(&tx, i64::from(s.enabled), i64::from(!s.enabled)).unwrap();
                if rng.random_bool(0.2) {
                    soft_delete(&tx, &s, now).unwrap();
                }
                rows.push(get_any(&tx, s.id).unwrap().unwrap());
            }
            all.push((p.id, cap, rows));
        }
        let deleted = all.iter().flat_map(|p| &p.2).filter(|s| s.deleted).count();
        assert!(deleted > 0, "the generated sessions include deleted ones");

        for at in [now - 1, now, now + 1] {
            for (pool, cap, rows) in &all {
                let excludes = std::iter::once(None).chain(rows.iter().map(|s| Some(s.id)));
                for exclude in excludes {
                    let mut got: Vec<(SessionId, i64)> = candidates(&tx, *pool, *cap, exclude, at)
                        .unwrap()
                        .into_iter()
                        .map(|c| (c.id, c.assignments))
                        .collect();
                    let mut want: Vec<(SessionId, i64)> = rows
                        .iter()
                        .map(SessionRow::state)
                        .filter(|s| assign::eligible(s, *cap, exclude, at))
                        .map(|s| (s.id, s.assignments))
                        .collect();
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "cap {cap}, exclude {exclude:?}, now {at}");
                }
            }
            let live = || all.iter().flat_map(|p| &p.2).filter(|s| !s.deleted);
            let count = |f: &dyn Fn(&SessionRow) -> bool| live().filter(|s| f(s)).count() as i64;
            let healthy = |s: &SessionRow| assign::is_healthy(s.unhealthy_until, at);
            assert_eq!(
                count_by_state(&tx, at).unwrap(),
                vec![
                    ("healthy", count(&|s| s.enabled && healthy(s))),
                    ("unhealthy", count(&|s| s.enabled && !healthy(s))),
                    ("disabled", count(&|s| !s.enabled)),
                ],
                "now {at}"
            );
        }
    }

    /// With more eligible sessions than the window, `candidates` returns
    /// CHOICE_WINDOW of them, all eligible, with the lowest loads.
    #[test]
    fn candidates_are_the_least_loaded_window() {
        let db = db();
        let mut c = db.1.get().unwrap();
        let tx = c.transaction().unwrap();
        let mut rng = StdRng::seed_from_u64(21);
        let (ws, provider) = fixture(&tx);
        let p = pool_row(ws, 0);
        pools::insert(&tx, &p).unwrap();
        let mut loads = Vec::new();
        for i in 0..200 {
            let load = rng.random_range(0..50);
            loads.push(load as i64);
            let s = SessionRow {
                assignment_count: load,
                ..session(ws, p.id, provider, i)
            };
            assert!(insert(&tx, &s).unwrap());
        }
        loads.sort();
        let got: Vec<i64> = candidates(&tx, p.id, 0, None, 0)
            .unwrap()
            .iter()
            .map(|c| c.assignments)
            .collect();
        assert_eq!(got, loads[..CHOICE_WINDOW as usize]);
    }
}
