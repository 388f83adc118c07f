//! The content hash of a client configuration: lowercase hex SHA-256 of the
//! entries sorted by key, each written as key, 0x00, value, 0x00. Stable
//! across processes and languages, so clients can verify it.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The content hash of `config`.
pub fn config_hash(config: &HashMap<String, String>) -> String {
    let mut entries: Vec<(&String, &String)> = config.iter().collect();
    entries.sort_unstable();
    let mut h = Sha256::new();
    for (k, v) in entries {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_hashes_to_sha256_of_nothing() {
        assert_eq!(
            config_hash(&HashMap::new()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn order_does_not_matter_and_content_does() {
        let a = HashMap::from([("x".to_string(), "1".to_string()), ("y".into(), "2".into())]);
        let b = HashMap::from([("y".to_string(), "2".to_string()), ("x".into(), "1".into())]);
        let c = HashMap::from([("x".to_string(), "12".to_string())]);
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&c));
        // "x\0 1\0" must differ from "x1\0\0": separators keep fields apart.
        let d = HashMap::from([("x1".to_string(), String::new())]);
        let e = HashMap::from([("x".to_string(), "1".to_string())]);
        assert_ne!(config_hash(&d), config_hash(&e));
    }
}
