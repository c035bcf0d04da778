//! The Connect unary protocol: content types, request and response
//! compression, Connect GET query parameters, Connect-Timeout-Ms, and error
//! bodies; `unary` wraps this work around a call of the method table.
//! Nothing here knows what a method does.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::codec::Codec;
use crate::ctx::State;
use crate::error::{Code, Error, Result};
use crate::rpc::{self, Method};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// A refusal before the request reaches a method, with the HTTP status it
/// gets. The body is still a Connect error.
#[derive(Debug)]
pub struct Reject {
    pub status: u16,
    pub error: Error,
}

impl From<Error> for Reject {
    fn from(error: Error) -> Self {
        Reject {
            status: error.code.http_status(),
            error,
        }
    }
}

impl Reject {
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Reject {
            status,
            error: Error::new(Code::Unimplemented, message),
        }
    }
}

/// What the protocol layer learned from the headers (or query) of a call.
#[derive(Debug, Clone)]
pub struct Call {
    pub codec: Codec,
    pub gzip_body: bool,
    pub accept_gzip: bool,
    pub deadline: Option<Instant>,
    pub authorization: Option<String>,
}

pub struct Headers<'a> {
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub accept_encoding: Option<&'a str>,
    pub timeout_ms: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub authorization: Option<&'a str>,
}

/// `gzip` or identity; anything else is unimplemented (Connect spec).
fn compression(name: Option<&str>) -> Result<bool> {
    match name.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(false),
        Some("gzip") => Ok(true),
        Some(other) => Err(Error::new(
            Code::Unimplemented,
            format!("Unsupported compression {other:?}; use gzip or identity."),
        )),
    }
}

pub fn accepts_gzip(h: Option<&str>) -> bool {
    h.is_some_and(|v| {
        v.split(',').any(|part| {
            let mut it = part.split(';');
            let name = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
    })
}

/// Connect-Timeout-Ms: 1 to 10 ASCII digits.
fn deadline(v: Option<&str>, now: Instant) -> Result<Option<Instant>> {
    let Some(v) = v else { return Ok(None) };
    let v = v.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            "Connect-Timeout-Ms must be a positive whole number of milliseconds (at most 10 digits).",
        ));
    }
    let ms: u64 = v
        .parse()
        .map_err(|_| Error::invalid("bad Connect-Timeout-Ms"))?;
    Ok(Some(now + Duration::from_millis(ms)))
}

fn protocol_version(v: Option<&str>) -> Result<()> {
    match v.map(str::trim) {
        None | Some("1") => Ok(()),
        Some(other) => Err(Error::invalid(format!(
            "Connect-Protocol-Version {other:?} is not supported; send 1."
        ))),
    }
}

/// A POST: content type and encodings from headers.
pub fn parse_post(h: &Headers, now: Instant) -> Result<Call, Reject> {
    let codec = h
        .content_type
        .and_then(Codec::from_content_type)
        .ok_or_else(|| {
            Reject::http(
                415,
                "Unsupported content type; send application/json or application/proto.",
            )
        })?;
    protocol_version(h.protocol_version)?;
    Ok(Call {
        codec,
        gzip_body: compression(h.content_encoding)?,
        accept_gzip: accepts_gzip(h.accept_encoding),
        deadline: deadline(h.timeout_ms, now)?,
        authorization: h.authorization.map(str::to_owned),
    })
}

