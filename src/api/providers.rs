//! ConnectProvider, GetProvider, ListProviders, UpdateProvider,
//! DisconnectProvider, and RotateWorkspaceKey (which re-seals every secret of
//! the workspace, providers' and sessions' alike; the engine is in
//! `key_rotation`).

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::crypto::Keyring;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::ids::{PoolId, ProviderId, WorkspaceId};
use crate::pb::v1::*;
use crate::pb::Timestamp;
use crate::store::providers::{self as db, Gateway as GatewayRow, ProviderRow};
use crate::store::{self, workspaces};
use crate::warn;

use super::key_rotation;
use super::workspaces::key_rotation_pb;
use super::{check_host, check_name, check_port, check_scheme, check_secretish, set};
use super::{found, list_page, save_if_changed, workspace_exists};

/// The wire form of a provider row; its credentials never leave the store.
pub fn provider_pb(p: &ProviderRow) -> Provider {
    Provider {
        id: p.id.to_vec(),
        workspace_id: p.workspace_id.to_vec(),
        r#type: p.ptype,
        name: p.name.clone(),
        gateway: p.gateway.as_ref().map(|g| Gateway {
            scheme: g.scheme.clone(),
            host: g.host.clone(),
            port: g.port,
            username_template: g.username_template.clone(),
            password_template: g.password_template.clone(),
        }),
        enabled: p.enabled,
        key_version: p.key_version as i32,
        version: p.version,
        created_at: Some(Timestamp::from_millis(p.created_at)),
        updated_at: Some(Timestamp::from_millis(p.updated_at)),
        sync: (p.sync_interval_seconds != 0 || p.sync_pool_id.is_some()).then(|| ProviderSync {
            interval_seconds: p.sync_interval_seconds,
            pool_id: p.sync_pool_id.map(|id| id.to_vec()).unwrap_or_default(),
            webshare_mode: p.sync_mode.clone().unwrap_or_default(),
        }),
        last_sync: p.last_sync.as_deref().and_then(super::sync::last_sync_pb),
        api_base_url: p.api_base_url.clone().unwrap_or_default(),
    }
}

/// A checked `sync`: the interval, the pool (a pool of the workspace) and
/// Webshare's list mode (None = direct).
struct SyncSettings {
    interval: i32,
    pool: Option<PoolId>,
    mode: Option<String>,
}

fn check_sync(
    tx: &Connection,
    ws: WorkspaceId,
    ptype: i32,
    s: &ProviderSync,
) -> Result<SyncSettings> {
    let interval = s.interval_seconds;
    if interval != 0 && !(60..=604_800).contains(&interval) {
        return Err(Error::invalid(
            "sync.interval_seconds must be 0 (off) or 60..604800.",
        ));
    }
    let mode = match s.webshare_mode.as_str() {
        "" => None,
        m @ ("direct" | "backbone") if ptype == WEBSHARE => Some(m.to_owned()),
        "direct" | "backbone" => {
            return Err(Error::invalid(
                "sync.webshare_mode applies to PROVIDER_TYPE_WEBSHARE providers only.",
            ))
        }
        _ => {
            return Err(Error::invalid(
                "sync.webshare_mode must be \"direct\" or \"backbone\".",
            ))
        }
    };
    if s.pool_id.is_empty() {
        return Ok(SyncSettings {
            interval,
            pool: None,
            mode,
        });
    }
    let pool = PoolId::parse_named(&s.pool_id, "sync.pool_id")?;
    if store::pools::get(tx, ws, pool)?.is_none() {
        return Err(Error::not_found("pool (sync.pool_id)"));
    }
    Ok(SyncSettings {
        interval,
        pool: Some(pool),
        mode,
    })
}

/// An http(s) URL without spaces or control characters; empty = None.
fn check_base_url(u: &str) -> Result<Option<String>> {
    if u.is_empty() {
        return Ok(None);
    }
    let ok = (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() <= 2000
        && u.len() > "https://".len()
        && !u.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(Some(u.to_string()))
    } else {
        Err(Error::invalid(
            "api_base_url must be an http:// or https:// URL of at most 2000 characters.",
        ))
    }
}

/// The credentials as sealed: JSON inside the ciphertext.
#[derive(Serialize, Deserialize, Default)]
pub struct StoredCredentials {
    #[serde(default)]
    pub api_key: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

pub const WEBSHARE: i32 = ProviderType::Webshare as i32;

fn check_type(t: i32) -> Result<()> {
    match ProviderType::try_from(t) {
        Ok(ProviderType::Unspecified) | Err(_) => Err(Error::invalid(
            "type must be PROVIDER_TYPE_WEBSHARE, PROVIDER_TYPE_PROXYLINE or PROVIDER_TYPE_GENERIC.",
        )),
        Ok(_) => Ok(()),
    }
}

fn check_template(field: &str, t: &str) -> Result<()> {
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let tail = &rest[i..];
        let end = tail
            .find('}')
            .ok_or_else(|| Error::invalid(format!("{field} has an unclosed '{{'.")))?;
        let name = &tail[1..end];
        if !matches!(name, "username" | "password" | "token") {
            return Err(Error::invalid(format!(
                "{field} may use {{username}}, {{password}} and {{token}} only; found {{{name}}}."
            )));
        }
        rest = &tail[end + 1..];
    }
    if t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} must be at most 200 characters."
        )));
    }
    Ok(())
}

