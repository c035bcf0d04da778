//! The gateway's pure parsing: the login format, the first-byte sniff,
//! HTTP request heads from a bot and response heads from an upstream, and
//! targets. No I/O, so every rule here is unit-tested.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// What a connection speaks, from its first byte: SOCKS5 starts with its
/// version 5; an HTTP request starts with a method's capital letter.
#[derive(Debug, PartialEq, Eq)]
pub enum Protocol {
    Socks5,
    Http,
    Unknown,
}

pub fn sniff(first: u8) -> Protocol {
    match first {
        5 => Protocol::Socks5,
        b'A'..=b'Z' => Protocol::Http,
        _ => Protocol::Unknown,
    }
}

/// A gateway login: `<pool>.<account>`. The pool is the pool's id (base64,
/// as in the API's JSON; URL-safe base64 needs no percent-encoding) or its
/// name when that name is unique in the key's workspace and has no `.`.
/// Everything after the first `.` is the account name, so account names
/// may contain dots; names of letters, digits, `-` and `_` need no
/// percent-encoding anywhere. Percent-escapes are decoded (clients differ
/// in whether they decode userinfo before sending it).
#[derive(Debug, PartialEq, Eq)]
pub struct Login {
    pub pool: String,
    pub account: String,
}

pub fn parse_login(username: &str) -> Result<Login, &'static str> {
    let username = percent_decode(username).ok_or("the username has a bad percent-escape")?;
    let (pool, account) = username
        .split_once('.')
        .ok_or("the username must be <pool>.<account>")?;
    if pool.is_empty() {
        return Err("the username's pool (before the first '.') is empty");
    }
    if account.is_empty() {
        return Err("the username's account (after the first '.') is empty");
    }
    Ok(Login {
        pool: pool.to_owned(),
        account: account.to_owned(),
    })
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    crate::import::percent_decode(s)
}

/// The end of an HTTP head (`\r\n\r\n`) in `buf`: the index just past it.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A bot's request head.
#[derive(Debug)]
pub struct Head<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
}

impl Head<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Parses a head that `head_end` found (including its blank line).
pub fn parse_head(head: &[u8]) -> Result<Head<'_>, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let first = lines.next().ok_or("empty request")?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the request line must be <method> <target> <version>");
    };
    if !version.starts_with("HTTP/1.") {
        return Err("only HTTP/1.x is served");
    }
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let (n, v) = l.split_once(':').ok_or("a header line has no ':'")?;
        if n.is_empty() || n.contains(' ') {
            return Err("a header name is malformed");
        }
        headers.push((n, v.trim()));
    }
    Ok(Head {
        method,
        target,
        version,
        headers,
    })
}

/// `Proxy-Authorization: Basic <base64(user:pass)>` → (user, pass).
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

pub fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
}

/// `host:port` (CONNECT's authority form; IPv6 in brackets) → parts.
pub fn authority(s: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => default_port?,
    };
    if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == b'/' || b == b'@') {
        return None;
    }
    Some((host.to_owned(), port))
}

/// An absolute-form `http://host[:port]/path` → (host, port, origin-form path).
pub fn absolute_http(target: &str) -> Option<(String, u16, String)> {
    let rest = target
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("http://"))
        .map(|_| &target[7..])?;
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    let (host, port) = authority(auth, Some(80))?;
    Some((host, port, path))
}

/// Whether a request's body goes on past the `read` bytes that came with
/// its head: a chunked body always may, a Content-Length one when longer.
pub fn body_remains(head: &Head<'_>, read: usize) -> bool {
    if head.header("transfer-encoding").is_some() {
        return true;
    }
    head.header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| n > read)
}

/// The status code of an upstream's response head.
pub fn status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let mut parts = text.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Headers a bot sends that go no further: its login, and hop-by-hop ones
/// (the gateway sends `Connection: close` itself).
pub fn hop_by_hop(name: &str) -> bool {
    [
        "proxy-authorization",
        "proxy-connection",
        "connection",
        "keep-alive",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_remains_when_longer_than_what_came_with_the_head_or_chunked() {
        let head = |extra: &'static str| {
            let text: &'static str = Box::leak(
                format!("POST http://o/ HTTP/1.1\r\nHost: o\r\n{extra}\r\n").into_boxed_str(),
            );
            parse_head(text.as_bytes()).unwrap()
        };
        assert!(!body_remains(&head(""), 0));
        assert!(!body_remains(&head("Content-Length: 5\r\n"), 5));
        assert!(body_remains(&head("Content-Length: 5\r\n"), 4));
        assert!(body_remains(&head("Transfer-Encoding: chunked\r\n"), 100));
    }

    #[test]
    fn first_byte_tells_socks5_from_http() {
        assert_eq!(sniff(5), Protocol::Socks5);
        assert_eq!(sniff(b'C'), Protocol::Http);
        assert_eq!(sniff(b'G'), Protocol::Http);
        assert_eq!(sniff(4), Protocol::Unknown);
        assert_eq!(sniff(0x16), Protocol::Unknown);
    }

    #[test]
    fn login_is_pool_dot_account_split_at_the_first_dot() {
        let l = parse_login("AZN1ZmN3c2V4bGJzaV9qbA.bot-1_a").unwrap();
        assert_eq!(l.pool, "AZN1ZmN3c2V4bGJzaV9qbA");
        assert_eq!(l.account, "bot-1_a");
        let l = parse_login("steam.bot.with.dots").unwrap();
        assert_eq!(
            (l.pool.as_str(), l.account.as_str()),
            ("steam", "bot.with.dots")
        );
        let l = parse_login("steam.bot%201").unwrap();
        assert_eq!(l.account, "bot 1");
        for bad in ["", "nodot", ".acct", "pool.", "p.%zz", "p.%4"] {
            assert!(parse_login(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn heads_parse_and_credentials_decode() {
        let raw = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic cC5hOmtleQ==\r\n\r\n";
        let end = head_end(raw).unwrap();
        assert_eq!(end, raw.len());
        let h = parse_head(&raw[..end]).unwrap();
        assert_eq!(h.method, "CONNECT");
        assert_eq!(h.target, "example.com:443");
        let (u, p) = basic_credentials(h.header("proxy-authorization").unwrap()).unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("p.a", "key"));
        assert!(parse_head(b"GET / HTTP/2\r\n\r\n").is_err());
        assert!(parse_head(b"GET /\r\n\r\n").is_err());
        assert!(parse_head(b"GET / HTTP/1.1\r\nbad header\r\n\r\n").is_err());
        assert!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n").is_none());
        assert!(basic_credentials("Bearer abc").is_none());
    }

    #[test]
    fn targets_parse() {
        assert_eq!(authority("a.b:443", None), Some(("a.b".into(), 443)));
        assert_eq!(authority("[::1]:8443", None), Some(("::1".into(), 8443)));
        assert_eq!(authority("a.b", None), None);
        assert_eq!(authority("a.b:0", None), None);
        assert_eq!(authority("u@a.b:1", None), None);
        assert_eq!(
            absolute_http("http://a.b:8080/x?y"),
            Some(("a.b".into(), 8080, "/x?y".into()))
        );
        assert_eq!(
            absolute_http("http://a.b"),
            Some(("a.b".into(), 80, "/".into()))
        );
        assert_eq!(absolute_http("https://a.b/"), None);
        assert_eq!(absolute_http("/relative"), None);
        assert_eq!(status(b"HTTP/1.1 407 Proxy Auth\r\n\r\n"), Some(407));
        assert_eq!(status(b"SSH-2.0\r\n\r\n"), None);
    }
}
