//! What the example clients share: their command line. Positional
//! arguments, plus the client's token from `--token` (`CRYPTO_CLIENT_TOKEN`)
//! or `--token-file` (`CRYPTO_CLIENT_TOKEN_FILE`); a cluster-mode operator
//! requires one (the Secret named by the CryptoClient's
//! `spec.auth.tokenSecretRef`).

use crypto_operator::secret::{SecretNames, resolve};
use std::path::PathBuf;

/// The parsed command line.
pub struct Args {
    /// Positional arguments, in order.
    pub positional: Vec<String>,
    /// The bearer token, if any.
    pub token: Option<String>,
}

impl Args {
    /// Parses the process's arguments; exits with a clear message on a
    /// mistake.
    pub fn parse(usage: &str) -> Self {
        match Self::try_parse(std::env::args().skip(1)) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}\nusage: {usage}");
                std::process::exit(2);
            }
        }
    }

    fn try_parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut positional = Vec::new();
        let mut token = std::env::var("CRYPTO_CLIENT_TOKEN").ok();
        let mut token_file = std::env::var_os("CRYPTO_CLIENT_TOKEN_FILE").map(PathBuf::from);
        let mut args = args;
        while let Some(a) = args.next() {
            match a.as_str() {
                "--token" => {
                    token = Some(args.next().ok_or("--token needs a value")?);
                    token_file = None;
                }
                "--token-file" => {
                    token_file = Some(args.next().ok_or("--token-file needs a path")?.into());
                    token = None;
                }
                "-h" | "--help" => return Err("help".into()),
                flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
                _ => positional.push(a),
            }
        }
        let names = SecretNames {
            what: "the client token",
            value: "--token (CRYPTO_CLIENT_TOKEN)",
            file: "--token-file (CRYPTO_CLIENT_TOKEN_FILE)",
        };
        let token =
            resolve(token.as_deref(), token_file.as_deref(), names).map_err(|e| e.to_string())?;
        Ok(Self { positional, token })
    }

    /// The `i`th positional argument, or `default`.
    pub fn get(&self, i: usize, default: &str) -> String {
        self.positional
            .get(i)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }
}
