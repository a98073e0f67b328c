//! The figures each lane shows, computed from its rows: the page and the API
//! show the same numbers because they are computed once, here.

use loadgen::stats::nearest_rank;
use serde::Serialize;

/// One request of a race, times in milliseconds since the race started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub sent: f64,
    pub answered: Option<f64>,
    /// The service's own time in its handler (its `Server-Timing`): the
    /// rest of the answered time was spent outside it (network, HTTP, the
    /// service's queue, this page's client).
    pub handled: Option<f64>,
    pub status: Option<u16>,
    /// The transport error, when there was no answer.
    pub error: Option<String>,
    /// When the work was over: the answer in sync mode; the stack's own
    /// finished time in async mode (read from its status endpoint).
    pub finished: Option<f64>,
    /// The final state the stack reports (`sent`, `failed`, `completed`, ...).
    pub outcome: Option<String>,
    /// Where the stack keeps this operation (`/orders/12`), to follow it and read it back.
    pub resource: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusCount {
    pub status: u16,
    pub count: usize,
    /// The contract's normal answer for this scenario and mode.
    pub expected: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub sent: usize,
    pub answered: usize,
    pub statuses: Vec<StatusCount>,
    /// Requests that got no answer at all (refused, reset, timed out).
    pub errors: usize,
    pub answered_ms: Percentiles,
    /// Answered time less the service's own time in its handler.
    pub outside_ms: Percentiles,
    pub finished_ms: Percentiles,
    /// Answered with the expected status: the stack took the work on.
    pub accepted: usize,
    /// Accepted and over (finished time known).
    pub finished: usize,
    /// Unexpected status or no answer.
    pub failed: usize,
    /// Accepted, not finished yet.
    pub pending: usize,
}

pub fn percentiles(mut values: Vec<f64>) -> Percentiles {
    values.sort_by(f64::total_cmp);
    Percentiles {
        p50: nearest_rank(&values, 0.50),
        p95: nearest_rank(&values, 0.95),
        max: values.last().copied(),
    }
}

pub fn summarize(rows: &[Row], expected: u16) -> Summary {
    let mut statuses: Vec<StatusCount> = Vec::new();
    for status in rows.iter().filter_map(|r| r.status) {
        match statuses.iter_mut().find(|s| s.status == status) {
            Some(s) => s.count += 1,
            None => statuses.push(StatusCount {
                status,
                count: 1,
                expected: status == expected,
            }),
        }
    }
    statuses.sort_by_key(|s| (!s.expected, s.status));
    let accepted: Vec<&Row> = rows.iter().filter(|r| r.status == Some(expected)).collect();
    let answered = rows.iter().filter(|r| r.answered.is_some()).count();
    let errors = rows.iter().filter(|r| r.error.is_some()).count();
    let finished: Vec<f64> = accepted.iter().filter_map(|r| r.finished).collect();
    Summary {
        sent: rows.len(),
        answered,
        errors,
        answered_ms: percentiles(rows.iter().filter_map(|r| r.answered).collect()),
        outside_ms: percentiles(
            rows.iter()
                .filter_map(|r| Some(r.answered? - r.sent - r.handled?))
                .collect(),
        ),
        finished_ms: percentiles(finished.clone()),
        accepted: accepted.len(),
        finished: finished.len(),
        failed: answered - accepted.len() + errors,
        pending: accepted.len() - finished.len(),
        statuses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(answered: f64, status: u16, finished: Option<f64>) -> Row {
        Row {
            answered: Some(answered),
            status: Some(status),
            finished,
            ..Row::default()
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = percentiles((1..=100).map(f64::from).rev().collect());
        assert_eq!((p.p50, p.p95, p.max), (Some(50.0), Some(95.0), Some(100.0)));
        let one = percentiles(vec![7.0]);
        assert_eq!(
            (one.p50, one.p95, one.max),
            (Some(7.0), Some(7.0), Some(7.0))
        );
        assert_eq!(percentiles(vec![]), Percentiles::default());
    }

    #[test]
    fn a_lane_counts_expected_answers_as_accepted_and_the_rest_as_failed() {
        let rows = vec![
            row(2.0, 202, Some(500.0)),
            row(3.0, 202, None),
            row(1.0, 503, None),
            Row {
                error: Some("connection refused".into()),
                ..Row::default()
            },
        ];
        let s = summarize(&rows, 202);
        assert_eq!((s.sent, s.answered, s.errors), (4, 3, 1));
        assert_eq!((s.accepted, s.finished, s.pending, s.failed), (2, 1, 1, 2));
        assert_eq!(
            s.statuses,
            vec![
                StatusCount {
                    status: 202,
                    count: 2,
                    expected: true
                },
                StatusCount {
                    status: 503,
                    count: 1,
                    expected: false
                },
            ]
        );
        assert_eq!(s.answered_ms.max, Some(3.0));
        assert_eq!(s.finished_ms.p50, Some(500.0));
    }
}