/// Validates a gateway and fills the type's defaults.
fn gateway(ptype: i32, g: Option<&Gateway>) -> Result<Option<GatewayRow>> {
    let g = match g {
        Some(g) => g.clone(),
        None if ptype == WEBSHARE => Gateway {
            scheme: "http".into(),
            host: "p.webshare.io".into(),
            port: 80,
            ..Default::default()
        },
        None => return Ok(None),
    };
    let scheme = check_scheme("gateway.scheme", &g.scheme)?;
    let host = check_host("gateway.host", &g.host)?;
    check_port("gateway.port", g.port)?;
    check_template("gateway.username_template", &g.username_template)?;
    check_template("gateway.password_template", &g.password_template)?;
    let default_user = if ptype == WEBSHARE {
        "{username}-{token}"
    } else {
        "{username}"
    };
    let or = |t: String, d: &str| if t.is_empty() { d.to_string() } else { t };
    Ok(Some(GatewayRow {
        scheme,
        host,
        port: g.port,
        username_template: or(g.username_template, default_user),
        password_template: or(g.password_template, "{password}"),
    }))
}

fn check_credentials(c: &Credentials) -> Result<()> {
    check_secretish("credentials.api_key", &c.api_key)?;
    check_secretish("credentials.username", &c.username)?;
    check_secretish("credentials.password", &c.password)
}

/// Seals credentials for a provider row under the workspace's current key.
fn seal_credentials(
    tx: &Connection,
    keys: &Keyring,
    ws: WorkspaceId,
    id: ProviderId,
    c: &Credentials,
) -> Result<(Vec<u8>, u32)> {
    let stored = StoredCredentials {
        api_key: c.api_key.clone(),
        username: c.username.clone(),
        password: c.password.clone(),
    };
    let json = serde_json::to_vec(&stored).map_err(Error::internal)?;
    let sealer = super::Sealer::new(tx, keys, ws)?;
    Ok((sealer.seal(&id.0, "credentials", &json)?, sealer.version))
}

/// Opens a provider's sealed credentials.
pub fn open_credentials(
    tx: &Connection,
    keys: &Keyring,
    ws: WorkspaceId,
    id: ProviderId,
    sealed: &[u8],
) -> Result<StoredCredentials> {
    let json = super::open(tx, keys, ws, &id.0, "credentials", sealed)?;
    serde_json::from_slice(&json).map_err(Error::internal)
}

