//! Async mode: an acknowledgement is not the end of the work. The driver
//! follows every accepted operation to its end through the `status_url` its
//! answer named, and reports
//!
//! - completion times, from the server's own timestamps (accepted → finished,
//!   as the status endpoint shows them), so the polling interval does not
//!   blur them;
//! - the backlog (operations accepted but not finished) over time, and how
//!   long it takes to drain after the load stops, or, when it does not drain
//!   within `--drain-timeout`, what is left and how long it would take at the
//!   rate it was going.
//!
//! The follower's GETs are load too, so it sends none while the load is
//! measured: the acknowledgement latencies are the scenario's alone. It asks
//! once the load is over, and rebuilds the backlog over time from when each
//! operation was accepted (the answer's arrival) and finished (the server's
//! timestamp). Each round asks about the oldest few outstanding operations
//! (queues are roughly first in, first out) and a few more taken in turn from
//! the rest (operations do not all finish in order: an order refused for lack
//! of stock finishes at once while older ones wait for their payment): at most
//! `HEAD + SWEEP` GETs per `GAP` (1,280/s) while operations finish, per
//! `PAUSE` (256/s) while none do. An operation that finished but was not asked about before
//! `--drain-timeout` counts as not finished.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use crate::scenario::Scenario;
use crate::stats::human;

/// The oldest outstanding operations, asked about every round.
const HEAD: usize = 8;
/// Further outstanding operations asked about every round, in turn.
const SWEEP: usize = 56;
/// Wait before asking again when none of them had finished.
const PAUSE: Duration = Duration::from_millis(250);
/// Least time between two rounds: the follower's GETs are load on the drain
/// it measures, at most `(HEAD + SWEEP) / GAP` (1,280/s) however fast
/// operations finish, 256/s while none do.
const GAP: Duration = Duration::from_millis(50);
/// One backlog sample per this much time.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Operations accepted during a run, and those not yet seen finished.
pub struct Tracker {
    scenario: Scenario,
    accepted: Mutex<Accepted>,
}

#[derive(Default)]
struct Accepted {
    /// Status URLs of the operations not seen finished, oldest first.
    outstanding: VecDeque<String>,
    /// When each answer that accepted an operation arrived.
    at: Vec<DateTime<Utc>>,
    /// How long each operation's answer took the client, in microseconds
    /// (open loop: from when the request was due), by status URL.
    answered_in: HashMap<String, u64>,
}

/// What following the operations found.
pub struct Completion {
    pub scenario: Scenario,
    /// Server-side accepted → finished, in microseconds.
    pub latency: Histogram<u64>,
    /// Sent → finished as the client would see it: its answer's latency plus
    /// the stack's accepted → finished, in microseconds.
    pub end_to_end: Histogram<u64>,
    pub accepted: u64,
    /// (seconds since the load started, operations accepted but not finished).
    pub backlog: Vec<(f64, u64)>,
    /// Backlog when the load stopped.
    pub at_load_end: u64,
    /// Time from the end of the load until the last operation finished.
    pub drained_after: Option<Duration>,
    /// Left unfinished when the follower gave up.
    pub left: u64,
    /// Operations finished per second from the end of the load until the
    /// follower stopped (the whole drain).
    pub drain_rate: f64,
    pub waited: Duration,
}

impl Tracker {
    pub fn new(scenario: Scenario) -> Self {
        Tracker {
            scenario,
            accepted: Mutex::default(),
        }
    }

