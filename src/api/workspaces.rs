//! CreateWorkspace, GetWorkspace, ListWorkspaces, UpdateWorkspace,
//! DeleteWorkspace.

use rusqlite::Connection;

use crate::crypto::Keyring;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::ids::WorkspaceId;
use crate::pb::v1::*;
use crate::pb::Timestamp;
use crate::store::workspaces::{self, WorkspaceRow};
use crate::store::{self};

use super::{check_name, found, list_page};

/// The wire form of a workspace row, with its key rotation's progress.
pub fn workspace_pb(w: &WorkspaceRow) -> Workspace {
    Workspace {
        id: w.id.to_vec(),
        name: w.name.clone(),
        key_version: w.key_version as i32,
        version: w.version,
        created_at: Some(Timestamp::from_millis(w.created_at)),
        updated_at: Some(Timestamp::from_millis(w.updated_at)),
        key_rotation: w.key_rotation.as_ref().map(key_rotation_pb),
    }
}

/// The wire form of a key rotation under way; `remaining` is an estimate
/// and never shown below 0.
pub fn key_rotation_pb(r: &workspaces::KeyRotation) -> KeyRotation {
    KeyRotation {
        target_key_version: r.target as i32,
        resealed: r.resealed,
        remaining: r.remaining.max(0),
    }
}

/// Creates a workspace with its first data key (version 1).
pub fn create_workspace(tx: &Connection, keys: &Keyring, name: &str) -> Result<Workspace> {
    check_name("name", name)?;
    let id = WorkspaceId::generate();
    let now = store::now_ms();
    let row = WorkspaceRow {
        id,
        name: name.to_string(),
        key_version: 1,
        version: 1,
        created_at: now,
        updated_at: now,
        key_rotation: None,
    };
    workspaces::insert(tx, &row, &keys.new_data_key(id, 1)?.0)?;
    Ok(workspace_pb(&row))
}

pub fn create(ctx: &mut Ctx, req: CreateWorkspaceRequest) -> Result<CreateWorkspaceResponse> {
    check_name("name", &req.name)?;
    let keys = &ctx.state.keys;
    let workspace = store::write(ctx.conn, ctx.deadline, |tx| {
        create_workspace(tx, keys, &req.name)
    })?;
    Ok(CreateWorkspaceResponse {
        workspace: Some(workspace),
    })
}

pub fn get(ctx: &mut Ctx, _req: GetWorkspaceRequest) -> Result<GetWorkspaceResponse> {
    let ws = ctx.ws()?;
    let row = found(ctx.read(|tx| workspaces::get(tx, ws))?, "workspace")?;
    Ok(GetWorkspaceResponse {
        workspace: Some(workspace_pb(&row)),
    })
}

pub fn list(ctx: &mut Ctx, req: ListWorkspacesRequest) -> Result<ListWorkspacesResponse> {
    let only = if ctx.principal.is_admin() {
        None
    } else {
        Some(ctx.principal.workspace.ok_or_else(Error::denied)?)
    };
    // ADMIN pages through every workspace (the ADMIN-wide scope); other keys
    // see only their own, so their cursors are bound to it.
    let list = crate::cursor::List::new("ListWorkspaces", only);
    let (rows, next_cursor) =
        list_page(ctx, &list, req.page_size, &req.cursor, |tx, after, size| {
            workspaces::list(tx, only, after, size)
        })?;
    Ok(ListWorkspacesResponse {
        workspaces: rows.iter().map(workspace_pb).collect(),
        next_cursor,
        caller_role: ctx.principal.role as i32,
    })
}

pub fn update(ctx: &mut Ctx, req: UpdateWorkspaceRequest) -> Result<UpdateWorkspaceResponse> {
    let ws = ctx.ws()?;
    if let Some(n) = &req.name {
        check_name("name", n)?;
    }
    let row = ctx.write(|tx| {
        let cur = found(workspaces::get(tx, ws)?, "workspace")?;
        store::check_version(req.expected_version, cur.version)?;
        match &req.name {
            Some(n) if *n != cur.name => {
                workspaces::rename(tx, ws, n, store::now_ms())?;
                workspaces::get(tx, ws)?.ok_or_else(|| Error::internal("workspace vanished"))
            }
            _ => Ok(cur),
        }
    })?;
    Ok(UpdateWorkspaceResponse {
        workspace: Some(workspace_pb(&row)),
    })
}

pub fn delete(ctx: &mut Ctx, _req: DeleteWorkspaceRequest) -> Result<DeleteWorkspaceResponse> {
    let ws = ctx.ws()?;
    if !ctx.write(|tx| workspaces::delete(tx, ws))? {
        return Err(Error::not_found("workspace"));
    }
    ctx.state.keys.forget(ws);
    Ok(DeleteWorkspaceResponse {})
}
