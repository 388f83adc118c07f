//! `command_ack`: matches the ack against this session's own pending
//! commands only, so a client can never ack another client's command.

use crate::commands::CommandKind;
use crate::proto::CommandAck;
use crate::streaming::{AckOutcome, EndReason, Session};
use std::sync::Arc;
use tonic::Code;
use tracing::{debug, info};

/// Handles an ack. An id this session never sent ends the session with
/// INVALID_ARGUMENT; an ack that arrives after its command timed out is
/// logged and ignored.
pub(crate) fn handle(session: &Session, ack: &CommandAck) -> Result<(), EndReason> {
    let taken = session.pending().take(&ack.command_id);
    let Some((id, p)) = taken else {
        if session.pending().timed_out_recently(&ack.command_id) {
            debug!(command_id = %ack.command_id, "late ack after timeout ignored");
            return Ok(());
        }
        return Err(EndReason::ProtocolViolation(
            Code::InvalidArgument,
            format!(
                "command_ack for command_id {:?}, which this session did not send or already acked",
                ack.command_id
            ),
        ));
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
