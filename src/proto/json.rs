//! Protobuf's canonical JSON mapping (proto3 JSON) of the `crypto.v1`
//! messages that leave the process as JSON: the admin API's snapshots and
//! acks, and the Centrifugo publisher's payloads. The generated prost types
//! do not derive serde, so each message has a mirror here, built from it.
//!
//! The mapping, as protobuf specifies it: field names in lowerCamelCase
//! (`wallet_id` → `walletId`); enums as their value names
//! (`TRANSACTION_DIRECTION_INBOUND`; a number this build does not know stays
//! a number); 64-bit integers as decimal strings; `Timestamp` as RFC 3339
//! in UTC with 0, 3, 6 or 9 fractional digits; `Duration` as seconds with
//! the same fractions and an `s` suffix; maps as objects. Scalar fields are
//! always written, default values included (protobuf's
//! "always print fields with no presence" option), so dashboards never
//! have to guess a missing field; unset message fields are left out.
//!
//! Every mirror also derives a JSON schema, from which the admin API's
//! OpenAPI document is generated.

use crate::proto;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;

// ------------------------------------------------------------ scalar types

/// A `uint64`, written as a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct U64(pub u64);

impl Serialize for U64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl JsonSchema for U64 {
    fn schema_name() -> Cow<'static, str> {
        "Uint64".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "uint64 as a decimal string (protobuf JSON)"
        })
    }
}

/// A `google.protobuf.Timestamp`, written as RFC 3339 in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub prost_types::Timestamp);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_timestamp(&self.0))
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 in UTC, e.g. 2026-11-02T10:15:30.125Z"
        })
    }
}

/// A `google.protobuf.Duration`, written as seconds with an `s` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub prost_types::Duration);

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(&self.0))
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^-?[0-9]+(\\.[0-9]{3}|\\.[0-9]{6}|\\.[0-9]{9})?s$",
            "description": "seconds with an s suffix, e.g. 0.002500s"
        })
    }
}

/// A protobuf enum the mapping writes by value name.
pub trait ProtoEnum {
    /// The enum's protobuf name (the schema's name).
    const NAME: &'static str;
    /// The value name of `v`, when this build knows it.
    fn value_name(v: i32) -> Option<&'static str>;
}

macro_rules! proto_enums {
    ($($t:ident),* $(,)?) => {$(
        impl ProtoEnum for proto::$t {
            const NAME: &'static str = stringify!($t);
            fn value_name(v: i32) -> Option<&'static str> {
                proto::$t::try_from(v).ok().map(|e| e.as_str_name())
            }
        }
    )*};
}

proto_enums!(SessionState, ClientRunState, TransactionDirection);

/// An enum field: its value name, or its number when unknown.
pub struct Enum<E>(pub i32, PhantomData<E>);

impl<E> Enum<E> {
    /// The field holding `v`.
    pub fn new(v: i32) -> Self {
        Self(v, PhantomData)
    }
}

impl<E: ProtoEnum> Serialize for Enum<E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match E::value_name(self.0) {
            Some(name) => s.serialize_str(name),
            None => s.serialize_i32(self.0),
        }
    }
}

impl<E: ProtoEnum> JsonSchema for Enum<E> {
    fn schema_name() -> Cow<'static, str> {
        E::NAME.into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = (0..64).filter_map(E::value_name).collect();
        json_schema!({
            "oneOf": [
                {"type": "string", "enum": names},
                {"type": "integer", "description": "a value this server version does not know"}
            ]
        })
    }
}

impl<E> std::fmt::Debug for Enum<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Enum({})", self.0)
    }
}

/// `map<string, string>`, with sorted keys.
fn map(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

// ------------------------------------------------------------ messages

/// `crypto.v1.ClientRegistration`: what the client sent in `register`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientRegistration {
    /// Human-readable name.
    pub client_name: String,
    /// Kind of client (`wallet-sync`, `trading-bot`, `price-feed`, or a
    /// custom type), lower-case.
    pub client_type: String,
    /// The client's software version.
    pub version: String,
    /// What the client can do.
    pub capabilities: Vec<String>,
}

impl From<&proto::ClientRegistration> for ClientRegistration {
    fn from(r: &proto::ClientRegistration) -> Self {
        Self {
            client_name: r.client_name.clone(),
            client_type: r.client_type.clone(),
            version: r.version.clone(),
            capabilities: r.capabilities.clone(),
        }
    }
}

