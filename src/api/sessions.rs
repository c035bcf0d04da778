//! CreateSession, BulkCreateSessions, GetSession, BatchGetSessions,
//! ListSessions, UpdateSession, DeleteSession, ReportSessionResult.

use rand::Rng;
use rusqlite::Connection;

use crate::assign;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::ids::{PoolId, ProviderId, SessionId, WorkspaceId};
use crate::pb::v1::*;
use crate::pb::Timestamp;
use crate::store::providers::SessionTarget;
use crate::store::sessions::{self as db, SessionRow};
use crate::store::{self, pools, providers};

use super::providers::WEBSHARE;
use super::{check_host, check_port, check_scheme, check_secretish, check_token};
use super::{found, list_page, save_if_changed, workspace_exists};

/// The wire form of a session row; `now` decides `health.healthy`. The
/// sealed password never leaves the store.
pub fn session_pb(s: &SessionRow, now: i64) -> Session {
    let ts = |v: Option<i64>| v.map(Timestamp::from_millis);
    Session {
        id: s.id.to_vec(),
        workspace_id: s.workspace_id.to_vec(),
        pool_id: s.pool_id.to_vec(),
        provider_id: s.provider_id.to_vec(),
        token: s.token.clone(),
        scheme: s.scheme.clone().unwrap_or_default(),
        host: s.host.clone().unwrap_or_default(),
        port: s.port.unwrap_or_default(),
        username: s.username.clone().unwrap_or_default(),
        enabled: s.enabled,
        version: s.version,
        created_at: ts(Some(s.created_at)),
        updated_at: ts(Some(s.updated_at)),
        health: Some(SessionHealth {
            healthy: assign::is_healthy(s.unhealthy_until, now),
            consecutive_failures: s.consecutive_failures,
            last_success_at: ts(s.last_success_at),
            last_failure_at: ts(s.last_failure_at),
            unhealthy_until: ts(s.unhealthy_until),
        }),
        assignment_count: s.assignment_count,
        expires_at: ts(s.expires_at),
    }
}

/// A session request checked on its own, before the store is asked.
pub(crate) struct Spec {
    pub token: Option<String>,
    endpoint: Option<Endpoint>,
}

struct Endpoint {
    scheme: String,
    host: String,
    port: i32,
    username: Option<String>,
    password: Option<String>,
}

/// Checks one session request; errors of a bulk item name its index.
/// `proxyplane import` checks its lines with it too (index None).
pub(crate) fn check_spec(index: Option<usize>, s: &SessionSpec) -> Result<Spec> {
    check_spec_fields(s).map_err(|e| match index {
        Some(i) => Error {
            message: format!("sessions[{i}].{}", e.message),
            ..e
        },
        None => e,
    })
}

fn check_spec_fields(s: &SessionSpec) -> Result<Spec> {
    let token = if s.token.is_empty() {
        None
    } else {
        check_token("token", &s.token)?;
        Some(s.token.clone())
    };
    let is_static = !(s.host.is_empty()
        && s.port == 0
        && s.scheme.is_empty()
        && s.username.is_empty()
        && s.password.is_empty());
    let endpoint = if is_static {
        if s.host.is_empty() {
            return Err(Error::invalid(
                "host is required for a static session (a rotation session sets only a token).",
            ));
        }
        let scheme = check_scheme("scheme", &s.scheme)?;
        let host = check_host("host", &s.host)?;
        check_port("port", s.port)?;
        check_secretish("username", &s.username)?;
        check_secretish("password", &s.password)?;
        let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Some(Endpoint {
            scheme,
            host,
            port: s.port,
            username: opt(&s.username),
            password: opt(&s.password),
        })
    } else {
        None
    };
    Ok(Spec { token, endpoint })
}

/// What the pool and provider must allow before sessions are added.
pub(crate) fn check_target(
    tx: &Connection,
    ws: WorkspaceId,
    pool: PoolId,
    provider: ProviderId,
) -> Result<SessionTarget> {
    found(pools::exists(tx, ws, pool)?.then_some(()), "pool")?;
    let p = found(providers::session_target(tx, ws, provider)?, "provider")?;
    if !p.enabled {
        return Err(Error::precondition(
            "The provider is disabled; enable it before adding sessions.",
        ));
    }
    Ok(p)
}

/// Numbering of generated Webshare tokens within one call, in decimal
/// digits: tokens may be up to 128 digits, beyond any integer type.
#[derive(Default)]
struct NextIndex {
    next: Option<String>,
    /// Numeric tokens the request names explicitly.
    named: std::collections::HashSet<String>,
}

/// `n + 1` for decimal digits without leading zeros.
fn successor(n: &str) -> String {
    let mut digits = n.as_bytes().to_vec();
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return String::from_utf8_lossy(&digits).into_owned();
        }
    }
    format!("1{}", String::from_utf8_lossy(&digits))
}

