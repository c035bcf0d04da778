//! Bearer API keys → `Principal`, and when each key was last used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::role::Role;
use crate::scope::Scope;
use crate::store;

#[derive(Debug, Clone, Copy)]
pub struct Principal {
    pub key_id: ApiKeyId,
    pub role: Role,
    /// None for ADMIN keys.
    pub workspace: Option<WorkspaceId>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The workspace a request acts on, if this key may act there: ADMIN
    /// keys anywhere, others in their own workspace only (permission_denied
    /// otherwise). None for instance-wide requests and the ADMIN keys.
    pub fn check(&self, scope: Scope<'_>) -> Result<Option<WorkspaceId>> {
        match scope {
            Scope::Instance => Ok(None),
            Scope::WorkspaceOrAdminKeys([]) => {
                if self.is_admin() {
                    Ok(None)
                } else {
                    Err(Error::denied())
                }
            }
            Scope::Workspace(w) | Scope::WorkspaceOrAdminKeys(w) => {
                let ws = WorkspaceId::parse(w)?;
                if self.is_admin() || self.workspace == Some(ws) {
                    Ok(Some(ws))
                } else {
                    Err(Error::denied())
                }
            }
        }
    }
}

/// Pulls the bearer token out of an Authorization header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let t = token.trim();
    (!t.is_empty()).then_some(t)
}

/// Resolves a secret to its key; unknown and revoked keys are unauthenticated.
/// Reads only: when the key was used is kept in `LastUsed`, not written here.
pub fn authenticate(c: &Connection, master: &MasterKey, secret: &str) -> Result<Principal> {
    if !secret.starts_with("pp_") || secret.len() > 200 {
        return Err(Error::unauthenticated());
    }
    let hash = master.hash_api_key(secret);
    let key = store::api_keys::by_hash(c, &hash)?.ok_or_else(Error::unauthenticated)?;
    if key.revoked {
        return Err(Error::unauthenticated());
    }
    let role = Role::from_i32(key.role)
        .ok_or_else(|| Error::internal("stored key has an unknown role"))?;
    Ok(Principal {
        key_id: key.id,
        role,
        workspace: key.workspace,
    })
}

/// When each key was last used, kept in memory and written to the database
/// in one small batch every `FLUSH_EVERY` and at shutdown: a write per key
/// per minute on the request path made reads wait behind other writers
/// (and sit in SQLite's busy handler) for a column nobody reads often.
#[derive(Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<ApiKeyId, i64>>,
}

pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

impl LastUsed {
    pub fn record(&self, key: ApiKeyId, now: i64) {
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let t = m.entry(key).or_insert(now);
        *t = (*t).max(now);
    }

    /// A use not written yet, to show beside the stored value.
    pub fn pending(&self, key: ApiKeyId) -> Option<i64> {
        let m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&key).copied()
    }

    /// Writes what is pending in one transaction, waiting at most `wait` for
    /// the write lock; on failure the values stay pending for the next try.
    pub fn flush(&self, db: &store::Pool, wait: Duration) -> Result<usize> {
        let batch: Vec<(ApiKeyId, i64)> = {
            let m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            m.iter().map(|(k, t)| (*k, *t)).collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let mut conn = db.get()?;
        store::write(&mut conn, Some(Instant::now() + wait), |tx| {
            for (k, t) in &batch {
                store::api_keys::touch(tx, *k, *t)?;
            }
            Ok(())
        })?;
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (k, t) in &batch {
            // Keep a use recorded while the batch was being written.
            if m.get(k) == Some(t) {
                m.remove(k);
            }
        }
        Ok(batch.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer pp_x")), Some("pp_x"));
        assert_eq!(bearer(Some("bearer  pp_x ")), Some("pp_x"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
