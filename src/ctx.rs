//! What a handler can reach: the process-wide `State` and one call's `Ctx`
//! (the checked caller, its connection, its deadline). Below the method
//! table and the handlers, so both import it and neither imports the other.

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rusqlite::Connection;

use crate::auth::{self, KeyCache, LastUsed, Principal};
use crate::config::Config;
use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use crate::stats::PoolStats;
use crate::store;

/// Everything a handler can reach, shared by all workers.
pub struct State {
    pub config: Config,
    pub db: store::Pool,
    pub keys: Keyring,
    pub key_limiter: Limiter<ApiKeyId>,
    pub ip_limiter: Limiter<IpAddr>,
    pub metrics: Metrics,
    /// Per-pool activity of the last hour (GetPoolStats).
    pub pool_stats: PoolStats,
    pub last_used: LastUsed,
    pub key_cache: KeyCache,
    /// Sticky resolves' rows, exact by the data epoch.
    pub bindings: store::bindings::Bindings,
    pub shutting_down: AtomicBool,
}

/// One call in progress.
pub struct Ctx<'a> {
    pub state: &'a State,
    pub conn: &'a mut store::Conn,
    pub principal: Principal,
    /// The workspace the request acts on, checked against the key before
    /// the handler runs (`scope::Scoped`); None for instance-wide requests.
    pub workspace: Option<WorkspaceId>,
    pub deadline: Option<Instant>,
    /// Whether this call's use of its key was recorded already.
    pub used: bool,
}

/// Confirms the caller's key in a transaction's snapshot (a cached key may
/// have been revoked since), then records the use once per call. Gives the
/// snapshot's data epoch (`store::bindings`).
fn confirm<'a>(
    state: &'a State,
    p: Principal,
    used: &'a mut bool,
) -> impl FnOnce(&Connection) -> Result<i64> + 'a {
    move |tx| {
        let data_epoch = auth::still_valid(tx, &p, &state.key_cache)?;
        if !*used {
            *used = true;
            state.last_used.record(p.key_id, store::now_ms());
        }
        Ok(data_epoch)
    }
}

impl Ctx<'_> {
    /// The checked workspace of a workspace-scoped request.
    pub fn ws(&self) -> Result<WorkspaceId> {
        self.workspace.ok_or_else(|| {
            Error::internal("a handler asked for the workspace of an instance-wide request")
        })
    }

    /// A read transaction; the caller's key is confirmed in its snapshot.
    pub fn read<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.read_at(|tx, _| f(tx))
    }
    /// A read that may be answered from memory: `probe` gets the data
    /// epoch of one autocommit read of the epochs (that single statement's
    /// snapshot, in which the caller's key is confirmed too) and answers
    /// when it can without SQL (the binding cache); otherwise `slow` runs
    /// in a read transaction as with `read_at`. A hit costs one statement
    /// and no BEGIN/COMMIT.
    pub fn read_probe<T>(
        &mut self,
        probe: impl FnOnce(i64) -> Option<Result<T>>,
        slow: impl FnOnce(&Connection, i64) -> Result<T>,
    ) -> Result<T> {
        let epoch = confirm(self.state, self.principal, &mut self.used)(&*self.conn)?;
        if let Some(hit) = probe(epoch) {
            return hit;
        }
        self.read_at(slow)
    }

    /// A read transaction, as `read`, given the snapshot's data epoch too.
    pub fn read_at<T>(&mut self, f: impl FnOnce(&Connection, i64) -> Result<T>) -> Result<T> {
        let conn = &mut *self.conn;
        let confirm = confirm(self.state, self.principal, &mut self.used);
        store::read(conn, |tx| {
            let data_epoch = confirm(tx)?;
            f(tx, data_epoch)
        })
    }
    /// A write transaction; the caller's key is confirmed in it.
    pub fn write<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = &mut *self.conn;
        let confirm = confirm(self.state, self.principal, &mut self.used);
        store::write(conn, self.deadline, |tx| {
            confirm(tx)?;
            f(tx)
        })
    }
}
