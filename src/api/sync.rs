//! SyncProvider: fetch a vendor's proxy list (`crate::vendor`) with the
//! provider's sealed API key and reconcile the pool with it in one
//! transaction. The decisions (tokens, invalid and removed proxies, pinned
//! assignments, concurrency, errors) are written in the proto.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::crypto::Keyring;
use crate::ctx::{Ctx, State};
use crate::error::{Code, Error, Result};
use crate::ids::{PoolId, ProviderId, SessionId, WorkspaceId};
use crate::pb::v1::*;
use crate::pb::Timestamp;
use crate::store::providers::{self as providers_db, ProviderRow};
use crate::store::sessions::{self as db, SessionRow};
use crate::store::{self, pools};
use crate::vendor::{self, Client, Limits, VendorError, VendorProxy};

use super::{check_host, check_token, found};

/// The last sync as stored on the provider (`providers.last_sync`).
#[derive(Serialize, Deserialize, Default, Debug, Clone, Copy, PartialEq)]
struct Counts {
    created: i64,
    updated: i64,
    disabled: i64,
    removed: i64,
    unchanged: i64,
}

#[derive(Serialize, Deserialize)]
struct LastSync {
    started_at: i64,
    finished_at: i64,
    #[serde(flatten)]
    counts: Counts,
    error: String,
}

fn result_pb(l: &LastSync) -> SyncResult {
    SyncResult {
        started_at: Some(Timestamp::from_millis(l.started_at)),
        finished_at: Some(Timestamp::from_millis(l.finished_at)),
        created: l.counts.created,
        updated: l.counts.updated,
        disabled: l.counts.disabled,
        removed: l.counts.removed,
        unchanged: l.counts.unchanged,
        error: l.error.clone(),
    }
}

/// The stored last sync as the wire shows it; None if unreadable.
pub fn last_sync_pb(json: &str) -> Option<SyncResult> {
    serde_json::from_str::<LastSync>(json)
        .ok()
        .map(|l| result_pb(&l))
}

/// Providers with a sync under way in this process: one at a time each.
static RUNNING: Mutex<Option<HashSet<ProviderId>>> = Mutex::new(None);

struct Running(ProviderId);

impl Running {
    fn claim(id: ProviderId) -> Result<Running> {
        let mut set = RUNNING.lock();
        if !set.get_or_insert_with(HashSet::new).insert(id) {
            return Err(Error::new(
                Code::Aborted,
                "A sync of this provider is already running; try again when it has finished.",
            ));
        }
        Ok(Running(id))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(set) = RUNNING.lock().as_mut() {
            set.remove(&self.0);
        }
    }
}

/// What a sync needs from the provider, read before any vendor call.
struct Plan {
    provider: ProviderRow,
    pool: PoolId,
    api_key: String,
}

fn plan(
    tx: &Connection,
    keys: &Keyring,
    ws: WorkspaceId,
    id: ProviderId,
    pool: Option<PoolId>,
) -> Result<Plan> {
    let p = found(providers_db::get(tx, ws, id)?, "provider")?;
    if Vendor::of(&p).is_none() {
        let name = ProviderType::try_from(p.ptype).map_or("this type", |t| t.as_str_name());
        return Err(Error::precondition(format!(
            "SyncProvider supports PROVIDER_TYPE_WEBSHARE and PROVIDER_TYPE_PROXYLINE providers; this one is {name}, which has no vendor API proxyplane can read."
        )));
    }
    if !p.enabled {
        return Err(Error::precondition(format!(
            "Provider {:?} is disabled, so it takes no new sessions; enable it before syncing.",
            p.name
        )));
    }
    let pool = pool.or(p.sync_pool_id).ok_or_else(|| {
        Error::invalid("pool_id is required: the provider has no sync.pool_id to default to.")
    })?;
    found(pools::get(tx, ws, pool)?, "pool")?;
    let creds = match &p.credentials {
        Some(sealed) => super::providers::open_credentials(tx, keys, ws, id, sealed)?,
        None => Default::default(),
    };
    if creds.api_key.is_empty() {
        return Err(Error::precondition(format!(
            "Provider {:?} has no credentials.api_key; set it with UpdateProvider.",
            p.name
        )));
    }
    Ok(Plan {
        provider: p,
        pool,
        api_key: creds.api_key,
    })
}