/// A Connect GET: `encoding`, `message`, `base64`, `compression`, `connect`
/// from the query. Returns the call and the (still compressed) message bytes.
pub fn parse_get(query: &str, h: &Headers, now: Instant) -> Result<(Call, Vec<u8>), Reject> {
    let mut encoding = None;
    let mut message = None;
    let mut base64 = false;
    let mut compression_name = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| {
            Error::invalid(format!("query parameter {k} is not valid percent-encoding"))
        })?;
        match k {
            "encoding" => encoding = Some(String::from_utf8_lossy(&v).into_owned()),
            "message" => message = Some(v),
            "base64" => base64 = v == b"1",
            "compression" => compression_name = Some(String::from_utf8_lossy(&v).into_owned()),
            "connect" if v != b"v1" => {
                return Err(Error::invalid("the connect query parameter must be v1").into());
            }
            _ => {}
        }
    }
    let codec = encoding
        .as_deref()
        .and_then(Codec::from_encoding)
        .ok_or_else(|| Reject::http(415, "Connect GET needs encoding=json or encoding=proto."))?;
    protocol_version(h.protocol_version)?;
    let mut body = message.unwrap_or_default();
    if base64 {
        let text =
            std::str::from_utf8(&body).map_err(|_| Error::invalid("message is not base64"))?;
        body = crate::ids::decode_any_base64(text)
            .ok_or_else(|| Error::invalid("message is not valid base64"))?;
    }
    Ok((
        Call {
            codec,
            gzip_body: compression(compression_name.as_deref())?,
            accept_gzip: accepts_gzip(h.accept_encoding),
            deadline: deadline(h.timeout_ms, now)?,
            authorization: h.authorization.map(str::to_owned),
        },
        body,
    ))
}

/// application/x-www-form-urlencoded decoding (`+` is a space), as Go's
/// url.Query and browsers' URLSearchParams do.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

pub fn too_large(limit: usize) -> Error {
    Error::new(
        Code::ResourceExhausted,
        format!("The request body is larger than the limit of {limit} bytes."),
    )
}

/// Decompresses a gzip body, refusing output beyond `limit` (no
/// decompression bombs).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| Error::invalid("The request body is not valid gzip."))?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = GzEncoder::new(
        Vec::with_capacity(body.len() / 2 + 64),
        flate2::Compression::fast(),
    );
    e.write_all(body).ok();
    e.finish().unwrap_or_default()
}

/// Responses at least this large are gzipped when the client accepts it.
pub const GZIP_MIN_BYTES: usize = 1024;

/// A finished call, ready for the edge to send.
pub struct Reply {
    pub body: Vec<u8>,
    pub gzipped: bool,
}

/// One unary call: the caller is authenticated and authorized before any
/// work on the body (an unauthenticated client cannot make the server
/// decompress), then the body is decompressed, the method runs, and the
/// answer is compressed when the client accepts it.
pub fn unary(
    state: &State,
    method: &Method,
    call: &Call,
    body: &[u8],
    peer: std::net::IpAddr,
) -> Result<Reply> {
    if call.deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(Error::deadline());
    }
    let principal = rpc::authenticate(state, call.authorization.as_deref(), peer)?;
    rpc::authorize(method, &principal)?;
    let plain;
    let body = if call.gzip_body {
        plain = gunzip(body, state.config.max_body_bytes)?;
        &plain[..]
    } else {
        body
    };
    let out = rpc::run(state, method, principal, call.codec, body, call.deadline)?;
    if call.accept_gzip && out.len() >= GZIP_MIN_BYTES {
        return Ok(Reply {
            body: gzip(&out),
            gzipped: true,
        });
    }
    Ok(Reply {
        body: out,
        gzipped: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_header_must_be_digits() {
        let now = Instant::now();
        assert_eq!(
            deadline(Some("250"), now).unwrap(),
            Some(now + Duration::from_millis(250))
        );
        for bad in ["", "-1", "1.5", "abc", "12345678901"] {
            assert!(deadline(Some(bad), now).is_err(), "{bad}");
        }
    }

    #[test]
    fn accept_encoding_honours_q_zero() {
        assert!(accepts_gzip(Some("gzip, br")));
        assert!(accepts_gzip(Some("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn gunzip_refuses_bombs() {
        let big = vec![0u8; 100_000];
        let z = gzip(&big);
        assert_eq!(gunzip(&z, 100_000).unwrap().len(), 100_000);
        assert_eq!(
            gunzip(&z, 99_999).unwrap_err().code,
            Code::ResourceExhausted
        );
        assert_eq!(gunzip(b"nope", 10).unwrap_err().code, Code::InvalidArgument);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%7B%22x%22%7D+b").unwrap(), b"a{\"x\"} b");
        assert!(percent_decode("%zz").is_none());
        assert!(percent_decode("%4").is_none());
    }
}
