//! Where the time went: the stack's own `phase_seconds` (common::phases) and
//! `http_request_duration_seconds`, read from every service before and after
//! a load; the difference, per operation of the load, by service and work
//! (route, queue, task). Means, not percentiles: means add up, so a
//! request's answer time can be set beside the sum of its phases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use common::phases::{self, Phase as Timed};

use crate::exposition;

/// Work that is not the load's: the driver's own scrapes and checks.
const OPERATIONS: [&str; 3] = ["GET /metrics", "GET /health", "GET /ready"];

/// What one service did in one kind of work: where it ran, and which.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Work {
    pub service: String,
    /// `request`, `message` or `background`.
    pub within: String,
    /// `POST /register`, a queue, a task.
    pub work: String,
}

/// Count and sum of seconds of a histogram series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub count: f64,
    pub sum: f64,
}

impl Tally {
    fn minus(self, before: Tally) -> Tally {
        Tally {
            count: self.count - before.count,
            sum: self.sum - before.sum,
        }
    }
}

/// The stack's histograms at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// (work, phase, peer) → tally.
    phases: BTreeMap<(Work, String, String), Tally>,
    /// Requests answered: (service, "METHOD route") → tally.
    answered: BTreeMap<(String, String), Tally>,
}

/// Reads every service's `/metrics` (those that do not answer are left out).
pub async fn sample(client: &reqwest::Client, bases: &[String]) -> Sample {
    let texts =
        futures_util::future::join_all(bases.iter().map(|b| exposition::scrape(client, b))).await;
    let mut sample = Sample::default();
    for text in texts.into_iter().flatten() {
        sample.add(&text);
    }
    sample
}

impl Sample {
    fn add(&mut self, text: &str) {
        for (name, labels, value) in exposition::samples(text) {
            let (metric, field) = match name.rsplit_once('_') {
                Some((metric, "count")) => (metric, 0),
                Some((metric, "sum")) => (metric, 1),
                _ => continue,
            };
            let label = |key: &str| {
                labels
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let tally = match metric {
                common::phases::METRIC => self
                    .phases
                    .entry((
                        Work {
                            service: label("service"),
                            within: label("within"),
                            work: label("work"),
                        },
                        label("phase"),
                        label("peer"),
                    ))
                    .or_default(),
                "http_request_duration_seconds" => self
                    .answered
                    .entry((
                        label("service"),
                        format!("{} {}", label("method"), label("route")),
                    ))
                    .or_default(),
                _ => continue,
            };
            if field == 0 {
                tally.count += value;
            } else {
                tally.sum += value;
            }
        }
    }
}

/// One phase of one kind of work over the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub phase: String,
    pub peer: String,
    pub tally: Tally,
}

/// One kind of work over the load: how often, how long, and its phases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub work: Work,
    /// Answered requests (from `http_request_duration_seconds`), or the
    /// messages handled (the phase `handled`); `None` for background work.
    pub whole: Option<Tally>,
    pub phases: Vec<Phase>,
}

/// The load's work, per operation the load started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    pub operations: u64,
    pub parts: Vec<Part>,
}

/// Phases in the order a request meets them; the rest after, by name.
const ORDER: [&str; 14] = [
    Timed::WorkerWait.as_str(),
    phases::DB_POOL_WAIT,
    Timed::DbBegin.as_str(),
    phases::DB_STATEMENT,
    phases::DB_COMMIT,
    phases::DB_ROLLBACK,
    Timed::Delay.as_str(),
    Timed::DelayOvershoot.as_str(),
    Timed::Call.as_str(),
    Timed::CallOverhead.as_str(),
    Timed::Publish.as_str(),
    Timed::Confirm.as_str(),
    Timed::Ack.as_str(),
    Timed::Handled.as_str(),
];

/// Phases that are part of another one shown beside them (not added again).
fn within_another(phase: &str) -> bool {
    [Timed::DelayOvershoot, Timed::CallOverhead, Timed::Handled]
        .iter()
        .any(|p| p.as_str() == phase)
}

