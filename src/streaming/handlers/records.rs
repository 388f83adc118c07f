//! Data messages: `wallet_update`, `transaction`, `status`, `error`, `log`
//! and `price`, already checked by `validate`. Each keeps what the
//! snapshot shows and counts it.

use super::ClientState;
use crate::proto::{
    ClientMessage, ClientStatus, ErrorReport, LogEntry, LogLevel, Transaction, WalletUpdate,
};
use crate::streaming::Session;
use tracing::{debug, error, info, warn};

/// Cuts the text of a `log`, an `error` or a `status` detail longer than
/// `max` bytes (at a character boundary) and flags it: the text ends with
/// "[truncated N bytes]" and a log gets the field `truncated=true`.
/// Returns whether it cut.
pub(crate) fn truncate_text(msg: &mut ClientMessage, max: usize) -> bool {
    use crate::proto::client_message::Payload;
    let (text, fields) = match &mut msg.payload {
        Some(Payload::Log(l)) => (&mut l.message, Some(&mut l.fields)),
        Some(Payload::Error(e)) => (&mut e.message, None),
        Some(Payload::Status(s)) => (&mut s.detail, None),
        _ => return false,
    };
    if text.len() <= max {
        return false;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!(" [truncated {dropped} bytes]"));
    if let Some(f) = fields {
        f.insert("truncated".into(), "true".into());
    }
    true
}

/// Keeps the latest balance per (wallet, asset), up to the wallet limit,
/// for an update the event bus also needs (a copy is kept).
pub(crate) fn wallet_update(session: &Session, w: &WalletUpdate) {
    wallet_update_owned(&mut session.state(), w.clone());
}

/// Keeps the latest balance per (wallet, asset), up to the wallet limit,
/// in the session's locked state: the update is moved in (allocates only
/// the key of a wallet seen first).
pub(crate) fn wallet_update_owned(st: &mut ClientState, mut w: WalletUpdate) {
    st.counters.wallet_updates += 1;
    let key = (
        std::mem::take(&mut w.wallet_id),
        std::mem::take(&mut w.asset),
    );
    if let Some(slot) = st.wallets.get_mut(&key) {
        (w.wallet_id, w.asset) = key;
        *slot = w;
    } else if st.wallets.len() < st.max_wallets {
        (w.wallet_id, w.asset) = key.clone();
        st.wallets.insert(key, w);
    } else {
        st.counters.wallets_dropped += 1;
        debug!(wallet_id = %key.0, "wallet limit reached; balance not kept");
    }
}

/// Counts a transaction (it reaches subscribers through the event bus).
pub(crate) fn transaction(session: &Session, t: &Transaction) {
    session.state().counters.transactions += 1;
    debug!(tx_id = %t.tx_id, wallet_id = %t.wallet_id, "transaction");
}

/// Keeps the latest status.
pub(crate) fn status(session: &Session, s: &ClientStatus) {
    session.state().status = Some(s.clone());
}

/// Logs and counts an error report.
pub(crate) fn error(session: &Session, e: &ErrorReport) {
    session.state().counters.errors += 1;
    if e.fatal {
        error!(code = %e.code, message = %e.message, "client reported a fatal error");
    } else {
        warn!(code = %e.code, message = %e.message, "client reported an error");
    }
}

/// Re-emits a client log line at its level and counts it.
pub(crate) fn log(session: &Session, l: &LogEntry) {
    session.state().counters.logs += 1;
    match LogLevel::try_from(l.level).unwrap_or(LogLevel::Unspecified) {
        LogLevel::Error => error!(client_log = %l.message, "client log"),
        LogLevel::Warn => warn!(client_log = %l.message, "client log"),
        LogLevel::Debug => debug!(client_log = %l.message, "client log"),
        _ => info!(client_log = %l.message, "client log"),
    }
}

/// Counts a price (the market takes it from the event bus; the client
/// type was checked by `validate`).
pub(crate) fn price(session: &Session) {
    session.state().counters.prices += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::client_message::Payload;

    #[test]
    fn long_texts_are_cut_at_a_char_boundary_and_flagged() {
        let mut msg = ClientMessage {
            payload: Some(Payload::Log(LogEntry {
                level: 2,
                message: "é".repeat(10),
                fields: Default::default(),
            })),
            ..Default::default()
        };
        assert!(truncate_text(&mut msg, 5));
        let Some(Payload::Log(l)) = &msg.payload else {
            unreachable!()
        };
        assert_eq!(l.message, "éé [truncated 16 bytes]");
        assert_eq!(l.fields.get("truncated").map(String::as_str), Some("true"));
        let mut short = ClientMessage {
            payload: Some(Payload::Error(ErrorReport {
                code: "x".into(),
                message: "ok".into(),
                fatal: false,
            })),
            ..Default::default()
        };
        assert!(!truncate_text(&mut short, 5));
    }
}