    /// Notes an accepted operation from its answer's body and how long the
    /// answer took.
    pub fn accept(&self, body: &[u8], answered_in: Duration) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        if let Some(url) = self.scenario.resource(&value) {
            let now = Utc::now();
            if let Ok(mut accepted) = self.accepted.lock() {
                let micros = u64::try_from(answered_in.as_micros()).unwrap_or(u64::MAX);
                accepted.answered_in.insert(url.clone(), micros);
                accepted.outstanding.push_back(url);
                accepted.at.push(now);
            }
        }
    }

    /// The oldest [`HEAD`] operations and the next [`SWEEP`] from `cursor`
    /// on among the others (wrapping); moves `cursor` past them.
    fn next_batch(&self, cursor: &mut usize) -> Vec<String> {
        let Ok(accepted) = self.accepted.lock() else {
            return Vec::new();
        };
        let q = &accepted.outstanding;
        let mut batch: Vec<String> = q.iter().take(HEAD).cloned().collect();
        let rest = q.len().saturating_sub(HEAD);
        if rest > 0 {
            let start = *cursor % rest;
            let take = SWEEP.min(rest);
            batch.extend((0..take).map(|i| q[HEAD + (start + i) % rest].clone()));
            *cursor = start + take;
        }
        batch
    }

    fn remove(&self, done: &HashSet<String>) -> u64 {
        let Ok(mut accepted) = self.accepted.lock() else {
            return 0;
        };
        accepted.outstanding.retain(|url| !done.contains(url));
        accepted.outstanding.len() as u64
    }

    /// Waits for the load to be over (`load_over`), then follows the
    /// operations until every one finished or `drain_timeout` passed.
    pub async fn follow(
        &self,
        client: &reqwest::Client,
        base: &str,
        load_over: CancellationToken,
        drain_timeout: Duration,
    ) -> Completion {
        let start = Utc::now();
        let mut latency = crate::stats::histogram();
        let mut end_to_end = crate::stats::histogram();
        let mut finished = Vec::new();
        load_over.cancelled().await;
        let (load_end, ended) = (Utc::now(), Instant::now());
        let mut cursor = 0;
        loop {
            let batch = self.next_batch(&mut cursor);
            let answers =
                futures_util::future::join_all(batch.iter().map(|url| status(client, base, url)))
                    .await;
            let mut done = HashSet::new();
            for (url, answer) in batch.into_iter().zip(answers) {
                if let Some((accepted, at)) = answer.and_then(|body| self.scenario.finished(&body))
                {
                    let took = (at - accepted).to_std().unwrap_or_default();
                    latency.saturating_record(took.as_micros().max(1) as u64);
                    let answered_in = self
                        .accepted
                        .lock()
                        .ok()
                        .and_then(|a| a.answered_in.get(&url).copied())
                        .unwrap_or(0);
                    end_to_end.saturating_record((took.as_micros() as u64 + answered_in).max(1));
                    finished.push(at);
                    done.insert(url);
                }
            }
            let left = self.remove(&done);
            let waited = ended.elapsed();
            if left == 0 || waited >= drain_timeout {
                let accepted = self
                    .accepted
                    .lock()
                    .map(|a| a.at.clone())
                    .unwrap_or_default();
                let history = History::new(accepted, finished);
                let now = Utc::now();
                let last = history.finished.last().copied();
                return Completion {
                    scenario: self.scenario,
                    latency,
                    end_to_end,
                    accepted: history.accepted.len() as u64,
                    backlog: history.timeline(start, now),
                    at_load_end: history.backlog_at(load_end),
                    drained_after: (left == 0).then(|| {
                        last.map_or(Duration::ZERO, |t| {
                            (t - load_end).to_std().unwrap_or_default()
                        })
                    }),
                    left,
                    drain_rate: history.rate(load_end, now),
                    waited,
                };
            }
            let wait = if done.is_empty() { PAUSE } else { GAP };
            tokio::time::sleep(wait).await;
        }
    }
}

/// When operations were accepted and when those seen finished did: the
/// backlog at any moment.
struct History {
    accepted: Vec<DateTime<Utc>>,
    finished: Vec<DateTime<Utc>>,
}

impl History {
    fn new(mut accepted: Vec<DateTime<Utc>>, mut finished: Vec<DateTime<Utc>>) -> Self {
        accepted.sort_unstable();
        finished.sort_unstable();
        History { accepted, finished }
    }

    fn backlog_at(&self, t: DateTime<Utc>) -> u64 {
        let accepted = self.accepted.partition_point(|a| *a <= t);
        let finished = self.finished.partition_point(|f| *f <= t);
        accepted.saturating_sub(finished) as u64
    }

