//! Keyed hashes of raw values: HMAC-SHA256 under a per-installation secret key, truncated to
//! 128 bits. Beside `mask`, this is the other place a raw value turns into something that may
//! leave the agent: the same card number hashes the same on one node (so repeats correlate),
//! while without the key the hash tells nothing about the value (no dictionary of 10^16 card
//! numbers can be tried against it).
//!
//! The key is 32 random bytes in `STATE_DIR/analytics.key`, created 0600 on first start.
use std::{
    fmt,
    io::{Read as _, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use ring::{hmac, rand::SecureRandom as _};

/// Name of the key file inside the state directory.
pub const KEY_FILE: &str = "analytics.key";
const KEY_LEN: usize = 32;

/// A keyed hash of a raw value (128 bits of HMAC-SHA256). Printed as 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ValueHash(pub [u8; 16]);

impl fmt::Display for ValueHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The per-installation key.
#[derive(Clone)]
pub struct Keyer {
    key: hmac::Key,
}

impl fmt::Debug for Keyer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyer([secret])")
    }
}

/// The key file cannot be read or created. Names the file, never shows key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("analytics key {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("analytics key {path}: {problem}")]
    Invalid { path: std::path::PathBuf, problem: &'static str },
}

impl Keyer {
    /// A key for this process only (no state directory): hashes correlate within one run.
    #[must_use]
    pub fn ephemeral() -> Keyer {
        let mut bytes = [0u8; KEY_LEN];
        if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
            // getrandom failing is a broken host; fall back to the time and pid rather than
            // refusing to detect anything (these hashes only live as long as the process).
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            bytes[..16].copy_from_slice(&t.to_le_bytes());
            bytes[16..20].copy_from_slice(&std::process::id().to_le_bytes());
        }
        Keyer::from_bytes(&bytes)
    }

    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Keyer {
        Keyer { key: hmac::Key::new(hmac::HMAC_SHA256, bytes) }
    }

    /// Reads `dir/analytics.key`, or creates it (0600, 32 random bytes) when absent.
    pub fn load_or_create(dir: &Path) -> Result<Keyer, KeyError> {
        let path = dir.join(KEY_FILE);
        let io = |source| KeyError::Io { path: path.clone(), source };
        match std::fs::OpenOptions::new().read(true).open(&path) {
            Ok(mut file) => {
                let mode = file.metadata().map_err(io)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(KeyError::Invalid {
                        path,
                        problem: "readable by others (expected mode 0600)",
                    });
                }
                let mut bytes = Vec::with_capacity(KEY_LEN);
                file.read_to_end(&mut bytes).map_err(io)?;
                if bytes.len() != KEY_LEN {
                    return Err(KeyError::Invalid { path, problem: "not 32 bytes long" });
                }
                Ok(Keyer::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; KEY_LEN];
                ring::rand::SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| KeyError::Invalid { path: path.clone(), problem: "no system randomness" })?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(io)?;
                Ok(Keyer::from_bytes(&bytes))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The keyed hash of `raw`.
    #[must_use]
    pub fn hash(&self, raw: &[u8]) -> ValueHash {
        let tag = hmac::sign(&self.key, raw);
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        ValueHash(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_stable() {
        let a = Keyer::from_bytes(&[1; 32]);
        let b = Keyer::from_bytes(&[2; 32]);
        assert_eq!(a.hash(b"4111111111111111"), a.hash(b"4111111111111111"));
        assert_ne!(a.hash(b"4111111111111111"), b.hash(b"4111111111111111"));
        assert_ne!(a.hash(b"4111111111111111"), a.hash(b"4111111111111112"));
        let text = a.hash(b"x").to_string();
        assert_eq!(text.len(), 32);
        assert!(!format!("{a:?}").contains('1'));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("apisense-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = Keyer::load_or_create(&dir).unwrap();
        let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Keyer::load_or_create(&dir).unwrap();
        assert_eq!(first.hash(b"v"), again.hash(b"v"));
        std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keyer::load_or_create(&dir).unwrap_err().to_string();
        assert!(err.contains("analytics.key") && err.contains("0600"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
