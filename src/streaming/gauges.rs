//! Gauges read at scrape time from the core itself rather than counted on
//! the message path: commands awaiting their ack over every session
//! (`crypto_commands_pending`) and the Tokio tasks alive in the process
//! (`crypto_runtime_tasks_alive`). Leaks show up in both; the soak
//! benchmark watches them.

use super::core::Core;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, Opts};
use std::sync::Weak;

#[derive(Clone)]
pub(crate) struct CoreGauges {
    core: Weak<Core>,
    runtime: Option<tokio::runtime::Handle>,
    pending: IntGauge,
    tasks: IntGauge,
}

impl CoreGauges {
    /// Gauges over `core`; the task count needs the Tokio runtime the core
    /// was built in (without one it reads 0).
    pub(crate) fn new(core: Weak<Core>) -> prometheus::Result<Self> {
        Ok(Self {
            core,
            runtime: tokio::runtime::Handle::try_current().ok(),
            pending: IntGauge::with_opts(Opts::new(
                "crypto_commands_pending",
                "Commands sent to clients and awaiting their ack, over every session.",
            ))?,
            tasks: IntGauge::with_opts(Opts::new(
                "crypto_runtime_tasks_alive",
                "Tokio tasks alive in the operator process.",
            ))?,
        })
    }
}

impl Collector for CoreGauges {
    fn desc(&self) -> Vec<&Desc> {
        self.pending
            .desc()
            .into_iter()
            .chain(self.tasks.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let pending = self.core.upgrade().map_or(0, |core| {
            core.registry
                .all()
                .iter()
                .map(|s| s.pending_count())
                .sum::<usize>()
        });
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        let tasks = self
            .runtime
            .as_ref()
            .map_or(0, |r| r.metrics().num_alive_tasks());
        self.tasks.set(i64::try_from(tasks).unwrap_or(i64::MAX));
        self.pending
            .collect()
            .into_iter()
            .chain(self.tasks.collect())
            .collect()
    }
}