/// The difference between two samples, per operation of the load.
/// `entry` is the scenario's service, shown first.
pub fn between(before: &Sample, after: &Sample, operations: u64, entry: &str) -> Breakdown {
    let mut parts: BTreeMap<Work, Part> = BTreeMap::new();
    for (key, now) in &after.phases {
        let (work, phase, peer) = key;
        let tally = now.minus(before.phases.get(key).copied().unwrap_or_default());
        if tally.count < 0.5 || OPERATIONS.contains(&work.work.as_str()) {
            continue;
        }
        let part = parts.entry(work.clone()).or_insert_with(|| Part {
            work: work.clone(),
            whole: None,
            phases: Vec::new(),
        });
        part.phases.push(Phase {
            phase: phase.clone(),
            peer: peer.clone(),
            tally,
        });
    }
    for ((service, route), now) in &after.answered {
        let key = (service.clone(), route.clone());
        let tally = now.minus(before.answered.get(&key).copied().unwrap_or_default());
        if tally.count < 0.5 || OPERATIONS.contains(&route.as_str()) {
            continue;
        }
        let work = Work {
            service: service.clone(),
            within: "request".into(),
            work: route.clone(),
        };
        parts
            .entry(work.clone())
            .or_insert_with(|| Part {
                work,
                whole: None,
                phases: Vec::new(),
            })
            .whole = Some(tally);
    }
    let mut parts: Vec<Part> = parts.into_values().collect();
    for part in &mut parts {
        if part.work.within == "message" {
            part.whole = part
                .phases
                .iter()
                .find(|p| p.phase == Timed::Handled.as_str())
                .map(|p| p.tally);
        }
        part.phases.sort_by_key(|p| {
            (
                ORDER
                    .iter()
                    .position(|o| *o == p.phase)
                    .unwrap_or(ORDER.len()),
                p.peer.clone(),
            )
        });
    }
    // The entry service first, then the rest by their time per operation.
    let time = |p: &Part| {
        p.whole
            .map_or_else(|| p.phases.iter().map(|x| x.tally.sum).sum(), |w| w.sum)
    };
    parts.sort_by(|a, b| {
        (b.work.service == entry)
            .cmp(&(a.work.service == entry))
            .then(time(b).total_cmp(&time(a)))
    });
    Breakdown { operations, parts }
}