fn random_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

enum Inserted {
    New(Box<SessionRow>),
    /// A live session of the pool holds the token already.
    Existing(SessionId),
}

/// Inserts one checked session, or finds the live one holding its token.
/// `next_index` numbers generated Webshare tokens.
fn insert(
    tx: &Connection,
    sealer: &super::Sealer,
    ws: WorkspaceId,
    pool: PoolId,
    provider: &SessionTarget,
    spec: Spec,
    next_index: &mut NextIndex,
) -> Result<Inserted> {
    let rotation = spec.endpoint.is_none();
    if rotation && !provider.has_gateway {
        return Err(Error::precondition(
            "A rotation session needs a provider with a gateway; give the provider a gateway or the session a host and port.",
        ));
    }
    let webshare_rotation = rotation && provider.ptype == WEBSHARE;
    let token = match spec.token {
        Some(t) => {
            if webshare_rotation && !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid(
                    "token must be numeric for a Webshare rotation session.",
                ));
            }
            t
        }
        None if webshare_rotation => {
            let mut n = match next_index.next.take() {
                Some(n) => n,
                None => successor(&db::max_numeric_token(tx, pool)?),
            };
            // Skip indexes that items of the same request name explicitly.
            while next_index.named.contains(&n) {
                n = successor(&n);
            }
            if n.len() > 128 {
                return Err(Error::precondition(
                    "token: the pool holds a numeric token of 128 digits, so no higher index can be generated; give the token explicitly.",
                ));
            }
            next_index.next = Some(successor(&n));
            n
        }
        None => random_token(),
    };
    let id = SessionId::generate();
    let now = store::now_ms();
    let (scheme, host, port, username, password) = match spec.endpoint {
        Some(e) => {
            let sealed = e
                .password
                .map(|p| sealer.seal(&id.0, "password", p.as_bytes()))
                .transpose()?;
            (
                Some(e.scheme),
                Some(e.host),
                Some(e.port),
                e.username,
                sealed,
            )
        }
        None => (None, None, None, None, None),
    };
    let row = SessionRow {
        scheme,
        host,
        port,
        username,
        password,
        ..SessionRow::new(id, ws, pool, provider.id, token, now)
    };
    if db::insert(tx, &row)? {
        return Ok(Inserted::New(Box::new(row)));
    }
    db::live_by_token(tx, pool, &row.token)?
        .map(Inserted::Existing)
        .ok_or_else(|| Error::internal("token conflict without a live session"))
}

pub fn create(ctx: &mut Ctx, req: CreateSessionRequest) -> Result<CreateSessionResponse> {
    let ws = ctx.ws()?;
    let pool = PoolId::parse(&req.pool_id)?;
    let provider = ProviderId::parse(&req.provider_id)?;
    let spec = check_spec(
        None,
        &SessionSpec {
            token: req.token,
            scheme: req.scheme,
            host: req.host,
            port: req.port,
            username: req.username,
            password: req.password,
        },
    )?;
    let keys = &ctx.state.keys;
    // For the message only: the insert itself finds a taken token (its
    // ON CONFLICT), without a read of its own before it.
    let named = spec.token.clone();
    let row = ctx.write(|tx| {
        let p = check_target(tx, ws, pool, provider)?;
        let sealer = super::Sealer::new(tx, keys, ws)?;
        match insert(tx, &sealer, ws, pool, &p, spec, &mut NextIndex::default())? {
            Inserted::New(row) => {
                // A new session is enabled.
                db::count_created(tx, 1, 0)?;
                Ok(*row)
            }
            Inserted::Existing(_) => Err(Error::exists(match &named {
                Some(t) => {
                    format!("The token {t:?} is already used by a live session in this pool.")
                }
                None => "The token is already used by a live session in this pool.".into(),
            })),
        }
    })?;
    Ok(CreateSessionResponse {
        session: Some(session_pb(&row, store::now_ms())),
    })
}

pub fn bulk_create(
    ctx: &mut Ctx,
    req: BulkCreateSessionsRequest,
) -> Result<BulkCreateSessionsResponse> {
    let ws = ctx.ws()?;
    let pool = PoolId::parse(&req.pool_id)?;
    let provider = ProviderId::parse(&req.provider_id)?;
    let max = ctx.state.config.max_bulk_items;
    if req.sessions.len() > max {
        return Err(Error::invalid(format!(
            "sessions has {} items; at most {max} are allowed in one call.",
            req.sessions.len()
        )));
    }
    let specs = req
        .sessions
        .iter()
        .enumerate()
        .map(|(i, s)| check_spec(Some(i), s))
        .collect::<Result<Vec<_>>>()?;
    let keys = &ctx.state.keys;
    let done = ctx.write(|tx| insert_batch(tx, keys, ws, pool, provider, specs))?;
    Ok(BulkCreateSessionsResponse {
        session_ids: done.ids,
        created_count: done.created,
        existing_count: done.existing,
    })
}

