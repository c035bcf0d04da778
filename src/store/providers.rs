//! Providers: vendor connections with sealed credentials and an optional
//! gateway. Disconnected providers stay as tombstones (credentials wiped) so
//! deleted sessions can still name them.

use rusqlite::types::{Null, ToSql, ToSqlOutput};
use rusqlite::{params, Connection};

use crate::error::Result;
use crate::ids::{PoolId, ProviderId, WorkspaceId};

use super::columns::{table, update_by_id, Group, Reader};
use super::Page;

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub scheme: String,
    pub host: String,
    pub port: i32,
    pub username_template: String,
    pub password_template: String,
}

/// The five nullable gateway columns (scheme, host, port, username
/// template, password template, in `ProviderRow`'s order): all NULL for no
/// gateway, and no host reads as no gateway.
impl Group for Option<Gateway> {
    fn read(r: &mut Reader) -> rusqlite::Result<Self> {
        let scheme: Option<String> = r.col()?;
        let host: Option<String> = r.col()?;
        let port: Option<i32> = r.col()?;
        let username_template: Option<String> = r.col()?;
        let password_template: Option<String> = r.col()?;
        let (
            Some(host),
            Some(scheme),
            Some(port),
            Some(username_template),
            Some(password_template),
        ) = (host, scheme, port, username_template, password_template)
        else {
            return Ok(None);
        };
        Ok(Some(Gateway {
            scheme,
            host,
            port,
            username_template,
            password_template,
        }))
    }

    fn bind<'a>(&'a self, out: &mut Vec<ToSqlOutput<'a>>) -> rusqlite::Result<()> {
        match self {
            Some(g) => {
                out.push(g.scheme.to_sql()?);
                out.push(g.host.to_sql()?);
                out.push(g.port.to_sql()?);
                out.push(g.username_template.to_sql()?);
                out.push(g.password_template.to_sql()?);
            }
            None => out.extend(std::iter::repeat_n(ToSqlOutput::from(Null), 5)),
        }
        Ok(())
    }
}

table! {
    #[derive(Debug, Clone)]
    pub struct ProviderRow in "providers" {
        pub id: ProviderId,
        pub workspace_id: WorkspaceId,
        pub ptype: i32 = "type",
        pub name: String,
        pub enabled: bool,
        /// Sealed JSON, under data key `key_version`.
        pub credentials: Option<Vec<u8>>,
        pub key_version: u32,
        pub version: i64,
        pub created_at: i64,
        pub updated_at: i64,
        /// 0: no scheduled sync.
        pub sync_interval_seconds: i32,
        pub sync_pool_id: Option<PoolId>,
        pub api_base_url: Option<String>,
        /// JSON of the last SyncResult (`api::sync::LastSync`).
        pub last_sync: Option<String>,
        /// Webshare's list mode for sync: None = direct, or "backbone".
        pub sync_mode: Option<String>,
    }
    group {
        pub gateway: Option<Gateway> = [
            "gw_scheme",
            "gw_host",
            "gw_port",
            "gw_username_template",
            "gw_password_template",
        ],
    }
}

pub fn insert(c: &Connection, p: &ProviderRow) -> Result<()> {
    p.insert(c)?;
    Ok(())
}

/// Writes every mutable field of a row back.
pub fn update(c: &Connection, p: &ProviderRow) -> Result<()> {
    let g = p.gateway.as_ref();
    update_by_id(
        c,
        "providers",
        &p.id,
        &[
            ("name", &p.name),
            ("gw_scheme", &g.map(|g| &g.scheme)),
            ("gw_host", &g.map(|g| &g.host)),
            ("gw_port", &g.map(|g| g.port)),
            ("gw_username_template", &g.map(|g| &g.username_template)),
            ("gw_password_template", &g.map(|g| &g.password_template)),
            ("enabled", &p.enabled),
            ("credentials", &p.credentials),
            ("key_version", &p.key_version),
            ("sync_interval_seconds", &p.sync_interval_seconds),
            ("sync_pool_id", &p.sync_pool_id),
            ("sync_mode", &p.sync_mode),
            ("api_base_url", &p.api_base_url),
            ("version", &p.version),
            ("updated_at", &p.updated_at),
        ],
    )?;
    Ok(())
}

