//! CreatePool, GetPool, ListPools, UpdatePool, DeletePool.

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::ids::PoolId;
use crate::pb::v1::*;
use crate::pb::Timestamp;
use crate::store;
use crate::store::pools::{self as db, PoolRow};

use super::{check_name, found, list_page, save_if_changed, set, workspace_exists};

pub const DEFAULT_FAILURE_THRESHOLD: i32 = 3;
pub const DEFAULT_COOLDOWN_SECONDS: i32 = 300;

/// The wire form of a pool row.
pub fn pool_pb(p: &PoolRow) -> Pool {
    Pool {
        id: p.id.to_vec(),
        workspace_id: p.workspace_id.to_vec(),
        name: p.name.clone(),
        rotation: Some(RotationPolicy {
            interval_seconds: Some(p.rotation_interval),
            on_unhealthy: Some(p.rotate_on_unhealthy),
        }),
        max_accounts_per_session: p.max_accounts_per_session,
        failure_threshold: p.failure_threshold,
        cooldown_seconds: p.cooldown_seconds,
        version: p.version,
        created_at: Some(Timestamp::from_millis(p.created_at)),
        updated_at: Some(Timestamp::from_millis(p.updated_at)),
    }
}

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
        workspace_exists(tx, ws)?;
        db::insert(tx, &row)
    })?;
    Ok(CreatePoolResponse {
        pool: Some(pool_pb(&row)),
    })
}

pub fn get(ctx: &mut Ctx, req: GetPoolRequest) -> Result<GetPoolResponse> {
    let ws = ctx.ws()?;
    let id = PoolId::parse(&req.pool_id)?;
    let row = found(ctx.read(|tx| db::get(tx, ws, id))?, "pool")?;
    Ok(GetPoolResponse {
        pool: Some(pool_pb(&row)),
    })
}

pub fn list(ctx: &mut Ctx, req: ListPoolsRequest) -> Result<ListPoolsResponse> {
    let ws = ctx.ws()?;
    let list = crate::cursor::List::new("ListPools", Some(ws));
    let (pools, next_cursor) =
        list_page(ctx, &list, req.page_size, &req.cursor, |tx, after, size| {
            workspace_exists(tx, ws)?;
            db::list(tx, ws, after, size)
        })?;
    Ok(ListPoolsResponse {
        pools: pools.iter().map(pool_pb).collect(),
        next_cursor,
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
        let mut row = found(db::get(tx, ws, id)?, "pool")?;
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
        save_if_changed(tx, &mut row, changed, store::now_ms(), db::update)?;
        Ok(row)
    })?;
    Ok(UpdatePoolResponse {
        pool: Some(pool_pb(&row)),
    })
}

pub fn delete(ctx: &mut Ctx, req: DeletePoolRequest) -> Result<DeletePoolResponse> {
    let ws = ctx.ws()?;
    let id = PoolId::parse(&req.pool_id)?;
    ctx.write(|tx| {
        let p = found(db::get(tx, ws, id)?, "pool")?;
        if db::has_live_sessions(tx, id)? {
            return Err(Error::precondition(
                "The pool still has live sessions; delete them before deleting the pool.",
            ));
        }
        db::delete(tx, &p)
    })?;
    ctx.state.pool_stats.forget(id);
    Ok(DeletePoolResponse {})
}

/// GetPoolStats: the hour of per-minute counts kept in memory, and the
/// sessions split by state as the database has them now.
pub fn stats(ctx: &mut Ctx, req: GetPoolStatsRequest) -> Result<GetPoolStatsResponse> {
    let ws = ctx.ws()?;
    let id = PoolId::parse(&req.pool_id)?;
    let now = store::now_ms();
    let counts = ctx.read(|tx| {
        found(db::get(tx, ws, id)?, "pool")?;
        db::session_states(tx, id, now)
    })?;
    let minutes = ctx
        .state
        .pool_stats
        .hour(id, now)
        .iter()
        .map(|m| PoolMinute {
            start: Some(Timestamp::from_millis(m.minute * 60_000)),
            resolves: m.resolves as i64,
            moves: m.moves as i64,
            failures: m.failures as i64,
        })
        .collect();
    Ok(GetPoolStatsResponse {
        minutes,
        sessions: Some(SessionStateCounts {
            healthy: counts.healthy,
            unhealthy: counts.unhealthy,
            cooling_down: counts.cooling_down,
            disabled: counts.disabled,
        }),
    })
}
