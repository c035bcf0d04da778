//! Dialing a bot's upstream proxy: an HTTP upstream gets `CONNECT` with
//! `Proxy-Authorization`, a SOCKS5 upstream the RFC 1928/1929 handshake.
//! The gateway never connects to a target itself: every tunnel is opened
//! by the upstream.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::engine::Upstream;
use super::wire;

/// Why an upstream gave no tunnel. `health` failures count against the
/// session (ReportSessionResult's rule); `Refused` by the target's side
/// (a 403 from the upstream, a SOCKS "connection refused") does not.
#[derive(Debug)]
pub enum Fail {
    /// TCP to the upstream failed, or it closed mid-handshake.
    Connect,
    Timeout,
    /// 407, 5xx, or a SOCKS auth/general failure: the upstream is broken.
    Upstream(String),
    /// The upstream answered, but will not reach this target.
    Target(String),
    /// A scheme the gateway cannot speak (https, socks4).
    Unsupported(String),
}

impl Fail {
    pub fn counts_against_session(&self) -> bool {
        matches!(self, Fail::Connect | Fail::Timeout | Fail::Upstream(_))
    }
    pub fn reason(&self) -> &'static str {
        match self {
            Fail::Connect => "upstream_connect",
            Fail::Timeout => "upstream_timeout",
            Fail::Upstream(_) | Fail::Target(_) | Fail::Unsupported(_) => "upstream_refused",
        }
    }
    pub fn message(&self) -> String {
        match self {
            Fail::Connect => "the account's upstream proxy could not be reached".into(),
            Fail::Timeout => "the account's upstream proxy did not answer in time".into(),
            Fail::Upstream(m) | Fail::Target(m) | Fail::Unsupported(m) => m.clone(),
        }
    }
}

/// A tunnel to `host:port` through the upstream, and any bytes the
/// upstream sent after its answer.
pub async fn tunnel(
    up: &Upstream,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, Vec<u8>), Fail> {
    match tokio::time::timeout(timeout, dial(up, host, port)).await {
        Ok(r) => r,
        Err(_) => Err(Fail::Timeout),
    }
}

async fn dial(up: &Upstream, host: &str, port: u16) -> Result<(TcpStream, Vec<u8>), Fail> {
    let socks = match up.scheme.as_str() {
        "http" => false,
        "socks5" | "socks5h" => true,
        other => {
            return Err(Fail::Unsupported(format!(
                "the gateway cannot use a {other} upstream proxy (http and socks5 only)"
            )))
        }
    };
    let mut s = TcpStream::connect((up.host.as_str(), up.port))
        .await
        .map_err(|_| Fail::Connect)?;
    s.set_nodelay(true).ok();
    if socks {
        socks5(&mut s, up, host, port).await?;
        Ok((s, Vec::new()))
    } else {
        let rest = http_connect(&mut s, up, host, port).await?;
        Ok((s, rest))
    }
}

/// Plain HTTP forwarded to an HTTP upstream in absolute form: connects,
/// writes `request` (the rewritten head and what of the body was read with
/// it) and, when `answer` is given (no more body to send), reads the
/// upstream's answer head for its status. The connection and the answer's
/// bytes so far (to relay to the bot first).
///
/// Counted against the session: no connection, a connect timeout, the
/// upstream closing before it answers, and 407. A 5xx is relayed and not
/// counted: a forwarding proxy passes on the origin's own 5xx, and the two
/// cannot be told apart. An answer slower than `answer` is the origin's
/// slowness as much as the upstream's: refused, not counted.
pub async fn forward(
    up: &Upstream,
    request: &[u8],
    connect: Duration,
    answer: Option<Duration>,
) -> Result<(TcpStream, Vec<u8>), Fail> {
    let mut s = match tokio::time::timeout(connect, TcpStream::connect((up.host.as_str(), up.port)))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return Err(Fail::Connect),
        Err(_) => return Err(Fail::Timeout),
    };
    s.set_nodelay(true).ok();
    s.write_all(request).await.map_err(|_| Fail::Connect)?;
    let Some(wait) = answer else {
        return Ok((s, Vec::new()));
    };
    let (mut head, rest) = match tokio::time::timeout(wait, read_head(&mut s, 64 * 1024)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Fail::Target(
                "the upstream proxy gave no answer in time".into(),
            ))
        }
    };
    match wire::status(&head) {
        Some(407) => Err(Fail::Upstream(
            "the upstream proxy refused its credentials (407)".into(),
        )),
        None => Err(Fail::Upstream(
            "the upstream proxy did not answer in HTTP".into(),
        )),
        Some(_) => {
            head.extend_from_slice(&rest);
            Ok((s, head))
        }
    }
}

