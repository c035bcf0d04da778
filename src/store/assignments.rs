//! Assignments: an account bound to a session of a pool.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::ids::{AssignmentId, PoolId, SessionId, WorkspaceId};
use crate::store::sessions::SessionRow;

use super::columns::{table, update_fields, Reader};
use super::{after, page, Page};

table! {
    #[derive(Debug, Clone)]
    pub struct AssignmentRow in "assignments" {
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
}

impl AssignmentRow {
    /// Binds to another session: counts a rotation, restarts the interval.
    pub fn move_to(&mut self, session: SessionId, now: i64) {
        self.session_id = session;
        self.bound_at = now;
        self.rotations += 1;
    }
}

pub fn insert(c: &Connection, a: &AssignmentRow) -> Result<()> {
    a.insert(c)?;
    Ok(())
}

pub fn update(c: &Connection, a: &AssignmentRow) -> Result<()> {
    update_fields!(c, "assignments", a; session_id, pinned, bound_at, rotations, version, updated_at)?;
    Ok(())
}

pub fn get(c: &Connection, ws: WorkspaceId, id: AssignmentId) -> Result<Option<AssignmentRow>> {
    Ok(AssignmentRow::one(
        c,
        "WHERE id = ?1 AND workspace_id = ?2",
        params![id, ws],
    )?)
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
    // The statement, built once from both column lists: building it on
    // every call cost ~5k instructions per resolve.
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let prefixed = |cols: &[&str], t: &str| {
            cols.iter()
                .map(|c| format!("{t}.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "SELECT {}, {}, p.rotation_interval, p.rotate_on_unhealthy FROM assignments a \
             JOIN pools p ON p.id = a.pool_id JOIN sessions s ON s.id = a.session_id \
             WHERE a.pool_id = ?1 AND a.account_name = ?2 AND p.workspace_id = ?3",
            prefixed(AssignmentRow::COLUMNS, "a"),
            prefixed(SessionRow::COLUMNS, "s"),
        )
    });
    Ok(c.prepare_cached(sql)?
        .query_row(params![pool, account, ws], |r| {
            // The columns in the order the SELECT list names them.
            let mut r = Reader::new(r);
            Ok((
                AssignmentRow::read(&mut r)?,
                SessionRow::read(&mut r)?,
                r.col()?,
                r.col()?,
            ))
        })
        .optional()?)
}

pub fn by_account(c: &Connection, pool: PoolId, account: &str) -> Result<Option<AssignmentRow>> {
    Ok(AssignmentRow::one(
        c,
        "WHERE pool_id = ?1 AND account_name = ?2",
        params![pool, account],
    )?)
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
    let rows = AssignmentRow::all(
        c,
        "WHERE workspace_id = ?1 AND (?2 IS NULL OR pool_id = ?2) AND (?3 IS NULL OR session_id = ?3) \
         AND (?4 IS NULL OR account_name = ?4) AND id > ?5 ORDER BY id LIMIT ?6",
        params![ws, f.pool, f.session, f.account_name, after(cursor), size as i64 + 1],
    )?;
    Ok(page(rows, size, |a| a.id.0))
}

/// Deletes an assignment a scoped read returned.
pub fn delete(c: &Connection, a: &AssignmentRow) -> Result<()> {
    c.execute("DELETE FROM assignments WHERE id = ?1", [a.id])?;
    Ok(())
}
