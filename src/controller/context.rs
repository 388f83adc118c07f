//! What every reconcile and ack task shares: the Kubernetes client, the
//! streaming core's handle, the resource index and per-resource memory,
//! the event recorder, the reconcile triggers, the controller's metrics
//! and its owned tasks.

use super::budget::WriteBudget;
use super::index::ResourceIndex;
use super::membership::Membership;
use super::metrics::ControlMetrics;
use super::runtime::Runtimes;
use crate::crd::CryptoClient;
use crate::streaming::StreamingHandle;
use kube::runtime::events::{Event, Recorder};
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// Shared by every reconcile.
pub(crate) struct Ctx {
    pub(crate) client: kube::Client,
    pub(crate) handle: StreamingHandle,
    pub(crate) index: Arc<ResourceIndex>,
    pub(crate) runtimes: Runtimes,
    pub(crate) recorder: Recorder,
    pub(crate) tasks: TaskTracker,
    pub(crate) triggers: HashMap<Option<String>, mpsc::Sender<ObjectRef<CryptoClient>>>,
    pub(crate) status_every: Duration,
    pub(crate) pacer: super::pacing::Pacer,
    pub(crate) api_timeout: Duration,
    pub(crate) stop: tokio_util::sync::CancellationToken,
    pub(crate) metrics: Arc<ControlMetrics>,
    pub(crate) membership: Arc<Membership>,
    pub(crate) budget: WriteBudget,
}

impl Ctx {
    /// Asks the controller watching `obj`'s namespace to reconcile it.
    pub(crate) async fn trigger(&self, obj: ObjectRef<CryptoClient>) {
        let tx = self
            .triggers
            .get(&obj.namespace)
            .or_else(|| self.triggers.get(&None));
        if let Some(tx) = tx {
            let _ = tx.send(obj).await;
        }
    }

    /// Publishes a Kubernetes Event on `client_id`'s resource.
    pub(crate) async fn publish(&self, client_id: &str, ev: Event) {
        let Some(r) = self.index.lookup(client_id) else {
            return;
        };
        match tokio::time::timeout(
            self.api_timeout,
            self.recorder.publish(&ev, &r.object_ref()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, reason = %ev.reason, "could not publish event"),
            Err(_) => {
                warn!(reason = %ev.reason, timeout = ?self.api_timeout, "event write timed out");
            }
        }
    }
}
