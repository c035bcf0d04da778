//! CreatePool, GetPool, ListPools, UpdatePool, DeletePool.

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::ids::{self, PoolId};
use crate::pb::v1::*;
use crate::store::pools::{self as db, PoolRow};
use crate::store::{self, workspaces};

use super::{check_name, set};

pub const DEFAULT_FAILURE_THRESHOLD: i32 = 3;
pub const DEFAULT_COOLDOWN_SECONDS: i32 = 300;

fn non_negative(field: &str, v: Option<i32>) -> Result<Option<i32>> {
    match v {
        Some(n) if n < 0 => Err(Error::invalid(format!("{field} must not be negative."))),
        v => Ok(v),
    }
}

fn check_threshold(v: Option<i32>) -> Result<Option<i32>> {
    match v {
        Some(n) if n < 1 => Err(Error::invalid("failure_threshold must be at least 1.")),
        v => Ok(v),
    }
}

pub fn create(ctx: &mut Ctx, req: CreatePoolRequest) -> Result<CreatePoolResponse> {
    let ws = ctx.ws()?;
    check_name("name", &req.name)?;
    let rotation = req.rotation.unwrap_or_default();
    let interval = non_negative("rotation.interval_seconds", rotation.interval_seconds)?;
    let max = non_negative("max_accounts_per_session", req.max_accounts_per_session)?;
    let threshold = check_threshold(req.failure_threshold)?;
    let cooldown = non_negative("cooldown_seconds", req.cooldown_seconds)?;
    let now = store::now_ms();
    let row = PoolRow {
        id: PoolId::generate(),
        workspace_id: ws,
        name: req.name,
        rotation_interval: interval.unwrap_or(0),
        rotate_on_unhealthy: rotation.on_unhealthy.unwrap_or(true),
        max_accounts_per_session: max.unwrap_or(0),
        failure_threshold: threshold.unwrap_or(DEFAULT_FAILURE_THRESHOLD),
        cooldown_seconds: cooldown.unwrap_or(DEFAULT_COOLDOWN_SECONDS),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    ctx.write(|tx| {
        if !workspaces::exists(tx, ws)? {
            return Err(Error::not_found("workspace"));
        }
        db::insert(tx, &row)
    })?;
    Ok(CreatePoolResponse {
        pool: Some(row.to_pb()),
    })
}

pub fn get(ctx: &mut Ctx, req: GetPoolRequest) -> Result<GetPoolResponse> {
    let ws = ctx.ws()?;
    let id = PoolId::parse(&req.pool_id)?;
    let row = ctx
        .read(|tx| db::get(tx, ws, id))?
        .ok_or_else(|| Error::not_found("pool"))?;
    Ok(GetPoolResponse {
        pool: Some(row.to_pb()),
    })
}

pub fn list(ctx: &mut Ctx, req: ListPoolsRequest) -> Result<ListPoolsResponse> {
    let ws = ctx.ws()?;
    let size = ids::page_size(req.page_size)?;
    let list = crate::cursor::List::new("ListPools", Some(ws));
    let after = list.decode(&ctx.state.keys, &req.cursor)?;
    let page = ctx.read(|tx| {
        if !workspaces::exists(tx, ws)? {
            return Err(Error::not_found("workspace"));
        }
        db::list(tx, ws, after, size)
    })?;
    Ok(ListPoolsResponse {
        pools: page.items.iter().map(PoolRow::to_pb).collect(),
        next_cursor: list.encode(&ctx.state.keys, page.next_after)?,
    })
}

pub fn update(ctx: &mut Ctx, req: UpdatePoolRequest) -> Result<UpdatePoolResponse> {
    let ws = ctx.ws()?;
    let id = PoolId::parse(&req.pool_id)?;
    if let Some(n) = &req.name {
        check_name("name", n)?;
    }
    let rotation = req.rotation.unwrap_or_default();
    let interval = non_negative("rotation.interval_seconds", rotation.interval_seconds)?;
    let max = non_negative("max_accounts_per_session", req.max_accounts_per_session)?;
    let threshold = check_threshold(req.failure_threshold)?;
    let cooldown = non_negative("cooldown_seconds", req.cooldown_seconds)?;
    let row = ctx.write(|tx| {
        let mut row = db::get(tx, ws, id)?.ok_or_else(|| Error::not_found("pool"))?;
        store::check_version(req.expected_version, row.version)?;
        let changed = [
            set(&mut row.name, req.name.clone()),
            set(&mut row.rotation_interval, interval),
            set(&mut row.rotate_on_unhealthy, rotation.on_unhealthy),
            set(&mut row.max_accounts_per_session, max),
            set(&mut row.failure_threshold, threshold),
            set(&mut row.cooldown_seconds, cooldown),
        ]
        .contains(&true);
        if changed {
            row.version += 1;
            row.updated_at = store::now_ms();
            db::update(tx, &row)?;
        }
        Ok(row)
    })?;
    Ok(UpdatePoolResponse {
        pool: Some(row.to_pb()),
    })
}

pub fn delete(ctx: &mut Ctx, req: DeletePoolRequest) -> Result<DeletePoolResponse> {
    let ws = ctx.ws()?;
    let id = PoolId::parse(&req.pool_id)?;
    ctx.write(|tx| {
        db::get(tx, ws, id)?.ok_or_else(|| Error::not_found("pool"))?;
        if db::has_live_sessions(tx, id)? {
            return Err(Error::precondition(
                "The pool still has live sessions; delete them before deleting the pool.",
            ));
        }
        db::delete(tx, id)
    })?;
    Ok(DeletePoolResponse {})
}
