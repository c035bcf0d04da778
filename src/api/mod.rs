//! One module per resource: request checks → store calls in one transaction
//! → response. Handlers never write SQL; the store never sees HTTP.

pub mod api_keys;
pub mod assignments;
pub mod pools;
pub mod providers;
pub mod sessions;
pub mod workspaces;

use crate::error::{Error, Result};

/// A display name: 1..=200 characters, no control characters.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > 200 {
        return Err(Error::invalid(format!("{field} must be 1 to 200 characters.")));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(format!("{field} must not contain control characters.")));
    }
    Ok(())
}

/// Applies an optional new value; true when it changed something.
pub fn set<T: PartialEq>(slot: &mut T, value: Option<T>) -> bool {
    match value {
        Some(v) if *slot != v => {
            *slot = v;
            true
        }
        _ => false,
    }
}
