//! The one table: method name → (who may call it, read-only or not,
//! handler), and the steps of a call that are about the caller, not the
//! protocol: authenticate and rate-limit, check the role, decode, run,
//! encode. `connect` drives them around its own work (compression).

use std::net::IpAddr;
use std::time::Instant;

use crate::api;
use crate::auth::{self, Principal};
use crate::codec::{self, Codec};
use crate::ctx::{Ctx, State};
use crate::error::{Code, Error, Result};
use crate::role::Access;
use crate::scope::Scoped;

type Run = fn(&mut Ctx, Codec, &[u8]) -> Result<Vec<u8>>;

pub struct Method {
    pub name: &'static str,
    pub access: Access,
    /// NO_SIDE_EFFECTS in the proto: also served over Connect GET.
    pub read_only: bool,
    pub run: Run,
}

fn typed<Req, Resp>(
    ctx: &mut Ctx,
    codec: Codec,
    body: &[u8],
    f: fn(&mut Ctx, Req) -> Result<Resp>,
) -> Result<Vec<u8>>
where
    Req: prost::Message + serde::de::DeserializeOwned + Default + Scoped,
    Resp: prost::Message + serde::Serialize + 'static,
{
    let req = codec::decode::<Req>(codec, body)?;
    // The tenant check, once for every method.
    ctx.workspace = ctx.principal.check(req.scope())?;
    let resp = f(ctx, req)?;
    codec::encode(codec, &resp)
}

macro_rules! methods {
    ($($name:ident => $access:ident, $ro:expr, $handler:path;)*) => {
        pub static METHODS: &[Method] = &[$(
            Method {
                name: stringify!($name),
                access: Access::$access,
                read_only: $ro,
                run: {
                    fn run(ctx: &mut Ctx, codec: Codec, body: &[u8]) -> Result<Vec<u8>> {
                        typed(ctx, codec, body, $handler)
                    }
                    run
                },
            },
        )*];
    };
}

const R: bool = true;
const W: bool = false;

methods! {
    CreateWorkspace => Admin, W, api::workspaces::create;
    GetWorkspace => Read, R, api::workspaces::get;
    ListWorkspaces => Read, R, api::workspaces::list;
    UpdateWorkspace => Owner, W, api::workspaces::update;
    DeleteWorkspace => Admin, W, api::workspaces::delete;
    CreateApiKey => Owner, W, api::api_keys::create;
    ListApiKeys => Owner, R, api::api_keys::list;
    RevokeApiKey => Owner, W, api::api_keys::revoke;
    ConnectProvider => Owner, W, api::providers::connect;
    GetProvider => Read, R, api::providers::get;
    ListProviders => Read, R, api::providers::list;
    UpdateProvider => Owner, W, api::providers::update;
    DisconnectProvider => Owner, W, api::providers::disconnect;
    SyncProvider => Edit, W, api::sync::sync;
    CreatePool => Edit, W, api::pools::create;
    GetPool => Read, R, api::pools::get;
    ListPools => Read, R, api::pools::list;
    UpdatePool => Edit, W, api::pools::update;
    DeletePool => Edit, W, api::pools::delete;
    CreateSession => Edit, W, api::sessions::create;
    BulkCreateSessions => Edit, W, api::sessions::bulk_create;
    GetSession => Read, R, api::sessions::get;
    BatchGetSessions => Read, R, api::sessions::batch_get;
    ListSessions => Read, R, api::sessions::list;
    UpdateSession => Edit, W, api::sessions::update;
    DeleteSession => Edit, W, api::sessions::delete;
    ReportSessionResult => Resolve, W, api::sessions::report_result;
    CreateAssignment => Edit, W, api::assignments::create;
    GetAssignment => Read, R, api::assignments::get;
    ListAssignments => Read, R, api::assignments::list;
    UpdateAssignment => Edit, W, api::assignments::update;
    RebindAssignment => Edit, W, api::assignments::rebind;
    DeleteAssignment => Edit, W, api::assignments::delete;
    ResolveProxy => Resolve, W, api::assignments::resolve;
    RotateWorkspaceKey => Owner, W, api::providers::rotate_workspace_key;
    GetPoolStats => Read, R, api::pools::stats;
}

/// The index of the method a path names.
pub fn lookup(path: &str) -> Option<usize> {
    let name = path.strip_prefix("/proxies.v1.Proxies/")?;
    METHODS.iter().position(|m| m.name == name)
}

/// The key a request carries, checked: an unknown or missing key is
/// unauthenticated, and each key is rate-limited. Every authenticated
/// endpoint (RPCs, /metrics) goes through here.
pub fn authenticate(state: &State, authorization: Option<&str>, peer: IpAddr) -> Result<Principal> {
    // The per-IP bucket counts failed authentications only, and refuses
    // only failures: a request with a valid key is never turned away by it,
    // so one misconfigured bot behind a NAT (or on 127.0.0.1) cannot lock
    // every valid key out. Guessing a 256-bit key is not helped by being
    // told 401 rather than 429.
    let failed = |e: Error| match state.ip_limiter.take(peer) {
        Ok(()) => e,
        Err(secs) => state.metrics.rate_limited(secs),
    };
    let Some(secret) = auth::bearer(authorization) else {
        return Err(failed(Error::unauthenticated()));
    };
    let principal =
        match auth::authenticate(&state.db, state.keys.master(), secret, &state.key_cache) {
            Ok(p) => p,
            Err(e) if e.code == Code::Unauthenticated => return Err(failed(e)),
            Err(e) => return Err(e),
        };
    state
        .key_limiter
        .take(principal.key_id)
        .map_err(|secs| state.metrics.rate_limited(secs))?;
    Ok(principal)
}

/// Whether the caller's role may call the method at all (its workspace
/// is checked against the request by the handler).
pub fn authorize(method: &Method, principal: &Principal) -> Result<()> {
    if method.access.allows(principal.role) {
        Ok(())
    } else {
        Err(Error::denied())
    }
}

/// Runs one authorized call on the calling (worker) thread: the request
/// body (plain) in, the response body out.
pub fn run(
    state: &State,
    method: &Method,
    principal: Principal,
    codec: Codec,
    body: &[u8],
    deadline: Option<Instant>,
) -> Result<Vec<u8>> {
    let mut conn = state.db.get()?;
    let mut ctx = Ctx {
        state,
        conn: &mut conn,
        principal,
        workspace: None,
        deadline,
        used: false,
    };
    let out = (method.run)(&mut ctx, codec, body)?;
    // A write that ran out of time was rolled back before commit; a read
    // that finished late is refused too, so the deadline is a deadline.
    if method.read_only && deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(Error::deadline());
    }
    Ok(out)
}