/// What one BulkCreateSessions batch did.
pub(crate) struct Batch {
    pub ids: Vec<Vec<u8>>,
    pub created: i32,
    pub existing: i32,
}

/// The body of BulkCreateSessions, in the caller's transaction: checks the
/// pool and provider, then inserts each checked session (or finds the live
/// one holding its token). `proxyplane import` runs its batches through it.
pub(crate) fn insert_batch(
    tx: &Connection,
    keys: &crate::crypto::Keyring,
    ws: WorkspaceId,
    pool: PoolId,
    provider: ProviderId,
    specs: Vec<Spec>,
) -> Result<Batch> {
    let p = check_target(tx, ws, pool, provider)?;
    let sealer = super::Sealer::new(tx, keys, ws)?;
    let mut done = Batch {
        ids: Vec::with_capacity(specs.len()),
        created: 0,
        existing: 0,
    };
    let mut next_index = NextIndex {
        next: None,
        named: specs
            .iter()
            .filter_map(|s| s.token.clone())
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .collect(),
    };
    for (i, spec) in specs.into_iter().enumerate() {
        let inserted =
            insert(tx, &sealer, ws, pool, &p, spec, &mut next_index).map_err(|e| Error {
                message: format!("sessions[{i}]: {}", e.message),
                ..e
            })?;
        match inserted {
            Inserted::New(row) => {
                done.ids.push(row.id.to_vec());
                done.created += 1;
            }
            Inserted::Existing(id) => {
                done.ids.push(id.to_vec());
                done.existing += 1;
            }
        }
    }
    // New sessions are enabled; counted once per batch (see db::insert).
    db::count_created(tx, i64::from(done.created), 0)?;
    Ok(done)
}

pub fn get(ctx: &mut Ctx, req: GetSessionRequest) -> Result<GetSessionResponse> {
    let ws = ctx.ws()?;
    let id = SessionId::parse(&req.session_id)?;
    let row = found(ctx.read(|tx| db::get(tx, ws, id))?, "session")?;
    Ok(GetSessionResponse {
        session: Some(session_pb(&row, store::now_ms())),
    })
}

pub const MAX_BATCH: usize = 1000;

