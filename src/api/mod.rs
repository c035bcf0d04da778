//! One module per resource: request checks → store calls in one transaction
//! → response. Handlers never write SQL; the store never sees HTTP.

pub mod api_keys;
pub mod assignments;
pub mod key_rotation;
pub mod pools;
pub mod providers;
pub mod sessions;
pub mod sync;
pub mod workspaces;

use rusqlite::Connection;

use crate::crypto::{self, Keyring};
use crate::ctx::Ctx;
use crate::cursor;
use crate::error::{Error, Result};
use crate::ids::{self, WorkspaceId};
use crate::store::assignments::AssignmentRow;
use crate::store::pools::PoolRow;
use crate::store::providers::ProviderRow;
use crate::store::sessions::SessionRow;
use crate::store::workspaces as ws_store;
use crate::store::Page;

/// The row of a Get, Update or Delete: an id of another workspace, or of
/// nothing, is not_found naming the resource.
pub fn found<T>(row: Option<T>, what: &str) -> Result<T> {
    row.ok_or_else(|| Error::not_found(what))
}

/// Calls that name no other resource of the workspace still answer
/// not_found for a workspace that is gone (deleted while a key lives on).
pub fn workspace_exists(tx: &Connection, ws: WorkspaceId) -> Result<()> {
    if ws_store::exists(tx, ws)? {
        Ok(())
    } else {
        Err(Error::not_found("workspace"))
    }
}

/// One List call: checks page_size, then the request's cursor against
/// `list`, reads one page in a read transaction, and returns its items
/// with the next cursor (empty on the last page).
pub fn list_page<T>(
    ctx: &mut Ctx,
    list: &cursor::List,
    page_size: i32,
    cursor: &str,
    read: impl FnOnce(&Connection, Option<[u8; 16]>, usize) -> Result<Page<T>>,
) -> Result<(Vec<T>, String)> {
    let size = ids::page_size(page_size)?;
    let after = list.decode(&ctx.state.keys, cursor)?;
    let page = ctx.read(|tx| read(tx, after, size))?;
    Ok((page.items, list.encode(&ctx.state.keys, page.next_after)?))
}

/// A row Update calls edit: `version` counts its changes.
pub trait Versioned {
    /// Marks a change made at `now`.
    fn stamp(&mut self, now: i64);
}

macro_rules! versioned {
    ($($row:ty),*) => {
        $(impl Versioned for $row {
            fn stamp(&mut self, now: i64) {
                self.version += 1;
                self.updated_at = now;
            }
        })*
    };
}
versioned!(PoolRow, ProviderRow, SessionRow, AssignmentRow);

/// The end of every Update: a change grows `version`, sets `updated_at`
/// and writes the row back; a call that changes nothing writes nothing, so
/// its `version` stays (API.md: `version` grows by exactly 1 on each
/// change).
pub fn save_if_changed<R: Versioned>(
    tx: &Connection,
    row: &mut R,
    changed: bool,
    now: i64,
    update: fn(&Connection, &R) -> Result<()>,
) -> Result<()> {
    if changed {
        row.stamp(now);
        update(tx, row)?;
    }
    Ok(())
}

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

/// A proxy host: a DNS name, an IPv4 address, or an IPv6 address with or
/// without brackets. Returns it as stored: an IPv6 address without its
/// brackets (they are added back where a URL is built).
///
/// A DNS name is dot-separated labels of 1 to 63 letters, digits, `-` (not
/// first or last) and `_` (vendors use it), at most 253 characters, with an
/// optional trailing dot (an absolute name, which URL parsers keep as it
/// is). Its last label must not be a number (`1.2.3`, `999.1.1.1`,
/// `proxy.0x1f`): URL parsers read such a host as an IPv4 address and
/// refuse it. Internationalised names go in their `xn--` form.
pub fn check_host(field: &str, host: &str) -> Result<String> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let bad = || {
        Error::invalid(format!(
            "{field} must be a DNS name, an IPv4 address or an IPv6 address, without a port \
             (the port has its own field) or anything else."
        ))
    };
    let v6 = host
        .strip_prefix('[')
        .map(|inner| inner.strip_suffix(']').ok_or_else(bad))
        .transpose()?;
    if let Some(inner) = v6 {
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(inner.to_owned()),
            Err(_) => Err(bad()),
        };
    }
    let ok = if host.contains(':') {
        host.parse::<Ipv6Addr>().is_ok()
    } else {
        host.parse::<Ipv4Addr>().is_ok() || is_dns_name(host)
    };
    if ok {
        Ok(host.to_owned())
    } else {
        Err(bad())
    }
}

fn is_dns_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // The WHATWG URL standard's "ends in a number": all digits, or 0x and
    // hex digits.
    let numeric = |l: &str| {
        l.bytes().all(|b| b.is_ascii_digit())
            || l.strip_prefix("0x")
                .or_else(|| l.strip_prefix("0X"))
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(label_ok)
        && name.rsplit('.').next().is_some_and(|l| !numeric(l))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_dns_names_or_ip_addresses() {
        for (sent, stored) in [
            ("proxy.example.com", "proxy.example.com"),
            ("proxy.example.com.", "proxy.example.com."),
            ("gate_1.vendor.io", "gate_1.vendor.io"),
            ("203.0.113.7", "203.0.113.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::1", "::1"),
        ] {
            assert_eq!(check_host("host", sent).unwrap(), stored);
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}.a", vec!["b".repeat(63); 4].join("."));
        for bad in [
            "",
            "203.0.113.7:3128",
            "a:b",
            ":::",
            "[203.0.113.7]",
            "[::1",
            "fe80::1%eth0",
            "-a.com",
            "a-.com",
            "a..com",
            ".a.com",
            "a.com..",
            "999.1.1.1",
            "1.2.3",
            "a.0x1F",
            "b\u{fc}cher.de",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            let e = check_host("gateway.host", bad).unwrap_err();
            assert!(e.message.starts_with("gateway.host "), "{bad:?}");
        }
        // 253 characters is the longest name.
        let max = format!("{}.{}", vec!["c".repeat(63); 3].join("."), "d".repeat(61));
        assert_eq!(max.len(), 253);
        assert!(check_host("host", &max).is_ok());
    }
}