/// `crypto.v1.WalletUpdate`: the balance of one asset in one wallet.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletUpdate {
    /// The wallet.
    pub wallet_id: String,
    /// Its chain.
    pub chain: String,
    /// The asset.
    pub asset: String,
    /// The balance, a decimal string.
    pub balance: String,
    /// Block height the balance was read at.
    pub block_height: U64,
}

impl From<&proto::WalletUpdate> for WalletUpdate {
    fn from(w: &proto::WalletUpdate) -> Self {
        Self {
            wallet_id: w.wallet_id.clone(),
            chain: w.chain.clone(),
            asset: w.asset.clone(),
            balance: w.balance.clone(),
            block_height: U64(w.block_height),
        }
    }
}

/// `crypto.v1.Transaction`: a transaction the client observed.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Transaction id (hash).
    pub tx_id: String,
    /// The wallet.
    pub wallet_id: String,
    /// Its chain.
    pub chain: String,
    /// The asset.
    pub asset: String,
    /// The amount, a decimal string.
    pub amount: String,
    /// Into or out of the wallet.
    pub direction: Enum<proto::TransactionDirection>,
    /// The client's state name for it (pending, confirmed, ...).
    pub state: String,
}

impl From<&proto::Transaction> for Transaction {
    fn from(t: &proto::Transaction) -> Self {
        Self {
            tx_id: t.tx_id.clone(),
            wallet_id: t.wallet_id.clone(),
            chain: t.chain.clone(),
            asset: t.asset.clone(),
            amount: t.amount.clone(),
            direction: Enum::new(t.direction),
            state: t.state.clone(),
        }
    }
}

/// `crypto.v1.ClientStatus`: the client's own view of its state.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientStatus {
    /// Running, paused, syncing, degraded.
    pub state: Enum<proto::ClientRunState>,
    /// Free text.
    pub detail: String,
    /// Hash of the config the client runs with.
    pub config_hash: String,
}

impl From<&proto::ClientStatus> for ClientStatus {
    fn from(s: &proto::ClientStatus) -> Self {
        Self {
            state: Enum::new(s.state),
            detail: s.detail.clone(),
            config_hash: s.config_hash.clone(),
        }
    }
}

/// `crypto.v1.ErrorReport`: an error the client reported.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReport {
    /// The client's error code.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// Whether the client stops because of it.
    pub fatal: bool,
}

impl From<&proto::ErrorReport> for ErrorReport {
    fn from(e: &proto::ErrorReport) -> Self {
        Self {
            code: e.code.clone(),
            message: e.message.clone(),
            fatal: e.fatal,
        }
    }
}

/// `crypto.v1.CommandAck`: the client's answer to a command.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandAck {
    /// The command answered.
    pub command_id: String,
    /// Whether the client carried it out.
    pub success: bool,
    /// Why not, or a note.
    pub message: String,
    /// Command-specific results (e.g. `wallets_synced`).
    pub result: BTreeMap<String, String>,
}

impl From<&proto::CommandAck> for CommandAck {
    fn from(a: &proto::CommandAck) -> Self {
        Self {
            command_id: a.command_id.clone(),
            success: a.success,
            message: a.message.clone(),
            result: map(&a.result),
        }
    }
}

/// `crypto.v1.ClientCounters`: per-session counters.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCounters {
    /// Every message received.
    pub messages_received: U64,
    /// Heartbeats.
    pub heartbeats: U64,
    /// Wallet updates.
    pub wallet_updates: U64,
    /// Transactions.
    pub transactions: U64,
    /// Error reports.
    pub errors: U64,
    /// Log entries.
    pub logs: U64,
    /// Commands sent to the client.
    pub commands_sent: U64,
    /// Commands acked with success.
    pub commands_succeeded: U64,
    /// Commands acked with failure.
    pub commands_failed: U64,
    /// Commands not acked in time.
    pub commands_timed_out: U64,
    /// Wallet balances not kept (wallet limit).
    pub wallets_dropped: U64,
    /// Prices received.
    pub prices: U64,
    /// Messages dropped as malformed (the session went on).
    pub messages_rejected: U64,
}

impl From<&proto::ClientCounters> for ClientCounters {
    fn from(c: &proto::ClientCounters) -> Self {
        Self {
            messages_received: U64(c.messages_received),
            heartbeats: U64(c.heartbeats),
            wallet_updates: U64(c.wallet_updates),
            transactions: U64(c.transactions),
            errors: U64(c.errors),
            logs: U64(c.logs),
            commands_sent: U64(c.commands_sent),
            commands_succeeded: U64(c.commands_succeeded),
            commands_failed: U64(c.commands_failed),
            commands_timed_out: U64(c.commands_timed_out),
            wallets_dropped: U64(c.wallets_dropped),
            prices: U64(c.prices),
            messages_rejected: U64(c.messages_rejected),
        }
    }
}

