//! Market data across replicas: this replica holds one link per live peer,
//! a `StreamOwnPrices` stream of the prices that peer's own feeds publish,
//! and puts each tick into its own book ([`FleetPrices::accept`]), where
//! its `GetCoin` and `StreamPrices` see it. The peer conflates the stream
//! as for any subscriber, so a slow link skips to the latest price and
//! never slows a feed. Links follow the membership (checked every renew
//! interval): a new peer gets one, a departed or moved one loses it, and a
//! broken link reconnects with backoff. One supervisor task owns the links
//! and ends them, and itself, on `stop`.

use crate::backoff::Backoff;
use crate::controller::Membership;
use crate::market::FleetPrices;
use crate::proto::StreamOwnPricesRequest;
use crate::proto::peer_service_client::PeerServiceClient;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings on a quiet link, and how long one may go unanswered
/// before the link counts as broken (a peer that froze or vanished).
const PING_EVERY: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff of a broken link.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Keeps one price link per live peer until `stop`.
pub async fn link_prices(
    membership: Arc<Membership>,
    prices: FleetPrices,
    dial: Arc<super::PeerDial>,
    stop: CancellationToken,
) {
    let tasks = TaskTracker::new();
    // Peer id -> (address, the link's own stop).
    let mut links: HashMap<String, (String, CancellationToken)> = HashMap::new();
    let every = membership.config().renew_every();
    loop {
        let live = membership.peers();
        links.retain(|id, (addr, link_stop)| {
            let keep = live.iter().any(|p| &p.id == id && &p.advertise == addr);
            if !keep {
                link_stop.cancel();
            }
            keep
        });
        for p in live {
            if links.contains_key(&p.id) || p.advertise.is_empty() {
                continue;
            }
            let link_stop = stop.child_token();
            tasks.spawn(link(
                Link {
                    peer: p.id.clone(),
                    addr: p.advertise.clone(),
                    me: membership.me().to_owned(),
                    dial: dial.clone(),
                    prices: prices.clone(),
                },
                link_stop.clone(),
            ));
            links.insert(p.id, (p.advertise, link_stop));
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// One peer's price link.
struct Link {
    peer: String,
    addr: String,
    me: String,
    dial: Arc<super::PeerDial>,
    prices: FleetPrices,
}

/// The newest tick taken from the peer per (symbol, quote): its source's
/// start time and sequence. A reconnected stream starts with a snapshot
/// this replica may already have; ticks not newer than these are dropped.
type Taken = HashMap<(String, String), (u64, u64)>;

async fn link(l: Link, stop: CancellationToken) {
    let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let mut taken = Taken::new();
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => break,
            r = follow(&l, &mut taken, &mut backoff) => r,
        };
        match outcome {
            Ok(()) => debug!(peer = %l.peer, "peer ended its price stream"),
            Err(e) => debug!(peer = %l.peer, error = %e, "price link to peer broken"),
        }
        let wait = backoff.next_delay();
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    debug!(peer = %l.peer, "price link closed");
}

/// Connects to the peer and takes its ticks until the stream ends.
async fn follow(l: &Link, taken: &mut Taken, backoff: &mut Backoff) -> Result<(), String> {
    let channel = l
        .dial
        .endpoint(&l.addr)?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(PING_EVERY)
        .keep_alive_timeout(PING_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut req = tonic::Request::new(StreamOwnPricesRequest {
        replica: l.me.clone(),
    });
    l.dial.authorize(&mut req)?;
    let mut stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        PeerServiceClient::new(channel).stream_own_prices(req),
    )
    .await
    .map_err(|_| "no answer in time".to_owned())?
    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
    .into_inner();
    let _open = l.prices.link_opened();
    backoff.reset();
    info!(peer = %l.peer, "following the peer's prices");
    let mut warned = false;
    while let Some(tick) = stream
        .message()
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
    {
        let Some(u) = &tick.update else {
            // Counted as wrong_source by accept.
            let _ = l.prices.accept(&l.peer, tick);
            continue;
        };
        let key = (u.symbol.clone(), u.quote.clone());
        let newest = (tick.source_incarnation, tick.sequence);
        if taken
            .get(&key)
            .is_some_and(|(inc, seq)| *inc == newest.0 && *seq >= newest.1)
        {
            continue;
        }
        match l.prices.accept(&l.peer, tick) {
            Ok(()) => {
                taken.insert(key, newest);
            }
            Err(why) if !warned => {
                warned = true;
                warn!(peer = %l.peer, reason = why.label(), symbol = %key.0, quote = %key.1, "price from a peer dropped");
            }
            Err(_) => {}
        }
    }
    Ok(())
}
