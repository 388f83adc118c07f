//! Handlers: one small function per client message type. Each updates the
//! client's state kept on its session (latest registration, status, wallet
//! balances, counters). `dispatch` applies the per-message session rules
//! (a violation ends the session with a precise status), drops malformed
//! payloads (`validate`: counted and logged; the session goes on) and
//! publishes every handled message on the event bus.

mod ack;
mod heartbeat;
mod records;
pub mod register;
mod snapshot;
mod state;
#[cfg(test)]
mod tests;
mod validate;

pub use snapshot::{snapshot, summary};
pub use state::ClientState;
pub use validate::Reject;

use crate::proto::{ClientMessage, client_message::Payload, client_types};
use crate::streaming::{EndReason, EventKind, Session};
use std::sync::Arc;
use tokio::time::Instant;
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

/// What `dispatch` did with a message the session survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handled {
    /// Applied (and published when someone wants it).
    Accepted,
    /// Dropped, counted and logged.
    Dropped(Reject),
}

/// Handles one message of a registered session. `Err` (a protocol
/// violation: another client's id, a second `register`) ends the session;
/// a malformed payload is dropped, counted and logged, and the session
/// goes on.
pub(crate) fn dispatch(session: &Session, mut msg: ClientMessage) -> Result<Handled, EndReason> {
    let kind = payload_index(msg.payload.as_ref());
    session.metrics.message_received(kind);
    if *msg.client_id != *session.client_id {
        return Err(violation(
            Code::PermissionDenied,
            format!(
                "client_id {:?} does not match the registered client_id {:?}",
                msg.client_id, session.client_id
            ),
        ));
    }
    // One lock for the count, the limit the checks below need and, for
    // the commonest message (a wallet update nobody subscribes to), the
    // update itself; the checks take no lock of their own.
    let mut st = session.state();
    st.counters.messages_received += 1;
    let max = st.max_text_bytes;
    if matches!(msg.payload, Some(Payload::Register(_))) {
        return Err(violation(
            Code::FailedPrecondition,
            "register is only allowed as the first message of a stream",
        ));
    }
    if let Err(why) = check(session, &msg, max) {
        drop(st);
        reject(session, &msg, kind, why);
        return Ok(Handled::Dropped(why));
    }
    if records::truncate_text(&mut msg, max) {
        session.metrics.text_truncated();
    }
    let publish = session.bus.wants_message(msg.payload.as_ref());
    if !publish
        && let Some(Payload::WalletUpdate(w)) = msg
            .payload
            .take_if(|p| matches!(p, Payload::WalletUpdate(_)))
    {
        records::wallet_update_owned(&mut st, w);
        return Ok(Handled::Accepted);
    }
    drop(st);
    match &msg.payload {
        None | Some(Payload::Register(_)) => {}
        Some(Payload::Heartbeat(hb)) => heartbeat::handle(session, hb),
        Some(Payload::CommandAck(ack)) => {
            if let Err(why) = ack::handle(session, ack) {
                reject(session, &msg, kind, why);
                return Ok(Handled::Dropped(why));
            }
        }
        Some(Payload::WalletUpdate(w)) => records::wallet_update(session, w),
        Some(Payload::Transaction(t)) => records::transaction(session, t),
        Some(Payload::Status(s)) => records::status(session, s),
        Some(Payload::Error(e)) => records::error(session, e),
        Some(Payload::Log(l)) => records::log(session, l),
        Some(Payload::Price(_)) => records::price(session),
    }
    if publish {
        session.bus.publish(
            &session.client_id,
            &session.session_id,
            EventKind::Message(Arc::new(msg)),
        );
    }
    Ok(Handled::Accepted)
}

/// The data rule of [`validate`] for the message's payload.
fn check(session: &Session, msg: &ClientMessage, max_text: usize) -> Result<(), Reject> {
    match &msg.payload {
        None => Err(Reject::NoPayload),
        Some(Payload::Register(_) | Payload::Heartbeat(_)) => Ok(()),
        Some(Payload::CommandAck(a)) => validate::ack(a),
        Some(Payload::WalletUpdate(w)) => validate::wallet_update(w),
        Some(Payload::Transaction(t)) => validate::transaction(t),
        Some(Payload::Status(s)) => validate::status(s),
        Some(Payload::Error(e)) => validate::error(e),
        Some(Payload::Log(l)) => validate::log(l, max_text),
        Some(Payload::Price(p)) => {
            if session.registration.client_type != client_types::PRICE_FEED {
                return Err(Reject::NotPriceFeed);
            }
            validate::price(p)
        }
    }
}

/// The longest `message_id` a log line repeats.
const LOGGED_MESSAGE_ID: usize = 128;

/// Drops a message: counted per type and reason and on the session, and
/// logged (a warning at most once per period per session, debug otherwise).
fn reject(session: &Session, msg: &ClientMessage, kind: usize, why: Reject) {
    session.metrics.message_rejected(kind, why.label());
    let warn_now = session.state().count_reject(Instant::now());
    let mut cut = msg.message_id.len().min(LOGGED_MESSAGE_ID);
    while !msg.message_id.is_char_boundary(cut) {
        cut -= 1;
    }
    let message_id = &msg.message_id[..cut];
    let r#type = PAYLOAD_NAMES[kind];
    match warn_now {
        Some(quiet) => tracing::warn!(
            client_id = %session.client_id,
            message_id,
            r#type,
            reason = why.label(),
            detail = %why,
            dropped_quietly = quiet,
            "message dropped; the session goes on"
        ),
        None => tracing::debug!(
            client_id = %session.client_id,
            message_id,
            r#type,
            reason = why.label(),
            detail = %why,
            "message dropped"
        ),
    }
}
