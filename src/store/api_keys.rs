//! API keys: only the keyed hash of a secret is stored.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::ids::{ApiKeyId, WorkspaceId};

use super::columns::table;
use super::Page;

table! {
    #[derive(Debug, Clone)]
    pub struct ApiKeyRow in "api_keys" {
        pub id: ApiKeyId,
        /// None for the ADMIN keys, which belong to no workspace.
        pub workspace_id: Option<WorkspaceId>,
        pub name: String,
        /// A `Role` as its number.
        pub role: i32,
        /// The first characters of the secret, shown to tell keys apart.
        pub prefix: String,
        /// The keyed hash of the secret; the secret itself is never stored.
        pub hash: [u8; 32],
        pub created_at: i64,
        pub last_used_at: Option<i64>,
        pub revoked_at: Option<i64>,
    }
}

pub fn insert(c: &Connection, k: &ApiKeyRow) -> Result<()> {
    k.insert(c)?;
    Ok(())
}

pub fn get(c: &Connection, id: ApiKeyId) -> Result<Option<ApiKeyRow>> {
    Ok(ApiKeyRow::one(c, "WHERE id = ?1", [id])?)
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

/// The two epochs of a snapshot, in one read: the authentication epoch,
/// bumped by triggers whenever a key is revoked or deleted (schema version
/// 3), so a cached "this key is valid" is checked with it; and the data
/// epoch, bumped by every UPDATE and DELETE of the rows a resolve reads
/// (version 6), which keeps the sticky-binding cache exact.
pub fn epochs(c: &Connection) -> Result<Epochs> {
    Ok(
        c.prepare_cached("SELECT epoch, data_epoch FROM auth_epoch WHERE id = 1")?
            .query_row([], |r| {
                Ok(Epochs {
                    auth: r.get(0)?,
                    data: r.get(1)?,
                })
            })?,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epochs {
    pub auth: i64,
    pub data: i64,
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
) -> Result<Page<ApiKeyRow>> {
    ApiKeyRow::keyset(c, "workspace_id IS ?1", workspace, cursor, size)
}

/// Revokes a key a scoped read returned.
pub fn revoke(c: &Connection, key: &ApiKeyRow, now: i64) -> Result<()> {
    c.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![key.id, now],
    )?;
    Ok(())
}

pub fn count(c: &Connection) -> Result<i64> {
    Ok(c.query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))?)
}
