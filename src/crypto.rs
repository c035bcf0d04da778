//! Secrets at rest: the master key, the per-workspace data keys it wraps, and
//! seal/open of secrets with the owning row (and column) as associated data,
//! so a ciphertext copied onto another row fails to open. Also the keyed
//! BLAKE2b hash that is all we keep of an API key.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use orion::hazardous::aead::xchacha20poly1305::{self, Nonce, SecretKey};

use crate::error::{Error, Result};
use crate::ids::WorkspaceId;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const CHECK_PLAINTEXT: &[u8] = b"proxyplane master key check v1";
pub const CHECK_AAD: &[u8] = b"meta:master_check";

fn seal_raw(key: &SecretKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    // 192-bit random nonces from the thread's CSPRNG (ChaCha, seeded and
    // reseeded from the OS): XChaCha's nonce space makes random nonces safe,
    // and a getrandom syscall per secret was a tenth of bulk inserts.
    let mut n = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut n);
    let nonce = Nonce::from_slice(&n).map_err(|_| Error::internal("nonce"))?;
    let mut out = vec![0u8; NONCE_LEN + plaintext.len() + TAG_LEN];
    out[..NONCE_LEN].copy_from_slice(nonce.as_ref());
    // Only lengths far beyond anything we store make sealing fail; if one
    // ever does, the write fails rather than storing a blob that won't open.
    xchacha20poly1305::seal(key, &nonce, plaintext, Some(aad), &mut out[NONCE_LEN..])
        .map_err(|_| Error::internal("sealing failed"))?;
    Ok(out)
}

fn open_raw(key: &SecretKey, blob: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let nonce = Nonce::from_slice(&blob[..NONCE_LEN]).ok()?;
    let mut out = vec![0u8; blob.len() - NONCE_LEN - TAG_LEN];
    xchacha20poly1305::open(key, &nonce, &blob[NONCE_LEN..], Some(aad), &mut out).ok()?;
    Some(out)
}

/// The 32-byte master key. It never leaves memory except in its own file.
pub struct MasterKey {
    key: SecretKey,
    pepper: orion::auth::SecretKey,
    cursor: orion::auth::SecretKey,
}

/// A MAC key derived from the master key for one purpose (`context`): kept
/// with the master key (and backed up with it) without another file, and
/// unrelated to the keys derived for other purposes.
fn derive_mac_key(master: &[u8], context: &[u8]) -> Result<orion::auth::SecretKey, String> {
    let mac_key = orion::auth::SecretKey::from_slice(master).map_err(|_| "bad key".to_string())?;
    let derived =
        orion::auth::authenticate(&mac_key, context).map_err(|_| "bad key".to_string())?;
    orion::auth::SecretKey::from_slice(derived.unprotected_as_bytes())
        .map_err(|_| "bad key".to_string())
}

