//! Providers: vendor connections with sealed credentials and an optional
//! gateway. Disconnected providers stay as tombstones (credentials wiped) so
//! deleted sessions can still name them.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Result;
use crate::ids::{ProviderId, WorkspaceId};
use crate::pb::{v1, Timestamp};

use super::{after, page, Page};

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub scheme: String,
    pub host: String,
    pub port: i32,
    pub username_template: String,
    pub password_template: String,
}

#[derive(Debug, Clone)]
pub struct ProviderRow {
    pub id: ProviderId,
    pub workspace_id: WorkspaceId,
    pub ptype: i32,
    pub name: String,
    pub gateway: Option<Gateway>,
    pub enabled: bool,
    /// Sealed JSON, under data key `key_version`.
    pub credentials: Option<Vec<u8>>,
    pub key_version: u32,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ProviderRow {
    pub fn to_pb(&self) -> v1::Provider {
        v1::Provider {
            id: self.id.to_vec(),
            workspace_id: self.workspace_id.to_vec(),
            r#type: self.ptype,
            name: self.name.clone(),
            gateway: self.gateway.as_ref().map(|g| v1::Gateway {
                scheme: g.scheme.clone(),
                host: g.host.clone(),
                port: g.port,
                username_template: g.username_template.clone(),
                password_template: g.password_template.clone(),
            }),
            enabled: self.enabled,
            key_version: self.key_version as i32,
            version: self.version,
            created_at: Some(Timestamp::from_millis(self.created_at)),
            updated_at: Some(Timestamp::from_millis(self.updated_at)),
        }
    }
}

const COLS: &str =
    "id, workspace_id, type, name, gw_scheme, gw_host, gw_port, gw_username_template, \
    gw_password_template, enabled, credentials, key_version, version, created_at, updated_at";

/// The five gateway columns from column `o` on (scheme, host, port,
/// username template, password template); no host means no gateway.
fn gateway_at(r: &Row, o: usize) -> rusqlite::Result<Option<Gateway>> {
    let Some(host) = r.get::<_, Option<String>>(o + 1)? else {
        return Ok(None);
    };
    Ok(Some(Gateway {
        scheme: r.get(o)?,
        host,
        port: r.get(o + 2)?,
        username_template: r.get(o + 3)?,
        password_template: r.get(o + 4)?,
    }))
}

fn row(r: &Row) -> rusqlite::Result<ProviderRow> {
    Ok(ProviderRow {
        id: r.get(0)?,
        workspace_id: r.get(1)?,
        ptype: r.get(2)?,
        name: r.get(3)?,
        gateway: gateway_at(r, 4)?,
        enabled: r.get(9)?,
        credentials: r.get(10)?,
        key_version: r.get(11)?,
        version: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

pub fn insert(c: &Connection, p: &ProviderRow) -> Result<()> {
    let g = p.gateway.as_ref();
    c.execute(
        &format!("INSERT INTO providers({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
        params![
            p.id,
            p.workspace_id,
            p.ptype,
            p.name,
            g.map(|g| &g.scheme),
            g.map(|g| &g.host),
            g.map(|g| g.port),
            g.map(|g| &g.username_template),
            g.map(|g| &g.password_template),
            p.enabled,
            p.credentials,
            p.key_version,
            p.version,
            p.created_at,
            p.updated_at
        ],
    )?;
    Ok(())
}

/// Writes every mutable field of a row back.
pub fn update(c: &Connection, p: &ProviderRow) -> Result<()> {
    let g = p.gateway.as_ref();
    c.execute(
        "UPDATE providers SET name = ?2, gw_scheme = ?3, gw_host = ?4, gw_port = ?5, gw_username_template = ?6, \
         gw_password_template = ?7, enabled = ?8, credentials = ?9, key_version = ?10, version = ?11, updated_at = ?12 \
         WHERE id = ?1",
        params![
            p.id,
            p.name,
            g.map(|g| &g.scheme),
            g.map(|g| &g.host),
            g.map(|g| g.port),
            g.map(|g| &g.username_template),
            g.map(|g| &g.password_template),
            p.enabled,
            p.credentials,
            p.key_version,
            p.version,
            p.updated_at
        ],
    )?;
    Ok(())
}

/// A live provider of the workspace.
pub fn get(c: &Connection, ws: WorkspaceId, id: ProviderId) -> Result<Option<ProviderRow>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLS} FROM providers WHERE id = ?1 AND workspace_id = ?2 AND deleted_at IS NULL"
    ))?
    .query_row(params![id, ws], row)
    .optional()?)
}

