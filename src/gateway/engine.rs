//! The gateway's synchronous half, run on the API's bounded workers
//! (`block_in_place`): the login checked as `rpc::authenticate` checks a
//! bearer key (same per-IP failed-auth bucket, same per-key limit), then
//! ResolveProxy and ReportSessionResult called as the API calls them, so
//! the gateway and the API never disagree on policy, rows or metrics.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::api;
use crate::auth::Principal;
use crate::ctx::{Ctx, State};
use crate::error::{Code, Error, Result};
use crate::ids::{PoolId, WorkspaceId};
use crate::pb::v1::{ReportSessionResultRequest, ResolveProxyRequest};
use crate::rpc::{self, METHODS};
use crate::store;

use super::wire::Login;

/// Where a bot's bytes go: its account's upstream, secrets opened.
pub struct Upstream {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub session_id: Vec<u8>,
    pub pool_id: PoolId,
}

/// A caller that passed the key check, for the resolve and its reports.
#[derive(Clone, Copy)]
pub struct Caller {
    principal: Principal,
    workspace: WorkspaceId,
    pool: PoolId,
}

/// Checks the key (the password) and resolves the login's pool.
pub fn login(state: &State, login: &Login, key: &str, peer: IpAddr) -> Result<Caller> {
    let principal = rpc::authenticate(state, Some(&format!("Bearer {key}")), peer)?;
    let resolve = rpc::lookup("/proxies.v1.Proxies/ResolveProxy")
        .ok_or_else(|| Error::internal("ResolveProxy is missing from the method table"))?;
    rpc::authorize(&METHODS[resolve], &principal)?;
    // An admin key has no workspace to find the pool in.
    let workspace = principal.workspace.ok_or_else(|| {
        Error::new(
            Code::PermissionDenied,
            "The gateway takes a workspace key (resolver, editor or owner), not an admin key.",
        )
    })?;
    let mut conn = state.db.get()?;
    let mut ctx = ctx(state, &mut conn, principal, workspace);
    let by_id = PoolId::from_base64(&login.pool);
    let pool = ctx.read(|tx| {
        if let Some(id) = by_id {
            if store::pools::get(tx, workspace, id)?.is_some() {
                return Ok(id);
            }
        }
        let named = store::pools::by_name(tx, workspace, &login.pool)?;
        match named.as_slice() {
            [one] => Ok(one.id),
            [] => Err(Error::not_found("pool")),
            _ => Err(Error::invalid(
                "The username names a pool by a name two pools share; use the pool's id.",
            )),
        }
    })?;
    Ok(Caller {
        principal,
        workspace,
        pool,
    })
}

fn ctx<'a>(
    state: &'a State,
    conn: &'a mut store::Conn,
    principal: Principal,
    ws: WorkspaceId,
) -> Ctx<'a> {
    Ctx {
        state,
        conn,
        principal,
        workspace: Some(ws),
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        used: false,
    }
}

/// ResolveProxy for the account, recorded in the API's metrics as one.
pub fn resolve(state: &State, c: Caller, account: &str) -> Result<Upstream> {
    let started = Instant::now();
    let index = rpc::lookup("/proxies.v1.Proxies/ResolveProxy");
    let out = (|| {
        let mut conn = state.db.get()?;
        let mut ctx = ctx(state, &mut conn, c.principal, c.workspace);
        let r = api::assignments::resolve(
            &mut ctx,
            ResolveProxyRequest {
                workspace_id: c.workspace.to_vec(),
                pool_id: c.pool.to_vec(),
                account_name: account.to_owned(),
            },
        )?;
        let (Some(a), Some(p)) = (r.assignment, r.proxy) else {
            return Err(Error::internal("ResolveProxy answered without a proxy"));
        };
        Ok(Upstream {
            port: u16::try_from(p.port).map_err(Error::internal)?,
            scheme: p.scheme,
            host: p.host,
            username: p.username,
            password: p.password,
            session_id: a.session_id,
            pool_id: c.pool,
        })
    })();
    state
        .metrics
        .record(index, out.as_ref().err().map(|e| e.code), started.elapsed());
    out
}

/// ReportSessionResult for what traffic showed, recorded as one.
pub fn report(state: &State, c: Caller, session: &[u8], success: bool, reason: &str) -> Result<()> {
    let started = Instant::now();
    let index = rpc::lookup("/proxies.v1.Proxies/ReportSessionResult");
    let out = (|| {
        let mut conn = state.db.get()?;
        let mut ctx = ctx(state, &mut conn, c.principal, c.workspace);
        api::sessions::report_result(
            &mut ctx,
            ReportSessionResultRequest {
                workspace_id: c.workspace.to_vec(),
                session_id: session.to_vec(),
                success,
                reason: reason.to_owned(),
            },
        )
        .map(|_| ())
    })();
    state
        .metrics
        .record(index, out.as_ref().err().map(|e| e.code), started.elapsed());
    out
}