pub fn connect(ctx: &mut Ctx, req: ConnectProviderRequest) -> Result<ConnectProviderResponse> {
    let ws = ctx.ws()?;
    check_type(req.r#type)?;
    check_name("name", &req.name)?;
    if let Some(c) = &req.credentials {
        check_credentials(c)?;
    }
    let gw = gateway(req.r#type, req.gateway.as_ref())?;
    let api_base_url = check_base_url(&req.api_base_url)?;
    let keys = &ctx.state.keys;
    let row = ctx.write(|tx| {
        workspace_exists(tx, ws)?;
        let sync = match &req.sync {
            Some(s) => check_sync(tx, ws, req.r#type, s)?,
            None => SyncSettings {
                interval: 0,
                pool: None,
                mode: None,
            },
        };
        if db::type_taken(tx, ws, req.r#type)? {
            let name = ProviderType::try_from(req.r#type).map_or("", |t| t.as_str_name());
            return Err(Error::exists(format!(
                "A {name} provider is already connected to this workspace; only one of each type is allowed."
            )));
        }
        let id = ProviderId::generate();
        let creds = req.credentials.clone().unwrap_or_default();
        let (sealed, key_version) = seal_credentials(tx, keys, ws, id, &creds)?;
        let now = store::now_ms();
        let row = ProviderRow {
            id,
            workspace_id: ws,
            ptype: req.r#type,
            name: req.name.clone(),
            gateway: gw,
            enabled: true,
            credentials: Some(sealed),
            key_version,
            version: 1,
            created_at: now,
            updated_at: now,
            sync_interval_seconds: sync.interval,
            sync_pool_id: sync.pool,
            api_base_url,
            last_sync: None,
            sync_mode: sync.mode,
        };
        db::insert(tx, &row)?;
        Ok(row)
    })?;
    Ok(ConnectProviderResponse {
        provider: Some(provider_pb(&row)),
    })
}

pub fn get(ctx: &mut Ctx, req: GetProviderRequest) -> Result<GetProviderResponse> {
    let ws = ctx.ws()?;
    let id = ProviderId::parse(&req.provider_id)?;
    let row = found(ctx.read(|tx| db::get(tx, ws, id))?, "provider")?;
    Ok(GetProviderResponse {
        provider: Some(provider_pb(&row)),
    })
}

pub fn list(ctx: &mut Ctx, req: ListProvidersRequest) -> Result<ListProvidersResponse> {
    let ws = ctx.ws()?;
    let list = crate::cursor::List::new("ListProviders", Some(ws));
    let (providers, next_cursor) =
        list_page(ctx, &list, req.page_size, &req.cursor, |tx, after, size| {
            workspace_exists(tx, ws)?;
            db::list(tx, ws, after, size)
        })?;
    Ok(ListProvidersResponse {
        providers: providers.iter().map(provider_pb).collect(),
        next_cursor,
    })
}

pub fn update(ctx: &mut Ctx, req: UpdateProviderRequest) -> Result<UpdateProviderResponse> {
    let ws = ctx.ws()?;
    let id = ProviderId::parse(&req.provider_id)?;
    if let Some(n) = &req.name {
        check_name("name", n)?;
    }
    if let Some(c) = &req.credentials {
        check_credentials(c)?;
    }
    let api_base_url = req
        .api_base_url
        .as_deref()
        .map(check_base_url)
        .transpose()?;
    let keys = &ctx.state.keys;
    let row = ctx.write(|tx| {
        let mut row = found(db::get(tx, ws, id)?, "provider")?;

        store::check_version(req.expected_version, row.version)?;
        let mut changed = set(&mut row.name, req.name.clone());
        changed |= set(&mut row.api_base_url, api_base_url.clone());
        if let Some(s) = &req.sync {
            let sync = check_sync(tx, ws, row.ptype, s)?;
            changed |= set(&mut row.sync_interval_seconds, Some(sync.interval));
            changed |= set(&mut row.sync_pool_id, Some(sync.pool));
            changed |= set(&mut row.sync_mode, Some(sync.mode));
        }
        changed |= set(&mut row.enabled, req.enabled);
        if let Some(g) = &req.gateway {
            changed |= set(&mut row.gateway, Some(gateway(row.ptype, Some(g))?));
        }
        if let Some(c) = &req.credentials {
            let (sealed, v) = seal_credentials(tx, keys, ws, id, c)?;
            row.credentials = Some(sealed);
            row.key_version = v;
            changed = true;
        }
        save_if_changed(tx, &mut row, changed, store::now_ms(), db::update)?;
        Ok(row)
    })?;
    Ok(UpdateProviderResponse {
        provider: Some(provider_pb(&row)),
    })
}

pub fn disconnect(
    ctx: &mut Ctx,
    req: DisconnectProviderRequest,
) -> Result<DisconnectProviderResponse> {
    let ws = ctx.ws()?;
    let id = ProviderId::parse(&req.provider_id)?;
    ctx.write(|tx| {
        let p = found(db::get(tx, ws, id)?, "provider")?;
        if db::has_live_sessions(tx, ws, id)? {
            return Err(Error::precondition(
                "Live sessions use this provider; delete them before disconnecting it.",
            ));
        }
        db::disconnect(tx, &p, store::now_ms())
    })?;
    Ok(DisconnectProviderResponse {})
}

/// The key switch happens in this call's transaction; session passwords are
/// then re-sealed in short batches (see `key_rotation`): for up to one batch
/// time here, so a small workspace is done before the response, and the rest
/// by the background thread.
pub fn rotate_workspace_key(
    ctx: &mut Ctx,
    _req: RotateWorkspaceKeyRequest,
) -> Result<RotateWorkspaceKeyResponse> {
    let ws = ctx.ws()?;
    let keys = &ctx.state.keys;
    // Counted before the write lock: at a million sessions the count takes
    // a while, and it is only an estimate for progress reports.
    let remaining = ctx.read(|tx| key_rotation::to_reseal(tx, ws))?;
    let (previous, new) = ctx.write(|tx| key_rotation::begin(tx, keys, ws, remaining))?;
    // The new key is in force; a failure below only delays the re-sealing,
    // which the background thread takes over.
    match key_rotation::run(ctx.conn, keys, ws, Some(key_rotation::BATCH_TIME), &|| {
        false
    }) {
        Ok(true) => {}
        Ok(false) => key_rotation::wake(),
        Err(e) => {
            warn!(
                "key rotation of workspace {ws}: {}; continuing in the background",
                e.cause.as_deref().unwrap_or(&e.message)
            );
            key_rotation::wake();
        }
    }
    let progress = ctx.read(|tx| key_rotation::progress(tx, ws))?;
    Ok(RotateWorkspaceKeyResponse {
        previous_key_version: previous as i32,
        new_key_version: new as i32,
        key_rotation: progress.as_ref().map(key_rotation_pb),
    })
}

/// For `proxyplane check`: every stored data key opens under the master key.
pub fn verify_all_data_keys(c: &Connection, keys: &Keyring) -> Result<usize> {
    let all = workspaces::all_data_keys(c)?;
    for (ws, version, wrapped) in &all {
        keys.data_key(*ws, *version, || Ok(wrapped.clone()))?;
    }
    Ok(all.len())
}
