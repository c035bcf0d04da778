//! The sticky-binding cache: the rows a resolve read for an account (its
//! assignment, its session, the pool's policy and, for a rotation session,
//! the provider's gateway), kept in memory and used only in a snapshot whose
//! data epoch is the one they were read at.
//!
//! Every UPDATE and DELETE of those four tables bumps the data epoch by
//! trigger (migration 0006), whoever writes: the API, the offline CLI, a
//! sync, a key rotation, a cascade. So a hit is exactly the rows the SQL
//! would return in that snapshot; the resolve then judges them against the
//! clock as it judges rows it read (cooldowns, expiry and the rotation
//! interval are never cached answers). Sealed secrets stay sealed here.
//!
//! It holds one epoch at a time: a fill at a newer epoch drops everything
//! (entries of an older epoch can never be used again), a fill at an older
//! one (a reader whose snapshot began before a write) is not kept. A write
//! therefore empties it, and the next resolve of each account reads again:
//! the cache serves fleets that resolve far more often than they write.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::assignments::AssignmentRow;
use crate::assign::{Binding, Policy};
use crate::ids::{PoolId, WorkspaceId};
use crate::pb::v1::Proxy;

/// At most this many accounts are kept; when full, the cache starts over.
/// ~0.6 KB each with the map's overhead, so 60 MB at the very worst; 100,000
/// accounts resolving with no write in between is the case it serves.
const MAX_ENTRIES: usize = 100_000;

/// What a resolve needs of one account's binding, from the rows
/// `store::assignments::binding` (and, for a rotation session,
/// `store::providers::for_resolve`) read: the assignment for the answer,
/// what the rule judges, and the endpoint.
pub struct Bound {
    /// The workspace the rows were read for (the pool's).
    pub ws: WorkspaceId,
    pub assignment: AssignmentRow,
    /// The session's state as the rule sees it, and the pool's policy:
    /// judged against the clock on every hit.
    pub binding: Binding,
    pub policy: Policy,
    /// The endpoint the rows resolve to, secrets opened: opening the
    /// sealed password (XChaCha20-Poly1305) and rendering the gateway's
    /// templates was ~10k instructions of every hit. It depends only on
    /// the rows and the data keys, and a re-seal or a credentials change
    /// rewrites a row (so a new epoch); the process holds the data keys
    /// that open every secret anyway, so an opened one kept in memory
    /// exposes nothing more. None when it could not be built (a rotation
    /// session whose provider has no gateway): such a resolve reads again.
    pub proxy: Option<Proxy>,
}

pub struct Bindings {
    inner: Mutex<Inner>,
    max: usize,
}

#[derive(Default)]
struct Inner {
    epoch: i64,
    len: usize,
    pools: HashMap<PoolId, HashMap<Box<str>, Arc<Bound>>>,
}

impl Default for Bindings {
    fn default() -> Self {
        Bindings::with_capacity(MAX_ENTRIES)
    }
}

impl Bindings {
    pub fn with_capacity(max: usize) -> Self {
        Bindings {
            inner: Mutex::new(Inner::default()),
            max,
        }
    }

    /// The rows read for (`ws`, `pool`, `account`) at data epoch `epoch`.
    pub fn get(
        &self,
        epoch: i64,
        ws: WorkspaceId,
        pool: PoolId,
        account: &str,
    ) -> Option<Arc<Bound>> {
        let g = self.inner.lock();
        if g.epoch != epoch {
            return None;
        }
        let b = g.pools.get(&pool)?.get(account)?;
        (b.ws == ws).then(|| b.clone())
    }

    /// Keeps rows read in a snapshot at data epoch `epoch`.
    pub fn put(&self, epoch: i64, b: Arc<Bound>) {
        let mut g = self.inner.lock();
        if epoch < g.epoch || self.max == 0 {
            return;
        }
        let (pool, account) = (b.assignment.pool_id, b.assignment.account_name.as_str());
        let kept = g.pools.get(&pool).is_some_and(|m| m.contains_key(account));
        if epoch > g.epoch || (g.len >= self.max && !kept) {
            g.pools.clear();
            g.len = 0;
            g.epoch = epoch;
        }
        let account: Box<str> = account.into();
        let added = g
            .pools
            .entry(pool)
            .or_default()
            .insert(account, b)
            .is_none();
        if added {
            g.len += 1;
        }
    }

    /// How many accounts are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SessionId;

    fn bound(ws: WorkspaceId, pool: PoolId, account: &str) -> Arc<Bound> {
        let a = AssignmentRow {
            id: crate::ids::AssignmentId::generate(),
            workspace_id: ws,
            pool_id: pool,
            session_id: SessionId::generate(),
            account_name: account.into(),
            pinned: false,
            bound_at: 1,
            rotations: 0,
            version: 1,
            created_at: 1,
            updated_at: 1,
        };
        Arc::new(Bound {
            ws,
            assignment: a,
            binding: Binding {
                pinned: false,
                bound_at: 1,
                session_enabled: true,
                session_deleted: false,
                session_unhealthy_until: None,
                session_expires_at: None,
            },
            policy: Policy {
                interval_ms: 0,
                on_unhealthy: true,
            },
            proxy: None,
        })
    }

    #[test]
    fn a_hit_needs_the_same_epoch_workspace_pool_and_account() {
        let c = Bindings::default();
        let (ws, pool) = (WorkspaceId::generate(), PoolId::generate());
        c.put(5, bound(ws, pool, "bot-1"));
        assert!(c.get(5, ws, pool, "bot-1").is_some());
        assert!(c.get(6, ws, pool, "bot-1").is_none(), "a newer snapshot");
        assert!(c.get(4, ws, pool, "bot-1").is_none(), "an older snapshot");
        assert!(c.get(5, WorkspaceId::generate(), pool, "bot-1").is_none());
        assert!(c.get(5, ws, PoolId::generate(), "bot-1").is_none());
        assert!(c.get(5, ws, pool, "bot-2").is_none());
    }

    #[test]
    fn a_newer_epoch_drops_everything_and_an_older_fill_is_not_kept() {
        let c = Bindings::default();
        let (ws, pool) = (WorkspaceId::generate(), PoolId::generate());
        c.put(5, bound(ws, pool, "a"));
        c.put(6, bound(ws, pool, "b"));
        assert_eq!(c.len(), 1);
        assert!(c.get(6, ws, pool, "a").is_none());
        c.put(5, bound(ws, pool, "a"));
        assert!(c.get(5, ws, pool, "a").is_none());
        assert!(c.get(6, ws, pool, "a").is_none());
        assert!(c.get(6, ws, pool, "b").is_some());
    }

    #[test]
    fn a_full_cache_starts_over() {
        let c = Bindings::with_capacity(2);
        let (ws, pool) = (WorkspaceId::generate(), PoolId::generate());
        c.put(1, bound(ws, pool, "a"));
        c.put(1, bound(ws, pool, "b"));
        c.put(1, bound(ws, pool, "b"));
        assert_eq!(c.len(), 2);
        c.put(1, bound(ws, pool, "c"));
        assert_eq!(c.len(), 1);
        assert!(c.get(1, ws, pool, "c").is_some());
        assert!(c.get(1, ws, pool, "a").is_none());
    }
}
