//! Bearer API keys → `Principal`, and when each key was last used.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
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
    /// The authentication epoch the key was last found valid at; the
    /// request's own transaction checks it (`still_valid`).
    pub verified_at: i64,
    /// The cache's key for the secret (`KeyCache::key`).
    cache_key: CacheKey,
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
/// A key found valid before comes from `cache` without a database read; the
/// request's transaction then confirms it (`still_valid`), so a revocation
/// applies from the next request on, as without the cache.
pub fn authenticate(
    pool: &store::Pool,
    master: &MasterKey,
    secret: &str,
    cache: &KeyCache,
) -> Result<Principal> {
    if !secret.starts_with("pp_") || secret.len() > 200 {
        return Err(Error::unauthenticated());
    }
    let cache_key = cache.key(secret);
    if let Some(p) = cache.get(&cache_key) {
        return Ok(p);
    }
    let hash = master.hash_api_key(secret);
    let conn = pool.get()?;
    let key = store::api_keys::by_hash(&conn, &hash)?.ok_or_else(Error::unauthenticated)?;
    if key.revoked {
        return Err(Error::unauthenticated());
    }
    let role = Role::from_i32(key.role)
        .ok_or_else(|| Error::internal("stored key has an unknown role"))?;
    let p = Principal {
        key_id: key.id,
        role,
        workspace: key.workspace,
        verified_at: key.epoch,
        cache_key,
    };
    cache.put(p);
    Ok(p)
}

/// Confirms, in the snapshot of the request's transaction, that the key is
/// still valid: the authentication epoch (bumped by triggers on every
/// revocation and deletion of a key, by the API, the offline CLI or a
/// workspace delete alike) has not moved since the key was found valid, or,
/// if it has, the key itself is still there and not revoked.
///
/// Returns the snapshot's data epoch (read in the same statement), for the
/// sticky-binding cache.
pub fn still_valid(c: &Connection, p: &Principal, cache: &KeyCache) -> Result<i64> {
    let store::api_keys::Epochs { auth: epoch, data } = store::api_keys::epochs(c)?;
    if epoch == p.verified_at {
        return Ok(data);
    }
    if store::api_keys::is_live(c, p.key_id)? {
        cache.put(Principal {
            verified_at: epoch,
            ..*p
        });
        Ok(data)
    } else {
        cache.remove(&p.cache_key);
        Err(Error::unauthenticated())
    }
}

/// Keys found valid, by a 128-bit keyed hash of their secret. Only valid
/// keys go in, so its size is bounded by the keys that exist (and capped
/// anyway).
///
/// The cache key is two SipHash-1-3 values under two random process keys
/// (std's `RandomState`), not the BLAKE2b MAC the database stores: that MAC
/// was ~3.5k instructions of every request. A keyed PRF with a secret key
/// unknown outside the process leaves no way to make another secret land
/// on a cached one (2^-128 per guess), and the cache never leaves memory.
#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<CacheKey, Principal>>,
    hashers: (RandomState, RandomState),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey(u64, u64);

const KEY_CACHE_MAX: usize = 100_000;

impl KeyCache {
    fn key(&self, secret: &str) -> CacheKey {
        CacheKey(
            self.hashers.0.hash_one(secret),
            self.hashers.1.hash_one(secret),
        )
    }
    fn get(&self, hash: &CacheKey) -> Option<Principal> {
        let m = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        m.get(hash).copied()
    }
    fn put(&self, p: Principal) {
        let mut m = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= KEY_CACHE_MAX && !m.contains_key(&p.cache_key) {
            m.clear();
        }
        m.insert(p.cache_key, p);
    }
    fn remove(&self, hash: &CacheKey) {
        let mut m = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(hash);
    }
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
