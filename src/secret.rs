//! Secrets (tokens, API keys) given either as a value (a flag or an
//! environment variable) or as a file (a mounted Kubernetes Secret): at
//! most one of the two, surrounding whitespace ignored (Secret files end
//! with a newline), never empty. One helper for every secret the operator,
//! its CLI and the example clients read.

use std::path::{Path, PathBuf};

/// The names a secret is given under, for messages.
#[derive(Debug, Clone, Copy)]
pub struct SecretNames {
    /// What it is ("the admin token").
    pub what: &'static str,
    /// Its value flag and variable ("--admin-token (CRYPTO_ADMIN_TOKEN)").
    pub value: &'static str,
    /// Its file flag and variable.
    pub file: &'static str,
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Both the value and the file were given.
    #[error("give either {value} or {file}, not both")]
    Both {
        /// The value flag.
        value: &'static str,
        /// The file flag.
        file: &'static str,
    },
    /// The file could not be read.
    #[error("{file} {path}: {source}")]
    Read {
        /// The file flag.
        file: &'static str,
        /// The path given.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The secret is empty (or only whitespace).
    #[error("{0} is empty")]
    Empty(&'static str),
}

/// The secret from `value` or from the file at `file` (at most one), or
/// `None` when neither is given.
pub fn resolve(
    value: Option<&str>,
    file: Option<&Path>,
    names: SecretNames,
) -> Result<Option<String>, SecretError> {
    let secret = match (value, file) {
        (Some(_), Some(_)) => {
            return Err(SecretError::Both {
                value: names.value,
                file: names.file,
            });
        }
        (Some(v), None) => v.trim().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|source| SecretError::Read {
                file: names.file,
                path: path.to_owned(),
                source,
            })?
            .trim()
            .to_owned(),
        (None, None) => return Ok(None),
    };
    if secret.is_empty() {
        return Err(SecretError::Empty(names.what));
    }
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: SecretNames = SecretNames {
        what: "the token",
        value: "--token",
        file: "--token-file",
    };

    #[test]
    fn a_value_or_a_trimmed_file_never_both_never_empty() {
        assert_eq!(resolve(None, None, NAMES).unwrap(), None);
        assert_eq!(
            resolve(Some(" t "), None, NAMES).unwrap().as_deref(),
            Some("t")
        );
        let dir = std::env::temp_dir().join(format!("secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(
            resolve(None, Some(&f), NAMES).unwrap().as_deref(),
            Some("s3cret")
        );
        assert!(matches!(
            resolve(Some("t"), Some(&f), NAMES),
            Err(SecretError::Both { .. })
        ));
        std::fs::write(&f, "\n").unwrap();
        let e = resolve(None, Some(&f), NAMES).unwrap_err();
        assert_eq!(e.to_string(), "the token is empty");
        let e = resolve(None, Some(&dir.join("missing")), NAMES).unwrap_err();
        assert!(e.to_string().starts_with("--token-file "), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
