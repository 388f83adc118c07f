//! Scenario 7, the fleet-wide store: what one replica pays for resources
//! whose clients other replicas hold. Every replica watches every
//! resource, so this part of its memory grows with the whole fleet, not
//! with its own share of sessions. The fake API server holds `--clients`
//! resources, each with a small `config` and a status naming another
//! holder (not running; the replica's holder grace outlasts the run, so
//! nothing is released); one replica in cluster mode starts with no
//! client connected, and its RSS
//! once its caches are synced is compared with the same replica against
//! an empty API server.

use super::{cluster_serve, start, wait_ready};
use crate::args::Args;
use crate::load::client_id;
use crate::sys;
use fake_kube::{CRYPTO_GROUP as G, CRYPTO_PLURAL as P, CRYPTO_VERSION as V, FakeKube};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// What one run measured.
pub struct StoreResult {
    pub resources: usize,
    pub empty_kib: u64,
    pub synced_kib: u64,
}

impl StoreResult {
    /// RSS per resource held elsewhere, in KiB.
    pub fn per_resource_kib(&self) -> f64 {
        self.synced_kib.saturating_sub(self.empty_kib) as f64 / self.resources.max(1) as f64
    }
}

/// A resource held by replica `elsewhere-0`, as the holder writes it.
fn held_elsewhere(fake: &FakeKube, i: usize) -> Result<(), String> {
    let name = client_id(i);
    fake.create(json!({
        "apiVersion": format!("{G}/{V}"),
        "kind": "CryptoClient",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clientId": name, "config": {"pool": "eu", "region": "eu-west-1"}},
    }))
    .map_err(|e| format!("fake: {e:?}"))?;
    fake.merge_patch(
        G,
        V,
        P,
        "default",
        &name,
        json!({"status": {
            "phase": "Connected",
            "observedGeneration": 1,
            "appliedConfigHash": "sha256:0123456789abcdef",
            "lastHeartbeat": "2026-12-02T12:00:00Z",
            "holder": {
                "replica": "elsewhere-0",
                "sessionId": format!("{:08x}-0000-4000-8000-000000000000", i),
                "since": "2026-12-02T12:00:00.000000Z",
            },
        }}),
    )
    .map_err(|e| format!("fake: {e:?}"))?;
    Ok(())
}

/// One replica against `fake`, ready (caches synced); its RSS a second
/// later, when the first reconciles have passed.
async fn replica_rss(fake: &FakeKube, args: &Args, dir: &Path, tag: &str) -> Result<u64, String> {
    let kubeconfig = fake.write_kubeconfig(dir);
    // The holder named in the resources is not running: the janitor must
    // not release them while this runs.
    let cmd = cluster_serve(
        args,
        &kubeconfig,
        &["--replica-id", "store-0", "--holder-grace", "10m"],
    )?;
    let name = format!("replica, fleet-wide store ({tag})");
    let server = start(cmd, name.clone(), dir.join(format!("store-{tag}.log"))).await?;
    wait_ready(&server).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = sys::rss_kib(server.pid).ok_or_else(|| format!("{name}: no RSS"))?;
    server.stop().await?;
    Ok(rss)
}

/// Scenario 7 with `n` resources held elsewhere.
pub async fn run(n: usize, args: &Args, dir: &Path) -> Result<StoreResult, String> {
    eprintln!("[fleet] store: a replica against an empty API server");
    let empty = FakeKube::start().await;
    let empty_kib = replica_rss(&empty, args, dir, "empty").await?;
    empty.shutdown().await;
    let fake = FakeKube::start().await;
    for i in 0..n {
        held_elsewhere(&fake, i)?;
    }
    eprintln!("[fleet] store: a replica against {n} resources held elsewhere");
    let synced_kib = replica_rss(&fake, args, dir, &n.to_string()).await?;
    fake.shutdown().await;
    Ok(StoreResult {
        resources: n,
        empty_kib,
        synced_kib,
    })
}
