//! `command_ack`: matches the ack against this session's own pending
//! commands only, so a client can never ack another client's command.

use super::Reject;
use crate::commands::CommandKind;
use crate::proto::CommandAck;
use crate::streaming::{AckOutcome, Session};
use std::sync::Arc;
use tracing::{debug, info};

/// Handles an ack. An ack for an id this session has no pending entry for
/// (never sent, already finished, another client's) or one that arrives
/// after its command timed out changes nothing: it is refused for
/// `dispatch` to drop and count.
pub(crate) fn handle(session: &Session, ack: &CommandAck) -> Result<(), Reject> {
    let taken = session.pending().take(&ack.command_id);
    let Some((id, p)) = taken else {
        if session.pending().timed_out_recently(&ack.command_id) {
            return Err(Reject::LateAck);
        }
        return Err(Reject::UnknownCommand);
    };
    if p.kind == CommandKind::Ping {
        session.record_ping_rtt(p.sent.elapsed());
    }
    if ack.success {
        debug!(command_id = %id, kind = %p.kind, "command acked");
    } else {
        info!(command_id = %id, kind = %p.kind, message = %ack.message, "command failed by the client");
    }
    session.finish(
        id,
        p.kind,
        p.sent,
        p.waiter,
        AckOutcome::Acked(Arc::new(ack.clone())),
    );
    Ok(())
}
