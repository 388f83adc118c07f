//! Streaming-core events -> controller: a connect, disconnect or staleness
//! change of a resource-managed client triggers a reconcile of its resource
//! (phase changes are written at once) and connects and disconnects become
//! Kubernetes Events. Acks arrive through `acks.rs`, not here. If this
//! subscriber falls behind (a connect burst of thousands of clients while
//! the controller is busy) the bus drops events; the bridge is told how
//! many and triggers a reconcile of every resource, so no connect goes
//! unnoticed until the periodic requeue (the Kubernetes Events of the lost
//! connects are not written).

use super::context::Ctx;
use crate::crd::CryptoClient;
use crate::streaming::{EventKind, EventSubscriber, Received};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Runs until `stop` or until the core is gone.
pub(crate) async fn run(ctx: Arc<Ctx>, mut events: EventSubscriber, stop: CancellationToken) {
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = events.next() => match ev {
                Some(Received::Event(ev)) => ev,
                Some(Received::Lost(n)) => {
                    resync(&ctx, n).await;
                    continue;
                }
                None => return,
            },
        };
        let note = match &ev.kind {
            EventKind::Connected(reg) => Some((
                EventType::Normal,
                "ClientConnected",
                format!(
                    "client {} connected (session {}, version {})",
                    ev.client_id, ev.session_id, reg.version
                ),
            )),
            EventKind::Disconnected(reason) => Some((
                EventType::Normal,
                "ClientDisconnected",
                format!("client {} disconnected: {reason}", ev.client_id),
            )),
            EventKind::Stale | EventKind::Fresh => None,
            _ => continue,
        };
        let Some(r) = ctx.index.lookup(&ev.client_id) else {
            continue;
        };
        if let Some((type_, reason, note)) = note {
            let ctx2 = ctx.clone();
            let client_id = ev.client_id.to_string();
            ctx.tasks.spawn(async move {
                ctx2.publish(
                    &client_id,
                    Event {
                        type_,
                        reason: reason.into(),
                        note: Some(note),
                        action: "Session".into(),
                        secondary: None,
                    },
                )
                .await;
            });
        }
        ctx.trigger(ObjectRef::<CryptoClient>::new(&r.name).within(&r.namespace))
            .await;
    }
}

/// After lost events: every resource is reconciled (the scheduler merges
/// these with requests already queued). Events lost meanwhile lead to
/// another pass, so the last burst is always covered.
async fn resync(ctx: &Ctx, lost: u64) {
    let all = ctx.index.in_namespace(None);
    warn!(
        lost,
        resources = all.len(),
        "missed session events; reconciling every resource"
    );
    for r in all {
        ctx.trigger(ObjectRef::<CryptoClient>::new(&r.name).within(&r.namespace))
            .await;
    }
}
