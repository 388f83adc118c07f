//! Market data: the coin catalog, the latest price per (symbol, quote) that
//! price-feed clients publish, and the `CryptoService` (`GetCoin`,
//! `ListCoins`, `StreamPrices`) that serves them.
//!
//! Direction of use: `server -> market -> streaming`. The streaming core
//! does not know the market exists: prices reach the market through the
//! core's event bus ([`crate::streaming::StreamingHandle::subscribe`]), read
//! by one ingest task that [`Market`] owns and ends on [`Market::shutdown`].
//!
//! Memory is bounded: the book keeps one price per (coin, quote), at most
//! [`MarketLimits::max_quotes_per_coin`] quotes per coin; a subscriber holds
//! one watch receiver per coin and at most coins × quotes ready ticks, and
//! skips to the latest price when it reads slower than prices change.
//!
//! Across replicas ([`FleetPrices`]): a replica numbers its own feeds'
//! prices in its own book, streams that book to its peers, and puts what
//! its peers stream to it next to its own in the book it serves.

mod book;
mod catalog;
mod fleet;
mod ingest;
mod metrics;
mod page;
mod service;
mod stream;
mod validate;

pub use catalog::{BUILTIN_YAML, Catalog, CatalogError, CoinInfo, MAX_DECIMALS};
pub use fleet::{FleetPrices, LinkGuard};
pub use page::{DEFAULT_PAGE_SIZE, MAX_FILTER_LEN, MAX_PAGE_SIZE};
pub use service::{MAX_STREAM_SYMBOLS, MarketService};
pub use stream::PriceStream;
pub use validate::{Invalid, check_price};

use crate::proto::crypto_service_server::CryptoServiceServer;
use crate::streaming::EventSubscriber;
use book::{Book, Source};
use metrics::MarketMetrics;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The market's limits.
#[derive(Debug, Clone)]
pub struct MarketLimits {
    /// Open `StreamPrices` streams before RESOURCE_EXHAUSTED.
    pub max_subscribers: usize,
    /// Quote currencies kept per coin; prices in more are dropped
    /// (`reason="quote_limit"`).
    pub max_quotes_per_coin: usize,
}

impl Default for MarketLimits {
    fn default() -> Self {
        Self {
            max_subscribers: 10_000,
            max_quotes_per_coin: 8,
        }
    }
}

/// State shared by the service, the subscriber streams and the ingest task.
pub(crate) struct MarketState {
    pub(crate) catalog: Catalog,
    /// What `GetCoin` and `StreamPrices` serve: every replica's prices.
    pub(crate) book: Book,
    /// This replica's own feeds' prices, numbered here: what peers stream.
    pub(crate) own: Book,
    /// This replica, as its ticks name it.
    pub(crate) source: Source,
    pub(crate) metrics: Arc<MarketMetrics>,
    pub(crate) limits: MarketLimits,
    /// Open subscriber streams.
    pub(crate) open: Arc<AtomicUsize>,
    /// Cancelled on shutdown: ends the ingest task and every stream.
    pub(crate) stop: CancellationToken,
}

/// The market: catalog, book, ingest task and gRPC service.
pub struct Market {
    state: Arc<MarketState>,
    tasks: TaskTracker,
}

impl Market {
    /// A market over `catalog`, with its metrics registered in `registry`;
    /// `replica` is the `source_replica` of the prices its own feeds
    /// publish (empty in standalone mode).
    pub fn new(
        catalog: Catalog,
        limits: MarketLimits,
        registry: &crate::metrics::Registry,
        replica: &str,
    ) -> prometheus::Result<Self> {
        let book = Book::new(catalog.len(), limits.max_quotes_per_coin);
        let own = Book::new(catalog.len(), limits.max_quotes_per_coin);
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Ok(Self {
            state: Arc::new(MarketState {
                catalog,
                book,
                own,
                source: Source {
                    replica: replica.to_owned(),
                    incarnation,
                },
                metrics: Arc::new(MarketMetrics::new(registry)?),
                limits,
                open: Arc::new(AtomicUsize::new(0)),
                stop: CancellationToken::new(),
            }),
            tasks: TaskTracker::new(),
        })
    }

    /// What the peer service and the peer links use: this replica's own
    /// prices for its peers, and the door for theirs.
    pub fn fleet(&self) -> FleetPrices {
        FleetPrices::new(self.state.clone())
    }

    /// Starts the ingest task on `events` (a subscription to the streaming
    /// core's bus, taken before clients connect).
    pub fn start(&self, events: EventSubscriber) {
        self.tasks.spawn(ingest::run(
            self.state.clone(),
            events,
            self.state.stop.clone(),
        ));
    }

    /// The gRPC service.
    pub fn service(&self) -> CryptoServiceServer<MarketService> {
        CryptoServiceServer::new(MarketService::new(self.state.clone()))
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.state.catalog
    }

    /// Ends every price stream (UNAVAILABLE) and the ingest task, and waits
    /// for the task.
    pub async fn shutdown(&self) {
        self.state.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
