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
//! Polling is bounded on purpose (the follower's GETs are load too): each
//! round asks about the oldest few outstanding operations (queues are roughly
//! first in, first out) and a few more taken in turn from the rest of the
//! backlog (operations do not all finish in order: an order refused for lack
//! of stock finishes at once while older ones wait for their payment). At
//! most `HEAD + SWEEP` GETs per `GAP` (320/s) while operations finish, per
//! `PAUSE` while none do. So an operation that finished out of order may be
//! seen finished up to one sweep of the backlog later: the backlog figures
//! can lag by that much, the completion times cannot (they are the server's).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use crate::scenario::Scenario;
use crate::stats::human;

/// The oldest outstanding operations, asked about every round.
const HEAD: usize = 8;
/// Further outstanding operations asked about every round, in turn.
const SWEEP: usize = 8;
/// Wait before asking again when none of them had finished.
const PAUSE: Duration = Duration::from_millis(100);
/// Least time between two rounds: the follower's GETs are load too, at most
/// `(HEAD + SWEEP) / GAP` (320/s) however fast operations finish.
const GAP: Duration = Duration::from_millis(50);
/// One backlog sample per this much time.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Operations accepted during a run and not yet seen finished.
pub struct Tracker {
    scenario: Scenario,
    outstanding: Mutex<VecDeque<String>>,
    accepted: AtomicU64,
}

/// What following the operations found.
pub struct Completion {
    scenario: Scenario,
    /// Server-side accepted → finished, in microseconds.
    latency: Histogram<u64>,
    accepted: u64,
    /// (seconds since the load started, operations accepted but not finished).
    backlog: Vec<(f64, u64)>,
    /// Backlog when the load stopped.
    at_load_end: u64,
    /// Time from the end of the load until the last operation finished.
    drained_after: Option<Duration>,
    /// Left unfinished when the follower gave up, and the finishing rate then.
    left: u64,
    recent_rate: f64,
    waited: Duration,
}

impl Tracker {
    pub fn new(scenario: Scenario) -> Self {
        Tracker {
            scenario,
            outstanding: Mutex::new(VecDeque::new()),
            accepted: AtomicU64::new(0),
        }
    }

    /// Notes an accepted operation from its answer's body.
    pub fn accept(&self, body: &[u8]) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        if let Some(url) = value["status_url"].as_str() {
            self.accepted.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut q) = self.outstanding.lock() {
                q.push_back(url.to_owned());
            }
        }
    }

    /// The oldest [`HEAD`] operations and the next [`SWEEP`] from `cursor`
    /// on among the others (wrapping); moves `cursor` past them.
    fn next_batch(&self, cursor: &mut usize) -> Vec<String> {
        let Ok(q) = self.outstanding.lock() else {
            return Vec::new();
        };
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
        let Ok(mut q) = self.outstanding.lock() else {
            return 0;
        };
        q.retain(|url| !done.contains(url));
        q.len() as u64
    }

    fn backlog(&self) -> u64 {
        self.outstanding.lock().map_or(0, |q| q.len() as u64)
    }

    /// Follows the operations until the load is over (`load_over`) and every
    /// one finished, or until `drain_timeout` after the load.
    pub async fn follow(
        &self,
        client: &reqwest::Client,
        base: &str,
        load_over: CancellationToken,
        drain_timeout: Duration,
    ) -> Completion {
        let start = Instant::now();
        let mut latency =
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        let mut backlog = vec![(0.0, 0)];
        let mut next_sample = start + SAMPLE_EVERY;
        let mut load_end: Option<(Instant, u64)> = None;
        // (when, finished so far): the finishing rate over the last samples.
        let mut finished_at: VecDeque<(Instant, u64)> = VecDeque::new();
        let mut finished = 0u64;
        let mut cursor = 0;
        loop {
            if load_end.is_none() && load_over.is_cancelled() {
                load_end = Some((Instant::now(), self.backlog()));
            }
            let batch = self.next_batch(&mut cursor);
            let mut done = HashSet::new();
            let answers =
                futures_util::future::join_all(batch.iter().map(|url| status(client, base, url)))
                    .await;
            for (url, answer) in batch.into_iter().zip(answers) {
                if let Some(took) = answer.and_then(|body| self.scenario.finished(&body)) {
                    latency.saturating_record(took.as_micros().max(1) as u64);
                    done.insert(url);
                }
            }
            finished += done.len() as u64;
            let left = self.remove(&done);
            let now = Instant::now();
            if now >= next_sample {
                backlog.push((now.duration_since(start).as_secs_f64(), left));
                finished_at.push_back((now, finished));
                if finished_at.len() > 10 {
                    finished_at.pop_front();
                }
                next_sample += SAMPLE_EVERY;
            }
            if let Some((ended, at_end)) = load_end {
                let waited = now.duration_since(ended);
                if left == 0 || waited >= drain_timeout {
                    backlog.push((now.duration_since(start).as_secs_f64(), left));
                    return Completion {
                        scenario: self.scenario,
                        latency,
                        accepted: self.accepted.load(Ordering::Relaxed),
                        backlog,
                        at_load_end: at_end,
                        drained_after: (left == 0).then_some(waited),
                        left,
                        recent_rate: rate(&finished_at),
                        waited,
                    };
                }
            }
            let wait = if done.is_empty() { PAUSE } else { GAP };
            tokio::select! {
                () = tokio::time::sleep_until((now + wait).into()) => {}
                () = load_over.cancelled(), if load_end.is_none() => {}
            }
        }
    }
}

/// Operations finished per second between the oldest and newest sample.
fn rate(samples: &VecDeque<(Instant, u64)>) -> f64 {
    match (samples.front(), samples.back()) {
        (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
            (n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64()
        }
        _ => 0.0,
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
            None if self.recent_rate > 0.0 => format!(
                "NOT drained {:.0} s after the load: {} left, finishing {:.1}/s, about {:.0} s more",
                self.waited.as_secs_f64(),
                self.left,
                self.recent_rate,
                self.left as f64 / self.recent_rate
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
            t.accept(format!(r#"{{"status_url": "/orders/{i}"}}"#).as_bytes());
        }
        t
    }

    #[test]
    fn every_round_asks_the_head_and_sweeps_the_rest_in_turn() {
        let t = tracker(30);
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
        assert_eq!(seen.len(), 30, "three rounds covered all 30");
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
