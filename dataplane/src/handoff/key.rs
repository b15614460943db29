//! The cluster key as the dataplane uses it: HMAC-SHA256 tags of handoff
//! datagrams.
//!
//! Same key and same conventions as `shoal-control`'s `key.rs` (the file
//! both processes read is the same), without depending on that crate. This
//! module owns signing and constant-time verification only; reading the
//! file is the binary's job ([`ClusterKey::from_file_contents`] takes its
//! bytes). It never prints the key.

use core::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest accepted cluster key, in bytes (as in `shoal-control`).
pub const MIN_KEY_BYTES: usize = 32;
/// Length of an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// Why bytes could not be used as the cluster key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cluster key is {len} bytes; it needs at least {MIN_KEY_BYTES} (create one with \
     `head -c 32 /dev/urandom > FILE` or `openssl rand -hex 32 > FILE` and copy it to every member)"
)]
pub struct KeyTooShort {
    /// Bytes found.
    pub len: usize,
}

/// The shared cluster key, ready to sign. `Debug` never shows the bytes.
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

    /// A key from the content of a key file, read exactly as `shoal-control`
    /// reads it: **hex** when the trimmed content is 64 or more hex digits
    /// (an even number), otherwise the **raw** bytes as stored.
    pub fn from_file_contents(data: &[u8]) -> Result<ClusterKey, KeyTooShort> {
        let trimmed = data.trim_ascii();
        if trimmed.len() >= 2 * MIN_KEY_BYTES
            && trimmed.len() & 1 == 0
            && trimmed.iter().all(u8::is_ascii_hexdigit)
        {
            let bytes: Vec<u8> = trimmed
                .chunks(2)
                .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1]))
                .collect();
            ClusterKey::from_bytes(&bytes)
        } else {
            ClusterKey::from_bytes(data)
        }
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

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_known_answer_matches_control() {
        // The same known answer as shoal-control's key.rs (openssl dgst
        // -sha256 -mac HMAC -macopt hexkey:0b..0b over "Hi There").
        let key = ClusterKey::from_bytes(&[0x0b; 32]).unwrap_or_else(|e| panic!("{e}"));
        let tag = key.sign(b"Hi There");
        assert_eq!(
            tag,
            [
                0x19, 0x8a, 0x60, 0x7e, 0xb4, 0x4b, 0xfb, 0xc6, 0x99, 0x03, 0xa0, 0xf1, 0xcf, 0x2b,
                0xbd, 0xc5, 0xba, 0x0a, 0xa3, 0xf3, 0xd9, 0xae, 0x3c, 0x1c, 0x7a, 0x3b, 0x16, 0x96,
                0xa0, 0xb6, 0x8c, 0xf7,
            ]
        );
        assert!(key.verify(b"Hi There", &tag));
        assert!(!key.verify(b"Hi there", &tag));
        assert!(!key.verify(b"Hi There", &tag[..31]));
        assert_eq!(format!("{key:?}"), "ClusterKey(32 bytes)");
    }

    #[test]
    fn file_contents_hex_or_raw() {
        let hex = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0B\n";
        let from_hex =
            ClusterKey::from_file_contents(hex.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let raw = ClusterKey::from_bytes(&[0x0b; 32]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_hex.sign(b"x"), raw.sign(b"x"));
        assert_eq!(
            ClusterKey::from_file_contents(b"short\n").map(|_| ()),
            Err(KeyTooShort { len: 6 })
        );
        assert!(KeyTooShort { len: 6 }
            .to_string()
            .contains("needs at least 32"));
    }
}
