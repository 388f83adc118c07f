//! Request and response bodies of the admin API's own calls. Their JSON
//! field names are snake_case; the protobuf messages they embed
//! (`ack`, snapshots) use protobuf's JSON mapping (`crate::proto::json`).

use super::error::ApiError;

use crate::commands;
use crate::proto::{ServerCommand, json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest `timeout_ms` accepted (5 minutes).
pub const MAX_TIMEOUT_MS: u64 = 300_000;

/// Commands the API sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandType {
    /// Round trip; the ack proves the client is responsive.
    Ping,
    /// Stop working until `resume`.
    Pause,
    /// Resume after `pause`.
    Resume,
    /// Re-read wallet balances (`wallet_ids`, default all).
    SyncWallets,
    /// Replace the client's configuration with `config`.
    UpdateConfig,
}

/// `POST /clients/{id}/commands`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// The command.
    #[serde(rename = "type")]
    pub kind: CommandType,
    /// The new configuration; required for (and only for) `update_config`.
    #[serde(default)]
    pub config: Option<BTreeMap<String, String>>,
    /// Why (only for `pause`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Wallets to sync (only for `sync_wallets`; default all).
    #[serde(default)]
    pub wallet_ids: Option<Vec<String>>,
    /// Wait for the client's ack and answer 200 with it (default: answer
    /// 202 as soon as the command is queued).
    #[serde(default)]
    pub wait: bool,
    /// How long the client has to ack, in milliseconds (default: the
    /// server's `--ack-timeout`). With `wait`, also how long the call
    /// waits.
    #[serde(default)]
    #[schemars(range(min = 1, max = 300_000))]
    pub timeout_ms: Option<u64>,
}

impl CommandRequest {
    /// The command to send and its ack timeout (`None`: the server's).
    pub fn to_command(&self) -> Result<(ServerCommand, Option<Duration>), ApiError> {
        let only = |field: &str, given: bool, kind: &str| {
            if given {
                Err(ApiError::bad_request(format!(
                    "`{field}` is only allowed with type {kind}"
                )))
            } else {
                Ok(())
            }
        };
        if self.kind != CommandType::UpdateConfig {
            only("config", self.config.is_some(), "update_config")?;
        }
        if self.kind != CommandType::Pause {
            only("reason", self.reason.is_some(), "pause")?;
        }
        if self.kind != CommandType::SyncWallets {
            only("wallet_ids", self.wallet_ids.is_some(), "sync_wallets")?;
        }
        let timeout = match self.timeout_ms {
            None => None,
            Some(ms @ 1..=MAX_TIMEOUT_MS) => Some(Duration::from_millis(ms)),
            Some(ms) => {
                return Err(ApiError::bad_request(format!(
                    "timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, not {ms}"
                )));
            }
        };
        let body = match self.kind {
            CommandType::Ping => commands::ping(),
            CommandType::Pause => commands::pause(self.reason.clone().unwrap_or_default()),
            CommandType::Resume => commands::resume(),
            CommandType::SyncWallets => {
                commands::sync_wallets(self.wallet_ids.clone().unwrap_or_default())
            }
            CommandType::UpdateConfig => {
                let config = self.config.as_ref().ok_or_else(|| {
                    ApiError::bad_request(
                        "type update_config needs `config` (an object of strings)",
                    )
                })?;
                commands::update_config(config.clone().into_iter().collect())
            }
        };
        Ok((commands::new(body), timeout))
    }
}

/// One page of `GET /clients`, like a Kubernetes list: the clients and,
/// when more follow, the `continue` token of the next page.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ClientList {
    /// Summaries, sorted by client id.
    pub clients: Vec<json::ClientSummary>,
    /// Pass as `?continue=` for the next page; absent on the last page.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_: Option<String>,
    /// Some replicas did not answer in time; their clients are missing
    /// (absent when every replica answered).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// The replicas that did not answer.
    #[serde(rename = "missingReplicas", skip_serializing_if = "Vec::is_empty")]
    pub missing_replicas: Vec<String>,
}

/// 202: the command is queued; its ack is tracked (and counted) by the
/// server.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CommandAccepted {
    /// The command's id (as in the client's ack, metrics and logs).
    pub command_id: String,
}

/// 200: the client acked the command (`ack.success` says whether it
/// carried it out).
#[derive(Debug, Serialize, JsonSchema)]
pub struct CommandDone {
    /// The command's id.
    pub command_id: String,
    /// The client's ack, in protobuf's JSON mapping.
    pub ack: json::CommandAck,
}

/// What `POST /clients/{id}/commands` answers.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum CommandReply {
    /// Without `wait`.
    Accepted(CommandAccepted),
    /// With `wait`.
    Done(CommandDone),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::server_command::Command;

    fn req(json: serde_json::Value) -> Result<CommandRequest, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn builds_commands_and_refuses_misplaced_fields() {
        use serde_json::json;
        let (cmd, t) =
            req(json!({"type": "update_config", "config": {"a": "1"}, "timeout_ms": 1500}))
                .unwrap()
                .to_command()
                .unwrap();
        assert_eq!(t, Some(Duration::from_millis(1500)));
        let Some(Command::UpdateConfig(u)) = cmd.command else {
            panic!("not update_config")
        };
        assert_eq!(u.config_hash, commands::config_hash(&u.config));
        let (cmd, t) = req(json!({"type": "pause", "reason": "maintenance"}))
            .unwrap()
            .to_command()
            .unwrap();
        assert!(matches!(cmd.command, Some(Command::Pause(p)) if p.reason == "maintenance"));
        assert_eq!(t, None);

        for bad in [
            json!({"type": "ping", "config": {}}),
            json!({"type": "update_config"}),
            json!({"type": "resume", "reason": "x"}),
            json!({"type": "ping", "wallet_ids": []}),
            json!({"type": "ping", "timeout_ms": 0}),
            json!({"type": "ping", "timeout_ms": 300_001}),
        ] {
            let e = req(bad.clone()).unwrap().to_command().unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{bad}");
        }
        assert!(req(json!({"type": "disconnect"})).is_err());
        assert!(req(json!({"type": "ping", "extra": 1})).is_err());
        assert!(req(json!({"config": {}})).is_err());
    }
}
