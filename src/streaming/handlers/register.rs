//! `register`: the registration's own fields are checked (and the client
//! type normalised) before the session exists; a bad one refuses the
//! stream with INVALID_ARGUMENT naming the field.

use crate::proto::ClientRegistration;
use tonic::Status;

/// Longest `client_type`.
pub const MAX_CLIENT_TYPE: usize = 64;
/// Longest `client_name`.
pub const MAX_CLIENT_NAME: usize = 256;
/// Longest `version`.
pub const MAX_VERSION: usize = 128;
/// Most `capabilities`, and the longest one.
pub const MAX_CAPABILITIES: usize = 64;

/// Checks `reg` and stores its `client_type` lower-case.
pub fn check(reg: &mut ClientRegistration) -> Result<(), Status> {
    let t = &reg.client_type;
    if t.is_empty()
        || t.len() > MAX_CLIENT_TYPE
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Status::invalid_argument(format!(
            "register.client_type must be 1 to {MAX_CLIENT_TYPE} characters of [A-Za-z0-9._-] \
             (well-known: wallet-sync, trading-bot, price-feed), got {:?}",
            truncated(t)
        )));
    }
    reg.client_type.make_ascii_lowercase();
    if reg.client_name.len() > MAX_CLIENT_NAME {
        return Err(Status::invalid_argument(format!(
            "register.client_name is longer than {MAX_CLIENT_NAME} bytes"
        )));
    }
    if reg.version.len() > MAX_VERSION {
        return Err(Status::invalid_argument(format!(
            "register.version is longer than {MAX_VERSION} bytes"
        )));
    }
    if reg.capabilities.len() > MAX_CAPABILITIES
        || reg.capabilities.iter().any(|c| c.len() > MAX_CAPABILITIES)
    {
        return Err(Status::invalid_argument(format!(
            "register.capabilities: at most {MAX_CAPABILITIES} entries of at most {MAX_CAPABILITIES} bytes"
        )));
    }
    Ok(())
}

fn truncated(s: &str) -> &str {
    let mut cut = s.len().min(80);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(t: &str) -> ClientRegistration {
        ClientRegistration {
            client_type: t.into(),
            ..Default::default()
        }
    }

    #[test]
    fn client_types_are_checked_and_lower_cased() {
        let mut r = reg("Wallet-Sync");
        check(&mut r).unwrap();
        assert_eq!(r.client_type, "wallet-sync");
        check(&mut reg("my.custom_type-2")).unwrap();
        check(&mut reg(&"a".repeat(64))).unwrap();
        for bad in ["", "has space", "wallet/sync", "ü", &"a".repeat(65)] {
            let e = check(&mut reg(bad)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
            assert!(
                e.message().contains("register.client_type"),
                "{}",
                e.message()
            );
        }
    }

    #[test]
    fn other_fields_are_bounded() {
        let mut r = reg("x");
        r.client_name = "n".repeat(MAX_CLIENT_NAME + 1);
        assert!(check(&mut r).unwrap_err().message().contains("client_name"));
        let mut r = reg("x");
        r.capabilities = vec!["c".into(); MAX_CAPABILITIES + 1];
        assert!(
            check(&mut r)
                .unwrap_err()
                .message()
                .contains("capabilities")
        );
    }
}
