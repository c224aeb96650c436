//! Secret values kept across pause, crash and resume without the store holding them in plain
//! text: each is encrypted (ChaCha20-Poly1305, a random nonce per value, the release and
//! name bound as associated data) with a key kept outside the database, in
//! `<state dir>/secret.key` (32 random bytes, mode 0600, created atomically on first need).
//!
//! Names: `var:NAME` for a release variable, [`PIPELINE_TEXT`] for the pipeline text as
//! written when the stored copy had literal secrets masked.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::db::{Db, params};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use super::{Store, StoreError};

/// The key file's name in the state directory.
pub const KEY_FILE: &str = "secret.key";
/// The name under which the unmasked pipeline text is kept.
pub const PIPELINE_TEXT: &str = "pipeline";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// The name of release variable `name` among a release's secret values.
pub fn variable_entry(name: &str) -> String {
    format!("var:{name}")
}

/// Secret values could not be kept or read back.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or create the secret key {path}: {source}")]
    Key { path: PathBuf, source: io::Error },
    #[error("the secret key {path} is damaged: it holds {len} bytes instead of {KEY_LEN}")]
    KeyDamaged { path: PathBuf, len: usize },
    #[error(
        "secret value `{name}` of release {release} cannot be decrypted with {path}: the key file \
         was replaced or the store was changed"
    )]
    Decrypt {
        release: String,
        name: String,
        path: PathBuf,
    },
    #[error("cannot draw random bytes for a secret: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for SecretError {
    fn from(e: rusqlite::Error) -> Self {
        SecretError::Store(StoreError::from(e))
    }
}

impl From<super::db::DbError> for SecretError {
    fn from(e: super::db::DbError) -> Self {
        SecretError::Store(StoreError::from(e))
    }
}

/// The key that encrypts a state directory's secret values.
pub struct SecretKey {
    key: [u8; KEY_LEN],
    path: PathBuf,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("path", &self.path)
            .finish()
    }
}

fn random<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(bytes)
}

impl SecretKey {
    /// Reads the key of state directory `dir`; `None` when it has none yet.
    pub fn load(dir: &Path) -> Result<Option<SecretKey>, SecretError> {
        let path = dir.join(KEY_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SecretError::Key { path, source }),
        };
        let key =
            <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| SecretError::KeyDamaged {
                path: path.clone(),
                len: bytes.len(),
            })?;
        Ok(Some(SecretKey { key, path }))
    }

    /// Reads the key, creating it first when missing. Two runners creating it at once agree
    /// on one: the key is written whole to a private temporary file, then linked into place,
    /// which fails for the second.
    pub fn load_or_create(dir: &Path) -> Result<SecretKey, SecretError> {
        if let Some(key) = SecretKey::load(dir)? {
            return Ok(key);
        }
        let path = dir.join(KEY_FILE);
        let key_error = |source| SecretError::Key {
            path: path.clone(),
            source,
        };
        let bytes = random::<KEY_LEN>()?;
        let tmp = dir.join(format!(".{KEY_FILE}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            // Whatever the umask: only the owner may read the key.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            match fs::hard_link(&tmp, &path) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            fs::File::open(dir)?.sync_all()
        })();
        let _ = fs::remove_file(&tmp);
        written.map_err(key_error)?;
        SecretKey::load(dir)?.ok_or_else(|| key_error(io::ErrorKind::NotFound.into()))
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.key))
    }

    fn seal(
        &self,
        release: &str,
        name: &str,
        value: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), SecretError> {
        let nonce = random::<NONCE_LEN>()?;
        let aad = format!("{release}\0{name}");
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Random("encryption failed".to_string()))?;
        Ok((nonce.to_vec(), sealed))
    }

    fn open(
        &self,
        release: &str,
        name: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<String, SecretError> {
        let failed = || SecretError::Decrypt {
            release: release.to_string(),
            name: name.to_string(),
            path: self.path.clone(),
        };
        if nonce.len() != NONCE_LEN {
            return Err(failed());
        }
        let aad = format!("{release}\0{name}");
        let plain = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| failed())?;
        String::from_utf8(plain).map_err(|_| failed())
    }
}

/// Plain values to keep for a release, by entry name.
pub type SecretValues = BTreeMap<String, String>;

/// (name, nonce, ciphertext) of each value.
type Sealed<'a> = Vec<(&'a String, Vec<u8>, Vec<u8>)>;

fn seal_all<'a>(
    release: &str,
    values: &'a SecretValues,
    key: &SecretKey,
) -> Result<Sealed<'a>, SecretError> {
    values
        .iter()
        .map(|(name, value)| {
            let (nonce, ciphertext) = key.seal(release, name, value)?;
            Ok((name, nonce, ciphertext))
        })
        .collect()
}

fn write_sealed(conn: &Db, release: &str, sealed: &Sealed<'_>) -> Result<(), StoreError> {
    for (name, nonce, ciphertext) in sealed {
        conn.prepare_cached(
            "INSERT INTO secret_values (release_id, name, nonce, ciphertext)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (release_id, name)
             DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext",
        )?
        .execute(params![release, name, nonce, ciphertext])?;
    }
    Ok(())
}

/// Seals and writes `values` inside the caller's transaction (a new release's).
pub(super) fn insert_sealed(
    conn: &Db,
    release: &str,
    values: &SecretValues,
    key: &SecretKey,
) -> Result<(), SecretError> {
    let sealed = seal_all(release, values, key)?;
    Ok(write_sealed(conn, release, &sealed)?)
}

impl Store {
    /// Encrypts and keeps `values` for `release` (replacing entries of the same name), then
    /// runs `then`, atomically: a kill never leaves a masked variable without its value.
    pub fn with_secrets<T>(
        &self,
        release: &str,
        values: &SecretValues,
        key: &SecretKey,
        then: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, SecretError> {
        let sealed = seal_all(release, values, key)?;
        Ok(self.atomically(|conn| {
            write_sealed(conn, release, &sealed)?;
            then(self)
        })?)
    }

    /// Whether `release` has secret values kept (the key is needed to resume it).
    pub fn has_secrets(&self, release: &str) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM secret_values WHERE release_id = ?1)",
            [release],
            |row| row.get(0),
        )?)
    }

    /// Every secret value kept for `release`, decrypted.
    pub fn secrets(&self, release: &str, key: &SecretKey) -> Result<SecretValues, SecretError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, nonce, ciphertext FROM secret_values WHERE release_id = ?1")
            .map_err(StoreError::from)?;
        let rows = stmt
            .query_map([release], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(StoreError::from)?;
        let mut values = SecretValues::new();
        for row in rows {
            let (name, nonce, sealed) = row.map_err(StoreError::from)?;
            let plain = key.open(release, &name, &nonce, &sealed)?;
            values.insert(name, plain);
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_private_and_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretKey::load_or_create(dir.path()).unwrap();
        let second = SecretKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.key, second.key);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left");
    }

    #[test]
    fn values_round_trip_and_are_bound_to_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load_or_create(dir.path()).unwrap();
        let (nonce, sealed) = key.seal("r-1", "var:token", "Sup3r-S3cret").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("Sup3r"));
        assert_eq!(
            key.open("r-1", "var:token", &nonce, &sealed).unwrap(),
            "Sup3r-S3cret"
        );
        assert!(key.open("r-1", "var:other", &nonce, &sealed).is_err());
        fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(matches!(
            SecretKey::load(dir.path()),
            Err(SecretError::KeyDamaged { len: 5, .. })
        ));
    }
}
