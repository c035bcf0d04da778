//! Assignments: an account bound to a session of a pool.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Result;
use crate::ids::{AssignmentId, PoolId, SessionId, WorkspaceId};
use crate::pb::{v1, Timestamp};
use crate::store::sessions::SessionRow;

use super::{after, page, sessions, Page};

#[derive(Debug, Clone)]
pub struct AssignmentRow {
    pub id: AssignmentId,
    pub workspace_id: WorkspaceId,
    pub pool_id: PoolId,
    pub session_id: SessionId,
    pub account_name: String,
    pub pinned: bool,
    pub bound_at: i64,
    pub rotations: i32,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AssignmentRow {
    pub fn to_pb(&self) -> v1::Assignment {
        v1::Assignment {
            id: self.id.to_vec(),
            workspace_id: self.workspace_id.to_vec(),
            pool_id: self.pool_id.to_vec(),
            session_id: self.session_id.to_vec(),
            account_name: self.account_name.clone(),
            pinned: self.pinned,
            version: self.version,
            created_at: Some(Timestamp::from_millis(self.created_at)),
            updated_at: Some(Timestamp::from_millis(self.updated_at)),
            bound_at: Some(Timestamp::from_millis(self.bound_at)),
            rotations: self.rotations,
        }
    }

    /// Binds to another session: counts a rotation, restarts the interval.
    pub fn move_to(&mut self, session: SessionId, now: i64) {
        self.session_id = session;
        self.bound_at = now;
        self.rotations += 1;
    }
}

const COLS: &str =
    "id, workspace_id, pool_id, session_id, account_name, pinned, bound_at, rotations, version, created_at, updated_at";

fn row_at(r: &Row, o: usize) -> rusqlite::Result<AssignmentRow> {
    Ok(AssignmentRow {
        id: r.get(o)?,
        workspace_id: r.get(o + 1)?,
        pool_id: r.get(o + 2)?,
        session_id: r.get(o + 3)?,
        account_name: r.get(o + 4)?,
        pinned: r.get(o + 5)?,
        bound_at: r.get(o + 6)?,
        rotations: r.get(o + 7)?,
        version: r.get(o + 8)?,
        created_at: r.get(o + 9)?,
        updated_at: r.get(o + 10)?,
    })
}

fn row(r: &Row) -> rusqlite::Result<AssignmentRow> {
    row_at(r, 0)
}

pub fn insert(c: &Connection, a: &AssignmentRow) -> Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO assignments({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        a.id,
        a.workspace_id,
        a.pool_id,
        a.session_id,
        a.account_name,
        a.pinned,
        a.bound_at,
        a.rotations,
        a.version,
        a.created_at,
        a.updated_at
    ])?;
    Ok(())
}

pub fn update(c: &Connection, a: &AssignmentRow) -> Result<()> {
    c.prepare_cached(
        "UPDATE assignments SET session_id = ?2, pinned = ?3, bound_at = ?4, rotations = ?5, version = ?6, \
         updated_at = ?7 WHERE id = ?1",
    )?
    .execute(params![a.id, a.session_id, a.pinned, a.bound_at, a.rotations, a.version, a.updated_at])?;
    Ok(())
}

pub fn get(c: &Connection, ws: WorkspaceId, id: AssignmentId) -> Result<Option<AssignmentRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLS} FROM assignments WHERE id = ?1 AND workspace_id = ?2"
    ))?
    .query_row(params![id, ws], row)
    .optional()?)
}

/// What a resolve needs in one statement: the account's assignment, its
/// session (whatever its state) and the pool's rotation policy
/// (interval seconds, on_unhealthy). None when the pool (of this
/// workspace) has no such account.
pub fn binding(
    c: &Connection,
    ws: WorkspaceId,
    pool: PoolId,
    account: &str,
) -> Result<Option<(AssignmentRow, SessionRow, i32, bool)>> {
    // The statement and the column offsets, built once: counting the
    // column lists on every call cost ~5k instructions per resolve.
    static SQL: std::sync::OnceLock<(String, usize, usize)> = std::sync::OnceLock::new();
    let (sql, n, m) = SQL.get_or_init(|| {
        let prefixed = |cols: &str, t: &str| {
            cols.split(", ")
                .map(|c| format!("{t}.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sql = format!(
            "SELECT {}, {}, p.rotation_interval, p.rotate_on_unhealthy FROM assignments a \
             JOIN pools p ON p.id = a.pool_id JOIN sessions s ON s.id = a.session_id \
             WHERE a.pool_id = ?1 AND a.account_name = ?2 AND p.workspace_id = ?3",
            prefixed(COLS, "a"),
            prefixed(&sessions::COLS.replace('\n', " "), "s"),
        );
        (
            sql,
            COLS.split(", ").count(),
            sessions::COLS.split(", ").count(),
        )
    });
    let (n, m) = (*n, *m);
    Ok(c.prepare_cached(sql)?
        .query_row(params![pool, account, ws], |r| {
            Ok((
                row_at(r, 0)?,
                sessions::row_at(r, n)?,
                r.get(n + m)?,
                r.get(n + m + 1)?,
            ))
        })
        .optional()?)
}

pub fn by_account(c: &Connection, pool: PoolId, account: &str) -> Result<Option<AssignmentRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLS} FROM assignments WHERE pool_id = ?1 AND account_name = ?2"
    ))?
    .query_row(params![pool, account], row)
    .optional()?)
}

pub struct Filter<'a> {
    pub pool: Option<PoolId>,
    pub session: Option<SessionId>,
    pub account_name: Option<&'a str>,
}

pub fn list(
    c: &Connection,
    ws: WorkspaceId,
    f: &Filter,
    cursor: Option<[u8; 16]>,
    size: usize,
) -> Result<Page<AssignmentRow>> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT {COLS} FROM assignments WHERE workspace_id = ?1 AND (?2 IS NULL OR pool_id = ?2) \
             AND (?3 IS NULL OR session_id = ?3) AND (?4 IS NULL OR account_name = ?4) AND id > ?5 \
             ORDER BY id LIMIT ?6"
        ))?
        .query_map(
            params![ws, f.pool, f.session, f.account_name, after(cursor), size as i64 + 1],
            row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page(rows, size, |a| a.id.0))
}

pub fn delete(c: &Connection, id: AssignmentId) -> Result<()> {
    c.execute("DELETE FROM assignments WHERE id = ?1", [id])?;
    Ok(())
}
