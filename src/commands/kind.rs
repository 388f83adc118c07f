//! The kind of a server command, used as the `type` label of metrics and in
//! events, with no allocation.

use crate::proto::server_command::Command;

/// The kind of a server command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// `registered`
    Registered,
    /// `ping`
    Ping,
    /// `pause`
    Pause,
    /// `resume`
    Resume,
    /// `sync_wallets`
    SyncWallets,
    /// `update_config`
    UpdateConfig,
    /// `disconnect`
    Disconnect,
}

impl CommandKind {
    /// Every kind, in label order.
    pub const ALL: [CommandKind; 7] = [
        CommandKind::Registered,
        CommandKind::Ping,
        CommandKind::Pause,
        CommandKind::Resume,
        CommandKind::SyncWallets,
        CommandKind::UpdateConfig,
        CommandKind::Disconnect,
    ];

    /// The kind of a command.
    pub fn of(c: &Command) -> Self {
        match c {
            Command::Registered(_) => Self::Registered,
            Command::Ping(_) => Self::Ping,
            Command::Pause(_) => Self::Pause,
            Command::Resume(_) => Self::Resume,
            Command::SyncWallets(_) => Self::SyncWallets,
            Command::UpdateConfig(_) => Self::UpdateConfig,
            Command::Disconnect(_) => Self::Disconnect,
        }
    }

    /// The wire name (the oneof field name), used as the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Ping => "ping",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::SyncWallets => "sync_wallets",
            Self::UpdateConfig => "update_config",
            Self::Disconnect => "disconnect",
        }
    }

    /// Position in [`CommandKind::ALL`] (index into pre-resolved metrics).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the client must answer this command with an ack.
    pub fn expects_ack(self) -> bool {
        !matches!(self, Self::Registered | Self::Disconnect)
    }
}

impl std::fmt::Display for CommandKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
