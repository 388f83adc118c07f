//! Builds what the operator calls show of a session: the full `ClientInfo`
//! snapshot (`GetClient`) and the lighter `ClientSummary` of a listing.

use crate::proto::{ClientInfo, ClientRegistration, ClientSummary, SessionState};
use crate::streaming::Session;
use crate::time::{duration, timestamp};

/// The snapshot of one session.
pub fn snapshot(session: &Session) -> ClientInfo {
    let pending = session.pending_count();
    let st = session.state();
    let mut wallets: Vec<_> = st.wallets.values().cloned().collect();
    wallets.sort_unstable_by(|a, b| (&a.wallet_id, &a.asset).cmp(&(&b.wallet_id, &b.asset)));
    ClientInfo {
        client_id: session.client_id.to_string(),
        session_id: session.session_id.to_string(),
        registration: Some(ClientRegistration::clone(&session.registration)),
        state: if session.is_stale() {
            SessionState::Stale
        } else {
            SessionState::Connected
        } as i32,
        connected_at: Some(timestamp(session.connected_at)),
        last_heartbeat: session.last_heartbeat().map(timestamp),
        ping_rtt: session.ping_rtt().map(duration),
        status: st.status.clone(),
        wallets,
        counters: Some(st.counters),
        pending_commands: u32::try_from(pending).unwrap_or(u32::MAX),
    }
}

/// The summary of one session (no wallet list).
pub fn summary(session: &Session) -> ClientSummary {
    let pending = session.pending_count();
    let st = session.state();
    ClientSummary {
        client_id: session.client_id.to_string(),
        session_id: session.session_id.to_string(),
        registration: Some(ClientRegistration::clone(&session.registration)),
        state: if session.is_stale() {
            SessionState::Stale
        } else {
            SessionState::Connected
        } as i32,
        connected_at: Some(timestamp(session.connected_at)),
        last_heartbeat: session.last_heartbeat().map(timestamp),
        ping_rtt: session.ping_rtt().map(duration),
        status: st.status.clone(),
        wallet_count: u32::try_from(st.wallets.len()).unwrap_or(u32::MAX),
        counters: Some(st.counters),
        pending_commands: u32::try_from(pending).unwrap_or(u32::MAX),
    }
}
