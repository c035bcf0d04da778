//! Proxy sessions: static endpoints or rotation tokens, soft-deleted, with
//! health counters and an assignment count kept by triggers.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::assign::{self, Candidate};
use crate::error::Result;
use crate::ids::{PoolId, ProviderId, SessionId, WorkspaceId};
use crate::pb::{v1, Timestamp};

use super::{after, page, Page};

#[derive(Debug, Clone)]
pub struct SessionRow {
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
    pub assignment_count: i32,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted: bool,
}

impl SessionRow {
    /// A rotation session has no endpoint of its own.
    pub fn is_static(&self) -> bool {
        self.host.is_some()
    }

    pub fn to_pb(&self, now: i64) -> v1::Session {
        let ts = |v: Option<i64>| v.map(Timestamp::from_millis);
        v1::Session {
            id: self.id.to_vec(),
            workspace_id: self.workspace_id.to_vec(),
            pool_id: self.pool_id.to_vec(),
            provider_id: self.provider_id.to_vec(),
            token: self.token.clone(),
            scheme: self.scheme.clone().unwrap_or_default(),
            host: self.host.clone().unwrap_or_default(),
            port: self.port.unwrap_or_default(),
            username: self.username.clone().unwrap_or_default(),
            enabled: self.enabled,
            version: self.version,
            created_at: ts(Some(self.created_at)),
            updated_at: ts(Some(self.updated_at)),
            health: Some(v1::SessionHealth {
                healthy: assign::is_healthy(self.unhealthy_until, now),
                consecutive_failures: self.consecutive_failures,
                last_success_at: ts(self.last_success_at),
                last_failure_at: ts(self.last_failure_at),
                unhealthy_until: ts(self.unhealthy_until),
            }),
            assignment_count: self.assignment_count,
        }
    }
}

pub const COLS: &str = "id, workspace_id, pool_id, provider_id, token, scheme, host, port, username, password, enabled, \
    consecutive_failures, last_success_at, last_failure_at, unhealthy_until, assignment_count, version, created_at, \
    updated_at, deleted_at IS NOT NULL";

/// Maps the `COLS` columns starting at column `o`.
pub fn row_at(r: &Row, o: usize) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(o)?,
        workspace_id: r.get(o + 1)?,
        pool_id: r.get(o + 2)?,
        provider_id: r.get(o + 3)?,
        token: r.get(o + 4)?,
        scheme: r.get(o + 5)?,
        host: r.get(o + 6)?,
        port: r.get(o + 7)?,
        username: r.get(o + 8)?,
        password: r.get(o + 9)?,
        enabled: r.get(o + 10)?,
        consecutive_failures: r.get(o + 11)?,
        last_success_at: r.get(o + 12)?,
        last_failure_at: r.get(o + 13)?,
        unhealthy_until: r.get(o + 14)?,
        assignment_count: r.get(o + 15)?,
        version: r.get(o + 16)?,
        created_at: r.get(o + 17)?,
        updated_at: r.get(o + 18)?,
        deleted: r.get(o + 19)?,
    })
}

fn row(r: &Row) -> rusqlite::Result<SessionRow> {
    row_at(r, 0)
}

/// Inserts a session unless its token is taken by a live session of the
/// pool: false then (one index probe instead of a lookup and an insert).
pub fn insert(c: &Connection, s: &SessionRow) -> Result<bool> {
    let n = c
        .prepare_cached(
            "INSERT INTO sessions(id, workspace_id, pool_id, provider_id, token, scheme, host, port, username, password, \
         enabled, version, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
         ON CONFLICT(pool_id, token) WHERE deleted_at IS NULL DO NOTHING",
        )?
    .execute(params![
        s.id,
        s.workspace_id,
        s.pool_id,
        s.provider_id,
        s.token,
        s.scheme,
        s.host,
        s.port,
        s.username,
        s.password,
        s.enabled,
        s.version,
        s.created_at,
        s.updated_at
    ])?;
    Ok(n == 1)
}

/// Writes the user-editable fields back.
pub fn update(c: &Connection, s: &SessionRow) -> Result<()> {
    c.execute(
        "UPDATE sessions SET scheme = ?2, host = ?3, port = ?4, username = ?5, password = ?6, enabled = ?7, \
         version = ?8, updated_at = ?9 WHERE id = ?1",
        params![s.id, s.scheme, s.host, s.port, s.username, s.password, s.enabled, s.version, s.updated_at],
    )?;
    Ok(())
}

/// A live session of the workspace.
pub fn get(c: &Connection, ws: WorkspaceId, id: SessionId) -> Result<Option<SessionRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLS} FROM sessions WHERE id = ?1 AND workspace_id = ?2 AND deleted_at IS NULL"
    ))?
    .query_row(params![id, ws], row)
    .optional()?)
}

/// A session by id whatever its state (for resolution of an assignment).
pub fn get_any(c: &Connection, id: SessionId) -> Result<Option<SessionRow>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLS} FROM sessions WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?,
    )
}

/// Ids of live sessions, of one pool or the whole workspace.
pub fn list_ids(
    c: &Connection,
    ws: WorkspaceId,
    pool: Option<PoolId>,
    cursor: Option<[u8; 16]>,
    size: usize,
) -> Result<Page<SessionId>> {
    let lim = size as i64 + 1;
    let rows = match pool {
        Some(p) => c
            .prepare_cached(
                "SELECT id FROM sessions WHERE pool_id = ?1 AND deleted_at IS NULL AND id > ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![p, after(cursor), lim], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<SessionId>>>()?,
        None => c
            .prepare_cached(
                "SELECT id FROM sessions WHERE workspace_id = ?1 AND deleted_at IS NULL AND id > ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![ws, after(cursor), lim], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<SessionId>>>()?,
    };
    Ok(page(rows, size, |s| s.0))
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
pub fn soft_delete(c: &Connection, id: SessionId, now: i64) -> Result<()> {
    c.execute(
        "UPDATE sessions SET deleted_at = ?2, updated_at = ?2, password = NULL WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

pub fn set_health(c: &Connection, s: &SessionRow) -> Result<()> {
    c.prepare_cached(
        "UPDATE sessions SET consecutive_failures = ?2, last_success_at = ?3, last_failure_at = ?4, unhealthy_until = ?5 \
         WHERE id = ?1",
    )?
    .execute(params![
        s.id,
        s.consecutive_failures,
        s.last_success_at,
        s.last_failure_at,
        s.unhealthy_until
    ])?;
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

/// The least-loaded live, enabled, healthy sessions of a pool below the cap,
/// fewest assignments first (index `sessions_choice`).
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
        "SELECT id, assignment_count, unhealthy_until FROM sessions INDEXED BY sessions_choice \
             WHERE pool_id = ?1 AND deleted_at IS NULL AND enabled = 1 AND assignment_count < ?2 \
             AND (unhealthy_until IS NULL OR unhealthy_until <= ?3) AND id IS NOT ?4 \
             ORDER BY assignment_count LIMIT ?5",
    )?
    .query_map(params![pool, cap, now, exclude, CHOICE_WINDOW], |r| {
        Ok(Candidate {
            id: r.get(0)?,
            assignments: r.get(1)?,
            enabled: true,
            deleted: false,
            unhealthy_until: r.get(2)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Live sessions by state, for /metrics: the counters the triggers keep,
/// and the sessions in a cooldown now through their index, so a scrape
/// costs the number of unhealthy sessions, not of all sessions.
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
