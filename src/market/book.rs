//! The price book: the latest price per (symbol, quote), one
//! `tokio::sync::watch` channel per catalog coin. Writing a price replaces
//! the coin's value and wakes its subscribers; it never waits on them, and
//! a subscriber that looks later sees only the latest value (conflation).
//! Memory is bounded by coins × `max_quotes`, whatever the update rate.

use crate::proto::{PriceTick, PriceUpdate};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;

/// The latest price of one (symbol, quote).
#[derive(Debug)]
pub(crate) struct Quoted {
    /// Upper-case quote currency.
    pub(crate) quote: Arc<str>,
    /// The price, with its sequence number in the (symbol, quote) series.
    pub(crate) tick: Arc<PriceTick>,
    /// Position of this price among all of the coin's prices (any quote),
    /// so a subscriber sends the coin's changes in arrival order.
    pub(crate) arrival: u64,
}

/// The latest prices of one coin, sorted by quote.
#[derive(Debug, Default)]
pub(crate) struct CoinPrices {
    pub(crate) quotes: Vec<Quoted>,
    /// Prices applied to this coin so far.
    pub(crate) arrivals: u64,
}

/// Why a price was not applied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct QuoteLimit;

/// The latest prices of every coin of the catalog.
pub(crate) struct Book {
    coins: Vec<watch::Sender<Arc<CoinPrices>>>,
    max_quotes: usize,
}

impl Book {
    /// A book for `coins` coins, keeping at most `max_quotes` quotes each.
    pub(crate) fn new(coins: usize, max_quotes: usize) -> Self {
        Self {
            coins: (0..coins)
                .map(|_| watch::Sender::new(Arc::new(CoinPrices::default())))
                .collect(),
            max_quotes: max_quotes.max(1),
        }
    }

    /// Makes `update` (symbol and quote already normalised) the latest
    /// price of coin `coin` in `quote`; returns its sequence number.
    pub(crate) fn apply(
        &self,
        coin: usize,
        quote: &str,
        update: PriceUpdate,
        feed_client_id: &str,
        received_at: SystemTime,
    ) -> Result<u64, QuoteLimit> {
        let Some(tx) = self.coins.get(coin) else {
            return Err(QuoteLimit);
        };
        let mut update = Some(update);
        let mut out = Err(QuoteLimit);
        tx.send_if_modified(|cur| {
            let pos = cur.quotes.binary_search_by(|q| (*q.quote).cmp(quote));
            if pos.is_err() && cur.quotes.len() >= self.max_quotes {
                return false;
            }
            let sequence = pos.map_or(0, |i| cur.quotes[i].tick.sequence) + 1;
            let tick = Arc::new(PriceTick {
                update: update.take(),
                sequence,
                feed_client_id: feed_client_id.to_owned(),
                received_at: Some(received_at.into()),
                snapshot: false,
            });
            let arrival = cur.arrivals + 1;
            let mut quotes: Vec<Quoted> = cur
                .quotes
                .iter()
                .map(|q| Quoted {
                    quote: q.quote.clone(),
                    tick: q.tick.clone(),
                    arrival: q.arrival,
                })
                .collect();
            match pos {
                Ok(i) => {
                    quotes[i].tick = tick;
                    quotes[i].arrival = arrival;
                }
                Err(i) => quotes.insert(
                    i,
                    Quoted {
                        quote: quote.into(),
                        tick,
                        arrival,
                    },
                ),
            }
            *cur = Arc::new(CoinPrices {
                quotes,
                arrivals: arrival,
            });
            out = Ok(sequence);
            true
        });
        out
    }

    /// The latest prices of coin `coin`.
    pub(crate) fn latest(&self, coin: usize) -> Arc<CoinPrices> {
        self.coins
            .get(coin)
            .map(|tx| tx.borrow().clone())
            .unwrap_or_default()
    }

    /// A receiver of coin `coin`'s changes, with its current value marked
    /// seen; `None` for a coin the book does not have.
    pub(crate) fn watch(&self, coin: usize) -> Option<watch::Receiver<Arc<CoinPrices>>> {
        self.coins
            .get(coin)
            .map(tokio::sync::watch::Sender::subscribe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(price: &str) -> PriceUpdate {
        PriceUpdate {
            symbol: "BTC".into(),
            price: price.into(),
            quote: "USD".into(),
            ..Default::default()
        }
    }

    #[test]
    fn sequences_count_per_quote_and_quotes_are_bounded() {
        let b = Book::new(1, 2);
        let now = SystemTime::now();
        assert_eq!(b.apply(0, "USD", p("1"), "f", now), Ok(1));
        assert_eq!(b.apply(0, "USD", p("2"), "f", now), Ok(2));
        assert_eq!(b.apply(0, "EUR", p("3"), "f", now), Ok(1));
        assert_eq!(b.apply(0, "GBP", p("4"), "f", now), Err(QuoteLimit));
        assert_eq!(b.apply(0, "USD", p("5"), "f", now), Ok(3));
        let latest = b.latest(0);
        let quotes: Vec<&str> = latest.quotes.iter().map(|q| &*q.quote).collect();
        assert_eq!(quotes, ["EUR", "USD"]);
        assert_eq!(latest.quotes[1].tick.update.as_ref().unwrap().price, "5");
        assert_eq!(b.apply(7, "USD", p("1"), "f", now), Err(QuoteLimit));
    }
}
