//! Bearer API keys → `Principal`, and what each role may do.

use rusqlite::Connection;

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::ids::{ApiKeyId, WorkspaceId};
use crate::store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Role {
    Admin = 1,
    Owner = 2,
    Editor = 3,
    Resolver = 4,
    Viewer = 5,
}

impl Role {
    pub fn from_i32(v: i32) -> Option<Role> {
        Some(match v {
            1 => Role::Admin,
            2 => Role::Owner,
            3 => Role::Editor,
            4 => Role::Resolver,
            5 => Role::Viewer,
            _ => return None,
        })
    }

    pub fn parse(name: &str) -> Option<Role> {
        let n = name.trim().to_ascii_uppercase();
        let n = n.strip_prefix("API_KEY_ROLE_").unwrap_or(&n);
        Some(match n {
            "ADMIN" => Role::Admin,
            "OWNER" => Role::Owner,
            "EDITOR" => Role::Editor,
            "RESOLVER" => Role::Resolver,
            "VIEWER" => Role::Viewer,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Owner => "OWNER",
            Role::Editor => "EDITOR",
            Role::Resolver => "RESOLVER",
            Role::Viewer => "VIEWER",
        }
    }
}

/// Which roles may call a method (API.md §2). Workspace scope is checked
/// separately, against the request's workspace_id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// ADMIN only.
    Admin,
    /// OWNER (and ADMIN).
    Owner,
    /// Writes to pools, sessions, assignments: EDITOR, OWNER, ADMIN.
    Edit,
    /// ResolveProxy, ReportSessionResult: RESOLVER, EDITOR, OWNER, ADMIN.
    Resolve,
    /// Get/List: VIEWER, EDITOR, OWNER, ADMIN.
    Read,
}

impl Access {
    pub fn allows(self, role: Role) -> bool {
        use Role::*;
        match self {
            Access::Admin => role == Admin,
            Access::Owner => matches!(role, Admin | Owner),
            Access::Edit => matches!(role, Admin | Owner | Editor),
            Access::Resolve => matches!(role, Admin | Owner | Editor | Resolver),
            Access::Read => matches!(role, Admin | Owner | Editor | Viewer),
        }
    }
}

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

    /// The workspace a request names, if this key may act on it: ADMIN keys
    /// on any, others on their own only (permission_denied otherwise).
    pub fn scope(&self, workspace_id: &[u8]) -> Result<WorkspaceId> {
        let ws = WorkspaceId::parse(workspace_id)?;
        if self.is_admin() || self.workspace == Some(ws) {
            Ok(ws)
        } else {
            Err(Error::denied())
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

/// How often a key's last_used_at is written: at most once a minute, so the
/// hot path stays read-only.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Resolves a secret to its key; unknown and revoked keys are unauthenticated.
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
    let now = store::now_ms();
    if key.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
        // Best effort: a busy database must not fail the request over this.
        let _ = store::api_keys::touch(c, key.id, now);
    }
    Ok(Principal {
        key_id: key.id,
        role,
        workspace: key.workspace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_matrix_follows_the_contract() {
        let accesses = [
            Access::Admin,
            Access::Owner,
            Access::Edit,
            Access::Resolve,
            Access::Read,
        ];
        let table = [
            (Role::Admin, [true, true, true, true, true]),
            (Role::Owner, [false, true, true, true, true]),
            (Role::Editor, [false, false, true, true, true]),
            (Role::Resolver, [false, false, false, true, false]),
            (Role::Viewer, [false, false, false, false, true]),
        ];
        for (role, allowed) in table {
            for (access, want) in accesses.iter().zip(allowed) {
                assert_eq!(access.allows(role), want, "{role:?} {access:?}");
            }
        }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer pp_x")), Some("pp_x"));
        assert_eq!(bearer(Some("bearer  pp_x ")), Some("pp_x"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
