//! Webshare's proxy list, API v2 (apidocs.webshare.io/proxy-list):
//! `GET {base}/api/v2/proxy/list/?mode=direct&page=N&page_size=100` with
//! `Authorization: Token <key>`, answering
//! `{"count", "next", "previous", "results": [{"id", "username", "password",
//! "proxy_address", "port", "valid", "country_code", "city_name", …}]}`.
//! Pages are followed by number while `next` is not null (the `next` URL
//! itself names Webshare's host, which a mirror or test server is not).
//! `proxy_address` is null in backbone mode: such a proxy is reached through
//! `p.webshare.io` on its own port. 401 `{"detail": "Invalid token."}` on a
//! bad key; 429 with `Retry-After` when throttled (retried by `Client`).

use serde::Deserialize;

use super::{Classify, Client, VendorError, VendorProxy};

pub const DEFAULT_BASE: &str = "https://proxy.webshare.io";
const PAGE_SIZE: usize = 100;
/// Where a backbone-mode proxy (no `proxy_address`) is reached.
const BACKBONE_HOST: &str = "p.webshare.io";

#[derive(Deserialize)]
struct Page {
    next: Option<String>,
    results: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    id: serde_json::Value,
    username: String,
    password: String,
    proxy_address: Option<String>,
    port: i64,
    #[serde(default = "yes")]
    valid: bool,
}

fn yes() -> bool {
    true
}

/// Every proxy of the account, in `mode` ("direct" or "backbone").
pub fn list(
    client: &Client,
    base: &str,
    api_key: &str,
    mode: &str,
) -> Result<Vec<VendorProxy>, VendorError> {
    let base = base.trim_end_matches('/');
    let auth = format!("Token {api_key}");
    let mut out = Vec::new();
    for page in 1..=client.limits().max_pages {
        let url =
            format!("{base}/api/v2/proxy/list/?mode={mode}&page={page}&page_size={PAGE_SIZE}");
        let body = client.get(&url, &[("Authorization", &auth)])?;
        let p: Page = serde_json::from_slice(&body).map_err(|e| {
            VendorError::Malformed(format!(
                "page {page} of the proxy list is not the documented JSON ({})",
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
    let port = i32::try_from(item.port)
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .ok_or("port is not 1..65535")?;
    Ok(VendorProxy {
        id,
        host: item
            .proxy_address
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| BACKBONE_HOST.into()),
        port,
        username: item.username,
        password: item.password,
        valid: item.valid,
        scheme: "http",
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backbone_results_go_through_p_webshare_io() {
        let item: Item = serde_json::from_str(
            r#"{"id":"d-1","username":"u","password":"p","proxy_address":null,"port":8168,"valid":false}"#,
        )
        .unwrap();
        let p = proxy(item).unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.valid),
            ("p.webshare.io", 8168, false)
        );
    }

    #[test]
    fn numeric_ids_become_tokens_and_bad_ports_are_refused() {
        let item: Item = serde_json::from_str(
            r#"{"id":17,"username":"u","password":"p","proxy_address":"1.2.3.4","port":70000}"#,
        )
        .unwrap();
        assert_eq!(proxy(item).unwrap_err(), "port is not 1..65535");
    }
}
