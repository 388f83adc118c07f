//! The checked-in corpus of the client-message fuzz suite
//! (`tests/corpus/client-messages/`): hand-picked and previously
//! interesting inputs, one file per case, each frame a hex-encoded
//! `ClientMessage` (or raw bytes that must not decode) with the outcome
//! recorded when the case was added. Every test run replays the corpus
//! through decoding and `dispatch` on a real session and checks each
//! outcome, so a behaviour change on any of these inputs is a visible
//! diff, not a silent one. `fuzz.rs` explores around them at random.
//!
//! Regenerate after an intended change:
//! `CRYPTO_WRITE_CORPUS=1 cargo test --lib handlers::tests::corpus`.

use super::super::{Handled, dispatch};
use super::session;
use crate::proto::{
    ClientMessage, ClientRegistration, ClientStatus, CommandAck, ErrorReport, Heartbeat, LogEntry,
    PriceUpdate, Transaction, WalletUpdate, client_message::Payload,
};
use crate::streaming::EndReason;
use prost::Message;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/client-messages")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd hex length {}", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("{e} at {i}")))
        .collect()
}

/// What one frame did.
fn outcome(s: &crate::streaming::Session, frame: &[u8]) -> String {
    match ClientMessage::decode(frame) {
        Err(_) => "undecodable".into(),
        Ok(m) => match dispatch(s, m) {
            Ok(Handled::Accepted) => "accepted".into(),
            Ok(Handled::Dropped(why)) => format!("dropped {}", why.label()),
            Err(EndReason::ProtocolViolation(code, _)) => format!("refused {code:?}"),
            Err(other) => format!("ended {other:?}"),
        },
    }
}

/// Replays one case; returns each frame's outcome (stopping after the
/// first refusal, which ends a real session).
fn replay(frames: &[Vec<u8>]) -> Vec<String> {
    let (s, _rx) = session();
    let mut out = Vec::new();
    for f in frames {
        let o = outcome(&s, f);
        let stop = o.starts_with("refused") || o.starts_with("ended");
        out.push(o);
        if stop {
            break;
        }
        assert!(s.snapshot_wallet_count() <= 4, "wallets bounded");
    }
    out
}

fn msg(client_id: &str, payload: Option<Payload>) -> Vec<u8> {
    ClientMessage {
        client_id: client_id.into(),
        message_id: "m-1".into(),
        timestamp: None,
        payload,
    }
    .encode_to_vec()
}

fn wallet(i: u32) -> Vec<u8> {
    msg(
        "fuzz-1",
        Some(Payload::WalletUpdate(WalletUpdate {
            wallet_id: format!("0x{i:040x}"),
            chain: "ethereum".into(),
            asset: "ETH".into(),
            balance: "1.5".into(),
            block_height: u64::from(i),
        })),
    )
}

