//! The market's metrics, registered in the process registry
//! ([`crate::metrics::Registry`]). Label handles are resolved once
//! here, so the ingest path and the subscriber streams only add atomically.

use super::validate::Invalid;
use crate::metrics::Registry;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

/// Every market metric.
pub(crate) struct MarketMetrics {
    /// `crypto_price_updates_total`: valid prices applied to the book.
    pub(crate) updates: IntCounter,
    /// `crypto_price_updates_invalid_total{reason}`, in [`Invalid::ALL`] order.
    invalid: Vec<IntCounter>,
    /// `crypto_price_subscribers`: open `StreamPrices` streams.
    pub(crate) subscribers: IntGauge,
    /// `crypto_price_updates_conflated_total`: updates skipped for slow
    /// subscribers, summed over subscribers.
    pub(crate) conflated: IntCounter,
    /// `crypto_price_ticks_sent_total`: ticks handed to subscriber streams.
    pub(crate) sent: IntCounter,
    /// `crypto_price_peer_updates_total`: prices from peers' feeds applied.
    pub(crate) peer_updates: IntCounter,
    /// `crypto_price_peer_links`: open streams of peers' prices.
    pub(crate) peer_links: IntGauge,
}

impl MarketMetrics {
    /// Registers the market metrics in `r`.
    pub(crate) fn new(r: &Registry) -> prometheus::Result<Self> {
        let invalid = r.register(IntCounterVec::new(
            Opts::new(
                "crypto_price_updates_invalid_total",
                "Price updates dropped by the market, by reason.",
            ),
            &["reason"],
        )?)?;
        Ok(Self {
            updates: r.register(IntCounter::new(
                    "crypto_price_updates_total",
                    "Valid price updates received from price feeds.",
                )?,
            )?,
            invalid: Invalid::ALL
                .iter()
                .map(|i| invalid.with_label_values(&[i.label()]))
                .collect(),
            subscribers: r.register(IntGauge::new(
                    "crypto_price_subscribers",
                    "Open StreamPrices subscriptions.",
                )?,
            )?,
            conflated: r.register(IntCounter::new(
                    "crypto_price_updates_conflated_total",
                    "Price updates skipped for subscribers that read slower than prices change, summed over subscribers.",
                )?,
            )?,
            sent: r.register(IntCounter::new(
                    "crypto_price_ticks_sent_total",
                    "Price ticks handed to StreamPrices streams (snapshots included).",
                )?,
            )?,
            peer_updates: r.register(IntCounter::new(
                    "crypto_price_peer_updates_total",
                    "Prices published on other replicas, received over peer links and applied.",
                )?,
            )?,
            peer_links: r.register(IntGauge::new(
                    "crypto_price_peer_links",
                    "Open streams of other replicas' prices (one per live peer when healthy).",
                )?,
            )?,
        })
    }

    /// Counts a dropped price.
    pub(crate) fn invalid(&self, why: Invalid) {
        self.invalid[why.index()].inc();
    }
}
