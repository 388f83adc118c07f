//! Property tests ("fuzzing" that runs in CI for a bounded number of cases,
//! `PROPTEST_CASES`, default 256) over the client-message processing path:
//! arbitrary bytes and arbitrary well-formed messages go through decoding
//! and `dispatch` on a real session. Nothing may panic; only the two
//! per-message session rules end the session (another client's id:
//! PERMISSION_DENIED; a second register: FAILED_PRECONDITION); every other
//! message is accepted or dropped, and both are counted; the session's
//! state stays within its bounds. Failing cases are
//! kept in `proptest-regressions/` (checked in) and replayed first; the
//! hand-picked corpus is replayed by `corpus.rs`.

use super::super::{Handled, dispatch};
use super::session;
use crate::proto::{
    ClientMessage, ClientRegistration, ClientStatus, CommandAck, ErrorReport, Heartbeat, LogEntry,
    PriceUpdate, Transaction, WalletUpdate, client_message::Payload,
};
use crate::streaming::{EndReason, Session};
use proptest::prelude::*;
use prost::Message;
use tonic::Code;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,8}", ".{0,200}", Just("fuzz-1".to_string())]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        any::<u64>().prop_map(|sequence| Payload::Heartbeat(Heartbeat { sequence })),
        (text(), any::<bool>(), text()).prop_map(|(command_id, success, message)| {
            Payload::CommandAck(CommandAck {
                command_id,
                success,
                message,
                result: Default::default(),
            })
        }),
        (text(), text(), text()).prop_map(|(wallet_id, asset, balance)| Payload::WalletUpdate(
            WalletUpdate {
                wallet_id,
                chain: "c".into(),
                asset,
                balance,
                block_height: 1
            }
        )),
        (text(), text()).prop_map(|(tx_id, amount)| Payload::Transaction(Transaction {
            tx_id,
            amount,
            ..Default::default()
        })),
        (any::<i32>(), text()).prop_map(|(state, detail)| Payload::Status(ClientStatus {
            state,
            detail,
            config_hash: String::new()
        })),
        (text(), text(), any::<bool>()).prop_map(|(code, message, fatal)| Payload::Error(
            ErrorReport {
                code,
                message,
                fatal
            }
        )),
        (any::<i32>(), text()).prop_map(|(level, message)| Payload::Log(LogEntry {
            level,
            message,
            fields: Default::default()
        })),
        (text(), text()).prop_map(|(symbol, price)| Payload::Price(PriceUpdate {
            symbol,
            price,
            ..Default::default()
        })),
        Just(Payload::Register(ClientRegistration::default())),
    ]
}

fn message() -> impl Strategy<Value = ClientMessage> {
    (
        prop_oneof![Just("fuzz-1".to_string()), text()],
        proptest::option::of(payload()),
    )
        .prop_map(|(client_id, payload)| ClientMessage {
            client_id,
            message_id: String::new(),
            timestamp: None,
            payload,
        })
}

const ALLOWED: [Code; 2] = [Code::PermissionDenied, Code::FailedPrecondition];

fn check(s: &Session, msgs: Vec<ClientMessage>) -> Result<(), TestCaseError> {
    for m in msgs {
        let before = s.state_counters();
        let own_id = m.client_id == "fuzz-1";
        match dispatch(s, m) {
            Ok(handled) => {
                let after = s.state_counters();
                prop_assert_eq!(after.messages_received, before.messages_received + 1);
                let dropped = u64::from(matches!(handled, Handled::Dropped(_)));
                prop_assert_eq!(after.messages_rejected, before.messages_rejected + dropped);
            }
            Err(EndReason::ProtocolViolation(code, msg)) => {
                prop_assert!(
                    ALLOWED.contains(&code),
                    "unexpected code {:?}: {}",
                    code,
                    msg
                );
                prop_assert!(!msg.is_empty());
                if !own_id {
                    prop_assert_eq!(code, Code::PermissionDenied);
                }
                return Ok(());
            }
            Err(other) => prop_assert!(false, "unexpected end reason {:?}", other),
        }
        prop_assert!(s.snapshot_wallet_count() <= 4, "wallets bounded");
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_message_path(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (s, _rx) = session();
        if let Ok(m) = ClientMessage::decode(bytes.as_slice()) {
            check(&s, vec![m])?;
        }
    }

    #[test]
    fn arbitrary_message_sequences_are_handled_or_refused_precisely(msgs in proptest::collection::vec(message(), 1..40)) {
        let (s, _rx) = session();
        check(&s, msgs)?;
    }
}
