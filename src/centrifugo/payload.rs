//! Which events go to which Centrifugo channel, and their JSON payloads.
//!
//! | event | `type` | `<prefix>:clients` | `<prefix>:client.<id>` |
//! |---|---|---|---|
//! | session registered | `connected` | yes | yes |
//! | session ended | `disconnected` | yes | yes |
//! | missed heartbeats / heartbeats again | `stale` / `fresh` | yes | yes |
//! | `status` message | `status` | yes | yes |
//! | `error` message | `error` | yes | yes |
//! | `wallet_update` message | `wallet_update` | | yes |
//! | `transaction` message | `transaction` | | yes |
//! | command queued (not `registered` / `disconnect`) | `command_sent` | | yes |
//! | command acked with success | `command_acked` | | yes |
//! | command acked with failure, timed out, or its session ended | `command_failed` | | yes |
//!
//! Heartbeats, logs, prices and the raw acks are not published. A payload
//! is `{"type", "client_id", "session_id", "time"}` plus the message's
//! fields in protobuf's JSON mapping (`crate::proto::json`).

use crate::proto::client_message::Payload;
use crate::proto::json::Timestamp;
use crate::streaming::{AckOutcome, Event, EventKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One message for one channel; `data` is serialized JSON.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The channel.
    pub channel: Arc<str>,
    /// The payload, a JSON object.
    pub data: Arc<str>,
}

/// The channel names.
#[derive(Debug, Clone)]
pub(crate) struct Channels {
    prefix: String,
    fleet: Arc<str>,
}

impl Channels {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            fleet: Arc::from(format!("{prefix}:clients")),
        }
    }

    /// `<prefix>:clients`.
    pub(crate) fn fleet(&self) -> &Arc<str> {
        &self.fleet
    }

    /// `<prefix>:client.<client_id>`.
    pub(crate) fn client(&self, client_id: &str) -> Arc<str> {
        Arc::from(format!("{}:client.{client_id}", self.prefix))
    }
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    client_id: &'a str,
    session_id: &'a str,
    time: Timestamp,
    #[serde(flatten)]
    fields: T,
}

#[derive(Serialize)]
struct NoFields {}

#[derive(Serialize)]
struct Disconnected<'a> {
    reason: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommandSent<'a> {
    command_id: &'a str,
    command_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommandDone<'a> {
    command_id: &'a str,
    command_type: &'static str,
    /// success, failure, timeout, session_ended.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    success: Option<bool>,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<BTreeMap<String, String>>,
}

/// Where an event goes.
enum Audience {
    /// Fleet and client channels.
    Both,
    /// The client's channel only.
    Client,
}

/// The publications of `ev` (none, one or two).
pub(crate) fn publications(ev: &Event, channels: &Channels) -> Vec<Publication> {
    let Some((audience, data)) = render(ev) else {
        return Vec::new();
    };
    let data: Arc<str> = Arc::from(data);
    let client = Publication {
        channel: channels.client(&ev.client_id),
        data: data.clone(),
    };
    match audience {
        Audience::Both => vec![
            Publication {
                channel: channels.fleet().clone(),
                data,
            },
            client,
        ],
        Audience::Client => vec![client],
    }
}

