//! What one run of one scenario measured.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// A latency histogram in microseconds, 1 µs to 1 h at 4 significant digits:
/// a quantile is quoted at most 1/16,384 above the samples it stands for
/// (64 µs at 2 s, 16 µs at 500 ms). Three digits would put 2 s in 1 ms
/// steps, coarser than the sub-millisecond overheads the driver reports.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 4).expect("valid histogram bounds")
}

pub struct Stats {
    /// Latencies in microseconds. Open loop: from when each request was due
    /// (what a user arriving then would wait); closed loop: from its sending.
    pub latency: Histogram<u64>,
    /// Latencies from when each request actually left (open loop: without
    /// the wait for a free connection; closed loop: the same as `latency`).
    pub raw: Histogram<u64>,
    /// Answers in each second of the measured window.
    pub per_second: Vec<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<String, u64>,
    /// Answers that arrived inside the measured window: throughput counts these.
    pub in_window: u64,
    /// Requests whose client gave up on purpose (--hangup-after-ms): no
    /// answer, so no latency; the stack's records say how they ended.
    pub abandoned: u64,
}

/// How a request whose client gave up on purpose is recorded.
pub const HUNG_UP: &str = "hung up (client gave up)";

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            raw: histogram(),
            per_second: Vec::new(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            in_window: 0,
            abandoned: 0,
        }
    }
}

impl Stats {
    /// Records an answer: its latency (open loop: from when it was due), its
    /// latency from when it left, and its status or error.
    pub fn record(&mut self, latency: Duration, raw: Duration, outcome: Result<u16, String>) {
        if matches!(&outcome, Err(e) if e == HUNG_UP) {
            self.abandoned += 1;
            return;
        }
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency.saturating_record(micros(latency));
        self.raw.saturating_record(micros(raw));
        match outcome {
            Ok(status) => *self.statuses.entry(status).or_default() += 1,
            Err(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    /// Counts an answer that arrived `into` the measured window.
    pub fn count_in_window(&mut self, into: Duration) {
        self.in_window += 1;
        let second = into.as_secs() as usize;
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, 0);
        }
        self.per_second[second] += 1;
    }

    pub fn count(&self) -> u64 {
        self.latency.len()
    }

    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(q))
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.latency.max())
    }
}

/// Nearest-rank percentile `q` (0 to 1) of sorted values.
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    Some(sorted[index])
}

/// `503.2 ms`, `2.01 s`, `840 µs`.
pub fn human(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 10_000_000 {
        format!("{:.1} ms", micros as f64 / 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quantile_is_quoted_to_a_tenth_of_a_millisecond_at_two_seconds() {
        let mut stats = Stats::default();
        for micros in [2_005_300, 2_005_400, 2_005_500] {
            let d = Duration::from_micros(micros);
            stats.record(d, d, Ok(400));
        }
        let p50 = stats.quantile(0.5).as_micros();
        assert!(
            (2_005_400..2_005_500).contains(&p50),
            "p50 of 2,005.3, 2,005.4 and 2,005.5 ms quoted as {p50} µs"
        );
    }
}
