//! Workspaces and their wrapped data keys.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Result;
use crate::ids::WorkspaceId;
use crate::pb::{v1, Timestamp};

use super::{after, page, Page};

const COLS: &str = "id, name, key_version, version, created_at, updated_at";

fn row(r: &Row) -> rusqlite::Result<v1::Workspace> {
    Ok(v1::Workspace {
        id: r.get::<_, WorkspaceId>(0)?.to_vec(),
        name: r.get(1)?,
        key_version: r.get(2)?,
        version: r.get(3)?,
        created_at: Some(Timestamp::from_millis(r.get(4)?)),
        updated_at: Some(Timestamp::from_millis(r.get(5)?)),
    })
}

pub fn insert(
    c: &Connection,
    id: WorkspaceId,
    name: &str,
    wrapped_key: &[u8],
    now: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO workspaces(id, name, key_version, version, created_at, updated_at) VALUES (?1, ?2, 1, 1, ?3, ?3)",
        params![id, name, now],
    )?;
    insert_data_key(c, id, 1, wrapped_key, now)
}

pub fn get(c: &Connection, id: WorkspaceId) -> Result<Option<v1::Workspace>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLS} FROM workspaces WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?,
    )
}

pub fn exists(c: &Connection, id: WorkspaceId) -> Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM workspaces WHERE id = ?1")?
        .exists([id])?)
}

/// All workspaces (`only` = None) or just one, in creation order.
pub fn list(
    c: &Connection,
    only: Option<WorkspaceId>,
    cursor: Option<[u8; 16]>,
    size: usize,
) -> Result<Page<v1::Workspace>> {
    let rows = match only {
        None => c
            .prepare_cached(&format!(
                "SELECT {COLS} FROM workspaces WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?
            .query_map(params![after(cursor), size as i64 + 1], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        Some(id) => c
            .prepare_cached(&format!(
                "SELECT {COLS} FROM workspaces WHERE id = ?1 AND id > ?2"
            ))?
            .query_map(params![id, after(cursor)], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    Ok(page(rows, size, |w| {
        w.id.as_slice().try_into().unwrap_or_default()
    }))
}

pub fn rename(c: &Connection, id: WorkspaceId, name: &str, now: i64) -> Result<()> {
    c.execute(
        "UPDATE workspaces SET name = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1",
        params![id, name, now],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, id: WorkspaceId) -> Result<bool> {
    Ok(c.execute("DELETE FROM workspaces WHERE id = ?1", [id])? > 0)
}

pub fn insert_data_key(
    c: &Connection,
    id: WorkspaceId,
    version: u32,
    wrapped: &[u8],
    now: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO data_keys(workspace_id, key_version, wrapped, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, version, wrapped, now],
    )?;
    Ok(())
}

pub fn wrapped_data_key(c: &Connection, id: WorkspaceId, version: u32) -> Result<Vec<u8>> {
    Ok(c.prepare_cached(
        "SELECT wrapped FROM data_keys WHERE workspace_id = ?1 AND key_version = ?2",
    )?
    .query_row(params![id, version], |r| r.get(0))?)
}

pub fn key_version(c: &Connection, id: WorkspaceId) -> Result<Option<u32>> {
    Ok(
        c.prepare_cached("SELECT key_version FROM workspaces WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?,
    )
}

pub fn set_key_version(c: &Connection, id: WorkspaceId, version: u32, now: i64) -> Result<()> {
    c.execute(
        "UPDATE workspaces SET key_version = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1",
        params![id, version, now],
    )?;
    Ok(())
}

pub fn delete_data_keys_before(c: &Connection, id: WorkspaceId, version: u32) -> Result<()> {
    c.execute(
        "DELETE FROM data_keys WHERE workspace_id = ?1 AND key_version < ?2",
        params![id, version],
    )?;
    Ok(())
}

pub fn all_data_keys(c: &Connection) -> Result<Vec<(WorkspaceId, u32, Vec<u8>)>> {
    Ok(
        c.prepare("SELECT workspace_id, key_version, wrapped FROM data_keys")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    )
}
