//! Random tokens and session ids, and the SHA-256 the store keeps instead of them.

use ring::rand::{SecureRandom, SystemRandom};

/// What a token starts with, so a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "relflow_";

#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed")]
pub struct RandomError;

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| RandomError)?;
    Ok(hex(&buf))
}

/// A new API token (256 random bits).
pub fn new_token() -> Result<String, RandomError> {
    Ok(format!("{TOKEN_PREFIX}{}", random_hex(32)?))
}

/// The SHA-256 of `secret` as hex: what the store keeps of tokens and session ids.
pub fn hash(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex_and_tokens_differ() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert!(same("x1", "x1") && !same("x1", "x2") && !same("x", "xx"));
    }
}
