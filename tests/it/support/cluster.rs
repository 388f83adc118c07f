//! The control-plane scenarios, written once and run against two kinds of
//! cluster: the fake API server (`tests/controller.rs`, always) and a real
//! cluster (`tests/e2e_cluster.rs`, when `CRYPTO_E2E_KUBECONFIG` is set).
//! Each scenario drives CryptoClient resources through [`Cluster`] and real
//! gRPC clients through the operator's address.

use super::fake_kube::{CRYPTO_GROUP as G, CRYPTO_PLURAL as P, CRYPTO_VERSION as V, FakeKube};
use super::{RawClient, WAIT, end_status, msg, open, register};
use crypto_operator::client::ClientType;
use crypto_operator::commands::{self, CommandKind};
use crypto_operator::proto::{ServerCommand, server_command::Command};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::Code;

/// What a scenario needs from a cluster.
pub trait Cluster {
    /// The namespace the scenario's resources live in.
    fn namespace(&self) -> &str;
    /// Creates a CryptoClient with `spec`.
    fn create_cc(&self, name: &str, spec: Value) -> impl Future<Output = ()>;
    /// Merge-patches the spec (as `kubectl patch --type merge` would).
    fn patch_spec(&self, name: &str, spec: Value) -> impl Future<Output = ()>;
    /// Deletes a CryptoClient.
    fn delete_cc(&self, name: &str) -> impl Future<Output = ()>;
    /// The resource, when it exists.
    fn get_cc(&self, name: &str) -> impl Future<Output = Option<Value>>;
    /// Waits until the resource matches `pred`, failing after `limit`.
    fn wait_cc(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        pred: impl FnMut(&Value) -> bool,
    ) -> impl Future<Output = Value>;
}

/// A CryptoClient manifest.
pub fn cc(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "crypto.fleet.dev/v1alpha1", "kind": "CryptoClient", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

impl Cluster for FakeKube {
    fn namespace(&self) -> &str {
        "default"
    }

    async fn create_cc(&self, name: &str, spec: Value) {
        self.create(cc("default", name, spec)).expect("create");
    }

    async fn patch_spec(&self, name: &str, spec: Value) {
        self.merge_patch(G, V, P, "default", name, json!({"spec": spec}))
            .expect("patch");
    }

    async fn delete_cc(&self, name: &str) {
        self.delete(G, V, P, "default", name).expect("delete");
    }

    async fn get_cc(&self, name: &str) -> Option<Value> {
        self.get(G, V, P, "default", name)
    }

    async fn wait_cc(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        self.wait_map(
            |st| {
                st.list(G, V, P, Some("default"))
                    .into_iter()
                    .find(|o| o["metadata"]["name"] == name)
                    .filter(|o| pred(o))
                    .cloned()
            },
            limit,
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "{name}: {what}; now {:?}",
                self.get(G, V, P, "default", name)
            )
        })
    }
}

/// Creates a CryptoClient and waits until the operator has seen it (its
/// first status is written), so the client is known when it connects.
pub async fn created<C: Cluster>(k: &C, name: &str, spec: Value) -> Value {
    k.create_cc(name, spec).await;
    k.wait_cc(name, "seen by the operator", WAIT, |o| {
        o["status"]["observedGeneration"].is_number()
    })
    .await
}

/// Reads commands until one of kind `want` arrives; acks the others.
pub async fn expect_command(c: &mut RawClient, want: &str) -> ServerCommand {
    loop {
        let cmd = c.command().await;
        let kind = cmd
            .command
            .as_ref()
            .map_or("none", |k| CommandKind::of(k).as_str());
        if kind == want {
            return cmd;
        }
        c.ack(&cmd.command_id, true).await;
    }
}

/// Reads and acks `n` commands; returns their kinds, sorted.
pub async fn ack_kinds(c: &mut RawClient, n: usize) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    for _ in 0..n {
        let cmd = c.command().await;
        kinds.push(CommandKind::of(cmd.command.as_ref().expect("a command")).as_str());
        c.ack(&cmd.command_id, true).await;
    }
    kinds.sort();
    kinds
}

