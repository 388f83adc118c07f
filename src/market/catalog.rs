//! The coin catalog: which symbols exist, their names, how many decimals a
//! price may have and whether they are enabled. Loaded once at start-up
//! from YAML (the built-in `coins.yaml`, or `serve --coins FILE`) and never
//! changed while the server runs.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The catalog shipped in the binary.
pub const BUILTIN_YAML: &str = include_str!("coins.yaml");

/// The most digits after the decimal point a catalog may allow.
pub const MAX_DECIMALS: u32 = 18;

/// One coin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoinInfo {
    /// Upper-case symbol.
    pub symbol: String,
    /// Human-readable name.
    pub name: String,
    /// The most digits a price may have after the decimal point.
    pub decimals: u32,
    /// Whether prices are accepted and can be streamed.
    pub enabled: bool,
}

/// Why a catalog could not be loaded. Every variant names its file.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read coin catalog {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a catalog (YAML syntax, unknown or missing fields).
    #[error("coin catalog {origin}{}: {message}", at_line(*line))]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A coin breaks a catalog rule (bad symbol, duplicate, decimals).
    #[error("coin catalog {origin}{}: {message}", at_line(*line))]
    Invalid {
        /// The file.
        origin: String,
        /// 1-based line of the offending coin, when it can be found.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    coins: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    symbol: String,
    name: String,
    decimals: u32,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

/// The catalog, sorted by symbol, with a symbol index.
#[derive(Debug, Clone)]
pub struct Catalog {
    coins: Vec<CoinInfo>,
    index: HashMap<String, usize>,
}

impl Catalog {
    /// The built-in catalog (`src/market/coins.yaml`).
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::parse(BUILTIN_YAML, "<built-in coins.yaml>")
    }

    /// Reads a catalog file.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses catalog YAML; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let file: File = serde_yaml::from_str(text).map_err(|e| CatalogError::Syntax {
            origin: origin.to_owned(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?;
        let invalid = |symbol: &str, nth: usize, message: String| CatalogError::Invalid {
            origin: origin.to_owned(),
            line: line_of_symbol(text, symbol, nth),
            message,
        };
        if file.coins.is_empty() {
            return Err(CatalogError::Invalid {
                origin: origin.to_owned(),
                line: None,
                message: "the catalog has no coins".into(),
            });
        }
        let mut coins: Vec<CoinInfo> = Vec::with_capacity(file.coins.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for e in file.coins {
            let nth = seen.get(&e.symbol).copied().unwrap_or(0);
            if let Err(why) = check_symbol(&e.symbol) {
                return Err(invalid(
                    &e.symbol,
                    nth,
                    format!("symbol {:?} {why}", e.symbol),
                ));
            }
            if nth > 0 {
                return Err(invalid(
                    &e.symbol,
                    nth,
                    format!("symbol {} appears more than once", e.symbol),
                ));
            }
            let name = e.name.trim();
            if name.is_empty() || name.chars().count() > 64 {
                return Err(invalid(
                    &e.symbol,
                    nth,
                    format!("coin {}: name must have 1 to 64 characters", e.symbol),
                ));
            }
            if e.decimals > MAX_DECIMALS {
                return Err(invalid(
                    &e.symbol,
                    nth,
                    format!(
                        "coin {}: decimals {} is more than {MAX_DECIMALS}",
                        e.symbol, e.decimals
                    ),
                ));
            }
            seen.insert(e.symbol.clone(), nth + 1);
            coins.push(CoinInfo {
                symbol: e.symbol,
                name: name.to_owned(),
                decimals: e.decimals,
                enabled: e.enabled,
            });
        }
        coins.sort_unstable_by(|a, b| a.symbol.cmp(&b.symbol));
        let index = coins
            .iter()
            .enumerate()
            .map(|(i, c)| (c.symbol.clone(), i))
            .collect();
        Ok(Self { coins, index })
    }

    /// Every coin, sorted by symbol.
    pub fn coins(&self) -> &[CoinInfo] {
        &self.coins
    }

    /// How many coins there are.
    pub fn len(&self) -> usize {
        self.coins.len()
    }

    /// Whether the catalog is empty (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.coins.is_empty()
    }

    /// The position (in [`Catalog::coins`]) and coin of `symbol`, matched
    /// case-insensitively.
    pub fn find(&self, symbol: &str) -> Option<(usize, &CoinInfo)> {
        let i = match self.index.get(symbol) {
            Some(i) => *i,
            None if symbol.bytes().any(|b| b.is_ascii_lowercase()) => {
                *self.index.get(&symbol.to_ascii_uppercase())?
            }
            None => return None,
        };
        Some((i, &self.coins[i]))
    }
}

/// 1-16 characters of `A-Z 0-9 . _ -`, starting with a letter or digit.
fn check_symbol(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 16 {
        return Err("must have 1 to 16 characters");
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("must start with a letter or digit");
    }
    if s.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("must be upper-case");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err("may only contain A-Z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

/// The 1-based line of the `nth` (from 0) `symbol: <symbol>` entry.
fn line_of_symbol(text: &str, symbol: &str, nth: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let l = line.trim_start().trim_start_matches('-').trim_start();
            l.strip_prefix("symbol:")
                .is_some_and(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == symbol)
        })
        .nth(nth)
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_loads_sorted() {
        let c = Catalog::builtin().unwrap();
        assert!(c.len() >= 10);
        assert!(c.coins().windows(2).all(|w| w[0].symbol < w[1].symbol));
        assert_eq!(c.find("btc").unwrap().1.decimals, 8);
        assert!(!c.find("LUNA").unwrap().1.enabled);
        assert!(c.find("NOPE").is_none());
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dup = "coins:\n  - symbol: A\n    name: a\n    decimals: 2\n  - symbol: A\n    name: b\n    decimals: 2\n";
        let e = Catalog::parse(dup, "x.yaml").unwrap_err().to_string();
        assert!(
            e.contains("x.yaml line 5") && e.contains("more than once"),
            "{e}"
        );

        let lower = "coins:\n  - symbol: btc\n    name: b\n    decimals: 2\n";
        let e = Catalog::parse(lower, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("upper-case"), "{e}");

        let extra = "coins:\n  - symbol: B\n    name: b\n    decimals: 2\n    colour: red\n";
        let e = Catalog::parse(extra, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("x.yaml line") && e.contains("colour"), "{e}");

        let decimals = "coins:\n  - symbol: B\n    name: b\n    decimals: 40\n";
        let e = Catalog::parse(decimals, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("decimals 40"), "{e}");

        let e = Catalog::parse("coins: []\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no coins"), "{e}");
    }
}
