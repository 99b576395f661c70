//! Percentiles of measured durations, shared by the load tools under `examples/`.

use std::time::Duration;

/// Sorted durations, read by percentile.
pub struct Percentiles(Vec<Duration>);

impl Percentiles {
    /// Sorts `samples` once for the lookups.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Percentiles(samples)
    }

    /// The sample at percentile `p` (0–100, nearest rank); zero when there are none.
    pub fn at(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// "p50 X ms, p99 Y ms, max Z ms".
    pub fn summary(&self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(self.at(50.0)),
            ms(self.at(99.0)),
            ms(self.0.last().copied().unwrap_or_default()),
        )
    }
}

/// Milliseconds, fractional.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
