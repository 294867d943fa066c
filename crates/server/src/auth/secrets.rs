//! Opaque credentials: `<prefix>_<id>_<secret>` strings. The id locates the row, the secret is
//! 256 random bits stored only as its SHA-256 (it is high-entropy, so a slow hash adds nothing),
//! and comparison is constant-time. Operator passwords are the one low-entropy secret and use
//! Argon2id instead.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// A freshly minted credential.
#[derive(Debug, Clone)]
pub struct Minted {
    pub id: String,
    /// The full token to hand out once.
    pub token: String,
    /// What to store.
    pub hash: String,
    /// The secret part alone.
    pub secret: String,
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random number generator failed");
    hex::encode(buf)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Mint a token with the given prefix and id.
pub fn mint(prefix: &str, id: &str) -> Minted {
    let secret = random_hex(32);
    Minted {
        id: id.to_string(),
        token: format!("{prefix}_{id}_{secret}"),
        hash: hash_secret(&secret),
        secret,
    }
}

/// Split `<prefix>_<id>_<secret>` into `(id, secret)` if the prefix matches and the parts are
/// well-formed (a UUID and 64 hex digits). Anything else is not a credential of that kind.
pub fn parse<'a>(prefix: &str, token: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = token.strip_prefix(prefix)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 36 || uuid::Uuid::parse_str(id).is_err() {
        return None;
    }
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((id, secret))
}

/// Constant-time comparison of a presented secret with a stored hash.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    let presented = hash_secret(secret);
    if presented.len() != stored_hash.len() {
        return false;
    }
    presented
        .bytes()
        .zip(stored_hash.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_verify() {
        let id = new_id();
        let m = mint("capt", &id);
        let (pid, secret) = parse("capt", &m.token).unwrap();
        assert_eq!(pid, id);
        assert!(verify_secret(secret, &m.hash));
        assert!(!verify_secret(&"0".repeat(64), &m.hash));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let m = mint("capt", &new_id());
        assert!(parse("caps", &m.token).is_none(), "wrong prefix");
        assert!(
            parse("capt", &m.token[..m.token.len() - 1]).is_none(),
            "short secret"
        );
        assert!(parse("capt", "capt_not-a-uuid_00").is_none());
        assert!(parse("capt", "").is_none());
        let bad = format!("{}g", &m.token[..m.token.len() - 1]);
        assert!(parse("capt", &bad).is_none(), "non-hex secret");
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