/// Milliseconds with the precision they deserve.
fn ms(seconds: f64) -> String {
    let ms = seconds * 1000.0;
    if ms.abs() >= 100.0 {
        format!("{ms:.1}")
    } else if ms.abs() >= 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

impl Breakdown {
    /// The table `lab-load run` prints.
    pub fn describe(&self) -> Vec<String> {
        let n = self.operations.max(1) as f64;
        let mut lines = vec![format!(
            "where the time went (the stack's phase_seconds; mean ms, per operation of the load: {} incl. warm-up):",
            self.operations
        )];
        lines.push(format!(
            "  {:<10} {:<34} {:>8} {:>10} {:>10}",
            "service", "work / phase", "times", "each", "per op"
        ));
        for part in &self.parts {
            let what = match part.work.within.as_str() {
                "request" => part.work.work.clone(),
                "message" => format!("message {}", part.work.work),
                _ => format!("({})", part.work.work),
            };
            match part.whole {
                Some(whole) => lines.push(format!(
                    "  {:<10} {:<34} {:>8.2} {:>10} {:>10}",
                    part.work.service,
                    what,
                    whole.count / n,
                    ms(whole.sum / whole.count),
                    ms(whole.sum / n)
                )),
                None => lines.push(format!("  {:<10} {what}", part.work.service)),
            }
            let mut added = 0.0;
            for phase in part
                .phases
                .iter()
                .filter(|p| p.phase != Timed::Handled.as_str())
            {
                let name = match phase.peer.as_str() {
                    "" => phase.phase.clone(),
                    verb if phase.phase.starts_with("db_") => format!("{} {verb}", phase.phase),
                    peer => format!("{} → {peer}", phase.phase),
                };
                if !within_another(&phase.phase) {
                    added += phase.tally.sum;
                }
                lines.push(format!(
                    "  {:<10}   {:<32} {:>8.2} {:>10} {:>10}",
                    "",
                    name,
                    phase.tally.count / n,
                    ms(phase.tally.sum / phase.tally.count),
                    ms(phase.tally.sum / n)
                ));
            }
            if let Some(whole) = part.whole {
                lines.push(format!(
                    "  {:<10}   {:<32} {:>8} {:>10} {:>10}",
                    "",
                    "other (whole − phases)",
                    "",
                    "",
                    ms((whole.sum - added) / n)
                ));
            }
        }
        lines.push(
            "  (… → peer: a call to another service; call_overhead and delay_overshoot are part of call and delay; \
             phases that ran at the same time make `other` negative)"
                .into(),
        );
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str) -> Sample {
        let mut s = Sample::default();
        s.add(text);
        s
    }

    #[test]
    fn the_breakdown_is_the_difference_per_operation_by_service_and_work() {
        let before = sample(
            r#"phase_seconds_count{service="user",mode="sync",within="request",work="POST /register",phase="db_commit",peer=""} 10
phase_seconds_sum{service="user",mode="sync",within="request",work="POST /register",phase="db_commit",peer=""} 0.01
http_request_duration_seconds_count{service="user",mode="sync",method="POST",route="/register",status="201"} 5
http_request_duration_seconds_sum{service="user",mode="sync",method="POST",route="/register",status="201"} 2.5
"#,
        );
        let after = sample(
            r#"phase_seconds_count{service="user",mode="sync",within="request",work="POST /register",phase="db_commit",peer=""} 30
phase_seconds_sum{service="user",mode="sync",within="request",work="POST /register",phase="db_commit",peer=""} 0.03
phase_seconds_count{service="user",mode="sync",within="request",work="POST /register",phase="call",peer="email"} 10
phase_seconds_sum{service="user",mode="sync",within="request",work="POST /register",phase="call",peer="email"} 5.01
phase_seconds_count{service="user",mode="sync",within="request",work="GET /metrics",phase="db_statement",peer=""} 3
phase_seconds_sum{service="user",mode="sync",within="request",work="GET /metrics",phase="db_statement",peer=""} 0.003
http_request_duration_seconds_count{service="user",mode="sync",method="POST",route="/register",status="201"} 14
http_request_duration_seconds_sum{service="user",mode="sync",method="POST",route="/register",status="201"} 7.5
http_request_duration_seconds_count{service="user",mode="sync",method="POST",route="/register",status="409"} 1
http_request_duration_seconds_sum{service="user",mode="sync",method="POST",route="/register",status="409"} 0.01
http_request_duration_seconds_count{service="email",mode="sync",method="POST",route="/send",status="200"} 10
http_request_duration_seconds_sum{service="email",mode="sync",method="POST",route="/send",status="200"} 5.0
"#,
        );
        let b = between(&before, &after, 10, "user");
        assert_eq!(b.parts.len(), 2, "{b:?}");
        let user = &b.parts[0];
        assert_eq!(user.work.work, "POST /register");
        assert_eq!(
            user.whole,
            Some(Tally {
                count: 10.0,
                sum: 5.01
            })
        );
        let phases: Vec<(&str, &str, f64)> = user
            .phases
            .iter()
            .map(|p| (p.phase.as_str(), p.peer.as_str(), p.tally.count))
            .collect();
        assert_eq!(phases, [("db_commit", "", 20.0), ("call", "email", 10.0)]);
        assert_eq!(b.parts[1].work.service, "email");
        let text = b.describe().join("\n");
        assert!(text.contains("POST /register"), "{text}");
        assert!(text.contains("call → email"), "{text}");
        assert!(!text.contains("GET /metrics"), "{text}");
    }
}
