//! Partitioned alone, or the whole API out? A replica that cannot renew its
//! Lease asks the peers it last saw live whether they can. If one has
//! reached the API for the whole time this replica could not, this replica
//! is cut off alone: it ends its sessions (spread over a few seconds) so
//! their clients reconnect to replicas that can deliver their desired
//! state. Otherwise — no peer reaches the API, none answers, or the ones
//! that do only just came back from the same outage — the API itself is
//! (or was) out: like kubelets keeping their pods when the API server is
//! gone, every replica keeps its sessions and converges when the API
//! returns. Either way it admits no new client until it renews again
//! (`controller::index`).

use crate::controller::{Membership, Peer};
use crate::proto::ApiHealthRequest;
use crate::proto::peer_service_client::PeerServiceClient;
use crate::streaming::StreamingHandle;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long one peer gets to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// Watches this replica's API reachability until `stop`, ending its
/// sessions when it is partitioned alone.
pub async fn watch_partition(
    membership: Arc<Membership>,
    handle: StreamingHandle,
    dial: Option<Arc<super::PeerDial>>,
    stop: CancellationToken,
) {
    let every = membership.config().renew_every();
    // The peers seen live while the API was reachable: the ones to ask
    // once it is not (the watch of their Leases is as cut off as we are).
    let mut known: Vec<Peer> = Vec::new();
    let mut shed = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if membership.api_ok() {
            known = membership.peers();
            shed = false;
            continue;
        }
        if membership.last_renewal().is_none() || shed {
            // Never reached the API yet (starting), or already shed.
            continue;
        }
        let failing_for = membership.failing_for().unwrap_or_default();
        match ask(&known, membership.me(), dial.as_deref(), failing_for).await {
            Some(peer) => {
                warn!(
                    replica = membership.me(),
                    reachable_from = %peer,
                    sessions = handle.connected(),
                    "partitioned alone from the Kubernetes API; ending sessions so their clients move"
                );
                handle.shed_all(
                    "this replica cannot reach the Kubernetes API; reconnect to another",
                    every.max(Duration::from_secs(1)),
                );
                shed = true;
            }
            None => {
                info!(
                    replica = membership.me(),
                    "no peer reaches the Kubernetes API either: keeping sessions until it returns"
                );
            }
        }
    }
}

/// The first peer that has reached the API for at least `failing_for`
/// (all the time this replica could not), if any.
async fn ask(
    peers: &[Peer],
    me: &str,
    dial: Option<&super::PeerDial>,
    failing_for: Duration,
) -> Option<String> {
    let dial = dial?;
    for p in peers {
        match api_reachable(p, me, dial).await {
            Ok(Some(reachable_for)) if reachable_for >= failing_for => return Some(p.id.clone()),
            Ok(Some(reachable_for)) => {
                debug!(peer = %p.id, ?reachable_for, ?failing_for, "the peer only just reached the API again");
            }
            Ok(None) => {}
            Err(e) => debug!(peer = %p.id, error = %e, "peer did not answer"),
        }
    }
    None
}

/// How long `p` has reached the API (`None`: it does not).
async fn api_reachable(
    p: &Peer,
    me: &str,
    dial: &super::PeerDial,
) -> Result<Option<Duration>, String> {
    let endpoint = dial
        .endpoint(&p.advertise)?
        .connect_timeout(PEER_TIMEOUT)
        .timeout(PEER_TIMEOUT);
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let mut client = PeerServiceClient::new(channel);
    let mut req = tonic::Request::new(ApiHealthRequest {
        replica: me.to_owned(),
    });
    dial.authorize(&mut req)?;
    let reply = client
        .api_health(req)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    let reply = reply.into_inner();
    Ok(reply
        .api_reachable
        .then(|| Duration::from_millis(reply.reachable_for_ms)))
}
