//! Opaque keyset cursors for every List method. A cursor carries the id of
//! the last row of the previous page, and a MAC that binds it to the list it
//! came from: the method, the workspace (or the ADMIN-wide scope) and the
//! filters. So a cursor pasted into another list, another workspace or the
//! same list with other filters, or one with a changed character, is refused
//! instead of silently returning a shifted or empty page.
//!
//! Format (URL-safe base64 without padding, 44 characters):
//! `version (1 byte) || last id (16) || tag (16)`, where the tag is keyed
//! BLAKE2b over a domain string, the list's binding and the first 17 bytes.
//! The key is derived from the master key, so cursors survive restarts and
//! are useless against another installation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::ids::WorkspaceId;

/// Version 1 was the bare id without a MAC; it is refused like garbage.
const VERSION: u8 = 2;
const ID_LEN: usize = 16;
const TAG_LEN: usize = 16;
const LEN: usize = 1 + ID_LEN + TAG_LEN;
const DOMAIN: &[u8] = b"proxyplane list cursor v2";

const MSG_GARBLED: &str = "cursor is not one this server issued; pass the next_cursor of the \
     previous page unchanged, or an empty cursor for the first page.";
const MSG_FOREIGN: &str = "cursor does not belong to this list; pass the next_cursor of the \
     previous page with the same workspace and filters, or an empty cursor for the first page.";

/// The list a cursor belongs to: built once per List call, then used to
/// check the request's cursor and to make the response's next_cursor.
pub struct List {
    /// Everything the tag binds besides the page position, already encoded
    /// unambiguously (every part length-prefixed).
    binding: Vec<u8>,
}

impl List {
    /// A list of `method` in `workspace`; `None` is the ADMIN-wide scope
    /// (every workspace, or the ADMIN keys).
    pub fn new(method: &str, workspace: Option<WorkspaceId>) -> List {
        let mut l = List {
            binding: DOMAIN.to_vec(),
        };
        l.part(method.as_bytes());
        match workspace {
            Some(w) => {
                l.binding.push(1);
                l.binding.extend_from_slice(&w.0);
            }
            None => l.binding.push(0),
        }
        l
    }

    /// Binds a filter; `None` (filter not given) differs from every value.
    pub fn filter(mut self, name: &str, value: Option<&[u8]>) -> List {
        self.part(name.as_bytes());
        match value {
            Some(v) => {
                self.binding.push(1);
                self.part(v);
            }
            None => self.binding.push(0),
        }
        self
    }

    fn part(&mut self, bytes: &[u8]) {
        self.binding
            .extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        self.binding.extend_from_slice(bytes);
    }

    fn tag(&self, keys: &Keyring, body: &[u8]) -> Result<[u8; TAG_LEN]> {
        let mut msg = Vec::with_capacity(self.binding.len() + body.len());
        msg.extend_from_slice(&self.binding);
        msg.extend_from_slice(body);
        let full = orion::auth::authenticate(keys.master().cursor_key(), &msg)
            .map_err(|_| Error::internal("cursor tag"))?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full.unprotected_as_bytes()[..TAG_LEN]);
        Ok(tag)
    }

    /// The id after which the page starts; `None` for an empty cursor (the
    /// first page). Anything else that is not this list's cursor is
    /// invalid_argument.
    pub fn decode(&self, keys: &Keyring, cursor: &str) -> Result<Option<[u8; ID_LEN]>> {
        if cursor.is_empty() {
            return Ok(None);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .filter(|b| b.len() == LEN && b[0] == VERSION)
            .ok_or_else(|| Error::invalid(MSG_GARBLED))?;
        let (body, tag) = raw.split_at(1 + ID_LEN);
        let want = self.tag(keys, body)?;
        // Constant time, so the tag cannot be guessed byte by byte.
        orion::util::secure_cmp(&want, tag).map_err(|_| Error::invalid(MSG_FOREIGN))?;
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&body[1..]);
        Ok(Some(id))
    }

    /// The next_cursor for a page that ended at `last` (empty when the page
    /// was the last one).
    pub fn encode(&self, keys: &Keyring, last: Option<[u8; ID_LEN]>) -> Result<String> {
        let Some(id) = last else {
            return Ok(String::new());
        };
        let mut raw = Vec::with_capacity(LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&id);
        let tag = self.tag(keys, &raw)?;
        raw.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    fn keys(seed: u8) -> Keyring {
        Keyring::new(MasterKey::from_bytes(&[seed; 32]).unwrap())
    }

    fn ws(n: u8) -> Option<WorkspaceId> {
        Some(WorkspaceId([n; 16]))
    }

    #[test]
    fn a_cursor_round_trips_in_its_own_list_only() {
        let k = keys(9);
        let pool = [3u8; 16];
        let list = || List::new("ListSessions", ws(1)).filter("pool_id", Some(&pool));
        let c = list().encode(&k, Some([7; 16])).unwrap();
        assert_eq!(c.len(), 44);
        assert_eq!(list().decode(&k, &c).unwrap(), Some([7; 16]));
        assert_eq!(list().decode(&k, "").unwrap(), None);
        assert_eq!(list().encode(&k, None).unwrap(), "");

        let others = [
            (
                "another workspace",
                List::new("ListSessions", ws(2)).filter("pool_id", Some(&pool)),
            ),
            (
                "the ADMIN scope",
                List::new("ListSessions", None).filter("pool_id", Some(&pool)),
            ),
            (
                "another method",
                List::new("ListPools", ws(1)).filter("pool_id", Some(&pool)),
            ),
            (
                "another filter value",
                List::new("ListSessions", ws(1)).filter("pool_id", Some(&[4; 16])),
            ),
            (
                "no filter",
                List::new("ListSessions", ws(1)).filter("pool_id", None),
            ),
            (
                "an empty filter",
                List::new("ListSessions", ws(1)).filter("pool_id", Some(b"")),
            ),
        ];
        for (what, other) in others {
            let e = other.decode(&k, &c).unwrap_err();
            assert_eq!(e.message, MSG_FOREIGN, "{what}");
        }
        // Another installation's key.
        assert_eq!(
            list().decode(&keys(8), &c).unwrap_err().message,
            MSG_FOREIGN
        );
    }

    #[test]
    fn every_changed_character_and_garbage_is_refused() {
        let k = keys(9);
        let list = List::new("ListWorkspaces", None);
        let c = list.encode(&k, Some([7; 16])).unwrap();
        for i in 0..c.len() {
            let mut b = c.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let flipped = String::from_utf8(b).unwrap();
            assert!(list.decode(&k, &flipped).is_err(), "position {i}");
        }
        for bad in [
            "garbage",
            "%%%",
            "AAAA",
            &c[..43],
            &format!("{c}A"),
            &format!("{c}=="),
        ] {
            assert!(list.decode(&k, bad).is_err(), "{bad}");
        }
        // The version-1 format (a bare id) is not accepted any more.
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&[7; 16]);
        assert!(list.decode(&k, &URL_SAFE_NO_PAD.encode(v1)).is_err());
    }

    #[test]
    fn filter_parts_cannot_be_shifted_into_one_another() {
        let k = keys(9);
        let a = List::new("ListAssignments", ws(1))
            .filter("pool_id", None)
            .filter("account_name", Some(b"ab"));
        let b = List::new("ListAssignments", ws(1))
            .filter("pool_id", Some(b"a"))
            .filter("account_name", Some(b"b"));
        let c = a.encode(&k, Some([1; 16])).unwrap();
        assert!(b.decode(&k, &c).is_err());
    }
}
