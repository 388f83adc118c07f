//! Prices across replicas. A replica offers its peers a stream of its own
//! feeds' prices ([`FleetPrices::own_prices`]: the book it numbers, never
//! what it learnt from peers, so a price travels one hop) and takes theirs
//! ([`FleetPrices::accept`]) into the book it serves, after the checks a
//! local price gets. The link tasks that hold those streams belong to the
//! peer module; this is their door into the market.

use super::MarketState;
use super::stream::PriceStream;
use super::validate::{self, Invalid};
use crate::proto::{PriceTick, PriceUpdate};
use std::sync::Arc;

/// The market as the peer service and the peer links see it.
#[derive(Clone)]
pub struct FleetPrices {
    state: Arc<MarketState>,
}

/// One open link to a peer's prices, counted in `crypto_price_peer_links`
/// until dropped.
pub struct LinkGuard {
    state: Arc<MarketState>,
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        self.state.metrics.peer_links.dec();
    }
}

impl FleetPrices {
    pub(crate) fn new(state: Arc<MarketState>) -> Self {
        Self { state }
    }

    /// The latest price of every (symbol, quote) of every enabled coin
    /// that this replica's own feeds published, then each update,
    /// conflated as for any subscriber. Takes no subscriber slot (there is
    /// one per peer) and ends with UNAVAILABLE when the market shuts down.
    pub fn own_prices(&self) -> PriceStream {
        let s = &self.state;
        let receivers = (0..s.catalog.len())
            .filter(|i| s.catalog.coins()[*i].enabled)
            .filter_map(|i| s.own.watch(i))
            .collect();
        PriceStream::new(
            receivers,
            s.stop.clone().cancelled_owned(),
            s.metrics.clone(),
            None,
        )
    }

    /// Counts an open link to a peer's prices for as long as the guard
    /// lives.
    pub fn link_opened(&self) -> LinkGuard {
        self.state.metrics.peer_links.inc();
        LinkGuard {
            state: self.state.clone(),
        }
    }

    /// Makes `tick`, streamed by peer `from`, the latest price of its
    /// (symbol, quote) here, keeping its source's numbering. Checked as a
    /// local price is (the catalogs may differ), and the tick must come
    /// from `from` itself; what fails is dropped and counted. The caller
    /// (one link per peer, reading one ordered stream) drops ticks older
    /// than what it already took from that peer.
    pub fn accept(&self, from: &str, tick: PriceTick) -> Result<(), Invalid> {
        let s = &self.state;
        let out = self.check(from, tick).and_then(|(coin, quote, tick)| {
            s.book
                .put(coin, &quote, Arc::new(tick))
                .map(|_| ())
                .map_err(|_| Invalid::QuoteLimit)
        });
        match out {
            Ok(()) => s.metrics.peer_updates.inc(),
            Err(why) => s.metrics.invalid(why),
        }
        out
    }

    fn check(&self, from: &str, tick: PriceTick) -> Result<(usize, String, PriceTick), Invalid> {
        let update = match &tick.update {
            Some(u) if tick.source_replica == from && tick.sequence > 0 => u,
            _ => return Err(Invalid::WrongSource),
        };
        let checked = validate::check(&self.state.catalog, update)?;
        let (coin, quote) = (checked.coin, checked.quote.clone());
        let update = PriceUpdate {
            symbol: checked.info.symbol.clone(),
            quote: checked.quote,
            ..update.clone()
        };
        Ok((
            coin,
            quote,
            PriceTick {
                update: Some(update),
                snapshot: false,
                ..tick
            },
        ))
    }
}