pub fn list(
    c: &Connection,
    ws: WorkspaceId,
    cursor: Option<[u8; 16]>,
    size: usize,
) -> Result<Page<ProviderRow>> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT {COLS} FROM providers WHERE workspace_id = ?1 AND deleted_at IS NULL AND id > ?2 ORDER BY id LIMIT ?3"
        ))?
        .query_map(params![ws, after(cursor), size as i64 + 1], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page(rows, size, |p| p.id.0))
}

pub fn type_taken(c: &Connection, ws: WorkspaceId, ptype: i32) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM providers WHERE workspace_id = ?1 AND type = ?2 AND deleted_at IS NULL",
    )?
    .exists(params![ws, ptype])?)
}

/// Through the workspace's live-session index: DisconnectProvider is rare,
/// and one index fewer makes every session insert cheaper.
pub fn has_live_sessions(c: &Connection, ws: WorkspaceId, id: ProviderId) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM sessions INDEXED BY sessions_live_by_workspace \
         WHERE workspace_id = ?1 AND deleted_at IS NULL AND provider_id = ?2 LIMIT 1",
    )?
    .exists(params![ws, id])?)
}

/// Disconnects: a tombstone with its credentials wiped.
pub fn disconnect(c: &Connection, id: ProviderId, now: i64) -> Result<()> {
    c.execute(
        "UPDATE providers SET deleted_at = ?2, credentials = NULL, enabled = 0, updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Every provider of the workspace with sealed credentials (live or not).
pub fn sealed_credentials(c: &Connection, ws: WorkspaceId) -> Result<Vec<(ProviderId, Vec<u8>)>> {
    Ok(c.prepare(
        "SELECT id, credentials FROM providers WHERE workspace_id = ?1 AND credentials IS NOT NULL",
    )?
    .query_map([ws], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn set_credentials(
    c: &Connection,
    id: ProviderId,
    sealed: &[u8],
    key_version: u32,
) -> Result<()> {
    c.prepare_cached("UPDATE providers SET credentials = ?2, key_version = ?3 WHERE id = ?1")?
        .execute(params![id, sealed, key_version])?;
    Ok(())
}

/// After a key rotation re-sealed their credentials, every provider shows
/// the workspace's current key version, and its `version` grows: the stored
/// row changed, so an UpdateProvider holding the old version must not pass.
pub fn set_key_version_all(
    c: &Connection,
    ws: WorkspaceId,
    key_version: u32,
    now: i64,
) -> Result<()> {
    c.execute(
        "UPDATE providers SET key_version = ?2, version = version + 1, updated_at = ?3 \
         WHERE workspace_id = ?1",
        params![ws, key_version, now],
    )?;
    Ok(())
}

/// What a rotation session resolves through.
pub struct Upstream {
    pub gateway: Option<Gateway>,
    /// Sealed.
    pub credentials: Option<Vec<u8>>,
}

pub fn for_resolve(c: &Connection, id: ProviderId) -> Result<Option<Upstream>> {
    Ok(c
        .prepare_cached(
            "SELECT gw_scheme, gw_host, gw_port, gw_username_template, gw_password_template, credentials \
             FROM providers WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(Upstream {
                gateway: gateway_at(r, 0)?,
                credentials: r.get(5)?,
            })
        })
        .optional()?)
}
