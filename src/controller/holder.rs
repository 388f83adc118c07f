//! "Which clients do I hold?" — the one question that changes when sessions
//! are sharded across replicas. Today one replica holds every session.

use crate::streaming::{Session, StreamingHandle};
use std::sync::Arc;

/// The session of `client_id` if this replica holds it.
pub(crate) fn held_session(handle: &StreamingHandle, client_id: &str) -> Option<Arc<Session>> {
    handle.session(client_id)
}
