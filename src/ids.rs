//! Id newtypes (16-byte UUIDv7 values), their SQL and base64 conversions, and
//! the page_size rule of every List method (cursors live in src/cursor.rs).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::error::{Error, Result};

macro_rules! id_type {
    ($name:ident, $field:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        #[allow(dead_code)]
        impl $name {
            /// A fresh time-ordered id.
            pub fn generate() -> Self {
                $name(uuid_v7())
            }
            /// From a request field; empty or wrong-length bytes are
            /// invalid_argument naming the field.
            pub fn parse(bytes: &[u8]) -> Result<Self> {
                Self::parse_named(bytes, $field)
            }
            pub fn parse_named(bytes: &[u8], field: &str) -> Result<Self> {
                if bytes.is_empty() {
                    return Err(Error::invalid(format!("{field} is required.")));
                }
                <[u8; 16]>::try_from(bytes).map($name).map_err(|_| {
                    Error::invalid(format!(
                        "{field} must be a 16-byte id (base64 in JSON), got {} bytes.",
                        bytes.len()
                    ))
                })
            }
            /// An optional filter: empty means absent.
            pub fn parse_optional(bytes: &[u8]) -> Result<Option<Self>> {
                if bytes.is_empty() {
                    Ok(None)
                } else {
                    Self::parse(bytes).map(Some)
                }
            }
            pub fn to_vec(self) -> Vec<u8> {
                self.0.to_vec()
            }
            pub fn to_base64(self) -> String {
                STANDARD.encode(self.0)
            }
            pub fn from_base64(s: &str) -> Option<Self> {
                let b = decode_any_base64(s)?;
                <[u8; 16]>::try_from(b.as_slice()).ok().map($name)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_base64())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_base64())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Blob(&self.0)))
            }
        }

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let b = v.as_blob()?;
                <[u8; 16]>::try_from(b)
                    .map($name)
                    .map_err(|_| FromSqlError::InvalidBlobSize {
                        expected_size: 16,
                        blob_size: b.len(),
                    })
            }
        }
    };
}

id_type!(WorkspaceId, "workspace_id");
id_type!(ApiKeyId, "api_key_id");
id_type!(ProviderId, "provider_id");
id_type!(PoolId, "pool_id");
id_type!(SessionId, "session_id");
id_type!(AssignmentId, "assignment_id");

/// A UUIDv7: 48-bit Unix milliseconds, then a 26-bit counter that starts
/// at a random value each millisecond (so ids made by this process sort in
/// creation order), then random bits. Randomness comes from the thread's
/// CSPRNG rather than a getrandom call per id, which showed up in the
/// BulkCreateSessions profile.
fn uuid_v7() -> [u8; 16] {
    use rand::RngCore;
    use std::sync::Mutex;
    static LAST: Mutex<(u64, u32)> = Mutex::new((0, 0));
    const COUNTER_MAX: u32 = (1 << 26) - 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut rng = rand::rng();
    let (ms, counter) = {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if now > last.0 {
            *last = (now, rng.next_u32() >> 7);
        } else if last.1 < COUNTER_MAX {
            last.1 += 1;
        } else {
            // 2^26 ids in one millisecond: borrow the next millisecond.
            *last = (last.0 + 1, rng.next_u32() >> 7);
        }
        *last
    };
    let mut b = [0u8; 10];
    rng.fill_bytes(&mut b[4..]);
    let (hi, lo) = (counter >> 14, counter & 0x3FFF);
    b[0] = (hi >> 8) as u8 & 0x0F;
    b[1] = hi as u8;
    b[2] = (lo >> 8) as u8 & 0x3F;
    b[3] = lo as u8;
    *uuid::Builder::from_unix_timestamp_millis(ms, &b)
        .into_uuid()
        .as_bytes()
}

/// Standard or URL-safe base64, padded or not.
pub fn decode_any_base64(s: &str) -> Option<Vec<u8>> {
    let t: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(t).ok()
}

/// page_size rules shared by every List method: 0 → 100, above 1000 → 1000.
pub fn page_size(requested: i32) -> Result<usize> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size must not be negative.")),
        0 => Ok(100),
        n => Ok((n as usize).min(1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_v7_and_sort_in_creation_order() {
        let ids: Vec<SessionId> = (0..10_000).map(|_| SessionId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let u = uuid::Uuid::from_bytes(ids[0].0);
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn ids_accept_every_base64_flavour() {
        let id = WorkspaceId::from_base64("AY+MHnorfD2eTxorPE1ebw==").unwrap();
        assert_eq!(
            WorkspaceId::from_base64("AY-MHnorfD2eTxorPE1ebw").unwrap(),
            id
        );
        assert_eq!(id.to_base64(), "AY+MHnorfD2eTxorPE1ebw==");
        assert!(WorkspaceId::parse(&[1, 2, 3]).is_err());
        assert!(WorkspaceId::parse(&[]).is_err());
    }
}
