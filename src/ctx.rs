//! What a handler can reach: the process-wide `State` and one call's `Ctx`
//! (the checked caller, its connection, its deadline). Below the method
//! table and the handlers, so both import it and neither imports the other.

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rusqlite::Transaction;

use crate::auth::{LastUsed, Principal};
use crate::config::Config;
use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use crate::store;

/// Everything a handler can reach, shared by all workers.
pub struct State {
    pub config: Config,
    pub db: store::Pool,
    pub keys: Keyring,
    pub key_limiter: Limiter<ApiKeyId>,
    pub ip_limiter: Limiter<IpAddr>,
    pub metrics: Metrics,
    pub last_used: LastUsed,
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
}

impl Ctx<'_> {
    /// The checked workspace of a workspace-scoped request.
    pub fn ws(&self) -> Result<WorkspaceId> {
        self.workspace.ok_or_else(|| {
            Error::internal("a handler asked for the workspace of an instance-wide request")
        })
    }

    pub fn read<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        store::read(self.conn, f)
    }
    pub fn write<T>(&mut self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        store::write(self.conn, self.deadline, f)
    }
}
