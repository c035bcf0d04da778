//! Pools and their rotation and health policy.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Result;
use crate::ids::{PoolId, WorkspaceId};
use crate::pb::{v1, Timestamp};

use super::{after, page, Page};

#[derive(Debug, Clone)]
pub struct PoolRow {
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

impl PoolRow {
    pub fn to_pb(&self) -> v1::Pool {
        v1::Pool {
            id: self.id.to_vec(),
            workspace_id: self.workspace_id.to_vec(),
            name: self.name.clone(),
            rotation: Some(v1::RotationPolicy {
                interval_seconds: Some(self.rotation_interval),
                on_unhealthy: Some(self.rotate_on_unhealthy),
            }),
            max_accounts_per_session: self.max_accounts_per_session,
            failure_threshold: self.failure_threshold,
            cooldown_seconds: self.cooldown_seconds,
            version: self.version,
            created_at: Some(Timestamp::from_millis(self.created_at)),
            updated_at: Some(Timestamp::from_millis(self.updated_at)),
        }
    }
}

const COLS: &str =
    "id, workspace_id, name, rotation_interval, rotate_on_unhealthy, max_accounts_per_session, \
    failure_threshold, cooldown_seconds, version, created_at, updated_at";

fn row(r: &Row) -> rusqlite::Result<PoolRow> {
    Ok(PoolRow {
        id: r.get(0)?,
        workspace_id: r.get(1)?,
        name: r.get(2)?,
        rotation_interval: r.get(3)?,
        rotate_on_unhealthy: r.get(4)?,
        max_accounts_per_session: r.get(5)?,
        failure_threshold: r.get(6)?,
        cooldown_seconds: r.get(7)?,
        version: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

pub fn insert(c: &Connection, p: &PoolRow) -> Result<()> {
    c.execute(
        &format!("INSERT INTO pools({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
        params![
            p.id,
            p.workspace_id,
            p.name,
            p.rotation_interval,
            p.rotate_on_unhealthy,
            p.max_accounts_per_session,
            p.failure_threshold,
            p.cooldown_seconds,
            p.version,
            p.created_at,
            p.updated_at
        ],
    )?;
    Ok(())
}

pub fn update(c: &Connection, p: &PoolRow) -> Result<()> {
    c.execute(
        "UPDATE pools SET name = ?2, rotation_interval = ?3, rotate_on_unhealthy = ?4, max_accounts_per_session = ?5, \
         failure_threshold = ?6, cooldown_seconds = ?7, version = ?8, updated_at = ?9 WHERE id = ?1",
        params![
            p.id,
            p.name,
            p.rotation_interval,
            p.rotate_on_unhealthy,
            p.max_accounts_per_session,
            p.failure_threshold,
            p.cooldown_seconds,
            p.version,
            p.updated_at
        ],
    )?;
    Ok(())
}

pub fn get(c: &Connection, ws: WorkspaceId, id: PoolId) -> Result<Option<PoolRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLS} FROM pools WHERE id = ?1 AND workspace_id = ?2"
    ))?
    .query_row(params![id, ws], row)
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
        .query_map(params![ws, after(cursor), size as i64 + 1], row)?
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