/// Connects a client and acks the initial desired state (pause or resume,
/// and config) until the resource reports it.
pub async fn connect_converged<C: Cluster>(
    k: &C,
    grpc: SocketAddr,
    name: &str,
    client_id: &str,
) -> RawClient {
    let mut c = RawClient::connect(grpc, client_id).await;
    let kinds = ack_kinds(&mut c, 2).await;
    assert!(
        kinds == ["pause", "update_config"] || kinds == ["resume", "update_config"],
        "{kinds:?}"
    );
    k.wait_cc(name, "connected with its desired state acked", WAIT, |o| {
        (o["status"]["phase"] == "Connected" || o["status"]["phase"] == "Paused")
            && o["status"]["paused"].is_boolean()
    })
    .await;
    c
}

fn condition<'a>(o: &'a Value, t: &str) -> &'a Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t))
        .unwrap_or(&Value::Null)
}

/// pause -> Pause -> ack -> status.paused and phase Paused; resume likewise.
pub async fn pause_and_resume<C: Cluster>(k: &C, grpc: SocketAddr) {
    created(k, "wallet-1", json!({})).await;
    let mut c = connect_converged(k, grpc, "wallet-1", "wallet-1").await;
    let o = k
        .wait_cc("wallet-1", "Connected, resume acked", WAIT, |o| {
            o["status"]["phase"] == "Connected" && o["status"]["paused"] == false
        })
        .await;
    assert_eq!(o["status"]["session"]["id"], c.session_id.as_str());
    assert_eq!(
        o["status"]["observedGeneration"],
        o["metadata"]["generation"]
    );

    k.patch_spec("wallet-1", json!({"paused": true})).await;
    let cmd = c.command().await;
    assert!(matches!(cmd.command, Some(Command::Pause(_))), "{cmd:?}");
    c.ack(&cmd.command_id, true).await;
    let o = k
        .wait_cc("wallet-1", "Paused", WAIT, |o| {
            o["status"]["phase"] == "Paused"
        })
        .await;
    assert_eq!(o["status"]["paused"], true);
    assert_eq!(o["status"]["lastCommand"]["type"], "pause");
    assert_eq!(o["status"]["lastCommand"]["state"], "Acked");

    k.patch_spec("wallet-1", json!({"paused": false})).await;
    let cmd = c.command().await;
    assert!(matches!(cmd.command, Some(Command::Resume(_))), "{cmd:?}");
    c.ack(&cmd.command_id, true).await;
    let o = k
        .wait_cc("wallet-1", "Connected again", WAIT, |o| {
            o["status"]["phase"] == "Connected" && o["status"]["paused"] == false
        })
        .await;
    assert_eq!(condition(&o, "Connected")["status"], "True");
    assert_eq!(condition(&o, "Healthy")["status"], "True");
}

/// config change -> update_config with the new hash -> appliedConfigHash.
pub async fn config_change<C: Cluster>(k: &C, grpc: SocketAddr) {
    created(k, "cfg-1", json!({"config": {"mode": "slow"}})).await;
    let mut c = RawClient::connect(grpc, "cfg-1").await;
    let first = expect_command(&mut c, "update_config").await;
    let Some(Command::UpdateConfig(u1)) = first.command.clone() else {
        unreachable!()
    };
    assert_eq!(u1.config.get("mode").map(String::as_str), Some("slow"));
    c.ack(&first.command_id, true).await;
    k.wait_cc("cfg-1", "first hash applied", WAIT, |o| {
        o["status"]["appliedConfigHash"] == u1.config_hash.as_str()
    })
    .await;

    k.patch_spec("cfg-1", json!({"config": {"mode": "fast", "region": "eu"}}))
        .await;
    let cmd = expect_command(&mut c, "update_config").await;
    let Some(Command::UpdateConfig(u)) = cmd.command.clone() else {
        unreachable!()
    };
    assert_eq!(u.config_hash, commands::config_hash(&u.config));
    assert_eq!(u.config.len(), 2);
    let o = k.get_cc("cfg-1").await.expect("exists");
    assert_eq!(
        o["status"]["appliedConfigHash"],
        u1.config_hash.as_str(),
        "not applied before the ack"
    );
    c.ack(&cmd.command_id, true).await;
    let o = k
        .wait_cc("cfg-1", "new hash applied", WAIT, |o| {
            o["status"]["appliedConfigHash"] == u.config_hash.as_str()
        })
        .await;
    assert_eq!(condition(&o, "ConfigApplied")["status"], "True");
}

