//! CreateAssignment, GetAssignment, ListAssignments, UpdateAssignment,
//! RebindAssignment, DeleteAssignment, and ResolveProxy: the hot path, which
//! answers from a read transaction when the binding stands and takes the
//! write lock only to create or move an assignment.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use rusqlite::Connection;

use crate::assign::{self, Binding, Policy, Verdict};
use crate::crypto::Keyring;
use crate::ctx::{Ctx, State};
use crate::error::{Error, Result};
use crate::ids::{AssignmentId, PoolId, SessionId, WorkspaceId};
use crate::pb::v1::*;
use crate::pb::Timestamp;
use crate::stats::Event;
use crate::store::assignments::{self as db, AssignmentRow};
use crate::store::bindings::Bound;
use crate::store::pools::PoolRow;
use crate::store::providers::Upstream;
use crate::store::sessions::{self, SessionRow};
use crate::store::{self, pools, providers};

use super::providers::open_credentials;
use super::{found, list_page, save_if_changed, workspace_exists, Versioned};

/// The wire form of an assignment row.
pub fn assignment_pb(a: &AssignmentRow) -> Assignment {
    Assignment {
        id: a.id.to_vec(),
        workspace_id: a.workspace_id.to_vec(),
        pool_id: a.pool_id.to_vec(),
        session_id: a.session_id.to_vec(),
        account_name: a.account_name.clone(),
        pinned: a.pinned,
        version: a.version,
        created_at: Some(Timestamp::from_millis(a.created_at)),
        updated_at: Some(Timestamp::from_millis(a.updated_at)),
        bound_at: Some(Timestamp::from_millis(a.bound_at)),
        rotations: a.rotations,
    }
}

/// 1..=128 printable characters. Refused: control (Cc), format (Cf: soft
/// hyphen, zero-width and bidi controls, BOM, tags), line and paragraph
/// separators (Zl, Zp), private-use (Co), surrogate (Cs) and unassigned (Cn,
/// noncharacters included) code points, which print as nothing or differ
/// between systems, so two names that look alike would be two accounts.
/// Inner spaces are printable and allowed; leading or trailing whitespace
/// is refused, as it is almost always a copy-paste accident.
fn check_account(name: &str) -> Result<()> {
    use unicode_general_category::{get_general_category, GeneralCategory as G};
    let n = name.chars().count();
    if n == 0 || n > 128 {
        return Err(Error::invalid(
            "account_name must be 1 to 128 printable characters.",
        ));
    }
    let invisible = name.chars().any(|c| {
        matches!(
            get_general_category(c),
            G::Control
                | G::Format
                | G::LineSeparator
                | G::ParagraphSeparator
                | G::PrivateUse
                | G::Surrogate
                | G::Unassigned
        )
    });
    if invisible {
        return Err(Error::invalid(
            "account_name must be printable: no control, invisible formatting, line or paragraph separator, private-use or unassigned characters.",
        ));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(Error::invalid(
            "account_name must not start or end with whitespace.",
        ));
    }
    Ok(())
}

fn no_session() -> Error {
    Error::precondition("No healthy session with room is available in the pool.")
}

fn pool_of(tx: &Connection, ws: WorkspaceId, pool: PoolId) -> Result<PoolRow> {
    found(pools::get(tx, ws, pool)?, "pool")
}

/// A freshly chosen session of the pool: the store finds the eligible
/// ones (`assign::eligible`), `assign::choose` takes the least loaded.
fn pick(
    tx: &Connection,
    pool: &PoolRow,
    exclude: Option<SessionId>,
    now: i64,
) -> Result<Option<SessionId>> {
    let cands = sessions::candidates(tx, pool.id, pool.max_accounts_per_session, exclude, now)?;
    Ok(assign::choose(&cands, &mut rand::rng()))
}

