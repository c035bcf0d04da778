//! CreateApiKey, ListApiKeys, RevokeApiKey, and the key creation the CLI
//! shares.

use rusqlite::Connection;

use crate::crypto::{self, Keyring};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::ids::{self, ApiKeyId, WorkspaceId};
use crate::pb::v1::*;
use crate::role::Role;
use crate::store::{self, api_keys, workspaces};

/// Creates a key; returns it and its secret (shown once, stored only hashed).
pub fn create_key(
    tx: &Connection,
    keys: &Keyring,
    ws: Option<WorkspaceId>,
    name: &str,
    role: Role,
) -> Result<(ApiKey, String)> {
    let secret = crypto::new_api_key_secret();
    let hash = keys.master().hash_api_key(&secret);
    let key = api_keys::insert(
        tx,
        &api_keys::NewKey {
            id: ApiKeyId::generate(),
            workspace: ws,
            name,
            role,
            prefix: &secret[..10],
            hash: &hash,
        },
        store::now_ms(),
    )?;
    Ok((key, secret))
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
            if !workspaces::exists(tx, w)? {
                return Err(Error::not_found("workspace"));
            }
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
    let size = ids::page_size(req.page_size)?;
    // `None` is the ADMIN keys: their cursors are bound to the ADMIN scope.
    let list = crate::cursor::List::new("ListApiKeys", ws);
    let after = list.decode(&ctx.state.keys, &req.cursor)?;
    let page = ctx.read(|tx| {
        if let Some(w) = ws {
            if !workspaces::exists(tx, w)? {
                return Err(Error::not_found("workspace"));
            }
        }
        api_keys::list(tx, ws, after, size)
    })?;
    let mut keys = page.items;
    for k in &mut keys {
        show_pending_use(ctx, k);
    }
    Ok(ListApiKeysResponse {
        api_keys: keys,
        next_cursor: list.encode(&ctx.state.keys, page.next_after)?,
    })
}

pub fn revoke(ctx: &mut Ctx, req: RevokeApiKeyRequest) -> Result<RevokeApiKeyResponse> {
    // None is the ADMIN keys (scope checked: ADMIN callers only).
    let ws = ctx.workspace;
    let id = ApiKeyId::parse(&req.api_key_id)?;
    let key = ctx.write(|tx| {
        if api_keys::workspace_of(tx, id)? != Some(ws) {
            return Err(Error::not_found("API key"));
        }
        api_keys::revoke(tx, id, store::now_ms())?;
        api_keys::get(tx, id)?.ok_or_else(|| Error::not_found("API key"))
    })?;
    Ok(RevokeApiKeyResponse { api_key: Some(key) })
}

/// A use recorded in memory and not flushed yet is shown, so `last_used_at`
/// is current in the API even though it is written in batches.
fn show_pending_use(ctx: &Ctx, k: &mut ApiKey) {
    let Ok(id) = ApiKeyId::parse(&k.id) else {
        return;
    };
    if let Some(t) = ctx.state.last_used.pending(id) {
        let shown = k
            .last_used_at
            .as_ref()
            .map(|s| s.seconds * 1000 + i64::from(s.nanos / 1_000_000));
        if shown.is_none_or(|s| s < t) {
            k.last_used_at = Some(crate::pb::Timestamp::from_millis(t));
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
        scopes.extend(
            page.items
                .iter()
                .filter_map(|w| WorkspaceId::parse(&w.id).ok())
                .map(Some),
        );
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
                let id = ApiKeyId::parse(&k.id)?;
                let role = Role::from_i32(k.role).map_or("?", Role::name);
                let state = if k.revoked { "revoked" } else { "active" };
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
