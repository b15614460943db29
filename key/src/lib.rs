//! Secrets read from files, shared by both processes: the cluster key (HMAC-SHA256 of every control
//! message) and the admin token (bearer token of mutating admin calls).
//!
//! This module owns the file formats and their checks; it never logs a
//! secret and compares tokens in constant time. It knows nothing about
//! messages or HTTP. `shoal-control` signs its announcements with the
//! cluster key and the dataplane its handoff datagrams: one key, one
//! implementation.

#![forbid(unsafe_code)]
//!
//! Cluster key file format: either **hex** — at least 64 hex digits (32
//! bytes), an even number, surrounding whitespace and a trailing newline
//! ignored (`openssl rand -hex 32 > cluster.key`) — or **raw** bytes, at
//! least 32 of them, used exactly as stored (`head -c 32 /dev/urandom >
//! cluster.key`). A file whose trimmed content is 64 or more hex digits is
//! read as hex; anything else as raw bytes. Copy the same file to every
//! member.
//!
//! Admin token file format: one line of at least 16 printable ASCII
//! characters (no spaces); surrounding whitespace is ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest accepted cluster key, in bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// The shortest accepted admin token, in characters.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("{}: cannot read the {what}: {source}", .path.display())]
    Io {
        /// Which secret (`cluster key`, `admin token`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The cluster key is shorter than [`MIN_KEY_BYTES`].
    #[error(
        "{}: the cluster key is {len} bytes; it needs at least {MIN_KEY_BYTES} \
         (create one with `head -c 32 /dev/urandom > FILE` or `openssl rand -hex 32 > FILE` \
         and copy it to every member)",
        .path.display()
    )]
    KeyTooShort {
        /// The file.
        path: PathBuf,
        /// Bytes found.
        len: usize,
    },
    /// The admin token is too short or has characters a header cannot carry.
    #[error(
        "{}: the admin token must be one line of at least {MIN_TOKEN_CHARS} printable ASCII \
         characters without spaces (create one with `openssl rand -hex 24 > FILE`)",
        .path.display()
    )]
    BadToken {
        /// The file.
        path: PathBuf,
    },
}

/// Why bytes could not be used as the cluster key (no file involved; see
/// [`KeyError::KeyTooShort`] for the file's version of this error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cluster key is {len} bytes; it needs at least {MIN_KEY_BYTES} (create one with \
     `head -c 32 /dev/urandom > FILE` or `openssl rand -hex 32 > FILE` and copy it to every member)"
)]
pub struct KeyTooShort {
    /// Bytes found.
    pub len: usize,
}

/// Length of an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// The shared cluster key, ready to sign: the HMAC state after the key is
/// absorbed is kept, so signing a datagram costs two SHA-256 compressions
/// per block and no key schedule. `Debug` never shows the bytes.
#[derive(Clone)]
pub struct ClusterKey {
    len: usize,
    mac: Hmac<Sha256>,
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterKey({} bytes)", self.len)
    }
}

impl ClusterKey {
    /// A key from its raw bytes; shorter than [`MIN_KEY_BYTES`] is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClusterKey, KeyTooShort> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort { len: bytes.len() });
        }
        // HMAC takes keys of any length; this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes).unwrap_or_else(|_| unreachable!());
        Ok(ClusterKey {
            len: bytes.len(),
            mac,
        })
    }

    /// A key from the content of a key file (hex or raw, see the module
    /// documentation).
    pub fn from_file_contents(data: &[u8]) -> Result<ClusterKey, KeyTooShort> {
        ClusterKey::from_bytes(&parse_key(data))
    }

    /// Reads a key file (hex or raw, see the module documentation).
    pub fn load(path: &Path) -> Result<ClusterKey, KeyError> {
        let data = std::fs::read(path).map_err(|source| KeyError::Io {
            what: "cluster key",
            path: path.to_owned(),
            source,
        })?;
        ClusterKey::from_file_contents(&data).map_err(|KeyTooShort { len }| KeyError::KeyTooShort {
            path: path.to_owned(),
            len,
        })
    }

    /// HMAC-SHA256 of `data` under this key.
    pub fn sign(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the HMAC-SHA256 of `data` (constant-time compare).
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }
}