/// A live provider of the workspace.
pub fn get(c: &Connection, ws: WorkspaceId, id: ProviderId) -> Result<Option<ProviderRow>> {
    Ok(ProviderRow::one(
        c,
        "WHERE id = ?1 AND workspace_id = ?2 AND deleted_at IS NULL",
        params![id, ws],
    )?)
}

/// What adding sessions needs of a provider, in one narrow read (the whole
/// row was ~8k instructions of every CreateSession).
pub struct SessionTarget {
    pub id: ProviderId,
    pub ptype: i32,
    pub enabled: bool,
    /// A gateway is set: a host (as `Group::read` of the gateway reads it).
    pub has_gateway: bool,
}

/// The live provider of the workspace, for adding sessions to it.
pub fn session_target(
    c: &Connection,
    ws: WorkspaceId,
    id: ProviderId,
) -> Result<Option<SessionTarget>> {
    use rusqlite::OptionalExtension;
    Ok(c.prepare_cached(
        "SELECT type, enabled, gw_host IS NOT NULL FROM providers \
         WHERE id = ?1 AND workspace_id = ?2 AND deleted_at IS NULL",
    )?
    .query_row(params![id, ws], |r| {
        Ok(SessionTarget {
            id,
            ptype: r.get(0)?,
            enabled: r.get(1)?,
            has_gateway: r.get(2)?,
        })
    })
    .optional()?)
}

pub fn list(
    c: &Connection,
    ws: WorkspaceId,
    cursor: Option<[u8; 16]>,
    size: usize,
) -> Result<Page<ProviderRow>> {
    ProviderRow::keyset(
        c,
        "workspace_id = ?1 AND deleted_at IS NULL",
        ws,
        cursor,
        size,
    )
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
/// Disconnects a provider a scoped read returned: a tombstone without
/// credentials.
pub fn disconnect(c: &Connection, p: &ProviderRow, now: i64) -> Result<()> {
    c.execute(
        "UPDATE providers SET deleted_at = ?2, credentials = NULL, enabled = 0, updated_at = ?2 WHERE id = ?1",
        params![p.id, now],
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

/// The provider's row whatever its state: a disconnected provider reads
/// as a tombstone with its credentials wiped.
/// Its own fixed statement with only the two things a resolve needs: the
/// whole row through `ProviderRow::one` (its SQL formatted per call) cost
/// ~12k instructions per rotation-session resolve.
pub fn for_resolve(c: &Connection, id: ProviderId) -> Result<Option<Upstream>> {
    use rusqlite::OptionalExtension;
    Ok(c.prepare_cached(
        "SELECT gw_scheme, gw_host, gw_port, gw_username_template, gw_password_template, \
         credentials FROM providers WHERE id = ?1",
    )?
    .query_row([id], |r| {
        let mut r = Reader::new(r);
        Ok(Upstream {
            gateway: Group::read(&mut r)?,
            credentials: r.col()?,
        })
    })
    .optional()?)
}

/// Records a sync's result; not a change of the provider's settings, so
/// `version` and `updated_at` stay.
pub fn set_last_sync(c: &Connection, id: ProviderId, json: &str) -> Result<()> {
    c.prepare_cached("UPDATE providers SET last_sync = ?2 WHERE id = ?1")?
        .execute(params![id, json])?;
    Ok(())
}

/// Live, enabled providers with a sync schedule and pool.
pub fn scheduled(c: &Connection) -> Result<Vec<ProviderRow>> {
    Ok(ProviderRow::all(
        c,
        "WHERE deleted_at IS NULL AND enabled = 1 AND sync_interval_seconds > 0 \
         AND sync_pool_id IS NOT NULL",
        [],
    )?)
}