fn render(ev: &Event) -> Option<(Audience, String)> {
    fn json<T: Serialize>(ev: &Event, kind: &'static str, fields: T) -> Option<String> {
        serde_json::to_string(&Envelope {
            kind,
            client_id: &ev.client_id,
            session_id: &ev.session_id,
            time: Timestamp(crate::time::timestamp(ev.at)),
            fields,
        })
        .ok()
    }
    use Audience::{Both, Client};
    Some(match &ev.kind {
        EventKind::Connected(reg) => (
            Both,
            json(
                ev,
                "connected",
                crate::proto::json::ClientRegistration::from(&**reg),
            )?,
        ),
        EventKind::Disconnected(reason) => (
            Both,
            json(
                ev,
                "disconnected",
                Disconnected {
                    reason: reason.label(),
                    message: &reason.to_string(),
                },
            )?,
        ),
        EventKind::Stale => (Both, json(ev, "stale", NoFields {})?),
        EventKind::Fresh => (Both, json(ev, "fresh", NoFields {})?),
        EventKind::Message(msg) => match msg.payload.as_ref()? {
            Payload::Status(s) => (
                Both,
                json(ev, "status", crate::proto::json::ClientStatus::from(s))?,
            ),
            Payload::Error(e) => (
                Both,
                json(ev, "error", crate::proto::json::ErrorReport::from(e))?,
            ),
            Payload::WalletUpdate(w) => (
                Client,
                json(
                    ev,
                    "wallet_update",
                    crate::proto::json::WalletUpdate::from(w),
                )?,
            ),
            Payload::Transaction(t) => (
                Client,
                json(ev, "transaction", crate::proto::json::Transaction::from(t))?,
            ),
            _ => return None,
        },
        // `registered` and `disconnect` are the protocol's own, never acked.
        EventKind::CommandSent { kind, .. } if !kind.expects_ack() => return None,
        EventKind::CommandSent { command_id, kind } => (
            Client,
            json(
                ev,
                "command_sent",
                CommandSent {
                    command_id,
                    command_type: kind.as_str(),
                },
            )?,
        ),
        EventKind::CommandCompleted {
            command_id,
            kind,
            outcome,
        } => {
            let (success, message, result) = match outcome {
                AckOutcome::Acked(a) => (
                    Some(a.success),
                    a.message.clone(),
                    Some(
                        a.result
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                ),
                AckOutcome::TimedOut => (None, "no ack before the deadline".to_owned(), None),
                AckOutcome::SessionEnded(r) => {
                    (None, format!("session ended before the ack: {r}"), None)
                }
            };
            let acked = success == Some(true);
            (
                Client,
                json(
                    ev,
                    if acked {
                        "command_acked"
                    } else {
                        "command_failed"
                    },
                    CommandDone {
                        command_id,
                        command_type: kind.as_str(),
                        outcome: outcome.label(),
                        success,
                        message,
                        result,
                    },
                )?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::CommandKind;
    use crate::proto::{ClientMessage, CommandAck};
    use serde_json::{Value, json};
    use std::time::{Duration, UNIX_EPOCH};

    fn event(kind: EventKind) -> Event {
        Event {
            client_id: Arc::from("w-1"),
            session_id: Arc::from("s-1"),
            at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
            kind,
        }
    }

    fn message(p: Payload) -> EventKind {
        EventKind::Message(Arc::new(ClientMessage {
            client_id: "w-1".into(),
            payload: Some(p),
            ..Default::default()
        }))
    }

    fn rendered(kind: EventKind) -> Vec<(String, Value)> {
        publications(&event(kind), &Channels::new("crypto"))
            .into_iter()
            .map(|p| {
                (
                    p.channel.to_string(),
                    serde_json::from_str(&p.data).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn fleet_events_go_to_both_channels_data_to_the_client_channel() {
        let both = rendered(message(Payload::Status(crate::proto::ClientStatus {
            state: crate::proto::ClientRunState::Paused as i32,
            detail: "by operator".into(),
            config_hash: String::new(),
        })));
        assert_eq!(
            both.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
            ["crypto:clients", "crypto:client.w-1"]
        );
        assert_eq!(
            both[0].1,
            json!({"type": "status", "client_id": "w-1", "session_id": "s-1",
                   "time": "2023-11-14T22:13:20.250Z",
                   "state": "CLIENT_RUN_STATE_PAUSED", "detail": "by operator", "configHash": ""})
        );
        let one = rendered(message(Payload::WalletUpdate(crate::proto::WalletUpdate {
            wallet_id: "main".into(),
            block_height: 7,
            ..Default::default()
        })));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0, "crypto:client.w-1");
        assert_eq!(one[0].1["type"], "wallet_update");
        assert_eq!(one[0].1["walletId"], "main");
        assert_eq!(one[0].1["blockHeight"], "7");
        assert!(rendered(message(Payload::Heartbeat(Default::default()))).is_empty());
    }

    #[test]
    fn command_outcomes_are_acked_or_failed() {
        let ack = |success| {
            rendered(EventKind::CommandCompleted {
                command_id: Arc::from("c-1"),
                kind: CommandKind::SyncWallets,
                outcome: AckOutcome::Acked(Arc::new(CommandAck {
                    command_id: "c-1".into(),
                    success,
                    message: String::new(),
                    result: [("wallets_synced".to_owned(), "2".to_owned())].into(),
                })),
            })
        };
        let ok = &ack(true)[0].1;
        assert_eq!(ok["type"], "command_acked");
        assert_eq!(ok["commandId"], "c-1");
        assert_eq!(ok["commandType"], "sync_wallets");
        assert_eq!(ok["result"]["wallets_synced"], "2");
        assert_eq!(ack(false)[0].1["type"], "command_failed");
        let timeout = rendered(EventKind::CommandCompleted {
            command_id: Arc::from("c-2"),
            kind: CommandKind::Ping,
            outcome: AckOutcome::TimedOut,
        });
        assert_eq!(timeout[0].1["type"], "command_failed");
        assert_eq!(timeout[0].1["outcome"], "timeout");
        assert!(timeout[0].1.get("success").is_none());
        let registered = rendered(EventKind::CommandSent {
            command_id: Arc::from("r"),
            kind: CommandKind::Registered,
        });
        assert!(registered.is_empty(), "protocol commands are not published");
    }
}
