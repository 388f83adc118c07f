//! The price book: the latest price per (symbol, quote), one
//! `tokio::sync::watch` channel per catalog coin. Writing a price replaces
//! the coin's value and wakes its subscribers; it never waits on them, and
//! a subscriber that looks later sees only the latest value (conflation).
//! Memory is bounded by coins × `max_quotes`, whatever the update rate.
//!
//! A replica keeps two books: its own feeds' prices, numbered here
//! ([`Book::publish`], what its peers stream from it), and the fleet's,
//! where its own and its peers' ticks land as they arrive ([`Book::put`],
//! what `GetCoin` and `StreamPrices` serve).

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

/// Where this replica's own prices come from: its id and start time, the
/// `source_replica` and `source_incarnation` of every tick it publishes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Source {
    pub(crate) replica: String,
    pub(crate) incarnation: u64,
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

    /// Publishes `update` (symbol and quote already normalised) as the
    /// next price of this replica's (coin, quote) series: the book of a
    /// replica's own feeds numbers each series from 1. Returns the tick.
    pub(crate) fn publish(
        &self,
        coin: usize,
        quote: &str,
        update: PriceUpdate,
        feed_client_id: &str,
        received_at: SystemTime,
        source: &Source,
    ) -> Result<Arc<PriceTick>, QuoteLimit> {
        let mut update = Some(update);
        self.replace(coin, quote, |previous| {
            Arc::new(PriceTick {
                update: update.take(),
                sequence: previous.map_or(0, |t| t.sequence) + 1,
                feed_client_id: feed_client_id.to_owned(),
                received_at: Some(received_at.into()),
                snapshot: false,
                source_replica: source.replica.clone(),
                source_incarnation: source.incarnation,
            })
        })
    }

    /// Makes `tick` (numbered by its source) the latest price of (coin,
    /// quote), whichever source the previous one came from.
    pub(crate) fn put(
        &self,
        coin: usize,
        quote: &str,
        tick: Arc<PriceTick>,
    ) -> Result<Arc<PriceTick>, QuoteLimit> {
        self.replace(coin, quote, |_| tick)
    }

    /// Replaces the price of (coin, quote) with `make(previous)` and wakes
    /// the coin's watchers; refused for a new quote past `max_quotes`.
    fn replace(
        &self,
        coin: usize,
        quote: &str,
        make: impl FnOnce(Option<&PriceTick>) -> Arc<PriceTick>,
    ) -> Result<Arc<PriceTick>, QuoteLimit> {
        let Some(tx) = self.coins.get(coin) else {
            return Err(QuoteLimit);
        };
        let mut make = Some(make);
        let mut out = Err(QuoteLimit);
        tx.send_if_modified(|cur| {
            let pos = cur.quotes.binary_search_by(|q| (*q.quote).cmp(quote));
            if pos.is_err() && cur.quotes.len() >= self.max_quotes {
                return false;
            }
            let Some(make) = make.take() else {
                return false;
            };
            let tick = make(pos.ok().map(|i| &*cur.quotes[i].tick));
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
                    quotes[i].tick = tick.clone();
                    quotes[i].arrival = arrival;
                }
                Err(i) => quotes.insert(
                    i,
                    Quoted {
                        quote: quote.into(),
                        tick: tick.clone(),
                        arrival,
                    },
                ),
            }
            *cur = Arc::new(CoinPrices {
                quotes,
                arrivals: arrival,
            });
            out = Ok(tick);
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
        let me = Source {
            replica: "a".into(),
            incarnation: 7,
        };
        let seq = |r: Result<Arc<PriceTick>, QuoteLimit>| r.map(|t| t.sequence);
        assert_eq!(seq(b.publish(0, "USD", p("1"), "f", now, &me)), Ok(1));
        assert_eq!(seq(b.publish(0, "USD", p("2"), "f", now, &me)), Ok(2));
        assert_eq!(seq(b.publish(0, "EUR", p("3"), "f", now, &me)), Ok(1));
        assert_eq!(
            seq(b.publish(0, "GBP", p("4"), "f", now, &me)),
            Err(QuoteLimit)
        );
        let t = b.publish(0, "USD", p("5"), "f", now, &me).unwrap();
        assert_eq!(
            (t.sequence, &*t.source_replica, t.source_incarnation),
            (3, "a", 7)
        );
        let latest = b.latest(0);
        let quotes: Vec<&str> = latest.quotes.iter().map(|q| &*q.quote).collect();
        assert_eq!(quotes, ["EUR", "USD"]);
        assert_eq!(latest.quotes[1].tick.update.as_ref().unwrap().price, "5");
        assert_eq!(
            seq(b.publish(7, "USD", p("1"), "f", now, &me)),
            Err(QuoteLimit)
        );
    }

    #[test]
    fn put_keeps_the_sources_numbering_and_the_arrival_order() {
        let b = Book::new(1, 8);
        let now = SystemTime::now();
        let peer = Source {
            replica: "b".into(),
            incarnation: 1,
        };
        let own = Book::new(1, 8);
        let t = own.publish(0, "USD", p("9"), "f", now, &peer).unwrap();
        let t = own
            .publish(0, "USD", p("10"), "f", now, &peer)
            .map_or(t, |t| t);
        b.put(0, "USD", t).unwrap();
        let e = own.publish(0, "EUR", p("3"), "f", now, &peer).unwrap();
        b.put(0, "EUR", e).unwrap();
        let latest = b.latest(0);
        assert_eq!(latest.quotes[1].tick.sequence, 2);
        assert_eq!(&*latest.quotes[1].tick.source_replica, "b");
        assert!(latest.quotes[0].arrival > latest.quotes[1].arrival);
    }
}