/// The vendors SyncProvider can read, by provider type.
#[derive(Clone, Copy)]
enum Vendor {
    Webshare,
    Proxyline,
}

impl Vendor {
    fn of(p: &ProviderRow) -> Option<Vendor> {
        match ProviderType::try_from(p.ptype) {
            Ok(ProviderType::Webshare) => Some(Vendor::Webshare),
            Ok(ProviderType::Proxyline) => Some(Vendor::Proxyline),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Vendor::Webshare => "Webshare",
            Vendor::Proxyline => "Proxyline",
        }
    }
    fn list(
        self,
        client: &Client,
        p: &ProviderRow,
        key: &str,
    ) -> Result<Vec<VendorProxy>, VendorError> {
        let base = p.api_base_url.as_deref();
        match self {
            Vendor::Webshare => vendor::webshare::list(
                client,
                base.unwrap_or(vendor::webshare::DEFAULT_BASE),
                key,
                p.sync_mode.as_deref().unwrap_or("direct"),
            ),
            Vendor::Proxyline => vendor::proxyline::list(
                client,
                base.unwrap_or(vendor::proxyline::DEFAULT_BASE),
                key,
            ),
        }
    }
}

fn vendor_error(p: &ProviderRow, v: Vendor, e: VendorError) -> Error {
    let vendor = v.name();
    match e {
        VendorError::Unauthorized => Error::precondition(format!(
            "{vendor} refused the API key of provider {:?} ({}); update its credentials.",
            p.name,
            p.id.to_base64()
        )),
        VendorError::Unavailable(m) => Error::unavailable(format!("{vendor} is unavailable: {m}.")),
        VendorError::Malformed(m) => Error::unavailable(format!(
            "{vendor} sent an answer proxyplane cannot read: {m}."
        )),
    }
}

pub fn sync(ctx: &mut Ctx, req: SyncProviderRequest) -> Result<SyncProviderResponse> {
    let ws = ctx.ws()?;
    let id = ProviderId::parse(&req.provider_id)?;
    let pool = PoolId::parse_optional(&req.pool_id)
        .map_err(|_| Error::invalid("pool_id must be a 16-byte id (base64 in JSON)."))?;
    let keys = &ctx.state.keys;
    let plan = ctx.read(|tx| plan(tx, keys, ws, id, pool))?;
    let last = execute(ctx.state, ctx.conn, ctx.deadline, ws, &plan)?;
    Ok(SyncProviderResponse {
        result: Some(result_pb(&last)),
    })
}

/// Fetches and reconciles one planned sync; the result (or the error) is
/// recorded on the provider.
fn execute(
    state: &State,
    conn: &mut Connection,
    deadline: Option<Instant>,
    ws: WorkspaceId,
    plan: &Plan,
) -> Result<LastSync> {
    let id = plan.provider.id;
    let _running = Running::claim(id)?;
    let started_at = store::now_ms();
    let limits = Limits::new(Duration::from_secs(state.config.vendor_timeout_seconds));
    let vendor = Vendor::of(&plan.provider)
        .ok_or_else(|| Error::internal("planned a sync of a provider without a vendor API"))?;
    let fetched = vendor
        .list(&Client::new(limits), &plan.provider, &plan.api_key)
        .map_err(|e| vendor_error(&plan.provider, vendor, e))
        .and_then(|list| checked(vendor, &list).map(|()| list));
    let keys = &state.keys;
    let outcome = fetched.and_then(|list| {
        store::write(conn, deadline, |tx| {
            let counts = reconcile(tx, keys, ws, plan.pool, id, &list)?;
            let last = LastSync {
                started_at,
                finished_at: store::now_ms(),
                counts,
                error: String::new(),
            };
            record(tx, id, &last)?;
            Ok(last)
        })
    });
    match outcome {
        Ok(last) => {
            crate::info!("sync of provider {}: {:?}", id.to_base64(), last.counts);
            Ok(last)
        }
        Err(e) => {
            let last = LastSync {
                started_at,
                finished_at: store::now_ms(),
                counts: Counts::default(),
                error: e.message.clone(),
            };
            crate::warn!("sync of provider {} failed: {}", id.to_base64(), e.message);
            // The failure is recorded; a failure to record it is logged.
            if let Err(r) = store::write(conn, None, |tx| record(tx, id, &last)) {
                crate::warn!("cannot record the failed sync: {}", r.message);
            }
            Err(e)
        }
    }
}