/// A new, unpinned assignment bound to `session` at `now`.
fn new_assignment(
    ws: WorkspaceId,
    pool: PoolId,
    session: SessionId,
    account: &str,
    now: i64,
) -> AssignmentRow {
    AssignmentRow {
        id: AssignmentId::generate(),
        workspace_id: ws,
        pool_id: pool,
        session_id: session,
        account_name: account.to_string(),
        pinned: false,
        bound_at: now,
        rotations: 0,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// An explicitly named target must be a live, enabled session of the pool.
fn check_target(tx: &Connection, ws: WorkspaceId, pool: PoolId, id: SessionId) -> Result<()> {
    match sessions::get(tx, ws, id)? {
        Some(s) if s.pool_id == pool && s.enabled => Ok(()),
        Some(s) if s.pool_id != pool => Err(Error::precondition(
            "session_id names a session of another pool.",
        )),
        Some(_) => Err(Error::precondition(
            "session_id names a disabled session; enable it first.",
        )),
        None => Err(Error::precondition(
            "session_id must name a live, enabled session of the same pool.",
        )),
    }
}

pub fn create(ctx: &mut Ctx, req: CreateAssignmentRequest) -> Result<CreateAssignmentResponse> {
    let ws = ctx.ws()?;
    let pool = PoolId::parse(&req.pool_id)?;
    check_account(&req.account_name)?;
    let explicit = SessionId::parse_optional(&req.session_id)?;
    let row = ctx.write(|tx| {
        // Under the write lock: bound_at and updated_at follow commit order.
        let now = store::now_ms();
        let p = pool_of(tx, ws, pool)?;
        if db::by_account(tx, pool, &req.account_name)?.is_some() {
            return Err(Error::exists(format!(
                "The account {:?} already has an assignment in this pool.",
                req.account_name
            )));
        }
        let session = match explicit {
            Some(s) => {
                check_target(tx, ws, pool, s)?;
                s
            }
            None => pick(tx, &p, None, now)?.ok_or_else(no_session)?,
        };
        let row = AssignmentRow {
            pinned: req.pinned,
            ..new_assignment(ws, pool, session, &req.account_name, now)
        };
        db::insert(tx, &row)?;
        Ok(row)
    })?;
    Ok(CreateAssignmentResponse {
        assignment: Some(assignment_pb(&row)),
    })
}

pub fn get(ctx: &mut Ctx, req: GetAssignmentRequest) -> Result<GetAssignmentResponse> {
    let ws = ctx.ws()?;
    let id = AssignmentId::parse(&req.assignment_id)?;
    let row = found(ctx.read(|tx| db::get(tx, ws, id))?, "assignment")?;
    Ok(GetAssignmentResponse {
        assignment: Some(assignment_pb(&row)),
    })
}

pub fn list(ctx: &mut Ctx, req: ListAssignmentsRequest) -> Result<ListAssignmentsResponse> {
    let ws = ctx.ws()?;
    let filter = db::Filter {
        pool: PoolId::parse_optional(&req.pool_id)?,
        session: SessionId::parse_optional(&req.session_id)?,
        account_name: (!req.account_name.is_empty()).then_some(req.account_name.as_str()),
    };
    let list = crate::cursor::List::new("ListAssignments", Some(ws))
        .filter("pool_id", filter.pool.as_ref().map(|p| &p.0[..]))
        .filter("session_id", filter.session.as_ref().map(|s| &s.0[..]))
        .filter("account_name", filter.account_name.map(str::as_bytes));
    let (assignments, next_cursor) =
        list_page(ctx, &list, req.page_size, &req.cursor, |tx, after, size| {
            // Filters name things like everywhere else: an unknown pool or
            // session (or another workspace's) is not_found, not an empty list
            // that reads as "nothing assigned there".
            if let Some(p) = filter.pool {
                pool_of(tx, ws, p)?;
            }
            if let Some(s) = filter.session {
                // A deleted session still counts: assignments stay on it until
                // they are moved, and this is how to find them.
                found(
                    sessions::get_any(tx, s)?.filter(|row| row.workspace_id == ws),
                    "session",
                )?;
            }
            if filter.pool.is_none() && filter.session.is_none() {
                workspace_exists(tx, ws)?;
            }
            db::list(tx, ws, &filter, after, size)
        })?;
    Ok(ListAssignmentsResponse {
        assignments: assignments.iter().map(assignment_pb).collect(),
        next_cursor,
    })
}

pub fn update(ctx: &mut Ctx, req: UpdateAssignmentRequest) -> Result<UpdateAssignmentResponse> {
    let ws = ctx.ws()?;
    let id = AssignmentId::parse(&req.assignment_id)?;
    let target = req
        .session_id
        .as_deref()
        .map(SessionId::parse)
        .transpose()?;
    let mut moved = false;
    let row = ctx.write(|tx| {
        // Under the write lock: bound_at and updated_at follow commit order.
        let now = store::now_ms();
        let mut a = found(db::get(tx, ws, id)?, "assignment")?;
        store::check_version(req.expected_version, a.version)?;
        let mut changed = false;
        if let Some(s) = target {
            if s != a.session_id {
                check_target(tx, ws, a.pool_id, s)?;
                a.move_to(s, now);
                changed = true;
                moved = true;
            }
        }
        changed |= super::set(&mut a.pinned, req.pinned);
        save_if_changed(tx, &mut a, changed, now, db::update)?;
        Ok(a)
    })?;
    if moved {
        count(ctx, row.pool_id, Event::Move);
    }
    Ok(UpdateAssignmentResponse {
        assignment: Some(assignment_pb(&row)),
    })
}

/// Counts an event of a committed call in the pool's last hour.
fn count(ctx: &Ctx, pool: PoolId, event: Event) {
    ctx.state.pool_stats.record(pool, event, store::now_ms());
}

pub fn rebind(ctx: &mut Ctx, req: RebindAssignmentRequest) -> Result<RebindAssignmentResponse> {
    let ws = ctx.ws()?;
    let id = AssignmentId::parse(&req.assignment_id)?;
    let row = ctx.write(|tx| {
        // Under the write lock: bound_at and updated_at follow commit order.
        let now = store::now_ms();
        let mut a = found(db::get(tx, ws, id)?, "assignment")?;
        if a.pinned {
            return Err(Error::precondition(
                "The assignment is pinned; unpin it first (UpdateAssignment with pinned false).",
            ));
        }
        let p = pool_of(tx, ws, a.pool_id)?;
        let s = pick(tx, &p, Some(a.session_id), now)?.ok_or_else(|| {
            Error::precondition(
                "No other healthy session with room is available in the pool to rebind to.",
            )
        })?;
        a.move_to(s, now);
        a.stamp(now);
        db::update(tx, &a)?;
        Ok(a)
    })?;
    count(ctx, row.pool_id, Event::Move);
    Ok(RebindAssignmentResponse {
        assignment: Some(assignment_pb(&row)),
    })
}

pub fn delete(ctx: &mut Ctx, req: DeleteAssignmentRequest) -> Result<DeleteAssignmentResponse> {
    let ws = ctx.ws()?;
    let id = AssignmentId::parse(&req.assignment_id)?;
    ctx.write(|tx| {
        let a = found(db::get(tx, ws, id)?, "assignment")?;
        db::delete(tx, &a)
    })?;
    Ok(DeleteAssignmentResponse {})
}

// ---------------------------------------------------------------- ResolveProxy

fn policy(p: &PoolRow) -> Policy {
    Policy {
        interval_ms: p.rotation_interval as i64 * 1000,
        on_unhealthy: p.rotate_on_unhealthy,
    }
}

fn binding(a: &AssignmentRow, s: &SessionRow) -> Binding {
    Binding {
        pinned: a.pinned,
        bound_at: a.bound_at,
        session_enabled: s.enabled,
        session_deleted: s.deleted,
        session_unhealthy_until: s.unhealthy_until,
        session_expires_at: s.expires_at,
    }
}

fn pinned_unusable() -> Error {
    Error::precondition(
        "The assignment is pinned to a session that is deleted, disabled or unhealthy; move it with UpdateAssignment or unpin it.",
    )
}

fn session(tx: &Connection, id: SessionId) -> Result<SessionRow> {
    sessions::get_any(tx, id)?.ok_or_else(|| Error::internal("assignment names a missing session"))
}

/// Percent-encodes a login part with the WHATWG URL standard's userinfo
/// percent-encode set: C0 controls, space, the ASCII punctuation
/// `" # < > ? {backtick} { } / : ; = @ [ \ ] ^ |`, DEL and non-ASCII (as UTF-8
/// bytes), plus `%` itself so that decoding gives back
/// the original. RFC 3986 sub-delims other than `;` and `=` (`!$&'()*+,`)
/// stay literal: node-steam-user sends the login without decoding it, and
/// requests, httpx, curl, undici and the proxy agents read them either way.
fn userinfo_encode(out: &mut String, s: &str) {
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
            );
        if keep {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// Fills `{username}`, `{password}` and `{token}` in one left-to-right
/// pass, so a credential that itself contains a placeholder is copied as
/// it is, never filled in turn.
fn render(template: &str, username: &str, password: &str, token: &str) -> String {
    let mut out = String::with_capacity(template.len() + username.len() + password.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let hit = [
            ("{username}", username),
            ("{password}", password),
            ("{token}", token),
        ]
        .into_iter()
        .find(|(p, _)| tail.starts_with(p));
        match hit {
            Some((p, value)) => {
                out.push_str(value);
                rest = &tail[p.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The endpoint a session resolves to, secrets opened.
/// `known` is the provider's gateway when it was read already (a cached
/// binding); a rotation session's is read here otherwise.
fn proxy_for(
    tx: &Connection,
    keys: &Keyring,
    ws: WorkspaceId,
    s: &SessionRow,
    known: Option<&Upstream>,
) -> Result<Proxy> {
    let (scheme, host, port, username, password) = match (&s.scheme, &s.host, s.port) {
        (Some(scheme), Some(host), Some(port)) => {
            let password = match &s.password {
                Some(sealed) => {
                    String::from_utf8(super::open(tx, keys, ws, &s.id.0, "password", sealed)?)
                        .map_err(Error::internal)?
                }
                None => String::new(),
            };
            (
                scheme.clone(),
                host.clone(),
                port,
                s.username.clone().unwrap_or_default(),
                password,
            )
        }
        _ => {
            let read;
            let up = match known {
                Some(up) => up,
                None => {
                    read = providers::for_resolve(tx, s.provider_id)?
                        .ok_or_else(|| Error::internal("session names a missing provider"))?;
                    &read
                }
            };
            let g = up.gateway.as_ref().ok_or_else(|| {
                Error::precondition(
                    "The session's provider has no gateway; give it one with UpdateProvider.",
                )
            })?;
            let creds = match &up.credentials {
                Some(b) => open_credentials(tx, keys, ws, s.provider_id, b)?,
                None => Default::default(),
            };
            (
                g.scheme.clone(),
                g.host.clone(),
                g.port,
                render(
                    &g.username_template,
                    &creds.username,
                    &creds.password,
                    &s.token,
                ),
                render(
                    &g.password_template,
                    &creds.username,
                    &creds.password,
                    &s.token,
                ),
            )
        }
    };
    Ok(proxy(scheme, host, port, username, password))
}

/// The Proxy message, with `url` (login percent-encoded) and `endpoint`
/// (none) built in place: the hot path's strings, without `format!`.
fn proxy(scheme: String, host: String, port: i32, username: String, password: String) -> Proxy {
    let mut digits = Vec::with_capacity(11);
    if port < 0 {
        digits.push(b'-');
    }
    crate::pb::push_digits(&mut digits, i64::from(port), 1);
    let port_text = std::str::from_utf8(&digits).unwrap_or_default();
    let mut endpoint = String::with_capacity(scheme.len() + host.len() + 11);
    let mut url = String::with_capacity(endpoint.capacity() + username.len() + password.len() + 2);
    for out in [&mut endpoint, &mut url] {
        out.push_str(&scheme);
        out.push_str("://");
    }
    if !username.is_empty() || !password.is_empty() {
        userinfo_encode(&mut url, &username);
        if !password.is_empty() {
            url.push(':');
            userinfo_encode(&mut url, &password);
        }
        url.push('@');
    }
    for out in [&mut endpoint, &mut url] {
        if host.contains(':') {
            out.push('[');
            out.push_str(&host);
            out.push(']');
        } else {
            out.push_str(&host);
        }
        out.push(':');
        out.push_str(port_text);
    }
    Proxy {
        scheme,
        host,
        port,
        username,
        password,
        url,
        endpoint,
    }
}

/// Whether a binding stands (true), must or may move (false), or is pinned
/// to a session it cannot use (the error).
fn stands(b: &Bound, now: i64) -> Result<bool> {
    match assign::judge(&b.binding, &b.policy, now) {
        Verdict::Keep => Ok(true),
        Verdict::PinnedUnusable => Err(pinned_unusable()),
        Verdict::MustMove | Verdict::MoveIfPossible => Ok(false),
    }
}

/// The rows of the account's binding in this snapshot (data epoch
/// `epoch`): from the binding cache, or read and kept there. None when the
/// account has no assignment in the pool (NotFound when there is no pool).
fn bound(
    state: &State,
    tx: &Connection,
    epoch: i64,
    ws: WorkspaceId,
    pool: PoolId,
    account: &str,
) -> Result<Option<Arc<Bound>>> {
    let (cache, counted) = (&state.bindings, &state.metrics.resolve_cache);
    let state_keys = &state.keys;
    if let Some(b) = cache.get(epoch, ws, pool, account) {
        // Filled by a concurrent resolve since this one's probe.
        counted[0].fetch_add(1, Relaxed);
        return Ok(Some(b));
    }
    counted[1].fetch_add(1, Relaxed);
    let Some((a, s, interval, on_unhealthy)) = db::binding(tx, ws, pool, account)? else {
        pool_of(tx, ws, pool)?;
        return Ok(None);
    };
    let upstream = match s.is_static() {
        true => None,
        false => providers::for_resolve(tx, s.provider_id)?,
    };
    // Built now, whatever the verdict: a binding is read again only after
    // a write, and a hit then needs it.
    let proxy = proxy_for(tx, state_keys, ws, &s, upstream.as_ref()).ok();
    let b = Arc::new(Bound {
        ws,
        binding: binding(&a, &s),
        assignment: a,
        policy: Policy {
            interval_ms: interval as i64 * 1000,
            on_unhealthy,
        },
        proxy,
    });
    cache.put(epoch, b.clone());
    Ok(Some(b))
}

pub fn resolve(ctx: &mut Ctx, req: ResolveProxyRequest) -> Result<ResolveProxyResponse> {
    let ws = ctx.ws()?;
    let pool = PoolId::parse(&req.pool_id)?;
    check_account(&req.account_name)?;
    let account = req.account_name.as_str();
    let keys = &ctx.state.keys;
    let now = store::now_ms();

    let state = ctx.state;

    let mut moved = false;
    // The common case: the binding stands. Its rows are in the cache at
    // this snapshot's data epoch (one statement, no transaction), or a read
    // transaction is enough.
    let standing = ctx.read_probe(
        |epoch| {
            let b = state.bindings.get(epoch, ws, pool, account)?;
            // Not buildable from these rows: the slow path gives the error.
            let proxy = b.proxy.as_ref()?;
            state.metrics.resolve_cache[0].fetch_add(1, Relaxed);
            Some(stands(&b, now).map(|keep| keep.then(|| (b.assignment.clone(), proxy.clone()))))
        },
        |tx, epoch| {
            let Some(b) = bound(state, tx, epoch, ws, pool, account)? else {
                return Ok(None);
            };
            if !stands(&b, now)? {
                return Ok(None);
            }
            let proxy = match &b.proxy {
                Some(p) => p.clone(),
                // Could not be built from these rows: the error, again.
                None => {
                    let s = session(tx, b.assignment.session_id)?;
                    proxy_for(tx, keys, ws, &s, None)?
                }
            };
            Ok(Some((b.assignment.clone(), proxy)))
        },
    )?;
    let (a, proxy) = match standing {
        Some(x) => x,
        // Create or move under the write lock, deciding again on what is
        // there now: concurrent resolves of one account create it once.
        None => ctx.write(|tx| {
            // Decided again under the write lock, at the time it is taken.
            let now = store::now_ms();
            let p = pool_of(tx, ws, pool)?;
            // The assignment, and its session when that was read already.
            let (a, current) = match db::by_account(tx, pool, account)? {
                None => {
                    let s = pick(tx, &p, None, now)?.ok_or_else(no_session)?;
                    let a = new_assignment(ws, pool, s, account, now);
                    db::insert(tx, &a)?;
                    (a, None)
                }
                Some(mut a) => {
                    let s = session(tx, a.session_id)?;
                    match assign::judge(&binding(&a, &s), &policy(&p), now) {
                        Verdict::Keep => (a, Some(s)),
                        Verdict::PinnedUnusable => return Err(pinned_unusable()),
                        v @ (Verdict::MustMove | Verdict::MoveIfPossible) => {
                            match pick(tx, &p, Some(a.session_id), now)? {
                                Some(next) => {
                                    moved = true;
                                    a.move_to(next, now);
                                    a.stamp(now);
                                    db::update(tx, &a)?;
                                    (a, None)
                                }
                                None if v == Verdict::MoveIfPossible => (a, Some(s)),
                                None => return Err(no_session()),
                            }
                        }
                    }
                }
            };
            let s = match current {
                Some(s) => s,
                None => session(tx, a.session_id)?,
            };
            Ok((a, proxy_for(tx, keys, ws, &s, None)?))
        })?,
    };
    count(ctx, pool, Event::Resolve);
    if moved {
        count(ctx, pool, Event::Move);
    }
    Ok(ResolveProxyResponse {
        assignment: Some(assignment_pb(&a)),
        proxy: Some(proxy),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_url_and_endpoint() {
        let p = |host: &str, user: &str, pass: &str| {
            let p = proxy("http".into(), host.into(), 3128, user.into(), pass.into());
            (p.url, p.endpoint)
        };
        let both = |u: &str, e: &str| (u.to_owned(), e.to_owned());
        assert_eq!(
            p("203.0.113.7", "", ""),
            both("http://203.0.113.7:3128", "http://203.0.113.7:3128")
        );
        assert_eq!(
            p("2001:db8::1", "u", ""),
            both("http://u@[2001:db8::1]:3128", "http://[2001:db8::1]:3128")
        );
        assert_eq!(
            p("gw.example.org", "u@x", "p:w"),
            both(
                "http://u%40x:p%3Aw@gw.example.org:3128",
                "http://gw.example.org:3128"
            )
        );
        assert_eq!(
            p("gw.example.org", "", "pw"),
            both(
                "http://:pw@gw.example.org:3128",
                "http://gw.example.org:3128"
            )
        );
    }

    #[test]
    fn userinfo_is_percent_encoded_with_the_whatwg_userinfo_set() {
        let userinfo_encode = |s: &str| {
            let mut out = String::new();
            super::userinfo_encode(&mut out, s);
            out
        };
        assert_eq!(userinfo_encode("user-1.a_b~"), "user-1.a_b~");
        assert_eq!(userinfo_encode("p@ss:w/rd %"), "p%40ss%3Aw%2Frd%20%25");
        assert_eq!(userinfo_encode("Pa$$!&'()*+,"), "Pa$$!&'()*+,");
        assert_eq!(
            userinfo_encode("\"#<>?`{}/:;=@[\\]^|"),
            "%22%23%3C%3E%3F%60%7B%7D%2F%3A%3B%3D%40%5B%5C%5D%5E%7C"
        );
        assert_eq!(userinfo_encode("\u{1}\u{7f}\u{e9}"), "%01%7F%C3%A9");
    }

    #[test]
    fn templates_are_filled_in_one_pass() {
        assert_eq!(
            render("{username}-s-{token}", "u{token}x", "p", "42"),
            "u{token}x-s-42"
        );
        assert_eq!(
            render("{password}:{token}", "u", "p{username}", "t"),
            "p{username}:t"
        );
        assert_eq!(render("{x}{{token}}{", "u", "p", "t"), "{x}{t}{");
        assert_eq!(render("{tok{token}", "u", "p", "t"), "{tokt");
    }

    #[test]
    fn account_names_must_be_printable() {
        for ok in [
            "bot 1",
            "\u{431}\u{43e}\u{442}",
            "e\u{301}",
            "\u{1F916}",
            "a\u{a0}b",
        ] {
            assert!(check_account(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "a\u{ad}b",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{200b}b",
            "a\u{e000}b",
            "a\u{378}b",
            "a\u{ffff}b",
            "a\u{85}b",
            " a",
            "a ",
            "a\u{3000}",
        ] {
            assert!(check_account(bad).is_err(), "{bad:?}");
        }
        assert!(check_account(&"x".repeat(128)).is_ok());
        assert!(check_account(&"x".repeat(129)).is_err());
    }

    #[test]
    fn templates_fill_placeholders() {
        assert_eq!(
            render("{username}-session-{token}", "u", "p", "42"),
            "u-session-42"
        );
        assert_eq!(
            render("{password}_session-{token}", "u", "p", "x"),
            "p_session-x"
        );
    }
}
