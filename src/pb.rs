//! The generated API types (prost + pbjson, see build.rs) and the one
//! well-known type we own: `Timestamp`, whose protojson form is RFC 3339 in UTC
//! with a `Z` (pbjson-types writes `+00:00`).

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/proxies.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/proxies.v1.serde.rs"));
}

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// `google.protobuf.Timestamp`, wire-compatible with the well-known type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// The decimal digits of `|v|`, zero-padded to at least `width`: straight
/// into a buffer, since format! showed up in instruction counts for the
/// timestamps and numbers of every response.
pub fn push_digits(out: &mut Vec<u8>, v: i64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut v = v.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = i.min(digits.len() - width);
    out.extend_from_slice(&digits[start..]);
}

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        }
    }

    /// RFC 3339 in UTC with `Z`, with 0, 3, 6 or 9 fractional digits as
    /// protojson does.
    pub fn to_rfc3339(self) -> String {
        let mut out = Vec::with_capacity(30);
        self.write_rfc3339(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// `to_rfc3339` appended to `out`, without a String of its own.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        use push_digits as push;
        let days = self.seconds.div_euclid(86_400);
        let secs = self.seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if y < 0 {
            out.push(b'-');
        }
        push(out, y, 4);
        for (sep, v) in [
            (b'-', m),
            (b'-', d),
            (b'T', secs / 3600),
            (b':', secs / 60 % 60),
            (b':', secs % 60),
        ] {
            out.push(sep);
            push(out, v, 2);
        }
        let n = i64::from(self.nanos.clamp(0, 999_999_999));
        if n != 0 {
            out.push(b'.');
            if n % 1_000_000 == 0 {
                push(out, n / 1_000_000, 3);
            } else if n % 1000 == 0 {
                push(out, n / 1000, 6);
            } else {
                push(out, n, 9);
            }
        }
        out.push(b'Z');
    }

    /// Parses RFC 3339 (`Z` or a numeric offset), as protojson accepts.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            if !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut i = 19;
        let mut nanos: i64 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[start..i];
            if digits.is_empty() || digits.len() > 9 {
                return None;
            }
            nanos = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
        }
        let offset = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                let o = oh * 3600 + om * 60;
                if *sign == b'+' {
                    o
                } else {
                    -o
                }
            }
            _ => return None,
        };
        let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
        Some(Timestamp {
            seconds,
            nanos: nanos as i32,
        })
    }
}

// Howard Hinnant's days <-> civil date algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_end_in_z_with_protojson_fraction_digits() {
        let t = Timestamp::parse_rfc3339("2026-06-29T10:15:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-06-29T10:15:00Z");
        assert_eq!(
            Timestamp::from_millis(1_500).to_rfc3339(),
            "1970-01-01T00:00:01.500Z"
        );
        let t = Timestamp {
            seconds: 0,
            nanos: 1_000,
        };
        assert_eq!(t.to_rfc3339(), "1970-01-01T00:00:00.000001Z");
        let t = Timestamp::parse_rfc3339("2026-06-29T12:15:00.25+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-06-29T10:15:00.250Z");
        assert!(Timestamp::parse_rfc3339("2026-13-29T10:15:00Z").is_none());
        assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn timestamp_serde_round_trips_through_json() {
        let t = Timestamp::from_millis(1_782_728_100_000);
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, "\"2026-06-29T10:15:00Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&j).unwrap(), t);
    }
}
