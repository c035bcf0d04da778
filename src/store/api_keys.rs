//! API keys: only the keyed hash of a secret is stored.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Result;
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::pb::{v1, Timestamp};
use crate::role::Role;

use super::{after, page, Page};

const COLS: &str = "id, workspace_id, name, role, prefix, created_at, last_used_at, revoked_at";

fn row(r: &Row) -> rusqlite::Result<v1::ApiKey> {
    Ok(v1::ApiKey {
        id: r.get::<_, ApiKeyId>(0)?.to_vec(),
        workspace_id: r
            .get::<_, Option<WorkspaceId>>(1)?
            .map(WorkspaceId::to_vec)
            .unwrap_or_default(),
        name: r.get(2)?,
        role: r.get(3)?,
        prefix: r.get(4)?,
        created_at: Some(Timestamp::from_millis(r.get(5)?)),
        last_used_at: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_millis),
        revoked: r.get::<_, Option<i64>>(7)?.is_some(),
    })
}

pub struct NewKey<'a> {
    pub id: ApiKeyId,
    pub workspace: Option<WorkspaceId>,
    pub name: &'a str,
    pub role: Role,
    pub prefix: &'a str,
    pub hash: &'a [u8; 32],
}

pub fn insert(c: &Connection, k: &NewKey, now: i64) -> Result<v1::ApiKey> {
    c.execute(
        "INSERT INTO api_keys(id, workspace_id, name, role, prefix, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![k.id, k.workspace, k.name, k.role as i32, k.prefix, &k.hash[..], now],
    )?;
    get(c, k.id)?.ok_or_else(|| crate::error::Error::internal("inserted key vanished"))
}

pub fn get(c: &Connection, id: ApiKeyId) -> Result<Option<v1::ApiKey>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLS} FROM api_keys WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?,
    )
}

/// What authentication needs of a key, found by its hash.
pub struct KeyAuth {
    pub id: ApiKeyId,
    pub workspace: Option<WorkspaceId>,
    pub role: i32,
    pub revoked: bool,
    /// The authentication epoch in the same snapshot.
    pub epoch: i64,
}

/// Bumped by triggers whenever a key is revoked or deleted (schema
/// version 3), so a cached "this key is valid" is checked with one read.
pub fn auth_epoch(c: &Connection) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT epoch FROM auth_epoch WHERE id = 1")?
            .query_row([], |r| r.get(0))?,
    )
}

/// Whether a key exists and is not revoked.
pub fn is_live(c: &Connection, id: ApiKeyId) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT 1 FROM api_keys WHERE id = ?1 AND revoked_at IS NULL")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

pub fn by_hash(c: &Connection, hash: &[u8; 32]) -> Result<Option<KeyAuth>> {
    Ok(c.prepare_cached(
        "SELECT id, workspace_id, role, revoked_at IS NOT NULL, (SELECT epoch FROM auth_epoch WHERE id = 1) \
         FROM api_keys WHERE hash = ?1",
    )?
    .query_row([&hash[..]], |r| {
        Ok(KeyAuth {
            id: r.get(0)?,
            workspace: r.get(1)?,
            role: r.get(2)?,
            revoked: r.get(3)?,
            epoch: r.get(4)?,
        })
    })
    .optional()?)
}

pub fn touch(c: &Connection, id: ApiKeyId, now: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    Ok(())
}

/// Keys of one workspace, or the ADMIN keys when `workspace` is None.
pub fn list(
    c: &Connection,
    workspace: Option<WorkspaceId>,
    cursor: Option<[u8; 16]>,
    size: usize,
) -> Result<Page<v1::ApiKey>> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT {COLS} FROM api_keys WHERE workspace_id IS ?1 AND id > ?2 ORDER BY id LIMIT ?3"
        ))?
        .query_map(params![workspace, after(cursor), size as i64 + 1], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page(rows, size, |k| {
        k.id.as_slice().try_into().unwrap_or_default()
    }))
}

pub fn workspace_of(c: &Connection, id: ApiKeyId) -> Result<Option<Option<WorkspaceId>>> {
    Ok(
        c.prepare_cached("SELECT workspace_id FROM api_keys WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?,
    )
}

pub fn revoke(c: &Connection, id: ApiKeyId, now: i64) -> Result<()> {
    c.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    Ok(())
}

pub fn count(c: &Connection) -> Result<i64> {
    Ok(c.query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))?)
}