/// The bot's plain-HTTP request as it goes to an HTTP upstream: absolute
/// form kept, the bot's login and hop-by-hop headers dropped, the
/// upstream's own credentials added, one request per connection; then the
/// body bytes read with the head.
pub fn forward_request(head: &wire::Head<'_>, up: &Upstream, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{} {} {}\r\n", head.method, head.target, head.version);
    for (n, v) in &head.headers {
        if !wire::hop_by_hop(n) {
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
    }
    if !up.username.is_empty() || !up.password.is_empty() {
        out.push_str("Proxy-Authorization: ");
        out.push_str(&wire::basic(&up.username, &up.password));
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

async fn http_connect(
    s: &mut TcpStream,
    up: &Upstream,
    host: &str,
    port: u16,
) -> Result<Vec<u8>, Fail> {
    let target = format!("{}:{port}", bracketed(host));
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if !up.username.is_empty() || !up.password.is_empty() {
        req.push_str(&format!(
            "Proxy-Authorization: {}\r\n",
            wire::basic(&up.username, &up.password)
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|_| Fail::Connect)?;
    let (head, rest) = read_head(s, 16 * 1024).await?;
    match wire::status(&head) {
        Some(200..=299) => Ok(rest),
        Some(407) => Err(Fail::Upstream(
            "the upstream proxy refused its credentials (407)".into(),
        )),
        Some(c @ 500..=599) => Err(Fail::Upstream(format!("the upstream proxy answered {c}"))),
        Some(c) => Err(Fail::Target(format!(
            "the upstream proxy answered {c} to the tunnel"
        ))),
        None => Err(Fail::Upstream(
            "the upstream proxy did not answer in HTTP".into(),
        )),
    }
}

/// Reads an HTTP response head: (head, bytes after it).
pub async fn read_head(s: &mut TcpStream, limit: usize) -> Result<(Vec<u8>, Vec<u8>), Fail> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = s.read(&mut chunk).await.map_err(|_| Fail::Connect)?;
        if n == 0 {
            return Err(Fail::Connect);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = wire::head_end(&buf) {
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() > limit {
            return Err(Fail::Upstream(
                "the upstream proxy's answer is too long".into(),
            ));
        }
    }
}

/// The SOCKS5 CONNECT request for `host:port` (RFC 1928 section 4).
fn socks5_connect(host: &str, port: u16) -> Result<Vec<u8>, Fail> {
    let mut req = vec![5, 1, 0];
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            req.push(1);
            req.extend_from_slice(&a.octets());
        }
        Ok(std::net::IpAddr::V6(a)) => {
            req.push(4);
            req.extend_from_slice(&a.octets());
        }
        Err(_) => {
            let h = host.as_bytes();
            let len = u8::try_from(h.len())
                .map_err(|_| Fail::Target("the target host name is over 255 bytes".into()))?;
            req.push(3);
            req.push(len);
            req.extend_from_slice(h);
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    Ok(req)
}

async fn socks5(s: &mut TcpStream, up: &Upstream, host: &str, port: u16) -> Result<(), Fail> {
    let io = |_| Fail::Connect;
    let login = !up.username.is_empty() || !up.password.is_empty();
    s.write_all(if login { &[5, 1, 2] } else { &[5, 1, 0] })
        .await
        .map_err(io)?;
    let mut two = [0u8; 2];
    s.read_exact(&mut two).await.map_err(io)?;
    match (two, login) {
        ([5, 0], _) => {}
        ([5, 2], true) => {
            let (u, p) = (up.username.as_bytes(), up.password.as_bytes());
            if u.len() > 255 || p.len() > 255 {
                return Err(Fail::Upstream(
                    "the upstream's SOCKS5 login is over 255 bytes".into(),
                ));
            }
            let mut m = vec![1, u.len() as u8];
            m.extend_from_slice(u);
            m.push(p.len() as u8);
            m.extend_from_slice(p);
            s.write_all(&m).await.map_err(io)?;
            s.read_exact(&mut two).await.map_err(io)?;
            if two[1] != 0 {
                return Err(Fail::Upstream(
                    "the upstream SOCKS5 proxy refused its credentials".into(),
                ));
            }
        }
        _ => {
            return Err(Fail::Upstream(
                "the upstream SOCKS5 proxy offered no usable method".into(),
            ))
        }
    }
    s.write_all(&socks5_connect(host, port)?)
        .await
        .map_err(io)?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(io)?;
    let skip = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut l = [0u8; 1];
            s.read_exact(&mut l).await.map_err(io)?;
            l[0] as usize + 2
        }
        _ => {
            return Err(Fail::Upstream(
                "the upstream SOCKS5 proxy answered garbage".into(),
            ))
        }
    };
    let mut addr = vec![0u8; skip];
    s.read_exact(&mut addr).await.map_err(io)?;
    match head[1] {
        0 => Ok(()),
        // General failure: the upstream itself is in trouble.
        1 => Err(Fail::Upstream(
            "the upstream SOCKS5 proxy failed (general failure)".into(),
        )),
        c => Err(Fail::Target(format!(
            "the upstream SOCKS5 proxy could not reach the target (reply {c})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_request_keeps_absolute_form_and_carries_the_upstreams_login_only() {
        let head = wire::parse_head(
            b"GET http://origin.test:8080/a?b=1 HTTP/1.1\r\nHost: origin.test:8080\r\n\
              Proxy-Authorization: Basic Ym90czpwcF9zZWNyZXQ=\r\nProxy-Connection: keep-alive\r\n\
              Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        let up = Upstream {
            scheme: "http".into(),
            host: "127.0.0.1".into(),
            port: 3128,
            username: "alice".into(),
            password: "p@ss:w/rd%".into(),
            session_id: Vec::new(),
            pool_id: crate::ids::PoolId::generate(),
        };
        let out = String::from_utf8(forward_request(&head, &up, b"xy")).unwrap();
        assert_eq!(
            out,
            format!(
                "GET http://origin.test:8080/a?b=1 HTTP/1.1\r\nHost: origin.test:8080\r\nAccept: */*\r\n\
                 Proxy-Authorization: {}\r\nConnection: close\r\n\r\nxy",
                wire::basic("alice", "p@ss:w/rd%")
            )
        );
        assert!(
            !out.contains("Ym90czpwcF9zZWNyZXQ="),
            "the bot's key goes no further"
        );
    }
}
