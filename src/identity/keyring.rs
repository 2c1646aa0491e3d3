//! Secret keys and the keyring that rotates them.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rand::RngCore;

/// The fewest secret bytes a [`Key`] accepts.
pub const MIN_SECRET_LEN: usize = 32;
/// The most secret bytes a [`Key`] accepts (a key file larger than this is not a key).
pub const MAX_SECRET_LEN: usize = 1024;

/// Why a key could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret is shorter than [`MIN_SECRET_LEN`].
    #[error("a key needs at least {MIN_SECRET_LEN} bytes of secret, got {0}")]
    TooShort(usize),
    /// The secret is longer than [`MAX_SECRET_LEN`].
    #[error("a key takes at most {MAX_SECRET_LEN} bytes of secret, got {0}")]
    TooLong(usize),
    /// The environment variable is not set (or not Unicode).
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The text is neither hex nor base64.
    #[error("{source_name} is neither hex nor base64")]
    BadEncoding {
        /// Where the text came from (a variable or file name).
        source_name: String,
    },
    /// Reading or creating the key file failed.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// A secret key: at least 32 bytes, never printed.
///
/// Every purpose and mode derives its own sub-key from it with `blake3::derive_key`, so
/// one key can serve the device cookie and the session cookie without either token
/// verifying as the other.
#[derive(Clone)]
pub struct Key {
    secret: Arc<[u8]>,
    id: u32,
}

impl Key {
    /// A key from raw secret bytes; refuses fewer than [`MIN_SECRET_LEN`].
    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::TooShort(secret.len()));
        }
        if secret.len() > MAX_SECRET_LEN {
            return Err(KeyError::TooLong(secret.len()));
        }
        let id_bytes = blake3::derive_key("actix-device 2026-11 key id v1", secret);
        let id = u32::from_be_bytes([id_bytes[0], id_bytes[1], id_bytes[2], id_bytes[3]]);
        Ok(Self {
            secret: Arc::from(secret),
            id,
        })
    }

    /// A fresh random 32-byte key from the operating system's generator.
    #[must_use]
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self::from_secret(&secret).unwrap_or_else(|_| unreachable!("32 bytes is a valid key"))
    }

    /// A key from text: hex (tried first, when every character is a hex digit) or base64
    /// (standard or URL-safe alphabet, padded or not). Surrounding whitespace is ignored.
    pub fn from_text(text: &str, source_name: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bad = || KeyError::BadEncoding {
            source_name: source_name.to_owned(),
        };
        let is_hex = !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
        let secret = if is_hex && text.len() % 2 == 0 {
            hex::decode(text).map_err(|_| bad())?
        } else {
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines
                .iter()
                .find_map(|e| e.decode(text).ok())
                .ok_or_else(bad)?
        };
        Self::from_secret(&secret)
    }

    /// The key in environment variable `var`, as hex or base64 (see [`Key::from_text`]).
    ///
    /// Generate one with `openssl rand -hex 32` or `head -c32 /dev/urandom | base64`.
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let text = std::env::var(var).map_err(|_| KeyError::MissingEnv(var.to_owned()))?;
        Self::from_text(&text, var)
    }

    /// Loads the key kept in `path` (hex text), or, if there is no such file, generates
    /// one and writes it there with mode 0600, creating missing directories. Lets a server
    /// keep its device ids across restarts without any setup.
    ///
    /// Two processes racing to create the file end up with the same key: the file is
    /// created exclusively and the loser reads the winner's.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::File::open(path) {
            Ok(file) => return Self::read_key_file(file, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let key = Self::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                let text = format!("{}\n", hex::encode(&key.secret));
                file.write_all(text.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let file = std::fs::File::open(path).map_err(io)?;
                Self::read_key_file(file, path)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn read_key_file(file: std::fs::File, path: &Path) -> Result<Self, KeyError> {
        let mut text = String::new();
        // Read one byte past the longest plausible key file so an oversized file is an
        // error, not a slow read.
        file.take((MAX_SECRET_LEN * 2 + 64) as u64)
            .read_to_string(&mut text)
            .map_err(|source| KeyError::Io {
                path: path.to_owned(),
                source,
            })?;
        Self::from_text(&text, &path.display().to_string())
    }

    /// A short public identifier of this key (derived from it, not part of it), written
    /// into every token so the keyring knows which key to verify with.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// A 32-byte sub-key for one use, derived with `blake3::derive_key`.
    pub(crate) fn derive(&self, context: &str, purpose: &str) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        hasher.update(&(purpose.len() as u64).to_be_bytes());
        hasher.update(purpose.as_bytes());
        hasher.update(&self.secret);
        *hasher.finalize().as_bytes()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key {{ id: {:08x}, secret: <redacted> }}", self.id)
    }
}

/// The keys a token may be verified with: one primary (mints new tokens) and any number
/// of retired keys (verify only).
///
/// To rotate: make the new key primary and keep the old one as retired for as long as
/// tokens minted under it may come back (the cookie's max-age). A token verified by a
/// retired key is accepted, keeps its device id, and is re-issued under the primary.
#[derive(Clone, Debug)]
pub struct Keyring {
    primary: Key,
    retired: Vec<Key>,
}

impl Keyring {
    /// A keyring with `primary` and no retired keys.
    #[must_use]
    pub fn new(primary: Key) -> Self {
        Self {
            primary,
            retired: Vec::new(),
        }
    }

    /// Adds a verify-only key.
    #[must_use]
    pub fn with_retired(mut self, key: Key) -> Self {
        self.retired.push(key);
        self
    }

    /// The key that mints.
    #[must_use]
    pub fn primary(&self) -> &Key {
        &self.primary
    }

    /// The verify-only keys.
    #[must_use]
    pub fn retired(&self) -> &[Key] {
        &self.retired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused() {
        let err = Key::from_secret(&[7; 31]).unwrap_err();
        assert!(matches!(err, KeyError::TooShort(31)));
        assert!(err.to_string().contains("at least 32 bytes"));
        assert!(Key::from_secret(&[7; 32]).is_ok());
        assert!(Key::from_secret(&[]).is_err());
    }

    #[test]
    fn text_keys_in_hex_and_base64() {
        let hex_key = Key::from_text(&"ab".repeat(32), "HEX").unwrap();
        assert_eq!(&*hex_key.secret, &[0xab; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 40]);
        assert_eq!(&*Key::from_text(&b64, "B64").unwrap().secret, &[9; 40]);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 33]);
        assert_eq!(&*Key::from_text(&url, "URL").unwrap().secret, &[0xfb; 33]);
        assert!(matches!(
            Key::from_text("not a key!", "X"),
            Err(KeyError::BadEncoding { .. })
        ));
        assert!(matches!(
            Key::from_text(&"ab".repeat(8), "X"),
            Err(KeyError::TooShort(8))
        ));
    }

    #[test]
    fn missing_env_var_is_named() {
        let err = Key::from_env("ACTIX_DEVICE_TEST_SURELY_UNSET").unwrap_err();
        assert!(err.to_string().contains("ACTIX_DEVICE_TEST_SURELY_UNSET"));
    }

    #[test]
    fn key_files_are_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/device.key");
        let a = Key::load_or_create(&path).unwrap();
        let b = Key::load_or_create(&path).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.secret, b.secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage!").unwrap();
        assert!(Key::load_or_create(&path).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = Key::from_secret(&[0x41; 32]).unwrap();
        let shown = format!("{key:?} {:?}", Keyring::new(key.clone()));
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("65, 65") && !shown.contains("4141"));
    }
}
