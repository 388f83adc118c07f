//! Commands the server sends to clients: their kinds (the `type` label of
//! every command metric), constructors, validation of commands that callers
//! submit, and the configuration content hash.

mod config_hash;
mod kind;

pub use config_hash::config_hash;
pub use kind::CommandKind;

use crate::proto::{self, server_command::Command};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Why a command submitted by a caller was refused before it was sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidCommand {
    /// The request named no command.
    #[error(
        "command is empty: set one of ping, pause, resume, sync_wallets, update_config, disconnect"
    )]
    Empty,
    /// The command is one only the server itself may send.
    #[error("command `{0}` is sent by the server itself and cannot be submitted")]
    ServerOnly(&'static str),
    /// The caller's `command_id` is unusable.
    #[error("command_id must be at most 128 characters of [A-Za-z0-9._:-]")]
    BadId,
    /// The caller's `config_hash` does not match the config it sent.
    #[error(
        "config_hash {given} does not match the config (expected {expected}); leave it empty to have it computed"
    )]
    HashMismatch {
        /// What the caller sent.
        given: String,
        /// What the config hashes to.
        expected: String,
    },
}

/// A fresh, unguessable command id.
pub fn new_command_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether `id` is a usable client or command id: 1..=max characters of
/// `[A-Za-z0-9._:-]`.
pub fn valid_id(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Checks a command submitted through the API, fills in its id, times and
/// config hash, and returns its kind.
pub fn prepare(
    cmd: &mut proto::ServerCommand,
    now: SystemTime,
    lifetime: Duration,
) -> Result<CommandKind, InvalidCommand> {
    let kind = match &mut cmd.command {
        None => return Err(InvalidCommand::Empty),
        Some(Command::Registered(_)) => return Err(InvalidCommand::ServerOnly("registered")),
        Some(Command::UpdateConfig(u)) => {
            let expected = config_hash(&u.config);
            if u.config_hash.is_empty() {
                u.config_hash = expected;
            } else if u.config_hash != expected {
                return Err(InvalidCommand::HashMismatch {
                    given: std::mem::take(&mut u.config_hash),
                    expected,
                });
            }
            CommandKind::UpdateConfig
        }
        Some(c) => CommandKind::of(c),
    };
    if cmd.command_id.is_empty() {
        cmd.command_id = new_command_id();
    } else if !valid_id(&cmd.command_id, 128) {
        return Err(InvalidCommand::BadId);
    }
    stamp(cmd, now, lifetime);
    Ok(kind)
}

/// Sets `issued_at` to now and `expires_at` to now + lifetime.
pub fn stamp(cmd: &mut proto::ServerCommand, now: SystemTime, lifetime: Duration) {
    cmd.issued_at = Some(crate::time::timestamp(now));
    cmd.expires_at = Some(crate::time::timestamp(now + lifetime));
}

/// A command with a fresh id and no times yet.
pub fn new(command: Command) -> proto::ServerCommand {
    proto::ServerCommand {
        command_id: new_command_id(),
        issued_at: None,
        expires_at: None,
        command: Some(command),
    }
}

/// `ping`.
pub fn ping() -> Command {
    Command::Ping(proto::Ping {})
}

/// `pause` with a reason.
pub fn pause(reason: impl Into<String>) -> Command {
    Command::Pause(proto::Pause {
        reason: reason.into(),
    })
}

/// `resume`.
pub fn resume() -> Command {
    Command::Resume(proto::Resume {})
}

/// `sync_wallets` for the given wallets (empty: all).
pub fn sync_wallets(wallet_ids: Vec<String>) -> Command {
    Command::SyncWallets(proto::SyncWallets { wallet_ids })
}

/// `update_config` with its content hash filled in.
pub fn update_config(config: HashMap<String, String>) -> Command {
    let config_hash = config_hash(&config);
    Command::UpdateConfig(proto::UpdateConfig {
        config,
        config_hash,
    })
}

/// `disconnect` with a reason, asking the client to reconnect after
/// `reconnect_after` (zero: at once).
pub fn disconnect(reason: impl Into<String>, reconnect_after: Duration) -> Command {
    Command::Disconnect(proto::Disconnect {
        reason: reason.into(),
        reconnect_after_ms: u32::try_from(reconnect_after.as_millis()).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_fills_id_times_and_hash() {
        let mut cmd = proto::ServerCommand {
            command: Some(Command::UpdateConfig(proto::UpdateConfig {
                config: HashMap::from([("a".into(), "1".into())]),
                config_hash: String::new(),
            })),
            ..Default::default()
        };
        let now = SystemTime::now();
        let kind = prepare(&mut cmd, now, Duration::from_secs(30)).unwrap();
        assert_eq!(kind, CommandKind::UpdateConfig);
        assert!(valid_id(&cmd.command_id, 128));
        let issued = crate::time::system_time(cmd.issued_at.as_ref().unwrap()).unwrap();
        let expires = crate::time::system_time(cmd.expires_at.as_ref().unwrap()).unwrap();
        assert_eq!(
            expires.duration_since(issued).unwrap(),
            Duration::from_secs(30)
        );
        let Some(Command::UpdateConfig(u)) = &cmd.command else {
            panic!("not update_config")
        };
        assert_eq!(u.config_hash, config_hash(&u.config));
    }

    #[test]
    fn prepare_refuses_bad_commands() {
        let now = SystemTime::now();
        let life = Duration::from_secs(1);
        let mut empty = proto::ServerCommand::default();
        assert_eq!(prepare(&mut empty, now, life), Err(InvalidCommand::Empty));
        let mut reg = new(Command::Registered(proto::RegistrationAccepted::default()));
        assert_eq!(
            prepare(&mut reg, now, life),
            Err(InvalidCommand::ServerOnly("registered"))
        );
        let mut bad_id = new(ping());
        bad_id.command_id = "has space".into();
        assert_eq!(prepare(&mut bad_id, now, life), Err(InvalidCommand::BadId));
        let mut bad_hash = new(Command::UpdateConfig(proto::UpdateConfig {
            config: HashMap::new(),
            config_hash: "nope".into(),
        }));
        assert!(matches!(
            prepare(&mut bad_hash, now, life),
            Err(InvalidCommand::HashMismatch { .. })
        ));
    }

    #[test]
    fn ids_are_validated() {
        assert!(valid_id("wallet-1.eu:a_b", 253));
        assert!(!valid_id("", 253));
        assert!(!valid_id("a/b", 253));
        assert!(!valid_id(&"x".repeat(254), 253));
    }
}