/// `crypto.v1.ClientInfo`: the snapshot of one session.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// The client.
    pub client_id: String,
    /// Its current session.
    pub session_id: String,
    /// What it sent in `register`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<ClientRegistration>,
    /// Connected, or Stale (missed heartbeats).
    pub state: Enum<proto::SessionState>,
    /// When the session registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<Timestamp>,
    /// When the last heartbeat arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<Timestamp>,
    /// Round-trip time of the latest server ping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_rtt: Option<Duration>,
    /// The latest status the client sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ClientStatus>,
    /// Latest balance per (wallet, asset), sorted.
    pub wallets: Vec<WalletUpdate>,
    /// Per-session counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters: Option<ClientCounters>,
    /// Commands sent and not yet acked.
    pub pending_commands: u32,
}

impl From<&proto::ClientInfo> for ClientInfo {
    fn from(c: &proto::ClientInfo) -> Self {
        Self {
            client_id: c.client_id.clone(),
            session_id: c.session_id.clone(),
            registration: c.registration.as_ref().map(Into::into),
            state: Enum::new(c.state),
            connected_at: c.connected_at.map(Timestamp),
            last_heartbeat: c.last_heartbeat.map(Timestamp),
            ping_rtt: c.ping_rtt.map(Duration),
            status: c.status.as_ref().map(Into::into),
            wallets: c.wallets.iter().map(Into::into).collect(),
            counters: c.counters.as_ref().map(Into::into),
            pending_commands: c.pending_commands,
        }
    }
}

/// `crypto.v1.ClientSummary`: what a listing shows of one session (the
/// snapshot without its wallet list).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSummary {
    /// The client.
    pub client_id: String,
    /// Its current session.
    pub session_id: String,
    /// What it sent in `register`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<ClientRegistration>,
    /// Connected, or Stale (missed heartbeats).
    pub state: Enum<proto::SessionState>,
    /// When the session registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<Timestamp>,
    /// When the last heartbeat arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<Timestamp>,
    /// Round-trip time of the latest server ping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_rtt: Option<Duration>,
    /// The latest status the client sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ClientStatus>,
    /// How many wallet balances the server keeps for it.
    pub wallet_count: u32,
    /// Per-session counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters: Option<ClientCounters>,
    /// Commands sent and not yet acked.
    pub pending_commands: u32,
}

impl From<&proto::ClientSummary> for ClientSummary {
    fn from(c: &proto::ClientSummary) -> Self {
        Self {
            client_id: c.client_id.clone(),
            session_id: c.session_id.clone(),
            registration: c.registration.as_ref().map(Into::into),
            state: Enum::new(c.state),
            connected_at: c.connected_at.map(Timestamp),
            last_heartbeat: c.last_heartbeat.map(Timestamp),
            ping_rtt: c.ping_rtt.map(Duration),
            status: c.status.as_ref().map(Into::into),
            wallet_count: c.wallet_count,
            counters: c.counters.as_ref().map(Into::into),
            pending_commands: c.pending_commands,
        }
    }
}

// ------------------------------------------------------------ formatting

/// Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range
/// protobuf allows.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// `.fff`, `.ffffff` or `.fffffffff` (or nothing) for `nanos` in 0..1e9.
fn fraction(nanos: u32) -> String {
    match nanos {
        0 => String::new(),
        n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
        n if n % 1_000 == 0 => format!(".{:06}", n / 1_000),
        n => format!(".{n:09}"),
    }
}

/// RFC 3339 in UTC, clamped to protobuf's range (0001 to 9999).
pub fn format_timestamp(t: &prost_types::Timestamp) -> String {
    let (secs, nanos) = if t.seconds < MIN_SECONDS {
        (MIN_SECONDS, 0)
    } else if t.seconds > MAX_SECONDS {
        (MAX_SECONDS, 999_999_999)
    } else {
        (t.seconds, t.nanos.clamp(0, 999_999_999) as u32)
    };
    // The date by jiff's calendar (the whole range above is within its
    // civil dates), the time of day and the fraction (0, 3, 6 or 9 digits,
    // as protobuf wants) by hand.
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let date = jiff::civil::Date::new(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add(jiff::Span::new().try_days(days)?))
        .unwrap_or_default();
    format!(
        "{}T{:02}:{:02}:{:02}{}Z",
        date.strftime("%Y-%m-%d"),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        fraction(nanos)
    )
}

