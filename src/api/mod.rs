//! One module per resource: request checks → store calls in one transaction
//! → response. Handlers never write SQL; the store never sees HTTP.

pub mod api_keys;
pub mod assignments;
pub mod key_rotation;
pub mod pools;
pub mod providers;
pub mod sessions;
pub mod workspaces;

use crate::error::{Error, Result};

/// A display name: 1..=200 characters, no control characters.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > 200 {
        return Err(Error::invalid(format!(
            "{field} must be 1 to 200 characters."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} must not contain control characters."
        )));
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

pub const SCHEMES: [&str; 5] = ["http", "https", "socks4", "socks5", "socks5h"];

/// A proxy scheme; empty means http.
pub fn check_scheme(field: &str, scheme: &str) -> Result<String> {
    if scheme.is_empty() {
        return Ok("http".into());
    }
    let s = scheme.to_ascii_lowercase();
    if SCHEMES.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(Error::invalid(format!(
            "{field} must be one of http, https, socks4, socks5, socks5h; got {scheme:?}."
        )))
    }
}

/// A host name, IPv4 address or IPv6 address (without brackets).
pub fn check_host(field: &str, host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        && !host.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{field} must be a host name or IP address (letters, digits, '.', '-', '_', ':'; at most 253)."
        )))
    }
}

pub fn check_port(field: &str, port: i32) -> Result<()> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{field} must be from 1 to 65535; got {port}."
        )))
    }
}

/// A login part (username, password, API key): at most 512 characters, no
/// control characters. The value itself never appears in the message.
pub fn check_secretish(field: &str, value: &str) -> Result<()> {
    if value.chars().count() > 512 || value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} must be at most 512 characters without control characters."
        )));
    }
    Ok(())
}

/// A session token: 1..=128 of [A-Za-z0-9._-].
pub fn check_token(field: &str, token: &str) -> Result<()> {
    let ok = !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{field} must be 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '-'."
        )))
    }
}

use rusqlite::Connection;

use crate::crypto::{self, Keyring};
use crate::ids::WorkspaceId;
use crate::store::workspaces as ws_store;

/// Seals secrets of a workspace's rows under its current data key, fetched
/// once per call (BulkCreateSessions seals thousands).
pub struct Sealer {
    key: std::sync::Arc<orion::hazardous::aead::xchacha20poly1305::SecretKey>,
    pub version: u32,
}

impl Sealer {
    pub fn new(tx: &Connection, keys: &Keyring, ws: WorkspaceId) -> Result<Self> {
        let version =
            ws_store::key_version(tx, ws)?.ok_or_else(|| Error::not_found("workspace"))?;
        let key = keys.data_key(ws, version, || ws_store::wrapped_data_key(tx, ws, version))?;
        Ok(Sealer { key, version })
    }

    /// A fresh data key for the next version (RotateWorkspaceKey), stored
    /// wrapped in the same transaction.
    pub fn next(tx: &Connection, keys: &Keyring, ws: WorkspaceId, version: u32) -> Result<Self> {
        let (wrapped, key) = keys.new_data_key(ws, version)?;
        ws_store::insert_data_key(tx, ws, version, &wrapped, crate::store::now_ms())?;
        Ok(Sealer {
            key: std::sync::Arc::new(key),
            version,
        })
    }

    pub fn seal(&self, row_id: &[u8; 16], column: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        crypto::seal_secret(&self.key, self.version, row_id, column, plaintext)
    }
}

/// Opens a sealed secret of a row, with the data key version it names.
pub fn open(
    tx: &Connection,
    keys: &Keyring,
    ws: WorkspaceId,
    row_id: &[u8; 16],
    column: &str,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let version = crypto::sealed_version(sealed)?;
    let key = keys.data_key(ws, version, || ws_store::wrapped_data_key(tx, ws, version))?;
    crypto::open_secret(&key, row_id, column, sealed)
}
