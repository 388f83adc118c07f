//! The process's one Prometheus registry. Every component defines its own
//! metrics and registers them here through [`Registry::register`] (the
//! streaming core in `streaming::metrics`, the controller, the market, the
//! Centrifugo publisher); `/metrics` serves [`Registry::render`].

use prometheus::TextEncoder;
use prometheus::core::Collector;

/// The shared registry. Cheap to clone (one registry, shared).
#[derive(Clone, Default)]
pub struct Registry(prometheus::Registry);

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `metric` and returns it (metrics are handles: the clone
    /// kept by the caller and the registered one are the same series).
    /// Fails only on a programming error (a name registered twice).
    pub fn register<T: Collector + Clone + 'static>(&self, metric: T) -> prometheus::Result<T> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.0.gather())
            .unwrap_or_else(|e| format!("# error encoding metrics: {e}\n"))
    }
}