/// How often the schedule thread looks for providers due a sync.
const TICK: Duration = Duration::from_secs(2);

/// Starts the thread that runs scheduled syncs (`sync.interval_seconds`):
/// a provider is due when it never synced or its last sync started at
/// least the interval ago (a failed one too: the interval is the retry
/// pace). Syncs run one after another; the thread returns once the
/// server is shutting down.
pub fn spawn(state: Arc<State>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("provider-sync".into())
        .spawn(move || {
            while !state.shutting_down.load(Ordering::SeqCst) {
                if let Err(e) = scheduled_pass(&state) {
                    crate::warn!(
                        "scheduled provider sync: {}",
                        e.cause.as_deref().unwrap_or(&e.message)
                    );
                }
                // In short steps, so a shutdown is not held up.
                let t = Instant::now();
                while t.elapsed() < TICK && !state.shutting_down.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
}

fn scheduled_pass(state: &State) -> Result<()> {
    let mut conn = state.db.get().map_err(Error::internal)?;
    let now = store::now_ms();
    let due: Vec<ProviderRow> = store::read(&mut conn, providers_db::scheduled)?
        .into_iter()
        .filter(|p| {
            let last = p
                .last_sync
                .as_deref()
                .and_then(|j| serde_json::from_str::<LastSync>(j).ok());
            last.is_none_or(|l| l.started_at + i64::from(p.sync_interval_seconds) * 1000 <= now)
        })
        .collect();
    for p in due {
        if state.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let ws = p.workspace_id;
        let planned = store::read(&mut conn, |tx| plan(tx, &state.keys, ws, p.id, None));
        // Errors are recorded on the provider and logged by `execute`;
        // a provider that cannot even be planned is logged here.
        match planned {
            Ok(plan) => {
                execute(state, &mut conn, None, ws, &plan).ok();
            }
            Err(e) => {
                // Recorded like a failed sync, so the provider waits its
                // interval before the next try instead of every tick.
                crate::warn!(
                    "scheduled sync of provider {}: {}",
                    p.id.to_base64(),
                    e.message
                );
                let last = LastSync {
                    started_at: now,
                    finished_at: store::now_ms(),
                    counts: Counts::default(),
                    error: e.message,
                };
                store::write(&mut conn, None, |tx| record(tx, p.id, &last))?;
            }
        }
    }
    Ok(())
}

fn record(tx: &Connection, id: ProviderId, last: &LastSync) -> Result<()> {
    let json = serde_json::to_string(last).map_err(Error::internal)?;
    providers_db::set_last_sync(tx, id, &json)
}

/// Every vendor proxy has a usable token, host and port; the first that
/// has not fails the sync before anything changes.
fn checked(vendor: Vendor, list: &[VendorProxy]) -> Result<()> {
    for v in list {
        check_token("token", &v.id)
            .and_then(|()| check_host("host", &v.host).map(|_| ()))
            .map_err(|e| {
                Error::unavailable(format!(
                    "{} listed a proxy proxyplane cannot store ({})",
                    vendor.name(),
                    e.message
                ))
            })?;
    }
    Ok(())
}

/// Makes the provider's live sessions of the pool match the vendor's list;
/// writes nothing for a proxy that did not change.
fn reconcile(
    tx: &Connection,
    keys: &Keyring,
    ws: WorkspaceId,
    pool: PoolId,
    provider: ProviderId,
    list: &[VendorProxy],
) -> Result<Counts> {
    let now = store::now_ms();
    let sealer = super::Sealer::new(tx, keys, ws)?;
    let mut live: HashMap<String, SessionRow> = db::live_of_provider(tx, pool, provider)?
        .into_iter()
        .map(|s| (s.token.clone(), s))
        .collect();
    let mut seen = HashSet::new();
    let mut counts = Counts::default();
    let (mut new_enabled, mut new_disabled) = (0, 0);
    for v in list {
        if !seen.insert(v.id.as_str()) {
            continue; // a vendor listing an id twice: the first wins
        }
        match live.remove(&v.id) {
            None => {
                let id = SessionId::generate();
                let row = SessionRow {
                    scheme: Some(v.scheme.into()),
                    host: Some(v.host.clone()),
                    port: Some(v.port),
                    username: Some(v.username.clone()),
                    password: Some(sealer.seal(&id.0, "password", v.password.as_bytes())?),
                    enabled: usable(v, now),
                    expires_at: v.expires_at,
                    ..SessionRow::new(id, ws, pool, provider, v.id.clone(), now)
                };
                if db::insert(tx, &row)? {
                    counts.created += 1;
                    if row.enabled {
                        new_enabled += 1;
                    } else {
                        new_disabled += 1;
                    }
                }
            }
            Some(mut row) => {
                let verdict = refresh(tx, keys, &sealer, ws, &mut row, v, now)?;
                match verdict {
                    Verdict::Unchanged => counts.unchanged += 1,
                    Verdict::Disabled => counts.disabled += 1,
                    Verdict::Updated => counts.updated += 1,
                }
                if verdict != Verdict::Unchanged {
                    row.version += 1;
                    row.updated_at = now;
                    db::update(tx, &row)?;
                }
            }
        }
    }
    for row in live.values() {
        db::soft_delete(tx, row, now)?;
        counts.removed += 1;
    }
    db::count_created(tx, new_enabled, new_disabled)?;
    Ok(counts)
}

/// Sync owns `enabled` on its sessions: on while the vendor marks the
/// proxy valid and it has not expired (an expired one is not handed out
/// from its expiry on anyway; this makes the stored flag, and /metrics,
/// agree at the next sync, and a renewal enables it again).
fn usable(v: &VendorProxy, now: i64) -> bool {
    v.valid && crate::assign::is_current(v.expires_at, now)
}

#[derive(PartialEq, Clone, Copy)]
enum Verdict {
    Unchanged,
    Disabled,
    Updated,
}

/// Brings one session in line with the vendor's proxy, in memory.
fn refresh(
    tx: &Connection,
    keys: &Keyring,
    sealer: &super::Sealer,
    ws: WorkspaceId,
    row: &mut SessionRow,
    v: &VendorProxy,
    now: i64,
) -> Result<Verdict> {
    let mut changed = false;
    let scheme = Some(v.scheme.to_string());
    if row.expires_at != v.expires_at {
        row.expires_at = v.expires_at;
        changed = true;
    }
    if row.scheme != scheme
        || row.host.as_deref() != Some(v.host.as_str())
        || row.port != Some(v.port)
        || row.username.as_deref() != Some(v.username.as_str())
    {
        row.scheme = scheme;
        row.host = Some(v.host.clone());
        row.port = Some(v.port);
        row.username = Some(v.username.clone());
        changed = true;
    }
    let same_password = match &row.password {
        Some(sealed) => {
            super::open(tx, keys, ws, &row.id.0, "password", sealed)? == v.password.as_bytes()
        }
        None => false,
    };
    if !same_password {
        row.password = Some(sealer.seal(&row.id.0, "password", v.password.as_bytes())?);
        changed = true;
    }
    let valid = usable(v, now);
    let disabled = row.enabled && !valid;
    if row.enabled != valid {
        row.enabled = valid;
        changed = true;
    }
    Ok(match (disabled, changed) {
        (true, _) => Verdict::Disabled,
        (false, true) => Verdict::Updated,
        (false, false) => Verdict::Unchanged,
    })
}
