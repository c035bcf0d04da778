//! Pools and their rotation and health policy.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::error::Result;
use crate::ids::{PoolId, WorkspaceId};

use super::columns::{table, update_by_id};
use super::{after, page, Page};

table! {
    #[derive(Debug, Clone)]
    pub struct PoolRow in "pools" {
        pub id: PoolId = "id",
        pub workspace_id: WorkspaceId = "workspace_id",
        pub name: String = "name",
        pub rotation_interval: i32 = "rotation_interval",
        pub rotate_on_unhealthy: bool = "rotate_on_unhealthy",
        pub max_accounts_per_session: i32 = "max_accounts_per_session",
        pub failure_threshold: i32 = "failure_threshold",
        pub cooldown_seconds: i32 = "cooldown_seconds",
        pub version: i64 = "version",
        pub created_at: i64 = "created_at",
        pub updated_at: i64 = "updated_at",
    }
}

const COLS: &str = PoolRow::COLS;

pub fn insert(c: &Connection, p: &PoolRow) -> Result<()> {
    c.prepare_cached(PoolRow::INSERT)?
        .execute(params_from_iter(p.values()?))?;
    Ok(())
}

pub fn update(c: &Connection, p: &PoolRow) -> Result<()> {
    update_by_id(
        c,
        "pools",
        &p.id,
        &[
            ("name", &p.name),
            ("rotation_interval", &p.rotation_interval),
            ("rotate_on_unhealthy", &p.rotate_on_unhealthy),
            ("max_accounts_per_session", &p.max_accounts_per_session),
            ("failure_threshold", &p.failure_threshold),
            ("cooldown_seconds", &p.cooldown_seconds),
            ("version", &p.version),
            ("updated_at", &p.updated_at),
        ],
    )?;
    Ok(())
}

pub fn get(c: &Connection, ws: WorkspaceId, id: PoolId) -> Result<Option<PoolRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLS} FROM pools WHERE id = ?1 AND workspace_id = ?2"
    ))?
    .query_row(params![id, ws], PoolRow::from_row)
    .optional()?)
}

pub fn list(
    c: &Connection,
    ws: WorkspaceId,
    cursor: Option<[u8; 16]>,
    size: usize,
) -> Result<Page<PoolRow>> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT {COLS} FROM pools WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
        ))?
        .query_map(
            params![ws, after(cursor), size as i64 + 1],
            PoolRow::from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page(rows, size, |p| p.id.0))
}

pub fn has_live_sessions(c: &Connection, id: PoolId) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM sessions WHERE pool_id = ?1 AND deleted_at IS NULL LIMIT 1",
    )?
    .exists([id])?)
}

/// Deletes a pool with its (deleted) sessions and its assignments.
pub fn delete(c: &Connection, id: PoolId) -> Result<()> {
    c.execute("DELETE FROM assignments WHERE pool_id = ?1", [id])?;
    c.execute("DELETE FROM sessions WHERE pool_id = ?1", [id])?;
    c.execute("DELETE FROM pools WHERE id = ?1", [id])?;
    Ok(())
}
