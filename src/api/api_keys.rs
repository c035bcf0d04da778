//! CreateApiKey, ListApiKeys, RevokeApiKey, and the key creation the CLI
//! shares.

use rusqlite::Connection;

use crate::crypto::{self, Keyring};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::pb::v1::*;
use crate::pb::Timestamp;
use crate::role::Role;
use crate::store::api_keys::{self, ApiKeyRow};
use crate::store::{self, workspaces};

use super::{found, list_page, workspace_exists};

/// The wire form of a key row: never its hash.
pub fn api_key_pb(k: &ApiKeyRow) -> ApiKey {
    ApiKey {
        id: k.id.to_vec(),
        workspace_id: k.workspace_id.map(WorkspaceId::to_vec).unwrap_or_default(),
        name: k.name.clone(),
        role: k.role,
        prefix: k.prefix.clone(),
        created_at: Some(Timestamp::from_millis(k.created_at)),
        last_used_at: k.last_used_at.map(Timestamp::from_millis),
        revoked: k.revoked_at.is_some(),
    }
}

/// Creates a key; returns it and its secret (shown once, stored only hashed).
pub fn create_key(
    tx: &Connection,
    keys: &Keyring,
    ws: Option<WorkspaceId>,
    name: &str,
    role: Role,
) -> Result<(ApiKey, String)> {
    let secret = crypto::new_api_key_secret();
    let row = ApiKeyRow {
        id: ApiKeyId::generate(),
        workspace_id: ws,
        name: name.to_string(),
        role: role as i32,
        prefix: secret[..10].to_string(),
        hash: keys.master().hash_api_key(&secret),
        created_at: store::now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    api_keys::insert(tx, &row)?;
    Ok((api_key_pb(&row), secret))
}

pub fn create(ctx: &mut Ctx, req: CreateApiKeyRequest) -> Result<CreateApiKeyResponse> {
    let role = Role::from_i32(req.role).ok_or_else(|| {
        Error::invalid(
            "role must be one of API_KEY_ROLE_ADMIN, _OWNER, _EDITOR, _RESOLVER, _VIEWER.",
        )
    })?;
    if req.name.chars().count() > 200 || req.name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name must be at most 200 characters, without control characters.",
        ));
    }
    // Scope checked already: None is the ADMIN keys (ADMIN callers only).
    let ws = ctx.workspace;
    match (role, ws) {
        (Role::Admin, Some(_)) => {
            return Err(Error::invalid(
                "ADMIN keys belong to no workspace; leave workspace_id empty.",
            ))
        }
        (Role::Admin, None) if !ctx.principal.is_admin() => return Err(Error::denied()),
        (Role::Admin, None) | (_, Some(_)) => {}
        (_, None) => return Err(Error::invalid("workspace_id is required.")),
    }
    let name = if req.name.is_empty() {
        format!("{} key", role.name().to_lowercase())
    } else {
        req.name
    };
    let keys = &ctx.state.keys;
    let (api_key, secret) = ctx.write(|tx| {
        if let Some(w) = ws {
            workspace_exists(tx, w)?;
        }
        create_key(tx, keys, ws, &name, role)
    })?;
    Ok(CreateApiKeyResponse {
        api_key: Some(api_key),
        secret,
    })
}

pub fn list(ctx: &mut Ctx, req: ListApiKeysRequest) -> Result<ListApiKeysResponse> {
    // None is the ADMIN keys (scope checked: ADMIN callers only).
    let ws = ctx.workspace;
    // `None` is the ADMIN keys: their cursors are bound to the ADMIN scope.
    let list = crate::cursor::List::new("ListApiKeys", ws);
    let (mut keys, next_cursor) =
        list_page(ctx, &list, req.page_size, &req.cursor, |tx, after, size| {
            if let Some(w) = ws {
                workspace_exists(tx, w)?;
            }
            api_keys::list(tx, ws, after, size)
        })?;
    for k in &mut keys {
        show_pending_use(ctx, k);
    }
    Ok(ListApiKeysResponse {
        api_keys: keys.iter().map(api_key_pb).collect(),
        next_cursor,
    })
}

pub fn revoke(ctx: &mut Ctx, req: RevokeApiKeyRequest) -> Result<RevokeApiKeyResponse> {
    // None is the ADMIN keys (scope checked: ADMIN callers only).
    let ws = ctx.workspace;
    let id = ApiKeyId::parse(&req.api_key_id)?;
    let key = ctx.write(|tx| {
        let key = match api_keys::get(tx, id)? {
            Some(k) if k.workspace_id == ws => k,
            _ => return Err(Error::not_found("API key")),
        };
        api_keys::revoke(tx, &key, store::now_ms())?;
        found(api_keys::get(tx, id)?, "API key")
    })?;
    Ok(RevokeApiKeyResponse {
        api_key: Some(api_key_pb(&key)),
    })
}

/// A use recorded in memory and not flushed yet is shown, so `last_used_at`
/// is current in the API even though it is written in batches.
fn show_pending_use(ctx: &Ctx, k: &mut ApiKeyRow) {
    if let Some(t) = ctx.state.last_used.pending(k.id) {
        if k.last_used_at.is_none_or(|s| s < t) {
            k.last_used_at = Some(t);
        }
    }
}

/// Every key as one line of text, for `proxyplane keys list`.
pub fn list_all(tx: &Connection) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut scopes = vec![None];
    let mut cursor = None;
    loop {
        let page = workspaces::list(tx, None, cursor, 1000)?;
        scopes.extend(page.items.iter().map(|w| Some(w.id)));
        match page.next_after {
            Some(last) => cursor = Some(last),
            None => break,
        }
    }
    for ws in scopes {
        let mut cursor = None;
        loop {
            let page = api_keys::list(tx, ws, cursor, 1000)?;
            for k in &page.items {
                let id = k.id;
                let role = Role::from_i32(k.role).map_or("?", Role::name);
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let w = ws.map_or_else(|| "-".to_string(), |w| w.to_base64());
                out.push(format!(
                    "{id}\t{w}\t{role}\t{}\t{state}\t{}",
                    k.prefix, k.name
                ));
            }
            match page.next_after {
                Some(last) => cursor = Some(last),
                None => break,
            }
        }
    }
    Ok(out)
}