pub fn batch_get(ctx: &mut Ctx, req: BatchGetSessionsRequest) -> Result<BatchGetSessionsResponse> {
    let ws = ctx.ws()?;
    if req.session_ids.len() > MAX_BATCH {
        return Err(Error::invalid(format!(
            "session_ids may hold at most {MAX_BATCH} ids."
        )));
    }
    let ids = req
        .session_ids
        .iter()
        .enumerate()
        .map(|(i, b)| SessionId::parse_named(b, &format!("session_ids[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let now = store::now_ms();
    let sessions = ctx.read(|tx| {
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                db::get(tx, ws, *id)?
                    .map(|r| session_pb(&r, now))
                    .ok_or_else(|| {
                        Error::new(
                            crate::error::Code::NotFound,
                            format!("session_ids[{i}] does not exist in this workspace."),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(BatchGetSessionsResponse { sessions })
}

pub fn list(ctx: &mut Ctx, req: ListSessionsRequest) -> Result<ListSessionsResponse> {
    let ws = ctx.ws()?;
    let pool = PoolId::parse_optional(&req.pool_id)?;
    let state = state_filter(req.state)?;
    // Validated above: one of the enum's five small values.
    let state_byte = [req.state.to_le_bytes()[0]];
    let mut list = crate::cursor::List::new("ListSessions", Some(ws))
        .filter("pool_id", pool.as_ref().map(|p| &p.0[..]));
    // Bound only when set, so cursors made before the filter existed stay
    // valid.
    if state.is_some() {
        list = list.filter("state", Some(&state_byte[..]));
    }
    let now = crate::store::now_ms();
    let (ids, next_cursor) =
        list_page(ctx, &list, req.page_size, &req.cursor, |tx, after, size| {
            if let Some(p) = pool {
                found(pools::get(tx, ws, p)?, "pool")?;
            } else {
                workspace_exists(tx, ws)?;
            }
            db::list_ids(tx, ws, pool, state.map(|s| (s, now)), after, size)
        })?;
    Ok(ListSessionsResponse {
        session_ids: ids.iter().map(|s| s.to_vec()).collect(),
        next_cursor,
    })
}

/// ListSessions' `state`: None for UNSPECIFIED (every live session).
fn state_filter(v: i32) -> Result<Option<db::State>> {
    use crate::pb::v1::SessionState as S;
    match S::try_from(v) {
        Ok(S::Unspecified) => Ok(None),
        Ok(S::Healthy) => Ok(Some(db::State::Healthy)),
        Ok(S::Unhealthy) => Ok(Some(db::State::Unhealthy)),
        Ok(S::CoolingDown) => Ok(Some(db::State::CoolingDown)),
        Ok(S::Disabled) => Ok(Some(db::State::Disabled)),
        Err(_) => Err(Error::invalid(format!(
            "state {v} is not a SessionState; use SESSION_STATE_HEALTHY, _UNHEALTHY, _COOLING_DOWN or _DISABLED."
        ))),
    }
}

pub fn update(ctx: &mut Ctx, req: UpdateSessionRequest) -> Result<UpdateSessionResponse> {
    let ws = ctx.ws()?;
    let id = SessionId::parse(&req.session_id)?;
    let scheme = req.scheme.as_deref().map(|s| {
        if s.is_empty() {
            Err(Error::invalid("scheme must not be empty."))
        } else {
            check_scheme("scheme", s)
        }
    });
    let scheme = scheme.transpose()?;
    let host = req
        .host
        .as_deref()
        .map(|h| check_host("host", h))
        .transpose()?;
    if let Some(p) = req.port {
        check_port("port", p)?;
    }
    if let Some(u) = &req.username {
        check_secretish("username", u)?;
    }
    if let Some(p) = &req.password {
        check_secretish("password", p)?;
    }
    let endpoint_fields = scheme.is_some()
        || req.host.is_some()
        || req.port.is_some()
        || req.username.is_some()
        || req.password.is_some();
    let keys = &ctx.state.keys;
    let row = ctx.write(|tx| {
        let mut row = found(db::get(tx, ws, id)?, "session")?;
        store::check_version(req.expected_version, row.version)?;
        if endpoint_fields && !row.is_static() {
            return Err(Error::precondition(
                "This is a rotation session: its endpoint comes from the provider's gateway; only enabled can change.",
            ));
        }
        let mut changed = super::set(&mut row.scheme, scheme.map(Some));
        changed |= super::set(&mut row.host, host.map(Some));
        changed |= super::set(&mut row.port, req.port.map(Some));
        changed |= super::set(&mut row.username, req.username.clone().map(|u| (!u.is_empty()).then_some(u)));
        changed |= super::set(&mut row.enabled, req.enabled);
        if let Some(p) = &req.password {
            row.password = if p.is_empty() {
                None
            } else {
                Some(super::Sealer::new(tx, keys, ws)?.seal(&id.0, "password", p.as_bytes())?)
            };
            changed = true;
        }
        save_if_changed(tx, &mut row, changed, store::now_ms(), db::update)?;
        Ok(row)
    })?;
    Ok(UpdateSessionResponse {
        session: Some(session_pb(&row, store::now_ms())),
    })
}

pub fn delete(ctx: &mut Ctx, req: DeleteSessionRequest) -> Result<DeleteSessionResponse> {
    let ws = ctx.ws()?;
    let id = SessionId::parse(&req.session_id)?;
    ctx.write(|tx| {
        let s = found(db::get(tx, ws, id)?, "session")?;
        db::soft_delete(tx, &s, store::now_ms())
    })?;
    Ok(DeleteSessionResponse {})
}

pub fn report_result(
    ctx: &mut Ctx,
    req: ReportSessionResultRequest,
) -> Result<ReportSessionResultResponse> {
    let ws = ctx.ws()?;
    let id = SessionId::parse(&req.session_id)?;
    if req.reason.chars().count() > 500 {
        return Err(Error::invalid("reason must be at most 500 characters."));
    }
    let (row, now) = ctx.write(|tx| {
        // Taken under the write lock, so a report that waited for it does
        // not start a cooldown in the past.
        let now = store::now_ms();
        let mut row = found(db::get(tx, ws, id)?, "session")?;
        let pool = found(pools::get(tx, ws, row.pool_id)?, "pool")?;
        let h = assign::report(
            assign::Health {
                consecutive_failures: row.consecutive_failures,
                unhealthy_until: row.unhealthy_until,
            },
            req.success,
            pool.failure_threshold,
            pool.cooldown_seconds as i64 * 1000,
            now,
        );
        row.consecutive_failures = h.consecutive_failures;
        row.unhealthy_until = h.unhealthy_until;
        if req.success {
            row.last_success_at = Some(now);
        } else {
            row.last_failure_at = Some(now);
        }
        db::set_health(tx, &row)?;
        Ok((row, now))
    })?;
    if !req.success {
        let stats = &ctx.state.pool_stats;
        stats.record(row.pool_id, crate::stats::Event::Failure, now);
    }
    Ok(ReportSessionResultResponse {
        session: Some(session_pb(&row, now)),
    })
}
