//! The `CryptoClient` custom resource (`crypto.fleet.dev/v1alpha1`): a
//! client's desired state (spec) and what the operator observed (status).
//! `crypto-operator crd` prints the CRD generated from these types;
//! `crds/cryptoclient.yaml` is that output, checked in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Desired state of one external client.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "crypto.fleet.dev",
    version = "v1alpha1",
    kind = "CryptoClient",
    plural = "cryptoclients",
    shortname = "cc",
    shortname = "cryptoclient",
    category = "crypto",
    namespaced,
    status = "CryptoClientStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Paused","type":"boolean","jsonPath":".status.paused"}"#,
    printcolumn = r#"{"name":"Last Heartbeat","type":"date","jsonPath":".status.lastHeartbeat"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.session.version"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Replica","type":"string","jsonPath":".status.holder.replica","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CryptoClientSpec {
    /// The id the client registers with; defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Level-triggered: the client is told to pause (true) or resume (false)
    /// until its ack matches.
    #[serde(default)]
    pub paused: bool,
    /// One-shot: the operator sends `sync_wallets` once, records
    /// `status.lastSync` on the ack and sets this back to false.
    #[serde(default)]
    pub sync_requested: bool,
    /// Configuration pushed as `update_config`; applied when the client acks
    /// its content hash.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// How the client proves it may use this client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ClientAuth>,
}

/// Client authentication settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientAuth {
    /// A key of a Secret in this resource's namespace holding the client's
    /// bearer token; the client sends it as `authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
}

/// A key in a Secret of the resource's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}

/// Lifecycle phase shown by `kubectl get cryptoclients`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Never connected.
    Pending,
    /// Connected and heartbeating.
    Connected,
    /// Connected; acked a pause.
    Paused,
    /// Connected; missed heartbeats for `stale_after`.
    Stale,
    /// Was connected; no session now.
    Disconnected,
}

/// The client's current session.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// Session id (changes on every connect).
    pub id: String,
    /// When the session registered.
    pub connected_at: Time,
    /// Name the client registered with.
    #[serde(default)]
    pub client_name: String,
    /// Type the client registered with (for example `wallet-sync`).
    #[serde(default)]
    pub client_type: String,
    /// Software version the client registered with.
    #[serde(default)]
    pub version: String,
}

/// State of the last command the operator sent.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CommandState {
    /// Sent, no ack yet.
    Sent,
    /// Acked with success.
    Acked,
    /// Acked with failure, or the session ended first.
    Failed,
    /// No ack before the deadline.
    TimedOut,
}

/// The last command the operator sent to the client.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastCommand {
    /// Command id.
    pub id: String,
    /// Command type (`pause`, `resume`, `sync_wallets`, `update_config`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Where it stands.
    pub state: CommandState,
    /// When it was sent.
    pub sent_at: Time,
    /// When it finished (acked, failed or timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// The client's message, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What the operator observed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CryptoClientStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The `metadata.generation` this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Connected, ConfigApplied, Healthy, Synced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The current (or last) session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionStatus>,
    /// Last heartbeat, written at most once per status heartbeat interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<Time>,
    /// Pause state the client acked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Config hash the client acked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_config_hash: Option<String>,
    /// When the last requested wallet sync was acked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<Time>,
    /// The last command sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command: Option<LastCommand>,
    /// The wallet-sync request being carried out (`spec.syncRequested`
    /// and not yet acked): any operator process redelivers it with this
    /// command id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_sync: Option<PendingSync>,
    /// The replica that holds the client's session. Every status write of
    /// a holder asserts it still holds it; a replica claims it when the
    /// client registers there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
}

/// Which replica holds a client's session.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The replica's id (its pod name).
    pub replica: String,
    /// The session it holds.
    pub session_id: String,
    /// When the session registered, to the microsecond (the newer session
    /// wins).
    pub since: MicroTime,
}

/// A requested wallet sync that has not been acked yet.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingSync {
    /// The `sync_wallets` command id (`sync-<uid>-<generation>`).
    pub command_id: String,
}

impl CryptoClient {
    /// The id the client registers with.
    pub fn client_id(&self) -> &str {
        match &self.spec.client_id {
            Some(id) if !id.is_empty() => id,
            _ => self.metadata.name.as_deref().unwrap_or_default(),
        }
    }

    /// `spec.config` as the map a config command carries.
    pub fn desired_config(&self) -> std::collections::HashMap<String, String> {
        self.spec
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The CRD as YAML (what `crypto-operator crd` prints).
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&CryptoClient::crd())
}
