//! The ingest task: reads the streaming core's event bus and applies every
//! `price` message (which the core only accepts from price feeds) to the
//! book. Invalid prices are dropped, counted by reason and logged with the
//! client id (at most one warning per reason per second); the client's
//! session is never touched. The task ends when the market's stop token is
//! cancelled or the event bus closes.

use super::MarketState;
use super::validate::{self, Invalid};
use crate::proto::PriceUpdate;
use crate::proto::client_message::Payload;
use crate::streaming::{EventKind, EventSubscriber};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Runs until `stop` is cancelled or the bus closes.
pub(crate) async fn run(
    state: std::sync::Arc<MarketState>,
    mut events: EventSubscriber,
    stop: CancellationToken,
) {
    let mut throttle = Throttle::default();
    loop {
        let ev = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
        };
        let EventKind::Message(msg) = &ev.kind else {
            continue;
        };
        let Some(Payload::Price(p)) = &msg.payload else {
            continue;
        };
        if let Err(why) = apply(&state, &ev.client_id, p, ev.at) {
            state.metrics.invalid(why);
            if throttle.allow(why) {
                warn!(
                    client_id = %ev.client_id,
                    reason = why.label(),
                    symbol = %p.symbol,
                    price = %p.price,
                    quote = %p.quote,
                    "price dropped"
                );
            } else {
                debug!(client_id = %ev.client_id, reason = why.label(), "price dropped");
            }
        }
    }
    debug!("market ingest stopped");
}

/// Validates `p` and makes it the latest price of its (symbol, quote).
pub(crate) fn apply(
    state: &MarketState,
    client_id: &str,
    p: &PriceUpdate,
    at: SystemTime,
) -> Result<u64, Invalid> {
    let checked = validate::check(&state.catalog, p)?;
    let update = PriceUpdate {
        symbol: checked.info.symbol.clone(),
        quote: checked.quote.clone(),
        ..p.clone()
    };
    let tick = state
        .own
        .publish(
            checked.coin,
            &checked.quote,
            update,
            client_id,
            at,
            &state.source,
        )
        .map_err(|_| Invalid::QuoteLimit)?;
    let seq = tick.sequence;
    state
        .book
        .put(checked.coin, &checked.quote, tick)
        .map_err(|_| Invalid::QuoteLimit)?;
    state.metrics.updates.inc();
    Ok(seq)
}

/// At most one warning per reason per second.
#[derive(Default)]
struct Throttle {
    last: [Option<Instant>; Invalid::ALL.len()],
}

impl Throttle {
    fn allow(&mut self, why: Invalid) -> bool {
        let now = Instant::now();
        let slot = &mut self.last[why.index()];
        match slot {
            Some(t) if now.duration_since(*t) < Duration::from_secs(1) => false,
            _ => {
                *slot = Some(now);
                true
            }
        }
    }
}