/// syncRequested -> exactly one sync_wallets -> ack -> spec reset and lastSync.
pub async fn sync_once<C: Cluster>(k: &C, grpc: SocketAddr) {
    created(k, "sync-1", json!({})).await;
    let mut c = connect_converged(k, grpc, "sync-1", "sync-1").await;
    k.patch_spec("sync-1", json!({"syncRequested": true})).await;
    let cmd = c.command().await;
    assert!(
        matches!(cmd.command, Some(Command::SyncWallets(_))),
        "{cmd:?}"
    );
    c.ack(&cmd.command_id, true).await;
    let o = k
        .wait_cc("sync-1", "spec reset and lastSync", WAIT, |o| {
            o["spec"]["syncRequested"] == false && o["status"]["lastSync"].is_string()
        })
        .await;
    assert_eq!(condition(&o, "Synced")["status"], "True");
    // The next command is the next spec change, not a second sync.
    k.patch_spec("sync-1", json!({"paused": true})).await;
    let next = c.command().await;
    assert!(
        matches!(next.command, Some(Command::Pause(_))),
        "no second sync: {next:?}"
    );
}

/// The client is offline while the spec changes; it connects and receives
/// the desired state; after a disconnect it converges again (no second sync).
pub async fn offline_then_connect<C: Cluster>(k: &C, grpc: SocketAddr) {
    let o = created(k, "late-1", json!({})).await;
    assert_eq!(o["status"]["phase"], "Pending");
    assert_eq!(condition(&o, "Connected")["reason"], "NeverConnected");
    k.patch_spec(
        "late-1",
        json!({"paused": true, "syncRequested": true, "config": {"k": "v"}}),
    )
    .await;
    k.wait_cc("late-1", "new generation observed", WAIT, |o| {
        o["status"]["observedGeneration"] == o["metadata"]["generation"]
            && o["metadata"]["generation"] != 1
    })
    .await;
    let mut c = RawClient::connect(grpc, "late-1").await;
    assert_eq!(
        ack_kinds(&mut c, 3).await,
        ["pause", "sync_wallets", "update_config"]
    );
    let o = k
        .wait_cc("late-1", "converged", WAIT, |o| {
            o["status"]["phase"] == "Paused"
                && o["spec"]["syncRequested"] == false
                && o["status"]["appliedConfigHash"].is_string()
        })
        .await;
    assert_eq!(o["status"]["paused"], true);
    drop(c);
    k.wait_cc("late-1", "Disconnected", WAIT, |o| {
        o["status"]["phase"] == "Disconnected"
    })
    .await;
    let mut again = RawClient::connect(grpc, "late-1").await;
    assert_eq!(
        ack_kinds(&mut again, 2).await,
        ["pause", "update_config"],
        "no second sync after a reconnect"
    );
    k.wait_cc("late-1", "Paused again", WAIT, |o| {
        o["status"]["phase"] == "Paused"
    })
    .await;
}

/// A client with no resource is refused; deleting a resource ends its
/// client's session.
pub async fn unknown_refused_and_delete_ends_session<C: Cluster>(k: &C, grpc: SocketAddr) {
    created(k, "known", json!({"clientId": "known-1"})).await;
    let (_tx, mut inbound) = open(grpc, msg("stranger", register(ClientType::WalletSync))).await;
    let status = end_status(&mut inbound).await;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("stranger"));
    let mut c = connect_converged(k, grpc, "known", "known-1").await;
    k.delete_cc("known").await;
    let status = c.end_status().await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("deleted"));
}