    /// One sample per [`SAMPLE_EVERY`] from `start` to `end`, and one at `end`.
    fn timeline(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(f64, u64)> {
        let step = chrono::Duration::from_std(SAMPLE_EVERY).expect("a small duration");
        let mut samples = Vec::new();
        let mut t = start;
        while t < end {
            samples.push(((t - start).as_seconds_f64(), self.backlog_at(t)));
            t += step;
        }
        samples.push(((end - start).as_seconds_f64(), self.backlog_at(end)));
        samples
    }

    /// Operations finished per second from `since` (the end of the load) to
    /// `now`: the whole drain, not its last seconds, since operations held
    /// behind a backlog can finish together in a burst (an order is final
    /// only once its release has passed the reservations queued before it),
    /// and a burst is not a pace. What finished during the load says nothing
    /// of the drain.
    fn rate(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
        let seconds = (now - since).as_seconds_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        let n = self.finished.len() - self.finished.partition_point(|f| *f <= since);
        n as f64 / seconds
    }
}

async fn status(client: &reqwest::Client, base: &str, url: &str) -> Option<serde_json::Value> {
    client
        .get(format!("{base}{url}"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

impl Completion {
    /// Lines for the report.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let finished = self.latency.len();
        if finished > 0 {
            let q = |q| human(Duration::from_micros(self.latency.value_at_quantile(q)));
            lines.push(format!(
                "completion ({}, accepted → finished, server clock): p50 {} p95 {} p99 {} max {} ({finished} of {} finished)",
                self.scenario.name(),
                q(0.50),
                q(0.95),
                q(0.99),
                human(Duration::from_micros(self.latency.max())),
                self.accepted,
            ));
        }
        lines.push(format!(
            "backlog (accepted, not finished): {} at the end of the load, peak {}; every {}: {}",
            self.at_load_end,
            self.backlog
                .iter()
                .map(|(_, n)| *n)
                .chain([self.at_load_end])
                .max()
                .unwrap_or(0),
            human(SAMPLE_EVERY * self.stride() as u32),
            self.timeline(),
        ));
        lines.push(match self.drained_after {
            Some(d) => format!("backlog drained {:.1} s after the load", d.as_secs_f64()),
            None if self.drain_rate > 0.0 => format!(
                "NOT drained {:.0} s after the load: {} left, finishing {:.1}/s since it ended, about {:.0} s more",
                self.waited.as_secs_f64(),
                self.left,
                self.drain_rate,
                self.left as f64 / self.drain_rate
            ),
            None => format!(
                "NOT drained {:.0} s after the load: {} left and none finishing",
                self.waited.as_secs_f64(),
                self.left
            ),
        });
        lines
    }

    /// Keeps the timeline to about 16 samples.
    fn stride(&self) -> usize {
        self.backlog.len().div_ceil(16).max(1)
    }

    fn timeline(&self) -> String {
        self.backlog
            .iter()
            .step_by(self.stride())
            .map(|(_, n)| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(n: usize) -> Tracker {
        let t = Tracker::new(Scenario::Order);
        for i in 0..n {
            t.accept(
                format!(r#"{{"status_url": "/orders/{i}"}}"#).as_bytes(),
                Duration::from_millis(1),
            );
        }
        t
    }

    #[test]
    fn every_round_asks_the_head_and_sweeps_the_rest_in_turn() {
        let n = HEAD + 3 * SWEEP;
        let t = tracker(n);
        let mut cursor = 0;
        let mut seen = HashSet::new();
        for _ in 0..3 {
            let batch = t.next_batch(&mut cursor);
            assert_eq!(batch.len(), HEAD + SWEEP);
            assert_eq!(
                batch[..HEAD],
                (0..HEAD)
                    .map(|i| format!("/orders/{i}"))
                    .collect::<Vec<_>>()
            );
            seen.extend(batch);
        }
        assert_eq!(seen.len(), n, "three rounds covered them all");
    }

    #[test]
    fn the_backlog_is_rebuilt_from_when_each_operation_was_accepted_and_finished() {
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        // Four accepted in the first 1.5 s; three finished, the last at 3.2 s.
        let history = History::new(
            vec![at(100), at(600), at(1100), at(1500)],
            vec![at(2200), at(900), at(3200)],
        );

        assert_eq!(history.backlog_at(at(0)), 0);
        assert_eq!(
            history.backlog_at(at(1000)),
            1,
            "two accepted, one finished"
        );
        assert_eq!(history.backlog_at(at(2000)), 3);
        let timeline: Vec<u64> = history
            .timeline(t0, at(3500))
            .iter()
            .step_by(4)
            .map(|s| s.1)
            .collect();
        assert_eq!(timeline, [0, 1, 3, 2]);
        assert_eq!(history.timeline(t0, at(3500)).last().map(|s| s.1), Some(1));
        // Since the load ended at 2 s: two finished in 1.5 s.
        assert!((history.rate(at(2000), at(3500)) - 2.0 / 1.5).abs() < 1e-9);
        // Over the whole drain, however long: a burst at its end is averaged.
        assert!((history.rate(t0, at(12_000)) - 3.0 / 12.0).abs() < 1e-9);
    }

    #[test]
    fn a_small_backlog_is_asked_about_once_per_round() {
        let t = tracker(10);
        let mut cursor = 5;
        let batch = t.next_batch(&mut cursor);
        let unique: HashSet<_> = batch.iter().collect();
        assert_eq!((batch.len(), unique.len()), (10, 10));
        let done: HashSet<String> = batch.into_iter().collect();
        assert_eq!(t.remove(&done), 0);
        assert!(t.next_batch(&mut cursor).is_empty());
    }
}
