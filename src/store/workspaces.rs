//! Workspaces, their wrapped data keys, and the progress of a key rotation
//! still under way.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{SessionId, WorkspaceId};

use super::columns::table;
use super::{after, page, Page};

table! {
    #[derive(Debug, Clone)]
    pub struct WorkspaceRow in "workspaces"
        from "workspaces w LEFT JOIN meta m ON m.key = 'key_rotation:' || hex(w.id)" {
        pub id: WorkspaceId,
        pub name: String,
        /// The data key new secrets are sealed under.
        pub key_version: u32,
        pub version: i64,
        pub created_at: i64,
        pub updated_at: i64,
    }
    read_only {
        /// The progress row of a rotation under way (`meta`, whose columns
        /// take none of the workspace columns' names).
        pub key_rotation: Option<KeyRotation> = "m.value",
    }
}

/// A key rotation still under way. Kept as JSON in `meta` under
/// `key_rotation:<HEX id>` rather than in new columns (no schema change), and
/// written in the same transaction as the rows each batch re-seals, so after a
/// crash it says exactly where to resume. It is deleted together with the old
/// data keys when the rotation finishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRotation {
    /// The data key version secrets are re-sealed under.
    pub target: u32,
    /// The live-session pass has handled every session up to this id.
    pub after: Option<[u8; 16]>,
    /// The live-session pass is over (deleted sessions' passwords are next).
    pub live_done: bool,
    pub resealed: i64,
    /// An estimate: counted at the start, less what has been re-sealed since.
    pub remaining: i64,
}

impl KeyRotation {
    pub fn new(target: u32, remaining: i64) -> Self {
        KeyRotation {
            target,
            after: None,
            live_done: false,
            resealed: 0,
            remaining,
        }
    }

    pub fn after(&self) -> Option<SessionId> {
        self.after.map(SessionId)
    }

    fn decode(json: &[u8]) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

/// The JSON blob of the progress row.
impl FromSql for KeyRotation {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        KeyRotation::decode(v.as_blob()?).map_err(|e| FromSqlError::Other(e.into()))
    }
}

fn rotation_key(id: WorkspaceId) -> String {
    let mut k = String::from("key_rotation:");
    for b in id.0 {
        k.push_str(&format!("{b:02X}"));
    }
    k
}

/// A new workspace with its first data key (`key_version` of the row).
pub fn insert(c: &Connection, w: &WorkspaceRow, wrapped_key: &[u8]) -> Result<()> {
    w.insert(c)?;
    insert_data_key(c, w.id, w.key_version, wrapped_key, w.created_at)
}

pub fn get(c: &Connection, id: WorkspaceId) -> Result<Option<WorkspaceRow>> {
    Ok(WorkspaceRow::one(c, "WHERE w.id = ?1", [id])?)
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
) -> Result<Page<WorkspaceRow>> {
    let rows = match only {
        None => WorkspaceRow::all(
            c,
            "WHERE w.id > ?1 ORDER BY w.id LIMIT ?2",
            params![after(cursor), size as i64 + 1],
        )?,
        Some(id) => WorkspaceRow::all(
            c,
            "WHERE w.id = ?1 AND w.id > ?2",
            params![id, after(cursor)],
        )?,
    };
    Ok(page(rows, size, |w| w.id.0))
}

pub fn rename(c: &Connection, id: WorkspaceId, name: &str, now: i64) -> Result<()> {
    c.execute(
        "UPDATE workspaces SET name = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1",
        params![id, name, now],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, id: WorkspaceId) -> Result<bool> {
    // A rotation's progress row has no foreign key to cascade from.
    c.execute("DELETE FROM meta WHERE key = ?1", [rotation_key(id)])?;
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

/// True while the workspace keeps data keys older than its current one: a
/// rotation has not finished (the last step deletes them).
pub fn has_older_data_keys(c: &Connection, id: WorkspaceId) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM data_keys d JOIN workspaces w ON w.id = d.workspace_id \
         WHERE d.workspace_id = ?1 AND d.key_version < w.key_version",
    )?
    .exists([id])?)
}

/// Workspaces whose rotation has not finished (older data keys remain).
pub fn unfinished_rotations(c: &Connection) -> Result<Vec<WorkspaceId>> {
    Ok(c.prepare(
        "SELECT DISTINCT d.workspace_id FROM data_keys d JOIN workspaces w ON w.id = d.workspace_id \
         WHERE d.key_version < w.key_version",
    )?
    .query_map([], |r| r.get(0))?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn rotation(c: &Connection, id: WorkspaceId) -> Result<Option<KeyRotation>> {
    let json: Option<Vec<u8>> = c
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([rotation_key(id)], |r| r.get(0))
        .optional()?;
    json.map(|j| KeyRotation::decode(&j).map_err(Error::internal))
        .transpose()
}

pub fn set_rotation(c: &Connection, id: WorkspaceId, r: &KeyRotation) -> Result<()> {
    let json = serde_json::to_vec(r).map_err(Error::internal)?;
    c.prepare_cached(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![rotation_key(id), json])?;
    Ok(())
}

/// The last step of a rotation: nothing is sealed under an older data key
/// any more, so those keys and the progress row go.
pub fn finish_rotation(c: &Connection, id: WorkspaceId, version: u32) -> Result<()> {
    c.execute(
        "DELETE FROM data_keys WHERE workspace_id = ?1 AND key_version < ?2",
        params![id, version],
    )?;
    c.execute("DELETE FROM meta WHERE key = ?1", [rotation_key(id)])?;
    Ok(())
}

pub fn all_data_keys(c: &Connection) -> Result<Vec<(WorkspaceId, u32, Vec<u8>)>> {
    Ok(
        c.prepare("SELECT workspace_id, key_version, wrapped FROM data_keys")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    )
}
