//! The five roles of API keys and which of them each kind of method allows
//! (API.md §2). Below the store: key rows carry a role.

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
}
