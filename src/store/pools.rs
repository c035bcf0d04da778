//! Pools and their rotation and health policy.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::ids::{PoolId, WorkspaceId};

use super::columns::{table, update_fields};
use super::Page;

table! {
    #[derive(Debug, Clone)]
    pub struct PoolRow in "pools" {
        pub id: PoolId,
        pub workspace_id: WorkspaceId,
        pub name: String,
        pub rotation_interval: i32,
        pub rotate_on_unhealthy: bool,
        pub max_accounts_per_session: i32,
        pub failure_threshold: i32,
        pub cooldown_seconds: i32,
        pub version: i64,
        pub created_at: i64,
        pub updated_at: i64,
    }
}

pub fn insert(c: &Connection, p: &PoolRow) -> Result<()> {
    p.insert(c)?;
    Ok(())
}

pub fn update(c: &Connection, p: &PoolRow) -> Result<()> {
    update_fields!(c, "pools", p; name, rotation_interval, rotate_on_unhealthy,
        max_accounts_per_session, failure_threshold, cooldown_seconds, version, updated_at)?;
    Ok(())
}

pub fn get(c: &Connection, ws: WorkspaceId, id: PoolId) -> Result<Option<PoolRow>> {
    Ok(PoolRow::one(
        c,
        "WHERE id = ?1 AND workspace_id = ?2",
        params![id, ws],
    )?)
}

/// Whether the pool exists in the workspace, without reading its row.
pub fn exists(c: &Connection, ws: WorkspaceId, id: PoolId) -> Result<bool> {
    use rusqlite::OptionalExtension;
    Ok(
        c.prepare_cached("SELECT 1 FROM pools WHERE id = ?1 AND workspace_id = ?2")?
            .query_row(params![id, ws], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

pub fn list(
    c: &Connection,
    ws: WorkspaceId,
    cursor: Option<[u8; 16]>,
    size: usize,
) -> Result<Page<PoolRow>> {
    PoolRow::keyset(c, "workspace_id = ?1", ws, cursor, size)
}

/// A pool's live sessions by state (see GetPoolStats in the proto): each
/// in the first of disabled (or expired), cooling down, unhealthy, healthy
/// that applies.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SessionStates {
    pub healthy: i64,
    pub unhealthy: i64,
    pub cooling_down: i64,
    pub disabled: i64,
}

pub fn session_states(c: &Connection, id: PoolId, now: i64) -> Result<SessionStates> {
    let mut st = c.prepare_cached(
        "SELECT \
           coalesce(sum(enabled = 0 OR expires_at <= ?2), 0), \
           coalesce(sum(enabled = 1 AND coalesce(expires_at > ?2, 1) AND unhealthy_until > ?2), 0), \
           coalesce(sum(enabled = 1 AND coalesce(expires_at > ?2, 1) \
                        AND coalesce(unhealthy_until <= ?2, 1) \
                        AND consecutive_failures > 0), 0), \
           count(*) \
         FROM sessions INDEXED BY sessions_live_by_pool \
         WHERE pool_id = ?1 AND deleted_at IS NULL",
    )?;
    let (disabled, cooling_down, unhealthy, all): (i64, i64, i64, i64) = st
        .query_row(params![id, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    Ok(SessionStates {
        healthy: all - disabled - cooling_down - unhealthy,
        unhealthy,
        cooling_down,
        disabled,
    })
}

/// Up to two pools of a workspace with this name (names need not be
/// unique: the gateway refuses a login naming two).
pub fn by_name(c: &Connection, ws: WorkspaceId, name: &str) -> Result<Vec<PoolRow>> {
    Ok(PoolRow::all(
        c,
        "WHERE workspace_id = ?1 AND name = ?2 LIMIT 2",
        params![ws, name],
    )?)
}

pub fn has_live_sessions(c: &Connection, id: PoolId) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM sessions WHERE pool_id = ?1 AND deleted_at IS NULL LIMIT 1",
    )?
    .exists([id])?)
}

/// Deletes a pool with its (deleted) sessions and its assignments.
/// Deletes a pool a scoped read returned, with what is left in it.
pub fn delete(c: &Connection, p: &PoolRow) -> Result<()> {
    let id = p.id;
    c.execute("DELETE FROM assignments WHERE pool_id = ?1", [id])?;
    c.execute("DELETE FROM sessions WHERE pool_id = ?1", [id])?;
    c.execute("DELETE FROM pools WHERE id = ?1", [id])?;
    Ok(())
}