impl MasterKey {
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let key = SecretKey::from_slice(bytes).map_err(|_| "must be 32 bytes".to_string())?;
        let pepper = derive_mac_key(bytes, b"proxyplane api-key pepper v1")?;
        let cursor = derive_mac_key(bytes, b"proxyplane list-cursor mac v1")?;
        Ok(MasterKey {
            key,
            pepper,
            cursor,
        })
    }

    /// The key of the MACs that bind list cursors to their list (src/cursor.rs).
    pub fn cursor_key(&self) -> &orion::auth::SecretKey {
        &self.cursor
    }

    /// Reads the key from `PROXYPLANE_MASTER_KEY` (base64) or the file; when
    /// neither exists and `create` is set, makes a new one (file mode 0600).
    pub fn load(path: &Path, env: Option<&str>, create: bool) -> Result<Self, String> {
        if let Some(v) = env {
            let bytes = STANDARD
                .decode(v.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or(
                    "PROXYPLANE_MASTER_KEY must be 32 bytes in standard base64 (44 characters)",
                )?;
            return Self::from_bytes(&bytes);
        }
        refuse_loose_permissions(path)?;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = STANDARD
                    .decode(text.trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        format!(
                            "master key file {} must hold 32 bytes in standard base64",
                            path.display()
                        )
                    })?;
                Self::from_bytes(&bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut bytes = [0u8; 32];
                orion::util::secure_rand_bytes(&mut bytes).map_err(|_| "no randomness")?;
                write_private(path, format!("{}\n", STANDARD.encode(bytes)).as_bytes())
                    .map_err(|e| format!("cannot create master key file {}: {e}", path.display()))?;
                Self::from_bytes(&bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "master key file {} is missing but the database holds data sealed under it; restore the file (or set PROXYPLANE_MASTER_KEY / master_key_file)",
                path.display()
            )),
            Err(e) => Err(format!("cannot read master key file {}: {e}", path.display())),
        }
    }

    pub fn check_value(&self) -> Result<Vec<u8>> {
        seal_raw(&self.key, CHECK_PLAINTEXT, CHECK_AAD)
    }

    pub fn verifies(&self, check: &[u8]) -> bool {
        open_raw(&self.key, check, CHECK_AAD).as_deref() == Some(CHECK_PLAINTEXT)
    }

    /// The keyed BLAKE2b-256 hash that is all we store of an API key.
    pub fn hash_api_key(&self, secret: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(tag) = orion::auth::authenticate(&self.pepper, secret.as_bytes()) {
            out.copy_from_slice(tag.unprotected_as_bytes());
        }
        out
    }
}

