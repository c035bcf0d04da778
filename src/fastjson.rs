//! A hand-written protojson encoder for the hot response (ResolveProxy),
//! byte-identical to the generated (pbjson + serde_json) one and tested
//! against it: serde's generic path (a length pass, escaping through a
//! formatter, a String per base64 id and per int64) was ~8% of a sticky
//! resolve's instructions. Every other message goes through serde.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::pb::v1::{Assignment, Proxy, ResolveProxyResponse};
use crate::pb::Timestamp;

pub fn resolve_proxy(r: &ResolveProxyResponse) -> Vec<u8> {
    let mut w = Obj::new(Vec::with_capacity(640));
    if let Some(a) = &r.assignment {
        w.key("assignment");
        assignment(&mut w.out, a);
    }
    if let Some(p) = &r.proxy {
        w.key("proxy");
        proxy(&mut w.out, p);
    }
    w.end()
}

fn assignment(out: &mut Vec<u8>, a: &Assignment) {
    let mut w = Obj::new(std::mem::take(out));
    w.bytes("id", &a.id);
    w.bytes("workspaceId", &a.workspace_id);
    w.bytes("poolId", &a.pool_id);
    w.bytes("sessionId", &a.session_id);
    w.string("accountName", &a.account_name);
    if a.pinned {
        w.key("pinned");
        w.out.extend_from_slice(b"true");
    }
    if a.version != 0 {
        w.key("version");
        w.out.push(b'"');
        int(&mut w.out, a.version);
        w.out.push(b'"');
    }
    w.timestamp("createdAt", a.created_at);
    w.timestamp("updatedAt", a.updated_at);
    w.timestamp("boundAt", a.bound_at);
    if a.rotations != 0 {
        w.key("rotations");
        int(&mut w.out, i64::from(a.rotations));
    }
    *out = w.end();
}

fn proxy(out: &mut Vec<u8>, p: &Proxy) {
    let mut w = Obj::new(std::mem::take(out));
    w.string("scheme", &p.scheme);
    w.string("host", &p.host);
    if p.port != 0 {
        w.key("port");
        int(&mut w.out, i64::from(p.port));
    }
    w.string("username", &p.username);
    w.string("password", &p.password);
    w.string("url", &p.url);
    w.string("endpoint", &p.endpoint);
    *out = w.end();
}

/// A JSON object being written: fields with default values are left out,
/// as pbjson does.
struct Obj {
    out: Vec<u8>,
    first: bool,
}

impl Obj {
    fn new(mut out: Vec<u8>) -> Obj {
        out.push(b'{');
        Obj { out, first: true }
    }
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }
    fn string(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            self.key(k);
            escaped(&mut self.out, v);
        }
    }
    fn bytes(&mut self, k: &str, v: &[u8]) {
        if !v.is_empty() {
            self.key(k);
            self.out.push(b'"');
            let start = self.out.len();
            self.out.resize(start + v.len().div_ceil(3) * 4, 0);
            let n = STANDARD
                .encode_slice(v, &mut self.out[start..])
                .unwrap_or(0);
            self.out.truncate(start + n);
            self.out.push(b'"');
        }
    }
    fn timestamp(&mut self, k: &str, v: Option<Timestamp>) {
        if let Some(t) = v {
            self.key(k);
            self.out.push(b'"');
            t.write_rfc3339(&mut self.out);
            self.out.push(b'"');
        }
    }
    fn end(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

fn int(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    crate::pb::push_digits(out, v, 1);
}

/// A JSON string as serde_json writes it: `"` and `\` escaped, control
/// characters as \b \f \n \r \t or \u00XX, everything else (non-ASCII
/// included) as it is. Runs of plain bytes are copied whole.
fn escaped(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if !NEEDS_ESCAPE[c as usize] {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        escape_byte(out, c);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Control characters, `"` and `\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

fn escape_byte(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match c {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 0xf) as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn text(rng: &mut impl Rng) -> String {
        const PIECES: &[&str] = &[
            "",
            "a",
            "user-018f",
            "p@ss:w/rd",
            "\"",
            "\\",
            "\n",
            "\r\t",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "é",
            "日本",
            "\u{2028}",
            "🦀",
            "{token}",
            "%41",
            "<>&'",
            "\u{8}\u{c}",
        ];
        (0..rng.random_range(0..6))
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect()
    }

    fn bytes(rng: &mut impl Rng) -> Vec<u8> {
        let n = [0, 1, 2, 3, 15, 16, 17][rng.random_range(0..7)];
        (0..n).map(|_| rng.random()).collect()
    }

    fn ts(rng: &mut impl Rng) -> Option<Timestamp> {
        rng.random_bool(0.8).then(|| Timestamp {
            seconds: rng.random_range(-100_000_000_000..300_000_000_000),
            nanos: [0, 1, 1_000, 1_000_000, 123_456_789, 999_999_999][rng.random_range(0..6)],
        })
    }

    #[test]
    fn resolve_proxy_json_is_byte_identical_to_the_generated_encoder() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for i in 0..20_000 {
            let r = ResolveProxyResponse {
                assignment: rng.random_bool(0.9).then(|| Assignment {
                    id: bytes(&mut rng),
                    workspace_id: bytes(&mut rng),
                    pool_id: bytes(&mut rng),
                    session_id: bytes(&mut rng),
                    account_name: text(&mut rng),
                    pinned: rng.random(),
                    version: [0, 1, -1, 2, i64::MAX, i64::MIN][rng.random_range(0..6)],
                    created_at: ts(&mut rng),
                    updated_at: ts(&mut rng),
                    bound_at: ts(&mut rng),
                    rotations: [0, 1, 7, i32::MAX, i32::MIN][rng.random_range(0..5)],
                }),
                proxy: rng.random_bool(0.9).then(|| Proxy {
                    scheme: text(&mut rng),
                    host: text(&mut rng),
                    port: [0, 1, 80, 65535, -3][rng.random_range(0..5)],
                    username: text(&mut rng),
                    password: text(&mut rng),
                    url: text(&mut rng),
                    endpoint: text(&mut rng),
                }),
            };
            let want = serde_json::to_vec(&r).unwrap();
            let got = resolve_proxy(&r);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "case {i}"
            );
        }
    }
}
