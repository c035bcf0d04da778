//! Vendor APIs (SyncProvider): a small synchronous HTTP client (ureq with
//! rustls) with a timeout, retries with backoff on 429 and 5xx honouring
//! `Retry-After`, and a response-size cap; and one adapter per vendor that
//! turns its proxy list into `VendorProxy` values. Uses no other layer: the
//! caller (`api::sync`) reconciles the list with the store.
//!
//! Errors never carry the vendor key nor the request URL (a vendor may take
//! its key in the query string); they say what failed in words.

pub mod proxyline;
pub mod webshare;

use std::time::Duration;

/// One proxy as the vendor lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorProxy {
    /// The vendor's stable id for the proxy: the session token.
    pub id: String,
    pub host: String,
    pub port: i32,
    pub username: String,
    pub password: String,
    /// False when the vendor marks the proxy invalid.
    pub valid: bool,
    /// `http` or `socks5`: how the proxy is reached.
    pub scheme: &'static str,
    /// When the vendor's proxy expires (ms), if it does.
    pub expires_at: Option<i64>,
}

/// What can go wrong talking to a vendor.
#[derive(Debug, PartialEq)]
pub enum VendorError {
    /// The vendor refused the key (401/403).
    Unauthorized,
    /// Down, throttled past our retries, timed out, or a 5xx.
    Unavailable(String),
    /// An answer we cannot read (bad JSON, missing fields, too large).
    Malformed(String),
}

/// serde_json's error category in words, without echoing any content.
pub trait Classify {
    fn classify_words(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_words(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Data => "fields missing or of the wrong type",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

/// Limits of one sync's HTTP traffic.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// One request, connect to last byte.
    pub timeout: Duration,
    /// Retries after the first attempt on 429, 5xx or a transport error.
    pub retries: u32,
    /// Longest wait a `Retry-After` may ask for; a longer one gives up.
    pub max_retry_after: Duration,
    /// Largest response body read.
    pub max_body_bytes: u64,
    /// Most pages followed (a vendor looping its `next` link stops here).
    pub max_pages: usize,
}

impl Limits {
    pub fn new(timeout: Duration) -> Self {
        Limits {
            timeout,
            retries: 3,
            max_retry_after: Duration::from_secs(60),
            max_body_bytes: 32 << 20,
            max_pages: 10_000,
        }
    }
}

/// A blocking client for one sync.
pub struct Client {
    agent: ureq::Agent,
    limits: Limits,
}

/// The first backoff; doubled at each retry.
const BACKOFF: Duration = Duration::from_millis(250);

impl Client {
    pub fn new(limits: Limits) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(limits.timeout))
            .http_status_as_error(false)
            .max_redirects(3)
            .user_agent(concat!("proxyplane/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client { agent, limits }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// GETs `url` with the headers and returns the body of a 2xx answer,
    /// retrying 429, 5xx and transport errors.
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Vec<u8>, VendorError> {
        let mut attempt = 0;
        loop {
            let (err, wait) = match self.once(url, headers) {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(e, retry_after) => (e, retry_after),
            };
            if attempt >= self.limits.retries {
                return Err(err);
            }
            let backoff = BACKOFF * 2u32.pow(attempt);
            let wait = wait.unwrap_or(backoff);
            if wait > self.limits.max_retry_after {
                return Err(VendorError::Unavailable(format!(
                    "the vendor asked to retry after {} s",
                    wait.as_secs()
                )));
            }
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    fn once(&self, url: &str, headers: &[(&str, &str)]) -> Attempt {
        let mut req = self.agent.get(url).header("Accept", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(VendorError::Unavailable(transport(&e)), None),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match status {
            200..=299 => {}
            401 | 403 => return Attempt::Fatal(VendorError::Unauthorized),
            429 => {
                return Attempt::Retry(
                    VendorError::Unavailable("the vendor is throttling requests (429)".into()),
                    retry_after,
                )
            }
            500..=599 => {
                return Attempt::Retry(
                    VendorError::Unavailable(format!("the vendor answered HTTP {status}")),
                    retry_after,
                )
            }
            _ => {
                return Attempt::Fatal(VendorError::Unavailable(format!(
                    "the vendor answered HTTP {status}"
                )))
            }
        }
        match resp
            .body_mut()
            .with_config()
            .limit(self.limits.max_body_bytes)
            .read_to_vec()
        {
            Ok(b) => Attempt::Done(b),
            Err(ureq::Error::BodyExceedsLimit(n)) => Attempt::Fatal(VendorError::Malformed(
                format!("a response is larger than {n} bytes"),
            )),
            Err(e) => Attempt::Retry(VendorError::Unavailable(transport(&e)), None),
        }
    }
}

enum Attempt {
    Done(Vec<u8>),
    Fatal(VendorError),
    Retry(VendorError, Option<Duration>),
}

/// A transport error in words, without the URL.
fn transport(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "the vendor did not answer in time".into(),
        ureq::Error::Io(io) => format!("cannot reach the vendor ({})", io.kind()),
        ureq::Error::HostNotFound => "the vendor's host name does not resolve".into(),
        ureq::Error::ConnectionFailed => "cannot connect to the vendor".into(),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => {
            "the TLS handshake with the vendor failed".into()
        }
        _ => "the request to the vendor failed".into(),
    }
}