/// Refuses a master key file that group or others may read or write: the
/// key opens every sealed secret, so a copy readable by another account is a
/// leak waiting to happen. A missing file is left to the caller.
fn refuse_loose_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "master key file {} is open to group or others (mode {mode:03o}); run `chmod 600 {}` (or give the key in PROXYPLANE_MASTER_KEY)",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn data_key_aad(ws: WorkspaceId, version: u32) -> Vec<u8> {
    let mut aad = b"datakey:".to_vec();
    aad.extend_from_slice(&ws.0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn secret_aad(row_id: &[u8; 16], column: &str) -> Vec<u8> {
    let mut aad = row_id.to_vec();
    aad.push(b':');
    aad.extend_from_slice(column.as_bytes());
    aad
}

/// The master key plus a cache of unwrapped data keys.
pub struct Keyring {
    master: MasterKey,
    cache: Mutex<HashMap<(WorkspaceId, u32), Arc<SecretKey>>>,
}

impl Keyring {
    pub fn new(master: MasterKey) -> Self {
        Keyring {
            master,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// A fresh data key for (workspace, version): the key and its wrapped
    /// form. Not cached: the transaction that stores it may still roll back.
    pub fn new_data_key(&self, ws: WorkspaceId, version: u32) -> Result<(Vec<u8>, SecretKey)> {
        let key = SecretKey::generate();
        let wrapped = seal_raw(
            &self.master.key,
            key.unprotected_as_bytes(),
            &data_key_aad(ws, version),
        )?;
        Ok((wrapped, key))
    }

    /// The data key of (workspace, version); `load` fetches the wrapped bytes
    /// when the key is not cached yet.
    pub fn data_key(
        &self,
        ws: WorkspaceId,
        version: u32,
        load: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Arc<SecretKey>> {
        if let Some(k) = self.lock().get(&(ws, version)) {
            return Ok(k.clone());
        }
        let wrapped = load()?;
        let raw = open_raw(&self.master.key, &wrapped, &data_key_aad(ws, version))
            .ok_or_else(|| Error::internal(format!("data key {ws} v{version} does not open")))?;
        let key = Arc::new(
            SecretKey::from_slice(&raw)
                .map_err(|_| Error::internal("data key has a bad length"))?,
        );
        self.lock().insert((ws, version), key.clone());
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(WorkspaceId, u32), Arc<SecretKey>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the cached keys of a workspace older than `version` (after a
    /// key rotation deleted them), so old key material leaves memory too.
    pub fn forget_before(&self, ws: WorkspaceId, version: u32) {
        self.lock().retain(|(w, v), _| *w != ws || *v >= version);
    }

    /// Forgets the cached keys of a workspace (after it is deleted).
    pub fn forget(&self, ws: WorkspaceId) {
        self.lock().retain(|(w, _), _| *w != ws);
    }
}

/// Seals a secret of a row under a data key: `version (4 bytes BE) || nonce || ciphertext+tag`.
pub fn seal_secret(
    key: &SecretKey,
    version: u32,
    row_id: &[u8; 16],
    column: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut out = version.to_be_bytes().to_vec();
    out.extend(seal_raw(key, plaintext, &secret_aad(row_id, column))?);
    Ok(out)
}

/// The data key version a sealed secret names.
pub fn sealed_version(blob: &[u8]) -> Result<u32> {
    blob.get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| Error::internal("sealed secret too short"))
}

pub fn open_secret(
    key: &SecretKey,
    row_id: &[u8; 16],
    column: &str,
    blob: &[u8],
) -> Result<Vec<u8>> {
    open_raw(
        key,
        blob.get(4..).unwrap_or_default(),
        &secret_aad(row_id, column),
    )
    .ok_or_else(|| Error::internal(format!("sealed {column} of a row does not open")))
}

/// A new API key secret: `pp_` and 43 characters of URL-safe base64 (32 random bytes).
pub fn new_api_key_secret() -> String {
    let mut bytes = [0u8; 32];
    // The OS randomness source does not fail on the platforms we support; a
    // zero key would be refused below anyway.
    orion::util::secure_rand_bytes(&mut bytes).ok();
    assert!(bytes.iter().any(|b| *b != 0), "no randomness available");
    format!(
        "pp_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_bytes(&[9u8; 32]).unwrap()
    }

    #[test]
    fn a_secret_sealed_for_one_row_does_not_open_on_another() {
        let k = SecretKey::generate();
        let blob = seal_secret(&k, 1, &[1; 16], "password", b"s3cr3t").unwrap();
        assert_eq!(
            open_secret(&k, &[1; 16], "password", &blob).unwrap(),
            b"s3cr3t"
        );
        assert!(open_secret(&k, &[2; 16], "password", &blob).is_err());
        assert!(open_secret(&k, &[1; 16], "credentials", &blob).is_err());
        assert_eq!(sealed_version(&blob).unwrap(), 1);
    }

    #[test]
    fn master_check_fails_under_another_key() {
        let check = master().check_value().unwrap();
        assert!(master().verifies(&check));
        assert!(!MasterKey::from_bytes(&[8u8; 32]).unwrap().verifies(&check));
    }

    #[test]
    fn api_key_hash_is_keyed() {
        let a = master().hash_api_key("pp_x");
        assert_eq!(a, master().hash_api_key("pp_x"));
        assert_ne!(
            a,
            MasterKey::from_bytes(&[8u8; 32])
                .unwrap()
                .hash_api_key("pp_x")
        );
        assert!(new_api_key_secret().starts_with("pp_"));
        assert_eq!(new_api_key_secret().len(), 46);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn derived_keys_are_keyed_blake2b_of_their_context() {
        // Known answers from Python's hashlib.blake2b(context, key=master,
        // digest_size=32): the API-key pepper must never change (stored
        // hashes depend on it), and the cursor key is a different key.
        let m = master();
        assert_eq!(
            hex(&m.hash_api_key("pp_x")),
            "30f7506a4c5d8a9d89f0334763c656c6bb7d18e0b0beb490136f2ce64b530f0e"
        );
        assert_eq!(
            hex(m.cursor_key().unprotected_as_bytes()),
            "e96f39ee9f9e53396374effa53f61d7428a979780a40a935ba2927a507cfe167"
        );
    }
}
