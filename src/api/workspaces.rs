//! CreateWorkspace, GetWorkspace, ListWorkspaces, UpdateWorkspace,
//! DeleteWorkspace.

use rusqlite::Connection;

use crate::crypto::Keyring;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::ids::{self, WorkspaceId};
use crate::pb::v1::*;
use crate::store::{self, workspaces};

use super::check_name;

/// Creates a workspace with its first data key (version 1).
pub fn create_workspace(tx: &Connection, keys: &Keyring, name: &str) -> Result<Workspace> {
    check_name("name", name)?;
    let id = WorkspaceId::generate();
    workspaces::insert(tx, id, name, &keys.new_data_key(id, 1)?.0, store::now_ms())?;
    workspaces::get(tx, id)?.ok_or_else(|| Error::internal("created workspace vanished"))
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
    let workspace = ctx.read(|tx| workspaces::get(tx, ws))?;
    Ok(GetWorkspaceResponse {
        workspace: Some(workspace.ok_or_else(|| Error::not_found("workspace"))?),
    })
}

pub fn list(ctx: &mut Ctx, req: ListWorkspacesRequest) -> Result<ListWorkspacesResponse> {
    let size = ids::page_size(req.page_size)?;
    let only = if ctx.principal.is_admin() {
        None
    } else {
        Some(ctx.principal.workspace.ok_or_else(Error::denied)?)
    };
    // ADMIN pages through every workspace (the ADMIN-wide scope); other keys
    // see only their own, so their cursors are bound to it.
    let list = crate::cursor::List::new("ListWorkspaces", only);
    let after = list.decode(&ctx.state.keys, &req.cursor)?;
    let page = ctx.read(|tx| workspaces::list(tx, only, after, size))?;
    Ok(ListWorkspacesResponse {
        workspaces: page.items,
        next_cursor: list.encode(&ctx.state.keys, page.next_after)?,
    })
}

pub fn update(ctx: &mut Ctx, req: UpdateWorkspaceRequest) -> Result<UpdateWorkspaceResponse> {
    let ws = ctx.ws()?;
    if let Some(n) = &req.name {
        check_name("name", n)?;
    }
    let workspace = ctx.write(|tx| {
        let cur = workspaces::get(tx, ws)?.ok_or_else(|| Error::not_found("workspace"))?;
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
        workspace: Some(workspace),
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
