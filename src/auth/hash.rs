//! Token hashes: argon2id in PHC string form
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// The PHC hash of `token` with a fresh random salt.
pub fn hash_token(token: &str) -> Result<String, String> {
    // A v4 UUID carries 122 random bits from the OS generator.
    let salt = *uuid::Uuid::new_v4().as_bytes();
    Argon2::default()
        .hash_password_with_salt(token.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// Whether `token` matches the PHC `hash` (constant time inside argon2).
pub fn verify_token(token: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(token.as_bytes(), hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash_token("tok-1").unwrap();
        let b = hash_token("tok-1").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "fresh salt each time");
        assert!(verify_token("tok-1", &a) && verify_token("tok-1", &b));
        assert!(!verify_token("tok-2", &a));
        assert!(!verify_token("tok-1", "not a hash"));
    }
}