/// `<seconds>[.fraction]s`, negative with a leading `-`.
pub fn format_duration(d: &prost_types::Duration) -> String {
    let negative = d.seconds < 0 || d.nanos < 0;
    let secs = d.seconds.unsigned_abs();
    let nanos = d.nanos.unsigned_abs().min(999_999_999);
    format!(
        "{}{secs}{}s",
        if negative { "-" } else { "" },
        fraction(nanos)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(seconds: i64, nanos: i32) -> String {
        format_timestamp(&prost_types::Timestamp { seconds, nanos })
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_0_3_6_or_9_digits() {
        assert_eq!(ts(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(ts(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(ts(1_700_000_000, 125_000_000), "2023-11-14T22:13:20.125Z");
        assert_eq!(ts(1_700_000_000, 125_000), "2023-11-14T22:13:20.000125Z");
        assert_eq!(ts(1_700_000_000, 1), "2023-11-14T22:13:20.000000001Z");
        assert_eq!(ts(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(ts(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(ts(MIN_SECONDS, 0), "0001-01-01T00:00:00Z");
        assert_eq!(ts(MAX_SECONDS, 0), "9999-12-31T23:59:59Z");
        assert_eq!(ts(i64::MAX, 0), "9999-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Days from 1900 to 2300 agree with a naive day-by-day calendar.
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let (mut y, mut m, mut d) = (1900i64, 1u32, 1u32);
        for days in -25_567..120_000i64 {
            assert_eq!(
                ts(days * 86_400, 0),
                format!("{y:04}-{m:02}-{d:02}T00:00:00Z"),
                "day {days}"
            );
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn durations_are_seconds_with_suffix() {
        let d = |seconds, nanos| format_duration(&prost_types::Duration { seconds, nanos });
        assert_eq!(d(0, 0), "0s");
        assert_eq!(d(1, 500_000_000), "1.500s");
        assert_eq!(d(0, 2_500_000), "0.002500s");
        assert_eq!(d(3, 1), "3.000000001s");
        assert_eq!(d(-1, -500_000_000), "-1.500s");
    }

    #[test]
    fn messages_use_lower_camel_case_enum_names_and_string_u64() {
        let w = proto::WalletUpdate {
            wallet_id: "main".into(),
            chain: "ethereum".into(),
            asset: "ETH".into(),
            balance: "1.25".into(),
            block_height: u64::MAX,
        };
        assert_eq!(
            serde_json::to_value(WalletUpdate::from(&w)).unwrap(),
            json!({"walletId": "main", "chain": "ethereum", "asset": "ETH",
                   "balance": "1.25", "blockHeight": "18446744073709551615"})
        );
        let t = proto::Transaction {
            tx_id: "0xabc".into(),
            direction: proto::TransactionDirection::Inbound as i32,
            ..Default::default()
        };
        let v = serde_json::to_value(Transaction::from(&t)).unwrap();
        assert_eq!(v["txId"], "0xabc");
        assert_eq!(v["direction"], "TRANSACTION_DIRECTION_INBOUND");
        assert_eq!(v["amount"], "", "defaults are written");
        let unknown = proto::Transaction {
            direction: 42,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(Transaction::from(&unknown)).unwrap()["direction"],
            42,
            "an unknown enum value stays a number"
        );
    }

    #[test]
    fn client_info_omits_unset_messages_and_sorts_maps() {
        let info = proto::ClientInfo {
            client_id: "w-1".into(),
            state: proto::SessionState::Stale as i32,
            connected_at: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            ping_rtt: Some(prost_types::Duration {
                seconds: 0,
                nanos: 1_000_000,
            }),
            counters: Some(proto::ClientCounters {
                heartbeats: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = serde_json::to_value(ClientInfo::from(&info)).unwrap();
        assert_eq!(v["clientId"], "w-1");
        assert_eq!(v["state"], "SESSION_STATE_STALE");
        assert_eq!(v["connectedAt"], "1970-01-01T00:00:00Z");
        assert_eq!(v["pingRtt"], "0.001s");
        assert_eq!(v["counters"]["heartbeats"], "3");
        assert_eq!(v["pendingCommands"], 0);
        assert!(v.get("lastHeartbeat").is_none());
        assert!(v.get("registration").is_none());
        let ack = proto::CommandAck {
            command_id: "c".into(),
            success: true,
            message: String::new(),
            result: HashMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
        };
        assert_eq!(
            serde_json::to_string(&CommandAck::from(&ack)).unwrap(),
            r#"{"commandId":"c","success":true,"message":"","result":{"a":"1","b":"2"}}"#
        );
    }
}