/// The hand-picked seeds: (name, frames).
fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let own = "fuzz-1";
    let heartbeat = |n| msg(own, Some(Payload::Heartbeat(Heartbeat { sequence: n })));
    let mut truncated = heartbeat(7);
    truncated.truncate(truncated.len() - 1);
    vec![
        (
            "heartbeats",
            vec![heartbeat(1), heartbeat(2), heartbeat(u64::MAX)],
        ),
        ("empty-frame", vec![Vec::new()]),
        ("truncated-frame", vec![truncated]),
        ("garbage", vec![vec![0xff; 16]]),
        ("invalid-utf8-client-id", vec![vec![0x0a, 0x02, 0xc3, 0x28]]),
        ("no-payload", vec![msg(own, None)]),
        (
            "another-clients-id",
            vec![
                heartbeat(1),
                msg(
                    "fuzz-2",
                    Some(Payload::Heartbeat(Heartbeat { sequence: 2 })),
                ),
            ],
        ),
        (
            "empty-client-id",
            vec![msg("", Some(Payload::Heartbeat(Heartbeat { sequence: 1 })))],
        ),
        (
            "register-twice",
            vec![msg(
                own,
                Some(Payload::Register(ClientRegistration::default())),
            )],
        ),
        (
            "ack-unknown-command",
            vec![msg(
                own,
                Some(Payload::CommandAck(CommandAck {
                    command_id: "never-sent".into(),
                    success: true,
                    message: String::new(),
                    result: Default::default(),
                })),
            )],
        ),
        (
            "ack-empty-id",
            vec![msg(own, Some(Payload::CommandAck(CommandAck::default())))],
        ),
        ("wallets-beyond-the-bound", (0..10).map(wallet).collect()),
        (
            "same-wallet-repeated",
            vec![wallet(1), wallet(1), wallet(1)],
        ),
        (
            "transaction",
            vec![msg(
                own,
                Some(Payload::Transaction(Transaction {
                    tx_id: "0xabc".into(),
                    wallet_id: "0x1".into(),
                    amount: "-0.25".into(),
                    ..Default::default()
                })),
            )],
        ),
        (
            "transaction-without-wallet-id",
            vec![msg(
                own,
                Some(Payload::Transaction(Transaction {
                    tx_id: "0xabc".into(),
                    amount: "-0.25".into(),
                    ..Default::default()
                })),
            )],
        ),
        (
            "transaction-without-tx-id",
            vec![msg(
                own,
                Some(Payload::Transaction(Transaction {
                    wallet_id: "0x1".into(),
                    amount: "1".into(),
                    ..Default::default()
                })),
            )],
        ),
        (
            "bad-records-then-heartbeat",
            vec![
                msg(own, Some(Payload::WalletUpdate(WalletUpdate::default()))),
                msg(
                    own,
                    Some(Payload::WalletUpdate(WalletUpdate {
                        wallet_id: "0x1".into(),
                        balance: "1e18".into(),
                        ..Default::default()
                    })),
                ),
                heartbeat(1),
            ],
        ),
        (
            "status-unknown-enum",
            vec![msg(
                own,
                Some(Payload::Status(ClientStatus {
                    state: 9_999,
                    detail: "?".into(),
                    config_hash: String::new(),
                })),
            )],
        ),
        (
            "log-long-text",
            vec![msg(
                own,
                Some(Payload::Log(LogEntry {
                    level: 3,
                    message: "é".repeat(5_000),
                    fields: Default::default(),
                })),
            )],
        ),
        (
            "error-long-code",
            vec![msg(
                own,
                Some(Payload::Error(ErrorReport {
                    code: "E".repeat(300),
                    message: "boom".into(),
                    fatal: true,
                })),
            )],
        ),
        (
            "price-from-a-wallet-syncer",
            vec![msg(
                own,
                Some(Payload::Price(PriceUpdate {
                    symbol: "BTC".into(),
                    price: "97000.12".into(),
                    ..Default::default()
                })),
            )],
        ),
    ]
}

fn write_corpus() {
    let d = dir();
    std::fs::create_dir_all(&d).expect("corpus dir");
    for (name, frames) in seeds() {
        let outcomes = replay(&frames);
        let mut text = format!("# {name}\n");
        for (i, f) in frames.iter().enumerate() {
            let o = outcomes.get(i).map_or("not reached", String::as_str);
            text.push_str(&format!("{o}: {}\n", hex(f)).replace(": \n", ":\n"));
        }
        std::fs::write(d.join(format!("{name}.txt")), text).expect("corpus file");
    }
}

/// Every corpus case still has its recorded outcome, frame by frame.
#[test]
fn the_checked_in_corpus_replays_with_its_recorded_outcomes() {
    if std::env::var_os("CRYPTO_WRITE_CORPUS").is_some() {
        write_corpus();
    }
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .expect("tests/corpus/client-messages exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= seeds().len(), "every seed is checked in");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("corpus file");
        let mut frames = Vec::new();
        let mut expected = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (o, h) = line
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("{}: bad line {line:?}", path.display()));
            frames.push(unhex(h.trim()).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
            expected.push(o.to_owned());
        }
        let got = replay(&frames);
        expected.retain(|o| o != "not reached");
        assert_eq!(got, expected, "{}", path.display());
    }
}
