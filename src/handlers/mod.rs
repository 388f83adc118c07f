//! Handlers: one small function per client message type. Each updates the
//! client's state kept on its session (latest registration, status, wallet
//! balances, counters) and may refuse the message, which ends the session
//! with a precise status. `dispatch` applies the per-message session rules
//! and publishes every handled message on the event bus.

mod ack;
#[cfg(test)]
mod corpus;
#[cfg(test)]
mod fuzz;
mod heartbeat;
mod records;
mod snapshot;
mod state;

pub use snapshot::snapshot;
pub use state::ClientState;

use crate::proto::{ClientMessage, client_message::Payload};
use crate::streaming::{EndReason, EventKind, Session};
use std::sync::Arc;
use tonic::Code;

/// Position of a payload's type in [`PAYLOAD_NAMES`].
pub fn payload_index(p: Option<&Payload>) -> usize {
    match p {
        None => 0,
        Some(Payload::Register(_)) => 1,
        Some(Payload::Heartbeat(_)) => 2,
        Some(Payload::CommandAck(_)) => 3,
        Some(Payload::WalletUpdate(_)) => 4,
        Some(Payload::Transaction(_)) => 5,
        Some(Payload::Status(_)) => 6,
        Some(Payload::Error(_)) => 7,
        Some(Payload::Log(_)) => 8,
        Some(Payload::Price(_)) => 9,
    }
}

/// The oneof name of a payload (the `type` label of message metrics).
pub fn payload_name(p: Option<&Payload>) -> &'static str {
    PAYLOAD_NAMES[payload_index(p)]
}

/// Every payload name, for pre-resolving metrics.
pub const PAYLOAD_NAMES: [&str; 10] = [
    "empty",
    "register",
    "heartbeat",
    "command_ack",
    "wallet_update",
    "transaction",
    "status",
    "error",
    "log",
    "price",
];

fn violation(code: Code, msg: impl Into<String>) -> EndReason {
    EndReason::ProtocolViolation(code, msg.into())
}

/// Handles one message of a registered session; `Err` ends the session.
pub(crate) fn dispatch(session: &Session, mut msg: ClientMessage) -> Result<(), EndReason> {
    session
        .metrics
        .message_received(payload_index(msg.payload.as_ref()));
    if *msg.client_id != *session.client_id {
        return Err(violation(
            Code::PermissionDenied,
            format!(
                "client_id {:?} does not match the registered client_id {:?}",
                msg.client_id, session.client_id
            ),
        ));
    }
    session.state().counters.messages_received += 1;
    if matches!(msg.payload, Some(Payload::Log(_) | Payload::Error(_))) {
        let max = session.state().max_text_bytes;
        if records::truncate_text(&mut msg, max) {
            session.metrics.text_truncated();
        }
    }
    let publish = session.bus.wants_message(msg.payload.as_ref());
    if !publish
        && let Some(Payload::WalletUpdate(w)) = msg
            .payload
            .take_if(|p| matches!(p, Payload::WalletUpdate(_)))
    {
        return records::wallet_update_owned(session, w);
    }
    match &msg.payload {
        None => return Err(violation(Code::InvalidArgument, "message has no payload")),
        Some(Payload::Register(_)) => {
            return Err(violation(
                Code::FailedPrecondition,
                "register is only allowed as the first message of a stream",
            ));
        }
        Some(Payload::Heartbeat(hb)) => heartbeat::handle(session, hb),
        Some(Payload::CommandAck(ack)) => ack::handle(session, ack)?,
        Some(Payload::WalletUpdate(w)) => records::wallet_update(session, w)?,
        Some(Payload::Transaction(t)) => records::transaction(session, t),
        Some(Payload::Status(s)) => records::status(session, s),
        Some(Payload::Error(e)) => records::error(session, e),
        Some(Payload::Log(l)) => records::log(session, l),
        Some(Payload::Price(p)) => records::price(session, p)?,
    }
    if publish {
        session.bus.publish(
            &session.client_id,
            &session.session_id,
            EventKind::Message(Arc::new(msg)),
        );
    }
    Ok(())
}
