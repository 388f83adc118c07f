//! "Which clients do I hold?" — the one question of a fleet of active
//! replicas. A replica holds a client while the client's session is in its
//! registry; `status.holder` records it for the others, and every status
//! write asserts it (`fence.rs`). A replica commands and writes only the
//! resources it holds, plus the one last write of a session it held that
//! ended here (`Released`).

use super::membership::Membership;
use crate::crd::{CryptoClient, Holder};
use crate::streaming::{Session, StreamingHandle};
use std::sync::Arc;
use std::time::SystemTime;

/// This replica's part in a resource.
pub(crate) enum Hold {
    /// It holds the client's session: it commands the client and writes
    /// the status, claiming the resource when `status.holder` names
    /// someone else (or no one).
    Session(Arc<Session>),
    /// Another live replica claimed the client for a newer session: the
    /// local one must end.
    Superseded(Holder),
    /// It held the client and the session ended here: it writes the
    /// Disconnected status and releases the claim.
    Released(Holder),
    /// Not this replica's to command or write.
    Elsewhere,
}

/// The session of `client_id` if this replica holds it.
pub(crate) fn held_session(handle: &StreamingHandle, client_id: &str) -> Option<Arc<Session>> {
    handle.session(client_id)
}

/// The holder this replica writes for `session`.
pub(crate) fn holder_of(m: &Membership, session: &Session) -> Holder {
    Holder {
        replica: m.me().to_owned(),
        session_id: session.session_id.to_string(),
        since: super::status::time_precise(session.connected_at),
    }
}

/// Whether `recorded` (another replica's claim) is newer than a session
/// that registered at `connected_at`: the newer session wins; a tie goes
/// to the larger replica id, so both replicas agree.
pub(crate) fn newer_than(recorded: &Holder, me: &str, connected_at: SystemTime) -> bool {
    let theirs = SystemTime::from(recorded.since.0);
    theirs > connected_at || (theirs == connected_at && recorded.replica.as_str() > me)
}

/// This replica's part in `obj`.
pub(crate) fn hold(handle: &StreamingHandle, m: &Membership, obj: &CryptoClient) -> Hold {
    let recorded = obj.status.as_ref().and_then(|s| s.holder.clone());
    match (held_session(handle, obj.client_id()), recorded) {
        (Some(_), Some(h))
            if h.replica != m.me()
                && m.is_live(&h.replica)
                && newer_than(&h, m.me(), handle_since(handle, obj)) =>
        {
            Hold::Superseded(h)
        }
        (Some(s), _) => Hold::Session(s),
        (None, Some(h)) if h.replica == m.me() => Hold::Released(h),
        (None, _) => Hold::Elsewhere,
    }
}

fn handle_since(handle: &StreamingHandle, obj: &CryptoClient) -> SystemTime {
    held_session(handle, obj.client_id()).map_or(SystemTime::UNIX_EPOCH, |s| s.connected_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn h(replica: &str, at: SystemTime) -> Holder {
        Holder {
            replica: replica.into(),
            session_id: "s".into(),
            since: super::super::status::time_precise(at),
        }
    }

    #[test]
    fn the_newer_session_wins_and_ties_go_to_the_larger_id() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = t + Duration::from_millis(5);
        assert!(newer_than(&h("b", later), "a", t));
        assert!(!newer_than(&h("b", t), "a", later));
        assert!(newer_than(&h("b", t), "a", t));
        assert!(!newer_than(&h("a", t), "b", t));
    }
}