/// Hex when the trimmed content is 64+ hex digits (an even number), else raw.
fn parse_key(data: &[u8]) -> Vec<u8> {
    let trimmed = data.trim_ascii();
    if trimmed.len() >= 2 * MIN_KEY_BYTES
        && trimmed.len() & 1 == 0
        && trimmed.iter().all(u8::is_ascii_hexdigit)
    {
        trimmed
            .chunks(2)
            .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1]))
            .collect()
    } else {
        data.to_vec()
    }
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// The admin bearer token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// A token from its text; `None` unless it meets the file format rules.
    pub fn new(text: &str) -> Option<AdminToken> {
        let t = text.trim();
        (t.len() >= MIN_TOKEN_CHARS && t.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| AdminToken(t.to_owned()))
    }

    /// Reads a token file.
    pub fn load(path: &Path) -> Result<AdminToken, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            what: "admin token",
            path: path.to_owned(),
            source,
        })?;
        AdminToken::new(&text).ok_or_else(|| KeyError::BadToken {
            path: path.to_owned(),
        })
    }

    /// The token text (for clients that send it).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` equals the token, in time independent of where
    /// they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        let mut diff = u8::from(a.len() != b.len());
        for (i, &x) in a.iter().enumerate() {
            diff |= x ^ b.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_raw_keys() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n";
        let k = parse_key(hex.as_bytes());
        assert_eq!(k.len(), 32);
        assert_eq!(&k[..4], &[0x00, 0x11, 0x22, 0x33]);
        assert_eq!(k[31], 0xff);
        // 32 raw bytes (even if some are hex digits) stay raw.
        let raw: Vec<u8> = (0u8..32).collect();
        assert_eq!(parse_key(&raw), raw);
        // A short hex string is raw text, and too short.
        assert_eq!(parse_key(b"abcd\n"), b"abcd\n".to_vec());
    }

    #[test]
    fn load_rejects_short_keys_with_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, b"short").unwrap();
        let err = ClusterKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::KeyTooShort { len: 5, .. }));
        assert!(err.to_string().contains("needs at least 32"));
        std::fs::write(&path, [7u8; 40]).unwrap();
        let loaded = ClusterKey::load(&path).unwrap();
        assert_eq!(
            loaded.sign(b"x"),
            ClusterKey::from_bytes(&[7; 40]).unwrap().sign(b"x")
        );
        assert_eq!(format!("{loaded:?}"), "ClusterKey(40 bytes)");
        assert_eq!(
            ClusterKey::from_file_contents(b"short\n").map(|_| ()),
            Err(KeyTooShort { len: 6 })
        );
    }

    #[test]
    fn hmac_sha256_known_answer() {
        // Expected tag from `printf 'Hi There' | openssl dgst -sha256 -mac HMAC
        // -macopt hexkey:0b0b...0b` (32 bytes of 0x0b).
        let key = ClusterKey::from_bytes(&[0x0b; 32]).unwrap();
        let tag = key.sign(b"Hi There");
        assert!(key.verify(b"Hi There", &tag));
        assert!(!key.verify(b"Hi there", &tag));
        assert!(!ClusterKey::from_bytes(&[0x0c; 32])
            .unwrap()
            .verify(b"Hi There", &tag));
        assert!(!key.verify(b"Hi There", &tag[..31]));
        let hex = tag.iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
        assert_eq!(
            hex,
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }

    #[test]
    fn hex_file_and_raw_bytes_sign_alike() {
        let hex = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0B\n";
        let from_hex = ClusterKey::from_file_contents(hex.as_bytes()).unwrap();
        let raw = ClusterKey::from_bytes(&[0x0b; 32]).unwrap();
        assert_eq!(from_hex.sign(b"x"), raw.sign(b"x"));
    }

    #[test]
    fn tokens() {
        assert!(AdminToken::new("short").is_none());
        assert!(AdminToken::new("has a space in it ok").is_none());
        let t = AdminToken::new(" 0123456789abcdef\n").unwrap();
        assert_eq!(t.as_str(), "0123456789abcdef");
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcdef0"));
        assert!(!t.matches(""));
    }
}
