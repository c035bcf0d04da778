//! Proxyline's proxy list. Its API documentation sits behind the account
//! panel and could not be read from here, so this follows the best public
//! description found, and every assumption is written down to be easy to
//! correct:
//!
//! - `GET {base}/api/proxies/?api_key=<key>&status=active&page=N` (the key
//!   in the query string, as Proxyline's panel API takes it), paged like
//!   Django REST framework: `{"count", "next", "previous", "results"}`,
//!   followed by number while `next` is not null.
//! - Each result: `{"id", "ip", "port_http", "port_socks5", "user" or
//!   "username", "password", "date_end", …}`. The session reaches the proxy
//!   over HTTP on `port_http` (over SOCKS5 on `port_socks5` when there is
//!   no HTTP port).
//! - `date_end` is when the proxy expires: RFC 3339, or `YYYY-MM-DD
//!   HH:MM:SS` read as UTC. Only active proxies are listed, so every listed
//!   one is valid; expiry is carried as `expires_at` and enforced by
//!   proxyplane at that moment, not at the next sync.
//! - 401/403 for a refused key; 429 with `Retry-After` when throttled.

use serde::Deserialize;

use super::{Classify, Client, VendorError, VendorProxy};
use crate::pb::Timestamp;

pub const DEFAULT_BASE: &str = "https://panel.proxyline.net";

#[derive(Deserialize)]
struct Page {
    next: Option<String>,
    results: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    id: serde_json::Value,
    ip: String,
    port_http: Option<i64>,
    port_socks5: Option<i64>,
    #[serde(alias = "username")]
    user: String,
    password: String,
    date_end: Option<String>,
}

/// Every active proxy of the account.
pub fn list(client: &Client, base: &str, api_key: &str) -> Result<Vec<VendorProxy>, VendorError> {
    let base = base.trim_end_matches('/');
    let key = percent_encode(api_key);
    let mut out = Vec::new();
    for page in 1..=client.limits().max_pages {
        let url = format!("{base}/api/proxies/?api_key={key}&status=active&page={page}");
        let body = client.get(&url, &[])?;
        let p: Page = serde_json::from_slice(&body).map_err(|e| {
            VendorError::Malformed(format!(
                "page {page} of the proxy list is not the expected JSON ({})",
                e.classify_words()
            ))
        })?;
        for (i, item) in p.results.into_iter().enumerate() {
            out.push(proxy(item).map_err(|why| {
                VendorError::Malformed(format!("page {page}, result {i}: {why}"))
            })?);
        }
        if p.next.is_none() {
            return Ok(out);
        }
    }
    Err(VendorError::Malformed(format!(
        "the proxy list has more than {} pages",
        client.limits().max_pages
    )))
}

fn proxy(item: Item) -> Result<VendorProxy, String> {
    let id = match item.id {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err("id is neither a string nor a number".into()),
    };
    let port = |p: Option<i64>| {
        p.and_then(|p| i32::try_from(p).ok())
            .filter(|p| (1..=65535).contains(p))
    };
    let (scheme, port) = match (port(item.port_http), port(item.port_socks5)) {
        (Some(p), _) => ("http", p),
        (None, Some(p)) => ("socks5", p),
        (None, None) => return Err("neither port_http nor port_socks5 is 1..65535".into()),
    };
    let expires_at = match item.date_end.as_deref() {
        None | Some("") => None,
        Some(d) => Some(parse_date(d).ok_or("date_end is not a date and time")?),
    };
    Ok(VendorProxy {
        id,
        host: item.ip,
        port,
        username: item.user,
        password: item.password,
        valid: true,
        scheme,
        expires_at,
    })
}

/// RFC 3339, or `YYYY-MM-DD HH:MM:SS` (UTC), in ms.
fn parse_date(d: &str) -> Option<i64> {
    let t = Timestamp::parse_rfc3339(d).or_else(|| {
        (d.len() == 19 && d.as_bytes()[10] == b' ')
            .then(|| Timestamp::parse_rfc3339(&format!("{}T{}Z", &d[..10], &d[11..])))
            .flatten()
    })?;
    Some(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// The key as a query-string value (RFC 3986 unreserved kept).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: &str) -> Result<VendorProxy, String> {
        proxy(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn http_port_first_socks5_otherwise_and_expiry_in_ms() {
        let p = item(
            r#"{"id":7,"ip":"1.2.3.4","port_http":8000,"port_socks5":9000,"user":"u","password":"p","date_end":"2026-12-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((p.id.as_str(), p.scheme, p.port), ("7", "http", 8000));
        assert_eq!(p.expires_at, Some(1_796_083_200_000));
        let p = item(
            r#"{"id":"x","ip":"1.2.3.4","port_socks5":9000,"username":"u","password":"p","date_end":"2026-12-01 00:00:00"}"#,
        )
        .unwrap();
        assert_eq!((p.scheme, p.port), ("socks5", 9000));
        assert_eq!(p.expires_at, Some(1_796_083_200_000));
        let p = item(r#"{"id":1,"ip":"h","port_http":1,"user":"u","password":"p"}"#).unwrap();
        assert_eq!(p.expires_at, None);
    }

    #[test]
    fn bad_ports_and_dates_are_refused() {
        assert!(item(r#"{"id":1,"ip":"h","port_http":0,"user":"u","password":"p"}"#).is_err());
        assert!(item(
            r#"{"id":1,"ip":"h","port_http":80,"user":"u","password":"p","date_end":"soon"}"#
        )
        .is_err());
        assert_eq!(percent_encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
